/*
 * vscclient: lends the cards of this machine (real ones through NSS, or one
 * made of certificates) to a remote ccid-card-passthru over the VSCard
 * protocol (include/proto/vscard.h).
 *
 * One thread waits on libcacard's event queue and hands each event to the
 * main loop; everything else (the socket, the protocol, the card calls, the
 * commands typed on standard input) runs on the main loop.
 *
 * With --tls-creds DIR the connection is TLS (QEMU's client file names in
 * DIR); the host's certificate must come from DIR's CA and name the host
 * (or --tls-hostname).
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <libcacard.h>
#include <nss.h>
#include <cert.h>
#include <pk11pub.h>

#include "crypto/tlscreds.h"
#include "proto/vscard.h"
#include "qemu/cacard-nss.h"
#include "trace/control.h"

#include "trace.h"

#define RECONNECT_DELAY_MS 1000
#define CONNECT_TIMEOUT_S 10
#define READ_CHUNK (64 * 1024)
/*
 * Backpressure: while more than OUTPUT_HIGH_WATER bytes wait for the host,
 * nothing more is read from it (what it sends is mostly requests, and
 * their answers would only pile up); reading resumes once the host has
 * taken all but OUTPUT_LOW_WATER. MAX_OUTPUT_QUEUE is then only reached by
 * the answers to one read (up to READ_CHUNK of small requests, each
 * answered with up to an extended APDU answer of 65,538 bytes in theory,
 * a few hundred bytes in practice) and by card events; past it the host is
 * dropped.
 */
#define OUTPUT_HIGH_WATER (256 * 1024)
#define OUTPUT_LOW_WATER (64 * 1024)
#define MAX_OUTPUT_QUEUE (1024 * 1024)

/* A request the host answers with a VSC_Error, in the order sent. */
typedef enum PendingAnswer {
    ANSWER_READER_ADD,
    ANSWER_OTHER,
} PendingAnswer;

typedef struct Client {
    const char *host;
    const char *port;
    int debug;
    bool reconnect;
    GMainLoop *loop;
    int exit_code;

    GSocketClient *sockclient;
    GSocketConnection *conn;
    GSocket *sock;
    GIOStream *io;             /* conn, or the TLS session on it */
    QCryptoTLSCreds *tls_creds;
    const char *tls_hostname;  /* the name the host's certificate must carry */
    GSource *in_source;        /* NULL while reading waits for the host to read */
    GSource *out_source;
    GByteArray *outq;          /* bytes the socket did not take yet */
    VSCardStream *stream;

    bool host_ready;           /* the host's Init arrived */
    GQueue deferred;           /* VEvent *: wait for the host's Init or a reader id */
    GQueue answers;            /* PendingAnswer, cast to pointers */
    VReader *pending_reader;   /* ReaderAdd sent, id not known yet */
    /* Lending NSS tokens (no -c, no -e): which of libcacard's readers we lend. */
    bool filter_readers;
    bool slots_removable;      /* --slots=removable */
    char *token_slot_name;     /* --token: the slot of that token */
    vreader_id_t default_reader_id;
    uint8_t *response;         /* one APDU answer, the largest the protocol allows */
} Client;

static void client_disconnect(Client *c, const char *why);
static void process_event(Client *c, VEvent *ev);

/*
 * --debug LEVEL and the debug command are aliases for trace points: each
 * level adds a family of vscard_* events (contrib/vscclient/trace-events).
 */
static void set_debug_level(Client *c, int level)
{
    static const char *const families[][3] = {
        { "vscard_host_*", "vscard_reader_*", "vscard_card_*" },
        { "vscard_msg_*" },
        { "vscard_apdu_*", "vscard_atr" },
    };

    c->debug = level;
    trace_set_pattern("vscard_*", false);
    for (int i = 0; i < level && i < (int)G_N_ELEMENTS(families); i++) {
        for (int j = 0; j < 3 && families[i][j]; j++) {
            trace_enable_pattern(families[i][j]);
        }
    }
}

/* " 3B 9F ...": the first 64 bytes, for the trace points that show them. */
static char *hex_bytes(const uint8_t *data, uint32_t len)
{
    GString *s = g_string_new(NULL);

    for (uint32_t i = 0; i < len && i < 64; i++) {
        g_string_append_printf(s, " %02X", data[i]);
    }
    if (len > 64) {
        g_string_append(s, " ...");
    }
    return g_string_free(s, FALSE);
}

/* --- Output ------------------------------------------------------------- */

static gboolean on_socket_writable(GObject *stream, gpointer opaque);
static void watch_readable(Client *c);

static GPollableOutputStream *output_stream(Client *c)
{
    return G_POLLABLE_OUTPUT_STREAM(g_io_stream_get_output_stream(c->io));
}

static void watch_writable(Client *c)
{
    if (c->out_source || !c->sock) {
        return;
    }
    c->out_source = g_pollable_output_stream_create_source(output_stream(c), NULL);
    g_source_set_callback(c->out_source, G_SOURCE_FUNC(on_socket_writable), c, NULL);
    g_source_attach(c->out_source, NULL);
}

