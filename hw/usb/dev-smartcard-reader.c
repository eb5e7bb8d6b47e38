/*
 * usb-ccid: a USB CCID (rev 1.1) smart-card reader with one slot.
 *
 * The host talks to the reader with PC_to_RDR messages on bulk-out and gets
 * exactly one RDR_to_PC answer per message, in order, on bulk-in. Card
 * arrival and removal are announced on interrupt-in. The card itself is a
 * device on the reader's ccid-bus (ccid-card-emulated, ccid-card-passthru).
 *
 * Ordering: commands are executed one at a time in arrival order. A command
 * that needs the card (an APDU) holds the slot until the card answers; later
 * commands wait in a queue. Answers queue in the same order and are handed
 * to bulk-in packets as they come, one answer per transfer.
 *
 * Scheduling: whatever arrives (a bulk-out or bulk-in packet, a card's
 * answer or event, a reset) only changes state and queues work; ccid_run()
 * alone runs commands, hands answers to bulk-in and takes in held bulk-out
 * packets, until nothing changes. Nothing it calls calls it back. A card may
 * answer from within apdu_from_guest: the loop sees that answer when the card
 * call returns. A card that answers later, from the main loop, wakes the
 * reader's wakeup source, which runs ccid_run() (and asks the host for more
 * time while the card is slow).
 */
#include "hw/usb.h"
#include "hw/usb/desc.h"
#include "hw/usb/ccid.h"
#include "monitor/monitor.h"
#include "proto/ccid.h"
#include "trace/control.h"
#include "trace.h"

#include <string.h>

#define TYPE_USB_CCID "usb-ccid"

#define CCID_INT_IN_EP    1
#define CCID_BULK_IN_EP   2
#define CCID_BULK_OUT_EP  3

/*
 * dwMaxCCIDMessageLength: 10-byte header + a whole short APDU (4 + 1 + 255
 * + 1 = 261) or a whole short answer (256 + 2). Longer (extended) APDUs and
 * answers travel in chained XfrBlock pieces of at most 261 bytes. 271 is the
 * value that libccid and Windows' usbccid.sys have long met on real readers.
 */
#define CCID_MAX_MESSAGE      271
#define CCID_MAX_CHUNK        (CCID_MAX_MESSAGE - CCID_HEADER_SIZE)

#define CCID_DEFAULT_CLOCK_KHZ 3580    /* 3.58 MHz, ISO 7816-3 default */
#define CCID_DEFAULT_DATA_RATE 9600    /* bps at Fi=372, Di=1 */
#define CCID_MAX_IFSD          254

/*
 * While the card works on an APDU, the reader asks the host for more time
 * this often (CCID 6.2.6: bmCommandStatus 2, "time extension requested"),
 * so a slow card (a signature on a remote client's token) never runs into
 * the host driver's read timeout.
 */
#define CCID_TIME_EXTENSION_MS 500

/* Work bounds for a host that sends without reading. */
#define CCID_MAX_QUEUED_COMMANDS 32
#define CCID_MAX_QUEUED_ANSWERS  32

#define CCID_FEATURES (CCID_FEATURE_AUTO_CONF_ATR | CCID_FEATURE_AUTO_VOLTAGE | \
                       CCID_FEATURE_AUTO_CLOCK | CCID_FEATURE_AUTO_BAUD | \
                       CCID_FEATURE_AUTO_PARAM_NEGOTIATION | CCID_FEATURE_EXTENDED_APDU)

#define LE32(v) ((v) & 0xff), (((v) >> 8) & 0xff), (((v) >> 16) & 0xff), (((v) >> 24) & 0xff)

/* CCID class descriptor, CCID 5.1. Advertises only what the reader does. */
static const uint8_t ccid_class_descriptor[] = {
    0x36,                   /* bLength */
    0x21,                   /* bDescriptorType: CCID functional */
    0x10, 0x01,             /* bcdCCID 1.10 */
    0x00,                   /* bMaxSlotIndex: one slot */
    0x07,                   /* bVoltageSupport: 5 V, 3 V, 1.8 V */
    LE32(0x3),              /* dwProtocols: T=0 and T=1 */
    LE32(CCID_DEFAULT_CLOCK_KHZ),   /* dwDefaultClock */
    LE32(CCID_DEFAULT_CLOCK_KHZ),   /* dwMaximumClock */
    0x01,                   /* bNumClockSupported */
    LE32(CCID_DEFAULT_DATA_RATE),   /* dwDataRate */
    LE32(CCID_DEFAULT_DATA_RATE),   /* dwMaxDataRate */
    0x01,                   /* bNumDataRatesSupported */
    LE32(CCID_MAX_IFSD),    /* dwMaxIFSD */
    LE32(0),                /* dwSynchProtocols */
    LE32(0),                /* dwMechanical: none */
    LE32(CCID_FEATURES),    /* dwFeatures */
    LE32(CCID_MAX_MESSAGE), /* dwMaxCCIDMessageLength */
    0xff,                   /* bClassGetResponse: echo the APDU's class */
    0xff,                   /* bClassEnvelope: echo */
    0x00, 0x00,             /* wLcdLayout: no display */
    0x00,                   /* bPINSupport: no PIN pad */
    0x01,                   /* bMaxCCIDBusySlots */
};

static const USBDescOther ccid_class_desc_other[] = {
    { .length = sizeof(ccid_class_descriptor), .data = ccid_class_descriptor },
};

enum {
    STR_MANUFACTURER = 1,
    STR_PRODUCT,
    STR_SERIALNUMBER,
    STR_INTERFACE,
    STR_COUNT,
};

static const char *const ccid_default_strings[STR_COUNT] = {
    [STR_MANUFACTURER] = "QEMU",
    [STR_PRODUCT]      = "QEMU USB CCID",
    [STR_SERIALNUMBER] = "1",
    [STR_INTERFACE]    = "CCID Interface",
};

