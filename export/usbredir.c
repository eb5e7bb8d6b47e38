/*
 * usbredir export: "-export usbredir,chardev=ID[,device=ID]".
 *
 * We are the usb-host side of the usbredir protocol (what usbredirhost is
 * for a real device): a peer such as QEMU's "-device usb-redir" is the USB
 * host controller and sends control, bulk and interrupt packets; we run
 * them on a USB device model and send the answers back. A peer that leaves
 * detaches the device; the next peer on the chardev gets it again.
 */
#include "export/export.h"
#include "chardev/char.h"
#include "hw/usb.h"
#include "hw/usb/desc.h"
#include "qemu/log-escape.h"
#include "qemu/option.h"

#include <string.h>
#include <usbredirparser.h>

#include "config-host.h"
#include "trace.h"

/* Upper bound on one bulk-in transfer we buffer for; a shorter read is legal. */
#define REDIR_MAX_BULK_IN (64 * 1024)
/*
 * What one peer can make us hold (docs/ccid.txt, section 9); a peer that
 * goes beyond is dropped. A packet's length is checked in its header before
 * the parser allocates for it: the largest legitimate one is a bulk transfer
 * far below this (a CCID message is at most 65,546 bytes). A CCID host has
 * one or two transfers out per endpoint; bulk-out data is held only while
 * the reader's command queue is full (flow control: a host may send far
 * more commands than the reader queues), counted with our bookkeeping so
 * that many small packets are bounded too.
 */
#define REDIR_MAX_PACKET (1024 * 1024 + 64)
#define REDIR_MAX_PENDING_IN_PER_EP 32
#define REDIR_MAX_HELD_OUT_BYTES (1024 * 1024)
/*
 * Backpressure: reading from the peer pauses while the device holds this
 * much bulk-out data and an IN transfer too, and resumes once it holds
 * less than the low-water mark or no IN transfer (redir_chr_can_read).
 */
#define REDIR_HELD_OUT_HIGH_WATER (256 * 1024)
#define REDIR_HELD_OUT_LOW_WATER (64 * 1024)
/* usb_redir_header: type, length, then a 32-bit or (negotiated) 64-bit id. */
#define REDIR_HEADER_LEN(ids64) ((ids64) ? 16u : 12u)
/* usbredir numbers endpoints 0..31: IN endpoints at 16 + n. */
#define EP2I(addr) ((((addr) & 0x80) >> 3) | ((addr) & 0x0f))
#define I2EP(i) ((((i) & 0x10) << 3) | ((i) & 0x0f))

typedef enum RedirPacketKind {
    REDIR_PACKET_BULK,
    REDIR_PACKET_INTERRUPT,
} RedirPacketKind;

/* A data packet the device holds (USB_RET_ASYNC) until it completes. */
typedef struct RedirPacket {
    USBPacket p;
    RedirPacketKind kind;
    uint8_t endpoint;        /* with direction bit */
    struct usb_redir_bulk_packet_header bulk;
} RedirPacket;

typedef struct UsbredirExport {
    char *id;                /* -export id=, or generated */
    Chardev *chr;
    USBDevice *dev;
    USBPort port;
    struct usbredirparser *parser;
    GByteArray *inbuf;       /* received, not yet parsed */
    size_t inbuf_off;
    size_t packet_left;      /* bytes of the packet being parsed not yet given to the parser */
    char *drop_reason;       /* the peer went beyond a bound: dropped after the parser returns */
    bool device_connected;   /* device_connect sent */
    bool held_back;          /* reading paused: the device is busy with what it holds */
    GHashTable *pending;     /* id -> RedirPacket *, held by the device */
    bool interrupt_receiving[USB_MAX_ENDPOINTS];
} UsbredirExport;

static GList *redir_exports;

static void redir_flush(UsbredirExport *e);
static void redir_release_backpressure(UsbredirExport *e);

/* ---- usbredirparser I/O callbacks ---- */

/* The parser's messages quote the peer (its version string): escaped. */
static void redir_log(void *priv, int level, const char *msg)
{
    g_autofree char *shown = log_escape(msg, -1);

    if (level <= usbredirparser_error) {
        g_warning("usbredir: %s", shown);
    } else if (level <= usbredirparser_info) {
        g_message("usbredir: %s", shown);
    } else {
        trace_usbredir_parser_log(level, shown);
    }
}

/* Hand the parser bytes of the current packet only; see redir_chr_read(). */
static int redir_read(void *priv, uint8_t *data, int count)
{
    UsbredirExport *e = priv;
    size_t avail = MIN(e->inbuf->len - e->inbuf_off, e->packet_left);
    size_t n = MIN(avail, (size_t)count);

    if (n == 0 || e->drop_reason) {
        return 0;   /* the parser resumes with the next read */
    }
    memcpy(data, e->inbuf->data + e->inbuf_off, n);
    e->inbuf_off += n;
    e->packet_left -= n;
    return n;
}

/* The peer went beyond a bound; the first reason is the one logged. */
static void redir_drop_peer(UsbredirExport *e, char *reason)
{
    if (e->drop_reason) {
        g_free(reason);
        return;
    }
    e->drop_reason = reason;
}

