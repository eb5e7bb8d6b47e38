/*
 * Socket chardevs: "-chardev socket,id=ID,(path=P|host=H,port=N)
 * [,server=on|off][,wait=on|off][,reconnect=SECONDS][,nodelay=on|off]
 * [,tls-creds=ID[,tls-authz=ID]][,handshake-timeout=SECONDS]
 * [,keep-alive=on|off][,keep-alive-idle=S][,keep-alive-interval=S][,keep-alive-count=N]
 * [,owner=USER][,group=GROUP][,mode=OCTAL]".
 *
 * One peer at a time. A server keeps accepting while it has a peer and
 * closes a second client at once, so nobody waits in the listen backlog
 * behind a peer that holds the port; on a plain socket the client is first
 * told so in its protocol's words, if the frontend gave some
 * (chr_fe_set_busy_reply). A client with reconnect= retries after the peer
 * goes away or a connect fails.
 *
 * A server's unix socket file is 0600 and vccid's own, unless owner=,
 * group= and mode= say otherwise (group= alone makes it 0660, so that the
 * group can connect: QEMU run by libvirt as another user). The file gets
 * them under a temporary name, before it is linked to its path, so nobody
 * ever sees it with other ones. Other users never get any bit: connecting
 * needs write permission, and read or search bits would only mislead.
 *
 * With tls-creds= (TCP only, as in QEMU) a new peer first runs the TLS
 * handshake, on GIO's worker thread so the main loop never waits for it;
 * its certificate is then checked against the creds' CA and its
 * distinguished name against tls-authz=. Only then does the frontend see
 * the peer. Every new peer, TLS or not, must finish its handshake and its
 * protocol's hello (the frontend says when: chr_fe_hello_done) within
 * handshake-timeout= seconds, and TCP keepalive notices a peer that
 * vanished without closing.
 */
#include "authz/authz.h"
#include "chardev/char.h"
#include "crypto/tlscreds.h"
#include "qemu/error.h"
#include "qemu/main-loop.h"
#include "qemu/option.h"

#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "trace.h"

#define CHR_READ_CHUNK 65536

/* Defaults: a silent new peer goes after 10 s, a vanished one within a minute. */
#define CHR_HANDSHAKE_TIMEOUT_DEFAULT 10
#define CHR_KEEPALIVE_IDLE_DEFAULT 30
#define CHR_KEEPALIVE_INTERVAL_DEFAULT 5
#define CHR_KEEPALIVE_COUNT_DEFAULT 5
/* A server's unix socket file: only this user may connect; with group=, that group too. */
#define CHR_UNIX_SOCKET_MODE 0600
#define CHR_UNIX_SOCKET_GROUP_MODE 0660

/* A peer in its TLS handshake. Outlives its chardev until the handshake returns. */
typedef struct ChrHandshake {
    Chardev *chr;                /* NULL once the chardev no longer waits for it */
    GSocket *sock;
    GTlsConnection *tls;
    GCancellable *cancel;
} ChrHandshake;

struct Chardev {
    char *id;
    char *label;
    GSocketAddress *addr;
    bool is_unix;
    bool server;
    bool wait;
    bool nodelay;
    unsigned reconnect;          /* seconds; 0 = never */
    char *host;                  /* as given, for a TLS client's certificate check */
    QCryptoTLSCreds *tls_creds;
    QAuthZ *tls_authz;
    unsigned handshake_timeout;  /* seconds; 0 = no limit */
    bool keepalive;
    unsigned keepalive_idle, keepalive_interval, keepalive_count;
    dev_t unix_dev;              /* the socket file we made, to remove only that */
    ino_t unix_ino;
    char *unix_ids;              /* "owner=U,group=G" as given, for messages */
    uid_t unix_uid;              /* (uid_t)-1: vccid's own */
    gid_t unix_gid;              /* (gid_t)-1: vccid's own */
    mode_t unix_mode;

    GSocket *listener;
    GSource *accept_src;
    ChrHandshake *handshake;     /* a new peer before it is the peer */
    guint hello_timer;           /* the new peer's deadline, until its frontend's hello */
    GSocket *peer_sock;
    GIOStream *peer;             /* the socket's stream, or the TLS session on it */
    GSource *read_src;           /* NULL while reading is paused (or not started) */
    bool read_paused;            /* the frontend or our output backlog said no room */
    bool output_backlog;         /* output went past the high-water mark, not yet drained */
    guint accept_idle;           /* chr_fe_accept_input(): resume from the main loop */
    GSource *write_src;
    GByteArray *outq;
    guint reconnect_timer;
    guint opened_idle;
    guint close_idle;            /* a write failed: close from the main loop */

    char *owner;
    GBytes *busy_reply;          /* what a second client is told, or NULL */
    ChrReadHandler *fd_read;
    ChrEventHandler *fd_event;
    ChrCanReadHandler *fd_can_read;
    void *opaque;
};

