/*
 * The QMP monitor over its real socket: the protocol (greeting,
 * negotiation, errors, malformed input), every command's success and error
 * paths, events, several monitors, and daemon life (-pidfile, -daemonize,
 * NOTIFY_SOCKET, quit and SIGTERM).
 *
 * The client here is small and strict: one line is one JSON message, and
 * replies are told from events by their members, as a QMP client must.
 */
#include "libqtest-vccid.h"
#include "ccid-host.h"
#include "usbredir-host.h"
#include "usb-ccid-common.h"
#include "qobject/qjson.h"
#include "proto/ccid.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define QMP_TIMEOUT_MS 10000

typedef struct QmpClient {
    int fd;
    GString *buf;
    GQueue *events;          /* QObject * not yet asked for */
    QObject *greeting;
} QmpClient;

/* The next line from the monitor, or NULL on EOF or after timeout_ms. */
static char *qmp_read_line(QmpClient *c, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        char *nl = memchr(c->buf->str, '\n', c->buf->len);
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        char chunk[4096];
        gint64 left;
        ssize_t n;

        if (nl) {
            char *line = g_strndup(c->buf->str, nl - c->buf->str);

            g_string_erase(c->buf, 0, nl - c->buf->str + 1);
            return line;
        }
        left = (deadline - g_get_monotonic_time()) / 1000;
        if (left <= 0 || poll(&pfd, 1, left) <= 0) {
            return NULL;
        }
        n = read(c->fd, chunk, sizeof(chunk));
        if (n <= 0) {
            return NULL;
        }
        g_string_append_len(c->buf, chunk, n);
    }
}

static QObject *qmp_read_msg(QmpClient *c, int timeout_ms)
{
    g_autofree char *line = qmp_read_line(c, timeout_ms);
    g_autoptr(GError) err = NULL;
    QObject *msg;

    if (!line) {
        return NULL;
    }
    /* QEMU ends each message with CRLF; so does vccid. */
    g_assert_true(g_str_has_suffix(line, "\r"));
    msg = qjson_parse(line, strlen(line), &err);
    g_assert_no_error(err);
    g_assert_cmpint(msg->type, ==, QTYPE_DICT);
    return msg;
}

static QmpClient *qmp_connect(const char *path)
{
    QmpClient *c = g_new0(QmpClient, 1);
    QObject *qmp, *version;

    /* vccid_start() waited for the usbredir socket; the monitor's comes a moment later. */
    c->fd = qtest_unix_connect_within(path, VCCID_START_TIMEOUT_MS);
    g_assert_cmpint(c->fd, >=, 0);
    c->buf = g_string_new(NULL);
    c->events = g_queue_new();
    c->greeting = qmp_read_msg(c, QMP_TIMEOUT_MS);
    g_assert_nonnull(c->greeting);
    qmp = qdict_get(c->greeting, "QMP");
    g_assert_nonnull(qmp);
    version = qdict_get(qmp, "version");
    g_assert_nonnull(qdict_get(qdict_get(version, "qemu"), "major"));
    g_assert_nonnull(qdict_get_str(version, "package"));
    /* No oob: clients would ask for it. */
    g_assert_cmpint(qdict_get(qmp, "capabilities")->type, ==, QTYPE_LIST);
    g_assert_cmpuint(qdict_get(qmp, "capabilities")->items->len, ==, 0);
    return c;
}

static void qmp_client_free(QmpClient *c)
{
    close(c->fd);
    g_string_free(c->buf, TRUE);
    g_queue_free_full(c->events, (GDestroyNotify)qobject_free);
    qobject_free(c->greeting);
    g_free(c);
}

static void qmp_send_raw(QmpClient *c, const void *buf, size_t len)
{
    g_assert_cmpint(write(c->fd, buf, len), ==, (ssize_t)len);
}

/* The next reply (events are kept for qmp_event()); fails the test on a timeout. */
static QObject *qmp_reply(QmpClient *c)
{
    for (;;) {
        QObject *msg = qmp_read_msg(c, QMP_TIMEOUT_MS);

        g_assert_nonnull(msg);
        if (qdict_get(msg, "event")) {
            QObject *ts = qdict_get(msg, "timestamp");

            g_assert_nonnull(qdict_get(ts, "seconds"));
            g_assert_nonnull(qdict_get(ts, "microseconds"));
            g_queue_push_tail(c->events, msg);
            continue;
        }
        g_assert_true(qdict_get(msg, "return") || qdict_get(msg, "error"));
        return msg;
    }
}

static QObject *qmp(QmpClient *c, const char *json)
{
    /* One write: after "quit" the monitor may be gone before a second one. */
    g_autofree char *line = g_strconcat(json, "\n", NULL);

    qmp_send_raw(c, line, strlen(line));
    return qmp_reply(c);
}

/* The command succeeds; returns its "return" (owned by the caller). */
static QObject *qmp_ok(QmpClient *c, const char *json)
{
    g_autoptr(QObject) r = qmp(c, json);
    QObject *ret = qdict_get(r, "return");

    if (!ret) {
        g_autofree char *s = qjson_to_string(r);

        g_error("%s failed: %s", json, s);
    }
    return qobject_copy(ret);
}

/* The command fails with class cls and a desc that contains desc_part. */
static void qmp_err(QmpClient *c, const char *json, const char *cls, const char *desc_part)
{
    g_autoptr(QObject) r = qmp(c, json);
    QObject *e = qdict_get(r, "error");
    g_autofree char *s = qjson_to_string(r);

    if (!e) {
        g_error("%s should fail but gave %s", json, s);
    }
    g_assert_cmpstr(qdict_get_str(e, "class"), ==, cls);
    if (!strstr(qdict_get_str(e, "desc"), desc_part)) {
        g_error("%s: expected '%s' in %s", json, desc_part, s);
    }
}

/* The command succeeds; what it returns is not looked at. */
static void qmp_cmd(QmpClient *c, const char *json)
{
    qobject_free(qmp_ok(c, json));
}

static void qmp_negotiate(QmpClient *c)
{
    qmp_cmd(c, "{\"execute\": \"qmp_capabilities\"}");
}

/* The next event called name (others before it are dropped); NULL after timeout_ms. */
static QObject *qmp_event(QmpClient *c, const char *name, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        QObject *msg = g_queue_pop_head(c->events);
        gint64 left;

        if (msg && g_strcmp0(qdict_get_str(msg, "event"), name) == 0) {
            return msg;
        }
        if (msg) {
            qobject_free(msg);
            continue;
        }
        left = (deadline - g_get_monotonic_time()) / 1000;
        if (left <= 0) {
            return NULL;
        }
        msg = qmp_read_msg(c, left);
        if (!msg) {
            return NULL;
        }
        g_assert_nonnull(qdict_get(msg, "event"));
        g_queue_push_tail(c->events, msg);
    }
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpClient, qmp_client_free)

