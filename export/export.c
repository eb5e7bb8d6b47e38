/*
 * "-export TYPE,..." dispatch.
 */
#include "export/export.h"
#include "qemu/error.h"

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
    { "usbredir", "usbredir,chardev=ID[,device=ID]  usbredir protocol (QEMU -device usb-redir)",
      usbredir_export_create, usbredir_export_destroy_all },
    { "usbip", "usbip[,device=ID][,host=127.0.0.1][,port=3240]  USB/IP server (Linux usbip attach)",
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