static int redir_write(void *priv, uint8_t *data, int count)
{
    UsbredirExport *e = priv;

    /* Queued without blocking; a peer that stops reading is dropped by the chardev. */
    trace_usbredir_write(count);
    chr_fe_write(e->chr, data, count);
    return count;
}

static void redir_flush(UsbredirExport *e)
{
    if (e->parser && usbredirparser_has_data_to_write(e->parser)) {
        usbredirparser_do_write(e->parser);
    }
}

/* ---- status mapping ---- */

static uint8_t redir_status(int usb_ret)
{
    switch (usb_ret) {
    case USB_RET_SUCCESS: return usb_redir_success;
    case USB_RET_STALL:   return usb_redir_stall;
    case USB_RET_BABBLE:  return usb_redir_babble;
    default:              return usb_redir_ioerror;
    }
}

/* ---- device description ---- */

static void redir_send_interface_info(UsbredirExport *e)
{
    const USBDescDevice *d = usb_desc_for_speed(e->dev);
    const USBDescConfig *conf = &d->confs[0];
    struct usb_redir_interface_info_header info = { 0 };

    info.interface_count = MIN(conf->nif, 32);
    for (uint32_t i = 0; i < info.interface_count; i++) {
        info.interface[i] = conf->ifs[i].bInterfaceNumber;
        info.interface_class[i] = conf->ifs[i].bInterfaceClass;
        info.interface_subclass[i] = conf->ifs[i].bInterfaceSubClass;
        info.interface_protocol[i] = conf->ifs[i].bInterfaceProtocol;
    }
    usbredirparser_send_interface_info(e->parser, &info);
}

static void redir_send_ep_info(UsbredirExport *e)
{
    struct usb_redir_ep_info_header ep = { 0 };

    for (int i = 0; i < 32; i++) {
        uint8_t addr = I2EP(i);
        USBEndpointInfo *info = usb_device_ep(e->dev, (addr & USB_DIR_IN) ? USB_TOKEN_IN :
                                              USB_TOKEN_OUT, addr & 0x0f);

        if ((addr & 0x0f) == 0) {
            ep.type[i] = usb_redir_type_control;
            ep.max_packet_size[i] = usb_desc_for_speed(e->dev)->bMaxPacketSize0;
            continue;
        }
        ep.type[i] = info ? info->type : usb_redir_type_invalid;
        if (info) {
            ep.interval[i] = info->interval;
            ep.interface[i] = info->ifnum;
            ep.max_packet_size[i] = info->max_packet_size;
        }
    }
    usbredirparser_send_ep_info(e->parser, &ep);
}

static void redir_connect_device(UsbredirExport *e)
{
    const USBDescDevice *d;
    struct usb_redir_device_connect_header conn = { 0 };

    e->port.speed = e->dev->speed;
    usb_device_attach(e->dev, &e->port);
    d = usb_desc_for_speed(e->dev);
    conn.speed = e->dev->speed == USB_SPEED_HIGH ? usb_redir_speed_high : usb_redir_speed_full;
    conn.device_class = d->bDeviceClass;
    conn.device_subclass = d->bDeviceSubClass;
    conn.device_protocol = d->bDeviceProtocol;
    conn.vendor_id = e->dev->desc->id.idVendor;
    conn.product_id = e->dev->desc->id.idProduct;
    conn.device_version_bcd = e->dev->desc->id.bcdDevice;
    /* The peer learns interfaces and endpoints before the device itself. */
    redir_send_interface_info(e);
    redir_send_ep_info(e);
    usbredirparser_send_device_connect(e->parser, &conn);
    e->device_connected = true;
    g_message("usbredir: %s attached to %s (%04x:%04x, %s speed)", DEVICE(e->dev)->id,
              chardev_describe(e->chr), conn.vendor_id, conn.product_id,
              e->dev->speed == USB_SPEED_HIGH ? "high" : "full");
}

static void redir_hello(void *priv, struct usb_redir_hello_header *hello)
{
    UsbredirExport *e = priv;
    g_autofree char *version = log_escape(hello->version,
                                          strnlen(hello->version, sizeof(hello->version)));

    g_message("usbredir: peer '%s' on %s", version, chardev_describe(e->chr));
    chr_fe_hello_done(e->chr);
    if (!e->device_connected) {
        redir_connect_device(e);
    }
}

/* ---- packets held by the device ---- */

static void redir_packet_free(gpointer data)
{
    RedirPacket *rp = data;

    g_free(rp->p.data);
    g_free(rp);
}

static void redir_send_bulk_reply(UsbredirExport *e, RedirPacket *rp, uint8_t status)
{
    struct usb_redir_bulk_packet_header h = rp->bulk;
    bool in = rp->endpoint & USB_DIR_IN;
    size_t len = status == usb_redir_success || in ? rp->p.actual_length : 0;

    h.status = status;
    h.length = len & 0xffff;
    h.length_high = len >> 16;
    trace_usbredir_bulk_reply(rp->p.id, rp->endpoint, status, len);
    usbredirparser_send_bulk_packet(e->parser, rp->p.id, &h, in ? rp->p.data : NULL,
                                    in ? (int)len : 0);
}

