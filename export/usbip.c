/*
 * USB/IP export: "-export usbip,device=ID[,host=ADDR][,port=PORT]".
 *
 * We are what Linux's usbipd plus the usbip-host driver are for a real
 * device: a TCP server that lists the devices it exports (OP_REQ_DEVLIST)
 * and hands one to an importer (OP_REQ_IMPORT), after which the importer's
 * vhci sends URBs for it on the same connection. Every export that names
 * the same host and port shares one listener, as every device of a usbipd
 * host does; each gets bus id "1-N", N counting exports on that listener.
 *
 * An importer holds its device until it closes the connection; the device is
 * then detached and waits, with its card, for the next importer. Whatever
 * the peer sends is checked where it enters (proto/usbip.c for the framing,
 * here for devid, seqnums and how much it may have in flight); a peer that
 * breaks a rule loses its own connection and nothing else.
 */
#include "export/export.h"
#include "hw/usb.h"
#include "hw/usb/desc.h"
#include "proto/usbip.h"
#include "qemu/error.h"
#include "qemu/main-loop.h"
#include "qemu/option.h"

#include <errno.h>
#include <gio/gio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>

#include "trace/trace-export.h"

#define USBIP_DEFAULT_HOST "127.0.0.1"
#define USBIP_DEFAULT_PORT 3240
#define USBIP_BUSNUM 1
#define USBIP_READ_CHUNK 65536
/*
 * Connections beyond this are closed at once. A peer has this long to send
 * its operation (usbip sends it at once), so idle connections cannot keep
 * importers out for longer.
 */
#define USBIP_MAX_CONNECTIONS 64
#define USBIP_OP_TIMEOUT_S 10
/*
 * What one importer may have in flight. vhci and libccid keep a handful of
 * URBs queued; these bound the memory a peer can pin (count, and transfer
 * buffers we hold for it), and a peer past them is dropped.
 */
#define USBIP_MAX_URBS 1024
#define USBIP_MAX_HELD_BYTES (16 * 1024 * 1024)
/* Output not yet taken by a peer that stopped reading. */
#define USBIP_MAX_OUTPUT_QUEUE (16 * 1024 * 1024)
/*
 * Backpressure (usbip_conn_has_room): reading from an importer pauses
 * while more than the output high-water mark waits for it, or while the
 * device holds the bulk-out high-water mark of OUT URBs and an IN URB; it
 * resumes once both are down to their low-water marks.
 */
#define USBIP_OUTPUT_HIGH_WATER (1024 * 1024)
#define USBIP_OUTPUT_LOW_WATER (256 * 1024)
#define USBIP_HELD_OUT_HIGH_WATER (256 * 1024)
#define USBIP_HELD_OUT_LOW_WATER (64 * 1024)
/* USB 2.0 hub class: SetPortFeature(PORT_RESET), which usbip-win2 sends to the device. */
#define USB_RT_PORT 0x23
#define USB_PORT_FEAT_RESET 4

typedef struct UsbipServer UsbipServer;
typedef struct UsbipConn UsbipConn;

typedef struct UsbipExport {
    char *id;                    /* -export id=, or generated */
    UsbipServer *server;
    USBDevice *dev;
    uint32_t devnum;
    char busid[USBIP_BUSID_SIZE];
    UsbipConn *importer;         /* NULL while no one holds it */
} UsbipExport;

struct UsbipServer {
    char *host;
    uint16_t port;               /* as bound (port=0 picks one) */
    GSocket *listener;
    GSource *accept_src;
    GPtrArray *exports;          /* UsbipExport *, bus ids 1-1, 1-2 ... */
    GList *conns;                /* UsbipConn * */
};

/* A URB the device has not answered yet. */
typedef struct UsbipUrb {
    USBPacket p;                 /* first: the port's complete callback gets &p */
    uint32_t seqnum;
    uint32_t number_of_packets;  /* echoed: 0 from Linux, 0xffffffff from usbip-win2 */
} UsbipUrb;

struct UsbipConn {
    UsbipServer *server;
    GSocket *sock;
    char *peer;                  /* "127.0.0.1:51234", for logs */
    GSource *read_src;           /* NULL while reading is paused */
    bool read_paused;
    GSource *write_src;
    guint close_idle;
    guint op_timer;              /* until an import succeeds */
    UsbipStream *stream;
    GByteArray *outq;
    bool close_when_sent;        /* a DEVLIST or refused IMPORT: answer, then close */
    bool drop;                   /* a rule was broken: close once the parser returns */

    UsbipExport *exp;            /* after a successful import */
    uint32_t devid;
    USBPort port;
    GHashTable *held;            /* seqnum -> UsbipUrb *, held by the device (USB_RET_ASYNC) */
    GQueue parked[USB_MAX_ENDPOINTS];   /* IN URBs the device NAKed, retried on its wakeup */
    unsigned nurbs;
    size_t held_bytes;
};

static GList *usbip_servers;

static void usbip_conn_close(UsbipConn *c, const char *why);
static void usbip_conn_resume_reading(UsbipConn *c);