/* Send what the queue holds without blocking; false if the peer is gone. */
static bool flush_queue(Client *c)
{
    while (c->outq->len > 0) {
        g_autoptr(GError) err = NULL;
        gssize n = g_pollable_output_stream_write_nonblocking(output_stream(c), c->outq->data,
                                                              c->outq->len, NULL, &err);

        if (n < 0) {
            if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
                watch_writable(c);
                return true;
            }
            fprintf(stderr, "vscclient: write to %s:%s failed: %s\n", c->host, c->port,
                    err->message);
            return false;
        }
        g_byte_array_remove_range(c->outq, 0, n);
        if (!c->in_source && c->outq->len <= OUTPUT_LOW_WATER) {
            watch_readable(c);
        }
    }
    return true;
}

static gboolean on_socket_writable(GObject *stream, gpointer opaque)
{
    Client *c = opaque;

    g_clear_pointer(&c->out_source, g_source_unref);
    if (!flush_queue(c)) {
        client_disconnect(c, "write failed");
    }
    return G_SOURCE_REMOVE;
}

/*
 * Every message leaves in a single send when the socket has room, and
 * TCP_NODELAY is set: a small answer is not held back for an ACK.
 */
static void send_msg(Client *c, VSCMsgType type, uint32_t reader_id,
                     const void *payload, uint32_t len)
{
    if (!c->sock) {
        return;
    }
    trace_vscard_msg_send(vscard_type_name(type), reader_id, len);
    if (c->outq->len + VSCARD_HEADER_SIZE + len > MAX_OUTPUT_QUEUE) {
        client_disconnect(c, "the host does not read what we send: dropping it");
        return;
    }
    vscard_build(c->outq, type, reader_id, payload, len);
    if (!c->out_source && !flush_queue(c)) {
        client_disconnect(c, "write failed");
    }
}

/* Requests the host answers with VSC_Error are remembered to match the answers. */
static void send_request(Client *c, VSCMsgType type, uint32_t reader_id,
                         const void *payload, uint32_t len)
{
    PendingAnswer kind = type == VSC_ReaderAdd ? ANSWER_READER_ADD : ANSWER_OTHER;

    g_queue_push_tail(&c->answers, GINT_TO_POINTER(kind));
    send_msg(c, type, reader_id, payload, len);
}

/* --- libcacard events ----------------------------------------------------- */

static gboolean deliver_event(gpointer data);

typedef struct EventHop {
    Client *client;
    VEvent *event;
} EventHop;

/* libcacard's queue blocks; its events are handled on the main loop. */
static gpointer event_thread(gpointer opaque)
{
    Client *c = opaque;
    VEvent *ev;

    while ((ev = vevent_wait_next_vevent()) != NULL) {
        EventHop *hop = g_new(EventHop, 1);

        hop->client = c;
        hop->event = ev;
        g_main_context_invoke(NULL, deliver_event, hop);
    }
    return NULL;
}

static gboolean deliver_event(gpointer data)
{
    EventHop *hop = data;

    process_event(hop->client, hop->event);
    g_free(hop);
    return G_SOURCE_REMOVE;
}

static void drain_deferred(Client *c)
{
    while (c->host_ready && !c->pending_reader && !g_queue_is_empty(&c->deferred)) {
        process_event(c, g_queue_pop_head(&c->deferred));
    }
}

static void send_card_insert(Client *c, VReader *reader, vreader_id_t id)
{
    unsigned char atr[ISO7816_MAX_ATR];
    int atr_len = sizeof(atr);

    /* The ATR is the answer to the power-on the client does on the guest's behalf. */
    if (vreader_power_on(reader, atr, &atr_len) != VREADER_OK || atr_len <= 0) {
        fprintf(stderr, "vscclient: card in reader %u gave no ATR\n", id);
        return;
    }
    trace_vscard_card_insert(id, atr_len);
    if (TRACE_VSCARD_ATR_ENABLED()) {
        g_autofree char *hex = hex_bytes(atr, atr_len);

        trace_vscard_atr(id, hex);
    }
    send_request(c, VSC_ATR, id, atr, atr_len);
}

/* A reader we do not lend has no id, and nothing of it is sent. */
static void send_reader_event(Client *c, VSCMsgType type, vreader_id_t id)
{
    if (id != VSCARD_UNDEFINED_READER_ID) {
        send_request(c, type, id, NULL, 0);
    }
}

/* Is this reader one we lend? Lending NSS tokens, --slots and --token choose. */
static bool reader_lent(const Client *c, VReader *reader)
{
    return !c->filter_readers ||
           cacard_nss_reader_wanted(vreader_get_name(reader), c->token_slot_name,
                                    c->slots_removable);
}

/*
 * Forward one libcacard event. Until the host has sent its Init, and while a
 * ReaderAdd waits for its reader id, events queue up in order.
 */