static void redir_reply(UsbredirExport *e, RedirPacket *rp, uint8_t status)
{
    if (rp->kind == REDIR_PACKET_BULK) {
        redir_send_bulk_reply(e, rp, status);
    } else {
        struct usb_redir_interrupt_packet_header h = {
            .endpoint = rp->endpoint, .status = status,
            .length = rp->p.actual_length,
        };
        bool in = rp->endpoint & USB_DIR_IN;

        trace_usbredir_interrupt_reply(rp->p.id, rp->endpoint, status, rp->p.actual_length);
        usbredirparser_send_interrupt_packet(e->parser, rp->p.id, &h, in ? rp->p.data : NULL,
                                             in ? (int)rp->p.actual_length : 0);
    }
}

/* Completion from the device of a packet it held. */
static void redir_port_complete(USBPort *port, USBPacket *p)
{
    UsbredirExport *e = port->opaque;
    RedirPacket *rp = (RedirPacket *)p;

    if (!g_hash_table_steal(e->pending, &p->id)) {
        g_warning("usbredir: completion of unknown packet %" G_GUINT64_FORMAT, p->id);
        return;
    }
    redir_reply(e, rp, redir_status(p->status));
    redir_packet_free(rp);
    redir_flush(e);
    redir_release_backpressure(e);
}

/* The device has interrupt data: pull it while it has some. */
static void redir_poll_interrupt(UsbredirExport *e, uint8_t ep)
{
    uint8_t buf[64];
    USBPacket p;

    if (ep >= USB_MAX_ENDPOINTS || !e->interrupt_receiving[ep] || !e->dev->port) {
        return;
    }
    for (;;) {
        struct usb_redir_interrupt_packet_header h = { .endpoint = USB_DIR_IN | ep };

        memset(&p, 0, sizeof(p));
        p.pid = USB_TOKEN_IN;
        p.ep = ep;
        p.data = buf;
        p.size = sizeof(buf);
        usb_device_handle_data(e->dev, &p);
        if (p.status == USB_RET_NAK || p.status == USB_RET_ASYNC) {
            if (p.status == USB_RET_ASYNC) {
                usb_device_cancel_packet(e->dev, &p);
            }
            break;
        }
        h.status = redir_status(p.status);
        h.length = p.actual_length;
        trace_usbredir_interrupt_data(h.endpoint, h.status, p.actual_length);
        usbredirparser_send_interrupt_packet(e->parser, 0, &h, buf, p.actual_length);
        if (p.status != USB_RET_SUCCESS) {
            break;
        }
    }
    redir_flush(e);
}

static void redir_port_wakeup(USBPort *port, uint8_t ep)
{
    redir_poll_interrupt(port->opaque, ep);
}

static const USBPortOps redir_port_ops = {
    .complete = redir_port_complete,
    .wakeup = redir_port_wakeup,
};

/* Reply cancelled to every held packet: the device forgot them. */
static void redir_cancel_all_pending(UsbredirExport *e, bool reply)
{
    GHashTableIter iter;
    gpointer value;

    g_hash_table_iter_init(&iter, e->pending);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        RedirPacket *rp = value;

        g_hash_table_iter_steal(&iter);
        usb_device_cancel_packet(e->dev, &rp->p);
        if (reply && e->parser) {
            rp->p.actual_length = 0;
            redir_reply(e, rp, usb_redir_cancelled);
        }
        redir_packet_free(rp);
    }
}

/* ---- control-plane callbacks ---- */

static void redir_reset(void *priv)
{
    UsbredirExport *e = priv;

    g_message("usbredir: peer reset %s", DEVICE(e->dev)->id);
    redir_cancel_all_pending(e, true);
    memset(e->interrupt_receiving, 0, sizeof(e->interrupt_receiving));
    usb_device_reset(e->dev);
}

/* Run a standard request on the device, as the guest would through ep 0. */
static int redir_std_request(UsbredirExport *e, uint8_t type, uint8_t req, uint16_t value,
                             uint16_t index)
{
    uint8_t setup[8] = { type, req, value & 0xff, value >> 8, index & 0xff, index >> 8, 0, 0 };
    uint8_t buf[8];
    USBPacket p = { .pid = USB_TOKEN_OUT };

    usb_device_handle_control(e->dev, &p, setup, buf);
    return p.status;
}

static void redir_set_configuration(void *priv, uint64_t id,
                                    struct usb_redir_set_configuration_header *h)
{
    UsbredirExport *e = priv;
    struct usb_redir_configuration_status_header st = { 0 };
    int ret;

    redir_cancel_all_pending(e, true);
    ret = redir_std_request(e, USB_DIR_OUT | USB_TYPE_STANDARD | USB_RECIP_DEVICE,
                            USB_REQ_SET_CONFIGURATION, h->configuration, 0);
    st.status = redir_status(ret);
    st.configuration = e->dev->configuration;
    trace_usbredir_set_configuration(id, h->configuration, st.status);
    usbredirparser_send_configuration_status(e->parser, id, &st);
    if (ret == USB_RET_SUCCESS) {
        redir_send_interface_info(e);
        redir_send_ep_info(e);
    }
}

static void redir_get_configuration(void *priv, uint64_t id)
{
    UsbredirExport *e = priv;
    struct usb_redir_configuration_status_header st = {
        .status = usb_redir_success, .configuration = e->dev->configuration,
    };

    trace_usbredir_get_configuration(id, st.configuration);

    usbredirparser_send_configuration_status(e->parser, id, &st);
}