static GHashTable *chardevs;     /* id -> Chardev * */
static unsigned handshakes_running;  /* ChrHandshake not yet freed */

static bool chr_client_connect(Chardev *chr, GError **errp);
static void chr_handshake_abandon(Chardev *chr);
static void chr_watch(Chardev *chr, GSource **slot, bool output);

/* ---- peer I/O ---- */

static void chr_emit(Chardev *chr, ChrEvent ev)
{
    trace_chardev_socket_event(chr->id, ev);
    if (chr->fd_event) {
        chr->fd_event(chr->opaque, ev);
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

static void chr_schedule_reconnect(Chardev *chr)
{
    if (!chr->server && chr->reconnect && !chr->reconnect_timer) {
        chr->reconnect_timer = g_timeout_add_seconds(chr->reconnect, chr_reconnect_timeout, chr);
    }
}

static void chr_peer_close(Chardev *chr, const char *why)
{
    if (!chr->peer) {
        return;
    }
    g_message("chardev %s: peer disconnected (%s)", chr->id, why);
    trace_chardev_socket_close(chr->id, why);
    source_drop(&chr->read_src);
    source_drop(&chr->write_src);
    g_clear_handle_id(&chr->hello_timer, g_source_remove);
    g_clear_handle_id(&chr->accept_idle, g_source_remove);
    chr->read_paused = false;
    chr->output_backlog = false;
    g_clear_handle_id(&chr->opened_idle, g_source_remove);
    g_clear_handle_id(&chr->close_idle, g_source_remove);
    /* Closing the socket first: a TLS session then has nothing to flush or wait for. */
    g_socket_close(chr->peer_sock, NULL);
    g_clear_object(&chr->peer_sock);
    g_clear_object(&chr->peer);
    g_byte_array_set_size(chr->outq, 0);
    chr_emit(chr, CHR_EVENT_CLOSED);
    chr_schedule_reconnect(chr);
}

/* ---- backpressure ---- */

/* How much may be read from the peer now: 0 while we or the frontend have no room. */
static size_t chr_room(Chardev *chr)
{
    if (chr->outq->len > CHR_OUTPUT_HIGH_WATER) {
        chr->output_backlog = true;
    }
    if (chr->output_backlog) {
        return 0;
    }
    return chr->fd_can_read ? MIN(chr->fd_can_read(chr->opaque), CHR_READ_CHUNK)
                            : CHR_READ_CHUNK;
}

/*
 * Stop watching the socket: a source left armed on a socket we do not read
 * would fire again at once, for ever. The peer's bytes wait in the kernel.
 */
static void chr_read_pause(Chardev *chr)
{
    trace_chardev_socket_read_paused(chr->id, chr->outq->len);
    source_drop(&chr->read_src);
    chr->read_paused = true;
}

static void chr_read_resume(Chardev *chr)
{
    if (!chr->read_paused || !chr->peer || !chr->fd_read || chr->close_idle ||
        chr_room(chr) == 0) {
        return;
    }
    trace_chardev_socket_read_resumed(chr->id);
    chr->read_paused = false;
    chr_watch(chr, &chr->read_src, false);
}

static gboolean chr_accept_input_cb(gpointer opaque)
{
    Chardev *chr = opaque;

    chr->accept_idle = 0;
    chr_read_resume(chr);
    return G_SOURCE_REMOVE;
}

static gboolean chr_readable(GObject *stream, gpointer opaque)
{
    Chardev *chr = opaque;
    size_t room = chr_room(chr);
    g_autofree uint8_t *buf = NULL;
    g_autoptr(GError) err = NULL;
    gssize n;

    if (room == 0) {
        chr_read_pause(chr);
        return G_SOURCE_CONTINUE;   /* the source was destroyed above */
    }
    buf = g_malloc(room);
    n = g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(stream), buf, room,
                                                 NULL, &err);
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
        source_drop(&chr->write_src);
        chr->close_idle = g_idle_add(chr_close_later_cb, chr);
    }
}