/* ---- output ---- */

static gboolean usbip_close_later_cb(gpointer opaque)
{
    UsbipConn *c = opaque;

    c->close_idle = 0;
    usbip_conn_close(c, c->close_when_sent ? "done" : "dropped");
    return G_SOURCE_REMOVE;
}

/*
 * Close from the main loop: callers sit inside the parser or the device,
 * which must not see the connection (and the device's port) vanish under them.
 */
static void usbip_conn_close_later(UsbipConn *c)
{
    usbip_stream_stop(c->stream);
    if (!c->close_idle) {
        c->close_idle = g_idle_add(usbip_close_later_cb, c);
    }
}

static void usbip_conn_fail(UsbipConn *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* The peer broke a rule: it loses its connection. */
static void usbip_conn_fail(UsbipConn *c, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_warning("usbip: %s: %s; disconnecting", c->peer, msg);
    c->drop = true;
    c->close_when_sent = false;
    g_byte_array_set_size(c->outq, 0);
    usbip_conn_close_later(c);
}

static gboolean usbip_writable(GSocket *sock, GIOCondition cond, gpointer opaque);

/* Send what the socket takes now; the rest waits for it to become writable. */
static void usbip_conn_flush(UsbipConn *c)
{
    while (c->outq->len && !c->drop) {
        g_autoptr(GError) err = NULL;
        gssize n = g_socket_send(c->sock, (const char *)c->outq->data, c->outq->len, NULL, &err);

        if (n < 0 && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
            break;
        }
        if (n < 0) {
            g_message("usbip: %s: %s", c->peer, err->message);
            c->drop = true;
            g_byte_array_set_size(c->outq, 0);
            usbip_conn_close_later(c);
            return;
        }
        g_byte_array_remove_range(c->outq, 0, n);
    }
    if (c->outq->len > USBIP_MAX_OUTPUT_QUEUE) {
        usbip_conn_fail(c, "%u bytes of answers not read", c->outq->len);
        return;
    }
    if (c->outq->len && !c->write_src) {
        c->write_src = g_socket_create_source(c->sock, G_IO_OUT, NULL);
        g_source_set_callback(c->write_src, (GSourceFunc)(void (*)(void))usbip_writable, c, NULL);
        g_source_attach(c->write_src, NULL);
    } else if (!c->outq->len) {
        source_drop(&c->write_src);
        if (c->close_when_sent) {
            usbip_conn_close_later(c);
        }
    }
    usbip_conn_resume_reading(c);
}

static gboolean usbip_writable(GSocket *sock, GIOCondition cond, gpointer opaque)
{
    usbip_conn_flush(opaque);
    return G_SOURCE_CONTINUE;
}

/* ---- the device record ---- */

static uint32_t usbip_speed(const USBDevice *dev)
{
    switch (dev->speed) {
    case USB_SPEED_LOW:  return USBIP_SPEED_LOW;
    case USB_SPEED_HIGH: return USBIP_SPEED_HIGH;
    default:             return USBIP_SPEED_FULL;
    }
}

/* ifs receives up to the configuration's interfaces (alternate settings 0). */
static void usbip_describe(const UsbipExport *e, UsbipDevice *d, UsbipInterface *ifs,
                           size_t max_ifs)
{
    const USBDescDevice *dd = usb_desc_for_speed(e->dev);
    const USBDescConfig *conf = &dd->confs[0];
    unsigned n = 0;

    memset(d, 0, sizeof(*d));
    /* usbip list prints it under the bus id; name the reader there. */
    snprintf(d->path, sizeof(d->path), "/vccid/%s", DEVICE(e->dev)->id);
    g_strlcpy(d->busid, e->busid, sizeof(d->busid));
    d->busnum = USBIP_BUSNUM;
    d->devnum = e->devnum;
    d->speed = usbip_speed(e->dev);
    d->idVendor = e->dev->desc->id.idVendor;
    d->idProduct = e->dev->desc->id.idProduct;
    d->bcdDevice = e->dev->desc->id.bcdDevice;
    d->bDeviceClass = dd->bDeviceClass;
    d->bDeviceSubClass = dd->bDeviceSubClass;
    d->bDeviceProtocol = dd->bDeviceProtocol;
    d->bConfigurationValue = e->dev->configuration ? e->dev->configuration
                                                   : conf->bConfigurationValue;
    d->bNumConfigurations = dd->bNumConfigurations;
    for (unsigned i = 0; i < conf->nif && n < max_ifs; i++) {
        if (conf->ifs[i].bAlternateSetting != 0) {
            continue;
        }
        ifs[n].bInterfaceClass = conf->ifs[i].bInterfaceClass;
        ifs[n].bInterfaceSubClass = conf->ifs[i].bInterfaceSubClass;
        ifs[n].bInterfaceProtocol = conf->ifs[i].bInterfaceProtocol;
        n++;
    }
    d->bNumInterfaces = n;
    d->interfaces = ifs;
}

/* ---- URBs ---- */

static int32_t usbip_status(int usb_ret)
{
    switch (usb_ret) {
    case USB_RET_SUCCESS: return 0;
    case USB_RET_STALL:   return -EPIPE;
    case USB_RET_BABBLE:  return -EOVERFLOW;
    case USB_RET_NODEV:   return -ENODEV;
    default:              return -EPROTO;
    }
}

/* RET_SUBMIT as Linux's stub sends it: devid, direction and ep are 0. */
static void usbip_send_ret_submit(UsbipConn *c, uint32_t seqnum, uint32_t npackets,
                                  int32_t status, const uint8_t *data, uint32_t len)
{
    UsbipRetSubmit ret = {
        .h.seqnum = seqnum, .status = status, .actual_length = len,
        .number_of_packets = npackets,
    };

    trace_usbip_ret_submit(seqnum, status, len);
    usbip_encode_ret_submit(c->outq, &ret, data);
}

static void usbip_urb_free(UsbipConn *c, UsbipUrb *u)
{
    c->nurbs--;
    c->held_bytes -= u->p.size;
    g_free(u->p.data);
    g_free(u);
}

/* Answer a URB the device finished with, and forget it. */
static void usbip_urb_reply(UsbipConn *c, UsbipUrb *u)
{
    bool in = u->p.pid == USB_TOKEN_IN;
    int32_t status = usbip_status(u->p.status);

    usbip_send_ret_submit(c, u->seqnum, u->number_of_packets, status, in ? u->p.data : NULL,
                          status == 0 || in ? u->p.actual_length : 0);
    usbip_urb_free(c, u);
}

static bool usbip_urb_parked(UsbipConn *c, uint32_t seqnum, GQueue **q, GList **link)
{
    for (int ep = 0; ep < USB_MAX_ENDPOINTS; ep++) {
        for (GList *l = c->parked[ep].head; l; l = l->next) {
            if (((UsbipUrb *)l->data)->seqnum == seqnum) {
                *q = &c->parked[ep];
                *link = l;
                return true;
            }
        }
    }
    return false;
}

/*
 * Run a URB on the device: answered now, held by the device until it
 * completes, or (an IN endpoint with nothing to say: interrupt-IN between
 * slot changes) parked until the device wakes the endpoint. Returns false if
 * the URB was NAKed and parked at the head of its queue.
 */
static bool usbip_urb_run(UsbipConn *c, UsbipUrb *u)
{
    usb_device_handle_data(c->exp->dev, &u->p);
    switch (u->p.status) {
    case USB_RET_ASYNC:
        trace_usbip_urb_held(u->seqnum);
        g_hash_table_insert(c->held, &u->seqnum, u);
        return true;
    case USB_RET_NAK:
        if (u->p.pid == USB_TOKEN_IN) {
            trace_usbip_urb_parked(u->seqnum, u->p.ep);
            g_queue_push_head(&c->parked[u->p.ep], u);
            return false;
        }
        u->p.status = USB_RET_IOERROR;
        break;
    }
    usbip_urb_reply(c, u);
    return true;
}

/* The device has data for an IN endpoint: run its parked URBs in order. */
static void usbip_kick_parked(UsbipConn *c, uint8_t ep)
{
    while (!g_queue_is_empty(&c->parked[ep])) {
        if (!usbip_urb_run(c, g_queue_pop_head(&c->parked[ep]))) {
            break;
        }
    }
    usbip_conn_flush(c);
}

/*
 * The device forgets every URB: they get no answer (the connection is
 * going) or -ESHUTDOWN (a reset or a new configuration ended them; the host
 * unlinks them anyway before either).
 */
static void usbip_urbs_abandon(UsbipConn *c, bool reply)
{
    GHashTableIter iter;
    gpointer value;

    g_hash_table_iter_init(&iter, c->held);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        UsbipUrb *u = value;

        g_hash_table_iter_steal(&iter);
        usb_device_cancel_packet(c->exp->dev, &u->p);
        if (reply) {
            usbip_send_ret_submit(c, u->seqnum, u->number_of_packets, -ESHUTDOWN, NULL, 0);
        }
        usbip_urb_free(c, u);
    }
    for (int ep = 0; ep < USB_MAX_ENDPOINTS; ep++) {
        UsbipUrb *u;

        while ((u = g_queue_pop_head(&c->parked[ep]))) {
            if (reply) {
                usbip_send_ret_submit(c, u->seqnum, u->number_of_packets, -ESHUTDOWN, NULL, 0);
            }
            usbip_urb_free(c, u);
        }
    }
}

