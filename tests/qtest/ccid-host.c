/*
 * The CCID class driver side of the tests (see ccid-host.h).
 */
#include "ccid-host.h"

#include <string.h>

#define USB_DT_CONFIG     0x02
#define USB_DT_INTERFACE  0x04
#define USB_DT_ENDPOINT   0x05
#define USB_DT_CCID       0x21
#define USB_CLASS_CSCID   0x0b

/* Larger than any answer: 10 + 65,536 + 2 bytes, rounded up. */
#define CCID_BULK_IN_DEFAULT (65536 + 64)

void ccid_class_desc_parse(const uint8_t d[0x36], CcidClassDesc *o)
{
    o->bLength = d[0];
    o->bDescriptorType = d[1];
    o->bcdCCID = le16(d + 2);
    o->bMaxSlotIndex = d[4];
    o->bVoltageSupport = d[5];
    o->dwProtocols = le32(d + 6);
    o->dwDefaultClock = le32(d + 10);
    o->dwMaximumClock = le32(d + 14);
    o->bNumClockSupported = d[18];
    o->dwDataRate = le32(d + 19);
    o->dwMaxDataRate = le32(d + 23);
    o->bNumDataRatesSupported = d[27];
    o->dwMaxIFSD = le32(d + 28);
    o->dwSynchProtocols = le32(d + 32);
    o->dwMechanical = le32(d + 36);
    o->dwFeatures = le32(d + 40);
    o->dwMaxCCIDMessageLength = le32(d + 44);
    o->bClassGetResponse = d[48];
    o->bClassEnvelope = d[49];
    o->wLcdLayout = le16(d + 50);
    o->bPINSupport = d[52];
    o->bMaxCCIDBusySlots = d[53];
}

static GByteArray *read_config(UsbredirHost *usb)
{
    g_autoptr(GByteArray) head = urh_get_descriptor(usb, USB_DT_CONFIG, 0, 0, 9);

    g_assert_nonnull(head);
    g_assert_cmpuint(head->len, ==, 9);
    return urh_get_descriptor(usb, USB_DT_CONFIG, 0, 0, le16(head->data + 2));
}

static void parse_endpoint(CcidHost *c, const uint8_t *d)
{
    uint8_t addr = d[2], type = d[3] & 3;
    uint16_t mps = le16(d + 4);

    if (type == 2 && (addr & 0x80)) {
        c->ep_bulk_in = addr;
        c->bulk_in_mps = mps;
    } else if (type == 2) {
        c->ep_bulk_out = addr;
        c->bulk_out_mps = mps;
    } else if (type == 3 && (addr & 0x80)) {
        c->ep_int_in = addr;
        c->int_in_mps = mps;
    }
}

/* Walk the configuration: the CCID interface, its class descriptor, its endpoints. */
static void parse_config(CcidHost *c)
{
    const uint8_t *p = c->config->data;
    size_t off = 0, len = c->config->len;
    bool in_ccid = false, have_desc = false;

    while (off + 2 <= len) {
        uint8_t dlen = p[off], dtype = p[off + 1];

        g_assert_cmpuint(dlen, >=, 2);
        g_assert_cmpuint(off + dlen, <=, len);
        if (dtype == USB_DT_INTERFACE) {
            g_assert_cmpuint(dlen, ==, 9);
            in_ccid = p[off + 5] == USB_CLASS_CSCID;
            if (in_ccid) {
                c->ifnum = p[off + 2];
            }
        } else if (in_ccid && dtype == USB_DT_CCID) {
            g_assert_cmpuint(dlen, ==, 0x36);
            ccid_class_desc_parse(p + off, &c->desc);
            have_desc = true;
        } else if (in_ccid && dtype == USB_DT_ENDPOINT) {
            g_assert_cmpuint(dlen, ==, 7);
            parse_endpoint(c, p + off);
        }
        off += dlen;
    }
    g_assert_true(have_desc);
    g_assert_cmpuint(c->ep_bulk_in, !=, 0);
    g_assert_cmpuint(c->ep_bulk_out, !=, 0);
}

CcidHost *ccid_host_new(UsbredirHost *usb)
{
    CcidHost *c = g_new0(CcidHost, 1);
    uint8_t cfg = 0;

    c->usb = usb;
    c->bulk_in_size = CCID_BULK_IN_DEFAULT;
    c->config = read_config(usb);
    g_assert_nonnull(c->config);
    parse_config(c);
    g_assert_cmpint(urh_set_configuration(usb, 1, &cfg), ==, usb_redir_success);
    g_assert_cmpuint(cfg, ==, 1);
    return c;
}