#define CCID_ENDPOINTS(bulk_mps, int_interval) { \
    { .bEndpointAddress = USB_DIR_IN | CCID_INT_IN_EP, \
      .bmAttributes = USB_ENDPOINT_XFER_INT, .wMaxPacketSize = 8, .bInterval = (int_interval) }, \
    { .bEndpointAddress = USB_DIR_IN | CCID_BULK_IN_EP, \
      .bmAttributes = USB_ENDPOINT_XFER_BULK, .wMaxPacketSize = (bulk_mps) }, \
    { .bEndpointAddress = USB_DIR_OUT | CCID_BULK_OUT_EP, \
      .bmAttributes = USB_ENDPOINT_XFER_BULK, .wMaxPacketSize = (bulk_mps) }, \
}

static const USBDescEndpoint ccid_eps_full[] = CCID_ENDPOINTS(64, 16);
/* High speed bInterval counts 2^(n-1) microframes: 8 -> 16 ms. */
static const USBDescEndpoint ccid_eps_high[] = CCID_ENDPOINTS(512, 8);

#define CCID_IFACE(_eps) { \
    .bInterfaceNumber = 0, .bNumEndpoints = 3, \
    .bInterfaceClass = 0x0b,   /* Smart Card */ \
    .bInterfaceSubClass = 0, .bInterfaceProtocol = 0, /* CCID bulk transfers */ \
    .iInterface = STR_INTERFACE, \
    .ndesc = 1, .descs = ccid_class_desc_other, .eps = (_eps), \
}

static const USBDescIface ccid_iface_full = CCID_IFACE(ccid_eps_full);
static const USBDescIface ccid_iface_high = CCID_IFACE(ccid_eps_high);

#define CCID_CONFIG(iface) { \
    .bNumInterfaces = 1, .bConfigurationValue = 1, \
    .bmAttributes = 0xa0,   /* bus powered, remote wakeup */ \
    .bMaxPower = 50, .nif = 1, .ifs = &(iface), \
}

static const USBDescConfig ccid_config_full = CCID_CONFIG(ccid_iface_full);
static const USBDescConfig ccid_config_high = CCID_CONFIG(ccid_iface_high);

static const USBDescDevice ccid_desc_device_full = {
    .bcdUSB = 0x0200, .bMaxPacketSize0 = 64, .bNumConfigurations = 1,
    .confs = &ccid_config_full,
};

static const USBDescDevice ccid_desc_device_high = {
    .bcdUSB = 0x0200, .bMaxPacketSize0 = 64, .bNumConfigurations = 1,
    .confs = &ccid_config_high,
};

/* ---- state ---- */

/* A PC_to_RDR message waiting for its turn. */
typedef struct CCIDCommand {
    CCIDHeader hdr;
    GByteArray *payload;
    int bError;              /* >= 0: answer with this parameter error */
} CCIDCommand;

typedef struct USBCCIDState {
    USBDevice dev;
    BusState *bus;
    CCIDCardState *card;
    USBDesc desc;
    const char *strings[STR_COUNT];

    /* properties */
    uint16_t vendorid;
    uint16_t productid;
    char *manufacturer;
    char *product;
    uint8_t debug;

    /* slot */
    bool icc_present;
    bool icc_powered;
    bool notify_pending;     /* a NotifySlotChange waits for interrupt-in */
    bool slot_changed;       /* bit 1 of bmSlotICCState */
    uint8_t protocol;        /* bProtocolNum: 0 = T=0, 1 = T=1 */
    uint8_t protocol_data[7];

    /* commands */
    CCIDAssembler assembler;
    GQueue commands;         /* CCIDCommand *, in arrival order */
    GQueue held_out;         /* bulk-out USBPacket * waiting for queue room */
    bool busy;               /* the card holds an APDU of busy_hdr */
    CCIDHeader busy_hdr;
    gint64 extension_due;    /* monotonic time of the next time extension */
    unsigned answers_to_drop;/* card answers to APDUs we already answered */
    GSource *wakeup;         /* runs ccid_run() from the main loop */

    /* APDU chaining, CCID 6.1.4 */
    GByteArray *cmd_chain;   /* command APDU being assembled */
    GByteArray *rsp_chain;   /* answer being handed out in pieces */
    size_t rsp_chain_off;

    /* answers */
    CCIDSplitter bulk_in;    /* whole RDR_to_PC messages, cut into packets */
    GQueue pending_in;       /* bulk-in USBPacket * waiting for answers */
} USBCCIDState;

#define USB_CCID(obj) DEVICE_CHECK(USBCCIDState, (obj), TYPE_USB_CCID)

/* debug=N: 1 traces commands and failures, 2 answers and APDUs too. */
static const TraceDebugAlias ccid_debug_aliases[] = {
    { 1, "usb_ccid_command*" },
    { 1, "usb_ccid_time_extension" },
    { 1, "usb_ccid_late_card_answer" },
    { 1, "usb_ccid_unsupported_control" },
    { 1, "usb_ccid_reset" },
    { 2, "usb_ccid_*" },
    { 0, NULL },
};

/* ---- slot state ---- */

static uint8_t ccid_icc_status(USBCCIDState *s)
{
    if (!s->icc_present) {
        return CCID_ICC_ABSENT;
    }
    return s->icc_powered ? CCID_ICC_PRESENT_ACTIVE : CCID_ICC_PRESENT_INACTIVE;
}

static void ccid_notify_slot_change(USBCCIDState *s)
{
    s->slot_changed = true;
    s->notify_pending = true;
    usb_wakeup(&s->dev, CCID_INT_IN_EP);
}

/* Offer T=1 when the ATR's first TD byte names it, T=0 otherwise. */
static uint8_t ccid_atr_protocol(const uint8_t *atr, uint32_t len)
{
    uint8_t y, pos = 2;

    if (len < 2 || !(atr[1] & 0x80)) {
        return 0;
    }
    y = atr[1] >> 4;
    pos += !!(y & 1) + !!(y & 2) + !!(y & 4);
    return pos < len ? (atr[pos] & 0x0f) == 1 : 0;   /* atr[pos] is TD1 */
}