static void usbip_port_complete(USBPort *port, USBPacket *p)
{
    UsbipConn *c = port->opaque;
    UsbipUrb *u = (UsbipUrb *)p;

    if (g_hash_table_lookup(c->held, &u->seqnum) != u) {
        g_warning("usbip: %s: completion of a URB not held", c->peer);
        return;
    }
    g_hash_table_steal(c->held, &u->seqnum);
    usbip_urb_reply(c, u);
    usbip_conn_flush(c);
}

static void usbip_port_wakeup(USBPort *port, uint8_t ep)
{
    if (ep < USB_MAX_ENDPOINTS) {
        usbip_kick_parked(port->opaque, ep);
    }
}

static const USBPortOps usbip_port_ops = {
    .complete = usbip_port_complete,
    .wakeup = usbip_port_wakeup,
};

static bool usbip_is_port_reset(const uint8_t setup[8])
{
    return setup[0] == USB_RT_PORT && setup[1] == USB_REQ_SET_FEATURE &&
           setup[2] == USB_PORT_FEAT_RESET && setup[3] == 0;
}

/* A request that changes the endpoints under any URB in flight. */
static bool usbip_ends_urbs(const uint8_t setup[8])
{
    return (setup[0] == (USB_DIR_OUT | USB_TYPE_STANDARD | USB_RECIP_DEVICE) &&
            setup[1] == USB_REQ_SET_CONFIGURATION) ||
           (setup[0] == (USB_DIR_OUT | USB_TYPE_STANDARD | USB_RECIP_INTERFACE) &&
            setup[1] == USB_REQ_SET_INTERFACE);
}

