/*
 * ccid-card-passthru: a card that lives on a client machine, reached over a
 * chardev speaking the VSCard protocol (include/proto/vscard.h), e.g. from
 * contrib/vscclient or libcacard's vscclient.
 *
 *   -chardev socket,id=vsc,host=0.0.0.0,port=2001,server=on,wait=off
 *   -device ccid-card-passthru,chardev=vsc[,debug=N]
 *
 * The exchange (docs/ccid.txt, section 8.3) is a small state machine, since
 * whoever reaches the socket would otherwise get the guest's APDUs, PINs
 * included. The client first sends Init and we answer with ours; then
 * ReaderAdd, answered with VSC_Error(VSC_SUCCESS) carrying the reader id we
 * assign (0: the reader has one slot); from then on every message must carry
 * that id. ATR puts the card in the slot, CardRemove and ReaderRemove take it
 * out, each acknowledged the same way. A message out of turn or for another
 * reader is answered with VSC_Error and the client is dropped. Command APDUs
 * go to the client in order, each gets exactly one APDU (or Error) answer.
 * When the client goes away the guest sees the card leave, a command still
 * waiting gets an error, and the next client starts from scratch.
 */
#include <string.h>

#include "chardev/char.h"
#include "hw/usb/ccid.h"
#include "proto/vscard.h"
#include "qemu/log-escape.h"
#include "trace/control.h"
#include "trace.h"

#define TYPE_CCID_PASSTHRU "ccid-card-passthru"
#define PASSTHRU_CCID(obj) DEVICE_CHECK(PassthruState, (obj), TYPE_CCID_PASSTHRU)

/* The one reader this card is; VSCard numbers readers from 0. */
#define PASSTHRU_READER_ID VSCARD_MINIMAL_READER_ID

/* Where a client stands in the exchange (docs/ccid.txt, section 8.3). */
typedef enum PassthruClientState {
    PT_AWAIT_INIT,      /* connected: only Init may come */
    PT_AWAIT_READER,    /* Init exchanged: ReaderAdd (or a ReaderRemove of a stale reader) */
    PT_READER,          /* PASSTHRU_READER_ID assigned: every message carries it */
} PassthruClientState;

/* debug=N: 1 traces the client's mistakes, 2 card events, 3 every message. */
static const TraceDebugAlias pt_debug_aliases[] = {
    { 1, "ccid_card_passthru_atr_rejected" },
    { 1, "ccid_card_passthru_reader_refused" },
    { 1, "ccid_card_passthru_unsolicited_answer" },
    { 1, "ccid_card_passthru_client_error" },
    { 1, "ccid_card_passthru_bad_message" },
    { 2, "ccid_card_passthru_card_*" },
    { 2, "ccid_card_passthru_reader_added" },
    { 2, "ccid_card_passthru_late_answer" },
    { 2, "ccid_card_passthru_client_*" },
    { 3, "ccid_card_passthru_*" },
    { 0, NULL },
};

typedef struct PassthruState {
    CCIDCardState base;
    Chardev *chr;
    uint8_t debug;

    VSCardStream *stream;
    GByteArray *out;            /* one message being built */
    uint8_t atr[ISO7816_MAX_ATR];
    uint32_t atr_len;           /* 0: no card in the slot */
    PassthruClientState state;
    /*
     * Commands sent to the client and not yet answered, in order. Each gets
     * exactly one answer to the reader, which drops those it already
     * answered itself (an Abort); answers_to_skip of them are for commands
     * given up at a power-off, whose answers never reach the reader.
     */
    unsigned apdus_out;
    unsigned answers_to_skip;
} PassthruState;


/* ---- output ---- */

static void pt_send(PassthruState *s, VSCMsgType type, uint32_t reader_id,
                    const void *payload, uint32_t len)
{
    g_byte_array_set_size(s->out, 0);
    vscard_build(s->out, type, reader_id, payload, len);
    trace_ccid_card_passthru_send(DEVICE(s)->id, vscard_type_name(type), reader_id, len);
    chr_fe_write(s->chr, s->out->data, s->out->len);
}