static void ccid_reset_parameters(USBCCIDState *s, uint8_t protocol)
{
    static const uint8_t t0[5] = { 0x11, 0x00, 0x00, 0x0a, 0x00 };
    static const uint8_t t1[7] = { 0x11, 0x10, 0x00, 0x4d, 0x00, CCID_MAX_IFSD, 0x00 };

    s->protocol = protocol;
    memset(s->protocol_data, 0, sizeof(s->protocol_data));
    memcpy(s->protocol_data, protocol ? t1 : t0, protocol ? sizeof(t1) : sizeof(t0));
}

static const uint8_t *ccid_card_atr(USBCCIDState *s, uint32_t *len)
{
    *len = 0;
    if (!s->card) {
        return NULL;
    }
    return CCID_CARD_GET_CLASS(s->card)->get_atr(s->card, len);
}

/* ---- answers ---- */

/*
 * Queue one RDR_to_PC message answering cmd (same bSlot and bSeq). status is
 * bStatus: bmICCStatus | bmCommandStatus, CCID 6.2.6.
 */
static void ccid_queue_message(USBCCIDState *s, uint8_t type, const CCIDHeader *cmd,
                               uint8_t status, uint8_t bError, uint8_t specific,
                               const uint8_t *data, uint32_t len)
{
    CCIDHeader h = {
        .bMessageType = type,
        .dwLength = len,
        .bSlot = cmd->bSlot,
        .bSeq = cmd->bSeq,
        .specific = { status, bError, specific },
    };

    trace_usb_ccid_answer(DEVICE(s)->id, type, cmd->bSeq, status, bError, len);
    ccid_splitter_push(&s->bulk_in, &h, data);
}

/* A successful answer: header from the command, then byte 9 and the data. */
static void ccid_queue_answer(USBCCIDState *s, uint8_t type, const CCIDHeader *cmd,
                              uint8_t specific, const uint8_t *data, uint32_t len)
{
    uint8_t status = ccid_icc_status(s) | CCID_COMMAND_OK;

    ccid_queue_message(s, type, cmd, status, 0, specific, data, len);
}

/*
 * A failure answer of the right type for the command. A bError of 0 is
 * "command not supported", which still sets bmCommandStatus = failed.
 */
static void ccid_answer_error(USBCCIDState *s, const CCIDHeader *cmd, uint8_t bError)
{
    uint8_t type = ccid_answer_type(cmd->bMessageType);
    uint8_t status = (cmd->bSlot == 0 ? ccid_icc_status(s) : CCID_ICC_ABSENT) |
                     CCID_COMMAND_FAILED;

    trace_usb_ccid_command_failed(DEVICE(s)->id, ccid_message_name(cmd->bMessageType),
                                  cmd->bSeq, bError);
    ccid_queue_message(s, type, cmd, status, bError,
                       type == CCID_RDR_TO_PC_PARAMETERS ? s->protocol : 0, NULL, 0);
}

static void ccid_answer_slot_status(USBCCIDState *s, const CCIDHeader *cmd)
{
    /* bClockStatus 0: running. A virtual clock never stops. */
    ccid_queue_answer(s, CCID_RDR_TO_PC_SLOT_STATUS, cmd, 0, NULL, 0);
}

static void ccid_answer_parameters(USBCCIDState *s, const CCIDHeader *cmd)
{
    ccid_queue_answer(s, CCID_RDR_TO_PC_PARAMETERS, cmd, s->protocol, s->protocol_data,
                      s->protocol ? 7 : 5);
}

/* Send an answer APDU, chaining it if it does not fit one message. */
static void ccid_answer_apdu(USBCCIDState *s, const CCIDHeader *cmd, const uint8_t *apdu,
                             uint32_t len)
{
    if (len <= CCID_MAX_CHUNK) {
        ccid_queue_answer(s, CCID_RDR_TO_PC_DATA_BLOCK, cmd, CCID_CHAIN_NONE, apdu, len);
        return;
    }
    g_clear_pointer(&s->rsp_chain, g_byte_array_unref);
    s->rsp_chain = g_byte_array_sized_new(len);
    g_byte_array_append(s->rsp_chain, apdu, len);
    s->rsp_chain_off = CCID_MAX_CHUNK;
    ccid_queue_answer(s, CCID_RDR_TO_PC_DATA_BLOCK, cmd, CCID_CHAIN_BEGIN, apdu, CCID_MAX_CHUNK);
}

static void ccid_answer_next_chunk(USBCCIDState *s, const CCIDHeader *cmd)
{
    size_t left = s->rsp_chain->len - s->rsp_chain_off;
    size_t n = MIN(left, CCID_MAX_CHUNK);
    uint8_t chain = n == left ? CCID_CHAIN_END : CCID_CHAIN_MIDDLE;
    GByteArray *rsp = g_byte_array_ref(s->rsp_chain);
    size_t off = s->rsp_chain_off;

    s->rsp_chain_off += n;
    if (chain == CCID_CHAIN_END) {
        g_clear_pointer(&s->rsp_chain, g_byte_array_unref);
    }
    ccid_queue_answer(s, CCID_RDR_TO_PC_DATA_BLOCK, cmd, chain, rsp->data + off, n);
    g_byte_array_unref(rsp);
}

/* Forget a command being chained in and an answer being chained out. */
static void ccid_chain_reset(USBCCIDState *s)
{
    g_clear_pointer(&s->cmd_chain, g_byte_array_unref);
    g_clear_pointer(&s->rsp_chain, g_byte_array_unref);
}

/* ---- the card in flight ---- */

/*
 * The card is slow: ask the host for more time for the APDU in flight,
 * unless answers already wait (they tell the host the reader is alive).
 */
static void ccid_time_extension(USBCCIDState *s)
{
    s->extension_due = g_get_monotonic_time() + CCID_TIME_EXTENSION_MS * 1000;
    if (ccid_splitter_queued(&s->bulk_in)) {
        return;
    }
    trace_usb_ccid_time_extension(DEVICE(s)->id, s->busy_hdr.bSeq);
    /* bError carries the BWT multiplier: one more waiting time. */
    ccid_queue_message(s, CCID_RDR_TO_PC_DATA_BLOCK, &s->busy_hdr,
                       ccid_icc_status(s) | CCID_TIME_EXTENSION, 1, 0, NULL, 0);
}