/*
 * Control transfers run whole on the device core: Linux's vhci sends every
 * request, SET_CONFIGURATION and SET_INTERFACE included, as an ep 0 URB
 * (only SET_ADDRESS stays in the host). The device core answers at once.
 */
static void usbip_control(UsbipConn *c, const UsbipSubmit *cmd, const uint8_t *data)
{
    bool in = cmd->setup[0] & USB_DIR_IN;
    uint16_t wlength = cmd->setup[6] | cmd->setup[7] << 8;
    uint32_t tbl = cmd->transfer_buffer_length;
    g_autofree uint8_t *buf = NULL;
    USBPacket p = { .pid = in ? USB_TOKEN_IN : USB_TOKEN_OUT, .id = cmd->h.seqnum };
    uint32_t actual;

    trace_usbip_control(cmd->h.seqnum, cmd->setup[0], cmd->setup[1],
                        cmd->setup[2] | cmd->setup[3] << 8, cmd->setup[4] | cmd->setup[5] << 8,
                        wlength);
    if (in != (cmd->h.direction == USBIP_DIR_IN) || (!in && wlength > tbl)) {
        usbip_send_ret_submit(c, cmd->h.seqnum, cmd->number_of_packets, -EINVAL, NULL, 0);
        return;
    }
    if (usbip_is_port_reset(cmd->setup)) {
        usbip_urbs_abandon(c, true);
        usb_device_reset(c->exp->dev);
        usbip_send_ret_submit(c, cmd->h.seqnum, cmd->number_of_packets, 0, NULL, 0);
        return;
    }
    if (usbip_ends_urbs(cmd->setup)) {
        usbip_urbs_abandon(c, true);
    }
    buf = g_malloc0(MAX(wlength, 1));
    if (!in && wlength) {
        memcpy(buf, data, wlength);
    }
    usb_device_handle_control(c->exp->dev, &p, cmd->setup, buf);
    actual = p.status == USB_RET_SUCCESS ? (in ? MIN(p.actual_length, tbl) : wlength) : 0;
    usbip_send_ret_submit(c, cmd->h.seqnum, cmd->number_of_packets, usbip_status(p.status),
                          in ? buf : NULL, actual);
}

static bool usbip_seqnum_in_flight(UsbipConn *c, uint32_t seqnum)
{
    GQueue *q;
    GList *l;

    return g_hash_table_contains(c->held, &seqnum) || usbip_urb_parked(c, seqnum, &q, &l);
}

/*
 * The reader may be exported over usbredir too, and a usbredir peer that
 * connects attaches it whoever holds it; the device forgot our URBs then.
 */
static bool usbip_still_attached(UsbipConn *c)
{
    if (c->exp->dev->port != &c->port) {
        usbip_conn_fail(c, "%s was attached by another export", DEVICE(c->exp->dev)->id);
        return false;
    }
    return true;
}

