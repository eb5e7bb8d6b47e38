/*
 * VSCard stream parser and message builders. See include/proto/vscard.h.
 *
 * The parser keeps at most one header and one payload of at most
 * VSCARD_MAX_PAYLOAD bytes; a payload that arrives whole in one buffer is
 * handed out in place, without a copy.
 */
#include <string.h>

#include "proto/vscard.h"

struct VSCardStream {
    VSCardRole role;
    const VSCardStreamOps *ops;
    void *opaque;

    uint8_t hdr[VSCARD_HEADER_SIZE];
    size_t hdr_fill;
    bool have_header;
    VSCardMsg cur;          /* header fields of the message being read */
    uint8_t *body;          /* payload that spans feeds, cur.length bytes */
    size_t body_fill;

    bool dead;              /* a fatal error: nothing more is parsed */
    unsigned generation;    /* bumped by reset, so feed notices a reset from a callback */
};

static uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

VSCardStream *vscard_stream_new(VSCardRole role, const VSCardStreamOps *ops, void *opaque)
{
    VSCardStream *s = g_new0(VSCardStream, 1);

    s->role = role;
    s->ops = ops;
    s->opaque = opaque;
    return s;
}

void vscard_stream_free(VSCardStream *s)
{
    if (s) {
        g_free(s->body);
        g_free(s);
    }
}

static void clear_message(VSCardStream *s)
{
    g_clear_pointer(&s->body, g_free);
    s->body_fill = 0;
    s->hdr_fill = 0;
    s->have_header = false;
    memset(&s->cur, 0, sizeof(s->cur));
}

void vscard_stream_reset(VSCardStream *s)
{
    clear_message(s);
    s->dead = false;
    s->generation++;
}

bool vscard_stream_is_dead(const VSCardStream *s)
{
    return s->dead;
}

size_t vscard_stream_pending(const VSCardStream *s)
{
    return s->hdr_fill + s->body_fill;
}

bool vscard_error_is_fatal(VSCardStreamError err)
{
    return err == VSCARD_ERR_TOO_LONG || err == VSCARD_ERR_BAD_MAGIC ||
           err == VSCARD_ERR_BAD_VERSION;
}

const char *vscard_error_str(VSCardStreamError err)
{
    switch (err) {
    case VSCARD_ERR_UNKNOWN_TYPE:    return "unknown message type";
    case VSCARD_ERR_UNEXPECTED_TYPE: return "message type not expected in this direction";
    case VSCARD_ERR_BAD_LENGTH:      return "payload length wrong for the message type";
    case VSCARD_ERR_TOO_LONG:        return "payload length beyond the protocol's largest message";
    case VSCARD_ERR_BAD_MAGIC:       return "Init without the VSCD magic";
    case VSCARD_ERR_BAD_VERSION:     return "Init with an incompatible protocol version";
    }
    return "unknown error";
}

const char *vscard_type_name(uint32_t type)
{
    switch (type) {
    case VSC_Init:          return "Init";
    case VSC_Error:         return "Error";
    case VSC_ReaderAdd:     return "ReaderAdd";
    case VSC_ReaderRemove:  return "ReaderRemove";
    case VSC_ATR:           return "ATR";
    case VSC_CardRemove:    return "CardRemove";
    case VSC_APDU:          return "APDU";
    case VSC_Flush:         return "Flush";
    case VSC_FlushComplete: return "FlushComplete";
    }
    return "unknown";
}

/* Flush goes host to client only, FlushComplete and the card events the other way. */
static bool type_travels_to(VSCardRole role, uint32_t type)
{
    switch (type) {
    case VSC_Init:
    case VSC_Error:
    case VSC_APDU:
        return true;
    case VSC_ReaderAdd:
    case VSC_ReaderRemove:
    case VSC_ATR:
    case VSC_CardRemove:
    case VSC_FlushComplete:
        return role == VSCARD_ROLE_HOST;
    case VSC_Flush:
        return role == VSCARD_ROLE_CLIENT;
    }
    return false;
}

static bool length_fits_type(VSCardRole role, uint32_t type, uint32_t len)
{
    switch (type) {
    case VSC_Init:
        /* The capabilities array may grow, one 32-bit word at a time. */
        return len >= VSCARD_INIT_MIN_SIZE && (len - VSCARD_INIT_MIN_SIZE) % 4 == 0;
    case VSC_Error:
        return len >= VSCARD_ERROR_SIZE;
    case VSC_ReaderAdd:
        return true;    /* an optional reader name */
    case VSC_ATR:
        return len >= ISO7816_MIN_ATR && len <= ISO7816_MAX_ATR;
    case VSC_APDU:
        /* A host receives answers from the card, a client commands for it. */
        if (role == VSCARD_ROLE_HOST) {
            return len >= ISO7816_MIN_APDU_RESPONSE && len <= ISO7816_MAX_APDU_RESPONSE;
        }
        return len >= ISO7816_MIN_APDU_COMMAND && len <= ISO7816_MAX_APDU_COMMAND;
    default:
        return len == 0;    /* ReaderRemove, CardRemove, Flush, FlushComplete */
    }
}

static void report_error(VSCardStream *s, VSCardStreamError err, const VSCardMsg *msg)
{
    if (vscard_error_is_fatal(err)) {
        s->dead = true;
    }
    if (s->ops->error) {
        s->ops->error(s->opaque, err, msg);
    }
}