static void ccid_set_busy(USBCCIDState *s, const CCIDHeader *cmd)
{
    s->busy = true;
    s->busy_hdr = *cmd;
    s->extension_due = g_get_monotonic_time() + CCID_TIME_EXTENSION_MS * 1000;
}

static void ccid_clear_busy(USBCCIDState *s)
{
    s->busy = false;
}

/* Card answers and events call this: ccid_run() picks them up from the main loop. */
static void ccid_wake_soon(USBCCIDState *s)
{
    g_source_set_ready_time(s->wakeup, 0);
}

static void ccid_send_to_card(USBCCIDState *s, const CCIDHeader *cmd, const uint8_t *apdu,
                              uint32_t len)
{
    /* ISO 7816-4: an APDU has at least CLA INS P1 P2; a card has no answer to less. */
    if (len < ISO7816_MIN_APDU_COMMAND) {
        ccid_answer_error(s, cmd, CCID_OFFSET_LENGTH);
        return;
    }
    ccid_set_busy(s, cmd);
    trace_usb_ccid_apdu_to_card(DEVICE(s)->id, cmd->bSeq, len);
    CCID_CARD_GET_CLASS(s->card)->apdu_from_guest(s->card, apdu, len);
}

/*
 * Answer the APDU in flight with an error now; the card's own answer, when
 * it comes, belongs to nobody and is dropped.
 */
static void ccid_fail_in_flight(USBCCIDState *s, uint8_t bError)
{
    if (!s->busy) {
        return;
    }
    ccid_clear_busy(s);
    s->answers_to_drop++;
    ccid_answer_error(s, &s->busy_hdr, bError);
}

static bool ccid_card_answer_is_stale(USBCCIDState *s, const char *what)
{
    if (s->answers_to_drop) {
        s->answers_to_drop--;
        trace_usb_ccid_late_card_answer(DEVICE(s)->id, what);
        return true;
    }
    if (!s->busy) {
        g_warning("%s: card sent an unsolicited %s; dropped", DEVICE(s)->id, what);
        return true;
    }
    return false;
}

static USBCCIDState *ccid_of_card(CCIDCardState *card)
{
    BusState *bus = DEVICE(card)->parent_bus;

    return bus ? USB_CCID(bus->parent) : NULL;
}

void ccid_card_send_apdu_to_guest(CCIDCardState *card, const uint8_t *apdu, uint32_t len)
{
    USBCCIDState *s = ccid_of_card(card);

    if (!s || ccid_card_answer_is_stale(s, "answer")) {
        return;
    }
    ccid_clear_busy(s);
    if (len > ISO7816_MAX_APDU_RESPONSE) {
        g_warning("%s: card answer of %u bytes exceeds %u; reported as overrun",
                  DEVICE(s)->id, len, ISO7816_MAX_APDU_RESPONSE);
        ccid_answer_error(s, &s->busy_hdr, CCID_ERR_XFR_OVERRUN);
    } else {
        ccid_answer_apdu(s, &s->busy_hdr, apdu, len);
    }
    ccid_wake_soon(s);
}

void ccid_card_apdu_failed(CCIDCardState *card)
{
    USBCCIDState *s = ccid_of_card(card);

    if (!s || ccid_card_answer_is_stale(s, "failure")) {
        return;
    }
    ccid_clear_busy(s);
    ccid_answer_error(s, &s->busy_hdr, s->icc_present ? CCID_ERR_HW_ERROR : CCID_ERR_ICC_MUTE);
    ccid_wake_soon(s);
}

/* VCCID_CARD_INSERTED / VCCID_CARD_REMOVED for the monitors (docs/ccid.txt). */
static void ccid_card_event(USBCCIDState *s, CCIDCardState *card, bool inserted)
{
    QObject *data = qdict_new();

    qdict_put(data, "reader", qstring_new(DEVICE(s)->id));
    qdict_put(data, "slot", qint_new(card->slot));
    qdict_put(data, "card", qstring_new(DEVICE(card)->id));
    qmp_event_send(inserted ? "VCCID_CARD_INSERTED" : "VCCID_CARD_REMOVED", data);
}

void ccid_card_card_inserted(CCIDCardState *card)
{
    USBCCIDState *s = ccid_of_card(card);

    if (!s || s->icc_present) {
        return;
    }
    g_message("%s: card inserted", DEVICE(s)->id);
    s->icc_present = true;
    s->icc_powered = false;
    ccid_notify_slot_change(s);
    ccid_wake_soon(s);
    ccid_card_event(s, card, true);
}

void ccid_card_card_removed(CCIDCardState *card)
{
    USBCCIDState *s = ccid_of_card(card);

    if (!s || !s->icc_present) {
        return;
    }
    g_message("%s: card removed", DEVICE(s)->id);
    s->icc_present = false;
    s->icc_powered = false;
    ccid_chain_reset(s);
    ccid_fail_in_flight(s, CCID_ERR_ICC_MUTE);
    ccid_notify_slot_change(s);
    ccid_wake_soon(s);
    ccid_card_event(s, card, false);
}

/* ---- the ccid-bus: slot bookkeeping for every card ---- */

static bool ccid_bus_plug(BusState *bus, DeviceState *child, GError **errp)
{
    CCIDCardState *card = CCID_CARD(child);

    if (card->slot != 0) {
        g_set_error(errp, VCCID_ERROR, 0, "Property '%s.slot' doesn't take value %u "
                    "(the reader has one slot, 0)", child->klass->name, card->slot);
        return false;
    }
    USB_CCID(bus->parent)->card = card;
    return true;
}

static void ccid_bus_unplug(BusState *bus, DeviceState *child)
{
    CCIDCardState *card = CCID_CARD(child);
    USBCCIDState *s = USB_CCID(bus->parent);

    /* One slot: the card leaving is the one ccid_bus_plug took in. */
    g_assert(s->card == card);
    ccid_card_card_removed(card);
    s->card = NULL;
}