static void process_event(Client *c, VEvent *ev)
{
    vreader_id_t id;

    if (!c->host_ready || c->pending_reader) {
        g_queue_push_tail(&c->deferred, ev);
        return;
    }
    id = vreader_get_id(ev->reader);
    switch (ev->type) {
    case VEVENT_READER_INSERT: {
        const char *name = vreader_get_name(ev->reader);

        if (!reader_lent(c, ev->reader)) {
            /* Its id stays undefined: its card events are not sent either. */
            trace_vscard_reader_skipped(name);
            break;
        }
        trace_vscard_reader_add(name);
        c->pending_reader = vreader_reference(ev->reader);
        send_request(c, VSC_ReaderAdd, VSCARD_UNDEFINED_READER_ID, name, strlen(name));
        break;
    }
    case VEVENT_READER_REMOVE:
        trace_vscard_reader_remove(id);
        send_reader_event(c, VSC_ReaderRemove, id);
        break;
    case VEVENT_CARD_INSERT:
        if (id != VSCARD_UNDEFINED_READER_ID) {
            send_card_insert(c, ev->reader, id);
        }
        break;
    case VEVENT_CARD_REMOVE:
        trace_vscard_card_remove(id);
        send_reader_event(c, VSC_CardRemove, id);
        break;
    default:
        break;
    }
    vevent_delete(ev);
}

/* A new connection announces every reader and card again, as events would. */
static void replay_readers(Client *c)
{
    VReaderList *list = vreader_get_reader_list();

    for (VReaderListEntry *e = vreader_list_get_first(list); e; e = vreader_list_get_next(e)) {
        VReader *r = vreader_list_get_reader(e);

        vreader_set_id(r, VSCARD_UNDEFINED_READER_ID);
        g_queue_push_tail(&c->deferred, vevent_new(VEVENT_READER_INSERT, r, NULL));
        if (vreader_card_is_present(r) == VREADER_OK) {
            g_queue_push_tail(&c->deferred, vevent_new(VEVENT_CARD_INSERT, r, NULL));
        }
        vreader_free(r);
    }
    vreader_list_delete(list);
}

/* --- Messages from the host ------------------------------------------------ */

static void on_host_init(Client *c, const VSCardMsg *msg)
{
    trace_vscard_host_init(VSCARD_VERSION_MAJOR(msg->u.init.version),
        (msg->u.init.version >> VERSION_MINOR_BITS) & ((1u << VERSION_MIDDLE_BITS) - 1),
        msg->u.init.version & ((1u << VERSION_MINOR_BITS) - 1), msg->u.init.capabilities);
    if (c->host_ready) {
        return;    /* the protocol has no renegotiation */
    }
    c->host_ready = true;
    /* A reader left behind by an earlier client that died goes first. */
    send_request(c, VSC_ReaderRemove, VSCARD_MINIMAL_READER_ID, NULL, 0);
    drain_deferred(c);
}

static void on_host_error(Client *c, const VSCardMsg *msg)
{
    PendingAnswer kind = ANSWER_OTHER;

    if (!g_queue_is_empty(&c->answers)) {
        kind = GPOINTER_TO_INT(g_queue_pop_head(&c->answers));
    }
    if (kind == ANSWER_READER_ADD && c->pending_reader) {
        VReader *r = c->pending_reader;

        c->pending_reader = NULL;
        if (msg->u.error.code == VSC_SUCCESS) {
            vreader_set_id(r, msg->reader_id);
            trace_vscard_reader_id(vreader_get_name(r), msg->reader_id);
        } else {
            fprintf(stderr, "vscclient: host refused reader \"%s\" (code %u)\n",
                    vreader_get_name(r), msg->u.error.code);
        }
        vreader_free(r);
        drain_deferred(c);
        return;
    }
    if (msg->u.error.code != VSC_SUCCESS) {
        fprintf(stderr, "vscclient: host reports error %u for reader %u\n",
                msg->u.error.code, msg->reader_id);
    }
}

static void on_host_apdu(Client *c, const VSCardMsg *msg)
{
    g_autofree uint8_t *command = g_memdup2(msg->payload, msg->length);
    VReader *reader = vreader_get_reader_by_id(msg->reader_id);
    int len = ISO7816_MAX_APDU_RESPONSE;
    VReaderStatus st;

    if (TRACE_VSCARD_APDU_COMMAND_ENABLED()) {
        g_autofree char *hex = hex_bytes(msg->payload, msg->length);

        trace_vscard_apdu_command(msg->reader_id, hex);
    }
    if (!reader) {
        fprintf(stderr, "vscclient: APDU for unknown reader %u\n", msg->reader_id);
        send_msg(c, VSC_Error, msg->reader_id, "\0\0\0\1", VSCARD_ERROR_SIZE);
        return;
    }
    st = vreader_xfr_bytes(reader, command, msg->length, c->response, &len);
    vreader_free(reader);
    if (st != VREADER_OK || len < 2) {
        /* The host answers the guest with an error instead of waiting forever. */
        fprintf(stderr, "vscclient: card in reader %u did not answer (status %d)\n",
                msg->reader_id, st);
        send_msg(c, VSC_Error, msg->reader_id, "\0\0\0\1", VSCARD_ERROR_SIZE);
        return;
    }
    if (TRACE_VSCARD_APDU_ANSWER_ENABLED()) {
        g_autofree char *hex = hex_bytes(c->response, len);

        trace_vscard_apdu_answer(msg->reader_id, hex);
    }
    send_msg(c, VSC_APDU, msg->reader_id, c->response, len);
}

static void on_message(void *opaque, const VSCardMsg *msg)
{
    Client *c = opaque;

    trace_vscard_msg_recv(vscard_type_name(msg->type), msg->reader_id, msg->length);
    switch (msg->type) {
    case VSC_Init:
        on_host_init(c, msg);
        break;
    case VSC_Error:
        on_host_error(c, msg);
        break;
    case VSC_APDU:
        on_host_apdu(c, msg);
        break;
    case VSC_Flush:
        /* APDUs are answered as they come, so nothing is outstanding. */
        send_msg(c, VSC_FlushComplete, msg->reader_id, NULL, 0);
        break;
    }
}