static void redir_set_alt_setting(void *priv, uint64_t id,
                                  struct usb_redir_set_alt_setting_header *h)
{
    UsbredirExport *e = priv;
    int ret = redir_std_request(e, USB_DIR_OUT | USB_TYPE_STANDARD | USB_RECIP_INTERFACE,
                                USB_REQ_SET_INTERFACE, h->alt, h->interface);
    struct usb_redir_alt_setting_status_header st = {
        .status = redir_status(ret), .interface = h->interface, .alt = 0,
    };

    trace_usbredir_set_alt_setting(id, h->interface, h->alt, st.status);

    usbredirparser_send_alt_setting_status(e->parser, id, &st);
}

static void redir_get_alt_setting(void *priv, uint64_t id,
                                  struct usb_redir_get_alt_setting_header *h)
{
    UsbredirExport *e = priv;
    struct usb_redir_alt_setting_status_header st = {
        .status = h->interface == 0 ? usb_redir_success : usb_redir_inval,
        .interface = h->interface, .alt = 0,
    };

    trace_usbredir_get_alt_setting(id, h->interface);
    usbredirparser_send_alt_setting_status(e->parser, id, &st);
}

/* Isochronous streams: the reader has no isochronous endpoint. */
static void redir_refuse_iso_stream(UsbredirExport *e, uint64_t id, uint8_t endpoint,
                                    const char *what)
{
    struct usb_redir_iso_stream_status_header st = {
        .status = usb_redir_inval, .endpoint = endpoint,
    };

    trace_usbredir_unsupported(id, what);
    usbredirparser_send_iso_stream_status(e->parser, id, &st);
}

static void redir_start_iso_stream(void *priv, uint64_t id,
                                   struct usb_redir_start_iso_stream_header *h)
{
    redir_refuse_iso_stream(priv, id, h->endpoint, "start_iso_stream");
}

static void redir_stop_iso_stream(void *priv, uint64_t id,
                                  struct usb_redir_stop_iso_stream_header *h)
{
    redir_refuse_iso_stream(priv, id, h->endpoint, "stop_iso_stream");
}

static bool redir_is_interrupt_in(UsbredirExport *e, uint8_t endpoint)
{
    USBEndpointInfo *info = usb_device_ep(e->dev, USB_TOKEN_IN, endpoint & 0x0f);

    return (endpoint & USB_DIR_IN) && info && info->type == USB_ENDPOINT_XFER_INT;
}

static void redir_start_interrupt_receiving(void *priv, uint64_t id,
                                            struct usb_redir_start_interrupt_receiving_header *h)
{
    UsbredirExport *e = priv;
    bool ok = redir_is_interrupt_in(e, h->endpoint);
    struct usb_redir_interrupt_receiving_status_header st = {
        .status = ok ? usb_redir_success : usb_redir_inval, .endpoint = h->endpoint,
    };

    trace_usbredir_interrupt_receiving(id, h->endpoint, true, ok);
    usbredirparser_send_interrupt_receiving_status(e->parser, id, &st);
    if (ok) {
        e->interrupt_receiving[h->endpoint & 0x0f] = true;
        redir_poll_interrupt(e, h->endpoint & 0x0f);
    }
}

static void redir_stop_interrupt_receiving(void *priv, uint64_t id,
                                           struct usb_redir_stop_interrupt_receiving_header *h)
{
    UsbredirExport *e = priv;
    bool ok = redir_is_interrupt_in(e, h->endpoint);
    struct usb_redir_interrupt_receiving_status_header st = {
        .status = ok ? usb_redir_success : usb_redir_inval, .endpoint = h->endpoint,
    };

    trace_usbredir_interrupt_receiving(id, h->endpoint, false, ok);
    if (ok) {
        e->interrupt_receiving[h->endpoint & 0x0f] = false;
    }
    usbredirparser_send_interrupt_receiving_status(e->parser, id, &st);
}

/* USB 3 bulk streams: a full- or high-speed device has none. */
static void redir_refuse_bulk_streams(UsbredirExport *e, uint64_t id, uint32_t endpoints,
                                      const char *what)
{
    struct usb_redir_bulk_streams_status_header st = {
        .endpoints = endpoints, .no_streams = 0, .status = usb_redir_inval,
    };

    trace_usbredir_unsupported(id, what);
    usbredirparser_send_bulk_streams_status(e->parser, id, &st);
}

static void redir_alloc_bulk_streams(void *priv, uint64_t id,
                                     struct usb_redir_alloc_bulk_streams_header *h)
{
    redir_refuse_bulk_streams(priv, id, h->endpoints, "alloc_bulk_streams");
}

static void redir_free_bulk_streams(void *priv, uint64_t id,
                                    struct usb_redir_free_bulk_streams_header *h)
{
    redir_refuse_bulk_streams(priv, id, h->endpoints, "free_bulk_streams");
}

/* Not advertised (no cap): answers come one transfer at a time. */
static void redir_refuse_bulk_receiving(UsbredirExport *e, uint64_t id, uint32_t stream_id,
                                        uint8_t endpoint, const char *what)
{
    struct usb_redir_bulk_receiving_status_header st = {
        .stream_id = stream_id, .endpoint = endpoint, .status = usb_redir_inval,
    };

    trace_usbredir_unsupported(id, what);
    usbredirparser_send_bulk_receiving_status(e->parser, id, &st);
}