static char *qmp_path(VccidProcess *v)
{
    return g_build_filename(v->tmpdir, "qmp.sock", NULL);
}

static const char *const qmp_default_args[] = {
    "-qmp", "unix:@DIR@/qmp.sock,server=on,wait=off",
    "-device", "usb-ccid,id=ccid",
    "-device", "ccid-card-emulated,id=card,backend=certificates,db=@DB@,"
               "cert1=id-cert,cert2=signing-cert,cert3=encryption-cert",
    NULL,
};

static VccidProcess *start_with_qmp(QmpClient **c)
{
    VccidProcess *v = vccid_start(qmp_default_args);
    g_autofree char *path = qmp_path(v);

    *c = qmp_connect(path);
    return v;
}

/* vccid with qmp_default_args and a client on its monitor, not yet negotiated. */
typedef struct QmpFixture {
    VccidProcess *v;
    QmpClient *c;
} QmpFixture;

typedef struct QmpCase {
    const char *path;
    void (*fn)(QmpFixture *f, gconstpointer data);
} QmpCase;

static void qmp_fixture_setup(QmpFixture *f, gconstpointer data)
{
    f->v = start_with_qmp(&f->c);
}

/* The daemon stops (cleanly) with the client still connected. */
static void qmp_fixture_teardown(QmpFixture *f, gconstpointer data)
{
    vccid_stop(f->v);
    qmp_client_free(f->c);
}

/* ---- protocol ---- */

static void test_negotiation(QmpFixture *f, gconstpointer data)
{
    g_autoptr(QObject) r = NULL;

    qmp_err(f->c, "{\"execute\": \"query-status\"}", "CommandNotFound",
            "Expecting capabilities negotiation with 'qmp_capabilities'");
    qmp_err(f->c, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}",
            "GenericError", "oob");
    /* id of any JSON type comes back as it was sent, on errors too. */
    r = qmp(f->c, "{\"execute\": \"query-version\", \"id\": {\"a\": [1, \"x\", null]}}");
    g_assert_nonnull(qdict_get(r, "error"));
    g_assert_cmpint(qdict_get(r, "id")->type, ==, QTYPE_DICT);
    g_clear_pointer(&r, qobject_free);
    r = qmp(f->c, "{\"execute\": \"qmp_capabilities\", \"id\": 42}");
    g_assert_nonnull(qdict_get(r, "return"));
    g_assert_cmpint(qdict_get(r, "id")->u.i, ==, 42);
    g_clear_pointer(&r, qobject_free);
    qmp_err(f->c, "{\"execute\": \"qmp_capabilities\"}", "CommandNotFound",
            "Capabilities negotiation is already complete");
    r = qmp(f->c, "{\"execute\": \"query-status\", \"id\": \"s\"}");
    g_assert_cmpstr(qdict_get_str(r, "id"), ==, "s");
    g_assert_cmpstr(qdict_get_str(qdict_get(r, "return"), "status"), ==, "running");
    g_assert_true(qdict_get(qdict_get(r, "return"), "running")->u.b);
    qmp_err(f->c, "{\"execute\": \"no-such-command\"}", "CommandNotFound",
            "The command no-such-command has not been found");
}

