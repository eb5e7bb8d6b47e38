/*
 * USB/IP stream parser and encoders. See include/proto/usbip.h.
 *
 * The parser gathers one message at a time in a buffer. How long a message
 * is becomes known piece by piece (a header names the payload, a DEVLIST
 * reply its number of devices, each device its number of interfaces), so
 * message_size() is asked again whenever the bytes it asked for are in; a
 * message is whole when its size is what we hold. Every length is checked
 * against its bound before a byte of what it announces is buffered.
 */
#include <errno.h>
#include <string.h>

#include "proto/usbip.h"

typedef enum UsbipPhase {
    USBIP_PHASE_OP,
    USBIP_PHASE_URB,
} UsbipPhase;

struct UsbipStream {
    UsbipRole role;
    const UsbipServerOps *server;   /* the other role's table is empty */
    const UsbipClientOps *client;
    UsbipErrorFunc *error;
    void *opaque;
    UsbipPhase phase;

    GByteArray *buf;        /* the message being gathered */
    int cur_direction;      /* client: of the RET_SUBMIT in buf, -1 until asked */
    bool dead;              /* a protocol error: nothing more is parsed */
    bool stopped;           /* the owner asked us to ignore the rest */
};

/* ---- byte order ---- */

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put_be16(GByteArray *out, uint16_t v)
{
    uint8_t b[2] = { v >> 8, v & 0xff };

    g_byte_array_append(out, b, sizeof(b));
}

static void put_be32(GByteArray *out, uint32_t v)
{
    uint8_t b[4] = { v >> 24, v >> 16, v >> 8, v };

    g_byte_array_append(out, b, sizeof(b));
}

static void put_zeros(GByteArray *out, size_t n)
{
    static const uint8_t zeros[32];

    while (n) {
        size_t k = MIN(n, sizeof(zeros));

        g_byte_array_append(out, zeros, k);
        n -= k;
    }
}

/* ---- life cycle ---- */

static const UsbipServerOps no_server_ops;
static const UsbipClientOps no_client_ops;

static UsbipStream *usbip_stream_new(UsbipRole role, const UsbipServerOps *server,
                                     const UsbipClientOps *client, UsbipErrorFunc *error,
                                     void *opaque)
{
    UsbipStream *s = g_new0(UsbipStream, 1);

    s->role = role;
    s->server = server;
    s->client = client;
    s->error = error;
    s->opaque = opaque;
    s->phase = USBIP_PHASE_OP;
    s->buf = g_byte_array_new();
    s->cur_direction = -1;
    return s;
}

UsbipStream *usbip_server_stream_new(const UsbipServerOps *ops, UsbipErrorFunc *error,
                                     void *opaque)
{
    return usbip_stream_new(USBIP_ROLE_SERVER, ops, &no_client_ops, error, opaque);
}

UsbipStream *usbip_client_stream_new(const UsbipClientOps *ops, UsbipErrorFunc *error,
                                     void *opaque)
{
    return usbip_stream_new(USBIP_ROLE_CLIENT, &no_server_ops, ops, error, opaque);
}

void usbip_stream_free(UsbipStream *s)
{
    if (s) {
        g_byte_array_unref(s->buf);
        g_free(s);
    }
}

void usbip_stream_start_urbs(UsbipStream *s)
{
    s->phase = USBIP_PHASE_URB;
}

void usbip_stream_stop(UsbipStream *s)
{
    s->stopped = true;
}

bool usbip_stream_is_dead(const UsbipStream *s)
{
    return s->dead;
}

bool usbip_stream_in_urb_phase(const UsbipStream *s)
{
    return s->phase == USBIP_PHASE_URB;
}

size_t usbip_stream_pending(const UsbipStream *s)
{
    return s->buf->len;
}