static void pt_send_error(PassthruState *s, uint32_t reader_id, VSCErrorCode code)
{
    g_byte_array_set_size(s->out, 0);
    vscard_build_error(s->out, reader_id, code);
    trace_ccid_card_passthru_send_error(DEVICE(s)->id, code, reader_id);
    chr_fe_write(s->chr, s->out->data, s->out->len);
}

/* Our answer to the client's Init: our version, no capabilities defined yet. */
static void pt_send_init(PassthruState *s)
{
    g_byte_array_set_size(s->out, 0);
    vscard_build_init(s->out, VSCARD_UNDEFINED_READER_ID, 0);
    trace_ccid_card_passthru_send_init(DEVICE(s)->id);
    chr_fe_write(s->chr, s->out->data, s->out->len);
}

/* ---- the card leaving ---- */

/* Every command still with the client gets its one answer: here, a failure. */
static void pt_fail_pending_apdus(PassthruState *s)
{
    while (s->apdus_out > s->answers_to_skip) {
        s->apdus_out--;
        ccid_card_apdu_failed(&s->base);
    }
}

/* The client will not answer what it holds (it left, or its card did): fail and forget. */
static void pt_forget_apdus(PassthruState *s)
{
    pt_fail_pending_apdus(s);
    /* An answer still due after this is one to no command. */
    s->apdus_out = 0;
    s->answers_to_skip = 0;
}

static void pt_remove_card(PassthruState *s)
{
    pt_forget_apdus(s);
    if (s->atr_len) {
        s->atr_len = 0;
        ccid_card_card_removed(&s->base);
    }
}

/*
 * The client broke the protocol: it hears why, in a VSC_Error for the
 * reader its message named, and is dropped (the CLOSED event cleans up and
 * stops the stream parser under us).
 */
static void pt_drop_client(PassthruState *s, const VSCardMsg *msg, const char *why)
{
    pt_send_error(s, msg->reader_id, VSC_GENERAL_ERROR);
    g_message("%s: dropping client: %s %s for reader %u", DEVICE(s)->id, why,
              vscard_type_name(msg->type), msg->reader_id);
    chr_fe_disconnect(s->chr);
}

/* ---- messages from the client ---- */

/* The stream parser let only ISO7816_MIN_ATR..ISO7816_MAX_ATR bytes through. */
static bool atr_plausible(const uint8_t *atr)
{
    /* TS: direct (0x3B) or inverse (0x3F) convention, ISO 7816-3 8.1. */
    return atr[0] == 0x3b || atr[0] == 0x3f;
}

static void pt_handle_atr(PassthruState *s, const VSCardMsg *msg)
{
    if (!atr_plausible(msg->payload)) {
        trace_ccid_card_passthru_atr_rejected(DEVICE(s)->id, msg->payload[0]);
        pt_send_error(s, msg->reader_id, VSC_GENERAL_ERROR);
        return;
    }
    /* A new ATR while a card is in is a reset on the client's side. */
    pt_forget_apdus(s);
    memcpy(s->atr, msg->payload, msg->length);
    s->atr_len = msg->length;
    trace_ccid_card_passthru_card_inserted(DEVICE(s)->id, msg->length);
    ccid_card_card_inserted(&s->base);
    pt_send_error(s, msg->reader_id, VSC_SUCCESS);
}

static void pt_handle_reader_add(PassthruState *s, const VSCardMsg *msg)
{
    /* The name is optional, and any bytes the client liked: shown escaped only. */
    g_autofree char *name = log_escape(msg->payload, msg->length);

    if (s->state == PT_READER) {
        /* QEMU's answer; libcacard's client then leaves that reader out. */
        trace_ccid_card_passthru_reader_refused(DEVICE(s)->id, name);
        pt_send_error(s, VSCARD_UNDEFINED_READER_ID, VSC_CANNOT_ADD_MORE_READERS);
        return;
    }
    s->state = PT_READER;
    trace_ccid_card_passthru_reader_added(DEVICE(s)->id, name, PASSTHRU_READER_ID);
    pt_send_error(s, PASSTHRU_READER_ID, VSC_SUCCESS);
}