static void on_stream_error(void *opaque, VSCardStreamError err, const VSCardMsg *msg)
{
    Client *c = opaque;

    fprintf(stderr, "vscclient: bad message from host (type %u, length %u): %s\n",
            msg->type, msg->length, vscard_error_str(err));
    send_msg(c, VSC_Error, msg->reader_id, "\0\0\0\1", VSCARD_ERROR_SIZE);
    if (vscard_error_is_fatal(err)) {
        client_disconnect(c, "protocol error");
    }
}

static const VSCardStreamOps stream_ops = {
    .message = on_message,
    .error = on_stream_error,
};

/* --- Connection ---------------------------------------------------------- */

/*
 * QEMU's passthru writes a message's header and payload in two writes
 * without TCP_NODELAY: Nagle holds the payload until our ACK of the
 * header, and a delayed ACK would add ~40 ms to every command. Linux
 * clears TCP_QUICKACK as it goes, so it is set again after each read.
 */
static void ack_quickly(Client *c)
{
#ifdef TCP_QUICKACK
    if (c->sock) {
        g_socket_set_option(c->sock, IPPROTO_TCP, TCP_QUICKACK, 1, NULL);
    }
#endif
}

static gboolean on_socket_readable(GObject *stream, gpointer opaque)
{
    Client *c = opaque;
    uint8_t buf[READ_CHUNK];
    g_autoptr(GError) err = NULL;
    gssize n;

    n = g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(stream), buf,
                                                 sizeof(buf), NULL, &err);
    if (n < 0 && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        client_disconnect(c, n == 0 ? "host closed the connection" : err->message);
        return G_SOURCE_CONTINUE;    /* client_disconnect destroyed this source */
    }
    ack_quickly(c);
    vscard_stream_feed(c->stream, buf, n);
    if (c->in_source && c->outq->len > OUTPUT_HIGH_WATER) {
        /* The host is behind on its reading: let its requests wait in the socket. */
        trace_vscard_host_read_paused(c->outq->len);
        g_source_destroy(c->in_source);
        g_clear_pointer(&c->in_source, g_source_unref);
    }
    return G_SOURCE_CONTINUE;
}

/* Read from the host (again): at connect, and once it has read what waited for it. */
static void watch_readable(Client *c)
{
    if (c->in_source || !c->sock) {
        return;
    }
    c->in_source = g_pollable_input_stream_create_source(
        G_POLLABLE_INPUT_STREAM(g_io_stream_get_input_stream(c->io)), NULL);
    g_source_set_callback(c->in_source, G_SOURCE_FUNC(on_socket_readable), c, NULL);
    g_source_attach(c->in_source, NULL);
}

/*
 * The TLS handshake runs before anything else is sent, blocking, within the
 * connect timeout; then the host's certificate is checked against our CA
 * and its name.
 */