static void usbip_cmd_submit(void *opaque, const UsbipSubmit *cmd, const uint8_t *data)
{
    UsbipConn *c = opaque;
    bool in = cmd->h.direction == USBIP_DIR_IN;
    uint32_t len = cmd->transfer_buffer_length;
    UsbipUrb *u;

    trace_usbip_cmd_submit(cmd->h.seqnum, cmd->h.ep, in, len);
    if (!usbip_still_attached(c)) {
        return;
    }
    if (cmd->h.devid != c->devid) {
        usbip_conn_fail(c, "CMD_SUBMIT for devid 0x%08x, imported 0x%08x", cmd->h.devid, c->devid);
        return;
    }
    if (usbip_seqnum_in_flight(c, cmd->h.seqnum)) {
        usbip_conn_fail(c, "CMD_SUBMIT seqnum %u already in flight", cmd->h.seqnum);
        return;
    }
    if (cmd->h.ep == 0) {
        usbip_control(c, cmd, data);
        return;
    }
    if (c->nurbs >= USBIP_MAX_URBS || c->held_bytes + len > USBIP_MAX_HELD_BYTES) {
        usbip_conn_fail(c, "more than %u URBs or %u bytes in flight", USBIP_MAX_URBS,
                        USBIP_MAX_HELD_BYTES);
        return;
    }
    u = g_new0(UsbipUrb, 1);
    u->seqnum = cmd->h.seqnum;
    u->number_of_packets = cmd->number_of_packets;
    u->p.pid = in ? USB_TOKEN_IN : USB_TOKEN_OUT;
    u->p.ep = cmd->h.ep;
    u->p.id = cmd->h.seqnum;
    u->p.size = len;
    /* Never NULL, even for a zero-length OUT: devices may copy from it. */
    u->p.data = g_malloc0(MAX(len, 1));
    if (!in && len) {
        memcpy(u->p.data, data, len);
    }
    c->nurbs++;
    c->held_bytes += len;
    /* Behind a parked URB of the same endpoint: answers keep the submit order. */
    if (in && !g_queue_is_empty(&c->parked[u->p.ep])) {
        g_queue_push_tail(&c->parked[u->p.ep], u);
        return;
    }
    usbip_urb_run(c, u);
}

static void usbip_cmd_unlink(void *opaque, const UsbipHeader *h, uint32_t unlink_seqnum)
{
    UsbipConn *c = opaque;
    UsbipUrb *u = g_hash_table_lookup(c->held, &unlink_seqnum);
    GQueue *q;
    GList *l;

    if (!usbip_still_attached(c)) {
        return;
    }
    if (h->devid != c->devid) {
        usbip_conn_fail(c, "CMD_UNLINK for devid 0x%08x, imported 0x%08x", h->devid, c->devid);
        return;
    }
    /*
     * Found: the device forgets it and it never gets a RET_SUBMIT (vhci
     * tears the device down on a seqnum it no longer knows). Not found: it
     * completed, and its answer is already on the way: status 0.
     */
    if (u) {
        g_hash_table_steal(c->held, &unlink_seqnum);
        usb_device_cancel_packet(c->exp->dev, &u->p);
        usbip_urb_free(c, u);
        trace_usbip_cmd_unlink(h->seqnum, unlink_seqnum, -ECONNRESET);
        usbip_encode_ret_unlink(c->outq, h->seqnum, -ECONNRESET);
    } else if (usbip_urb_parked(c, unlink_seqnum, &q, &l)) {
        usbip_urb_free(c, l->data);
        g_queue_delete_link(q, l);
        trace_usbip_cmd_unlink(h->seqnum, unlink_seqnum, -ECONNRESET);
        usbip_encode_ret_unlink(c->outq, h->seqnum, -ECONNRESET);
    } else {
        trace_usbip_cmd_unlink(h->seqnum, unlink_seqnum, 0);
        usbip_encode_ret_unlink(c->outq, h->seqnum, 0);
    }
}

/* ---- operations ---- */

static void usbip_req_devlist(void *opaque)
{
    UsbipConn *c = opaque;
    GPtrArray *exports = c->server->exports;
    g_autofree UsbipDevice *devs = g_new0(UsbipDevice, MAX(exports->len, 1));
    g_autofree UsbipInterface *ifs = g_new0(UsbipInterface, MAX(exports->len, 1) * 32);

    for (guint i = 0; i < exports->len; i++) {
        usbip_describe(g_ptr_array_index(exports, i), &devs[i], ifs + i * 32, 32);
    }
    trace_usbip_devlist(c->peer, exports->len);
    usbip_encode_rep_devlist(c->outq, devs, exports->len);
    /* usbipd answers one operation per connection. */
    c->close_when_sent = true;
    usbip_stream_stop(c->stream);
}

static void usbip_req_import(void *opaque, const char *busid)
{
    UsbipConn *c = opaque;
    UsbipExport *e = NULL;
    UsbipDevice d;
    UsbipInterface ifs[32];

    for (guint i = 0; i < c->server->exports->len; i++) {
        UsbipExport *cand = g_ptr_array_index(c->server->exports, i);

        if (strcmp(cand->busid, busid) == 0) {
            e = cand;
        }
    }
    trace_usbip_import(c->peer, busid, e && !e->importer && !e->dev->port);
    if (!e || e->importer || e->dev->port) {
        g_message("usbip: %s: import of '%s' refused (%s)", c->peer, busid,
                  !e ? "no such bus id" : "already attached");
        usbip_encode_rep_import(c->outq, USBIP_ST_NA, NULL);
        c->close_when_sent = true;
        usbip_stream_stop(c->stream);
        return;
    }
    g_source_remove(c->op_timer);
    c->op_timer = 0;
    c->exp = e;
    e->importer = c;
    c->devid = USBIP_BUSNUM << 16 | e->devnum;
    c->port.ops = &usbip_port_ops;
    c->port.opaque = c;
    c->port.speed = e->dev->speed;
    usb_device_attach(e->dev, &c->port);
    usbip_describe(e, &d, ifs, G_N_ELEMENTS(ifs));
    usbip_encode_rep_import(c->outq, USBIP_ST_OK, &d);
    usbip_stream_start_urbs(c->stream);
    export_event_peer(e->id, "usbip", c->peer, true);
    g_message("usbip: %s attached to %s as %s (%04x:%04x, %s speed)", DEVICE(e->dev)->id, c->peer,
              e->busid, d.idVendor, d.idProduct, e->dev->speed == USB_SPEED_HIGH ? "high" : "full");
}

