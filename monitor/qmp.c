/*
 * The QMP wire protocol on a chardev: greeting, capabilities negotiation,
 * request checking and dispatch, replies and events. Everything a client
 * sends is untrusted: a malformed request is answered with an error and the
 * connection stays; a request larger than QMP_MAX_REQUEST_SIZE is dropped
 * and answered the same way.
 */
#include "monitor/monitor.h"
#include "monitor/qmp.h"
#include "qemu/option.h"

#include <string.h>

#include "config-host.h"
#include "trace.h"

/* What a client that connects while another is served is told (docs/ccid.txt, section 14). */
#define QMP_BUSY_DESC "Monitor busy: another client is connected; try again once it disconnects"

struct Monitor {
    Chardev *chr;
    char *label;
    bool negotiated;         /* qmp_capabilities done on this connection */
    JSONStreamer streamer;
};

static GList *monitors;      /* Monitor * */

const char *qmp_error_class_name(int code)
{
    switch (code) {
    case QMP_ERROR_CLASS_COMMAND_NOT_FOUND: return "CommandNotFound";
    case QMP_ERROR_CLASS_DEVICE_NOT_FOUND:  return "DeviceNotFound";
    default:                                return "GenericError";
    }
}

/* ---- output ---- */

static void monitor_send(Monitor *mon, const QObject *msg)
{
    GString *out = g_string_new(NULL);

    qjson_append(out, msg);
    g_string_append(out, "\r\n");
    chr_fe_write(mon->chr, out->str, out->len);
    g_string_free(out, TRUE);
}

static void monitor_send_error(Monitor *mon, const QObject *id, int cls, const char *desc)
{
    g_autoptr(QObject) msg = qdict_new();
    QObject *err = qdict_new();

    trace_qmp_error(chardev_get_id(mon->chr), qmp_error_class_name(cls), desc);
    qdict_put(err, "class", qstring_new(qmp_error_class_name(cls)));
    qdict_put(err, "desc", qstring_new(desc));
    qdict_put(msg, "error", err);
    if (id) {
        qdict_put(msg, "id", qobject_copy(id));
    }
    monitor_send(mon, msg);
}

static void monitor_send_greeting(Monitor *mon)
{
    g_autoptr(QObject) msg = qdict_new();
    QObject *qmp = qdict_new();

    qdict_put(qmp, "version", qmp_version_info());
    /* No "oob": clients that see it ask for it, and it is not implemented. */
    qdict_put(qmp, "capabilities", qlist_new());
    qdict_put(msg, "QMP", qmp);
    monitor_send(mon, msg);
}

void qmp_event_send(const char *name, QObject *data)
{
    g_autoptr(QObject) msg = qdict_new();
    QObject *ts = qdict_new();
    gint64 now = g_get_real_time();
    unsigned clients = 0;

    qdict_put(ts, "seconds", qint_new(now / G_USEC_PER_SEC));
    qdict_put(ts, "microseconds", qint_new(now % G_USEC_PER_SEC));
    qdict_put(msg, "timestamp", ts);
    qdict_put(msg, "event", qstring_new(name));
    if (data) {
        qdict_put(msg, "data", data);
    }
    for (GList *l = monitors; l; l = l->next) {
        Monitor *mon = l->data;

        if (mon->negotiated && chr_fe_is_connected(mon->chr)) {
            monitor_send(mon, msg);
            clients++;
        }
    }
    trace_qmp_event(name, clients);
}

/* ---- requests ---- */

static bool qmp_check_args(const QmpCommand *cmd, const QObject *args, GError **errp)
{
    for (const QmpArg *a = cmd->args; a && a->name; a++) {
        QObject *v = qdict_get(args, a->name);

        if (!v) {
            if (!a->optional) {
                g_set_error(errp, VCCID_ERROR, 0, "Parameter '%s' is missing", a->name);
                return false;
            }
            continue;
        }
        /* An integer is a number too, as JSON has it. */
        if (a->type >= 0 && (QType)a->type != v->type &&
            !(a->type == QTYPE_DOUBLE && v->type == QTYPE_INT)) {
            g_set_error(errp, VCCID_ERROR, 0, "Invalid parameter type for '%s', expected: %s",
                        a->name, qtype_name(a->type));
            return false;
        }
    }
    if (cmd->extra_args) {
        return true;
    }
    for (guint i = 0; i < args->keys->len; i++) {
        const char *key = g_ptr_array_index(args->keys, i);
        const QmpArg *a = cmd->args;

        while (a && a->name && strcmp(a->name, key) != 0) {
            a++;
        }
        if (!a || !a->name) {
            g_set_error(errp, VCCID_ERROR, 0, "Parameter '%s' is unexpected", key);
            return false;
        }
    }
    return true;
}

