/*
 * qtests of ccid-card-passthru: the real vccid, a USB host on its usbredir
 * socket, and this test as the VSCard client on the passthru chardev,
 * well-behaved or hostile. The client runs in a thread of its own, like a
 * card on another machine, so the USB host can wait for answers.
 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>

#include "usb-ccid-common.h"
#include "proto/vscard.h"

#define PEER_TIMEOUT_MS 10000

static const uint8_t test_atr[] = { 0x3b, 0x8b, 0x80, 0x01, 0x00, 0x31, 0xc1, 0x64,
                                    0x08, 0x60, 0x32, 0x00, 0x00, 0x90, 0x00 };

/* What the client does when the guest's command arrives. */
typedef enum PeerMode {
    PEER_ANSWER,        /* echo the command back, then 90 00 */
    PEER_DIE_ON_APDU,   /* close the connection instead of answering */
    PEER_ERROR_ON_APDU, /* VSC_Error instead of an answer, as libcacard's client does */
    PEER_HOLD,          /* keep the command; peer_release() answers it later */
} PeerMode;

typedef struct PeerMsg {
    uint32_t type;
    uint32_t reader_id;
    uint32_t code;      /* Error code, Init version */
    GBytes *payload;
} PeerMsg;

typedef struct VscPeer {
    GSocket *sock;
    GThread *thread;
    VSCardStream *stream;
    GMutex lock;
    GCond cond;
    GQueue msgs;        /* PeerMsg *, everything but APDUs */
    PeerMode mode;
    unsigned apdus;
    GQueue held;        /* GByteArray *: commands kept in PEER_HOLD mode, in order */
    unsigned flushes;   /* Flush messages seen */
    bool closed;        /* the daemon closed, or we died */
} VscPeer;

static void peer_msg_free(PeerMsg *m)
{
    g_clear_pointer(&m->payload, g_bytes_unref);
    g_free(m);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PeerMsg, peer_msg_free)

static void peer_send_raw(VscPeer *p, const void *buf, size_t len)
{
    const uint8_t *b = buf;

    while (len > 0) {
        g_autoptr(GError) err = NULL;
        gssize n = g_socket_send(p->sock, (const gchar *)b, len, NULL, &err);

        g_assert_no_error(err);
        b += n;
        len -= n;
    }
}

static void peer_send(VscPeer *p, VSCMsgType type, uint32_t reader_id, const void *payload,
                      uint32_t len)
{
    g_autoptr(GByteArray) b = g_byte_array_new();

    vscard_build(b, type, reader_id, payload, len);
    peer_send_raw(p, b->data, b->len);
}

/* The card: echo the command (at most 65,536 bytes) and 90 00. */
static void peer_answer_apdu(VscPeer *p, const VSCardMsg *msg)
{
    g_autoptr(GByteArray) rsp = g_byte_array_new();

    g_byte_array_append(rsp, msg->payload, MIN(msg->length, 65536u));
    g_byte_array_append(rsp, (const uint8_t *)"\x90\x00", 2);
    peer_send(p, VSC_APDU, msg->reader_id, rsp->data, rsp->len);
}

static void peer_on_message(void *opaque, const VSCardMsg *msg)
{
    VscPeer *p = opaque;
    PeerMsg *m;

    if (msg->type == VSC_APDU) {
        g_mutex_lock(&p->lock);
        p->apdus++;
        g_cond_broadcast(&p->cond);
        g_mutex_unlock(&p->lock);
        if (p->mode == PEER_DIE_ON_APDU) {
            g_socket_close(p->sock, NULL);   /* as if killed: no goodbye */
        } else if (p->mode == PEER_HOLD) {
            g_mutex_lock(&p->lock);
            g_queue_push_tail(&p->held, g_byte_array_new_take(g_memdup2(msg->payload, msg->length),
                                                               msg->length));
            g_cond_broadcast(&p->cond);
            g_mutex_unlock(&p->lock);
        } else if (p->mode == PEER_ERROR_ON_APDU) {
            /* libcacard's client puts its status in host byte order. */
            const uint32_t status = 1;

            peer_send(p, VSC_Error, msg->reader_id, &status, sizeof(status));
        } else {
            peer_answer_apdu(p, msg);
        }
        return;
    }
    if (msg->type == VSC_Flush) {
        /* A client answers once what came before is answered: in order, here. */
        g_mutex_lock(&p->lock);
        p->flushes++;
        g_mutex_unlock(&p->lock);
        peer_send(p, VSC_FlushComplete, msg->reader_id, NULL, 0);
        return;
    }
    m = g_new0(PeerMsg, 1);
    m->type = msg->type;
    m->reader_id = msg->reader_id;
    m->code = msg->type == VSC_Init ? msg->u.init.version : msg->u.error.code;
    m->payload = g_bytes_new(msg->payload, msg->length);
    g_mutex_lock(&p->lock);
    g_queue_push_tail(&p->msgs, m);
    g_cond_broadcast(&p->cond);
    g_mutex_unlock(&p->lock);
}

static void peer_on_error(void *opaque, VSCardStreamError err, const VSCardMsg *msg)
{
    g_error("the daemon sent a bad VSCard message (type %u, length %u): %s",
            msg->type, msg->length, vscard_error_str(err));
}

static const VSCardStreamOps peer_ops = {
    .message = peer_on_message,
    .error = peer_on_error,
};

static gpointer peer_thread(gpointer opaque)
{
    VscPeer *p = opaque;
    uint8_t buf[65536];

    for (;;) {
        gssize n = g_socket_receive(p->sock, (gchar *)buf, sizeof(buf), NULL, NULL);

        if (n <= 0) {
            break;
        }
        vscard_stream_feed(p->stream, buf, n);
        if (g_socket_is_closed(p->sock)) {
            break;
        }
    }
    g_mutex_lock(&p->lock);
    p->closed = true;
    g_cond_broadcast(&p->cond);
    g_mutex_unlock(&p->lock);
    return NULL;
}