/*
 * CardRemove empties the slot; ReaderRemove also takes the reader away.
 * Before a ReaderAdd, a ReaderRemove of our reader changes nothing: both
 * libcacard's vscclient and ours send one first, for QEMU's passthru, which
 * keeps the reader of a client that died.
 */
static void pt_handle_remove(PassthruState *s, const VSCardMsg *msg)
{
    if (msg->type == VSC_CardRemove) {
        trace_ccid_card_passthru_card_removed(DEVICE(s)->id);
    }
    pt_remove_card(s);
    if (msg->type == VSC_ReaderRemove) {
        s->state = PT_AWAIT_READER;
    }
    pt_send_error(s, msg->reader_id, VSC_SUCCESS);
}

/*
 * The client answered the oldest command it holds. False if it holds none.
 * *skip: that command was given up at a power-off; nobody waits for it.
 */
static bool pt_take_answer(PassthruState *s, bool *skip)
{
    if (!s->apdus_out) {
        return false;
    }
    s->apdus_out--;
    *skip = s->answers_to_skip > 0;
    if (*skip) {
        s->answers_to_skip--;
        trace_ccid_card_passthru_late_answer(DEVICE(s)->id);
    }
    return true;
}

static void pt_handle_apdu(PassthruState *s, const VSCardMsg *msg)
{
    bool skip;

    if (!pt_take_answer(s, &skip)) {
        trace_ccid_card_passthru_unsolicited_answer(DEVICE(s)->id, msg->length);
        pt_send_error(s, msg->reader_id, VSC_GENERAL_ERROR);
        return;
    }
    /* The reader itself drops an answer to a command it already answered (Abort). */
    if (!skip) {
        ccid_card_send_apdu_to_guest(&s->base, msg->payload, msg->length);
    }
}

static void pt_handle_error(PassthruState *s, const VSCardMsg *msg)
{
    bool skip;

    if (msg->u.error.code == VSC_SUCCESS) {
        return;
    }
    trace_ccid_card_passthru_client_error(DEVICE(s)->id, msg->u.error.code);
    /* libcacard's vscclient answers a command its card could not run this way. */
    if (pt_take_answer(s, &skip) && !skip) {
        ccid_card_apdu_failed(&s->base);
    }
}

static void pt_handle_init(PassthruState *s, const VSCardMsg *msg)
{
    trace_ccid_card_passthru_client_version(DEVICE(s)->id, msg->u.init.version);
    s->state = PT_AWAIT_READER;
    chr_fe_hello_done(s->chr);
    pt_send_init(s);
}

static void pt_handle_flush_complete(PassthruState *s, const VSCardMsg *msg)
{
    trace_ccid_card_passthru_client_flushed(DEVICE(s)->id);
}

/* What a client may send, and who handles it. */
static void (*const pt_handlers[])(PassthruState *s, const VSCardMsg *msg) = {
    [VSC_Init] = pt_handle_init,
    [VSC_Error] = pt_handle_error,
    [VSC_ReaderAdd] = pt_handle_reader_add,
    [VSC_ReaderRemove] = pt_handle_remove,
    [VSC_ATR] = pt_handle_atr,
    [VSC_CardRemove] = pt_handle_remove,
    [VSC_APDU] = pt_handle_apdu,
    [VSC_FlushComplete] = pt_handle_flush_complete,
};

/*
 * The state machine of docs/ccid.txt, section 8.3: whether a message of
 * this type, carrying this reader id, may come now. Init and ReaderAdd
 * carry whatever reader id a client puts there (libcacard's puts 0, ours
 * VSCARD_UNDEFINED_READER_ID); everything else must name our reader.
 */
