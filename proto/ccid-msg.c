/*
 * CCID message header, bulk-out assembly and bulk-in splitting.
 */
#include "proto/ccid.h"

#include <string.h>

void ccid_header_parse(const uint8_t buf[CCID_HEADER_SIZE], CCIDHeader *h)
{
    h->bMessageType = buf[0];
    h->dwLength = buf[1] | (buf[2] << 8) | (buf[3] << 16) | ((uint32_t)buf[4] << 24);
    h->bSlot = buf[5];
    h->bSeq = buf[6];
    memcpy(h->specific, buf + 7, 3);
}

void ccid_header_write(uint8_t buf[CCID_HEADER_SIZE], const CCIDHeader *h)
{
    buf[0] = h->bMessageType;
    buf[1] = h->dwLength & 0xff;
    buf[2] = (h->dwLength >> 8) & 0xff;
    buf[3] = (h->dwLength >> 16) & 0xff;
    buf[4] = h->dwLength >> 24;
    buf[5] = h->bSlot;
    buf[6] = h->bSeq;
    memcpy(buf + 7, h->specific, 3);
}

uint8_t ccid_answer_type(uint8_t type)
{
    switch (type) {
    case CCID_PC_TO_RDR_ICC_POWER_ON:
    case CCID_PC_TO_RDR_XFR_BLOCK:
    case CCID_PC_TO_RDR_SECURE:
        return CCID_RDR_TO_PC_DATA_BLOCK;
    case CCID_PC_TO_RDR_GET_PARAMETERS:
    case CCID_PC_TO_RDR_RESET_PARAMETERS:
    case CCID_PC_TO_RDR_SET_PARAMETERS:
        return CCID_RDR_TO_PC_PARAMETERS;
    case CCID_PC_TO_RDR_ESCAPE:
        return CCID_RDR_TO_PC_ESCAPE;
    case CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK_FREQUENCY:
        return CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK_FREQUENCY;
    default:
        /* Power off, slot status, clock, T0APDU, mechanical, abort, unknown. */
        return CCID_RDR_TO_PC_SLOT_STATUS;
    }
}

const char *ccid_message_name(uint8_t type)
{
    switch (type) {
    case CCID_PC_TO_RDR_SET_PARAMETERS:   return "SetParameters";
    case CCID_PC_TO_RDR_ICC_POWER_ON:     return "IccPowerOn";
    case CCID_PC_TO_RDR_ICC_POWER_OFF:    return "IccPowerOff";
    case CCID_PC_TO_RDR_GET_SLOT_STATUS:  return "GetSlotStatus";
    case CCID_PC_TO_RDR_SECURE:           return "Secure";
    case CCID_PC_TO_RDR_T0_APDU:          return "T0APDU";
    case CCID_PC_TO_RDR_ESCAPE:           return "Escape";
    case CCID_PC_TO_RDR_GET_PARAMETERS:   return "GetParameters";
    case CCID_PC_TO_RDR_RESET_PARAMETERS: return "ResetParameters";
    case CCID_PC_TO_RDR_ICC_CLOCK:        return "IccClock";
    case CCID_PC_TO_RDR_XFR_BLOCK:        return "XfrBlock";
    case CCID_PC_TO_RDR_MECHANICAL:       return "Mechanical";
    case CCID_PC_TO_RDR_ABORT:            return "Abort";
    case CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK_FREQUENCY:
        return "SetDataRateAndClockFrequency";
    default:                              return "unknown";
    }
}

void ccid_assembler_init(CCIDAssembler *a, size_t max_message, size_t max_packet)
{
    a->buf = g_byte_array_sized_new(MIN(max_message, 4096));
    a->max_message = max_message;
    a->max_packet = max_packet;
    a->discarding = false;
}

void ccid_assembler_reset(CCIDAssembler *a)
{
    g_byte_array_set_size(a->buf, 0);
    a->discarding = false;
}

void ccid_assembler_destroy(CCIDAssembler *a)
{
    g_clear_pointer(&a->buf, g_byte_array_unref);
}

/* A packet shorter than the endpoint's packet size ends the transfer. */
static bool ccid_packet_ends_transfer(const CCIDAssembler *a, size_t len)
{
    return len == 0 || len % a->max_packet != 0;
}

static CCIDAssemblyResult ccid_assembler_fail(CCIDAssembler *a, const CCIDHeader *h,
                                              uint8_t bError, CCIDAssembled *out)
{
    out->hdr = *h;
    out->payload = NULL;
    out->len = 0;
    out->bError = bError;
    g_byte_array_set_size(a->buf, 0);
    return CCID_ASM_ERROR;
}

/* While skipping an oversized message, wait for its transfer to end. */
static CCIDAssemblyResult ccid_assembler_discard(CCIDAssembler *a, size_t len,
                                                 CCIDAssembled *out)
{
    if (!ccid_packet_ends_transfer(a, len)) {
        return CCID_ASM_NEED_MORE;
    }
    a->discarding = false;
    return ccid_assembler_fail(a, &a->discard_hdr, CCID_OFFSET_LENGTH, out);
}