static void test_malformed(QmpFixture *f, gconstpointer data)
{
    g_autoptr(GString) big = g_string_new("{\"execute\": \"query-status\", \"id\": \"");
    g_autoptr(GString) deep = g_string_new(NULL);
    static const char nul_bytes[] = "{\"execute\": \"x\0y\"}\n";
    g_autoptr(QObject) r = NULL;

    qmp_negotiate(f->c);
    qmp_err(f->c, "{\"execute\": }", "GenericError", "JSON parse error");
    qmp_err(f->c, "}", "GenericError", "JSON parse error");
    qmp_err(f->c, "{bad", "GenericError", "JSON parse error");
    /* "{bad" leaves "ad" behind, a second error. */
    g_clear_pointer(&r, qobject_free);
    r = qmp_reply(f->c);
    g_assert_nonnull(qdict_get(r, "error"));
    qmp_err(f->c, "[1, 2]", "GenericError", "QMP input must be a JSON object");
    qmp_err(f->c, "\"str\"", "GenericError", "QMP input must be a JSON object");
    qmp_err(f->c, "{}", "GenericError", "QMP input lacks member 'execute'");
    qmp_err(f->c, "{\"execute\": 1}", "GenericError", "'execute' must be a string");
    qmp_err(f->c, "{\"execute\": \"quit\", \"arguments\": []}", "GenericError",
            "'arguments' must be an object");
    qmp_err(f->c, "{\"execute\": \"quit\", \"exec-oob\": \"quit\"}", "GenericError",
            "QMP input member 'exec-oob' is unexpected");
    qmp_err(f->c, "{\"execute\": \"x\", \"execute\": \"y\"}", "GenericError", "JSON parse error");
    qmp_err(f->c, "{\"execute\": \"\\ud800\"}", "GenericError", "JSON parse error");
    qmp_send_raw(f->c, nul_bytes, sizeof(nul_bytes) - 1);
    g_clear_pointer(&r, qobject_free);
    r = qmp_reply(f->c);
    g_assert_nonnull(qdict_get(r, "error"));

    /* Nesting past the parser's limit, and a request past the size limit. */
    for (int i = 0; i < 1000; i++) {
        g_string_append(deep, "[");
    }
    for (int i = 0; i < 1000; i++) {
        g_string_append(deep, "]");
    }
    qmp_err(f->c, deep->str, "GenericError", "JSON parse error");
    while (big->len < 70 * 1024) {
        g_string_append(big, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    }
    g_string_append(big, "\"}");
    qmp_err(f->c, big->str, "GenericError", "larger than");

    /* After all that, the same connection still works. */
    qmp_cmd(f->c, "{\"execute\": \"query-status\"}");
    g_assert_true(vccid_is_running(f->v));
}

static void test_arguments(QmpFixture *f, gconstpointer data)
{

    qmp_negotiate(f->c);
    qmp_err(f->c, "{\"execute\": \"query-version\", \"arguments\": {\"x\": 1}}", "GenericError",
            "Parameter 'x' is unexpected");
    qmp_err(f->c, "{\"execute\": \"device_del\"}", "GenericError", "Parameter 'id' is missing");
    qmp_err(f->c, "{\"execute\": \"device_del\", \"arguments\": {\"id\": 5}}", "GenericError",
            "Invalid parameter type for 'id', expected: string");
    qmp_err(f->c, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/machine\"}}",
            "GenericError", "Parameter 'property' is missing");
}

static void test_queries(QmpFixture *f, gconstpointer data)
{
    g_autoptr(QObject) ver = NULL;
    g_autoptr(QObject) cmds = NULL;
    static const char *const expected[] = {
        "qmp_capabilities", "query-version", "query-commands", "query-status", "quit",
        "device_add", "device_del", "chardev-add", "chardev-remove", "object-add",
        "object-del", "qom-list", "qom-get", "vccid-export-add", "vccid-export-del",
        "query-vccid-exports", "query-vccid-readers",
    };

    qmp_negotiate(f->c);
    ver = qmp_ok(f->c, "{\"execute\": \"query-version\"}");
    g_assert_cmpint(qdict_get(qdict_get(ver, "qemu"), "minor")->type, ==, QTYPE_INT);
    g_assert_true(g_str_has_prefix(qdict_get_str(ver, "package"), "vccid "));
    cmds = qmp_ok(f->c, "{\"execute\": \"query-commands\"}");
    g_assert_cmpuint(cmds->items->len, ==, G_N_ELEMENTS(expected));
    for (size_t i = 0; i < G_N_ELEMENTS(expected); i++) {
        bool found = false;

        for (guint j = 0; j < cmds->items->len; j++) {
            found |= g_strcmp0(qdict_get_str(cmds->items->pdata[j], "name"), expected[i]) == 0;
        }
        g_assert_true(found);
    }
}

/* ---- devices ---- */

static QObject *reader_info(QmpClient *c, const char *id)
{
    g_autoptr(QObject) readers = qmp_ok(c, "{\"execute\": \"query-vccid-readers\"}");

    for (guint i = 0; i < readers->items->len; i++) {
        if (g_strcmp0(qdict_get_str(readers->items->pdata[i], "id"), id) == 0) {
            return qobject_copy(readers->items->pdata[i]);
        }
    }
    return NULL;
}

/* A NotifySlotChange saying present (earlier ones, from before, are skipped). */
static void wait_notify(CcidHost *h, bool present)
{
    gint64 deadline = g_get_monotonic_time() + QMP_TIMEOUT_MS * 1000;
    GByteArray *n;

    while ((n = next_slot_notify(h, deadline))) {
        guint8 state = n->data[1];

        g_byte_array_unref(n);
        if ((state & 1) == present) {
            /* bmSlotICCState's change bit: the guest learns that something happened. */
            g_assert_cmpuint(state & 2, ==, 2);
            return;
        }
    }
    g_error("no NotifySlotChange with the card %s", present ? "present" : "absent");
}

static void test_card_del_add(QmpFixture *f, gconstpointer data)
{
    CcidHost *h = ccid_host_open(f->v->sock_path);
    g_autoptr(QObject) ev = NULL;
    g_autoptr(QObject) info = NULL;
    g_autoptr(GByteArray) atr = NULL;
    g_autoptr(GByteArray) sig = NULL;
    g_autofree char *pt_sock = g_build_filename(f->v->tmpdir, "pt.sock", NULL);
    g_autofree char *cmd = NULL;
    QObject *cards;

    qmp_negotiate(f->c);
    atr = ccid_power_on(h);
    g_assert_cmpint(urh_start_interrupt_receiving(h->usb, h->ep_int_in), ==,
                    usb_redir_success);
    info = reader_info(f->c, "ccid");
    cards = qdict_get(info, "cards");
    g_assert_cmpuint(cards->items->len, ==, 1);
    g_assert_cmpstr(qdict_get_str(cards->items->pdata[0], "card"), ==, "card");
    g_assert_true(qdict_get(cards->items->pdata[0], "present")->u.b);
    g_assert_nonnull(qdict_get_str(cards->items->pdata[0], "atr"));
    g_assert_cmpuint(qdict_size(qdict_get(info, "exports")->items->pdata[0]), >, 0);

    qmp_err(f->c, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"nope\"}}",
            "DeviceNotFound", "Device 'nope' not found");
    qmp_cmd(f->c, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"card\"}}");
    ev = qmp_event(f->c, "DEVICE_DELETED", QMP_TIMEOUT_MS);
    g_assert_nonnull(ev);
    g_assert_cmpstr(qdict_get_str(qdict_get(ev, "data"), "device"), ==, "card");
    g_assert_cmpstr(qdict_get_str(qdict_get(ev, "data"), "path"), ==, "/machine/peripheral/card");
    g_clear_pointer(&ev, qobject_free);
    /* The host hears of it on the interrupt endpoint. */
    wait_notify(h, false);
    g_clear_pointer(&info, qobject_free);
    info = reader_info(f->c, "ccid");
    g_assert_cmpuint(qdict_get(info, "cards")->items->len, ==, 0);

    /* -device's errors, word for word. */
    qmp_err(f->c, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"no-such\"}}",
            "GenericError", "'no-such' is not a valid device model name");
    qmp_err(f->c, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"usb-ccid\", "
            "\"id\": \"ccid\"}}", "GenericError", "Duplicate device ID 'ccid'");
    qmp_err(f->c, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"usb-ccid\", "
            "\"nosuchprop\": 1}}", "GenericError", "Property 'usb-ccid.nosuchprop' not found");
    qmp_err(f->c, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"usb-ccid\", "
            "\"vendorid\": {}}}", "GenericError", "Invalid parameter type for 'vendorid'");
    qmp_err(f->c, "{\"execute\": \"device_add\", \"arguments\": {\"id\": \"x\"}}",
            "GenericError", "Parameter 'driver' is missing");

    /* A passthru card on a chardev made over QMP: in the slot, no card yet. */
    cmd = g_strdup_printf("{\"execute\": \"chardev-add\", \"arguments\": {\"id\": \"pt\", "
                          "\"backend\": {\"type\": \"socket\", \"data\": {\"addr\": "
                          "{\"type\": \"unix\", \"data\": {\"path\": \"%s\"}}, "
                          "\"server\": true, \"wait\": false}}}}", pt_sock);
    qmp_cmd(f->c, cmd);
    g_assert_true(g_file_test(pt_sock, G_FILE_TEST_EXISTS));
    qmp_cmd(f->c, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": "
            "\"ccid-card-passthru\", \"id\": \"pt0\", \"chardev\": \"pt\"}}");
    g_clear_pointer(&info, qobject_free);
    info = reader_info(f->c, "ccid");
    cards = qdict_get(info, "cards");
    g_assert_cmpuint(cards->items->len, ==, 1);
    g_assert_false(qdict_get(cards->items->pdata[0], "present")->u.b);
    g_assert_cmpstr(qdict_get_str(qdict_get(cards->items->pdata[0], "peers")->items->pdata[0],
                                  "chardev"), ==, "pt");
    qmp_err(f->c, "{\"execute\": \"chardev-remove\", \"arguments\": {\"id\": \"pt\"}}",
            "GenericError", "Chardev 'pt' is busy");
    qmp_cmd(f->c, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"pt0\"}}");
    ev = qmp_event(f->c, "DEVICE_DELETED", QMP_TIMEOUT_MS);
    g_assert_cmpstr(qdict_get_str(qdict_get(ev, "data"), "device"), ==, "pt0");
    qmp_cmd(f->c, "{\"execute\": \"chardev-remove\", \"arguments\": {\"id\": \"pt\"}}");
    g_assert_false(g_file_test(pt_sock, G_FILE_TEST_EXISTS));

    /* The emulated card again, on the same database: it comes back. */
    g_free(cmd);
    g_clear_pointer(&ev, qobject_free);
    cmd = g_strdup_printf("{\"execute\": \"device_add\", \"arguments\": {\"driver\": "
                          "\"ccid-card-emulated\", \"id\": \"card2\", \"backend\": "
                          "\"certificates\", \"db\": \"sql:%s\", \"cert1\": \"id-cert\", "
                          "\"cert2\": \"signing-cert\", \"cert3\": \"encryption-cert\"}}",
                          f->v->db_dir);
    qmp_cmd(f->c, cmd);
    ev = qmp_event(f->c, "VCCID_CARD_INSERTED", QMP_TIMEOUT_MS);
    g_assert_nonnull(ev);
    g_assert_cmpstr(qdict_get_str(qdict_get(ev, "data"), "card"), ==, "card2");
    wait_notify(h, true);
    g_byte_array_unref(atr);
    atr = ccid_power_on(h);
    /* The card that came back signs. */
    select_pki(h, 0);
    sig = sign_256(h);
    g_assert_cmphex(apdu_sw(sig), ==, 0x9000);
    g_assert_cmpuint(sig->len, ==, 258);
    ccid_host_free(h);
}

static void test_emulated_other_db(QmpFixture *f, gconstpointer data)
{

    qmp_negotiate(f->c);
    qmp_cmd(f->c, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"card\"}}");
    qmp_err(f->c, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": "
            "\"ccid-card-emulated\", \"backend\": \"certificates\", \"db\": \"sql:/nonexistent\", "
            "\"cert1\": \"a\", \"cert2\": \"b\", \"cert3\": \"c\"}}", "GenericError",
            "libcacard");
}

static void test_reader_del(QmpFixture *f, gconstpointer data)
{
    CcidHost *h = ccid_host_open(f->v->sock_path);
    g_autoptr(QObject) ev1 = NULL;
    g_autoptr(QObject) ev2 = NULL;
    g_autoptr(QObject) exports = NULL;
    unsigned before = urh_device_disconnect_count(h->usb);

    qmp_negotiate(f->c);
    qmp_cmd(f->c, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"ccid\"}}");
    /* The card on the reader's bus goes first, then the reader. */
    ev1 = qmp_event(f->c, "DEVICE_DELETED", QMP_TIMEOUT_MS);
    ev2 = qmp_event(f->c, "DEVICE_DELETED", QMP_TIMEOUT_MS);
    g_assert_cmpstr(qdict_get_str(qdict_get(ev1, "data"), "device"), ==, "card");
    g_assert_cmpstr(qdict_get_str(qdict_get(ev2, "data"), "device"), ==, "ccid");
    /* The host is told the device left (device_disconnect), not cut off. */
    for (int i = 0; i < 100 && urh_device_disconnect_count(h->usb) == before; i++) {
        urh_iterate(h->usb, 100);
    }
    g_assert_cmpuint(urh_device_disconnect_count(h->usb), ==, before + 1);
    exports = qmp_ok(f->c, "{\"execute\": \"query-vccid-exports\"}");
    g_assert_cmpuint(exports->items->len, ==, 0);
    g_assert_true(vccid_is_running(f->v));
    ccid_host_free(h);
}

/* ---- chardevs, objects, qom ---- */

static void test_chardev(QmpFixture *f, gconstpointer data)
{
    g_autofree char *path = g_build_filename(f->v->tmpdir, "c1.sock", NULL);
    g_autofree char *add = g_strdup_printf(
        "{\"execute\": \"chardev-add\", \"arguments\": {\"id\": \"c1\", \"backend\": "
        "{\"type\": \"socket\", \"data\": {\"addr\": {\"type\": \"unix\", \"data\": "
        "{\"path\": \"%s\"}}, \"server\": true, \"wait\": false}}}}", path);
    uint16_t port = qtest_free_tcp_port();
    g_autofree char *add_tcp = g_strdup_printf(
        "{\"execute\": \"chardev-add\", \"arguments\": {\"id\": \"t1\", \"backend\": "
        "{\"type\": \"socket\", \"data\": {\"addr\": {\"type\": \"inet\", \"data\": "
        "{\"host\": \"127.0.0.1\", \"port\": \"%u\"}}, \"server\": true, \"wait\": false}}}}",
        port);

    qmp_negotiate(f->c);
    qmp_cmd(f->c, add);
    g_assert_true(g_file_test(path, G_FILE_TEST_EXISTS));
    qmp_err(f->c, add, "GenericError", "Chardev 'c1' already exists");
    qmp_cmd(f->c, add_tcp);
    qmp_err(f->c, "{\"execute\": \"chardev-add\", \"arguments\": {\"id\": \"p\", \"backend\": "
            "{\"type\": \"pty\", \"data\": {}}}}", "GenericError", "not supported");
    qmp_err(f->c, "{\"execute\": \"chardev-add\", \"arguments\": {\"id\": \"p\", \"backend\": "
            "{\"type\": \"socket\", \"data\": {\"addr\": {\"type\": \"unix\", \"data\": "
            "{\"path\": \"/x\"}}, \"bogus\": 1}}}}", "GenericError",
            "Parameter 'backend.data.bogus' is unexpected");
    qmp_err(f->c, "{\"execute\": \"chardev-add\", \"arguments\": {\"id\": \"p\", \"backend\": "
            "{\"type\": \"socket\", \"data\": {\"addr\": {\"type\": \"inet\", \"data\": "
            "{\"host\": \"127.0.0.1\", \"port\": \"1\"}}, \"server\": true, "
            "\"tls-creds\": \"nope\"}}}}", "GenericError", "nope");
    qmp_err(f->c, "{\"execute\": \"chardev-add\", \"arguments\": {\"id\": \"p\"}}",
            "GenericError", "Parameter 'backend' is missing");
    qmp_err(f->c, "{\"execute\": \"chardev-remove\", \"arguments\": {\"id\": \"nope\"}}",
            "GenericError", "Chardev 'nope' not found");
    /* The monitor's own chardev is in use. */
    qmp_err(f->c, "{\"execute\": \"chardev-remove\", \"arguments\": {\"id\": \"compat_monitor0\"}}",
            "GenericError", "is busy");
    qmp_cmd(f->c, "{\"execute\": \"chardev-remove\", \"arguments\": {\"id\": \"c1\"}}");
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    qmp_cmd(f->c, "{\"execute\": \"chardev-remove\", \"arguments\": {\"id\": \"t1\"}}");
}

static void test_object(QmpFixture *f, gconstpointer data)
{
    g_autoptr(QObject) list = NULL;

    qmp_negotiate(f->c);
    qmp_cmd(f->c, "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"authz-list\", "
            "\"id\": \"auth0\", \"policy\": \"deny\", \"rules\": [{\"match\": \"CN=*\", "
            "\"policy\": \"allow\", \"format\": \"glob\"}]}}");
    qmp_cmd(f->c, "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"authz-simple\", "
            "\"id\": \"auth1\", \"identity\": \"CN=client\"}}");
    list = qmp_ok(f->c, "{\"execute\": \"qom-list\", \"arguments\": {\"path\": \"/objects\"}}");
    g_assert_cmpuint(list->items->len, ==, 3);
    qmp_err(f->c, "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"authz-simple\", "
            "\"id\": \"auth1\", \"identity\": \"x\"}}", "GenericError", "duplicate");
    qmp_err(f->c, "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"no-such\", "
            "\"id\": \"o\"}}", "GenericError", "invalid object type");
    qmp_err(f->c, "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"authz-list\", "
            "\"id\": \"o\", \"rules\": [{\"policy\": \"allow\"}]}}", "GenericError",
            "Parameter 'rules.0.match' is missing");
    qmp_err(f->c, "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"authz-list\"}}",
            "GenericError", "Parameter 'id' is missing");
    qmp_err(f->c, "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"tls-creds-x509\", "
            "\"id\": \"t\", \"dir\": \"/nonexistent\", \"endpoint\": \"server\"}}",
            "GenericError", "nonexistent");
    qmp_err(f->c, "{\"execute\": \"object-del\", \"arguments\": {\"id\": \"nope\"}}",
            "GenericError", "object 'nope' not found");
    qmp_cmd(f->c, "{\"execute\": \"object-del\", \"arguments\": {\"id\": \"auth0\"}}");
    qmp_cmd(f->c, "{\"execute\": \"object-del\", \"arguments\": {\"id\": \"auth1\"}}");
}

/* TLS credentials over QMP, a TLS chardev using them, and object-del refusing. */
static void test_tls_objects(QmpFixture *f, gconstpointer data)
{
    g_autofree char *certs = g_build_filename(f->v->tmpdir, "certs", NULL);
    g_autofree char *script = g_build_filename(g_getenv("VCCID_SOURCE_ROOT"), "tests", "tls",
                                               "make-certs.sh", NULL);
    const char *argv[] = { "sh", script, certs, NULL };
    g_autofree char *add_obj = NULL;
    g_autofree char *add_chr = NULL;
    g_autoptr(GError) err = NULL;
    int status;
    g_autofree char *certtool = g_find_program_in_path("certtool");

    if (!certtool) {
        g_test_skip("certtool (gnutls-bin) is not installed");
        return;
    }
    g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL,
                 &status, &err);
    g_assert_no_error(err);
    g_assert_cmpint(status, ==, 0);
    qmp_negotiate(f->c);
    add_obj = g_strdup_printf("{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": "
                              "\"tls-creds-x509\", \"id\": \"tls0\", \"dir\": \"%s/server\", "
                              "\"endpoint\": \"server\", \"verify-peer\": true}}", certs);
    qmp_cmd(f->c, add_obj);
    qmp_cmd(f->c, "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": "
            "\"authz-simple\", \"id\": \"auth0\", \"identity\": "
            "\"CN=client,O=vccid test,C=GB\"}}");
    add_chr = g_strdup_printf(
        "{\"execute\": \"chardev-add\", \"arguments\": {\"id\": \"t\", \"backend\": "
        "{\"type\": \"socket\", \"data\": {\"addr\": {\"type\": \"inet\", \"data\": "
        "{\"host\": \"127.0.0.1\", \"port\": \"%u\"}}, \"server\": true, \"wait\": false, "
        "\"tls-creds\": \"tls0\", \"tls-authz\": \"auth0\"}}}}", qtest_free_tcp_port());
    qmp_cmd(f->c, add_chr);
    qmp_err(f->c, "{\"execute\": \"object-del\", \"arguments\": {\"id\": \"tls0\"}}",
            "GenericError", "object 'tls0' is in use, can not be deleted");
    qmp_err(f->c, "{\"execute\": \"object-del\", \"arguments\": {\"id\": \"auth0\"}}",
            "GenericError", "is in use");
    qmp_cmd(f->c, "{\"execute\": \"chardev-remove\", \"arguments\": {\"id\": \"t\"}}");
    qmp_cmd(f->c, "{\"execute\": \"object-del\", \"arguments\": {\"id\": \"auth0\"}}");
    qmp_cmd(f->c, "{\"execute\": \"object-del\", \"arguments\": {\"id\": \"tls0\"}}");
}