static VscPeer *peer_connect_address(GSocketAddress *addr)
{
    VscPeer *p = g_new0(VscPeer, 1);
    g_autoptr(GError) err = NULL;

    p->sock = g_socket_new(g_socket_address_get_family(addr), G_SOCKET_TYPE_STREAM,
                           G_SOCKET_PROTOCOL_DEFAULT, &err);
    g_assert_no_error(err);
    g_socket_connect(p->sock, addr, NULL, &err);
    g_assert_no_error(err);
    g_mutex_init(&p->lock);
    g_cond_init(&p->cond);
    p->stream = vscard_stream_new(VSCARD_ROLE_CLIENT, &peer_ops, p);
    p->thread = g_thread_new("vsc-peer", peer_thread, p);
    return p;
}

static char *vsc_path(VccidProcess *v)
{
    return g_build_filename(v->tmpdir, "vsc.sock", NULL);
}

static VscPeer *peer_connect(VccidProcess *v)
{
    g_autofree char *path = vsc_path(v);
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(path);

    return peer_connect_address(addr);
}

/* Next message from the daemon, which must come within the timeout. */
static PeerMsg *peer_next(VscPeer *p)
{
    gint64 deadline = g_get_monotonic_time() + PEER_TIMEOUT_MS * 1000;
    PeerMsg *m;

    g_mutex_lock(&p->lock);
    while (g_queue_is_empty(&p->msgs) && !p->closed) {
        if (!g_cond_wait_until(&p->cond, &p->lock, deadline)) {
            break;
        }
    }
    m = g_queue_pop_head(&p->msgs);
    g_mutex_unlock(&p->lock);
    if (!m) {
        g_error("no VSCard message from the daemon (connection %s)",
                p->closed ? "closed" : "open");
    }
    return m;
}

static void peer_expect_error(VscPeer *p, uint32_t reader_id, uint32_t code)
{
    g_autoptr(PeerMsg) m = peer_next(p);

    g_assert_cmpuint(m->type, ==, VSC_Error);
    g_assert_cmpuint(m->code, ==, code);
    g_assert_cmpuint(m->reader_id, ==, reader_id);
}

/* True if the daemon closed the connection within the timeout. */
static bool peer_wait_closed(VscPeer *p)
{
    gint64 deadline = g_get_monotonic_time() + PEER_TIMEOUT_MS * 1000;
    bool closed;

    g_mutex_lock(&p->lock);
    while (!p->closed && g_cond_wait_until(&p->cond, &p->lock, deadline)) {
    }
    closed = p->closed;
    g_mutex_unlock(&p->lock);
    return closed;
}

static void peer_free(VscPeer *p)
{
    if (!g_socket_is_closed(p->sock)) {
        g_socket_shutdown(p->sock, TRUE, TRUE, NULL);
    }
    g_thread_join(p->thread);
    g_object_unref(p->sock);
    vscard_stream_free(p->stream);
    g_queue_clear_full(&p->held, (GDestroyNotify)g_byte_array_unref);
    g_queue_clear_full(&p->msgs, (GDestroyNotify)peer_msg_free);
    g_mutex_clear(&p->lock);
    g_cond_clear(&p->cond);
    g_free(p);
}

/* Init both ways, then the reader: the opening every client makes. */
static void peer_handshake(VscPeer *p)
{
    g_autoptr(GByteArray) init = g_byte_array_new();
    g_autoptr(PeerMsg) m = NULL;
    gsize len;
    const uint8_t *data;

    vscard_build_init(init, VSCARD_UNDEFINED_READER_ID, 0);
    peer_send_raw(p, init->data, init->len);
    m = peer_next(p);
    g_assert_cmpuint(m->type, ==, VSC_Init);
    g_assert_cmpuint(m->code, ==, VSCARD_VERSION);
    data = g_bytes_get_data(m->payload, &len);
    g_assert_cmpuint(len, >=, 8);
    g_assert_cmpmem(data, 4, "VSCD", 4);

    peer_send(p, VSC_ReaderAdd, VSCARD_UNDEFINED_READER_ID, "Test Reader", 11);
    /* The reader id travels in the header of a VSC_Error(VSC_SUCCESS). */
    peer_expect_error(p, VSCARD_MINIMAL_READER_ID, VSC_SUCCESS);
}

static void peer_insert_card(VscPeer *p)
{
    peer_send(p, VSC_ATR, 0, test_atr, sizeof(test_atr));
    peer_expect_error(p, 0, VSC_SUCCESS);
}

static bool peer_has_held(VscPeer *p)
{
    bool held;

    g_mutex_lock(&p->lock);
    held = !g_queue_is_empty(&p->held);
    g_mutex_unlock(&p->lock);
    return held;
}

/* Wait until the client holds n commands. */
static void peer_wait_held(VscPeer *p, guint n)
{
    gint64 deadline = g_get_monotonic_time() + PEER_TIMEOUT_MS * 1000;
    guint have;

    g_mutex_lock(&p->lock);
    while (g_queue_get_length(&p->held) < n &&
           g_cond_wait_until(&p->cond, &p->lock, deadline)) {
    }
    have = g_queue_get_length(&p->held);
    g_mutex_unlock(&p->lock);
    g_assert_cmpuint(have, >=, n);
}