static void monitor_dispatch(Monitor *mon, const QObject *req)
{
    const QObject *id = qdict_get(req, "id");
    QObject *exec = qdict_get(req, "execute");
    QObject *args = qdict_get(req, "arguments");
    g_autoptr(QObject) empty = qdict_new();
    g_autoptr(QObject) ret = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(QObject) reply = NULL;
    const QmpCommand *cmd;
    const char *name;

    for (guint i = 0; i < req->keys->len; i++) {
        const char *key = g_ptr_array_index(req->keys, i);

        if (strcmp(key, "execute") != 0 && strcmp(key, "arguments") != 0 &&
            strcmp(key, "id") != 0) {
            g_autofree char *desc = g_strdup_printf("QMP input member '%s' is unexpected", key);

            monitor_send_error(mon, id, QMP_ERROR_CLASS_GENERIC_ERROR, desc);
            return;
        }
    }
    if (!exec) {
        monitor_send_error(mon, id, QMP_ERROR_CLASS_GENERIC_ERROR,
                           "QMP input lacks member 'execute'");
        return;
    }
    if (exec->type != QTYPE_STRING) {
        monitor_send_error(mon, id, QMP_ERROR_CLASS_GENERIC_ERROR,
                           "QMP input member 'execute' must be a string");
        return;
    }
    if (args && args->type != QTYPE_DICT) {
        monitor_send_error(mon, id, QMP_ERROR_CLASS_GENERIC_ERROR,
                           "QMP input member 'arguments' must be an object");
        return;
    }
    name = exec->u.s;
    trace_qmp_request(chardev_get_id(mon->chr), name);
    if (strcmp(name, "qmp_capabilities") == 0) {
        if (mon->negotiated) {
            monitor_send_error(mon, id, QMP_ERROR_CLASS_COMMAND_NOT_FOUND,
                               "Capabilities negotiation is already complete, command ignored");
            return;
        }
    } else if (!mon->negotiated) {
        monitor_send_error(mon, id, QMP_ERROR_CLASS_COMMAND_NOT_FOUND,
                           "Expecting capabilities negotiation with 'qmp_capabilities'");
        return;
    }
    cmd = qmp_command_find(name);
    if (!cmd) {
        g_autofree char *desc = g_strdup_printf("The command %s has not been found", name);

        monitor_send_error(mon, id, QMP_ERROR_CLASS_COMMAND_NOT_FOUND, desc);
        return;
    }
    if (!args) {
        args = empty;
    }
    if (!qmp_check_args(cmd, args, &err)) {
        monitor_send_error(mon, id, err->code, err->message);
        return;
    }
    if (strcmp(name, "qmp_capabilities") == 0) {
        QObject *enable = qdict_get(args, "enable");

        if (enable && (enable->type != QTYPE_LIST || enable->items->len)) {
            monitor_send_error(mon, id, QMP_ERROR_CLASS_GENERIC_ERROR,
                               "Capability 'oob' is not available: this monitor has no "
                               "capabilities");
            return;
        }
        mon->negotiated = true;
        /* The negotiation is QMP's hello: the chardev's hello deadline ends here. */
        chr_fe_hello_done(mon->chr);
    } else {
        ret = cmd->fn(args, &err);
        if (err) {
            monitor_send_error(mon, id, err->domain == VCCID_ERROR ? err->code : 0,
                               err->message);
            return;
        }
    }
    reply = qdict_new();
    qdict_put(reply, "return", ret ? g_steal_pointer(&ret) : qdict_new());
    if (id) {
        qdict_put(reply, "id", qobject_copy(id));
    }
    monitor_send(mon, reply);
}

static void monitor_handle_text(void *opaque, const char *text, size_t len)
{
    Monitor *mon = opaque;
    g_autoptr(GError) err = NULL;
    g_autoptr(QObject) req = NULL;

    if (!text) {
        g_autofree char *desc = g_strdup_printf("JSON parse error, request larger than %d bytes",
                                                QMP_MAX_REQUEST_SIZE);

        monitor_send_error(mon, NULL, QMP_ERROR_CLASS_GENERIC_ERROR, desc);
        return;
    }
    req = qjson_parse(text, len, &err);
    if (!req) {
        g_autofree char *desc = g_strdup_printf("JSON parse error, %s", err->message);

        monitor_send_error(mon, NULL, QMP_ERROR_CLASS_GENERIC_ERROR, desc);
        return;
    }
    if (req->type != QTYPE_DICT) {
        monitor_send_error(mon, NULL, QMP_ERROR_CLASS_GENERIC_ERROR,
                           "QMP input must be a JSON object");
        return;
    }
    monitor_dispatch(mon, req);
}

/* ---- the chardev frontend ---- */

static void monitor_chr_read(void *opaque, const uint8_t *buf, size_t len)
{
    Monitor *mon = opaque;

    json_streamer_feed(&mon->streamer, buf, len);
}

static void monitor_chr_event(void *opaque, ChrEvent event)
{
    Monitor *mon = opaque;

    trace_qmp_client(chardev_get_id(mon->chr), event == CHR_EVENT_OPENED);
    mon->negotiated = false;
    json_streamer_reset(&mon->streamer);
    if (event == CHR_EVENT_OPENED) {
        monitor_send_greeting(mon);
    }
}

/*
 * QEMU leaves a client of a busy monitor waiting unanswered in the backlog;
 * here it is told why in QMP's words, an error object (instead of the
 * greeting), and closed.
 */