/* Send what we can without blocking; returns false if the peer failed. */
static bool chr_flush(Chardev *chr)
{
    GPollableOutputStream *out = G_POLLABLE_OUTPUT_STREAM(g_io_stream_get_output_stream(chr->peer));

    while (chr->outq->len) {
        g_autoptr(GError) err = NULL;
        gssize n = g_pollable_output_stream_write_nonblocking(out, chr->outq->data,
                                                              chr->outq->len, NULL, &err);

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

static gboolean chr_writable(GObject *stream, gpointer opaque)
{
    Chardev *chr = opaque;

    if (!chr_flush(chr)) {
        return G_SOURCE_CONTINUE;
    }
    if (chr->outq->len == 0) {
        source_drop(&chr->write_src);
    }
    if (chr->output_backlog && chr->outq->len <= CHR_OUTPUT_LOW_WATER) {
        chr->output_backlog = false;
        chr_read_resume(chr);
    }
    return G_SOURCE_CONTINUE;
}

static void chr_watch(Chardev *chr, GSource **slot, bool output)
{
    if (output) {
        *slot = g_pollable_output_stream_create_source(
            G_POLLABLE_OUTPUT_STREAM(g_io_stream_get_output_stream(chr->peer)), NULL);
        g_source_set_callback(*slot, (GSourceFunc)(void (*)(void))chr_writable, chr, NULL);
    } else {
        *slot = g_pollable_input_stream_create_source(
            G_POLLABLE_INPUT_STREAM(g_io_stream_get_input_stream(chr->peer)), NULL);
        g_source_set_callback(*slot, (GSourceFunc)(void (*)(void))chr_readable, chr, NULL);
    }
    /*
     * GLib takes the fd of a source that cannot recurse out of the poll set
     * for the time of each dispatch and puts it back after, and each of the
     * two wakes the main context (a write to its eventfd, then one more
     * loop iteration): two syscalls and a pass through poll() on every
     * transfer that arrives. Nothing here runs a nested main loop, so there
     * is no recursion to guard against.
     */
    g_source_set_can_recurse(*slot, TRUE);
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
        chr_watch(chr, &chr->read_src, false);
    }
}

static gboolean chr_send_opened(gpointer opaque)
{
    Chardev *chr = opaque;

    chr->opened_idle = 0;
    chr_open_frontend(chr);
    return G_SOURCE_REMOVE;
}

static void chr_peer_attach(Chardev *chr, GSocket *sock, GIOStream *stream)
{
    chr->peer_sock = sock;
    chr->peer = stream;
    g_message("chardev %s: peer connected", chr->id);
    if (chr->fd_read || chr->fd_event) {
        chr_open_frontend(chr);
    }
}

/* ---- a new peer: deadline, socket options, TLS ---- */

/* The new peer took too long for its TLS handshake or its protocol's hello. */
static gboolean chr_hello_timeout(gpointer opaque)
{
    Chardev *chr = opaque;
    g_autofree char *why = g_strdup_printf("no %s within %us",
                                           chr->peer ? "hello" : "TLS handshake",
                                           chr->handshake_timeout);

    chr->hello_timer = 0;
    if (chr->handshake) {
        g_message("chardev %s: new peer dropped (%s)", chr->id, why);
        chr_handshake_abandon(chr);
        chr_schedule_reconnect(chr);
    } else {
        chr_peer_close(chr, why);
    }
    return G_SOURCE_REMOVE;
}

static void chr_set_keepalive(Chardev *chr, GSocket *sock)
{
    g_autoptr(GError) err = NULL;

    if (!g_socket_set_option(sock, SOL_SOCKET, SO_KEEPALIVE, 1, &err) ||
        !g_socket_set_option(sock, IPPROTO_TCP, TCP_KEEPIDLE, chr->keepalive_idle, &err) ||
        !g_socket_set_option(sock, IPPROTO_TCP, TCP_KEEPINTVL, chr->keepalive_interval, &err) ||
        !g_socket_set_option(sock, IPPROTO_TCP, TCP_KEEPCNT, chr->keepalive_count, &err)) {
        g_warning("chardev %s: cannot set TCP keepalive: %s", chr->id, err->message);
    }
}

static void chr_handshake_free(ChrHandshake *hs)
{
    handshakes_running--;
    g_clear_object(&hs->tls);
    g_clear_object(&hs->sock);
    g_clear_object(&hs->cancel);
    g_free(hs);
}

/*
 * Stop waiting for the handshake in progress: cancel it and wake GIO's
 * worker by shutting the socket down; the completion callback frees it.
 */
static void chr_handshake_abandon(Chardev *chr)
{
    ChrHandshake *hs = chr->handshake;

    if (!hs) {
        return;
    }
    chr->handshake = NULL;
    g_clear_handle_id(&chr->hello_timer, g_source_remove);
    hs->chr = NULL;
    g_cancellable_cancel(hs->cancel);
    g_socket_shutdown(hs->sock, TRUE, TRUE, NULL);
}

static bool chr_tls_check_peer(Chardev *chr, ChrHandshake *hs, GError **errp)
{
    g_autofree char *dname = NULL;
    const char *hostname = chr->server ? NULL : chr->host;

    if (!qcrypto_tls_session_check_peer(chr->tls_creds, hs->tls, hostname, &dname, errp)) {
        return false;
    }
    if (chr->tls_authz && (!dname || !qauthz_is_allowed(chr->tls_authz, dname))) {
        g_autofree char *shown = g_strescape(dname ? dname : "", NULL);

        g_set_error(errp, VCCID_ERROR, 0, "TLS x509 authz check for '%s' is denied by '%s'",
                    shown, qauthz_id(chr->tls_authz));
        return false;
    }
    if (dname) {
        g_autofree char *shown = g_strescape(dname, NULL);

        g_message("chardev %s: TLS peer '%s'", chr->id, shown);
    }
    return true;
}

static void chr_handshake_done(GObject *source, GAsyncResult *res, gpointer opaque)
{
    ChrHandshake *hs = opaque;
    Chardev *chr = hs->chr;
    g_autoptr(GError) err = NULL;
    bool ok = g_tls_connection_handshake_finish(G_TLS_CONNECTION(source), res, &err);

    if (!chr) {
        /* Abandoned: a deadline, a shutdown. */
        g_socket_close(hs->sock, NULL);
        chr_handshake_free(hs);
        return;
    }
    chr->handshake = NULL;
    if (ok) {
        ok = chr_tls_check_peer(chr, hs, &err);
    } else {
        g_prefix_error(&err, "TLS handshake failed: ");
    }
    if (!ok) {
        g_autofree char *why = g_strescape(err->message, NULL);

        g_message("chardev %s: new peer refused (%s)", chr->id, why);
        g_clear_handle_id(&chr->hello_timer, g_source_remove);
        g_socket_close(hs->sock, NULL);
        chr_handshake_free(hs);
        chr_schedule_reconnect(chr);
        return;
    }
    chr_peer_attach(chr, g_steal_pointer(&hs->sock), G_IO_STREAM(g_steal_pointer(&hs->tls)));
    chr_handshake_free(hs);
}

/* A connected socket becomes the peer: at once, or after its TLS handshake. */
static void chr_new_peer(Chardev *chr, GSocket *sock)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GIOStream) base = NULL;
    ChrHandshake *hs;

    g_socket_set_blocking(sock, FALSE);
    if (!chr->is_unix && chr->nodelay) {
        /* Small request/response messages: Nagle + delayed ACK would add ~40 ms. */
        g_socket_set_option(sock, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
    }
    if (!chr->is_unix && chr->keepalive) {
        chr_set_keepalive(chr, sock);
    }
    base = G_IO_STREAM(g_socket_connection_factory_create_connection(sock));
    if (chr->handshake_timeout) {
        chr->hello_timer = g_timeout_add(chr->handshake_timeout * 1000, chr_hello_timeout, chr);
    }
    if (!chr->tls_creds) {
        chr_peer_attach(chr, sock, g_steal_pointer(&base));
        return;
    }
    hs = g_new0(ChrHandshake, 1);
    handshakes_running++;
    hs->sock = sock;
    hs->tls = qcrypto_tls_session_new(chr->tls_creds, base, chr->server ? NULL : chr->host, &err);
    if (!hs->tls) {
        g_warning("chardev %s: cannot start TLS: %s", chr->id, err->message);
        g_clear_handle_id(&chr->hello_timer, g_source_remove);
        g_socket_close(sock, NULL);
        chr_handshake_free(hs);
        chr_schedule_reconnect(chr);
        return;
    }
    hs->chr = chr;
    hs->cancel = g_cancellable_new();
    chr->handshake = hs;
    g_tls_connection_handshake_async(hs->tls, G_PRIORITY_DEFAULT, hs->cancel,
                                     chr_handshake_done, hs);
}