static void redir_start_bulk_receiving(void *priv, uint64_t id,
                                       struct usb_redir_start_bulk_receiving_header *h)
{
    redir_refuse_bulk_receiving(priv, id, h->stream_id, h->endpoint, "start_bulk_receiving");
}

static void redir_stop_bulk_receiving(void *priv, uint64_t id,
                                      struct usb_redir_stop_bulk_receiving_header *h)
{
    redir_refuse_bulk_receiving(priv, id, h->stream_id, h->endpoint, "stop_bulk_receiving");
}

static void redir_cancel_data_packet(void *priv, uint64_t id)
{
    UsbredirExport *e = priv;
    RedirPacket *rp = g_hash_table_lookup(e->pending, &id);

    trace_usbredir_cancel_packet(id, rp != NULL);
    /* Already completed: the answer is on its way, nothing to cancel. */
    if (!rp) {
        return;
    }
    g_hash_table_steal(e->pending, &id);
    usb_device_cancel_packet(e->dev, &rp->p);
    rp->p.actual_length = 0;
    redir_reply(e, rp, usb_redir_cancelled);
    redir_packet_free(rp);
}

static void redir_filter_reject(void *priv)
{
    g_message("usbredir: the peer's filter rejects this device");
}

static void redir_filter_filter(void *priv, struct usbredirfilter_rule *rules, int rules_count)
{
    free(rules);
}

static void redir_peer_device_event(void *priv)
{
    /* device_disconnect_ack, device_disconnect from a host-role peer: nothing to do. */
}

/* ---- data packets ---- */

static void redir_control_packet(void *priv, uint64_t id,
                                 struct usb_redir_control_packet_header *h,
                                 uint8_t *data, int data_len)
{
    UsbredirExport *e = priv;
    bool in = h->requesttype & USB_DIR_IN;
    uint8_t setup[8] = { h->requesttype, h->request, h->value & 0xff, h->value >> 8,
                         h->index & 0xff, h->index >> 8, h->length & 0xff, h->length >> 8 };
    g_autofree uint8_t *buf = g_malloc0(MAX(h->length, 1));
    USBPacket p = { .pid = in ? USB_TOKEN_IN : USB_TOKEN_OUT, .id = id };
    struct usb_redir_control_packet_header reply = *h;

    trace_usbredir_control_packet(id, h->requesttype, h->request, h->value, h->index, h->length);
    if (!in && data_len > 0) {
        memcpy(buf, data, MIN(data_len, (int)h->length));
    }
    usbredirparser_free_packet_data(e->parser, data);
    if (!in && data_len != h->length) {
        reply.status = usb_redir_inval;
        reply.length = 0;
        trace_usbredir_control_reply(id, reply.status, reply.length);
        usbredirparser_send_control_packet(e->parser, id, &reply, NULL, 0);
        return;
    }
    usb_device_handle_control(e->dev, &p, setup, buf);
    reply.status = redir_status(p.status);
    reply.length = p.status == USB_RET_SUCCESS ? (in ? p.actual_length : h->length) : 0;
    trace_usbredir_control_reply(id, reply.status, reply.length);
    usbredirparser_send_control_packet(e->parser, id, &reply, in ? buf : NULL,
                                       in ? reply.length : 0);
}

static RedirPacket *redir_packet_new(uint64_t id, uint8_t endpoint, const uint8_t *data,
                                     size_t len, bool in)
{
    RedirPacket *rp = g_new0(RedirPacket, 1);

    rp->endpoint = endpoint;
    rp->p.id = id;
    rp->p.pid = in ? USB_TOKEN_IN : USB_TOKEN_OUT;
    rp->p.ep = endpoint & 0x0f;
    rp->p.size = len;
    rp->p.data = in ? g_malloc(MAX(len, 1)) : g_memdup2(data, len);
    return rp;
}

/*
 * Packets the device holds for endpoint ep; what the bulk-out ones among
 * all it holds cost; and whether it holds an IN transfer.
 */
static unsigned redir_pending_on(UsbredirExport *e, uint8_t endpoint, size_t *out_bytes,
                                 bool *holds_in)
{
    GHashTableIter iter;
    gpointer value;
    unsigned n = 0;

    *out_bytes = 0;
    *holds_in = false;
    g_hash_table_iter_init(&iter, e->pending);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        RedirPacket *rp = value;

        n += rp->endpoint == endpoint;
        if (rp->endpoint & USB_DIR_IN) {
            *holds_in = true;
        } else {
            *out_bytes += sizeof(*rp) + rp->p.size;
        }
    }
    return n;
}

/*
 * Backpressure, and why it needs care here: bulk-in requests come on the
 * same socket as bulk-out data, so not reading can hide the very request
 * that would drain the answers that make room. Reading pauses only while
 * the device also holds an IN transfer: a device that holds bulk-out data
 * for lack of room and an IN transfer for lack of an answer is busy with a
 * command (a CCID reader: a card at work, or its time extensions), and
 * completes that IN without any more input. Each completion asks again;
 * with no IN held, reading resumes whatever is held, and the caps above
 * bound a peer that then floods.
 */