CCIDAssemblyResult ccid_assembler_push(CCIDAssembler *a, const uint8_t *data, size_t len,
                                       CCIDAssembled *out)
{
    bool transfer_ended = ccid_packet_ends_transfer(a, len);
    CCIDHeader h;
    size_t want;

    if (a->discarding) {
        return ccid_assembler_discard(a, len, out);
    }
    if (len == 0 && a->buf->len == 0) {
        return CCID_ASM_NEED_MORE;   /* a ZLP after an exact-size message */
    }
    if (a->buf->len + len > a->max_message + CCID_HEADER_SIZE) {
        /* Never buffer beyond the largest legal message. */
        size_t room = a->max_message + CCID_HEADER_SIZE - a->buf->len;

        g_byte_array_append(a->buf, data, MIN(room, len));
        len = MIN(room, len);
    } else {
        g_byte_array_append(a->buf, data, len);
    }
    if (a->buf->len < CCID_HEADER_SIZE) {
        if (!transfer_ended) {
            return CCID_ASM_NEED_MORE;
        }
        if (a->buf->len > CCID_OFFSET_SEQ) {
            /* Enough to say which command was short: answer it. */
            uint8_t hb[CCID_HEADER_SIZE] = { 0 };

            memcpy(hb, a->buf->data, a->buf->len);
            ccid_header_parse(hb, &h);
            return ccid_assembler_fail(a, &h, CCID_OFFSET_LENGTH, out);
        }
        g_byte_array_set_size(a->buf, 0);
        return CCID_ASM_DROPPED;
    }
    ccid_header_parse(a->buf->data, &h);
    if (h.dwLength > a->max_message - CCID_HEADER_SIZE) {
        if (transfer_ended) {
            return ccid_assembler_fail(a, &h, CCID_OFFSET_LENGTH, out);
        }
        a->discarding = true;
        a->discard_hdr = h;
        g_byte_array_set_size(a->buf, 0);
        return CCID_ASM_NEED_MORE;
    }
    want = CCID_HEADER_SIZE + h.dwLength;
    if (a->buf->len > want) {
        /* More bytes than dwLength says: the length lies. */
        return ccid_assembler_fail(a, &h, CCID_OFFSET_LENGTH, out);
    }
    if (a->buf->len < want) {
        if (transfer_ended) {
            return ccid_assembler_fail(a, &h, CCID_OFFSET_LENGTH, out);
        }
        return CCID_ASM_NEED_MORE;
    }
    out->hdr = h;
    out->payload = a->buf->data + CCID_HEADER_SIZE;
    out->len = h.dwLength;
    out->bError = 0;
    /* The caller reads the payload before the next push; empty the buffer then. */
    g_byte_array_set_size(a->buf, 0);
    return CCID_ASM_MESSAGE;
}

/* ---- bulk-in ---- */

static void ccid_message_free(gpointer p)
{
    g_byte_array_unref(p);
}

void ccid_splitter_init(CCIDSplitter *sp, size_t max_packet)
{
    g_queue_init(&sp->messages);
    sp->offset = 0;
    sp->max_packet = max_packet;
    sp->zlp_pending = false;
}

void ccid_splitter_reset(CCIDSplitter *sp, size_t max_packet)
{
    g_queue_clear_full(&sp->messages, ccid_message_free);
    ccid_splitter_init(sp, max_packet);
}

void ccid_splitter_destroy(CCIDSplitter *sp)
{
    g_queue_clear_full(&sp->messages, ccid_message_free);
}

void ccid_splitter_push(CCIDSplitter *sp, const CCIDHeader *h, const uint8_t *payload)
{
    GByteArray *msg = g_byte_array_sized_new(CCID_HEADER_SIZE + h->dwLength);

    g_byte_array_set_size(msg, CCID_HEADER_SIZE);
    ccid_header_write(msg->data, h);
    if (h->dwLength) {
        g_byte_array_append(msg, payload, h->dwLength);
    }
    g_queue_push_tail(&sp->messages, msg);
}

unsigned ccid_splitter_queued(const CCIDSplitter *sp)
{
    return g_queue_get_length((GQueue *)&sp->messages);
}

bool ccid_splitter_ready(const CCIDSplitter *sp)
{
    return sp->zlp_pending || !g_queue_is_empty((GQueue *)&sp->messages);
}

size_t ccid_splitter_pull(CCIDSplitter *sp, uint8_t *buf, size_t room)
{
    GByteArray *msg = g_queue_peek_head(&sp->messages);
    size_t n;

    if (sp->zlp_pending) {
        sp->zlp_pending = false;
        return 0;
    }
    if (!msg) {
        return 0;
    }
    n = MIN(room, msg->len - sp->offset);
    if (n) {
        memcpy(buf, msg->data + sp->offset, n);
    }
    sp->offset += n;
    if (sp->offset == msg->len) {
        g_byte_array_unref(g_queue_pop_head(&sp->messages));
        sp->offset = 0;
        sp->zlp_pending = room == sp->max_packet && n == sp->max_packet;
    }
    return n;
}