/* ---- server side ---- */

static bool chr_socket_hung_up(GSocket *sock)
{
    struct pollfd pfd = { .fd = g_socket_get_fd(sock), .events = POLLIN | POLLRDHUP };

    return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/*
 * A client that reconnects closes its old connection first, but the new
 * one may be accepted before the old one's end of stream was read. Finish
 * with a peer that has hung up (its last bytes still go to the frontend)
 * before calling the newcomer a second client.
 */
static void chr_reap_departed(Chardev *chr)
{
    if (chr->handshake && chr_socket_hung_up(chr->handshake->sock)) {
        g_message("chardev %s: new peer dropped (hung up during the TLS handshake)", chr->id);
        chr_handshake_abandon(chr);
        return;
    }
    if (!chr->peer || !chr_socket_hung_up(chr->peer_sock)) {
        return;
    }
    for (int i = 0; i < 64 && chr->peer; i++) {
        chr_readable(G_OBJECT(g_io_stream_get_input_stream(chr->peer)), chr);
    }
    chr_peer_close(chr, "end of stream");
}

/*
 * Tell a second client the frontend's busy reply, then close it. Best
 * effort and never waiting: a fresh socket's send buffer takes a short
 * message whole. Not on TLS: the client would first need a handshake, all
 * that work for a client that is dropped anyway, so it is closed unheard.
 * Our end of the stream is shut down first and what the client already
 * sent is read away, so that it reads the reply and then end of stream,
 * not a reset that may take the reply with it.
 */
static void chr_refuse_client(Chardev *chr, GSocket *sock)
{
    if (chr->busy_reply && !chr->tls_creds) {
        gsize len;
        const char *reply = g_bytes_get_data(chr->busy_reply, &len);
        char sink[4096];
        int rounds = 16;

        g_socket_set_blocking(sock, FALSE);
        g_socket_send(sock, reply, len, NULL, NULL);
        g_socket_shutdown(sock, FALSE, TRUE, NULL);
        while (rounds-- && g_socket_receive(sock, sink, sizeof(sink), NULL, NULL) > 0) {
        }
    }
    g_socket_close(sock, NULL);
    g_object_unref(sock);
}

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
    if (chr->peer || chr->handshake) {
        chr_reap_departed(chr);
    }
    if (chr->peer || chr->handshake) {
        /* Left in the backlog it would wait for ever, and be served after the peer it queued behind. */
        g_message("chardev %s: second client refused: a peer is already connected", chr->id);
        chr_refuse_client(chr, peer);
        return G_SOURCE_CONTINUE;
    }
    chr_new_peer(chr, peer);
    return G_SOURCE_CONTINUE;
}

