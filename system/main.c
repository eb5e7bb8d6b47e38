/*
 * vccid: a virtual USB CCID smart-card reader daemon.
 *
 * The command line follows QEMU's: -object, -chardev, -device and -export
 * options are created in that order (objects such as TLS credentials
 * first, then chardevs, then devices in the order given, then exports), and any error on the command line exits with status
 * 2 and one line that names the bad option, before anything is served.
 * QMP monitors (-qmp, -mon) come up after the chardevs, before the devices.
 */
#include "chardev/char.h"
#include "export/export.h"
#include "hw/qdev.h"
#include "monitor/monitor.h"
#include "sysemu/daemon.h"
#include "sysemu/runstate.h"
#include "trace/control.h"
#include "qom/object.h"

#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-host.h"

#define EXIT_USAGE 2

typedef struct CmdLine {
    GPtrArray *objects;
    GPtrArray *chardevs;
    GPtrArray *devices;
    GPtrArray *exports;
    GPtrArray *qmp;          /* -qmp specs */
    GPtrArray *mons;         /* -mon options */
    const char *pidfile;
    bool daemonize;
    bool verbose;
} CmdLine;

static void usage(void)
{
    printf("Usage: vccid [options]\n"
           "\n"
           "A virtual USB CCID smart-card reader. It serves a usb-ccid reader with an emulated\n"
           "or passed-through card to a USB host: QEMU's -device usb-redir over usbredir.\n"
           "\n"
           "Options:\n"
           "  -object TYPE,id=ID[,PROP=VALUE...]\n"
           "                       TLS credentials or an authorization list for\n"
           "                       -chardev tls-creds=/tls-authz= (-object help lists them)\n"
           "  -chardev socket,id=ID,(path=PATH|host=HOST,port=PORT)[,server=on|off]\n"
           "          [,wait=on|off][,reconnect=SECONDS][,nodelay=on|off]\n"
           "          [,tls-creds=ID[,tls-authz=ID]][,handshake-timeout=SECONDS]\n"
           "          [,keep-alive=on|off][,keep-alive-idle=S][,keep-alive-interval=S]\n"
           "          [,keep-alive-count=N][,owner=USER][,group=GROUP][,mode=OCTAL]\n"
           "                       a socket for an export or a passthru card; a unix\n"
           "                       server's socket file is 0600, 0660 with group=\n"
           "                       (mode= never gives other users any bit)\n"
           "  -device DRIVER[,id=ID][,PROP=VALUE...]\n"
           "                       add a device (-device help lists them,\n"
           "                       -device DRIVER,help lists a device's properties)\n"
           "  -export usbredir[,id=ID],chardev=ID[,device=ID]\n"
           "                       serve a USB device over usbredir on a chardev\n"
           "  -export usbip[,id=ID][,device=ID][,host=127.0.0.1][,port=3240]\n"
           "                       serve a USB device over USB/IP (Linux: usbip attach)\n"
           "  -qmp unix:PATH,server=on,wait=off | tcp:HOST:PORT,server=on,wait=off\n"
           "                       a QMP monitor (QEMU's protocol; see docs/ccid.txt)\n"
           "  -mon chardev=ID[,mode=control]\n"
           "                       a QMP monitor on a -chardev\n"
           "  -pidfile FILE        write the process id to FILE (locked while running)\n"
           "  -daemonize           run in the background once everything is ready\n"
           "  -trace [enable=]PATTERN[,events=FILE][,file=FILE]\n"
           "                       enable the trace points matching PATTERN (a glob),\n"
           "                       or those listed in FILE; write them to FILE instead\n"
           "                       of stderr (-trace help lists the trace points)\n"
           "  -v, --verbose        log debug messages\n"
           "  -h, --help           print this help and exit\n"
           "  -V, --version        print the version and exit\n"
           "\n"
           "Example (attach with QEMU: -chardev socket,id=r,path=$XDG_RUNTIME_DIR/vccid/sock\n"
           "                            -device usb-redir,chardev=r):\n"
           "  vccid -chardev socket,id=r,path=$XDG_RUNTIME_DIR/vccid/sock,server=on,wait=off \\\n"
           "        -device usb-ccid \\\n"
           "        -device ccid-card-emulated,backend=certificates,db=sql:$PWD,\\\n"
           "cert1=id-cert,cert2=signing-cert,cert3=encryption-cert \\\n"
           "        -export usbredir,chardev=r\n"
           "\n"
           "See vccid(1) and docs/ccid.txt.\n");
}