static void test_qom(QmpFixture *f, gconstpointer data)
{
    g_autoptr(QObject) list = NULL;
    g_autoptr(QObject) props = NULL;
    g_autoptr(QObject) val = NULL;
    bool found = false;

    qmp_negotiate(f->c);
    list = qmp_ok(f->c, "{\"execute\": \"qom-list\", \"arguments\": {\"path\": "
                  "\"/machine/peripheral\"}}");
    for (guint i = 0; i < list->items->len; i++) {
        found |= g_strcmp0(qdict_get_str(list->items->pdata[i], "name"), "card") == 0 &&
                 g_strcmp0(qdict_get_str(list->items->pdata[i], "type"),
                           "child<ccid-card-emulated>") == 0;
    }
    g_assert_true(found);
    props = qmp_ok(f->c, "{\"execute\": \"qom-list\", \"arguments\": {\"path\": "
                   "\"/machine/peripheral/ccid\"}}");
    g_assert_cmpuint(props->items->len, >, 3);
    val = qmp_ok(f->c, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": "
                 "\"/machine/peripheral/ccid\", \"property\": \"type\"}}");
    g_assert_cmpstr(val->u.s, ==, "usb-ccid");
    g_clear_pointer(&val, qobject_free);
    val = qmp_ok(f->c, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": "
                 "\"/machine/peripheral/card\", \"property\": \"cert2\"}}");
    g_assert_cmpstr(val->u.s, ==, "signing-cert");
    g_clear_pointer(&val, qobject_free);
    val = qmp_ok(f->c, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": "
                 "\"/machine/peripheral/card\", \"property\": \"slot\"}}");
    g_assert_cmpint(val->type, ==, QTYPE_INT);
    g_assert_cmpint(val->u.i, ==, 0);
    qmp_err(f->c, "{\"execute\": \"qom-list\", \"arguments\": {\"path\": "
            "\"/machine/peripheral/x\"}}",
            "DeviceNotFound", "Device '/machine/peripheral/x' not found");
    qmp_err(f->c, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/machine/peripheral/x\", "
            "\"property\": \"type\"}}", "DeviceNotFound", "not found");
    qmp_err(f->c, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": "
            "\"/machine/peripheral/ccid\", \"property\": \"nope\"}}", "GenericError",
            "Property 'usb-ccid.nope' not found");
}

