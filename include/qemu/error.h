/*
 * The project's one GError domain. Every layer reports errors through it, so
 * it lives here and not in any layer's header: a socket or an option parser
 * has no reason to see the device model.
 */
#ifndef QEMU_ERROR_H
#define QEMU_ERROR_H

#include <glib.h>

#define VCCID_ERROR vccid_error_quark()
GQuark vccid_error_quark(void);

#endif
