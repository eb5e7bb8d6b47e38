/*
 * Socket chardevs: "-chardev socket,id=ID,(path=P|host=H,port=N)
 * [,server=on|off][,wait=on|off][,reconnect=SECONDS][,nodelay=on|off]".
 *
 * One peer at a time. A server stops accepting while it has a peer, so a
 * second client waits in the listen backlog until the first leaves. A client
 * with reconnect= retries after the peer goes away or a connect fails.
 */
#include "chardev/char.h"
#include "qemu/error.h"
#include "qemu/option.h"

#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "trace.h"

#define CHR_READ_CHUNK 65536

struct Chardev {
    char *id;
    char *label;
    GSocketAddress *addr;
    bool is_unix;
    bool server;
    bool wait;
    bool nodelay;
    unsigned reconnect;          /* seconds; 0 = never */

    GSocket *listener;
    GSource *accept_src;
    GSocket *peer;
    GSource *read_src;
    GSource *write_src;
    GByteArray *outq;
    guint reconnect_timer;
    guint opened_idle;
    guint close_idle;            /* a write failed: close from the main loop */

    char *owner;
    ChrReadHandler *fd_read;
    ChrEventHandler *fd_event;
    void *opaque;
};

static GHashTable *chardevs;     /* id -> Chardev * */

static void chr_accept_arm(Chardev *chr);
static bool chr_client_connect(Chardev *chr, GError **errp);

/* ---- peer I/O ---- */

static void chr_emit(Chardev *chr, ChrEvent ev)
{
    trace_chardev_socket_event(chr->id, ev);
    if (chr->fd_event) {
        chr->fd_event(chr->opaque, ev);
    }
}

static void chr_drop_source(GSource **src)
{
    if (*src) {
        g_source_destroy(*src);
        g_source_unref(*src);
        *src = NULL;
    }
}

static gboolean chr_reconnect_timeout(gpointer opaque)
{
    Chardev *chr = opaque;
    g_autoptr(GError) err = NULL;

    chr->reconnect_timer = 0;
    if (!chr_client_connect(chr, &err)) {
        g_debug("chardev %s: reconnect failed: %s", chr->id, err->message);
        chr->reconnect_timer = g_timeout_add_seconds(chr->reconnect, chr_reconnect_timeout, chr);
    }
    return G_SOURCE_REMOVE;
}

static void chr_peer_close(Chardev *chr, const char *why)
{
    if (!chr->peer) {
        return;
    }
    g_message("chardev %s: peer disconnected (%s)", chr->id, why);
    trace_chardev_socket_close(chr->id, why);
    chr_drop_source(&chr->read_src);
    chr_drop_source(&chr->write_src);
    if (chr->opened_idle) {
        g_source_remove(chr->opened_idle);
        chr->opened_idle = 0;
    }
    if (chr->close_idle) {
        g_source_remove(chr->close_idle);
        chr->close_idle = 0;
    }
    g_socket_close(chr->peer, NULL);
    g_clear_object(&chr->peer);
    g_byte_array_set_size(chr->outq, 0);
    chr_emit(chr, CHR_EVENT_CLOSED);
    if (chr->server) {
        chr_accept_arm(chr);
    } else if (chr->reconnect && !chr->reconnect_timer) {
        chr->reconnect_timer = g_timeout_add_seconds(chr->reconnect, chr_reconnect_timeout, chr);
    }
}

static gboolean chr_readable(GSocket *sock, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    g_autofree uint8_t *buf = g_malloc(CHR_READ_CHUNK);
    g_autoptr(GError) err = NULL;
    gssize n = g_socket_receive(sock, (char *)buf, CHR_READ_CHUNK, NULL, &err);

    if (n < 0 && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        chr_peer_close(chr, n == 0 ? "end of stream" : err->message);
        return G_SOURCE_CONTINUE;   /* the source was destroyed above */
    }
    trace_chardev_socket_read(chr->id, n);
    if (chr->fd_read) {
        chr->fd_read(chr->opaque, buf, n);
    }
    return G_SOURCE_CONTINUE;
}