CcidHost *ccid_host_open(const char *sock_path)
{
    g_autoptr(GError) error = NULL;
    UsbredirHost *usb = urh_connect(sock_path, URH_TIMEOUT_MS, &error);

    g_assert_no_error(error);
    return ccid_host_new(usb);
}

void ccid_host_free(CcidHost *c)
{
    if (!c) {
        return;
    }
    urh_free(c->usb);
    g_byte_array_unref(c->config);
    g_free(c);
}

void ccid_send_raw(CcidHost *c, const uint8_t *msg, size_t len)
{
    int st = urh_bulk_out(c->usb, c->ep_bulk_out, msg, len, URH_TIMEOUT_MS);

    g_assert_cmpint(st, ==, usb_redir_success);
}

static bool answer_complete(const GByteArray *m)
{
    return m->len >= CCID_HDR && m->len == CCID_HDR + (size_t)le32(m->data + 1);
}

static CcidAnswer *ccid_read_message(CcidHost *c, int timeout_ms);

/*
 * The next answer, past any time extensions (bmCommandStatus 2) the reader
 * sends while a slow card works: a host waits on for the real answer.
 */
CcidAnswer *ccid_read_answer(CcidHost *c, int timeout_ms)
{
    for (;;) {
        CcidAnswer *a = ccid_read_message(c, timeout_ms);

        if ((a->status & 0xc0) != 0x80) {
            return a;
        }
        c->time_extensions++;
        ccid_answer_free(a);
    }
}

CcidAnswer *ccid_read_answer_bounded(CcidHost *c, int timeout_ms, unsigned max_extensions)
{
    for (unsigned n = 0;; n++) {
        CcidAnswer *a = ccid_read_message(c, timeout_ms);

        if ((a->status & 0xc0) != 0x80) {
            return a;
        }
        c->time_extensions++;
        ccid_answer_free(a);
        if (n >= max_extensions) {
            g_error("still time extensions after %u: the answer is lost", n + 1);
        }
    }
}

static CcidAnswer *ccid_read_message(CcidHost *c, int timeout_ms)
{
    CcidAnswer *a = g_new0(CcidAnswer, 1);

    a->raw = g_byte_array_new();
    for (;;) {
        UrhTransfer *t = urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size);
        size_t got;

        if (!urh_wait(c->usb, t, timeout_ms) && !urh_peer_alive(c->usb)) {
            g_error("bulk-in: the device closed the connection");
        }
        if (!t->done) {
            g_error("bulk-in of %u bytes: no completion within %d ms; the answer so far "
                    "has %u bytes (type %02x, dwLength %u, bSeq %u)", c->bulk_in_size,
                    timeout_ms, a->raw->len, a->raw->len ? a->raw->data[0] : 0,
                    a->raw->len >= 5 ? le32(a->raw->data + 1) : 0,
                    a->raw->len >= 7 ? a->raw->data[6] : 0);
        }
        g_assert_cmpint(t->status, ==, usb_redir_success);
        g_byte_array_append(a->raw, t->data->data, t->data->len);
        got = t->data->len;
        urh_transfer_release(c->usb, t);
        if (got < c->bulk_in_size) {
            break;
        }
        /* A full packet: the transfer goes on (or a ZLP ends a whole message). */
        g_assert_cmpuint(a->raw->len, <=, CCID_HDR + 65536 + 2);
    }
    g_assert_cmpuint(a->raw->len, >=, CCID_HDR);
    a->type = a->raw->data[0];
    a->dwLength = le32(a->raw->data + 1);
    a->slot = a->raw->data[5];
    a->seq = a->raw->data[6];
    a->status = a->raw->data[7];
    a->error = a->raw->data[8];
    a->specific = a->raw->data[9];
    a->data = a->raw->data + CCID_HDR;
    return a;
}

void ccid_answer_free(CcidAnswer *a)
{
    if (a) {
        g_byte_array_unref(a->raw);
        g_free(a);
    }
}

size_t ccid_transact(CcidHost *c, const uint8_t *msg, size_t len, uint8_t *answer,
                     size_t size)
{
    g_autoptr(CcidAnswer) a = NULL;

    ccid_send_raw(c, msg, len);
    a = ccid_read_answer(c, URH_TIMEOUT_MS);
    g_assert_cmpuint(a->raw->len, <=, size);
    memcpy(answer, a->raw->data, a->raw->len);
    return a->raw->len;
}

