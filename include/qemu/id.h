/*
 * The ids users give devices, objects and exports (QEMU's id_wellformed()):
 * a letter, then letters, digits, '-', '_' or '.'. Ids name things on the
 * command line and in QMP, so nothing that would need quoting gets in.
 */
#ifndef QEMU_ID_H
#define QEMU_ID_H

#include <stdbool.h>

bool id_wellformed(const char *id);

#endif
