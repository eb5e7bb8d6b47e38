/*
 * "-export TYPE,..." dispatch.
 */
#include "export/export.h"
#include "monitor/monitor.h"
#include "qemu/error.h"
#include "qemu/id.h"

#include <stdio.h>
#include <string.h>

#include "trace.h"

typedef struct ExportType {
    const char *name;
    const char *usage;
    bool (*create)(QemuOpts *opts, GError **errp);
    void (*destroy_all)(void);
} ExportType;

static const ExportType export_types[] = {
    { "usbredir", "usbredir[,id=ID],chardev=ID[,device=ID]  usbredir protocol (QEMU -device usb-redir)",
      usbredir_export_create, usbredir_export_destroy_all },
    { "usbip", "usbip[,id=ID][,device=ID][,host=127.0.0.1][,port=3240]  USB/IP server (Linux usbip attach)",
      usbip_export_create, usbip_export_destroy_all },
};

bool export_create_from_string(const char *optstr, GError **errp)
{
    g_autoptr(QemuOpts) opts = qemu_opts_parse(optstr, "type", errp);
    const char *type;

    trace_export_create(optstr);
    if (!opts) {
        return false;
    }
    type = opts->implied ? opts->implied : qemu_opt_take(opts, "type");
    for (size_t i = 0; type && i < G_N_ELEMENTS(export_types); i++) {
        if (strcmp(type, export_types[i].name) == 0) {
            return export_types[i].create(opts, errp);
        }
    }
    g_set_error(errp, VCCID_ERROR, 0, "-export '%s': unknown export type '%s' (try -export help)",
                optstr, type ? type : "");
    return false;
}

void export_destroy_all(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(export_types); i++) {
        export_types[i].destroy_all();
    }
}

void export_print_help(void)
{
    printf("Exports:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(export_types); i++) {
        printf("  -export %s\n", export_types[i].usage);
    }
}

/* ---- ids, deletion and queries (for the QMP monitor) ---- */

/* The exports that match every field set. */
typedef struct ExportSearch {
    const char *type;
    const char *id;
    const char *device;
    bool found;
} ExportSearch;

static void export_search_cb(const ExportInfo *info, void *opaque)
{
    ExportSearch *search = opaque;

    search->found |= (!search->type || strcmp(info->type, search->type) == 0) &&
                     (!search->id || strcmp(info->id, search->id) == 0) &&
                     (!search->device || strcmp(info->device, search->device) == 0);
}

static bool export_exists(ExportSearch search)
{
    export_foreach(export_search_cb, &search);
    return search.found;
}

bool export_id_check(const char *id, GError **errp)
{
    if (!id) {
        return true;
    }
    if (!id_wellformed(id)) {
        g_set_error(errp, VCCID_ERROR, 0, "Parameter 'id' expects an identifier (a letter, "
                    "then letters, digits, '-', '_' or '.'), not '%s'", id);
        return false;
    }
    if (export_exists((ExportSearch){ .id = id })) {
        g_set_error(errp, VCCID_ERROR, 0, "An export with id '%s' already exists", id);
        return false;
    }
    return true;
}

/* Like QEMU's anonymous ids: a '#' no user id can have. */
char *export_id_generate(void)
{
    static unsigned count;

    return g_strdup_printf("#export%u", count++);
}

USBDevice *export_find_device(const char *type, const char *id, GError **errp)
{
    USBDevice *dev;

    if (!id) {
        dev = usb_device_find_first();
        if (!dev) {
            g_set_error(errp, VCCID_ERROR, 0, "-export %s: no USB device to export "
                        "(add -device usb-ccid first)", type);
            return NULL;
        }
    } else {
        DeviceState *d = device_find(id);

        if (!d || !object_is_usb_device(d)) {
            g_set_error(errp, VCCID_ERROR, 0, "-export %s: Parameter 'device' names no USB "
                        "device: '%s'", type, id);
            return NULL;
        }
        dev = USB_DEVICE(d);
    }
    if (export_exists((ExportSearch){ .type = type, .device = DEVICE(dev)->id })) {
        g_set_error(errp, VCCID_ERROR, 0, "-export %s: device '%s' is already exported",
                    type, DEVICE(dev)->id);
        return NULL;
    }
    return dev;
}

void export_event_peer(const char *id, const char *type, const char *peer, bool connected)
{
    QObject *data = qdict_new();

    qdict_put(data, "id", qstring_new(id));
    qdict_put(data, "type", qstring_new(type));
    qdict_put(data, "peer", qstring_new(peer));
    qmp_event_send(connected ? "VCCID_EXPORT_PEER_CONNECTED" : "VCCID_EXPORT_PEER_DISCONNECTED",
                   data);
}

bool export_del(const char *id, GError **errp)
{
    if (!usbredir_export_del(id, NULL) && !usbip_export_del(id, NULL)) {
        g_set_error(errp, VCCID_ERROR, 0, "Export '%s' is not found", id);
        return false;
    }
    return true;
}

void export_del_device(const DeviceState *dev)
{
    usbredir_export_del(NULL, dev);
    usbip_export_del(NULL, dev);
}

void export_foreach(ExportInfoFunc *fn, void *opaque)
{
    usbredir_export_foreach(fn, opaque);
    usbip_export_foreach(fn, opaque);
}