static bool redir_should_hold_back(UsbredirExport *e)
{
    size_t held_out;
    bool holds_in;

    redir_pending_on(e, 0, &held_out, &holds_in);
    if (!holds_in) {
        return false;
    }
    return held_out >= (e->held_back ? REDIR_HELD_OUT_LOW_WATER : REDIR_HELD_OUT_HIGH_WATER);
}

static size_t redir_chr_can_read(void *opaque)
{
    UsbredirExport *e = opaque;

    if (e->parser && !e->drop_reason) {
        e->held_back = redir_should_hold_back(e);
        if (e->held_back) {
            trace_usbredir_held_back(g_hash_table_size(e->pending));
            return 0;
        }
    }
    return G_MAXSIZE;
}

/* The device finished something: if reading waits, it may go on. */
static void redir_release_backpressure(UsbredirExport *e)
{
    if (e->held_back && !redir_should_hold_back(e)) {
        e->held_back = false;
        chr_fe_accept_input(e->chr);
    }
}

/* Run a packet; keep it if the device holds it, else answer now. */
static void redir_submit(UsbredirExport *e, RedirPacket *rp)
{
    usb_device_handle_data(e->dev, &rp->p);
    if (rp->p.status == USB_RET_ASYNC) {
        size_t held_out;
        bool holds_in;

        trace_usbredir_packet_held(rp->p.id, rp->endpoint);
        g_hash_table_insert(e->pending, &rp->p.id, rp);
        redir_pending_on(e, rp->endpoint, &held_out, &holds_in);
        if (held_out > REDIR_MAX_HELD_OUT_BYTES) {
            redir_drop_peer(e, g_strdup_printf("more than %u bytes of bulk-out data held while "
                                               "the device has no room",
                                               REDIR_MAX_HELD_OUT_BYTES));
        }
        return;
    }
    if (rp->p.status == USB_RET_NAK) {
        /* usbredir has no NAK; an interrupt poll with nothing to say is a timeout. */
        rp->p.actual_length = 0;
        redir_reply(e, rp, usb_redir_timeout);
    } else {
        redir_reply(e, rp, redir_status(rp->p.status));
    }
    redir_packet_free(rp);
}

static void redir_bulk_packet(void *priv, uint64_t id, struct usb_redir_bulk_packet_header *h,
                              uint8_t *data, int data_len)
{
    UsbredirExport *e = priv;
    bool in = h->endpoint & USB_DIR_IN;
    size_t len = h->length;
    RedirPacket *rp;

    if (usbredirparser_peer_has_cap(e->parser, usb_redir_cap_32bits_bulk_length)) {
        len |= (size_t)h->length_high << 16;
    }
    trace_usbredir_bulk_packet(id, h->endpoint, in ? len : (size_t)data_len);
    if (!e->drop_reason) {
        size_t held_out;
        bool holds_in;

        if (in && redir_pending_on(e, h->endpoint, &held_out, &holds_in) >=
                  REDIR_MAX_PENDING_IN_PER_EP) {
            redir_drop_peer(e, g_strdup_printf("more than %u transfers pending on endpoint "
                                               "0x%02x", REDIR_MAX_PENDING_IN_PER_EP,
                                               h->endpoint));
        }
    }
    if (e->drop_reason) {
        usbredirparser_free_packet_data(e->parser, data);
        return;
    }
    rp = redir_packet_new(id, h->endpoint, data, in ? MIN(len, REDIR_MAX_BULK_IN) : (size_t)data_len,
                          in);
    usbredirparser_free_packet_data(e->parser, data);
    rp->kind = REDIR_PACKET_BULK;
    rp->bulk = *h;
    if (g_hash_table_contains(e->pending, &id)) {
        /* An id still in use would make completions ambiguous. */
        trace_usbredir_packet_duplicate(id);
        redir_reply(e, rp, usb_redir_inval);
        redir_packet_free(rp);
        return;
    }
    redir_submit(e, rp);
}

static void redir_interrupt_packet(void *priv, uint64_t id,
                                   struct usb_redir_interrupt_packet_header *h,
                                   uint8_t *data, int data_len)
{
    UsbredirExport *e = priv;
    bool in = h->endpoint & USB_DIR_IN;
    RedirPacket *rp;

    usbredirparser_free_packet_data(e->parser, data);
    trace_usbredir_interrupt_packet(id, h->endpoint);
    rp = redir_packet_new(id, h->endpoint, NULL, 0, in);
    rp->kind = REDIR_PACKET_INTERRUPT;
    /* Interrupt-in data flows through start_interrupt_receiving; we have no interrupt-out. */
    redir_reply(e, rp, usb_redir_inval);
    redir_packet_free(rp);
}

static void redir_iso_packet(void *priv, uint64_t id, struct usb_redir_iso_packet_header *h,
                             uint8_t *data, int data_len)
{
    UsbredirExport *e = priv;
    struct usb_redir_iso_packet_header reply = { .endpoint = h->endpoint,
                                                 .status = usb_redir_inval };

    trace_usbredir_unsupported(id, "iso_packet");
    usbredirparser_free_packet_data(e->parser, data);
    usbredirparser_send_iso_packet(e->parser, id, &reply, NULL, 0);
}