static gboolean chr_close_later_cb(gpointer opaque)
{
    Chardev *chr = opaque;

    chr->close_idle = 0;
    chr_peer_close(chr, "write failed");
    return G_SOURCE_REMOVE;
}

/*
 * A write failed. Frontends write from deep inside their own parsers; the
 * CLOSED event that tears those down must not run under them, so the close
 * happens from the main loop. Until then further output is discarded.
 */
static void chr_close_later(Chardev *chr, const char *why)
{
    if (!chr->close_idle) {
        g_message("chardev %s: %s", chr->id, why);
        g_byte_array_set_size(chr->outq, 0);
        chr_drop_source(&chr->write_src);
        chr->close_idle = g_idle_add(chr_close_later_cb, chr);
    }
}

/* Send what we can without blocking; returns false if the peer failed. */
static bool chr_flush(Chardev *chr)
{
    while (chr->outq->len) {
        g_autoptr(GError) err = NULL;
        gssize n = g_socket_send(chr->peer, (const char *)chr->outq->data, chr->outq->len,
                                 NULL, &err);

        if (n < 0 && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
            return true;
        }
        if (n < 0) {
            chr_close_later(chr, err->message);
            return false;
        }
        trace_chardev_socket_send(chr->id, n, chr->outq->len - n);
        g_byte_array_remove_range(chr->outq, 0, n);
    }
    return true;
}

static gboolean chr_writable(GSocket *sock, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;

    if (chr_flush(chr) && chr->outq->len == 0) {
        chr_drop_source(&chr->write_src);
    }
    return G_SOURCE_CONTINUE;
}

static void chr_watch(Chardev *chr, GSource **slot, GIOCondition cond, GSocketSourceFunc fn)
{
    *slot = g_socket_create_source(chr->peer, cond, NULL);
    /*
     * GLib takes the fd of a source that cannot recurse out of the poll set
     * for the time of each dispatch and puts it back after, and each of the
     * two wakes the main context (a write to its eventfd, then one more
     * loop iteration): two syscalls and a pass through poll() on every
     * transfer that arrives. Nothing here runs a nested main loop, so there
     * is no recursion to guard against.
     */
    g_source_set_can_recurse(*slot, TRUE);
    g_source_set_callback(*slot, (GSourceFunc)(void (*)(void))fn, chr, NULL);
    g_source_attach(*slot, NULL);
}

/*
 * Reading starts only once a frontend has seen OPENED: bytes that arrive
 * earlier (a client chardev connects before its frontend exists) wait in
 * the socket instead of being read for nobody.
 */
static void chr_open_frontend(Chardev *chr)
{
    chr_emit(chr, CHR_EVENT_OPENED);
    if (chr->peer && !chr->read_src && chr->fd_read) {
        chr_watch(chr, &chr->read_src, G_IO_IN | G_IO_HUP | G_IO_ERR, chr_readable);
    }
}

static gboolean chr_send_opened(gpointer opaque)
{
    Chardev *chr = opaque;

    chr->opened_idle = 0;
    chr_open_frontend(chr);
    return G_SOURCE_REMOVE;
}