static void usbip_stream_error(void *opaque, UsbipError err, const char *detail)
{
    UsbipConn *c = opaque;

    usbip_conn_fail(c, "malformed USB/IP: %s (%s)", usbip_error_str(err), detail);
}

static const UsbipServerOps usbip_server_ops = {
    .req_devlist = usbip_req_devlist,
    .req_import = usbip_req_import,
    .cmd_submit = usbip_cmd_submit,
    .cmd_unlink = usbip_cmd_unlink,
};

/* ---- connections ---- */

static void usbip_conn_close(UsbipConn *c, const char *why)
{
    UsbipServer *s = c->server;

    source_drop(&c->read_src);
    source_drop(&c->write_src);
    g_clear_handle_id(&c->close_idle, g_source_remove);
    g_clear_handle_id(&c->op_timer, g_source_remove);
    if (c->exp) {
        trace_usbip_session_end(DEVICE(c->exp->dev)->id, c->nurbs);
        usbip_urbs_abandon(c, false);
        /*
         * Unless another export attached the reader meanwhile (a usbredir
         * peer does not ask): its session is not ours to end.
         */
        if (c->exp->dev->port == &c->port) {
            usb_device_detach(c->exp->dev);
        }
        g_message("usbip: %s detached from %s (%s)", DEVICE(c->exp->dev)->id, c->peer, why);
        export_event_peer(c->exp->id, "usbip", c->peer, false);
        c->exp->importer = NULL;
        c->exp = NULL;
    }
    g_socket_close(c->sock, NULL);
    g_object_unref(c->sock);
    s->conns = g_list_remove(s->conns, c);
    usbip_stream_free(c->stream);
    g_hash_table_unref(c->held);
    g_byte_array_unref(c->outq);
    g_free(c->peer);
    g_free(c);
}

/* Bytes of OUT URBs the device holds, and whether it holds an IN URB too. */
static size_t usbip_held_out_bytes(UsbipConn *c, bool *holds_in)
{
    GHashTableIter iter;
    gpointer value;
    size_t bytes = 0;

    *holds_in = false;
    g_hash_table_iter_init(&iter, c->held);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        UsbipUrb *u = value;

        if (u->p.pid == USB_TOKEN_IN) {
            *holds_in = true;
        } else {
            bytes += u->p.size;
        }
    }
    return bytes;
}

/*
 * Whether to read from the importer now. CMD_SUBMIT of IN URBs comes on
 * the same socket as OUT data, so not reading may hide the IN that would
 * drain the answers that make room: held OUT URBs pause reading only while
 * the device holds an IN URB as well, which it completes without more
 * input (a device full of commands with an IN it cannot fill yet is busy
 * with one; a CCID reader sends time extensions meanwhile). Otherwise the
 * caps of usbip_cmd_submit() bound what a flood makes us hold. Output that
 * waits for the importer to read pauses reading always: only it can drain.
 */
static bool usbip_conn_has_room(UsbipConn *c)
{
    size_t out_mark = c->read_paused ? USBIP_OUTPUT_LOW_WATER : USBIP_OUTPUT_HIGH_WATER;
    size_t held_mark = c->read_paused ? USBIP_HELD_OUT_LOW_WATER : USBIP_HELD_OUT_HIGH_WATER;
    bool holds_in;

    if (c->outq->len > out_mark) {
        return false;
    }
    return !c->exp || usbip_held_out_bytes(c, &holds_in) < held_mark || !holds_in;
}

static gboolean usbip_readable(GSocket *sock, GIOCondition cond, gpointer opaque);