/* Wait for a held command, then answer the oldest as the card would. */
static void peer_release_held(VscPeer *p)
{
    gint64 deadline = g_get_monotonic_time() + PEER_TIMEOUT_MS * 1000;
    g_autoptr(GByteArray) held = NULL;
    VSCardMsg msg = { .type = VSC_APDU };

    g_mutex_lock(&p->lock);
    while (g_queue_is_empty(&p->held) && g_cond_wait_until(&p->cond, &p->lock, deadline)) {
    }
    held = g_queue_pop_head(&p->held);
    g_mutex_unlock(&p->lock);
    g_assert_nonnull(held);
    msg.payload = held->data;
    msg.length = held->len;
    peer_answer_apdu(p, &msg);
}

/* ---- the USB side ---- */

static VccidProcess *start_passthru(void)
{
    static const char *const args[] = {
        "-chardev", "socket,id=vsc,path=@DIR@/vsc.sock,server=on,wait=off",
        "-device", "usb-ccid,id=ccid",
        "-device", "ccid-card-passthru,chardev=vsc,debug=3",
        NULL,
    };

    return vccid_start(args);
}

static CcidHost *open_host(VccidProcess *v)
{
    CcidHost *c = ccid_host_open(v->sock_path);

    g_assert_cmpint(urh_start_interrupt_receiving(c->usb, c->ep_int_in), ==, 0);
    return c;
}

/* The peer leaves, then the host; then vccid stops (and must exit cleanly). */
static void end_session(VccidProcess *v, CcidHost *c, VscPeer *p)
{
    peer_free(p);
    ccid_host_free(c);
    vccid_stop(v);
}

/*
 * Wait for NotifySlotChange (CCID 6.3.1) saying slot 0 changed to the given
 * state; earlier notifications (e.g. the one at connection) are skipped.
 */
static void wait_slot_change(CcidHost *c, bool present)
{
    gint64 deadline = g_get_monotonic_time() + URH_TIMEOUT_MS * 1000;
    GByteArray *n;

    while ((n = next_slot_notify(c, deadline))) {
        bool changed_to = (n->data[1] & 3) == (present ? 3 : 2);

        g_byte_array_unref(n);
        if (changed_to) {
            return;
        }
    }
    g_error("no NotifySlotChange to card %s", present ? "present" : "absent");
}

static uint8_t slot_status(CcidHost *c)
{
    g_autoptr(CcidAnswer) a = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, 0, 0, NULL, 0);

    return ICC_STATUS(a->status);
}

/* Power the card on; the guest must read the ATR the client announced. */
static void power_on_test_card(CcidHost *c)
{
    g_autoptr(GByteArray) atr = ccid_power_on(c);

    g_assert_cmpmem(atr->data, atr->len, test_atr, sizeof(test_atr));
}

/* The client puts its card in; the host sees it come and powers it on. */
static void insert_and_power_on(VscPeer *p, CcidHost *c)
{
    peer_insert_card(p);
    wait_slot_change(c, true);
    power_on_test_card(c);
}

/* The usual opening: a client says hello, lends its card, the host powers it. */
static void peer_lend_card(VscPeer *p, CcidHost *c)
{
    peer_handshake(p);
    insert_and_power_on(p, c);
}

/* libcacard's CAC card (its ATR starts with TS 3B, direct convention). */
static void power_on_cac(CcidHost *c)
{
    g_autoptr(GByteArray) atr = ccid_power_on(c);

    g_assert_cmpuint(atr->len, >=, 2);
    g_assert_cmpuint(atr->data[0], ==, 0x3b);
}

static void check_apdu_echo(CcidHost *c, size_t data_len)
{
    g_autoptr(GByteArray) cmd = g_byte_array_new();
    g_autoptr(GByteArray) rsp = NULL;

    /* CLA INS P1 P2, then Lc short or extended, then the data. */
    g_byte_array_append(cmd, (const uint8_t *)"\x80\xca\x00\x00", 4);
    if (data_len <= 255) {
        uint8_t lc = data_len;

        g_byte_array_append(cmd, &lc, 1);
    } else {
        uint8_t lc[3] = { 0, data_len >> 8, data_len & 0xff };

        g_byte_array_append(cmd, lc, 3);
    }
    for (size_t i = 0; i < data_len; i++) {
        uint8_t b = i * 13;

        g_byte_array_append(cmd, &b, 1);
    }
    rsp = ccid_xfr_apdu(c, cmd->data, cmd->len);
    g_assert_cmpuint(rsp->len, ==, MIN(cmd->len, 65536u) + 2);
    g_assert_cmpmem(rsp->data, rsp->len - 2, cmd->data, MIN(cmd->len, 65536u));
    g_assert_cmpuint(apdu_sw(rsp), ==, 0x9000);
}

/* ---- tests ---- */

/* The exchange of docs/ccid.txt section 8.3, end to end. */
static void test_exchange(void)
{
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    VscPeer *p = peer_connect(v);
    g_autoptr(GByteArray) atr = NULL;

    g_assert_cmpuint(slot_status(c), ==, ICC_ABSENT);
    peer_handshake(p);
    peer_insert_card(p);
    wait_slot_change(c, true);
    atr = ccid_power_on(c);
    g_assert_cmpmem(atr->data, atr->len, test_atr, sizeof(test_atr));

    check_apdu_echo(c, 4);
    check_apdu_echo(c, 255);
    check_apdu_echo(c, 3000);          /* extended APDU, chained by the host */
    check_apdu_echo(c, 65535);         /* the largest command and answer */
    g_assert_cmpuint(p->apdus, ==, 4);

    /* The client's card leaves and comes back. */
    peer_send(p, VSC_CardRemove, 0, NULL, 0);
    peer_expect_error(p, 0, VSC_SUCCESS);
    wait_slot_change(c, false);
    g_assert_cmpuint(slot_status(c), ==, ICC_ABSENT);
    insert_and_power_on(p, c);
    check_apdu_echo(c, 10);

    /* Removing the reader takes the card with it. */
    peer_send(p, VSC_ReaderRemove, 0, NULL, 0);
    peer_expect_error(p, 0, VSC_SUCCESS);
    wait_slot_change(c, false);

    end_session(v, c, p);
}