const char *usbip_error_str(UsbipError err)
{
    switch (err) {
    case USBIP_ERR_BAD_VERSION:      return "operation of another USB/IP version";
    case USBIP_ERR_BAD_OPCODE:       return "unknown or unexpected operation code";
    case USBIP_ERR_BAD_COMMAND:      return "unknown or unexpected URB command";
    case USBIP_ERR_BAD_DIRECTION:    return "direction neither IN nor OUT";
    case USBIP_ERR_BAD_ENDPOINT:     return "endpoint number above 15";
    case USBIP_ERR_TOO_LONG:         return "transfer length beyond the limit";
    case USBIP_ERR_ISO:              return "isochronous transfer (not supported)";
    case USBIP_ERR_TOO_MANY_DEVICES: return "device list beyond the limit";
    case USBIP_ERR_UNKNOWN_SEQNUM:   return "answer to a URB never submitted";
    }
    return "unknown error";
}

const char *usbip_status_name(int32_t status)
{
    switch (-status) {
    case 0:          return "Success";
    case EPIPE:      return "-EPIPE";
    case ECONNRESET: return "-ECONNRESET";
    case ESHUTDOWN:  return "-ESHUTDOWN";
    case ENOENT:     return "-ENOENT";
    case EINVAL:     return "-EINVAL";
    case EOVERFLOW:  return "-EOVERFLOW";
    case EPROTO:     return "-EPROTO";
    case ENODEV:     return "-ENODEV";
    case EIO:        return "-EIO";
    }
    return "error";
}

/* ---- parsing ---- */