static const BusOps ccid_bus_ops = {
    .plug = ccid_bus_plug,
    .unplug = ccid_bus_unplug,
};

/* ---- commands ---- */

static void ccid_power_on(USBCCIDState *s, const CCIDCommand *c)
{
    uint32_t atr_len;
    const uint8_t *atr;

    if (c->hdr.specific[0] > 3) {
        ccid_answer_error(s, &c->hdr, CCID_OFFSET_SPECIFIC);   /* bPowerSelect */
        return;
    }
    atr = ccid_card_atr(s, &atr_len);
    if (!s->icc_present || !atr || atr_len == 0) {
        ccid_answer_error(s, &c->hdr, CCID_ERR_ICC_MUTE);
        return;
    }
    atr_len = MIN(atr_len, ISO7816_MAX_ATR);
    /* A power-on is a cold reset: whatever chain was in progress is gone. */
    ccid_chain_reset(s);
    s->icc_powered = true;
    ccid_reset_parameters(s, ccid_atr_protocol(atr, atr_len));
    ccid_queue_answer(s, CCID_RDR_TO_PC_DATA_BLOCK, &c->hdr, 0, atr, atr_len);
}

static void ccid_power_off(USBCCIDState *s, const CCIDCommand *c)
{
    if (s->icc_powered && s->card && CCID_CARD_GET_CLASS(s->card)->power_off) {
        CCID_CARD_GET_CLASS(s->card)->power_off(s->card);
    }
    s->icc_powered = false;
    ccid_chain_reset(s);
    ccid_answer_slot_status(s, &c->hdr);
}

/* XfrBlock with wLevelParameter: whole APDU, a chained piece, or "more". */
static void ccid_xfr_block(USBCCIDState *s, const CCIDCommand *c)
{
    uint16_t level = ccid_le16(c->hdr.specific + 1);
    const uint8_t *data = c->payload->data;
    uint32_t len = c->payload->len;

    if (!s->icc_present || !s->icc_powered) {
        ccid_answer_error(s, &c->hdr, CCID_ERR_ICC_MUTE);
        return;
    }
    switch (level) {
    case CCID_CHAIN_NONE:
        ccid_chain_reset(s);
        ccid_send_to_card(s, &c->hdr, data, len);
        return;
    case CCID_CHAIN_BEGIN:
        ccid_chain_reset(s);
        s->cmd_chain = g_byte_array_new();
        break;
    case CCID_CHAIN_MIDDLE:
    case CCID_CHAIN_END:
        if (!s->cmd_chain) {
            ccid_answer_error(s, &c->hdr, CCID_OFFSET_SPECIFIC + 1);   /* wLevelParameter */
            return;
        }
        break;
    case CCID_CHAIN_CONTINUE:
        if (!s->rsp_chain || len != 0) {
            ccid_answer_error(s, &c->hdr, CCID_OFFSET_SPECIFIC + 1);
            return;
        }
        ccid_answer_next_chunk(s, &c->hdr);
        return;
    default:
        ccid_answer_error(s, &c->hdr, CCID_OFFSET_SPECIFIC + 1);
        return;
    }
    if (s->cmd_chain->len + len > ISO7816_MAX_APDU_COMMAND) {
        g_clear_pointer(&s->cmd_chain, g_byte_array_unref);
        ccid_answer_error(s, &c->hdr, CCID_ERR_XFR_OVERRUN);
        return;
    }
    g_byte_array_append(s->cmd_chain, data, len);
    if (level != CCID_CHAIN_END) {
        /* Empty answer: send the next piece of the command. */
        ccid_queue_answer(s, CCID_RDR_TO_PC_DATA_BLOCK, &c->hdr, CCID_CHAIN_CONTINUE, NULL, 0);
        return;
    }
    {
        g_autoptr(GByteArray) apdu = g_steal_pointer(&s->cmd_chain);

        ccid_send_to_card(s, &c->hdr, apdu->data, apdu->len);
    }
}

static void ccid_set_parameters(USBCCIDState *s, const CCIDCommand *c)
{
    uint8_t protocol = c->hdr.specific[0];

    if (protocol > 1) {
        ccid_answer_error(s, &c->hdr, CCID_OFFSET_SPECIFIC);   /* bProtocolNum */
        return;
    }
    if (c->payload->len != (protocol ? 7u : 5u)) {
        ccid_answer_error(s, &c->hdr, CCID_OFFSET_LENGTH);
        return;
    }
    if (!s->icc_present) {
        ccid_answer_error(s, &c->hdr, CCID_ERR_ICC_MUTE);
        return;
    }
    s->protocol = protocol;
    memset(s->protocol_data, 0, sizeof(s->protocol_data));
    memcpy(s->protocol_data, c->payload->data, c->payload->len);
    ccid_answer_parameters(s, &c->hdr);
}

static void ccid_set_data_rate(USBCCIDState *s, const CCIDCommand *c)
{
    /* One clock and one rate: whatever is asked, these are what apply. */
    static const uint8_t applied[8] = { LE32(CCID_DEFAULT_CLOCK_KHZ), LE32(CCID_DEFAULT_DATA_RATE) };

    if (c->payload->len != 8) {
        ccid_answer_error(s, &c->hdr, CCID_OFFSET_LENGTH);
        return;
    }
    ccid_queue_answer(s, CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK_FREQUENCY, &c->hdr, 0, applied,
                      sizeof(applied));
}

static void ccid_get_slot_status(USBCCIDState *s, const CCIDCommand *c)
{
    ccid_answer_slot_status(s, &c->hdr);
}

static void ccid_get_parameters(USBCCIDState *s, const CCIDCommand *c)
{
    ccid_answer_parameters(s, &c->hdr);
}

/* ResetParameters: back to the defaults for the protocol the ATR offers. */
static void ccid_reset_parameters_to_atr(USBCCIDState *s, const CCIDCommand *c)
{
    uint32_t atr_len;
    const uint8_t *atr = ccid_card_atr(s, &atr_len);

    ccid_reset_parameters(s, atr ? ccid_atr_protocol(atr, atr_len) : 0);
    ccid_answer_parameters(s, &c->hdr);
}