static void chr_peer_attach(Chardev *chr, GSocket *sock)
{
    chr->peer = sock;
    g_socket_set_blocking(sock, FALSE);
    if (!chr->is_unix && chr->nodelay) {
        /* Small request/response messages: Nagle + delayed ACK would add ~40 ms. */
        g_socket_set_option(sock, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
    }
    g_message("chardev %s: peer connected", chr->id);
    if (chr->fd_read || chr->fd_event) {
        chr_open_frontend(chr);
    }
}

/* ---- server side ---- */

static gboolean chr_acceptable(GSocket *sock, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    g_autoptr(GError) err = NULL;
    GSocket *peer = g_socket_accept(sock, NULL, &err);

    if (!peer) {
        if (!g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
            g_warning("chardev %s: accept failed: %s", chr->id, err->message);
        }
        return G_SOURCE_CONTINUE;
    }
    trace_chardev_socket_accept(chr->id);
    chr_drop_source(&chr->accept_src);
    chr_peer_attach(chr, peer);
    return G_SOURCE_CONTINUE;
}

static void chr_accept_arm(Chardev *chr)
{
    if (chr->accept_src || chr->peer) {
        return;
    }
    chr->accept_src = g_socket_create_source(chr->listener, G_IO_IN, NULL);
    g_source_set_callback(chr->accept_src, (GSourceFunc)(void (*)(void))chr_acceptable, chr, NULL);
    g_source_attach(chr->accept_src, NULL);
}

static bool chr_listen(Chardev *chr, GError **errp)
{
    GSocketFamily family = g_socket_address_get_family(chr->addr);

    chr->listener = g_socket_new(family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, errp);
    if (!chr->listener) {
        return false;
    }
    if (chr->is_unix) {
        /* A stale socket file from an earlier run would make bind fail. */
        unlink(g_unix_socket_address_get_path(G_UNIX_SOCKET_ADDRESS(chr->addr)));
    }
    g_socket_set_blocking(chr->listener, FALSE);
    if (!g_socket_bind(chr->listener, chr->addr, TRUE, errp) ||
        !g_socket_listen(chr->listener, errp)) {
        return false;
    }
    trace_chardev_socket_listen(chr->id, chr->label);
    chr_accept_arm(chr);
    return true;
}

/* ---- client side ---- */

static bool chr_client_connect(Chardev *chr, GError **errp)
{
    GSocketFamily family = g_socket_address_get_family(chr->addr);
    GSocket *sock = g_socket_new(family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, errp);

    if (!sock) {
        return false;
    }
    /* Local and loopback connects complete at once; a blocking connect is fine. */
    trace_chardev_socket_connect(chr->id, chr->label);
    g_socket_set_timeout(sock, 5);
    if (!g_socket_connect(sock, chr->addr, NULL, errp)) {
        trace_chardev_socket_connect_failed(chr->id, errp && *errp ? (*errp)->message : "");
        g_object_unref(sock);
        return false;
    }
    g_socket_set_timeout(sock, 0);
    chr_peer_attach(chr, sock);
    return true;
}

/* ---- creation ---- */

static GSocketAddress *chr_inet_address(const char *host, const char *port, GError **errp)
{
    uint64_t portnum;
    g_autoptr(GInetAddress) ia = NULL;

    if (!qemu_opt_parse_uint(port, 65535, &portnum)) {
        g_set_error(errp, VCCID_ERROR, 0, "Parameter 'port' expects a port number, not '%s'", port);
        return NULL;
    }
    if (!*host || strcmp(host, "localhost") == 0) {
        host = "127.0.0.1";
    }
    ia = g_inet_address_new_from_string(host);
    if (!ia) {
        GResolver *resolver = g_resolver_get_default();
        GList *addrs = g_resolver_lookup_by_name(resolver, host, NULL, errp);

        g_object_unref(resolver);
        if (!addrs) {
            g_prefix_error(errp, "host '%s': ", host);
            return NULL;
        }
        ia = g_object_ref(addrs->data);
        g_resolver_free_addresses(addrs);
    }
    return g_inet_socket_address_new(ia, portnum);
}

static bool chr_parse_bool(QemuOpts *opts, const char *key, bool def, bool *out, GError **errp)
{
    const char *v = qemu_opt_take(opts, key);

    *out = def;
    if (v && !qemu_opt_parse_bool(v, out)) {
        g_set_error(errp, VCCID_ERROR, 0, "Parameter '%s' expects on or off, not '%s'", key, v);
        return false;
    }
    return true;
}

static bool chr_parse_address(Chardev *chr, QemuOpts *opts, GError **errp)
{
    const char *path = qemu_opt_take(opts, "path");
    const char *host = qemu_opt_take(opts, "host");
    const char *port = qemu_opt_take(opts, "port");

    if (path && (host || port)) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': give either path= or host=/port=, not both",
                    chr->id);
        return false;
    }
    if (path) {
        chr->is_unix = true;
        chr->addr = g_unix_socket_address_new(path);
        chr->label = g_strdup_printf("unix:%s%s", path, chr->server ? ",server=on" : "");
        return true;
    }
    if (!port) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': socket needs path= or port=", chr->id);
        return false;
    }
    chr->addr = chr_inet_address(host ? host : "", port, errp);
    if (!chr->addr) {
        return false;
    }
    chr->label = g_strdup_printf("tcp:%s:%s%s", host ? host : "127.0.0.1", port,
                                 chr->server ? ",server=on" : "");
    return true;
}