static bool client_start_tls(Client *c, GError **errp)
{
    g_autoptr(GTlsConnection) tls = NULL;
    g_autofree char *dname = NULL;
    g_autoptr(GError) err = NULL;

    tls = qcrypto_tls_session_new(c->tls_creds, G_IO_STREAM(c->conn), c->tls_hostname, &err);
    if (!tls) {
        g_set_error(errp, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot start TLS: %s", err->message);
        return false;
    }
    g_socket_set_timeout(c->sock, CONNECT_TIMEOUT_S);
    if (!g_tls_connection_handshake(tls, NULL, &err)) {
        g_set_error(errp, G_IO_ERROR, G_IO_ERROR_FAILED, "TLS handshake with %s port %s failed: %s",
                    c->host, c->port, err->message);
        return false;
    }
    if (!qcrypto_tls_session_check_peer(c->tls_creds, tls, c->tls_hostname, &dname, &err)) {
        g_set_error(errp, G_IO_ERROR, G_IO_ERROR_FAILED, "refusing host %s port %s: %s",
                    c->host, c->port, err->message);
        return false;
    }
    trace_vscard_host_tls(dname ? dname : "(no certificate)");
    c->io = G_IO_STREAM(g_steal_pointer(&tls));
    return true;
}

static void client_drop_connection(Client *c)
{
    if (c->io && c->io != G_IO_STREAM(c->conn)) {
        g_object_unref(c->io);
    }
    c->io = NULL;
    g_io_stream_close(G_IO_STREAM(c->conn), NULL, NULL);
    g_clear_object(&c->conn);
    c->sock = NULL;
}

static bool client_connect(Client *c, GError **errp)
{
    g_autoptr(GSocketConnectable) addr = NULL;
    g_autoptr(GError) err = NULL;
    guint64 port;

    if (!g_ascii_string_to_unsigned(c->port, 10, 1, 65535, &port, NULL)) {
        g_set_error(errp, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "invalid port '%s'", c->port);
        return false;
    }
    /* Resolves names and IPv4 and IPv6 literals; tries each address in turn. */
    addr = g_network_address_new(c->host, port);
    c->conn = g_socket_client_connect(c->sockclient, addr, NULL, &err);
    if (!c->conn) {
        g_set_error(errp, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot connect to %s port %s: %s",
                    c->host, c->port, err->message);
        return false;
    }
    c->sock = g_socket_connection_get_socket(c->conn);
    c->io = G_IO_STREAM(c->conn);
    if (c->tls_creds && !client_start_tls(c, errp)) {
        client_drop_connection(c);
        return false;
    }
    /* The connect timeout stays on the socket; an idle card is not an error. */
    g_socket_set_timeout(c->sock, 0);
    g_socket_set_blocking(c->sock, FALSE);
    if (!g_socket_set_option(c->sock, IPPROTO_TCP, TCP_NODELAY, 1, &err)) {
        trace_vscard_host_nodelay_failed(err->message);
    }
    ack_quickly(c);
    watch_readable(c);
    trace_vscard_host_connected(c->host, c->port);

    c->host_ready = false;
    vscard_stream_reset(c->stream);
    vscard_build_init(c->outq, VSCARD_UNDEFINED_READER_ID, 0);
    return flush_queue(c);
}

static gboolean try_reconnect(gpointer opaque)
{
    Client *c = opaque;
    g_autoptr(GError) err = NULL;

    if (!client_connect(c, &err)) {
        trace_vscard_host_reconnect_failed(err ? err->message : "connection failed");
        return G_SOURCE_CONTINUE;
    }
    fprintf(stderr, "vscclient: reconnected to %s port %s\n", c->host, c->port);
    replay_readers(c);
    return G_SOURCE_REMOVE;
}

static void client_disconnect(Client *c, const char *why)
{
    VEvent *ev;

    if (!c->conn) {
        return;
    }
    fprintf(stderr, "vscclient: disconnected: %s\n", why);
    if (c->in_source) {
        g_source_destroy(c->in_source);
        g_clear_pointer(&c->in_source, g_source_unref);
    }
    if (c->out_source) {
        g_source_destroy(c->out_source);
        g_clear_pointer(&c->out_source, g_source_unref);
    }
    client_drop_connection(c);
    g_byte_array_set_size(c->outq, 0);
    vscard_stream_reset(c->stream);
    c->host_ready = false;
    g_queue_clear(&c->answers);
    if (c->pending_reader) {
        vreader_free(c->pending_reader);
        c->pending_reader = NULL;
    }
    /* Stale events are replaced by a replay of what exists now. */
    while ((ev = g_queue_pop_head(&c->deferred)) != NULL) {
        vevent_delete(ev);
    }
    if (c->reconnect) {
        g_timeout_add(RECONNECT_DELAY_MS, try_reconnect, c);
    } else {
        c->exit_code = 1;
        g_main_loop_quit(c->loop);
    }
}

/* --- Commands on standard input --------------------------------------------- */

static vreader_id_t parse_reader_id(const char *arg, vreader_id_t fallback)
{
    guint64 v;

    if (!arg || !*arg || !g_ascii_string_to_unsigned(arg, 10, 0, G_MAXUINT32 - 1, &v, NULL)) {
        return fallback;
    }
    return v;
}

static void cmd_list(Client *c)
{
    VReaderList *list = vreader_get_reader_list();

    printf("Readers:\n");
    for (VReaderListEntry *e = vreader_list_get_first(list); e; e = vreader_list_get_next(e)) {
        VReader *r = vreader_list_get_reader(e);
        vreader_id_t id = vreader_get_id(r);
        const char *card = vreader_card_is_present(r) == VREADER_OK ? "CARD_PRESENT" : "no card     ";

        if (id == VSCARD_UNDEFINED_READER_ID) {
            printf("INA %s %s\n", card, vreader_get_name(r));
        } else {
            printf("%3u %s %s%s\n", id, card, vreader_get_name(r),
                   id == c->default_reader_id ? " (selected)" : "");
        }
        vreader_free(r);
    }
    vreader_list_delete(list);
}

static void cmd_insert_remove(Client *c, bool insert, const char *arg)
{
    vreader_id_t id = parse_reader_id(arg, c->default_reader_id);
    VReader *r = vreader_get_reader_by_id(id);
    VCardEmulError e;

    if (!r) {
        printf("no reader with id %u\n", id);
        return;
    }
    e = insert ? vcard_emul_force_card_insert(r) : vcard_emul_force_card_remove(r);
    printf("%s %s: %s\n", insert ? "insert" : "remove", vreader_get_name(r),
           e == VCARD_EMUL_OK ? "done" : "failed");
    vreader_free(r);
}

static void cmd_select(Client *c, const char *arg)
{
    vreader_id_t id = parse_reader_id(arg, VSCARD_UNDEFINED_READER_ID);
    VReader *r = id == VSCARD_UNDEFINED_READER_ID ? NULL : vreader_get_reader_by_id(id);

    if (!r) {
        printf("no reader with id %s\n", arg ? arg : "(none given)");
        return;
    }
    c->default_reader_id = id;
    printf("selected reader %u, %s\n", id, vreader_get_name(r));
    vreader_free(r);
}

/*
 * Send what is queued, then half-close and read the host's last answers:
 * closing with unread input would make the host see a reset, not an end.
 */
static void close_gracefully(Client *c)
{
    gint64 deadline = g_get_monotonic_time() + G_USEC_PER_SEC;
    uint8_t buf[4096];

    GInputStream *in = g_io_stream_get_input_stream(c->io);

    g_socket_set_timeout(c->sock, 1);
    g_output_stream_write_all(G_OUTPUT_STREAM(output_stream(c)), c->outq->data, c->outq->len,
                              NULL, NULL, NULL);
    g_byte_array_set_size(c->outq, 0);
    if (c->io != G_IO_STREAM(c->conn)) {
        /* TLS: say close_notify before the TCP half-close. */
        g_output_stream_close(G_OUTPUT_STREAM(output_stream(c)), NULL, NULL);
    }
    g_socket_shutdown(c->sock, FALSE, TRUE, NULL);
    while (g_get_monotonic_time() < deadline) {
        if (g_input_stream_read(in, buf, sizeof(buf), NULL, NULL) <= 0) {
            break;
        }
    }
}

/* Leave the host clean: every card and reader we announced is withdrawn first. */
static void cmd_exit(Client *c)
{
    VReaderList *list = vreader_get_reader_list();

    for (VReaderListEntry *e = vreader_list_get_first(list); e; e = vreader_list_get_next(e)) {
        VReader *r = vreader_list_get_reader(e);
        vreader_id_t id = vreader_get_id(r);

        if (id != VSCARD_UNDEFINED_READER_ID) {
            if (vreader_card_is_present(r) == VREADER_OK) {
                send_msg(c, VSC_CardRemove, id, NULL, 0);
            }
            send_msg(c, VSC_ReaderRemove, id, NULL, 0);
        }
        vreader_free(r);
    }
    vreader_list_delete(list);
    if (c->sock) {
        close_gracefully(c);
    }
    c->exit_code = 0;
    g_main_loop_quit(c->loop);
}

static void print_commands(void)
{
    printf("commands:\n"
           "  list             readers, their ids and cards\n"
           "  insert [ID]      insert the card of reader ID (default: selected)\n"
           "  remove [ID]      remove the card of reader ID\n"
           "  select ID        make reader ID the default\n"
           "  debug [LEVEL]    show or set the debug level\n"
           "  exit             withdraw cards and readers from the host and quit\n");
}

static void run_command(Client *c, char *line)
{
    g_auto(GStrv) words = NULL;
    const char *cmd, *arg;

    g_strstrip(line);
    words = g_strsplit_set(line, " \t", 2);
    cmd = words[0] ? words[0] : "";
    arg = words[0] && words[1] ? g_strstrip(words[1]) : NULL;
    if (!*cmd) {
        return;
    } else if (!strcmp(cmd, "list")) {
        cmd_list(c);
    } else if (!strcmp(cmd, "insert") || !strcmp(cmd, "remove")) {
        cmd_insert_remove(c, cmd[0] == 'i', arg);
    } else if (!strcmp(cmd, "select")) {
        cmd_select(c, arg);
    } else if (!strcmp(cmd, "debug")) {
        set_debug_level(c, arg ? (int)parse_reader_id(arg, c->debug) : c->debug);
        printf("debug level = %d\n", c->debug);
    } else if (!strcmp(cmd, "exit") || !strcmp(cmd, "quit")) {
        cmd_exit(c);
    } else {
        print_commands();
    }
}

/* A prompt for a person at a terminal; scripts feeding stdin get none. */
static void prompt(void)
{
    if (isatty(STDIN_FILENO)) {
        fputs("> ", stdout);
    }
    fflush(stdout);
}

static gboolean on_stdin(GIOChannel *ch, GIOCondition cond, gpointer opaque)
{
    Client *c = opaque;
    g_autofree char *line = NULL;
    GIOStatus st;

    st = g_io_channel_read_line(ch, &line, NULL, NULL, NULL);
    if (st == G_IO_STATUS_AGAIN) {
        return G_SOURCE_CONTINUE;
    }
    if (st != G_IO_STATUS_NORMAL) {
        /* No more commands (stdin closed): keep serving the card. */
        return G_SOURCE_REMOVE;
    }
    run_command(c, line);
    if (g_main_loop_is_running(c->loop)) {
        prompt();
    }
    return G_SOURCE_CONTINUE;
}

/* --- Start-up ----------------------------------------------------------------- */

/* Long options without a short form. */
enum {
    OPT_DB = 256,
    OPT_SLOTS,
    OPT_TOKEN,
    OPT_TLS_CREDS,
    OPT_TLS_HOSTNAME,
};

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: vscclient [-c CERTNAME]... [--db DB] [--slots WHICH] [--token LABEL]\n"
        "                 [-e \"EMULATOR OPTIONS\"] [-d LEVEL] [-T TRACE]...\n"
        "                 [--reconnect] [--tls-creds DIR [--tls-hostname NAME]] HOST PORT\n"
        "Lend this machine's smart cards to a remote ccid-card-passthru over VSCard.\n"
        "\n"
        "  -c, --cert CERTNAME   add a certificate to a software card (repeat for each,\n"
        "                        usually three); the database is /etc/pki/nssdb unless\n"
        "                        --db gives another\n"
        "      --db DB           the NSS database, e.g. sql:DIR (default /etc/pki/nssdb)\n"
        "      --slots WHICH     which NSS slots to lend as readers (without -c):\n"
        "                        removable-hw (default: removable hardware slots) or\n"
        "                        removable (software tokens such as SoftHSM2 too)\n"
        "      --token LABEL     lend only the reader of the token labelled LABEL\n"
        "  -e, --emulator OPTS   raw libcacard emulator options instead of the four\n"
        "                        above, e.g. 'db=\"sql:DIR\" use_hw=no soft=(,Test,CAC,,c1,c2,c3)'\n"
        "  -d, --debug LEVEL     1: connection and card events, 2: messages, 3: APDU bytes\n"
        "                        (shorthands for the trace points below)\n"
        "  -T, --trace [enable=]PATTERN[,events=FILE][,file=FILE]\n"
        "                        enable the vscard_* trace points matching PATTERN, or\n"
        "                        listed in FILE; write them to FILE instead of stderr\n"
        "                        (--trace help lists them)\n"
        "  -r, --reconnect       when the host goes away, connect again every second\n"
        "      --tls-creds DIR   TLS with QEMU's client files in DIR: ca-cert.pem (the\n"
        "                        host's CA), client-cert.pem + client-key.pem (ours)\n"
        "      --tls-hostname NAME  the name the host's certificate must carry\n"
        "                        (default: HOST)\n"
        "  -h, --help            this text\n"
        "Without -c or -e, the tokens of the NSS database are lent (PKCS#11 modules\n"
        "registered with modutil), in readers named after their slots.\n"
        "HOST may be a name, an IPv4 address or an IPv6 address.\n"
        "Commands on standard input: list, insert [ID], remove [ID], select ID,\n"
        "debug [LEVEL], exit.\n");
}