static bool pt_message_in_turn(PassthruState *s, uint32_t type, uint32_t reader_id)
{
    switch (s->state) {
    case PT_AWAIT_INIT:
        return type == VSC_Init;
    case PT_AWAIT_READER:
        return type == VSC_ReaderAdd ||
               (type == VSC_ReaderRemove && reader_id == PASSTHRU_READER_ID);
    case PT_READER:
        /* A second ReaderAdd is refused as QEMU refuses it, not dropped. */
        return type == VSC_ReaderAdd ||
               (type != VSC_Init && reader_id == PASSTHRU_READER_ID);
    }
    return false;
}

static void pt_on_message(void *opaque, const VSCardMsg *msg)
{
    PassthruState *s = opaque;

    trace_ccid_card_passthru_recv(DEVICE(s)->id, vscard_type_name(msg->type), msg->reader_id,
                                  msg->length);
    /* The stream parser passes only the types a client sends. */
    g_assert(msg->type < G_N_ELEMENTS(pt_handlers) && pt_handlers[msg->type]);
    if (!pt_message_in_turn(s, msg->type, msg->reader_id)) {
        pt_drop_client(s, msg, s->state == PT_READER ? "wrong reader id in" : "out of turn:");
        return;
    }
    pt_handlers[msg->type](s, msg);
}

static void pt_on_stream_error(void *opaque, VSCardStreamError err, const VSCardMsg *msg)
{
    PassthruState *s = opaque;
    bool skip;

    trace_ccid_card_passthru_bad_message(DEVICE(s)->id, msg->type, msg->length,
                                         vscard_error_str(err));
    /* Only a client with its reader, speaking of that reader, is forgiven a bad message. */
    if (!vscard_error_is_fatal(err) &&
        (s->state != PT_READER || msg->reader_id != PASSTHRU_READER_ID)) {
        pt_drop_client(s, msg, "malformed");
        return;
    }
    pt_send_error(s, msg->reader_id, VSC_GENERAL_ERROR);
    if (msg->type == VSC_APDU && pt_take_answer(s, &skip) && !skip) {
        ccid_card_apdu_failed(&s->base);    /* the answer it waited for was malformed */
    }
    if (vscard_error_is_fatal(err)) {
        /* No way to find the next header: drop the client; CLOSED cleans up. */
        g_message("%s: dropping client: %s", DEVICE(s)->id, vscard_error_str(err));
        chr_fe_disconnect(s->chr);
    }
}

static const VSCardStreamOps pt_stream_ops = {
    .message = pt_on_message,
    .error = pt_on_stream_error,
};

/* ---- chardev ---- */

/*
 * No can-read handler: everything a client sends (answers, card events) is
 * taken at once, with nothing held for lack of room; the stream parser
 * bounds each message. A client that sends faster than it reads our
 * answers is paused by the chardev's own output high-water mark.
 */
static void pt_chr_read(void *opaque, const uint8_t *buf, size_t len)
{
    PassthruState *s = opaque;

    vscard_stream_feed(s->stream, buf, len);
}

static void pt_chr_event(void *opaque, ChrEvent event)
{
    PassthruState *s = opaque;

    vscard_stream_reset(s->stream);
    if (event == CHR_EVENT_OPENED) {
        trace_ccid_card_passthru_client_connected(DEVICE(s)->id);
        s->state = PT_AWAIT_INIT;
        return;
    }
    g_message("%s: client gone%s", DEVICE(s)->id, s->atr_len ? ", card removed" : "");
    pt_remove_card(s);
    s->state = PT_AWAIT_INIT;
}

/* ---- CCIDCardClass ---- */

static const uint8_t *pt_get_atr(CCIDCardState *card, uint32_t *len)
{
    PassthruState *s = PASSTHRU_CCID(card);

    *len = s->atr_len;
    return s->atr_len ? s->atr : NULL;
}