/*
 * Classify a complete message and hand it out. Returns the error found, or
 * -1 for a good message.
 */
static int dispatch(VSCardStream *s, VSCardMsg *msg)
{
    if (msg->type < VSC_Init || msg->type > VSC_FlushComplete) {
        return VSCARD_ERR_UNKNOWN_TYPE;
    }
    if (!type_travels_to(s->role, msg->type)) {
        return VSCARD_ERR_UNEXPECTED_TYPE;
    }
    if (!length_fits_type(s->role, msg->type, msg->length)) {
        return VSCARD_ERR_BAD_LENGTH;
    }
    if (msg->type == VSC_Init) {
        if (memcmp(msg->payload, VSCARD_MAGIC_BYTES, 4) != 0) {
            return VSCARD_ERR_BAD_MAGIC;
        }
        msg->u.init.version = get_be32(msg->payload + 4);
        if (msg->length >= VSCARD_INIT_MIN_SIZE + 4) {
            msg->u.init.capabilities = get_be32(msg->payload + 8);
        }
        /* Middle and minor versions are compatible by the header's rules. */
        if (VSCARD_VERSION_MAJOR(msg->u.init.version) !=
            VSCARD_VERSION_MAJOR(VSCARD_VERSION)) {
            return VSCARD_ERR_BAD_VERSION;
        }
    } else if (msg->type == VSC_Error) {
        msg->u.error.code = get_be32(msg->payload);
    }
    if (s->ops->message) {
        s->ops->message(s->opaque, msg);
    }
    return -1;
}

/*
 * The current message is complete with its payload at `payload`. The parser
 * state is cleared before any callback so a callback may reset or feed.
 */
static void deliver(VSCardStream *s, const uint8_t *payload)
{
    VSCardMsg msg = s->cur;
    uint8_t *owned = s->body;
    int err;

    s->body = NULL;
    clear_message(s);
    msg.payload = msg.length ? payload : NULL;
    err = dispatch(s, &msg);
    if (err >= 0) {
        report_error(s, err, &msg);
    }
    g_free(owned);
}

/* Returns how many bytes of buf completed the header (all of them or fewer). */
static size_t take_header(VSCardStream *s, const uint8_t *buf, size_t len)
{
    size_t n = MIN(VSCARD_HEADER_SIZE - s->hdr_fill, len);

    memcpy(s->hdr + s->hdr_fill, buf, n);
    s->hdr_fill += n;
    if (s->hdr_fill == VSCARD_HEADER_SIZE) {
        s->cur.type = get_be32(s->hdr);
        s->cur.reader_id = get_be32(s->hdr + 4);
        s->cur.length = get_be32(s->hdr + 8);
        s->have_header = true;
    }
    return n;
}

bool vscard_stream_feed(VSCardStream *s, const uint8_t *buf, size_t len)
{
    unsigned generation = s->generation;
    bool fatal = false;

    while (len > 0 && !s->dead) {
        size_t used;

        if (!s->have_header) {
            used = take_header(s, buf, len);
            buf += used;
            len -= used;
            if (!s->have_header) {
                break;
            }
            if (s->cur.length > VSCARD_MAX_PAYLOAD) {
                VSCardMsg msg = s->cur;

                fatal = true;
                clear_message(s);
                report_error(s, VSCARD_ERR_TOO_LONG, &msg);
                break;
            }
            if (s->cur.length == 0) {
                deliver(s, NULL);
            }
        } else if (s->body_fill == 0 && len >= s->cur.length) {
            used = s->cur.length;
            deliver(s, buf);
            buf += used;
            len -= used;
        } else {
            if (!s->body) {
                s->body = g_malloc(s->cur.length);
            }
            used = MIN(s->cur.length - s->body_fill, len);
            memcpy(s->body + s->body_fill, buf, used);
            s->body_fill += used;
            buf += used;
            len -= used;
            if (s->body_fill == s->cur.length) {
                deliver(s, s->body);
            }
        }
        if (s->dead) {
            fatal = true;
        }
        if (s->generation != generation) {
            break;
        }
    }
    return !fatal && !s->dead;
}

void vscard_build(GByteArray *out, VSCMsgType type, uint32_t reader_id,
                  const void *payload, uint32_t len)
{
    uint8_t hdr[VSCARD_HEADER_SIZE];

    put_be32(hdr, type);
    put_be32(hdr + 4, reader_id);
    put_be32(hdr + 8, len);
    g_byte_array_append(out, hdr, sizeof(hdr));
    if (len) {
        g_byte_array_append(out, payload, len);
    }
}

void vscard_build_init(GByteArray *out, uint32_t reader_id, uint32_t capabilities)
{
    uint8_t init[VSCARD_INIT_MIN_SIZE + 4];

    memcpy(init, VSCARD_MAGIC_BYTES, 4);
    put_be32(init + 4, VSCARD_VERSION);
    put_be32(init + 8, capabilities);
    vscard_build(out, VSC_Init, reader_id, init, sizeof(init));
}

void vscard_build_error(GByteArray *out, uint32_t reader_id, VSCErrorCode code)
{
    uint8_t payload[VSCARD_ERROR_SIZE];

    put_be32(payload, code);
    vscard_build(out, VSC_Error, reader_id, payload, sizeof(payload));
}