/* The whole opening, one byte per write: partial headers everywhere. */
static void test_byte_by_byte(void)
{
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    VscPeer *p = peer_connect(v);
    g_autoptr(GByteArray) b = g_byte_array_new();

    vscard_build_init(b, VSCARD_UNDEFINED_READER_ID, 0);
    vscard_build(b, VSC_ReaderAdd, VSCARD_UNDEFINED_READER_ID, NULL, 0);
    vscard_build(b, VSC_ATR, 0, test_atr, sizeof(test_atr));
    for (guint i = 0; i < b->len; i++) {
        peer_send_raw(p, b->data + i, 1);
        g_usleep(1000);
    }
    g_autoptr(PeerMsg) init = peer_next(p);
    g_assert_cmpuint(init->type, ==, VSC_Init);
    peer_expect_error(p, 0, VSC_SUCCESS);
    peer_expect_error(p, 0, VSC_SUCCESS);
    wait_slot_change(c, true);
    power_on_test_card(c);
    check_apdu_echo(c, 20);

    end_session(v, c, p);
}

/*
 * Malformed messages the stream survives, from a client with its reader and
 * naming it: each is answered with VSC_Error(VSC_GENERAL_ERROR), changes
 * nothing, and the connection goes on.
 */
static void test_malformed_in_sync(void)
{
    static const uint8_t long_atr[40] = { 0x3b };
    static const uint8_t bad_ts_atr[] = { 0x00, 0x00, 0x01, 0x02 };
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    VscPeer *p = peer_connect(v);

    peer_handshake(p);
    peer_send(p, 42, 0, "junk", 4);                           /* unknown type */
    peer_expect_error(p, 0, VSC_GENERAL_ERROR);
    peer_send(p, 0, 0, NULL, 0);                              /* type 0 */
    peer_expect_error(p, 0, VSC_GENERAL_ERROR);
    peer_send(p, VSC_Flush, 0, NULL, 0);                      /* wrong direction */
    peer_expect_error(p, 0, VSC_GENERAL_ERROR);
    peer_send(p, VSC_ATR, 0, long_atr, sizeof(long_atr));     /* ATR > 33 bytes */
    peer_expect_error(p, 0, VSC_GENERAL_ERROR);
    peer_send(p, VSC_ATR, 0, bad_ts_atr, sizeof(bad_ts_atr)); /* TS not 3B/3F */
    peer_expect_error(p, 0, VSC_GENERAL_ERROR);
    peer_send(p, VSC_CardRemove, 0, "x", 1);                  /* payload on an empty message */
    peer_expect_error(p, 0, VSC_GENERAL_ERROR);
    peer_send(p, VSC_Error, 0, "\0", 1);                      /* Error shorter than its code */
    peer_expect_error(p, 0, VSC_GENERAL_ERROR);
    peer_send(p, VSC_APDU, 0, "\x90\x00", 2);                 /* an answer to no command */
    peer_expect_error(p, 0, VSC_GENERAL_ERROR);
    peer_send(p, VSC_ReaderAdd, 0, NULL, 0);                  /* a second reader */
    peer_expect_error(p, VSCARD_UNDEFINED_READER_ID, VSC_CANNOT_ADD_MORE_READERS);

    /* None of it put a card in the slot, and the stream is still in step. */
    g_assert_cmpuint(slot_status(c), ==, ICC_ABSENT);
    insert_and_power_on(p, c);
    check_apdu_echo(c, 8);

    end_session(v, c, p);
}

/*
 * Messages after which the stream cannot be trusted: answered with
 * VSC_Error, then the client is dropped. The daemon serves the next one.
 */
static void test_malformed_fatal(void)
{
    static const struct {
        const char *what;
        uint8_t bytes[24];
        size_t len;
    } cases[] = {
        { "length that lies", { 0, 0, 0, 7, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0, 0x90, 0 }, 14 },
        { "length one past the cap", { 0, 0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 10 }, 12 },
        { "wrong magic", { 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 12,
                           'D', 'C', 'S', 'V', 0, 0, 0, 2, 0, 0, 0, 0 }, 24 },
        { "wrong major version", { 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 12,
                                   'V', 'S', 'C', 'D', 0, 0x40, 0, 2, 0, 0, 0, 0 }, 24 },
    };
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        VscPeer *p = peer_connect(v);

        g_test_message("fatal case: %s", cases[i].what);
        peer_send_raw(p, cases[i].bytes, cases[i].len);
        /* The answer carries the reader id of the header it answers. */
        peer_expect_error(p, (uint32_t)cases[i].bytes[4] << 24 | cases[i].bytes[5] << 16 |
                          cases[i].bytes[6] << 8 | cases[i].bytes[7], VSC_GENERAL_ERROR);
        g_assert_true(peer_wait_closed(p));
        peer_free(p);
        g_assert_true(vccid_is_running(v));
    }

    /* A client that dies inside a header leaves nothing behind either. */
    VscPeer *half = peer_connect(v);
    peer_send_raw(half, "\0\0\0\7\0\0", 6);
    peer_free(half);

    VscPeer *p = peer_connect(v);
    peer_lend_card(p, c);
    check_apdu_echo(c, 16);
    end_session(v, c, p);
}