static void usbip_conn_watch_readable(UsbipConn *c)
{
    c->read_src = g_socket_create_source(c->sock, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
    g_source_set_callback(c->read_src, (GSourceFunc)(void (*)(void))usbip_readable, c, NULL);
    g_source_attach(c->read_src, NULL);
}

/* Called whenever output drains or the device finishes a URB; arms a source, reads nothing. */
static void usbip_conn_resume_reading(UsbipConn *c)
{
    if (c->read_paused && !c->drop && !c->close_idle && usbip_conn_has_room(c)) {
        trace_usbip_read_resumed(c->peer);
        c->read_paused = false;
        usbip_conn_watch_readable(c);
    }
}

static gboolean usbip_readable(GSocket *sock, GIOCondition cond, gpointer opaque)
{
    UsbipConn *c = opaque;
    g_autofree uint8_t *buf = NULL;
    g_autoptr(GError) err = NULL;
    gssize n;

    if (!usbip_conn_has_room(c)) {
        /* What the importer sends waits in the socket; a source left armed would spin. */
        trace_usbip_read_paused(c->peer, c->outq->len, c->nurbs);
        source_drop(&c->read_src);
        c->read_paused = true;
        return G_SOURCE_CONTINUE;   /* the source was destroyed above */
    }
    buf = g_malloc(USBIP_READ_CHUNK);
    n = g_socket_receive(sock, (char *)buf, USBIP_READ_CHUNK, NULL, &err);
    if (n < 0 && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        usbip_conn_close(c, n == 0 ? "end of stream" : err->message);
        return G_SOURCE_CONTINUE;   /* the source was destroyed above */
    }
    if (c->drop || c->close_when_sent) {
        return G_SOURCE_CONTINUE;   /* nothing more is read from a peer on its way out */
    }
    trace_usbip_read(c->peer, n);
    usbip_stream_feed(c->stream, buf, n);
    usbip_conn_flush(c);
    return G_SOURCE_CONTINUE;
}

static gboolean usbip_op_timeout(gpointer opaque)
{
    UsbipConn *c = opaque;

    c->op_timer = 0;
    g_message("usbip: %s: no operation within %d s", c->peer, USBIP_OP_TIMEOUT_S);
    usbip_conn_close(c, "idle");
    return G_SOURCE_REMOVE;
}

static char *usbip_peer_name(GSocket *sock)
{
    g_autoptr(GSocketAddress) addr = g_socket_get_remote_address(sock, NULL);
    g_autofree char *ip = NULL;

    if (!addr || !G_IS_INET_SOCKET_ADDRESS(addr)) {
        return g_strdup("peer");
    }
    ip = g_inet_address_to_string(g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(addr)));
    return g_strdup_printf("%s:%u", ip, g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(addr)));
}

static gboolean usbip_acceptable(GSocket *listener, GIOCondition cond, gpointer opaque)
{
    UsbipServer *s = opaque;
    g_autoptr(GError) err = NULL;
    GSocket *sock = g_socket_accept(listener, NULL, &err);
    UsbipConn *c;

    if (!sock) {
        if (!g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
            g_warning("usbip: accept on %s:%u failed: %s", s->host, s->port, err->message);
        }
        return G_SOURCE_CONTINUE;
    }
    if (g_list_length(s->conns) >= USBIP_MAX_CONNECTIONS) {
        g_warning("usbip: more than %d connections on %s:%u; closing the newest",
                  USBIP_MAX_CONNECTIONS, s->host, s->port);
        g_socket_close(sock, NULL);
        g_object_unref(sock);
        return G_SOURCE_CONTINUE;
    }
    g_socket_set_blocking(sock, FALSE);
    /* URBs are small request/answer pairs: Nagle + delayed ACK would add ~40 ms each. */
    g_socket_set_option(sock, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
    c = g_new0(UsbipConn, 1);
    c->server = s;
    c->sock = sock;
    c->peer = usbip_peer_name(sock);
    c->outq = g_byte_array_new();
    c->held = g_hash_table_new(g_int_hash, g_int_equal);
    for (int ep = 0; ep < USB_MAX_ENDPOINTS; ep++) {
        g_queue_init(&c->parked[ep]);
    }
    c->stream = usbip_server_stream_new(&usbip_server_ops, usbip_stream_error, c);
    usbip_conn_watch_readable(c);
    c->op_timer = g_timeout_add_seconds(USBIP_OP_TIMEOUT_S, usbip_op_timeout, c);
    s->conns = g_list_prepend(s->conns, c);
    trace_usbip_connection(c->peer);
    return G_SOURCE_CONTINUE;
}

/* ---- -export usbip ---- */

static UsbipServer *usbip_server_find(const char *host, uint16_t port)
{
    for (GList *l = usbip_servers; l; l = l->next) {
        UsbipServer *s = l->data;

        /* port=0 asks for a fresh listener each time. */
        if (port && s->port == port && strcmp(s->host, host) == 0) {
            return s;
        }
    }
    return NULL;
}

static void usbip_export_free(gpointer data)
{
    UsbipExport *e = data;

    g_free(e->id);
    g_free(e);
}

static UsbipServer *usbip_server_new(const char *host, uint16_t port, GError **errp)
{
    g_autoptr(GInetAddress) ia = g_inet_address_new_from_string(host);
    g_autoptr(GSocketAddress) addr = NULL;
    g_autoptr(GSocketAddress) bound = NULL;
    GSocket *sock;
    UsbipServer *s;

    if (!ia) {
        g_set_error(errp, VCCID_ERROR, 0, "-export usbip: Parameter 'host' expects an IP "
                    "address, not '%s'", host);
        return NULL;
    }
    addr = g_inet_socket_address_new(ia, port);
    sock = g_socket_new(g_inet_address_get_family(ia), G_SOCKET_TYPE_STREAM,
                        G_SOCKET_PROTOCOL_DEFAULT, errp);
    if (!sock) {
        return NULL;
    }
    g_socket_set_blocking(sock, FALSE);
    if (!g_socket_bind(sock, addr, TRUE, errp) || !g_socket_listen(sock, errp)) {
        g_prefix_error(errp, "-export usbip: cannot listen on %s:%u: ", host, port);
        g_object_unref(sock);
        return NULL;
    }
    bound = g_socket_get_local_address(sock, NULL);
    s = g_new0(UsbipServer, 1);
    s->host = g_strdup(host);
    s->port = bound ? g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound)) : port;
    s->listener = sock;
    s->exports = g_ptr_array_new_with_free_func(usbip_export_free);
    s->accept_src = g_socket_create_source(sock, G_IO_IN, NULL);
    g_source_set_callback(s->accept_src, (GSourceFunc)(void (*)(void))usbip_acceptable, s, NULL);
    g_source_attach(s->accept_src, NULL);
    usbip_servers = g_list_append(usbip_servers, s);
    g_message("usbip: listening on %s:%u", s->host, s->port);
    return s;
}