static void chr_accept_arm(Chardev *chr)
{
    chr->accept_src = g_socket_create_source(chr->listener, G_IO_IN, NULL);
    g_source_set_callback(chr->accept_src, (GSourceFunc)(void (*)(void))chr_acceptable, chr, NULL);
    g_source_attach(chr->accept_src, NULL);
}

/*
 * Only a stale socket file is removed before bind: never a file of another
 * kind, never a socket someone still listens on.
 */
static bool chr_unix_remove_stale(Chardev *chr, const char *path, GError **errp)
{
    g_autoptr(GSocket) probe = NULL;
    struct stat st;

    if (lstat(path, &st) < 0) {
        return true;
    }
    if (!S_ISSOCK(st.st_mode)) {
        g_set_error(errp, VCCID_ERROR, 0, "%s exists and is not a socket; not replacing it", path);
        return false;
    }
    probe = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT,
                         NULL);
    if (probe && g_socket_connect(probe, chr->addr, NULL, NULL)) {
        g_set_error(errp, VCCID_ERROR, 0, "%s is in use by another server", path);
        return false;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        g_set_error(errp, VCCID_ERROR, 0, "cannot remove stale socket %s: %s", path,
                    g_strerror(errno));
        return false;
    }
    return true;
}

/* owner=, group= (chown first: it may clear mode bits) and mode=, on the file just bound. */
static bool chr_unix_set_perms(Chardev *chr, const char *bound, GError **errp)
{
    if ((chr->unix_uid != (uid_t)-1 || chr->unix_gid != (gid_t)-1) &&
        lchown(bound, chr->unix_uid, chr->unix_gid) < 0) {
        g_set_error(errp, VCCID_ERROR, 0, "%s: cannot change the owner of %s: %s",
                    chr->unix_ids, bound, g_strerror(errno));
        return false;
    }
    if (chmod(bound, chr->unix_mode) < 0) {
        g_set_error(errp, VCCID_ERROR, 0, "cannot set mode %04o on %s: %s",
                    (unsigned)chr->unix_mode, bound, g_strerror(errno));
        return false;
    }
    return true;
}

/*
 * Bind, set the owner and mode, listen, and only then give the socket its
 * name: it is bound under a temporary name beside path and hard-linked to
 * path (link() never replaces a file that appeared meanwhile). Whoever sees
 * the file can connect at once, and nobody ever sees the owner or the mode
 * the umask gave. A path too long for a temporary name beside it is bound
 * directly, and has owner and mode set right after bind, before listen.
 */
static bool chr_unix_bind_listen(Chardev *chr, const char *path, GError **errp)
{
    g_autofree char *tmp = g_strdup_printf("%s.%d~", path, (int)getpid());
    const char *bound = strlen(tmp) < sizeof(((struct sockaddr_un *)NULL)->sun_path) ? tmp : path;
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(bound);
    struct stat st;

    unlink(tmp);   /* our own leftover, if a vccid with our pid died here */
    if (!g_socket_bind(chr->listener, addr, TRUE, errp)) {
        return false;
    }
    if (!chr_unix_set_perms(chr, bound, errp)) {
        unlink(bound);
        return false;
    }
    if (lstat(bound, &st) < 0) {
        g_set_error(errp, VCCID_ERROR, 0, "cannot stat %s: %s", bound, g_strerror(errno));
        unlink(bound);
        return false;
    }
    if (!g_socket_listen(chr->listener, errp)) {
        unlink(bound);
        return false;
    }
    if (bound == tmp) {
        int err = link(tmp, path) < 0 ? errno : 0;

        unlink(tmp);
        if (err) {
            g_set_error(errp, VCCID_ERROR, 0, "cannot create socket %s: %s", path,
                        g_strerror(err));
            return false;
        }
    }
    chr->unix_dev = st.st_dev;
    chr->unix_ino = st.st_ino;
    return true;
}