static void redir_buffered_bulk_packet(void *priv, uint64_t id,
                                       struct usb_redir_buffered_bulk_packet_header *h,
                                       uint8_t *data, int data_len)
{
    UsbredirExport *e = priv;

    /* Only a usb-host sends these; from a guest-role peer it is a protocol error. */
    usbredirparser_free_packet_data(e->parser, data);
    g_message("usbredir: ignoring a buffered bulk packet from the peer");
}

/* ---- session ---- */

static void redir_parser_setup(UsbredirExport *e)
{
    struct usbredirparser *p = usbredirparser_create();
    uint32_t caps[USB_REDIR_CAPS_SIZE] = { 0 };
    g_autofree char *version = g_strdup_printf("vccid %s", VCCID_VERSION);

    p->priv = e;
    p->log_func = redir_log;
    p->read_func = redir_read;
    p->write_func = redir_write;
    p->hello_func = redir_hello;
    p->reset_func = redir_reset;
    p->set_configuration_func = redir_set_configuration;
    p->get_configuration_func = redir_get_configuration;
    p->set_alt_setting_func = redir_set_alt_setting;
    p->get_alt_setting_func = redir_get_alt_setting;
    p->start_iso_stream_func = redir_start_iso_stream;
    p->stop_iso_stream_func = redir_stop_iso_stream;
    p->start_interrupt_receiving_func = redir_start_interrupt_receiving;
    p->stop_interrupt_receiving_func = redir_stop_interrupt_receiving;
    p->alloc_bulk_streams_func = redir_alloc_bulk_streams;
    p->free_bulk_streams_func = redir_free_bulk_streams;
    p->start_bulk_receiving_func = redir_start_bulk_receiving;
    p->stop_bulk_receiving_func = redir_stop_bulk_receiving;
    p->cancel_data_packet_func = redir_cancel_data_packet;
    p->control_packet_func = redir_control_packet;
    p->bulk_packet_func = redir_bulk_packet;
    p->iso_packet_func = redir_iso_packet;
    p->interrupt_packet_func = redir_interrupt_packet;
    p->buffered_bulk_packet_func = redir_buffered_bulk_packet;
    p->filter_reject_func = redir_filter_reject;
    p->filter_filter_func = redir_filter_filter;
    p->device_disconnect_ack_func = redir_peer_device_event;
    p->device_disconnect_func = redir_peer_device_event;

    usbredirparser_caps_set_cap(caps, usb_redir_cap_connect_device_version);
    usbredirparser_caps_set_cap(caps, usb_redir_cap_filter);
    usbredirparser_caps_set_cap(caps, usb_redir_cap_device_disconnect_ack);
    usbredirparser_caps_set_cap(caps, usb_redir_cap_ep_info_max_packet_size);
    usbredirparser_caps_set_cap(caps, usb_redir_cap_64bits_ids);
    usbredirparser_caps_set_cap(caps, usb_redir_cap_32bits_bulk_length);
    usbredirparser_init(p, version, caps, USB_REDIR_CAPS_SIZE, usbredirparser_fl_usb_host);
    e->parser = p;
}

static void redir_session_end(UsbredirExport *e)
{
    if (!e->parser) {
        return;
    }
    trace_usbredir_session_end(DEVICE(e->dev)->id, g_hash_table_size(e->pending));
    redir_cancel_all_pending(e, false);
    if (e->device_connected) {
        usb_device_detach(e->dev);
        e->device_connected = false;
    }
    memset(e->interrupt_receiving, 0, sizeof(e->interrupt_receiving));
    usbredirparser_destroy(e->parser);
    e->parser = NULL;
    g_byte_array_set_size(e->inbuf, 0);
    e->inbuf_off = 0;
    e->packet_left = 0;
    e->held_back = false;
    g_clear_pointer(&e->drop_reason, g_free);
}

static void redir_chr_event(void *opaque, ChrEvent event)
{
    UsbredirExport *e = opaque;

    if (event == CHR_EVENT_OPENED) {
        redir_session_end(e);
        trace_usbredir_session_start(DEVICE(e->dev)->id);
        redir_parser_setup(e);
        redir_flush(e);
    } else {
        redir_session_end(e);
    }
    export_event_peer(e->id, "usbredir", chardev_describe(e->chr), event == CHR_EVENT_OPENED);
}

/*
 * Find the next packet's length in its header, before the parser allocates
 * for it. False if the header is not all here yet, or the packet is too
 * big (the peer is then to be dropped).
 */
static bool redir_next_packet(UsbredirExport *e)
{
    bool ids64 = usbredirparser_peer_has_cap(e->parser, usb_redir_cap_64bits_ids);
    size_t header_len = REDIR_HEADER_LEN(ids64);
    uint32_t length;

    if (e->inbuf->len - e->inbuf_off < header_len) {
        return false;
    }
    memcpy(&length, e->inbuf->data + e->inbuf_off + 4, sizeof(length));
    length = GUINT32_FROM_LE(length);
    if (length > REDIR_MAX_PACKET) {
        redir_drop_peer(e, g_strdup_printf("a packet of %u bytes (more than %u)", length,
                                           REDIR_MAX_PACKET));
        return false;
    }
    e->packet_left = header_len + length;
    return true;
}