static void log_handler(const gchar *domain, GLogLevelFlags level, const gchar *message,
                        gpointer opaque)
{
    const CmdLine *cl = opaque;
    g_autoptr(GDateTime) now = NULL;
    g_autofree char *stamp = NULL;
    const char *tag = "";

    if ((level & G_LOG_LEVEL_DEBUG) && !cl->verbose) {
        return;
    }
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) {
        tag = "error: ";
    } else if (level & G_LOG_LEVEL_WARNING) {
        tag = "warning: ";
    }
    now = g_date_time_new_now_local();
    stamp = g_date_time_format(now, "%H:%M:%S.%f");
    stamp[12] = '\0';   /* milliseconds are enough */
    fprintf(stderr, "%s vccid: %s%s\n", stamp, tag, message);
}

static G_NORETURN void usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "vccid: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(EXIT_USAGE);
}

/* Accept "-opt" and "--opt" alike, as QEMU does. */
static const char *option_name(const char *arg)
{
    if (arg[0] != '-') {
        return NULL;
    }
    return arg[1] == '-' ? arg + 2 : arg + 1;
}

/* At once, so that trace points fire from the first device created. */
static void parse_trace(int argc, char **argv, int i)
{
    g_autoptr(GError) err = NULL;
    bool help;

    if (i >= argc) {
        usage_error("option '%s' requires an argument", argv[i - 1]);
    }
    if (!trace_opt_parse(argv[i], &help, &err)) {
        usage_error("-trace %s: %s", argv[i], err->message);
    }
    if (help) {
        trace_list_events(stdout);
        exit(0);
    }
}

static void parse_args(int argc, char **argv, CmdLine *cl)
{
    for (int i = 1; i < argc; i++) {
        const char *opt = option_name(argv[i]);
        GPtrArray *target = NULL;

        if (!opt) {
            usage_error("unexpected argument '%s' (try --help)", argv[i]);
        }
        if (strcmp(opt, "h") == 0 || strcmp(opt, "help") == 0) {
            usage();
            exit(0);
        } else if (strcmp(opt, "V") == 0 || strcmp(opt, "version") == 0) {
            printf("vccid %s\n", VCCID_VERSION);
            exit(0);
        } else if (strcmp(opt, "v") == 0 || strcmp(opt, "verbose") == 0) {
            cl->verbose = true;
            continue;
        } else if (strcmp(opt, "object") == 0) {
            target = cl->objects;
        } else if (strcmp(opt, "chardev") == 0) {
            target = cl->chardevs;
        } else if (strcmp(opt, "device") == 0) {
            target = cl->devices;
        } else if (strcmp(opt, "export") == 0) {
            target = cl->exports;
        } else if (strcmp(opt, "qmp") == 0) {
            target = cl->qmp;
        } else if (strcmp(opt, "mon") == 0) {
            target = cl->mons;
        } else if (strcmp(opt, "daemonize") == 0) {
            cl->daemonize = true;
            continue;
        } else if (strcmp(opt, "pidfile") == 0) {
            if (++i >= argc) {
                usage_error("option '%s' requires an argument", argv[i - 1]);
            }
            cl->pidfile = argv[i];
            continue;
        } else if (strcmp(opt, "trace") == 0) {
            parse_trace(argc, argv, ++i);
            continue;
        } else {
            usage_error("invalid option '%s' (try --help)", argv[i]);
        }
        if (i + 1 >= argc) {
            usage_error("option '%s' requires an argument", argv[i]);
        }
        g_ptr_array_add(target, argv[++i]);
    }
}

static bool has_monitor(const CmdLine *cl)
{
    return cl->qmp->len || cl->mons->len;
}

static void handle_help_requests(CmdLine *cl)
{
    for (guint i = 0; i < cl->devices->len; i++) {
        const char *d = g_ptr_array_index(cl->devices, i);

        if (device_opts_want_help(d)) {
            char *driver = g_strndup(d, strcspn(d, ","));
            bool known = strcmp(driver, "help") == 0 || strcmp(driver, "?") == 0 ||
                         device_class_find(driver);

            device_print_help(driver);
            g_free(driver);
            exit(known ? 0 : EXIT_USAGE);
        }
    }
    for (guint i = 0; i < cl->objects->len; i++) {
        if (strcmp(g_ptr_array_index(cl->objects, i), "help") == 0) {
            object_print_help();
            exit(0);
        }
    }
    for (guint i = 0; i < cl->exports->len; i++) {
        if (strcmp(g_ptr_array_index(cl->exports, i), "help") == 0) {
            export_print_help();
            exit(0);
        }
    }
}