static bool chr_listen(Chardev *chr, GError **errp)
{
    GSocketFamily family = g_socket_address_get_family(chr->addr);
    const char *path = chr->is_unix ?
        g_unix_socket_address_get_path(G_UNIX_SOCKET_ADDRESS(chr->addr)) : NULL;

    if (path && !chr_unix_remove_stale(chr, path, errp)) {
        return false;
    }
    chr->listener = g_socket_new(family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, errp);
    if (!chr->listener) {
        return false;
    }
    g_socket_set_blocking(chr->listener, FALSE);
    if (path) {
        if (!chr_unix_bind_listen(chr, path, errp)) {
            return false;
        }
    } else if (!g_socket_bind(chr->listener, chr->addr, TRUE, errp) ||
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
    chr_new_peer(chr, sock);
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
    chr->host = g_strdup(host && *host ? host : "127.0.0.1");
    chr->addr = chr_inet_address(host ? host : "", port, errp);
    if (!chr->addr) {
        return false;
    }
    chr->label = g_strdup_printf("tcp:%s:%s%s", host ? host : "127.0.0.1", port,
                                 chr->server ? ",server=on" : "");
    return true;
}

static bool chr_parse_uint(QemuOpts *opts, const char *key, unsigned min, unsigned max,
                           unsigned def, unsigned *out, GError **errp)
{
    const char *v = qemu_opt_take(opts, key);
    uint64_t n = def;

    if (v && (!qemu_opt_parse_uint(v, max, &n) || n < min)) {
        g_set_error(errp, VCCID_ERROR, 0, "Parameter '%s' expects %u..%u, not '%s'",
                    key, min, max, v);
        return false;
    }
    *out = n;
    return true;
}

/* tls-creds= and tls-authz=, with the combinations QEMU refuses refused. */
static bool chr_parse_tls(Chardev *chr, QemuOpts *opts, GError **errp)
{
    const char *creds = qemu_opt_take(opts, "tls-creds");
    const char *authz = qemu_opt_take(opts, "tls-authz");
    QCryptoTLSCredsEndpoint want = chr->server ? QCRYPTO_TLS_CREDS_ENDPOINT_SERVER
                                               : QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT;

    if (authz && !creds) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': 'tls-authz' option requires "
                    "'tls-creds' option", chr->id);
        return false;
    }
    if (!creds) {
        return true;
    }
    if (chr->is_unix) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': 'tls-creds' option is incompatible "
                    "with 'unix' address type (TLS is for TCP sockets)", chr->id);
        return false;
    }
    if (authz && !chr->server) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': 'tls-authz' option is only valid "
                    "with server=on (a client checks the server's name)", chr->id);
        return false;
    }
    chr->tls_creds = qcrypto_tls_creds_find(creds, errp);
    if (!chr->tls_creds || !qcrypto_tls_creds_check_endpoint(chr->tls_creds, want, errp)) {
        chr->tls_creds = NULL;
        g_prefix_error(errp, "chardev '%s': tls-creds=%s: ", chr->id, creds);
        return false;
    }
    if (authz) {
        chr->tls_authz = qauthz_find(authz, errp);
        if (!chr->tls_authz) {
            g_prefix_error(errp, "chardev '%s': tls-authz=%s: ", chr->id, authz);
            return false;
        }
    }
    return true;
}

/* A user or group given by number, as chown(1) takes it: any id but -1 ("unchanged"). */
static bool chr_parse_numeric_id(const char *v, guint32 *id)
{
    guint64 n;

    if (!g_ascii_string_to_unsigned(v, 10, 0, G_MAXUINT32 - 1, &n, NULL)) {
        return false;
    }
    *id = n;
    return true;
}

/* getpwnam_r() or getgrnam_r() for name's id: 0, or an error (ENOENT: no such name). */
typedef int ChrIdLookup(const char *name, char *buf, size_t size, guint32 *id);

static int chr_getpwnam(const char *name, char *buf, size_t size, guint32 *id)
{
    struct passwd pw, *found = NULL;
    int err = getpwnam_r(name, &pw, buf, size, &found);

    *id = found ? found->pw_uid : 0;
    return found ? 0 : err ? err : ENOENT;
}

static int chr_getgrnam(const char *name, char *buf, size_t size, guint32 *id)
{
    struct group gr, *found = NULL;
    int err = getgrnam_r(name, &gr, buf, size, &found);

    *id = found ? found->gr_gid : 0;
    return found ? 0 : err ? err : ENOENT;
}

/*
 * owner= or group= (key): a name, or else a number taken as the id itself.
 * A lookup that finds nothing fails with ENOENT or one of the codes some NSS
 * modules use for that.
 */
