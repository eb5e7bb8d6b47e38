/*
 * Exports: the host side of the USB cable. "-export TYPE,..." hands a USB
 * device model to something that acts as its USB host.
 */
#ifndef EXPORT_EXPORT_H
#define EXPORT_EXPORT_H

#include "qemu/option.h"

#include "hw/qdev.h"
#include "hw/usb.h"

/* What a query of the exports reports of one. */
typedef struct ExportInfo {
    const char *type;
    const char *id;
    const char *device;      /* the exported device's id */
    const char *chardev;     /* NULL: the export has its own listener (usbip) */
    const char *peer;        /* where its host connects */
    bool connected;          /* a host is connected */
    bool attached;           /* and has been handed the device */
} ExportInfo;
typedef void ExportInfoFunc(const ExportInfo *info, void *opaque);

/* "-export usbredir[,id=ID],chardev=ID[,device=ID]" */
bool usbredir_export_create(QemuOpts *opts, GError **errp);
void usbredir_export_destroy_all(void);
/* "-export usbip,device=ID[,host=ADDR][,port=PORT]" */
bool usbip_export_create(QemuOpts *opts, GError **errp);
void usbip_export_destroy_all(void);
bool usbip_export_del(const char *id, const DeviceState *dev);
void usbip_export_foreach(ExportInfoFunc *fn, void *opaque);

/* End the exports named id, or of dev; false if there were none. */
bool usbredir_export_del(const char *id, const DeviceState *dev);
void usbredir_export_foreach(ExportInfoFunc *fn, void *opaque);

/* For the export types: refuse an id that is taken or malformed; make one. */
bool export_id_check(const char *id, GError **errp);
char *export_id_generate(void);
/*
 * The USB device an export of this type hands out: device=id, or without it
 * the first one; not one this type exports already.
 */
USBDevice *export_find_device(const char *type, const char *id, GError **errp);
/* A host connected to (connected) or left an export: tell the monitors. */
void export_event_peer(const char *id, const char *type, const char *peer, bool connected);

/* Delete an export by id (QMP vccid-export-del). */
bool export_del(const char *id, GError **errp);
/* End every export of dev: before the device goes away. */
void export_del_device(const DeviceState *dev);
void export_foreach(ExportInfoFunc *fn, void *opaque);

/* Parse "-export TYPE,..." and create it. */
bool export_create_from_string(const char *optstr, GError **errp);
void export_destroy_all(void);
void export_print_help(void);

#endif