/*
 * A client killed while the guest waits for its answer: the guest gets a
 * failed command and sees the card leave; the daemon keeps serving and the
 * next client's card works.
 */
static void test_client_killed_mid_apdu(void)
{
    static const uint8_t select_cmd[] = { 0x00, 0xa4, 0x04, 0x00, 0x02, 0x3f, 0x00 };
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    VscPeer *p = peer_connect(v);
    g_autoptr(CcidAnswer) a = NULL;

    peer_lend_card(p, c);
    check_apdu_echo(c, 4);

    p->mode = PEER_DIE_ON_APDU;
    a = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0, 0, select_cmd, sizeof(select_cmd));
    g_assert_cmpuint(a->type, ==, RDR_to_PC_DataBlock);
    g_assert_cmpuint(CMD_STATUS(a->status), ==, CMD_FAILED);
    g_assert_cmpuint(a->dwLength, ==, 0);
    g_assert_true(peer_wait_closed(p));
    wait_slot_change(c, false);
    g_assert_cmpuint(slot_status(c), ==, ICC_ABSENT);
    peer_free(p);
    g_assert_true(vccid_is_running(v));

    /* With no client, the empty slot answers at once. */
    g_autoptr(CcidAnswer) off = ccid_command(c, PC_to_RDR_IccPowerOn, 0, 0, 0, NULL, 0);
    g_assert_cmpuint(CMD_STATUS(off->status), ==, CMD_FAILED);
    g_assert_cmpuint(off->error, ==, CCID_ERR_ICC_MUTE);

    p = peer_connect(v);
    peer_lend_card(p, c);
    check_apdu_echo(c, 100);
    end_session(v, c, p);
}

/* A client error in place of an answer fails the guest's command, nothing more. */
static void test_client_error_answer(void)
{
    static const uint8_t cmd[] = { 0x00, 0xb0, 0x00, 0x00, 0x10 };
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    VscPeer *p = peer_connect(v);
    g_autoptr(CcidAnswer) a = NULL;

    peer_lend_card(p, c);
    p->mode = PEER_ERROR_ON_APDU;
    a = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0, 0, cmd, sizeof(cmd));
    g_assert_cmpuint(CMD_STATUS(a->status), ==, CMD_FAILED);
    g_assert_cmpuint(a->error, ==, CCID_ERR_HW_ERROR);
    g_assert_cmpuint(slot_status(c), !=, ICC_ABSENT);
    p->mode = PEER_ANSWER;
    check_apdu_echo(c, 5);
    end_session(v, c, p);
}

/* A client that removes and re-adds its reader (libcacard's vscclient opens so). */
static void test_reader_remove_readd(void)
{
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    VscPeer *p = peer_connect(v);

    peer_lend_card(p, c);
    /* A ReaderRemove then ReaderAdd by an unclean client: the card is gone. */
    peer_send(p, VSC_ReaderRemove, 0, NULL, 0);
    peer_expect_error(p, 0, VSC_SUCCESS);
    wait_slot_change(c, false);
    peer_send(p, VSC_ReaderAdd, VSCARD_UNDEFINED_READER_ID, NULL, 0);
    peer_expect_error(p, 0, VSC_SUCCESS);
    insert_and_power_on(p, c);
    check_apdu_echo(c, 30);
    end_session(v, c, p);
}

/*
 * The host resets the reader while the client still works on a command:
 * the late answer must not be taken for the answer to the next command.
 */
static void test_reset_during_apdu(void)
{
    static const uint8_t old_cmd[] = { 0x00, 0xb0, 0x00, 0x00, 0x01 };
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    VscPeer *p = peer_connect(v);
    UrhTransfer *t;
    uint8_t cfg;

    peer_lend_card(p, c);

    p->mode = PEER_HOLD;
    ccid_send_xfr_block(c, old_cmd, sizeof(old_cmd));
    t = urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size);
    /* Reset only once the command is with the client. */
    for (int i = 0; !peer_has_held(p); i++) {
        g_assert_cmpint(i, <, PEER_TIMEOUT_MS / 5);
        urh_idle(c->usb, 5);
    }
    urh_reset(c->usb);
    urh_cancel(c->usb, t);
    g_assert_true(urh_wait(c->usb, t, URH_TIMEOUT_MS));
    urh_transfer_release(c->usb, t);
    g_assert_cmpint(urh_set_configuration(c->usb, 1, &cfg), ==, usb_redir_success);
    c->seq = 0x40;

    /* The client answers the old command only now, after the reset. */
    p->mode = PEER_ANSWER;
    peer_release_held(p);
    power_on_test_card(c);
    check_apdu_echo(c, 7);
    check_apdu_echo(c, 9);
    g_assert_cmpuint(p->flushes, ==, 1);
    end_session(v, c, p);
}

/*
 * The opening of libcacard 2.8's vscclient, byte for byte as it sends it:
 * reader id 0 in every header (even Init and ReaderAdd), a ReaderRemove
 * before its ReaderAdd, a ReaderAdd without a name, and its failure answer
 * an Error whose code is in host byte order.
 */