/* ---- exports ---- */

static void test_exports(QmpFixture *f, gconstpointer data)
{
    g_autoptr(QObject) ev = NULL;
    g_autoptr(QObject) list = NULL;
    g_autofree char *path = g_build_filename(f->v->tmpdir, "e1.sock", NULL);
    g_autofree char *add = g_strdup_printf(
        "{\"execute\": \"chardev-add\", \"arguments\": {\"id\": \"e1c\", \"backend\": "
        "{\"type\": \"socket\", \"data\": {\"addr\": {\"type\": \"unix\", \"data\": "
        "{\"path\": \"%s\"}}, \"server\": true, \"wait\": false}}}}", path);
    UsbredirHost *h;
    g_autoptr(GError) err = NULL;

    qmp_negotiate(f->c);
    qmp_cmd(f->c, add);
    qmp_cmd(f->c, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"usb-ccid\", "
            "\"id\": \"r1\"}}");
    qmp_err(f->c, "{\"execute\": \"vccid-export-add\", \"arguments\": {\"type\": \"usbredir\", "
            "\"id\": \"e1\", \"chardev\": \"nope\", \"device\": \"r1\"}}", "GenericError",
            "chardev 'nope' not found");
    qmp_err(f->c, "{\"execute\": \"vccid-export-add\", \"arguments\": {\"type\": \"nbd\", "
            "\"id\": \"e1\", \"chardev\": \"e1c\"}}", "GenericError", "unknown export type");
    qmp_err(f->c, "{\"execute\": \"vccid-export-add\", \"arguments\": {\"type\": \"usbredir\", "
            "\"id\": \"e1\", \"chardev\": \"e1c\", \"device\": \"card\"}}", "GenericError",
            "names no USB device");
    qmp_err(f->c, "{\"execute\": \"vccid-export-add\", \"arguments\": {\"type\": \"usbredir\", "
            "\"chardev\": \"e1c\"}}", "GenericError", "Parameter 'id' is missing");
    qmp_cmd(f->c, "{\"execute\": \"vccid-export-add\", \"arguments\": {\"type\": \"usbredir\", "
            "\"id\": \"e1\", \"chardev\": \"e1c\", \"device\": \"r1\"}}");
    qmp_err(f->c, "{\"execute\": \"vccid-export-add\", \"arguments\": {\"type\": \"usbredir\", "
            "\"id\": \"e1\", \"chardev\": \"redir\", \"device\": \"ccid\"}}", "GenericError",
            "already exists");
    list = qmp_ok(f->c, "{\"execute\": \"query-vccid-exports\"}");
    g_assert_cmpuint(list->items->len, ==, 2);

    /* A host connects: the event names the export; it gets the reader. */
    h = urh_connect(path, QMP_TIMEOUT_MS, &err);
    g_assert_no_error(err);
    ev = qmp_event(f->c, "VCCID_EXPORT_PEER_CONNECTED", QMP_TIMEOUT_MS);
    g_assert_nonnull(ev);
    g_assert_cmpstr(qdict_get_str(qdict_get(ev, "data"), "id"), ==, "e1");
    g_assert_true(urh_wait_device(h, QMP_TIMEOUT_MS) || urh_device_connected(h));
    urh_free(h);
    g_clear_pointer(&ev, qobject_free);
    ev = qmp_event(f->c, "VCCID_EXPORT_PEER_DISCONNECTED", QMP_TIMEOUT_MS);
    g_assert_nonnull(ev);
    g_assert_cmpstr(qdict_get_str(qdict_get(ev, "data"), "id"), ==, "e1");

    qmp_err(f->c, "{\"execute\": \"vccid-export-del\", \"arguments\": {\"id\": \"nope\"}}",
            "GenericError", "Export 'nope' is not found");
    /* Deleted under a host: the device leaves (device_disconnect), then the connection. */
    h = urh_connect(path, QMP_TIMEOUT_MS, &err);
    g_assert_no_error(err);
    g_assert_true(urh_wait_device(h, QMP_TIMEOUT_MS) || urh_device_connected(h));
    qmp_cmd(f->c, "{\"execute\": \"vccid-export-del\", \"arguments\": {\"id\": \"e1\"}}");
    for (int i = 0; i < 100 && urh_peer_alive(h); i++) {
        urh_iterate(h, 100);
    }
    g_assert_cmpuint(urh_device_disconnect_count(h), ==, 1);
    g_assert_false(urh_peer_alive(h));
    urh_free(h);
    /* The chardev serves the next export and its host afresh. */
    qmp_cmd(f->c, "{\"execute\": \"vccid-export-add\", \"arguments\": {\"type\": \"usbredir\", "
            "\"id\": \"e2\", \"chardev\": \"e1c\", \"device\": \"r1\"}}");
    h = urh_connect(path, QMP_TIMEOUT_MS, &err);
    g_assert_no_error(err);
    g_assert_true(urh_wait_device(h, QMP_TIMEOUT_MS) || urh_device_connected(h));
    urh_free(h);
    qmp_cmd(f->c, "{\"execute\": \"vccid-export-del\", \"arguments\": {\"id\": \"e2\"}}");
    g_clear_pointer(&list, qobject_free);
    list = qmp_ok(f->c, "{\"execute\": \"query-vccid-exports\"}");
    g_assert_cmpuint(list->items->len, ==, 1);

    /* A USB/IP export too; deleting its reader ends every export of it. */
    qmp_cmd(f->c, "{\"execute\": \"vccid-export-add\", \"arguments\": {\"type\": \"usbip\", "
            "\"id\": \"u1\", \"device\": \"r1\", \"port\": 0}}");
    qmp_cmd(f->c, "{\"execute\": \"vccid-export-add\", \"arguments\": {\"type\": \"usbredir\", "
            "\"id\": \"e3\", \"chardev\": \"e1c\", \"device\": \"r1\"}}");
    g_clear_pointer(&list, qobject_free);
    list = qmp_ok(f->c, "{\"execute\": \"query-vccid-exports\"}");
    g_assert_cmpuint(list->items->len, ==, 3);
    qmp_cmd(f->c, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"r1\"}}");
    g_clear_pointer(&list, qobject_free);
    list = qmp_ok(f->c, "{\"execute\": \"query-vccid-exports\"}");
    g_assert_cmpuint(list->items->len, ==, 1);
    g_assert_cmpstr(qdict_get_str(list->items->pdata[0], "device"), ==, "ccid");
}