static void ccid_abort(USBCCIDState *s, const CCIDCommand *c)
{
    /* Whatever was in flight was answered when the Abort arrived. */
    ccid_answer_slot_status(s, &c->hdr);
}

typedef struct CCIDCommandInfo {
    uint8_t type;
    bool no_data;            /* fixed length: dwLength must be 0 */
    bool needs_icc;          /* without a card, ICC_MUTE before anything else */
    void (*run)(USBCCIDState *s, const CCIDCommand *c);   /* NULL: not supported */
} CCIDCommandInfo;

/*
 * The PC_to_RDR messages the reader knows. Not supported (answered with
 * bError 0): IccClock (the clock never stops) and Mechanical (no
 * mechanics), as well as Escape (no vendor commands), T0APDU (APDU level
 * only), Secure (no PIN pad) and unknown types, which are not listed.
 */
static const CCIDCommandInfo ccid_commands[] = {
    { CCID_PC_TO_RDR_ICC_POWER_ON, true, false, ccid_power_on },
    { CCID_PC_TO_RDR_ICC_POWER_OFF, true, false, ccid_power_off },
    { CCID_PC_TO_RDR_GET_SLOT_STATUS, true, false, ccid_get_slot_status },
    { CCID_PC_TO_RDR_XFR_BLOCK, false, false, ccid_xfr_block },
    { CCID_PC_TO_RDR_GET_PARAMETERS, true, true, ccid_get_parameters },
    { CCID_PC_TO_RDR_RESET_PARAMETERS, true, true, ccid_reset_parameters_to_atr },
    { CCID_PC_TO_RDR_SET_PARAMETERS, false, false, ccid_set_parameters },
    { CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK_FREQUENCY, false, false, ccid_set_data_rate },
    { CCID_PC_TO_RDR_ABORT, true, false, ccid_abort },
    { CCID_PC_TO_RDR_ICC_CLOCK, true, false, NULL },
    { CCID_PC_TO_RDR_MECHANICAL, true, false, NULL },
};

static const CCIDCommandInfo *ccid_command_info(uint8_t type)
{
    for (size_t i = 0; i < G_N_ELEMENTS(ccid_commands); i++) {
        if (ccid_commands[i].type == type) {
            return &ccid_commands[i];
        }
    }
    return NULL;
}

static void ccid_execute(USBCCIDState *s, const CCIDCommand *c)
{
    const CCIDHeader *h = &c->hdr;
    const CCIDCommandInfo *info = ccid_command_info(h->bMessageType);

    trace_usb_ccid_command(DEVICE(s)->id, ccid_message_name(h->bMessageType), h->bSeq,
                           h->dwLength);
    if (c->bError >= 0) {
        ccid_answer_error(s, h, c->bError);
    } else if (h->bSlot != 0) {
        ccid_answer_error(s, h, CCID_OFFSET_SLOT);
    } else if (info && info->no_data && h->dwLength != 0) {
        ccid_answer_error(s, h, CCID_OFFSET_LENGTH);
    } else if (info && info->needs_icc && !s->icc_present) {
        ccid_answer_error(s, h, CCID_ERR_ICC_MUTE);
    } else if (!info || !info->run) {
        ccid_answer_error(s, h, CCID_ERR_CMD_NOT_SUPPORTED);
    } else {
        info->run(s, c);
    }
}

static void ccid_command_free(gpointer p)
{
    CCIDCommand *c = p;

    g_byte_array_unref(c->payload);
    g_free(c);
}

/* Queue a command; an Abort also answers the APDU it overtakes. */
static void ccid_queue_command(USBCCIDState *s, const CCIDHeader *h, const uint8_t *payload,
                               uint32_t len, int bError)
{
    CCIDCommand *c = g_new0(CCIDCommand, 1);

    c->hdr = *h;
    c->payload = g_byte_array_sized_new(len);
    g_byte_array_append(c->payload, payload, len);
    c->bError = bError;
    /*
     * PC_to_RDR_Abort overtakes the APDU in flight (CCID 5.3.1): answer that
     * APDU as aborted now, then the Abort itself in its turn.
     */
    if (h->bMessageType == CCID_PC_TO_RDR_ABORT && bError < 0) {
        ccid_fail_in_flight(s, CCID_ERR_CMD_ABORTED);
    }
    g_queue_push_tail(&s->commands, c);
}

/* Take one bulk-out transfer in: a whole message becomes a queued command. */
static void ccid_handle_bulk_out(USBCCIDState *s, USBPacket *p)
{
    CCIDAssembled msg;

    switch (ccid_assembler_push(&s->assembler, p->data, p->size, &msg)) {
    case CCID_ASM_MESSAGE:
        ccid_queue_command(s, &msg.hdr, msg.payload, msg.len, -1);
        break;
    case CCID_ASM_ERROR:
        g_message("%s: malformed %s (seq %u, dwLength %u): bError %u", DEVICE(s)->id,
                  ccid_message_name(msg.hdr.bMessageType), msg.hdr.bSeq, msg.hdr.dwLength,
                  msg.bError);
        ccid_queue_command(s, &msg.hdr, NULL, 0, msg.bError);
        break;
    case CCID_ASM_DROPPED:
        g_message("%s: dropped a %zu-byte bulk-out transfer too short to answer",
                  DEVICE(s)->id, p->size);
        break;
    case CCID_ASM_NEED_MORE:
        break;
    }
    p->actual_length = p->size;
    p->status = USB_RET_SUCCESS;
}

static bool ccid_bulk_out_has_room(USBCCIDState *s)
{
    return g_queue_get_length(&s->commands) < CCID_MAX_QUEUED_COMMANDS;
}

/* Fill a bulk-in packet from the answers; one answer per transfer. */
static void ccid_fill_bulk_in(USBCCIDState *s, USBPacket *p)
{
    p->actual_length += ccid_splitter_pull(&s->bulk_in, p->data + p->actual_length,
                                           p->size - p->actual_length);
    p->status = USB_RET_SUCCESS;
}