static void test_libcacard_client_opening(void)
{
    static const uint8_t init[] = { 'V', 'S', 'C', 'D', 0, 0, 0, 2, 0, 0, 0, 0 };
    static const uint8_t cmd[] = { 0x00, 0xca, 0x01, 0x02, 0x00 };
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    VscPeer *p = peer_connect(v);
    g_autoptr(PeerMsg) m = NULL;
    g_autoptr(CcidAnswer) a = NULL;

    peer_send(p, VSC_Init, 0, init, sizeof(init));
    m = peer_next(p);
    g_assert_cmpuint(m->type, ==, VSC_Init);
    peer_send(p, VSC_ReaderRemove, 0, NULL, 0);
    peer_expect_error(p, 0, VSC_SUCCESS);
    peer_send(p, VSC_ReaderAdd, 0, NULL, 0);
    peer_expect_error(p, 0, VSC_SUCCESS);
    insert_and_power_on(p, c);

    p->mode = PEER_ERROR_ON_APDU;
    a = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0, 0, cmd, sizeof(cmd));
    g_assert_cmpuint(CMD_STATUS(a->status), ==, CMD_FAILED);
    p->mode = PEER_ANSWER;
    check_apdu_echo(c, 12);

    /* The daemon spoke Init once only: libcacard's client would start over on a second. */
    g_mutex_lock(&p->lock);
    g_assert_true(g_queue_is_empty(&p->msgs));
    g_mutex_unlock(&p->lock);
    end_session(v, c, p);
}

/* ---- our vscclient against our passthru, over TCP ---- */

static guint16 free_tcp_port(GSocketFamily family)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GSocket) s = g_socket_new(family, G_SOCKET_TYPE_STREAM,
                                        G_SOCKET_PROTOCOL_DEFAULT, &err);
    g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(family);
    g_autoptr(GSocketAddress) any = g_inet_socket_address_new(lo, 0);
    g_autoptr(GSocketAddress) bound = NULL;

    g_assert_no_error(err);
    g_socket_bind(s, any, TRUE, &err);
    g_assert_no_error(err);
    bound = g_socket_get_local_address(s, &err);
    g_assert_no_error(err);
    return g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
}

static bool ipv6_loopback_works(void)
{
    g_autoptr(GSocket) s = g_socket_new(G_SOCKET_FAMILY_IPV6, G_SOCKET_TYPE_STREAM,
                                        G_SOCKET_PROTOCOL_DEFAULT, NULL);
    g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV6);
    g_autoptr(GSocketAddress) any = g_inet_socket_address_new(lo, 0);

    return s && g_socket_bind(s, any, TRUE, NULL);
}

static VscclientProcess vscclient_spawn(VccidProcess *v, const char *host, const char *port)
{
    g_autofree char *emul = vscclient_soft_card(v->db_dir);

    return vscclient_start((const char *[]){ "-e", emul, host, port, NULL });
}

/*
 * Our vscclient, a libcacard certificate card, against our passthru over
 * TCP: the card works, its stdin commands move it in and out of the
 * guest's slot, "exit" leaves cleanly, and a killed client takes its card
 * with it.
 */
static void vscclient_interop(const char *host, GSocketFamily family)
{
    g_autofree char *port = g_strdup_printf("%u", free_tcp_port(family));
    g_autofree char *chardev = g_strdup_printf(
        "socket,id=vsc,host=%s,port=%s,server=on,wait=off", host, port);
    const char *args[] = {
        "-chardev", chardev, "-device", "usb-ccid,id=ccid",
        "-device", "ccid-card-passthru,chardev=vsc", NULL,
    };
    VccidProcess *v;
    CcidHost *c;
    VscclientProcess vc;
    int status;

    if (!g_getenv("VSCCLIENT_BINARY")) {
        g_test_skip("VSCCLIENT_BINARY not set");
        return;
    }
    v = vccid_start(args);
    c = open_host(v);
    vc = vscclient_spawn(v, host, port);
    wait_slot_change(c, true);
    power_on_cac(c);
    for (int i = 0; i < 20; i++) {
        select_pki(c, 0);
    }

    vscclient_command(&vc, "remove\n");
    wait_slot_change(c, false);
    vscclient_command(&vc, "insert\n");
    wait_slot_change(c, true);
    power_on_cac(c);
    select_pki(c, 0);

    /* exit withdraws the card before it goes, and exits with 0. */
    vscclient_command(&vc, "exit\n");
    wait_slot_change(c, false);
    status = vscclient_wait(&vc);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);

    /* A client killed outright: the card leaves all the same. */
    vc = vscclient_spawn(v, host, port);
    wait_slot_change(c, true);
    power_on_cac(c);
    select_pki(c, 0);
    kill(vc.pid, SIGKILL);
    vscclient_wait(&vc);
    wait_slot_change(c, false);
    g_assert_true(vccid_is_running(v));
    ccid_host_free(c);
    vccid_stop(v);
}

static void test_vscclient_ipv4(void)
{
    vscclient_interop("127.0.0.1", G_SOCKET_FAMILY_IPV4);
}

static void test_vscclient_ipv6(void)
{
    if (!ipv6_loopback_works()) {
        g_test_skip("no IPv6 loopback");
        return;
    }
    vscclient_interop("::1", G_SOCKET_FAMILY_IPV6);
}

/*
 * A client that floods the daemon with junk cannot starve the reader: the
 * guest's commands are still answered while it goes on.
 */
static void test_flood(void)
{
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    VscPeer *p = peer_connect(v);
    g_autoptr(GByteArray) junk = g_byte_array_new();
    gint64 t0;

    peer_lend_card(p, c);
    for (int i = 0; i < 5000; i++) {
        vscard_build(junk, 99, 0, "junkjunk", 8);
    }
    peer_send_raw(p, junk->data, junk->len);
    t0 = g_get_monotonic_time();
    check_apdu_echo(c, 50);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 5 * G_USEC_PER_SEC);
    for (int i = 0; i < 5000; i++) {
        g_autoptr(PeerMsg) m = peer_next(p);

        g_assert_cmpuint(m->type, ==, VSC_Error);
        g_assert_cmpuint(m->code, ==, VSC_GENERAL_ERROR);
        g_assert_cmpuint(m->reader_id, ==, 0);
    }
    check_apdu_echo(c, 50);
    end_session(v, c, p);
}