uint8_t ccid_build(CcidHost *c, uint8_t *buf, uint8_t type, uint8_t slot, uint32_t dwLength,
                   uint8_t p1, uint8_t p2, uint8_t p3)
{
    uint8_t seq = c->seq++;

    buf[0] = type;
    put_le32(buf + 1, dwLength);
    buf[5] = slot;
    buf[6] = seq;
    buf[7] = p1;
    buf[8] = p2;
    buf[9] = p3;
    return seq;
}

uint8_t ccid_send_xfr_block(CcidHost *c, const uint8_t *apdu, size_t len)
{
    g_autofree uint8_t *msg = g_malloc(CCID_HDR + len);
    uint8_t seq = ccid_build(c, msg, PC_to_RDR_XfrBlock, 0, len, 0, 0, 0);

    memcpy(msg + CCID_HDR, apdu, len);
    ccid_send_raw(c, msg, CCID_HDR + len);
    return seq;
}

uint8_t ccid_send_abort(CcidHost *c)
{
    uint8_t msg[CCID_HDR];
    uint8_t seq = ccid_build(c, msg, PC_to_RDR_Abort, 0, 0, 0, 0, 0);

    g_assert_cmpint(urh_control(c->usb, 0x21, CCID_REQ_ABORT, seq << 8, c->ifnum, NULL, 0,
                                NULL, URH_TIMEOUT_MS), ==, usb_redir_success);
    ccid_send_raw(c, msg, sizeof(msg));
    return seq;
}

void ccid_check_answer(const CcidAnswer *a, uint8_t type, uint8_t slot, uint8_t seq)
{
    g_assert_cmphex(a->type, ==, type);
    g_assert_cmpuint(a->seq, ==, seq);
    g_assert_cmpuint(a->slot, ==, slot);
    /* libccid rejects padding: exactly 10 + dwLength bytes. */
    g_assert_true(answer_complete(a->raw));
}

/* The RDR_to_PC type that answers each PC_to_RDR type (CCID 6.1). */
static uint8_t expected_answer_type(uint8_t type)
{
    switch (type) {
    case PC_to_RDR_IccPowerOn:
    case PC_to_RDR_XfrBlock:
    case PC_to_RDR_Secure:
        return RDR_to_PC_DataBlock;
    case PC_to_RDR_GetParameters:
    case PC_to_RDR_ResetParameters:
    case PC_to_RDR_SetParameters:
        return RDR_to_PC_Parameters;
    case PC_to_RDR_Escape:
        return RDR_to_PC_Escape;
    case PC_to_RDR_SetDataRateAndClockFrequency:
        return RDR_to_PC_DataRateAndClockFrequency;
    default:
        return RDR_to_PC_SlotStatus;
    }
}

CcidAnswer *ccid_command_slot(CcidHost *c, uint8_t type, uint8_t slot, uint8_t p1,
                              uint8_t p2, uint8_t p3, const uint8_t *data, uint32_t len)
{
    g_autofree uint8_t *msg = g_malloc(CCID_HDR + len);
    uint8_t seq = ccid_build(c, msg, type, slot, len, p1, p2, p3);
    CcidAnswer *a;

    if (len) {
        memcpy(msg + CCID_HDR, data, len);
    }
    ccid_send_raw(c, msg, CCID_HDR + len);
    a = ccid_read_answer(c, URH_TIMEOUT_MS);
    ccid_check_answer(a, expected_answer_type(type), slot, seq);
    return a;
}

CcidAnswer *ccid_command(CcidHost *c, uint8_t type, uint8_t p1, uint8_t p2, uint8_t p3,
                         const uint8_t *data, uint32_t len)
{
    return ccid_command_slot(c, type, 0, p1, p2, p3, data, len);
}

static uint8_t power_select(const CcidHost *c)
{
    if (c->desc.dwFeatures & CCID_FEAT_AUTO_VOLTAGE) {
        return 0;                      /* automatic */
    }
    for (int i = 0; i < 3; i++) {
        if (c->desc.bVoltageSupport & (1 << i)) {
            return i + 1;              /* 5 V, 3 V, 1.8 V */
        }
    }
    return 0;
}

GByteArray *ccid_power_on(CcidHost *c)
{
    gint64 deadline = g_get_monotonic_time() + URH_TIMEOUT_MS * 1000;
    g_autoptr(CcidAnswer) a = NULL;

    /* The emulated card arrives once libcacard has read the database. */
    for (;;) {
        g_autoptr(CcidAnswer) st = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, 0, 0, NULL, 0);

        if (ICC_STATUS(st->status) != ICC_ABSENT) {
            break;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        urh_idle(c->usb, 20);
    }
    a = ccid_command(c, PC_to_RDR_IccPowerOn, power_select(c), 0, 0, NULL, 0);
    g_assert_cmpuint(CMD_STATUS(a->status), ==, CMD_OK);
    g_assert_cmpuint(ICC_STATUS(a->status), ==, ICC_ACTIVE);
    return g_byte_array_append(g_byte_array_new(), a->data, a->dwLength);
}