/* ---- the scheduling point ---- */

/* Run queued commands while the slot is free and answers have room. */
static bool ccid_run_commands(USBCCIDState *s)
{
    bool ran = false;

    while (!s->busy && !g_queue_is_empty(&s->commands) &&
           ccid_splitter_queued(&s->bulk_in) < CCID_MAX_QUEUED_ANSWERS) {
        CCIDCommand *c = g_queue_pop_head(&s->commands);

        ccid_execute(s, c);
        ccid_command_free(c);
        ran = true;
    }
    return ran;
}

/* Hand queued answers to the bulk-in packets that wait for them. */
static bool ccid_complete_bulk_in(USBCCIDState *s)
{
    bool completed = false;

    while (ccid_splitter_ready(&s->bulk_in) && !g_queue_is_empty(&s->pending_in)) {
        USBPacket *p = g_queue_pop_head(&s->pending_in);

        ccid_fill_bulk_in(s, p);
        usb_packet_complete(&s->dev, p);
        completed = true;
    }
    return completed;
}

/*
 * Take in the oldest bulk-out packet that waited for room in the command
 * queue. One at a time: its command runs before the next is read, as it
 * would have had it found room at once (an Abort must find the APDU before
 * it in flight).
 */
static bool ccid_accept_held_out(USBCCIDState *s)
{
    USBPacket *p;

    if (g_queue_is_empty(&s->held_out) || !ccid_bulk_out_has_room(s)) {
        return false;
    }
    p = g_queue_pop_head(&s->held_out);
    ccid_handle_bulk_out(s, p);
    usb_packet_complete(&s->dev, p);
    return true;
}

/*
 * Run what can run until nothing changes; then sleep until the next time
 * extension is due, or until a card wakes us (ccid_wake_soon).
 */
static void ccid_run(USBCCIDState *s)
{
    bool progress;

    do {
        progress = ccid_run_commands(s);
        progress |= ccid_complete_bulk_in(s);
        progress |= ccid_accept_held_out(s);
    } while (progress);
    g_source_set_ready_time(s->wakeup, s->busy ? s->extension_due : -1);
}

/* The wakeup source: a card's answer or event, or a slow card's deadline. */
static gboolean ccid_wakeup(gpointer opaque)
{
    USBCCIDState *s = opaque;

    if (s->busy && g_get_monotonic_time() >= s->extension_due) {
        ccid_time_extension(s);
    }
    ccid_run(s);
    return G_SOURCE_CONTINUE;
}

static gboolean ccid_wakeup_dispatch(GSource *source, GSourceFunc callback, gpointer opaque)
{
    return callback(opaque);
}

static GSourceFuncs ccid_wakeup_funcs = {
    .dispatch = ccid_wakeup_dispatch,
};

/* ---- USB callbacks ---- */

static void ccid_handle_interrupt_in(USBCCIDState *s, USBPacket *p)
{
    uint8_t msg[2];

    if (!s->notify_pending) {
        p->status = USB_RET_NAK;
        return;
    }
    msg[0] = CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE;
    msg[1] = (s->icc_present ? 1 : 0) | (s->slot_changed ? 2 : 0);
    s->notify_pending = false;
    s->slot_changed = false;
    usb_packet_copy_in(p, msg, sizeof(msg));
    p->status = USB_RET_SUCCESS;
}

static void ccid_handle_data(USBDevice *dev, USBPacket *p)
{
    USBCCIDState *s = USB_CCID(dev);

    if (p->pid == USB_TOKEN_OUT && p->ep == CCID_BULK_OUT_EP) {
        if (!ccid_bulk_out_has_room(s) || !g_queue_is_empty(&s->held_out)) {
            /* The host is writing faster than it reads: hold it back. */
            g_queue_push_tail(&s->held_out, p);
            p->status = USB_RET_ASYNC;
            return;
        }
        ccid_handle_bulk_out(s, p);
    } else if (p->pid == USB_TOKEN_IN && p->ep == CCID_BULK_IN_EP) {
        if (!ccid_splitter_ready(&s->bulk_in) || !g_queue_is_empty(&s->pending_in)) {
            g_queue_push_tail(&s->pending_in, p);
            p->status = USB_RET_ASYNC;
            return;
        }
        ccid_fill_bulk_in(s, p);
    } else if (p->pid == USB_TOKEN_IN && p->ep == CCID_INT_IN_EP) {
        ccid_handle_interrupt_in(s, p);
        return;
    } else {
        p->status = USB_RET_STALL;
        return;
    }
    /* A new command, or room for another answer: something may run now. */
    ccid_run(s);
}

static void ccid_cancel_packet(USBDevice *dev, USBPacket *p)
{
    USBCCIDState *s = USB_CCID(dev);

    g_queue_remove(&s->pending_in, p);
    g_queue_remove(&s->held_out, p);
}

static void ccid_handle_control(USBDevice *dev, USBPacket *p, int request, int value,
                                int index, int length, uint8_t *data)
{
    USBCCIDState *s = USB_CCID(dev);
    static const uint8_t clocks[4] = { LE32(CCID_DEFAULT_CLOCK_KHZ) };
    static const uint8_t rates[4] = { LE32(CCID_DEFAULT_DATA_RATE) };

    switch (request) {
    case ClassInterfaceOutRequest | CCID_REQUEST_ABORT:
        /*
         * wValue: bSlot low byte, bSeq high byte. CCID 5.3.1 pairs this with a
         * PC_to_RDR_Abort on bulk-out, which does the work (it answers the
         * APDU in flight); accepting the request is all that is left here.
         */
        p->status = USB_RET_SUCCESS;
        break;
    case ClassInterfaceRequest | CCID_REQUEST_GET_CLOCK_FREQUENCIES:
        memcpy(data, clocks, MIN(length, (int)sizeof(clocks)));
        p->actual_length = MIN(length, (int)sizeof(clocks));
        p->status = USB_RET_SUCCESS;
        break;
    case ClassInterfaceRequest | CCID_REQUEST_GET_DATA_RATES:
        memcpy(data, rates, MIN(length, (int)sizeof(rates)));
        p->actual_length = MIN(length, (int)sizeof(rates));
        p->status = USB_RET_SUCCESS;
        break;
    default:
        trace_usb_ccid_unsupported_control(DEVICE(s)->id, request, value, index);
        p->status = USB_RET_STALL;
        break;
    }
}