static bool chr_parse_opts(Chardev *chr, QemuOpts *opts, GError **errp)
{
    const char *reconnect;
    const char *unused;
    uint64_t secs = 0;

    if (!chr_parse_bool(opts, "server", false, &chr->server, errp) ||
        !chr_parse_bool(opts, "wait", chr->server, &chr->wait, errp) ||
        !chr_parse_bool(opts, "nodelay", true, &chr->nodelay, errp) ||
        !chr_parse_address(chr, opts, errp)) {
        return false;
    }
    reconnect = qemu_opt_take(opts, "reconnect");
    if (reconnect && !qemu_opt_parse_uint(reconnect, 3600, &secs)) {
        g_set_error(errp, VCCID_ERROR, 0,
                    "Parameter 'reconnect' expects seconds (0..3600), not '%s'", reconnect);
        return false;
    }
    chr->reconnect = secs;
    if (chr->reconnect && chr->server) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': reconnect= is for clients (server=off)",
                    chr->id);
        return false;
    }
    unused = qemu_opts_first_unused(opts);
    if (unused) {
        g_set_error(errp, VCCID_ERROR, 0, "Invalid parameter '%s' for chardev '%s'", unused, chr->id);
        return false;
    }
    return true;
}

static void chardev_free(Chardev *chr)
{
    chr->fd_event = NULL;
    chr->fd_read = NULL;
    chr_peer_close(chr, "shutdown");
    chr_drop_source(&chr->accept_src);
    if (chr->reconnect_timer) {
        g_source_remove(chr->reconnect_timer);
    }
    if (chr->listener) {
        g_socket_close(chr->listener, NULL);
        g_object_unref(chr->listener);
        if (chr->is_unix) {
            unlink(g_unix_socket_address_get_path(G_UNIX_SOCKET_ADDRESS(chr->addr)));
        }
    }
    g_clear_object(&chr->addr);
    g_byte_array_unref(chr->outq);
    g_free(chr->owner);
    g_free(chr->label);
    g_free(chr->id);
    g_free(chr);
}

static bool chr_start(Chardev *chr, GError **errp)
{
    g_autoptr(GError) err = NULL;

    if (chr->server) {
        if (!chr_listen(chr, errp)) {
            g_prefix_error(errp, "chardev '%s': cannot listen on %s: ", chr->id, chr->label);
            return false;
        }
        return true;
    }
    if (chr_client_connect(chr, &err)) {
        return true;
    }
    if (!chr->reconnect) {
        g_propagate_prefixed_error(errp, g_steal_pointer(&err), "chardev '%s': connect to %s: ",
                                   chr->id, chr->label);
        return false;
    }
    g_message("chardev %s: %s; retrying every %us", chr->id, err->message, chr->reconnect);
    chr->reconnect_timer = g_timeout_add_seconds(chr->reconnect, chr_reconnect_timeout, chr);
    return true;
}