static void monitor_set_busy_reply(Monitor *mon)
{
    g_autoptr(QObject) msg = qdict_new();
    QObject *err = qdict_new();
    GString *out = g_string_new(NULL);

    qdict_put(err, "class", qstring_new(qmp_error_class_name(QMP_ERROR_CLASS_GENERIC_ERROR)));
    qdict_put(err, "desc", qstring_new(QMP_BUSY_DESC));
    qdict_put(msg, "error", err);
    qjson_append(out, msg);
    g_string_append(out, "\r\n");
    chr_fe_set_busy_reply(mon->chr, out->str, out->len);
    g_string_free(out, TRUE);
}

Monitor *monitor_new(Chardev *chr, GError **errp)
{
    Monitor *mon;

    if (!chr_fe_claim(chr, "monitor", errp)) {
        return NULL;
    }
    mon = g_new0(Monitor, 1);
    mon->chr = chr;
    json_streamer_init(&mon->streamer, QMP_MAX_REQUEST_SIZE, monitor_handle_text, mon);
    chr_fe_set_handlers(chr, monitor_chr_read, monitor_chr_event, mon);
    monitor_set_busy_reply(mon);
    monitors = g_list_append(monitors, mon);
    g_message("QMP monitor on %s", chardev_describe(chr));
    return mon;
}

Monitor *monitor_new_from_string(const char *optstr, GError **errp)
{
    g_autoptr(QemuOpts) opts = qemu_opts_parse(optstr, "chardev", errp);
    const char *id, *mode, *pretty, *unused;
    bool b;
    Chardev *chr;
    Monitor *mon;

    if (!opts) {
        return NULL;
    }
    id = opts->implied ? opts->implied : qemu_opt_take(opts, "chardev");
    mode = qemu_opt_take(opts, "mode");
    pretty = qemu_opt_take(opts, "pretty");
    unused = qemu_opts_first_unused(opts);
    if (unused) {
        g_set_error(errp, VCCID_ERROR, 0, "-mon %s: Invalid parameter '%s'", optstr, unused);
        return NULL;
    }
    if (!id) {
        g_set_error(errp, VCCID_ERROR, 0, "-mon %s: Parameter 'chardev' is missing", optstr);
        return NULL;
    }
    if (mode && strcmp(mode, "control") != 0) {
        g_set_error(errp, VCCID_ERROR, 0, "-mon %s: only mode=control (QMP) is supported; "
                    "vccid has no human monitor", optstr);
        return NULL;
    }
    if (pretty && (!qemu_opt_parse_bool(pretty, &b) || b)) {
        g_set_error(errp, VCCID_ERROR, 0, "-mon %s: only pretty=off is supported", optstr);
        return NULL;
    }
    chr = chardev_find(id);
    if (!chr) {
        g_set_error(errp, VCCID_ERROR, 0, "-mon %s: chardev '%s' not found", optstr, id);
        return NULL;
    }
    mon = monitor_new(chr, errp);
    if (!mon) {
        g_prefix_error(errp, "-mon %s: ", optstr);
    }
    return mon;
}

Monitor *monitor_new_qmp(const char *spec, GError **errp)
{
    static unsigned count;
    g_autofree char *id = g_strdup_printf("compat_monitor%u", count++);
    g_autofree char *chr_opts = NULL;
    const char *comma = strchr(spec, ',');
    g_autofree char *addr = g_strndup(spec, comma ? (size_t)(comma - spec) : strlen(spec));
    const char *rest = comma ? comma : "";
    Chardev *chr;
    Monitor *mon;

    if (g_str_has_prefix(addr, "unix:")) {
        g_autofree char *path = g_strdup(addr + 5);

        chr_opts = g_strdup_printf("socket,id=%s,path=%s%s", id, path, rest);
    } else if (g_str_has_prefix(addr, "tcp:")) {
        const char *hostport = addr + 4;
        const char *colon = strrchr(hostport, ':');
        g_autofree char *host = NULL;

        if (!colon) {
            g_set_error(errp, VCCID_ERROR, 0, "-qmp %s: expected tcp:HOST:PORT", spec);
            return NULL;
        }
        host = g_strndup(hostport, colon - hostport);
        chr_opts = g_strdup_printf("socket,id=%s,host=%s,port=%s%s", id, host, colon + 1, rest);
    } else {
        g_set_error(errp, VCCID_ERROR, 0, "-qmp %s: expected unix:PATH or tcp:HOST:PORT "
                    "(with ,server=on,wait=off)", spec);
        return NULL;
    }
    chr = chardev_new_from_string(chr_opts, errp);
    if (!chr) {
        g_prefix_error(errp, "-qmp %s: ", spec);
        return NULL;
    }
    mon = monitor_new(chr, errp);
    if (!mon) {
        g_prefix_error(errp, "-qmp %s: ", spec);
    }
    return mon;
}

void monitor_destroy_all(void)
{
    while (monitors) {
        Monitor *mon = monitors->data;

        monitors = g_list_delete_link(monitors, monitors);
        chr_fe_release(mon->chr);
        json_streamer_destroy(&mon->streamer);
        g_free(mon->label);
        g_free(mon);
    }
}