/* Forget everything the host asked for; the card stays, powered off. */
static void ccid_handle_reset(USBDevice *dev)
{
    USBCCIDState *s = USB_CCID(dev);

    trace_usb_ccid_reset(DEVICE(s)->id);
    /* Held packets belong to the old host session; exports forget them too. */
    g_queue_clear(&s->pending_in);
    g_queue_clear(&s->held_out);
    g_queue_clear_full(&s->commands, ccid_command_free);
    /* The endpoints were set up again for the speed of this session. */
    ccid_splitter_reset(&s->bulk_in, s->dev.ep_in[CCID_BULK_IN_EP].max_packet_size);
    ccid_assembler_reset(&s->assembler);
    if (s->busy) {
        ccid_clear_busy(s);
        s->answers_to_drop++;
    }
    ccid_chain_reset(s);
    if (s->icc_powered && s->card && CCID_CARD_GET_CLASS(s->card)->power_off) {
        CCID_CARD_GET_CLASS(s->card)->power_off(s->card);
    }
    s->icc_powered = false;
    ccid_reset_parameters(s, 0);
    /* Tell the new host session what is in the slot. */
    s->notify_pending = s->icc_present;
    s->slot_changed = s->icc_present;
    ccid_run(s);
}

static void ccid_handle_attach(USBDevice *dev)
{
    USBCCIDState *s = USB_CCID(dev);

    g_message("%s: host attached", DEVICE(s)->id);
}

static void ccid_handle_detach(USBDevice *dev)
{
    g_message("%s: host detached", DEVICE(dev)->id);
}

/* ---- realize ---- */

static bool ccid_realize(DeviceState *d, GError **errp)
{
    USBCCIDState *s = USB_CCID(d);

    trace_enable_debug_level(ccid_debug_aliases, s->debug);

    for (int i = 0; i < STR_COUNT; i++) {
        s->strings[i] = ccid_default_strings[i];
    }
    if (s->manufacturer) {
        s->strings[STR_MANUFACTURER] = s->manufacturer;
    }
    if (s->product) {
        s->strings[STR_PRODUCT] = s->product;
    }
    s->desc = (USBDesc) {
        .id = {
            .idVendor = s->vendorid,
            .idProduct = s->productid,
            .bcdDevice = 0x0100,
            .iManufacturer = STR_MANUFACTURER,
            .iProduct = STR_PRODUCT,
            .iSerialNumber = STR_SERIALNUMBER,
        },
        .full = &ccid_desc_device_full,
        .high = &ccid_desc_device_high,
        .str = s->strings,
        .nstr = STR_COUNT,
    };
    s->dev.desc = &s->desc;
    if (!usb_device_realize(&s->dev, errp)) {
        return false;
    }
    ccid_assembler_init(&s->assembler, CCID_MAX_MESSAGE, s->dev.speed == USB_SPEED_HIGH ? 512 : 64);
    ccid_splitter_init(&s->bulk_in, s->dev.ep_in[CCID_BULK_IN_EP].max_packet_size);
    g_queue_init(&s->commands);
    g_queue_init(&s->held_out);
    g_queue_init(&s->pending_in);
    ccid_reset_parameters(s, 0);
    s->wakeup = g_source_new(&ccid_wakeup_funcs, sizeof(GSource));
    g_source_set_callback(s->wakeup, ccid_wakeup, s, NULL);
    g_source_attach(s->wakeup, NULL);
    s->bus = bus_new(TYPE_CCID_BUS, d, 1, &ccid_bus_ops);
    return true;
}

static void ccid_unrealize(DeviceState *d)
{
    USBCCIDState *s = USB_CCID(d);

    bus_free(s->bus);
    ccid_handle_reset(&s->dev);
    ccid_assembler_destroy(&s->assembler);
    ccid_splitter_destroy(&s->bulk_in);
    g_source_destroy(s->wakeup);
    g_source_unref(s->wakeup);
}

static const Property ccid_properties[] = {
    DEFINE_USB_DEVICE_PROPERTIES(USBCCIDState),
    DEFINE_PROP_UINT16("vendorid", USBCCIDState, vendorid, "0x08e6", "USB idVendor"),
    DEFINE_PROP_UINT16("productid", USBCCIDState, productid, "0x4433", "USB idProduct"),
    DEFINE_PROP_STRING("manufacturer", USBCCIDState, manufacturer, NULL,
                       "iManufacturer string (default: QEMU)"),
    DEFINE_PROP_STRING("product", USBCCIDState, product, NULL,
                       "iProduct string (default: QEMU USB CCID)"),
    DEFINE_PROP_UINT8("debug", USBCCIDState, debug, "0", "trace level (alias of -trace usb_ccid_*): 0 none, 1 commands, 2 all"),
    DEFINE_PROP_END_OF_LIST(),
};

static const USBDeviceClass usb_ccid_class = {
    .parent_class = {
        .name = TYPE_USB_CCID,
        .parent_type = TYPE_USB_DEVICE,
        .desc = "CCID Rev 1.1 smartcard reader",
        .instance_size = sizeof(USBCCIDState),
        .props = ccid_properties,
        .user_creatable = true,
        .realize = ccid_realize,
        .unrealize = ccid_unrealize,
    },
    .handle_reset = ccid_handle_reset,
    .handle_control = ccid_handle_control,
    .handle_data = ccid_handle_data,
    .cancel_packet = ccid_cancel_packet,
    .handle_attach = ccid_handle_attach,
    .handle_detach = ccid_handle_detach,
};

device_class_init(usb_ccid_class)