Chardev *chardev_new_from_string(const char *optstr, GError **errp)
{
    g_autoptr(QemuOpts) opts = qemu_opts_parse(optstr, "backend", errp);
    const char *backend, *id;
    Chardev *chr;

    if (!opts) {
        return NULL;
    }
    backend = opts->implied ? opts->implied : qemu_opt_take(opts, "backend");
    id = qemu_opt_take(opts, "id");
    if (!backend || strcmp(backend, "socket") != 0) {
        g_set_error(errp, VCCID_ERROR, 0, "-chardev '%s': unsupported backend '%s' (only 'socket')",
                    optstr, backend ? backend : "");
        return NULL;
    }
    if (!id || !*id) {
        g_set_error(errp, VCCID_ERROR, 0, "-chardev '%s': Parameter 'id' is missing", optstr);
        return NULL;
    }
    if (chardev_find(id)) {
        g_set_error(errp, VCCID_ERROR, 0, "attempt to add duplicate chardev id '%s'", id);
        return NULL;
    }
    chr = g_new0(Chardev, 1);
    chr->id = g_strdup(id);
    chr->outq = g_byte_array_new();
    if (!chr_parse_opts(chr, opts, errp) || !chr_start(chr, errp)) {
        chardev_free(chr);
        return NULL;
    }
    if (!chardevs) {
        chardevs = g_hash_table_new(g_str_hash, g_str_equal);
    }
    g_hash_table_insert(chardevs, chr->id, chr);
    return chr;
}

Chardev *chardev_find(const char *id)
{
    return chardevs ? g_hash_table_lookup(chardevs, id) : NULL;
}

const char *chardev_describe(Chardev *chr)
{
    return chr->label;
}

void chardev_destroy_all(void)
{
    GHashTableIter iter;
    gpointer value;

    if (!chardevs) {
        return;
    }
    g_hash_table_iter_init(&iter, chardevs);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        g_hash_table_iter_remove(&iter);
        chardev_free(value);
    }
    g_clear_pointer(&chardevs, g_hash_table_unref);
}

void chardev_wait_for_clients(void)
{
    GHashTableIter iter;
    gpointer value;

    if (!chardevs) {
        return;
    }
    g_hash_table_iter_init(&iter, chardevs);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        Chardev *chr = value;

        if (!chr->server || !chr->wait) {
            continue;
        }
        g_message("chardev %s: waiting for a connection on %s", chr->id, chr->label);
        while (!chr->peer) {
            g_main_context_iteration(NULL, TRUE);
        }
    }
}

/* ---- frontend API ---- */

bool chr_fe_claim(Chardev *chr, const char *owner, GError **errp)
{
    if (chr->owner) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s' is already in use by '%s'",
                    chr->id, chr->owner);
        return false;
    }
    chr->owner = g_strdup(owner);
    return true;
}

void chr_fe_release(Chardev *chr)
{
    chr_fe_set_handlers(chr, NULL, NULL, NULL);
    g_clear_pointer(&chr->owner, g_free);
}

void chr_fe_set_handlers(Chardev *chr, ChrReadHandler *fd_read, ChrEventHandler *fd_event,
                         void *opaque)
{
    chr->fd_read = fd_read;
    chr->fd_event = fd_event;
    chr->opaque = opaque;
    if (chr->opened_idle) {
        g_source_remove(chr->opened_idle);
        chr->opened_idle = 0;
    }
    /* A new frontend starts reading after its OPENED, from the main loop. */
    chr_drop_source(&chr->read_src);
    if ((fd_event || fd_read) && chr->peer) {
        chr->opened_idle = g_idle_add(chr_send_opened, chr);
    }
}

bool chr_fe_write(Chardev *chr, const void *buf, size_t len)
{
    if (!chr->peer || chr->close_idle) {
        return false;
    }
    if (chr->outq->len + len > CHR_MAX_OUTPUT_QUEUE) {
        /* The peer stopped reading; holding more would let it grow us without bound. */
        chr_close_later(chr, "peer is not reading its input");
        return false;
    }
    trace_chardev_socket_write(chr->id, len, chr->outq->len);
    g_byte_array_append(chr->outq, buf, len);
    if (!chr->write_src) {
        if (!chr_flush(chr)) {
            return false;
        }
        if (chr->outq->len) {
            chr_watch(chr, &chr->write_src, G_IO_OUT, chr_writable);
        }
    }
    return true;
}

bool chr_fe_is_connected(Chardev *chr)
{
    return chr->peer != NULL;
}

void chr_fe_disconnect(Chardev *chr)
{
    chr_peer_close(chr, "closed by this side");
}