/* ---- the exchange as a state machine (docs/ccid.txt, section 8.3) ---- */

typedef enum PeerOpening {
    OPEN_NOTHING,       /* not even Init */
    OPEN_INIT,          /* Init both ways, no reader yet */
    OPEN_READER,        /* Init and ReaderAdd: reader 0 assigned */
} PeerOpening;

static void peer_open_to(VscPeer *p, PeerOpening opening)
{
    if (opening == OPEN_READER) {
        peer_handshake(p);
    } else if (opening == OPEN_INIT) {
        g_autoptr(GByteArray) init = g_byte_array_new();
        g_autoptr(PeerMsg) m = NULL;

        vscard_build_init(init, VSCARD_UNDEFINED_READER_ID, 0);
        peer_send_raw(p, init->data, init->len);
        m = peer_next(p);
        g_assert_cmpuint(m->type, ==, VSC_Init);
    }
}

/*
 * Messages out of turn, or naming a reader vccid did not assign: each is
 * answered with VSC_Error for the reader it named and the client is
 * dropped; no card reaches the slot and the next client is served. The
 * first is the review's finding 1: a lone ATR for reader 0xdeadbeef.
 */
static void test_out_of_turn(void)
{
    static const uint8_t init_payload[] = { 'V', 'S', 'C', 'D', 0, 0, 0, 2, 0, 0, 0, 0 };
    static const struct {
        const char *what;
        PeerOpening opening;
        uint32_t type, reader_id;
        const void *payload;
        uint32_t len;
    } cases[] = {
        { "ATR for reader 0xdeadbeef, first thing", OPEN_NOTHING, VSC_ATR, 0xdeadbeef,
          test_atr, sizeof(test_atr) },
        { "ATR before Init", OPEN_NOTHING, VSC_ATR, 0, test_atr, sizeof(test_atr) },
        { "ReaderAdd before Init", OPEN_NOTHING, VSC_ReaderAdd, 0, "r", 1 },
        { "APDU before Init", OPEN_NOTHING, VSC_APDU, 0, "\x90\x00", 2 },
        { "junk before Init", OPEN_NOTHING, 42, 0, "junk", 4 },
        { "ATR before ReaderAdd", OPEN_INIT, VSC_ATR, 0, test_atr, sizeof(test_atr) },
        { "CardRemove before ReaderAdd", OPEN_INIT, VSC_CardRemove, 0, NULL, 0 },
        { "ReaderRemove of a reader never assigned", OPEN_INIT, VSC_ReaderRemove, 5, NULL, 0 },
        { "ATR for reader 0xdeadbeef", OPEN_READER, VSC_ATR, 0xdeadbeef,
          test_atr, sizeof(test_atr) },
        { "CardRemove for reader 1", OPEN_READER, VSC_CardRemove, 1, NULL, 0 },
        { "Error for another reader", OPEN_READER, VSC_Error, 3, "\0\0\0\1", 4 },
        { "junk for another reader", OPEN_READER, 42, 7, "junk", 4 },
        { "a second Init", OPEN_READER, VSC_Init, 0, init_payload, sizeof(init_payload) },
    };
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    g_autofree char *log = NULL;
    VscPeer *p;

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        p = peer_connect(v);
        g_test_message("out of turn: %s", cases[i].what);
        peer_open_to(p, cases[i].opening);
        peer_send(p, cases[i].type, cases[i].reader_id, cases[i].payload, cases[i].len);
        peer_expect_error(p, cases[i].reader_id, VSC_GENERAL_ERROR);
        g_assert_true(peer_wait_closed(p));
        peer_free(p);
        g_assert_true(vccid_is_running(v));
        g_assert_cmpuint(slot_status(c), ==, ICC_ABSENT);
    }
    log = vccid_read_stderr(v);
    g_assert_null(strstr(log, "card inserted"));

    p = peer_connect(v);
    peer_lend_card(p, c);
    check_apdu_echo(c, 16);
    end_session(v, c, p);
}

/*
 * The review's finding 6: a ReaderAdd without a name (libcacard's client
 * sends one) is a reader like any other, with GLib criticals fatal.
 */
static void test_reader_add_empty_name(void)
{
    VccidProcess *v;
    CcidHost *c;
    VscPeer *p;
    g_autoptr(GByteArray) init = g_byte_array_new();
    g_autoptr(PeerMsg) m = NULL;

    g_setenv("G_DEBUG", "fatal-criticals", TRUE);
    v = start_passthru();
    g_unsetenv("G_DEBUG");
    c = open_host(v);
    p = peer_connect(v);
    vscard_build_init(init, VSCARD_UNDEFINED_READER_ID, 0);
    peer_send_raw(p, init->data, init->len);
    m = peer_next(p);
    g_assert_cmpuint(m->type, ==, VSC_Init);
    peer_send(p, VSC_ReaderAdd, VSCARD_UNDEFINED_READER_ID, NULL, 0);
    peer_expect_error(p, 0, VSC_SUCCESS);
    /* A second one, refused, is shown in the trace too. */
    peer_send(p, VSC_ReaderAdd, VSCARD_UNDEFINED_READER_ID, NULL, 0);
    peer_expect_error(p, VSCARD_UNDEFINED_READER_ID, VSC_CANNOT_ADD_MORE_READERS);
    insert_and_power_on(p, c);
    check_apdu_echo(c, 6);
    end_session(v, c, p);
}

/*
 * The review's finding 7: a reader name with a newline and an ANSI escape
 * reaches the log (trace points on, debug=3) escaped, and forges no line.
 */