/* ---- monitors ---- */

static void test_several_monitors(void)
{
    static const char *const args[] = {
        "-qmp", "unix:@DIR@/qmp.sock,server=on,wait=off",
        "-chardev", "socket,id=mon1,path=@DIR@/mon1.sock,server=on,wait=off",
        "-mon", "chardev=mon1,mode=control",
        "-device", "usb-ccid,id=ccid",
        NULL,
    };
    VccidProcess *v = vccid_start(args);
    g_autofree char *p0 = qmp_path(v);
    g_autofree char *p1 = g_build_filename(v->tmpdir, "mon1.sock", NULL);
    g_autoptr(QmpClient) a = qmp_connect(p0);
    g_autoptr(QmpClient) b = qmp_connect(p1);
    g_autoptr(QObject) ev = NULL;
    g_autoptr(GString) told = g_string_new(NULL);
    int second;
    char chunk[512];
    ssize_t n;

    /* Each has its own negotiation state. */
    qmp_negotiate(a);
    qmp_err(b, "{\"execute\": \"query-status\"}", "CommandNotFound", "Expecting capabilities");
    /* Events go to negotiated clients only. */
    qmp_cmd(a, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"usb-ccid\", "
            "\"id\": \"r2\"}}");
    qmp_cmd(a, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"r2\"}}");
    ev = qmp_event(a, "DEVICE_DELETED", QMP_TIMEOUT_MS);
    g_assert_nonnull(ev);
    g_clear_pointer(&ev, qobject_free);
    ev = qmp_event(b, "DEVICE_DELETED", 300);
    g_assert_null(ev);

    /* A second client of one monitor is told so, in QMP, and closed; the first keeps it. */
    second = qtest_unix_connect(p1);
    g_assert_cmpint(second, >=, 0);
    do {
        struct pollfd pfd = { .fd = second, .events = POLLIN };

        g_assert_cmpint(poll(&pfd, 1, QMP_TIMEOUT_MS), ==, 1);
        n = read(second, chunk, sizeof(chunk));
        g_assert_cmpint(n, >=, 0);
        g_string_append_len(told, chunk, n);
    } while (n > 0);
    g_assert_cmpstr(told->str, ==, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                    "\"Monitor busy: another client is connected; try again once it "
                    "disconnects\"}}\r\n");
    close(second);
    qmp_negotiate(b);

    qmp_err(b, "{\"execute\": \"quit\", \"arguments\": {\"now\": true}}", "GenericError",
            "Parameter 'now' is unexpected");
    vccid_stop(v);
}