bool usbip_export_create(QemuOpts *opts, GError **errp)
{
    const char *id = qemu_opt_take(opts, "id");
    const char *dev_id = qemu_opt_take(opts, "device");
    const char *host = qemu_opt_take(opts, "host");
    const char *port_str = qemu_opt_take(opts, "port");
    const char *unused = qemu_opts_first_unused(opts);
    uint64_t port = USBIP_DEFAULT_PORT;
    UsbipServer *s;
    UsbipExport *e;
    USBDevice *dev;

    if (unused) {
        g_set_error(errp, VCCID_ERROR, 0, "-export usbip: Invalid parameter '%s'", unused);
        return false;
    }
    if (port_str && !qemu_opt_parse_uint(port_str, 65535, &port)) {
        g_set_error(errp, VCCID_ERROR, 0, "-export usbip: Parameter 'port' expects a port "
                    "number, not '%s'", port_str);
        return false;
    }
    if (!host || !*host || strcmp(host, "localhost") == 0) {
        host = USBIP_DEFAULT_HOST;
    }
    if (!export_id_check(id, errp)) {
        return false;
    }
    dev = export_find_device("usbip", dev_id, errp);
    if (!dev) {
        return false;
    }
    s = usbip_server_find(host, port);
    if (!s) {
        s = usbip_server_new(host, port, errp);
        if (!s) {
            return false;
        }
    }
    e = g_new0(UsbipExport, 1);
    e->id = id ? g_strdup(id) : export_id_generate();
    e->server = s;
    e->dev = dev;
    /* After the highest in use: a bus id freed by vccid-export-del is not handed out again. */
    for (guint i = 0; i < s->exports->len; i++) {
        e->devnum = MAX(e->devnum, ((UsbipExport *)g_ptr_array_index(s->exports, i))->devnum);
    }
    e->devnum++;
    snprintf(e->busid, sizeof(e->busid), "%u-%u", USBIP_BUSNUM, e->devnum);
    g_ptr_array_add(s->exports, e);
    g_message("usbip: exporting %s as bus id %s on %s:%u", DEVICE(dev)->id, e->busid, s->host,
              s->port);
    return true;
}

void usbip_export_destroy_all(void)
{
    while (usbip_servers) {
        UsbipServer *s = usbip_servers->data;

        usbip_servers = g_list_delete_link(usbip_servers, usbip_servers);
        while (s->conns) {
            usbip_conn_close(s->conns->data, "shutting down");
        }
        source_drop(&s->accept_src);
        g_socket_close(s->listener, NULL);
        g_object_unref(s->listener);
        g_ptr_array_unref(s->exports);
        g_free(s->host);
        g_free(s);
    }
}

bool usbip_export_del(const char *id, const DeviceState *dev)
{
    bool found = false;

    for (GList *l = usbip_servers; l; l = l->next) {
        UsbipServer *s = l->data;

        for (guint i = s->exports->len; i > 0; i--) {
            UsbipExport *e = g_ptr_array_index(s->exports, i - 1);

            if ((id && strcmp(e->id, id) == 0) || (dev && DEVICE(e->dev) == dev)) {
                /* The importer's connection ends: vhci sees the device go. */
                if (e->importer) {
                    usbip_conn_close(e->importer, "export deleted");
                }
                g_ptr_array_remove_index(s->exports, i - 1);
                found = true;
            }
        }
    }
    return found;
}

void usbip_export_foreach(ExportInfoFunc *fn, void *opaque)
{
    for (GList *l = usbip_servers; l; l = l->next) {
        UsbipServer *s = l->data;

        for (guint i = 0; i < s->exports->len; i++) {
            UsbipExport *e = g_ptr_array_index(s->exports, i);
            g_autofree char *where = g_strdup_printf("%s:%u bus id %s", s->host, s->port,
                                                     e->busid);
            ExportInfo info = {
                .type = "usbip", .id = e->id, .device = DEVICE(e->dev)->id,
                .peer = where, .connected = e->importer != NULL,
                .attached = e->importer != NULL,
            };

            fn(&info, opaque);
        }
    }
}