/* Create everything; any failure exits before the main loop runs. */
static void create_objects(CmdLine *cl)
{
    GError *err = NULL;

    for (guint i = 0; i < cl->objects->len; i++) {
        if (!object_create_from_string(g_ptr_array_index(cl->objects, i), &err)) {
            goto fail;
        }
    }
    for (guint i = 0; i < cl->chardevs->len; i++) {
        if (!chardev_new_from_string(g_ptr_array_index(cl->chardevs, i), &err)) {
            goto fail;
        }
    }
    for (guint i = 0; i < cl->qmp->len; i++) {
        if (!monitor_new_qmp(g_ptr_array_index(cl->qmp, i), &err)) {
            goto fail;
        }
    }
    for (guint i = 0; i < cl->mons->len; i++) {
        if (!monitor_new_from_string(g_ptr_array_index(cl->mons, i), &err)) {
            goto fail;
        }
    }
    for (guint i = 0; i < cl->devices->len; i++) {
        if (!device_create_from_string(g_ptr_array_index(cl->devices, i), &err)) {
            g_prefix_error(&err, "-device %s: ", (char *)g_ptr_array_index(cl->devices, i));
            goto fail;
        }
    }
    for (guint i = 0; i < cl->exports->len; i++) {
        if (!export_create_from_string(g_ptr_array_index(cl->exports, i), &err)) {
            goto fail;
        }
    }
    /* With a monitor, devices and exports may all come later. */
    if (cl->exports->len == 0 && !has_monitor(cl)) {
        err = g_error_new(VCCID_ERROR, 0, "nothing exports the reader: add "
                          "-export usbredir,chardev=ID (try --help)");
        goto fail;
    }
    return;

fail:
    fprintf(stderr, "vccid: %s\n", err->message);
    g_error_free(err);
    export_destroy_all();
    monitor_destroy_all();
    device_destroy_all();
    chardev_destroy_all();
    object_destroy_all();
    exit(EXIT_USAGE);
}

static gboolean on_signal(gpointer opaque)
{
    g_message("shutting down");
    qemu_system_shutdown_request("host-signal");
    return G_SOURCE_CONTINUE;
}

int main(int argc, char **argv)
{
    CmdLine cl = {
        .objects = g_ptr_array_new(),
        .chardevs = g_ptr_array_new(),
        .devices = g_ptr_array_new(),
        .exports = g_ptr_array_new(),
        .qmp = g_ptr_array_new(),
        .mons = g_ptr_array_new(),
    };
    GMainLoop *loop;

    /* A peer that vanishes mid-write is a closed connection, not a fatal signal. */
    signal(SIGPIPE, SIG_IGN);
    parse_args(argc, argv, &cl);
    g_log_set_default_handler(log_handler, &cl);
    handle_help_requests(&cl);
    if (cl.devices->len == 0 && !has_monitor(&cl)) {
        usage_error("nothing to serve: give at least -device usb-ccid, or a monitor "
                    "(-qmp) to add it with (try --help)");
    }
    /* Before any thread or socket exists: the child is the daemon. */
    if (cl.daemonize) {
        os_daemonize();
    }
    if (cl.pidfile) {
        g_autoptr(GError) err = NULL;

        if (!os_pidfile_create(cl.pidfile, &err)) {
            usage_error("-pidfile %s: %s", cl.pidfile, err->message);
        }
    }
    create_objects(&cl);
    loop = g_main_loop_new(NULL, FALSE);
    runstate_set_main_loop(loop);
    g_unix_signal_add(SIGINT, on_signal, NULL);
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    chardev_wait_for_clients();
    g_message("vccid %s ready", VCCID_VERSION);
    os_notify_ready();
    if (cl.daemonize) {
        os_daemonize_done();
    }
    g_main_loop_run(loop);

    os_notify_stopping();
    /* Each export's host sees its device leave, then devices and sockets go. */
    export_destroy_all();
    monitor_destroy_all();
    device_destroy_all();
    chardev_destroy_all();
    object_destroy_all();
    g_main_loop_unref(loop);
    g_ptr_array_free(cl.objects, TRUE);
    g_ptr_array_free(cl.chardevs, TRUE);
    g_ptr_array_free(cl.devices, TRUE);
    g_ptr_array_free(cl.exports, TRUE);
    g_ptr_array_free(cl.qmp, TRUE);
    g_ptr_array_free(cl.mons, TRUE);
    if (cl.pidfile) {
        os_pidfile_remove(cl.pidfile);
    }
    return 0;
}