/*
 * qmp_capabilities is QMP's hello: a client that has not negotiated within
 * handshake-timeout is dropped, one that has may stay idle past it.
 */
static void test_idle_after_negotiation(void)
{
    static const char *const args[] = {
        "-chardev", "socket,id=mon,path=@DIR@/qmp.sock,server=on,wait=off,handshake-timeout=1",
        "-mon", "chardev=mon,mode=control",
        "-device", "usb-ccid,id=ccid",
        NULL,
    };
    VccidProcess *v = vccid_start(args);
    g_autofree char *path = qmp_path(v);
    g_autoptr(QObject) r = NULL;
    QmpClient *silent = qmp_connect(path);
    QmpClient *idle;
    char byte;

    struct pollfd pfd = { .fd = silent->fd, .events = POLLIN };

    /* Greeted, never negotiates: gone after the deadline. */
    g_assert_cmpint(poll(&pfd, 1, 5000), ==, 1);
    g_assert_cmpint(read(silent->fd, &byte, 1), ==, 0);
    qmp_client_free(silent);

    idle = qmp_connect(path);
    qmp_negotiate(idle);
    g_usleep(2500 * 1000);
    r = qmp_ok(idle, "{\"execute\": \"query-status\"}");
    g_assert_cmpstr(qdict_get_str(r, "status"), ==, "running");
    qmp_client_free(idle);
    vccid_stop(v);
}

static void test_bad_options(void)
{
    static const char *const cases[][3] = {
        { "-qmp", "stdio", "expected unix:PATH or tcp:HOST:PORT" },
        { "-mon", "chardev=nope", "chardev 'nope' not found" },
        { "-mon", "mode=readline", "Parameter 'chardev' is missing" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const char *args[] = { cases[i][0], cases[i][1], NULL };

        vccid_assert_cli_error(args, cases[i][2]);
    }
}

/* ---- daemon life ---- */

static bool wait_gone(const char *path, int timeout_ms)
{
    for (int i = 0; i < timeout_ms / 10; i++) {
        if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
            return true;
        }
        g_usleep(10000);
    }
    return false;
}