static void test_reader_name_escaped(void)
{
    static const char evil[] = "Evil\nvccid-FORGED: card inserted\x1b[31m";
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    VscPeer *p = peer_connect(v);
    g_autoptr(GByteArray) init = g_byte_array_new();
    g_autoptr(PeerMsg) m = NULL;
    g_autofree char *log = NULL;

    vscard_build_init(init, VSCARD_UNDEFINED_READER_ID, 0);
    peer_send_raw(p, init->data, init->len);
    m = peer_next(p);
    peer_send(p, VSC_ReaderAdd, VSCARD_UNDEFINED_READER_ID, evil, strlen(evil));
    peer_expect_error(p, 0, VSC_SUCCESS);
    peer_send(p, VSC_ReaderAdd, VSCARD_UNDEFINED_READER_ID, evil, strlen(evil));
    peer_expect_error(p, VSCARD_UNDEFINED_READER_ID, VSC_CANNOT_ADD_MORE_READERS);
    peer_free(p);
    /* The refusal's trace line is written before the answer, so it is in the log by now. */
    log = vccid_read_stderr(v);
    g_assert_nonnull(strstr(log, "Evil\\x0avccid-FORGED: card inserted\\x1b[31m"));
    g_assert_null(strchr(log, '\x1b'));
    g_assert_null(strstr(log, "\nvccid-FORGED"));
    ccid_host_free(c);
    vccid_stop(v);
}

/*
 * The review's finding 5: XfrBlock, Abort, XfrBlock while the client still
 * works on the first; the client answers both, in order. The first answer
 * belongs to a command already answered as aborted; the second must reach
 * the guest, and the card keeps answering after.
 */
static void test_abort_then_next_command(void)
{
    static const uint8_t first_cmd[] = { 0x00, 0xb0, 0x00, 0x00, 0x01 };
    static const uint8_t next_cmd[] = { 0x00, 0xca, 0x9f, 0x7f, 0x02 };
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    VscPeer *p = peer_connect(v);
    g_autoptr(CcidAnswer) aborted = NULL;
    g_autoptr(CcidAnswer) abort_status = NULL;
    g_autoptr(CcidAnswer) answer = NULL;
    uint8_t s1, s2, s3;

    peer_lend_card(p, c);
    p->mode = PEER_HOLD;
    s1 = ccid_send_xfr_block(c, first_cmd, sizeof(first_cmd));
    peer_wait_held(p, 1);

    s2 = ccid_send_abort(c);
    aborted = ccid_read_answer(c, URH_TIMEOUT_MS);
    ccid_check_answer(aborted, RDR_to_PC_DataBlock, 0, s1);
    g_assert_cmpuint(CMD_STATUS(aborted->status), ==, CMD_FAILED);
    g_assert_cmphex(aborted->error, ==, CCID_ERR_CMD_ABORTED);
    abort_status = ccid_read_answer(c, URH_TIMEOUT_MS);
    ccid_check_answer(abort_status, RDR_to_PC_SlotStatus, 0, s2);

    s3 = ccid_send_xfr_block(c, next_cmd, sizeof(next_cmd));
    peer_wait_held(p, 2);
    p->mode = PEER_ANSWER;
    peer_release_held(p);
    peer_release_held(p);

    answer = ccid_read_answer_bounded(c, URH_TIMEOUT_MS, 5);
    ccid_check_answer(answer, RDR_to_PC_DataBlock, 0, s3);
    g_assert_cmpuint(CMD_STATUS(answer->status), ==, CMD_OK);
    g_assert_cmpmem(answer->data, answer->dwLength - 2, next_cmd, sizeof(next_cmd));
    check_apdu_echo(c, 11);
    g_assert_cmpuint(p->apdus, ==, 3);
    end_session(v, c, p);
}

/*
 * A second client while one lends its card is told at once, in VSCard,
 * that no more readers fit (what a second ReaderAdd would hear), and
 * closed; the first goes on.
 */
static void test_second_client_told(void)
{
    VccidProcess *v = start_passthru();
    CcidHost *c = open_host(v);
    VscPeer *p = peer_connect(v);
    VscPeer *second;

    peer_lend_card(p, c);
    second = peer_connect(v);
    peer_expect_error(second, VSCARD_UNDEFINED_READER_ID, VSC_CANNOT_ADD_MORE_READERS);
    g_assert_true(peer_wait_closed(second));
    g_assert_true(g_queue_is_empty(&second->msgs));
    peer_free(second);
    check_apdu_echo(c, 10);
    end_session(v, c, p);
}

static const TestCase cases[] = {
    { "/passthru/exchange", test_exchange },
    { "/passthru/byte-by-byte", test_byte_by_byte },
    { "/passthru/malformed/in-sync", test_malformed_in_sync },
    { "/passthru/malformed/fatal", test_malformed_fatal },
    { "/passthru/client-killed-mid-apdu", test_client_killed_mid_apdu },
    { "/passthru/client-error-answer", test_client_error_answer },
    { "/passthru/reader-remove-readd", test_reader_remove_readd },
    { "/passthru/flood", test_flood },
    { "/passthru/libcacard-client-opening", test_libcacard_client_opening },
    { "/passthru/reset-during-apdu", test_reset_during_apdu },
    { "/passthru/state/out-of-turn", test_out_of_turn },
    { "/passthru/state/reader-add-empty-name", test_reader_add_empty_name },
    { "/passthru/reader-name-escaped", test_reader_name_escaped },
    { "/passthru/abort-then-next-command", test_abort_then_next_command },
    { "/passthru/vscclient/ipv4", test_vscclient_ipv4 },
    { "/passthru/vscclient/ipv6", test_vscclient_ipv6 },
    { "/passthru/second-client-told", test_second_client_told },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    test_add_cases(cases);
    return g_test_run();
}