/* libcacard's soft= card from -c names, with the emulator options before it. */
static char *build_emulator_options(const char *emul, GPtrArray *certs)
{
    GString *s;

    if (certs->len == 0) {
        return g_strdup(emul);
    }
    s = g_string_new(emul ? emul : "db=\"/etc/pki/nssdb\"");
    if (!strstr(s->str, "use_hw")) {
        g_string_append(s, " use_hw=no");
    }
    g_string_append(s, " soft=(,Virtual Reader,CAC,");
    for (guint i = 0; i < certs->len; i++) {
        g_string_append_printf(s, ",%s", (const char *)g_ptr_array_index(certs, i));
    }
    g_string_append_c(s, ')');
    return g_string_free(s, FALSE);
}

/* The db="..." an emulator option string names, without an "sql:" prefix. */
static char *emulator_db_dir(const char *opts)
{
    g_autoptr(GRegex) re = g_regex_new("db=\"?(sql:|dbm:)?([^\" ]+)", 0, 0, NULL);
    g_autoptr(GMatchInfo) m = NULL;

    if (!opts || !g_regex_match(re, opts, 0, &m)) {
        return NULL;
    }
    return g_match_info_fetch(m, 2);
}

/* libcacard says little when a database or certificate is missing; say it here. */
static bool check_card_sources(const char *opts, GPtrArray *certs, GError **errp)
{
    g_autofree char *dir = emulator_db_dir(opts);

    for (guint i = 0; i < certs->len; i++) {
        const char *nick = g_ptr_array_index(certs, i);
        CERTCertificate *cert = CERT_FindCertByNickname(CERT_GetDefaultCertDB(), nick);

        if (!cert) {
            g_set_error(errp, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                        "certificate '%s' not found in database %s", nick,
                        dir ? dir : "/etc/pki/nssdb");
            return false;
        }
        CERT_DestroyCertificate(cert);
    }
    return true;
}