static bool fail(UsbipStream *s, UsbipError err, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static bool fail(UsbipStream *s, UsbipError err, const char *fmt, ...)
{
    g_autofree char *detail = NULL;
    va_list ap;

    va_start(ap, fmt);
    detail = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    s->dead = true;
    if (s->error) {
        s->error(s->opaque, err, detail);
    }
    return false;
}

/* Size of an operation message given the bytes held; false on an error. */
static bool op_message_size(UsbipStream *s, size_t *size)
{
    const uint8_t *b = s->buf->data;
    size_t fill = s->buf->len;
    uint16_t version, code;
    uint32_t status, ndev;
    size_t pos;

    *size = USBIP_OP_HEADER_SIZE;
    if (fill < USBIP_OP_HEADER_SIZE) {
        return true;
    }
    version = get_be16(b);
    code = get_be16(b + 2);
    status = get_be32(b + 4);
    if (version != USBIP_VERSION) {
        return fail(s, USBIP_ERR_BAD_VERSION, "version 0x%04x, expected 0x%04x", version,
                    USBIP_VERSION);
    }
    if (s->role == USBIP_ROLE_SERVER) {
        if (code == USBIP_OP_REQ_DEVLIST) {
            return true;
        }
        if (code == USBIP_OP_REQ_IMPORT) {
            *size += USBIP_BUSID_SIZE;
            return true;
        }
        return fail(s, USBIP_ERR_BAD_OPCODE, "operation 0x%04x from a client", code);
    }
    if (code == USBIP_OP_REP_IMPORT) {
        /* A failed import is answered with the header alone. */
        *size += status == USBIP_ST_OK ? USBIP_DEVICE_SIZE : 0;
        return true;
    }
    if (code != USBIP_OP_REP_DEVLIST) {
        return fail(s, USBIP_ERR_BAD_OPCODE, "operation 0x%04x from a server", code);
    }
    if (status != USBIP_ST_OK) {
        return true;
    }
    *size += 4;
    if (fill < *size) {
        return true;
    }
    ndev = get_be32(b + USBIP_OP_HEADER_SIZE);
    if (ndev > USBIP_MAX_DEVICES) {
        return fail(s, USBIP_ERR_TOO_MANY_DEVICES, "%u devices, at most %u", ndev,
                    USBIP_MAX_DEVICES);
    }
    /* Walk the records held so far; each says how many interfaces follow it. */
    pos = *size;
    for (uint32_t i = 0; i < ndev; i++) {
        if (fill < pos + USBIP_DEVICE_SIZE) {
            *size = pos + USBIP_DEVICE_SIZE;
            return true;
        }
        pos += USBIP_DEVICE_SIZE + (size_t)b[pos + USBIP_DEVICE_SIZE - 1] * USBIP_INTERFACE_SIZE;
    }
    *size = pos;
    return true;
}

static void decode_header(const uint8_t *b, UsbipHeader *h)
{
    h->command = get_be32(b);
    h->seqnum = get_be32(b + 4);
    h->devid = get_be32(b + 8);
    h->direction = get_be32(b + 12);
    h->ep = get_be32(b + 16);
}

/*
 * A SUBMIT's transfer length (transfer_buffer_length from a client,
 * actual_length from a server: length_field) and ISO packet count, which
 * both sit at the same offsets of CMD_SUBMIT and RET_SUBMIT: within our
 * limits? false on an error.
 */
static bool check_submit_sizes(UsbipStream *s, const uint8_t *b, const char *length_field,
                               uint32_t *length)
{
    uint32_t npackets = get_be32(b + 32);

    *length = get_be32(b + 24);
    if (*length > USBIP_MAX_TRANSFER_LENGTH) {
        return fail(s, USBIP_ERR_TOO_LONG, "%s %u, at most %u", length_field, *length,
                    USBIP_MAX_TRANSFER_LENGTH);
    }
    if (npackets != 0 && npackets != USBIP_NO_ISO_PACKETS) {
        return fail(s, USBIP_ERR_ISO, "number_of_packets %u", npackets);
    }
    return true;
}

/* Size of a URB-phase message given the bytes held; false on an error. */
static bool urb_message_size(UsbipStream *s, size_t *size)
{
    const uint8_t *b = s->buf->data;
    UsbipHeader h;
    uint32_t length;

    *size = USBIP_URB_HEADER_SIZE;
    if (s->buf->len < USBIP_URB_HEADER_SIZE) {
        return true;
    }
    decode_header(b, &h);
    if (s->role == USBIP_ROLE_SERVER) {
        if (h.command == USBIP_CMD_UNLINK) {
            return true;
        }
        if (h.command != USBIP_CMD_SUBMIT) {
            return fail(s, USBIP_ERR_BAD_COMMAND, "command %u from a client", h.command);
        }
        if (h.direction > USBIP_DIR_IN) {
            return fail(s, USBIP_ERR_BAD_DIRECTION, "direction %u", h.direction);
        }
        if (h.ep > 15) {
            return fail(s, USBIP_ERR_BAD_ENDPOINT, "endpoint %u", h.ep);
        }
        if (!check_submit_sizes(s, b, "transfer_buffer_length", &length)) {
            return false;
        }
        *size += h.direction == USBIP_DIR_OUT ? length : 0;
        return true;
    }
    if (h.command == USBIP_RET_UNLINK) {
        return true;
    }
    if (h.command != USBIP_RET_SUBMIT) {
        return fail(s, USBIP_ERR_BAD_COMMAND, "command %u from a server", h.command);
    }
    if (!check_submit_sizes(s, b, "actual_length", &length)) {
        return false;
    }
    if (s->cur_direction < 0) {
        s->cur_direction = s->client->submit_direction ?
                           s->client->submit_direction(s->opaque, h.seqnum) : -1;
        if (s->cur_direction < 0) {
            return fail(s, USBIP_ERR_UNKNOWN_SEQNUM, "RET_SUBMIT seqnum %u", h.seqnum);
        }
    }
    *size += s->cur_direction == USBIP_DIR_IN ? length : 0;
    return true;
}

static void decode_device(const uint8_t *b, UsbipDevice *d)
{
    memset(d, 0, sizeof(*d));
    memcpy(d->path, b, USBIP_PATH_SIZE - 1);
    memcpy(d->busid, b + USBIP_PATH_SIZE, USBIP_BUSID_SIZE - 1);
    b += USBIP_PATH_SIZE + USBIP_BUSID_SIZE;
    d->busnum = get_be32(b);
    d->devnum = get_be32(b + 4);
    d->speed = get_be32(b + 8);
    d->idVendor = get_be16(b + 12);
    d->idProduct = get_be16(b + 14);
    d->bcdDevice = get_be16(b + 16);
    d->bDeviceClass = b[18];
    d->bDeviceSubClass = b[19];
    d->bDeviceProtocol = b[20];
    d->bConfigurationValue = b[21];
    d->bNumConfigurations = b[22];
    d->bNumInterfaces = b[23];
}

static void dispatch_devlist(UsbipStream *s, const uint8_t *b, uint32_t status)
{
    uint32_t ndev = status == USBIP_ST_OK ? get_be32(b + USBIP_OP_HEADER_SIZE) : 0;
    g_autofree UsbipDevice *devs = g_new0(UsbipDevice, MAX(ndev, 1));
    g_autofree UsbipInterface *ifs = NULL;
    size_t pos = USBIP_OP_HEADER_SIZE + 4;
    size_t nif = 0, k = 0;

    /* The sizes were checked while gathering; count the interfaces first. */
    for (uint32_t i = 0; i < ndev; i++) {
        nif += b[pos + USBIP_DEVICE_SIZE - 1];
        pos += USBIP_DEVICE_SIZE + (size_t)b[pos + USBIP_DEVICE_SIZE - 1] * USBIP_INTERFACE_SIZE;
    }
    ifs = g_new0(UsbipInterface, MAX(nif, 1));
    pos = USBIP_OP_HEADER_SIZE + 4;
    for (uint32_t i = 0; i < ndev; i++) {
        decode_device(b + pos, &devs[i]);
        pos += USBIP_DEVICE_SIZE;
        devs[i].interfaces = ifs + k;
        for (unsigned j = 0; j < devs[i].bNumInterfaces; j++, k++, pos += USBIP_INTERFACE_SIZE) {
            ifs[k].bInterfaceClass = b[pos];
            ifs[k].bInterfaceSubClass = b[pos + 1];
            ifs[k].bInterfaceProtocol = b[pos + 2];
        }
    }
    if (s->client->rep_devlist) {
        s->client->rep_devlist(s->opaque, status, devs, ndev);
    }
}

static void dispatch_op(UsbipStream *s, const uint8_t *b)
{
    uint16_t code = get_be16(b + 2);
    uint32_t status = get_be32(b + 4);

    switch (code) {
    case USBIP_OP_REQ_DEVLIST:
        if (s->server->req_devlist) {
            s->server->req_devlist(s->opaque);
        }
        break;
    case USBIP_OP_REQ_IMPORT: {
        char busid[USBIP_BUSID_SIZE] = { 0 };

        memcpy(busid, b + USBIP_OP_HEADER_SIZE, USBIP_BUSID_SIZE - 1);
        if (s->server->req_import) {
            s->server->req_import(s->opaque, busid);
        }
        break;
    }
    case USBIP_OP_REP_DEVLIST:
        dispatch_devlist(s, b, status);
        break;
    case USBIP_OP_REP_IMPORT:
        if (status == USBIP_ST_OK) {
            UsbipDevice dev;

            decode_device(b + USBIP_OP_HEADER_SIZE, &dev);
            s->phase = USBIP_PHASE_URB;
            if (s->client->rep_import) {
                s->client->rep_import(s->opaque, status, &dev);
            }
        } else if (s->client->rep_import) {
            s->client->rep_import(s->opaque, status, NULL);
        }
        break;
    }
}

static void dispatch_urb(UsbipStream *s, const uint8_t *b, size_t len)
{
    UsbipHeader h;

    decode_header(b, &h);
    switch (h.command) {
    case USBIP_CMD_SUBMIT: {
        UsbipSubmit cmd = { .h = h };

        cmd.transfer_flags = get_be32(b + 20);
        cmd.transfer_buffer_length = get_be32(b + 24);
        cmd.start_frame = get_be32(b + 28);
        cmd.number_of_packets = get_be32(b + 32);
        cmd.interval = get_be32(b + 36);
        memcpy(cmd.setup, b + 40, 8);
        if (s->server->cmd_submit) {
            s->server->cmd_submit(s->opaque, &cmd,
                                  h.direction == USBIP_DIR_OUT ? b + USBIP_URB_HEADER_SIZE : NULL);
        }
        break;
    }
    case USBIP_CMD_UNLINK:
        if (s->server->cmd_unlink) {
            s->server->cmd_unlink(s->opaque, &h, get_be32(b + 20));
        }
        break;
    case USBIP_RET_SUBMIT: {
        UsbipRetSubmit ret = { .h = h };

        ret.status = (int32_t)get_be32(b + 20);
        ret.actual_length = get_be32(b + 24);
        ret.start_frame = get_be32(b + 28);
        ret.number_of_packets = get_be32(b + 32);
        ret.error_count = get_be32(b + 36);
        if (s->client->ret_submit) {
            s->client->ret_submit(s->opaque, &ret,
                                  len > USBIP_URB_HEADER_SIZE ? b + USBIP_URB_HEADER_SIZE : NULL);
        }
        break;
    }
    case USBIP_RET_UNLINK:
        if (s->client->ret_unlink) {
            s->client->ret_unlink(s->opaque, &h, (int32_t)get_be32(b + 20));
        }
        break;
    }
}

/*
 * The message in buf is whole. It leaves buf before any callback runs, so a
 * callback may stop the stream, switch phase or feed more.
 */
static void dispatch(UsbipStream *s)
{
    GByteArray *msg = s->buf;
    UsbipPhase phase = s->phase;

    s->buf = g_byte_array_new();
    s->cur_direction = -1;
    if (phase == USBIP_PHASE_OP) {
        dispatch_op(s, msg->data);
    } else {
        dispatch_urb(s, msg->data, msg->len);
    }
    g_byte_array_unref(msg);
}

bool usbip_stream_feed(UsbipStream *s, const uint8_t *buf, size_t len)
{
    while (!s->dead && !s->stopped) {
        size_t want, n;
        bool ok = s->phase == USBIP_PHASE_OP ? op_message_size(s, &want)
                                            : urb_message_size(s, &want);

        if (!ok) {
            break;
        }
        if (s->buf->len == want) {
            dispatch(s);
            continue;
        }
        if (len == 0) {
            break;
        }
        n = MIN(want - s->buf->len, len);
        g_byte_array_append(s->buf, buf, n);
        buf += n;
        len -= n;
    }
    return !s->dead && !s->stopped;
}

/* ---- encoders ---- */

void usbip_encode_op_header(GByteArray *out, uint16_t code, uint32_t status)
{
    put_be16(out, USBIP_VERSION);
    put_be16(out, code);
    put_be32(out, status);
}

void usbip_encode_op_request(GByteArray *out, uint16_t code, const char *busid)
{
    usbip_encode_op_header(out, code, 0);
    if (code == USBIP_OP_REQ_IMPORT) {
        uint8_t b[USBIP_BUSID_SIZE] = { 0 };

        memcpy(b, busid, MIN(strlen(busid), USBIP_BUSID_SIZE - 1));
        g_byte_array_append(out, b, sizeof(b));
    }
}

static void put_string(GByteArray *out, const char *s, size_t field)
{
    size_t n = MIN(strnlen(s, field), field - 1);

    g_byte_array_append(out, (const uint8_t *)s, n);
    put_zeros(out, field - n);
}

void usbip_encode_device(GByteArray *out, const UsbipDevice *d, bool with_interfaces)
{
    uint8_t tail[6] = {
        d->bDeviceClass, d->bDeviceSubClass, d->bDeviceProtocol,
        d->bConfigurationValue, d->bNumConfigurations, d->bNumInterfaces,
    };

    put_string(out, d->path, USBIP_PATH_SIZE);
    put_string(out, d->busid, USBIP_BUSID_SIZE);
    put_be32(out, d->busnum);
    put_be32(out, d->devnum);
    put_be32(out, d->speed);
    put_be16(out, d->idVendor);
    put_be16(out, d->idProduct);
    put_be16(out, d->bcdDevice);
    g_byte_array_append(out, tail, sizeof(tail));
    for (unsigned i = 0; with_interfaces && i < d->bNumInterfaces; i++) {
        uint8_t ifb[USBIP_INTERFACE_SIZE] = {
            d->interfaces[i].bInterfaceClass, d->interfaces[i].bInterfaceSubClass,
            d->interfaces[i].bInterfaceProtocol, 0,
        };

        g_byte_array_append(out, ifb, sizeof(ifb));
    }
}

void usbip_encode_rep_devlist(GByteArray *out, const UsbipDevice *devs, uint32_t ndev)
{
    usbip_encode_op_header(out, USBIP_OP_REP_DEVLIST, USBIP_ST_OK);
    put_be32(out, ndev);
    for (uint32_t i = 0; i < ndev; i++) {
        usbip_encode_device(out, &devs[i], true);
    }
}

void usbip_encode_rep_import(GByteArray *out, uint32_t status, const UsbipDevice *dev)
{
    usbip_encode_op_header(out, USBIP_OP_REP_IMPORT, dev ? USBIP_ST_OK : status);
    if (dev) {
        usbip_encode_device(out, dev, false);
    }
}

static void put_header(GByteArray *out, const UsbipHeader *h, uint32_t command)
{
    put_be32(out, command);
    put_be32(out, h->seqnum);
    put_be32(out, h->devid);
    put_be32(out, h->direction);
    put_be32(out, h->ep);
}

void usbip_encode_cmd_submit(GByteArray *out, const UsbipSubmit *cmd, const uint8_t *data)
{
    put_header(out, &cmd->h, USBIP_CMD_SUBMIT);
    put_be32(out, cmd->transfer_flags);
    put_be32(out, cmd->transfer_buffer_length);
    put_be32(out, cmd->start_frame);
    put_be32(out, cmd->number_of_packets);
    put_be32(out, cmd->interval);
    g_byte_array_append(out, cmd->setup, 8);
    if (cmd->h.direction == USBIP_DIR_OUT && cmd->transfer_buffer_length) {
        g_byte_array_append(out, data, cmd->transfer_buffer_length);
    }
}

void usbip_encode_cmd_unlink(GByteArray *out, const UsbipHeader *h, uint32_t unlink_seqnum)
{
    put_header(out, h, USBIP_CMD_UNLINK);
    put_be32(out, unlink_seqnum);
    put_zeros(out, 24);
}

void usbip_encode_ret_submit(GByteArray *out, const UsbipRetSubmit *ret, const uint8_t *data)
{
    put_header(out, &ret->h, USBIP_RET_SUBMIT);
    put_be32(out, (uint32_t)ret->status);
    put_be32(out, ret->actual_length);
    put_be32(out, ret->start_frame);
    put_be32(out, ret->number_of_packets);
    put_be32(out, ret->error_count);
    put_zeros(out, 8);
    if (data && ret->actual_length) {
        g_byte_array_append(out, data, ret->actual_length);
    }
}

void usbip_encode_ret_unlink(GByteArray *out, uint32_t seqnum, int32_t status)
{
    UsbipHeader h = { .seqnum = seqnum };

    put_header(out, &h, USBIP_RET_UNLINK);
    put_be32(out, (uint32_t)status);
    put_zeros(out, 24);
}
