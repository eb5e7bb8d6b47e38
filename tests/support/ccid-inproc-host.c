/*
 * In-process USB host for usb-ccid tests: see ccid-inproc-host.h.
 */
#include "ccid-inproc-host.h"
#include "ccid-test-card.h"

#include <string.h>

static void host_complete(USBPort *port, USBPacket *p)
{
    CCIDInprocHost *h = port->opaque;

    g_assert_true(g_queue_remove(&h->in_flight, p));
    g_queue_push_tail(&h->completed, p);
}

static void host_wakeup(USBPort *port, uint8_t ep)
{
}

static const USBPortOps host_port_ops = {
    .complete = host_complete,
    .wakeup = host_wakeup,
};

CCIDInprocHost *ccid_inproc_new(const char *reader_opts, bool with_card)
{
    CCIDInprocHost *h = g_new0(CCIDInprocHost, 1);
    GError *err = NULL;
    DeviceState *d;

    test_card_register();
    d = device_create_from_string(reader_opts ? reader_opts : "usb-ccid,id=reader", &err);
    g_assert_no_error(err);
    if (with_card) {
        g_assert_nonnull(device_create_from_string("ccid-card-test", &err));
        g_assert_no_error(err);
    }
    h->dev = USB_DEVICE(d);
    h->port.ops = &host_port_ops;
    h->port.opaque = h;
    h->port.speed = h->dev->speed;
    g_queue_init(&h->in_flight);
    g_queue_init(&h->completed);
    usb_device_attach(h->dev, &h->port);
    return h;
}

static void host_packet_free(gpointer p)
{
    USBPacket *pk = p;

    g_free(pk->data);
    g_free(pk);
}

void ccid_inproc_drain_completed(CCIDInprocHost *h)
{
    g_queue_clear_full(&h->completed, host_packet_free);
}

void ccid_inproc_forget_in_flight(CCIDInprocHost *h)
{
    g_queue_clear_full(&h->in_flight, host_packet_free);
}

void ccid_inproc_free(CCIDInprocHost *h)
{
    for (GList *l = h->in_flight.head; l; l = l->next) {
        usb_device_cancel_packet(h->dev, l->data);
    }
    g_queue_clear_full(&h->in_flight, host_packet_free);
    ccid_inproc_drain_completed(h);
    usb_device_detach(h->dev);
    device_destroy_all();
    g_free(h);
}

static USBPacket *host_packet_new(int pid, uint8_t ep, const uint8_t *data, size_t size)
{
    USBPacket *p = g_new0(USBPacket, 1);

    p->pid = pid;
    p->ep = ep;
    p->size = size;
    p->data = data ? g_memdup2(data, size) : g_malloc0(MAX(size, 1));
    return p;
}

/* Run a packet; track it if held, else record it as completed. */
static int host_submit(CCIDInprocHost *h, USBPacket *p)
{
    usb_device_handle_data(h->dev, p);
    if (p->status == USB_RET_ASYNC) {
        g_queue_push_tail(&h->in_flight, p);
    } else {
        g_queue_push_tail(&h->completed, p);
    }
    return p->status;
}

int ccid_inproc_bulk_out(CCIDInprocHost *h, const uint8_t *data, size_t len)
{
    return host_submit(h, host_packet_new(USB_TOKEN_OUT, CCID_INPROC_BULK_OUT, data, len));
}

USBPacket *ccid_inproc_bulk_in(CCIDInprocHost *h, size_t size)
{
    USBPacket *p = host_packet_new(USB_TOKEN_IN, CCID_INPROC_BULK_IN, NULL, size);

    host_submit(h, p);
    return p;
}

/* Take the oldest completed bulk-in packet, if any. */
static USBPacket *host_take_completed_in(CCIDInprocHost *h)
{
    for (GList *l = h->completed.head; l; l = l->next) {
        USBPacket *p = l->data;

        if (p->pid == USB_TOKEN_IN && p->ep == CCID_INPROC_BULK_IN) {
            g_queue_delete_link(&h->completed, l);
            return p;
        }
    }
    return NULL;
}

static bool host_bulk_in_waiting(CCIDInprocHost *h)
{
    for (GList *l = h->in_flight.head; l; l = l->next) {
        USBPacket *p = l->data;

        if (p->pid == USB_TOKEN_IN && p->ep == CCID_INPROC_BULK_IN) {
            return true;
        }
    }
    return false;
}

GByteArray *ccid_inproc_read_answer(CCIDInprocHost *h)
{
    USBPacket *p = host_take_completed_in(h);
    GByteArray *ans;

    if (!p && !host_bulk_in_waiting(h)) {
        ccid_inproc_bulk_in(h, CCID_INPROC_IN_SIZE);
        p = host_take_completed_in(h);
    }
    if (!p) {
        return NULL;
    }
    g_assert_cmpint(p->status, ==, USB_RET_SUCCESS);
    ans = g_byte_array_new();
    g_byte_array_append(ans, p->data, p->actual_length);
    host_packet_free(p);
    return ans;
}

int ccid_inproc_send(CCIDInprocHost *h, uint8_t type, uint8_t seq, const uint8_t specific[3],
                     const uint8_t *data, uint32_t len)
{
    g_autofree uint8_t *msg = g_malloc(CCID_HEADER_SIZE + len);
    CCIDHeader hdr = { .bMessageType = type, .dwLength = len, .bSlot = 0, .bSeq = seq };

    if (specific) {
        memcpy(hdr.specific, specific, 3);
    }
    ccid_header_write(msg, &hdr);
    if (len) {
        memcpy(msg + CCID_HEADER_SIZE, data, len);
    }
    return ccid_inproc_bulk_out(h, msg, CCID_HEADER_SIZE + len);
}

size_t ccid_inproc_interrupt(CCIDInprocHost *h, uint8_t *buf, size_t size)
{
    USBPacket p = { .pid = USB_TOKEN_IN, .ep = CCID_INPROC_INT_IN, .data = buf, .size = size };

    usb_device_handle_data(h->dev, &p);
    return p.status == USB_RET_SUCCESS ? p.actual_length : 0;
}

int ccid_inproc_control(CCIDInprocHost *h, uint8_t type, uint8_t req, uint16_t value,
                        uint16_t index, uint8_t *data, uint16_t length, size_t *actual)
{
    uint8_t setup[8] = { type, req, value & 0xff, value >> 8, index & 0xff, index >> 8,
                         length & 0xff, length >> 8 };
    USBPacket p = { .pid = (type & USB_DIR_IN) ? USB_TOKEN_IN : USB_TOKEN_OUT };

    usb_device_handle_control(h->dev, &p, setup, data);
    if (actual) {
        *actual = p.actual_length;
    }
    return p.status;
}