static void test_quit(void)
{
    g_autoptr(QmpClient) c = NULL;
    VccidProcess *v = start_with_qmp(&c);
    g_autofree char *qmp_sock = qmp_path(v);
    g_autoptr(QObject) ev = NULL;

    qmp_negotiate(c);
    qmp_cmd(c, "{\"execute\": \"quit\"}");
    ev = qmp_event(c, "SHUTDOWN", QMP_TIMEOUT_MS);
    g_assert_nonnull(ev);
    g_assert_false(qdict_get(qdict_get(ev, "data"), "guest")->u.b);
    g_assert_cmpstr(qdict_get_str(qdict_get(ev, "data"), "reason"), ==, "host-qmp-quit");
    /* It exits by itself, cleanly, its socket files gone. */
    g_assert_true(wait_gone(qmp_sock, VCCID_STOP_TIMEOUT_MS));
    g_assert_true(wait_gone(v->sock_path, VCCID_STOP_TIMEOUT_MS));
    vccid_wait_exit(v);
}

static void test_sigterm_pidfile_notify(void)
{
    g_autofree char *dir = g_dir_make_tmp("vccid-qmp-XXXXXX", NULL);
    g_autofree char *notify = g_build_filename(dir, "notify", NULL);
    g_autofree char *pidfile = g_build_filename(dir, "pid", NULL);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct pollfd pfd = { .fd = nfd, .events = POLLIN };
    const char *args[] = {
        "-qmp", "unix:@DIR@/qmp.sock,server=on,wait=off", "-pidfile", pidfile,
        "-device", "usb-ccid,id=ccid", NULL,
    };
    VccidProcess *v;
    g_autofree char *pid_text = NULL;
    g_autofree char *qmp_sock = NULL;
    char msg[64] = { 0 };

    g_strlcpy(sa.sun_path, notify, sizeof(sa.sun_path));
    g_assert_cmpint(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_setenv("NOTIFY_SOCKET", notify, TRUE);
    v = vccid_start(args);
    g_unsetenv("NOTIFY_SOCKET");
    qmp_sock = qmp_path(v);
    g_assert_cmpint(poll(&pfd, 1, VCCID_START_TIMEOUT_MS), ==, 1);
    g_assert_cmpint(recv(nfd, msg, sizeof(msg) - 1, 0), >, 0);
    g_assert_cmpstr(msg, ==, "READY=1");
    g_assert_true(g_file_get_contents(pidfile, &pid_text, NULL, NULL));
    g_assert_cmpint(atoi(pid_text), ==, v->pid);
    {
        /* A second vccid with the same pid file refuses to start, and leaves it alone. */
        const char *again[] = { "-pidfile", pidfile, "-qmp", "unix:/nonexistent/q.sock", NULL };
        g_autofree char *out = NULL;
        g_autofree char *err = NULL;
        g_autofree char *pid_after = NULL;
        int status = vccid_run_cli(again, &out, &err);

        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 2);
        g_assert_nonnull(strstr(err, "cannot lock"));
        g_assert_true(g_file_get_contents(pidfile, &pid_after, NULL, NULL));
        g_assert_cmpstr(pid_after, ==, pid_text);
    }
    /* SIGTERM: a clean exit (vccid_stop checks), pid file and sockets gone. */
    vccid_stop(v);
    g_assert_false(g_file_test(pidfile, G_FILE_TEST_EXISTS));
    memset(msg, 0, sizeof(msg));
    g_assert_cmpint(recv(nfd, msg, sizeof(msg) - 1, MSG_DONTWAIT), >, 0);
    g_assert_cmpstr(msg, ==, "STOPPING=1");
    close(nfd);
    unlink(notify);
    g_rmdir(dir);
}

static void test_daemonize(void)
{
    g_autofree char *dir = g_dir_make_tmp("vccid-qmp-XXXXXX", NULL);
    g_autofree char *pidfile = g_build_filename(dir, "pid", NULL);
    g_autofree char *sock = g_build_filename(dir, "qmp.sock", NULL);
    g_autofree char *qmp_arg = g_strdup_printf("unix:%s,server=on,wait=off", sock);
    const char *args[] = { "-daemonize", "-pidfile", pidfile, "-qmp", qmp_arg, NULL };
    const char *bad[] = { "-daemonize", "-qmp", "unix:/nonexistent/dir/q.sock,server=on",
                          NULL };
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_autofree char *pid_text = NULL;
    g_autoptr(QmpClient) c = NULL;
    int status;
    pid_t pid;

    /* The parent returns once the daemon is ready: its socket is there at once. */
    status = vccid_run_cli(args, &out, &err);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    g_assert_true(g_file_test(sock, G_FILE_TEST_EXISTS));
    g_assert_true(g_file_get_contents(pidfile, &pid_text, NULL, NULL));
    pid = atoi(pid_text);
    g_assert_cmpint(pid, >, 1);
    c = qmp_connect(sock);
    qmp_negotiate(c);
    qmp_cmd(c, "{\"execute\": \"quit\"}");
    g_assert_true(wait_gone(pidfile, VCCID_STOP_TIMEOUT_MS));
    g_assert_true(wait_gone(sock, VCCID_STOP_TIMEOUT_MS));
    g_rmdir(dir);

    /* A daemon that cannot start: the parent fails with it, and says why. */
    vccid_assert_cli_error(bad, "cannot listen");
}

/* The tests on the default daemon and one monitor client (QmpFixture). */
static const QmpCase fixture_cases[] = {
    { "/qmp/negotiation", test_negotiation },
    { "/qmp/malformed", test_malformed },
    { "/qmp/arguments", test_arguments },
    { "/qmp/queries", test_queries },
    { "/qmp/device/card-del-add", test_card_del_add },
    { "/qmp/device/emulated-other-db", test_emulated_other_db },
    { "/qmp/device/reader-del", test_reader_del },
    { "/qmp/chardev", test_chardev },
    { "/qmp/object", test_object },
    { "/qmp/tls-objects", test_tls_objects },
    { "/qmp/qom", test_qom },
    { "/qmp/exports", test_exports },
};

/* The tests that start the daemon their own way. */
static const TestCase cases[] = {
    { "/qmp/several-monitors", test_several_monitors },
    { "/qmp/idle-after-negotiation", test_idle_after_negotiation },
    { "/qmp/bad-options", test_bad_options },
    { "/qmp/quit", test_quit },
    { "/qmp/sigterm-pidfile-notify", test_sigterm_pidfile_notify },
    { "/qmp/daemonize", test_daemonize },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < G_N_ELEMENTS(fixture_cases); i++) {
        g_test_add(fixture_cases[i].path, QmpFixture, NULL, qmp_fixture_setup,
                   fixture_cases[i].fn, qmp_fixture_teardown);
    }
    test_add_cases(cases);
    return g_test_run();
}
