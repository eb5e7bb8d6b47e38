/*
 * Exports: the host side of the USB cable. "-export TYPE,..." hands a USB
 * device model to something that acts as its USB host.
 */
#ifndef EXPORT_EXPORT_H
#define EXPORT_EXPORT_H

#include "qemu/option.h"

/* "-export usbredir,chardev=ID[,device=ID]" */
bool usbredir_export_create(QemuOpts *opts, GError **errp);
void usbredir_export_destroy_all(void);
/* "-export usbip,device=ID[,host=ADDR][,port=PORT]" */
bool usbip_export_create(QemuOpts *opts, GError **errp);
void usbip_export_destroy_all(void);

/* Parse "-export TYPE,..." and create it. */
bool export_create_from_string(const char *optstr, GError **errp);
void export_destroy_all(void);
void export_print_help(void);

#endif