static bool chr_lookup_id(Chardev *chr, const char *key, const char *name, ChrIdLookup *lookup,
                          guint32 *id, GError **errp)
{
    size_t size = 1024;
    g_autofree char *buf = NULL;
    int err;

    do {
        size *= 2;
        buf = g_realloc(buf, size);
        err = lookup(name, buf, size, id);
    } while (err == ERANGE && size < 1024 * 1024);
    if (err == 0 || chr_parse_numeric_id(name, id)) {
        return true;
    }
    if (err == ENOENT || err == ESRCH || err == EBADF || err == EPERM) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': %s '%s' does not exist", chr->id, key,
                    name);
    } else {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': cannot look up %s '%s': %s", chr->id,
                    key, name, g_strerror(err));
    }
    return false;
}

/*
 * mode=: permission bits in octal. "Other" gets nothing: with o+w any local
 * user could connect and use the card, and o+r or o+x do nothing on a
 * socket (connecting needs write), so asking for them is a mistake too.
 */
static bool chr_parse_mode(Chardev *chr, const char *v, GError **errp)
{
    guint64 mode;

    if (!g_ascii_string_to_unsigned(v, 8, 0, G_MAXUINT32, &mode, NULL)) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': Parameter 'mode' expects an octal "
                    "mode such as 0660, not '%s'", chr->id, v);
        return false;
    }
    if (mode & ~(guint64)0777) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': mode=%s: only the permission bits "
                    "0777 may be given (no setuid, setgid or sticky bit)", chr->id, v);
        return false;
    }
    if (mode & S_IWOTH) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': mode=%s is refused: it lets every "
                    "user on the machine connect and use the card (a smart card socket is "
                    "never world-writable; use group= for the users who need it)", chr->id, v);
        return false;
    }
    if (mode & S_IRWXO) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': mode=%s is refused: bits for other "
                    "users mean nothing on a socket (connecting needs write permission, which "
                    "others never get); leave the last digit 0", chr->id, v);
        return false;
    }
    chr->unix_mode = mode;
    return true;
}

/* owner=, group=, mode=: a unix server's socket file (applied by chr_unix_set_perms). */
static bool chr_parse_unix_perms(Chardev *chr, QemuOpts *opts, GError **errp)
{
    const char *owner = qemu_opt_take(opts, "owner");
    const char *group = qemu_opt_take(opts, "group");
    const char *mode = qemu_opt_take(opts, "mode");
    const char *given = owner ? "owner" : group ? "group" : mode ? "mode" : NULL;

    chr->unix_uid = (uid_t)-1;
    chr->unix_gid = (gid_t)-1;
    chr->unix_mode = group ? CHR_UNIX_SOCKET_GROUP_MODE : CHR_UNIX_SOCKET_MODE;
    if (given && (!chr->is_unix || !chr->server)) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev '%s': '%s' option is only valid for a unix "
                    "socket with server=on (it sets the socket file's owner and mode)",
                    chr->id, given);
        return false;
    }
    if ((owner && !chr_lookup_id(chr, "owner", owner, chr_getpwnam, &chr->unix_uid, errp)) ||
        (group && !chr_lookup_id(chr, "group", group, chr_getgrnam, &chr->unix_gid, errp)) ||
        (mode && !chr_parse_mode(chr, mode, errp))) {
        return false;
    }
    if (owner || group) {
        chr->unix_ids = g_strdup_printf("%s%s%s%s%s", owner ? "owner=" : "", owner ? owner : "",
                                        owner && group ? "," : "", group ? "group=" : "",
                                        group ? group : "");
    }
    return true;
}