/* --token: the slot holding that token, which --slots must let libcacard mirror. */
static bool find_token(Client *c, const char *label, GError **errp)
{
    PK11SlotInfo *slot = PK11_FindSlotByName(label);
    bool ok;

    if (!slot) {
        g_set_error(errp, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    "--token %s: no token with that label in the NSS database", label);
        return false;
    }
    ok = cacard_nss_slot_eligible(slot, c->slots_removable);
    if (ok) {
        c->token_slot_name = g_strdup(PK11_GetSlotName(slot));
    } else {
        g_set_error(errp, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "--token %s: its slot '%s' is not a removable%s slot%s", label,
                    PK11_GetSlotName(slot), c->slots_removable ? "" : " hardware",
                    !c->slots_removable && PK11_IsRemovable(slot) ?
                    " (--slots removable lends software tokens too)" : "");
    }
    PK11_FreeSlot(slot);
    return ok;
}

static bool init_cards(const char *opts, GPtrArray *certs, GError **errp)
{
    g_autofree char *dir = emulator_db_dir(opts);
    g_autofree char *hint = NULL;

    if (dir && !g_file_test(dir, G_FILE_TEST_IS_DIR)) {
        g_set_error(errp, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    "certificate database %s not found", dir);
        return false;
    }
    hint = g_strdup_printf("certificate database %s unusable?", dir ? dir : "/etc/pki/nssdb");
    return cacard_nss_start(opts, hint, errp) && check_card_sources(opts, certs, errp);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "cert", required_argument, NULL, 'c' },
        { "emulator", required_argument, NULL, 'e' },
        { "debug", required_argument, NULL, 'd' },
        { "trace", required_argument, NULL, 'T' },
        { "reconnect", no_argument, NULL, 'r' },
        { "tls-creds", required_argument, NULL, OPT_TLS_CREDS },
        { "tls-hostname", required_argument, NULL, OPT_TLS_HOSTNAME },
        { "db", required_argument, NULL, OPT_DB },
        { "slots", required_argument, NULL, OPT_SLOTS },
        { "token", required_argument, NULL, OPT_TOKEN },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    g_autoptr(GPtrArray) certs = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *opts = NULL;
    const char *emul = NULL;
    const char *tls_dir = NULL;
    const char *db = NULL;
    const char *slots = NULL;
    const char *token = NULL;
    Client c = { .default_reader_id = VSCARD_MINIMAL_READER_ID };
    GIOChannel *in;
    int opt;

    while ((opt = getopt_long(argc, argv, "c:e:d:T:rh", longopts, NULL)) != -1) {
        bool help;

        switch (opt) {
        case 'c':
            g_ptr_array_add(certs, optarg);
            break;
        case 'e':
            emul = optarg;
            break;
        case 'd':
            set_debug_level(&c, atoi(optarg));
            break;
        case 'T':
            if (!trace_opt_parse(optarg, &help, &err)) {
                fprintf(stderr, "vscclient: --trace %s: %s\n", optarg, err->message);
                return 2;
            }
            if (help) {
                trace_list_events(stdout);
                return 0;
            }
            break;
        case 'r':
            c.reconnect = true;
            break;
        case OPT_TLS_CREDS:
            tls_dir = optarg;
            break;
        case OPT_TLS_HOSTNAME:
            c.tls_hostname = optarg;
            break;
        case OPT_DB:
            db = optarg;
            break;
        case OPT_SLOTS:
            slots = optarg;
            break;
        case OPT_TOKEN:
            token = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "vscclient: expected HOST and PORT\n");
        usage(stderr);
        return 2;
    }
    c.host = argv[optind];
    c.port = argv[optind + 1];
    if (c.tls_hostname && !tls_dir) {
        fprintf(stderr, "vscclient: --tls-hostname needs --tls-creds\n");
        return 2;
    }
    if (tls_dir) {
        c.tls_creds = qcrypto_tls_creds_load(tls_dir, QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT, true,
                                             &err);
        if (!c.tls_creds) {
            fprintf(stderr, "vscclient: --tls-creds %s: %s\n", tls_dir, err->message);
            return 2;
        }
        if (!c.tls_hostname) {
            c.tls_hostname = c.host;
        }
    }

    if (emul && (db || slots || token)) {
        fprintf(stderr, "vscclient: -e is raw libcacard options: give the database and "
                "slots there, or use --db/--slots/--token without -e\n");
        return 2;
    }
    if (certs->len && (slots || token)) {
        fprintf(stderr, "vscclient: --slots and --token choose NSS tokens; -c makes a "
                "software card\n");
        return 2;
    }
    if (slots && strcmp(slots, "removable") != 0 && strcmp(slots, "removable-hw") != 0) {
        fprintf(stderr, "vscclient: --slots %s: expected removable-hw or removable\n", slots);
        return 2;
    }
    if (db && strchr(db, '"')) {
        fprintf(stderr, "vscclient: --db %s: no quotes in a database name\n", db);
        return 2;
    }
    c.filter_readers = !emul && certs->len == 0;
    c.slots_removable = slots && strcmp(slots, "removable") == 0;
    if (!emul && (db || c.slots_removable)) {
        g_autofree char *db_opt = g_strdup_printf("db=\"%s\"", db ? db : "/etc/pki/nssdb");

        opts = certs->len ? build_emulator_options(db_opt, certs) :
               g_strdup_printf("%s use_hw=%s", db_opt, c.slots_removable ? "removable" : "yes");
    } else {
        opts = build_emulator_options(emul, certs);
    }
    if (!init_cards(opts, certs, &err) || (token && !find_token(&c, token, &err))) {
        fprintf(stderr, "vscclient: %s\n", err->message);
        /*
         * libcacard's token pollers cannot be stopped; library destructors
         * (SoftHSM2's) must not run under them, as at the normal exit below.
         */
        fflush(NULL);
        _exit(1);
    }

    c.loop = g_main_loop_new(NULL, FALSE);
    c.outq = g_byte_array_new();
    c.response = g_malloc(ISO7816_MAX_APDU_RESPONSE);
    c.stream = vscard_stream_new(VSCARD_ROLE_CLIENT, &stream_ops, &c);
    c.sockclient = g_socket_client_new();
    g_socket_client_set_timeout(c.sockclient, CONNECT_TIMEOUT_S);
    if (!client_connect(&c, &err)) {
        fprintf(stderr, "vscclient: %s\n", err->message);
        if (!c.reconnect) {
            return 1;
        }
        g_timeout_add(RECONNECT_DELAY_MS, try_reconnect, &c);
    }
    g_thread_unref(g_thread_new("vsc-events", event_thread, &c));

    in = g_io_channel_unix_new(STDIN_FILENO);
    g_io_add_watch(in, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, &c);
    prompt();
    g_main_loop_run(c.loop);

    if (c.conn) {
        client_drop_connection(&c);
    }
    g_io_channel_unref(in);
    /* The event thread may still sit in libcacard's queue: leave without joining. */
    fflush(stdout);
    _exit(c.exit_code);
}