/*
 * Parse one packet at a time: its header is checked first (above), and the
 * width of the next header's id depends on capabilities the hello packet
 * brought (64-bit ids if both sides have them, as the parser decides).
 */
static void redir_chr_read(void *opaque, const uint8_t *buf, size_t len)
{
    UsbredirExport *e = opaque;
    int ret = 0;

    if (!e->parser) {
        return;
    }
    g_byte_array_append(e->inbuf, buf, len);
    while (!e->drop_reason) {
        size_t before = e->inbuf_off;

        if (!e->packet_left && !redir_next_packet(e)) {
            break;
        }
        ret = usbredirparser_do_read(e->parser);
        trace_usbredir_read(len, ret);
        /* The parser may have been torn down by a callback that closed the peer. */
        if (!e->parser) {
            return;
        }
        if (ret == usbredirparser_read_parse_error || e->inbuf_off == before) {
            break;
        }
    }
    g_byte_array_remove_range(e->inbuf, 0, e->inbuf_off);
    e->inbuf_off = 0;
    redir_flush(e);
    if (e->drop_reason) {
        g_warning("usbredir: dropping the peer on %s: %s", chardev_describe(e->chr),
                  e->drop_reason);
        chr_fe_disconnect(e->chr);
    } else if (ret == usbredirparser_read_parse_error) {
        g_warning("usbredir: malformed packet from the peer on %s; disconnecting",
                  chardev_describe(e->chr));
        chr_fe_disconnect(e->chr);
    }
}

/* ---- -export usbredir ---- */

bool usbredir_export_create(QemuOpts *opts, GError **errp)
{
    const char *id = qemu_opt_take(opts, "id");
    const char *chr_id = qemu_opt_take(opts, "chardev");
    const char *dev_id = qemu_opt_take(opts, "device");
    const char *unused = qemu_opts_first_unused(opts);
    UsbredirExport *e;
    Chardev *chr;
    USBDevice *dev;

    if (unused) {
        g_set_error(errp, VCCID_ERROR, 0, "-export usbredir: Invalid parameter '%s'", unused);
        return false;
    }
    if (!chr_id) {
        g_set_error(errp, VCCID_ERROR, 0, "-export usbredir: Parameter 'chardev' is missing");
        return false;
    }
    if (!export_id_check(id, errp)) {
        return false;
    }
    chr = chardev_find(chr_id);
    if (!chr) {
        g_set_error(errp, VCCID_ERROR, 0, "-export usbredir: chardev '%s' not found", chr_id);
        return false;
    }
    dev = export_find_device("usbredir", dev_id, errp);
    if (!dev) {
        return false;
    }
    if (!chr_fe_claim(chr, "usbredir export", errp)) {
        g_prefix_error(errp, "-export usbredir: ");
        return false;
    }
    e = g_new0(UsbredirExport, 1);
    e->id = id ? g_strdup(id) : export_id_generate();
    e->chr = chr;
    e->dev = dev;
    e->port.ops = &redir_port_ops;
    e->port.opaque = e;
    e->inbuf = g_byte_array_new();
    e->pending = g_hash_table_new(g_int64_hash, g_int64_equal);
    chr_fe_set_handlers(chr, redir_chr_read, redir_chr_event, e);
    chr_fe_set_can_read(chr, redir_chr_can_read);
    redir_exports = g_list_append(redir_exports, e);
    g_message("usbredir: exporting %s on %s", DEVICE(dev)->id, chardev_describe(chr));
    return true;
}

static void redir_export_free(UsbredirExport *e)
{
    redir_exports = g_list_remove(redir_exports, e);
    /* The host sees the device leave, not the connection fail. */
    if (e->parser && e->device_connected) {
        usbredirparser_send_device_disconnect(e->parser);
        redir_flush(e);
    }
    redir_session_end(e);
    chr_fe_release(e->chr);
    /*
     * Then the connection goes too: its usbredir session cannot serve
     * another device (the host's hello is not sent twice), and a host that
     * reconnects gets a fresh one from the next export on this chardev.
     */
    chr_fe_disconnect(e->chr);
    g_hash_table_unref(e->pending);
    g_byte_array_unref(e->inbuf);
    g_free(e->id);
    g_free(e);
}

void usbredir_export_destroy_all(void)
{
    while (redir_exports) {
        redir_export_free(redir_exports->data);
    }
}

bool usbredir_export_del(const char *id, const DeviceState *dev)
{
    bool found = false;

    for (GList *l = redir_exports, *next; l; l = next) {
        UsbredirExport *e = l->data;

        next = l->next;
        if ((id && strcmp(e->id, id) == 0) || (dev && DEVICE(e->dev) == dev)) {
            redir_export_free(e);
            found = true;
        }
    }
    return found;
}

void usbredir_export_foreach(ExportInfoFunc *fn, void *opaque)
{
    for (GList *l = redir_exports; l; l = l->next) {
        UsbredirExport *e = l->data;
        ExportInfo info = {
            .type = "usbredir", .id = e->id, .device = DEVICE(e->dev)->id,
            .chardev = chardev_get_id(e->chr), .peer = chardev_describe(e->chr),
            .connected = chr_fe_is_connected(e->chr),
            .attached = e->device_connected,
        };

        fn(&info, opaque);
    }
}