static void pt_apdu_from_guest(CCIDCardState *card, const uint8_t *apdu, uint32_t len)
{
    PassthruState *s = PASSTHRU_CCID(card);

    if (!s->atr_len || !chr_fe_is_connected(s->chr)) {
        ccid_card_apdu_failed(card);
        return;
    }
    /*
     * Commands the reader gave up on (Abort) may still be with the client:
     * this one is answered after them, in order.
     */
    s->apdus_out++;
    pt_send(s, VSC_APDU, PASSTHRU_READER_ID, apdu, len);
    if (!chr_fe_is_connected(s->chr)) {
        pt_forget_apdus(s);    /* the write found the client gone */
    }
}

/*
 * The guest powered the card off or reset the reader while commands were
 * out. The reader is told now, and the client's answers, when they come,
 * are skipped by count: a client that ignores Flush must not stall us. The
 * Flush asks the client to finish what it has before anything new.
 */
static void pt_power_off(CCIDCardState *card)
{
    PassthruState *s = PASSTHRU_CCID(card);
    unsigned out = s->apdus_out;

    if (out > s->answers_to_skip) {
        pt_fail_pending_apdus(s);
        s->apdus_out = out;
        s->answers_to_skip = out;
        pt_send(s, VSC_Flush, PASSTHRU_READER_ID, NULL, 0);
    }
}

/* ---- realize ---- */

static bool pt_realize(DeviceState *d, GError **errp)
{
    PassthruState *s = PASSTHRU_CCID(d);

    trace_enable_debug_level(pt_debug_aliases, s->debug);

    if (!s->chr) {
        g_set_error(errp, VCCID_ERROR, 0, "Property '%s.chardev' is required",
                    TYPE_CCID_PASSTHRU);
        return false;
    }
    s->stream = vscard_stream_new(VSCARD_ROLE_HOST, &pt_stream_ops, s);
    s->out = g_byte_array_new();
    chr_fe_set_handlers(s->chr, pt_chr_read, pt_chr_event, s);
    /* A second client is told what a second ReaderAdd would be: no more readers here. */
    vscard_build_error(s->out, VSCARD_UNDEFINED_READER_ID, VSC_CANNOT_ADD_MORE_READERS);
    chr_fe_set_busy_reply(s->chr, s->out->data, s->out->len);
    g_byte_array_set_size(s->out, 0);
    g_message("%s: waiting for a VSCard client on %s", d->id, chardev_describe(s->chr));
    return true;
}

static void pt_unrealize(DeviceState *d)
{
    PassthruState *s = PASSTHRU_CCID(d);

    chr_fe_set_handlers(s->chr, NULL, NULL, NULL);
    pt_remove_card(s);
    vscard_stream_free(s->stream);
    g_byte_array_unref(s->out);
}

static const Property passthru_properties[] = {
    DEFINE_CCID_CARD_PROPERTIES(PassthruState, base),
    DEFINE_PROP_CHR("chardev", PassthruState, chr, "socket chardev a VSCard client connects to"),
    DEFINE_PROP_UINT8("debug", PassthruState, debug, "0",
                      "trace level (alias of -trace ccid_card_passthru_*): "
                      "1 client errors, 2 card events, 3 every message"),
    DEFINE_PROP_END_OF_LIST(),
};

static const CCIDCardClass passthru_card_class = {
    .parent_class = CCID_CARD_DEVICE_CLASS(TYPE_CCID_PASSTHRU,
                                           "card on a remote client, over the VSCard protocol "
                                           "(vscclient)", PassthruState, passthru_properties,
                                           pt_realize, pt_unrealize),
    .get_atr = pt_get_atr,
    .apdu_from_guest = pt_apdu_from_guest,
    .power_off = pt_power_off,
};

device_class_init(passthru_card_class)