/* Send one XfrBlock piece and read its DataBlock, which must succeed. */
static CcidAnswer *xfr_piece(CcidHost *c, const uint8_t *data, uint32_t len, uint16_t level)
{
    CcidAnswer *a = ccid_command(c, PC_to_RDR_XfrBlock, 0, level & 0xff, level >> 8,
                                 data, len);

    if (CMD_STATUS(a->status) != CMD_OK) {
        g_error("XfrBlock (wLevelParameter %04x, %u bytes) failed: bStatus %02x bError %02x",
                level, len, a->status, a->error);
    }
    return a;
}

GByteArray *ccid_xfr_apdu(CcidHost *c, const uint8_t *apdu, size_t len)
{
    size_t chunk = c->desc.dwMaxCCIDMessageLength - CCID_HDR;
    GByteArray *rsp = g_byte_array_new();
    g_autoptr(CcidAnswer) a = NULL;
    size_t off = 0;

    /* Command: whole, or chained pieces of at most dwMaxCCIDMessageLength. */
    if (len <= chunk) {
        a = xfr_piece(c, apdu, len, CCID_CHAIN_NONE);
    } else {
        g_assert_true(c->desc.dwFeatures & CCID_FEAT_EXTENDED_APDU);
        while (off < len) {
            size_t n = MIN(chunk, len - off);
            uint16_t level = off == 0 ? CCID_CHAIN_BEGIN :
                             off + n == len ? CCID_CHAIN_END : CCID_CHAIN_MIDDLE;

            g_clear_pointer(&a, ccid_answer_free);
            a = xfr_piece(c, apdu + off, n, level);
            off += n;
            if (off < len) {
                /* The reader asks for the next piece with an empty block. */
                g_assert_cmphex(a->specific, ==, CCID_CHAIN_CONTINUE);
                g_assert_cmpuint(a->dwLength, ==, 0);
            }
        }
    }

    /* Response: whole, or pieces fetched with empty XfrBlocks. */
    g_byte_array_append(rsp, a->data, a->dwLength);
    g_assert_true(a->specific == CCID_CHAIN_NONE || a->specific == CCID_CHAIN_BEGIN);
    while (a->specific == CCID_CHAIN_BEGIN || a->specific == CCID_CHAIN_MIDDLE) {
        g_clear_pointer(&a, ccid_answer_free);
        a = xfr_piece(c, NULL, 0, CCID_CHAIN_CONTINUE);
        g_assert_true(a->specific == CCID_CHAIN_MIDDLE || a->specific == CCID_CHAIN_END);
        g_byte_array_append(rsp, a->data, a->dwLength);
    }
    g_assert_cmpuint(rsp->len, >=, 2);
    return rsp;
}

GByteArray *ccid_transmit(CcidHost *c, const uint8_t *apdu, size_t len)
{
    GByteArray *rsp = ccid_xfr_apdu(c, apdu, len);
    GByteArray *all = g_byte_array_new();

    for (int rounds = 0; rounds < 300; rounds++) {
        uint16_t sw = apdu_sw(rsp);

        if ((sw >> 8) == 0x6c && len >= 5 && len <= 261 && rounds == 0) {
            /* Wrong Le: repeat with the length the card asked for. */
            g_autofree uint8_t *again = g_memdup2(apdu, len);
            again[len - 1] = sw & 0xff;
            g_byte_array_unref(rsp);
            rsp = ccid_xfr_apdu(c, again, len);
            continue;
        }
        g_byte_array_append(all, rsp->data, rsp->len - 2);
        if ((sw >> 8) != 0x61) {
            g_byte_array_append(all, rsp->data + rsp->len - 2, 2);
            g_byte_array_unref(rsp);
            return all;
        }
        /* 61xx: more data waits; GET RESPONSE (ISO 7816-4 7.6.1). */
        uint8_t get_response[] = { apdu[0] & 0x0f, 0xc0, 0x00, 0x00, sw & 0xff };
        g_byte_array_unref(rsp);
        rsp = ccid_xfr_apdu(c, get_response, sizeof(get_response));
    }
    g_error("GET RESPONSE did not end");
}