static bool chr_parse_opts(Chardev *chr, QemuOpts *opts, GError **errp)
{
    const char *unused;

    if (!chr_parse_bool(opts, "server", false, &chr->server, errp) ||
        !chr_parse_bool(opts, "wait", chr->server, &chr->wait, errp) ||
        !chr_parse_bool(opts, "nodelay", true, &chr->nodelay, errp) ||
        !chr_parse_bool(opts, "keep-alive", true, &chr->keepalive, errp) ||
        !chr_parse_uint(opts, "keep-alive-idle", 1, 86400, CHR_KEEPALIVE_IDLE_DEFAULT,
                        &chr->keepalive_idle, errp) ||
        !chr_parse_uint(opts, "keep-alive-interval", 1, 3600, CHR_KEEPALIVE_INTERVAL_DEFAULT,
                        &chr->keepalive_interval, errp) ||
        !chr_parse_uint(opts, "keep-alive-count", 1, 127, CHR_KEEPALIVE_COUNT_DEFAULT,
                        &chr->keepalive_count, errp) ||
        !chr_parse_uint(opts, "handshake-timeout", 0, 3600, CHR_HANDSHAKE_TIMEOUT_DEFAULT,
                        &chr->handshake_timeout, errp) ||
        !chr_parse_uint(opts, "reconnect", 0, 3600, 0, &chr->reconnect, errp) ||
        !chr_parse_address(chr, opts, errp) ||
        !chr_parse_tls(chr, opts, errp) ||
        !chr_parse_unix_perms(chr, opts, errp)) {
        return false;
    }
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

/* Remove our socket file, unless something else has taken the path since. */
static void chr_unix_unlink(Chardev *chr)
{
    const char *path = g_unix_socket_address_get_path(G_UNIX_SOCKET_ADDRESS(chr->addr));
    struct stat st;

    if (chr->unix_ino && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == chr->unix_dev && st.st_ino == chr->unix_ino) {
        unlink(path);
    }
}

static void chardev_free(Chardev *chr)
{
    chr->fd_event = NULL;
    chr->fd_read = NULL;
    chr_peer_close(chr, "shutdown");
    source_drop(&chr->accept_src);
    g_clear_handle_id(&chr->hello_timer, g_source_remove);
    chr_handshake_abandon(chr);
    if (chr->reconnect_timer) {
        g_source_remove(chr->reconnect_timer);
    }
    if (chr->listener) {
        g_socket_close(chr->listener, NULL);
        g_object_unref(chr->listener);
        if (chr->is_unix) {
            chr_unix_unlink(chr);
        }
    }
    g_clear_object(&chr->addr);
    g_free(chr->host);
    g_byte_array_unref(chr->outq);
    g_free(chr->owner);
    g_clear_pointer(&chr->busy_reply, g_bytes_unref);
    g_free(chr->unix_ids);
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

const char *chardev_get_id(Chardev *chr)
{
    return chr->id;
}

bool chardev_remove(const char *id, GError **errp)
{
    Chardev *chr = chardev_find(id);

    if (!chr) {
        g_set_error(errp, VCCID_ERROR, 0, "Chardev '%s' not found", id);
        return false;
    }
    if (chr->owner) {
        g_set_error(errp, VCCID_ERROR, 0, "Chardev '%s' is busy", id);
        return false;
    }
    g_hash_table_remove(chardevs, chr->id);
    chardev_free(chr);
    return true;
}

bool chardev_uses_object(const char *id)
{
    QCryptoTLSCreds *creds = qcrypto_tls_creds_find(id, NULL);
    QAuthZ *authz = qauthz_find(id, NULL);
    GHashTableIter iter;
    gpointer value;

    if (!chardevs || (!creds && !authz)) {
        return false;
    }
    g_hash_table_iter_init(&iter, chardevs);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        Chardev *chr = value;

        if ((creds && chr->tls_creds == creds) || (authz && chr->tls_authz == authz)) {
            return true;
        }
    }
    return false;
}

void chardev_destroy_all(void)
{
    GHashTableIter iter;
    gpointer value;
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    if (!chardevs) {
        return;
    }
    g_hash_table_iter_init(&iter, chardevs);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        g_hash_table_iter_remove(&iter);
        chardev_free(value);
    }
    g_clear_pointer(&chardevs, g_hash_table_unref);
    /* Abandoned handshakes end promptly (their sockets are shut down); let them free. */
    while (handshakes_running && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
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
    g_clear_pointer(&chr->busy_reply, g_bytes_unref);
    g_clear_pointer(&chr->owner, g_free);
}

void chr_fe_set_busy_reply(Chardev *chr, const void *buf, size_t len)
{
    g_clear_pointer(&chr->busy_reply, g_bytes_unref);
    if (len) {
        chr->busy_reply = g_bytes_new(buf, len);
    }
}

void chr_fe_set_handlers(Chardev *chr, ChrReadHandler *fd_read, ChrEventHandler *fd_event,
                         void *opaque)
{
    chr->fd_read = fd_read;
    chr->fd_event = fd_event;
    chr->opaque = opaque;
    g_clear_handle_id(&chr->opened_idle, g_source_remove);
    /* A new frontend starts reading after its OPENED, from the main loop. */
    source_drop(&chr->read_src);
    g_clear_handle_id(&chr->accept_idle, g_source_remove);
    chr->read_paused = false;
    if (!fd_read) {
        chr->fd_can_read = NULL;
    }
    if ((fd_event || fd_read) && chr->peer) {
        chr->opened_idle = g_idle_add(chr_send_opened, chr);
    }
}

void chr_fe_set_can_read(Chardev *chr, ChrCanReadHandler *can_read)
{
    chr->fd_can_read = can_read;
}

void chr_fe_accept_input(Chardev *chr)
{
    if (chr->read_paused && !chr->accept_idle) {
        chr->accept_idle = g_idle_add(chr_accept_input_cb, chr);
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
            chr_watch(chr, &chr->write_src, true);
        }
    }
    return true;
}

bool chr_fe_is_connected(Chardev *chr)
{
    return chr->peer != NULL;
}

void chr_fe_hello_done(Chardev *chr)
{
    g_clear_handle_id(&chr->hello_timer, g_source_remove);
}

void chr_fe_disconnect(Chardev *chr)
{
    chr_peer_close(chr, "closed by this side");
}
