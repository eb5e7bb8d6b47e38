/*
 * A USB/IP importer for tests (see usbip-host.h).
 */
#include "usbip-host.h"
#include "libqtest-vccid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UIH_ERROR g_quark_from_static_string("usbip-host")

struct UsbipHost {
    int fd;
    bool alive;
    UsbipStream *stream;
    bool protocol_error;

    /* Operation phase. */
    bool got_devlist;
    GArray *devices;             /* UihDevice */
    bool got_import;
    uint32_t import_status;
    UsbipDevice device;
    uint32_t devid;

    /* URB phase. */
    uint32_t next_seqnum;
    uint32_t number_of_packets;
    GHashTable *urbs;            /* seqnum -> UihUrb *, until freed */
    GHashTable *forgotten;       /* seqnums of freed URBs (direction as value + 1) */
    unsigned violations;
    uint32_t unlink_seqnum;      /* the CMD_UNLINK we wait for */
    bool unlink_done;
    int32_t unlink_status;
};

/* ---- client-role callbacks ---- */

static void uih_on_rep_devlist(void *o, uint32_t status, const UsbipDevice *devs, uint32_t ndev)
{
    UsbipHost *h = o;

    g_assert_cmpuint(status, ==, USBIP_ST_OK);
    for (uint32_t i = 0; i < ndev; i++) {
        UihDevice d = { .dev = devs[i] };

        g_assert_cmpuint(devs[i].bNumInterfaces, <=, G_N_ELEMENTS(d.ifs));
        memcpy(d.ifs, devs[i].interfaces, devs[i].bNumInterfaces * sizeof(UsbipInterface));
        g_array_append_val(h->devices, d);
    }
    for (guint i = 0; i < h->devices->len; i++) {
        UihDevice *d = &g_array_index(h->devices, UihDevice, i);

        d->dev.interfaces = d->ifs;
    }
    h->got_devlist = true;
}

static void uih_on_rep_import(void *o, uint32_t status, const UsbipDevice *dev)
{
    UsbipHost *h = o;

    h->got_import = true;
    h->import_status = status;
    if (dev) {
        h->device = *dev;
        h->devid = dev->busnum << 16 | dev->devnum;
    }
}

static int uih_on_direction(void *o, uint32_t seqnum)
{
    UsbipHost *h = o;
    UihUrb *u = g_hash_table_lookup(h->urbs, GUINT_TO_POINTER(seqnum));
    gpointer dir;

    if (u) {
        return u->in ? USBIP_DIR_IN : USBIP_DIR_OUT;
    }
    /* Known but forgotten: parse it, then count it as a violation. */
    dir = g_hash_table_lookup(h->forgotten, GUINT_TO_POINTER(seqnum));
    return dir ? (int)GPOINTER_TO_UINT(dir) - 1 : -1;
}

static void uih_on_ret_submit(void *o, const UsbipRetSubmit *ret, const uint8_t *data)
{
    UsbipHost *h = o;
    UihUrb *u = g_hash_table_lookup(h->urbs, GUINT_TO_POINTER(ret->h.seqnum));

    /* Linux's stub leaves these 0 in answers; vhci ignores them. */
    g_assert_cmpuint(ret->h.devid, ==, 0);
    g_assert_cmpuint(ret->h.direction, ==, 0);
    g_assert_cmpuint(ret->h.ep, ==, 0);
    if (!u || u->done || u->unlinked) {
        g_test_message("RET_SUBMIT seqnum %u after its URB was answered or unlinked",
                       ret->h.seqnum);
        h->violations++;
        if (u) {
            u->completions++;
        }
        return;
    }
    u->done = true;
    u->completions++;
    u->status = ret->status;
    u->actual_length = ret->actual_length;
    u->number_of_packets = ret->number_of_packets;
    if (u->in) {
        g_assert_cmpuint(ret->actual_length, <=, u->length);
        if (data) {
            g_byte_array_append(u->data, data, ret->actual_length);
        }
    }
}

static void uih_on_ret_unlink(void *o, const UsbipHeader *hdr, int32_t status)
{
    UsbipHost *h = o;

    g_assert_cmpuint(hdr->seqnum, ==, h->unlink_seqnum);
    h->unlink_done = true;
    h->unlink_status = status;
}

static void uih_on_error(void *o, UsbipError err, const char *detail)
{
    UsbipHost *h = o;

    g_test_message("malformed USB/IP from the server: %s (%s)", usbip_error_str(err), detail);
    h->protocol_error = true;
}

static const UsbipClientOps uih_ops = {
    .rep_devlist = uih_on_rep_devlist,
    .rep_import = uih_on_rep_import,
    .submit_direction = uih_on_direction,
    .ret_submit = uih_on_ret_submit,
    .ret_unlink = uih_on_ret_unlink,
};

/* ---- connection ---- */

int uih_tcp_connect(uint16_t port, int timeout_ms)
{
    int fd = qtest_tcp_connect_within(port, timeout_ms);
    int one = 1;

    if (fd >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

static UsbipHost *uih_new(int fd)
{
    UsbipHost *h = g_new0(UsbipHost, 1);

    h->fd = fd;
    h->alive = true;
    h->stream = usbip_client_stream_new(&uih_ops, uih_on_error, h);
    h->devices = g_array_new(FALSE, TRUE, sizeof(UihDevice));
    h->urbs = g_hash_table_new(g_direct_hash, g_direct_equal);
    h->forgotten = g_hash_table_new(g_direct_hash, g_direct_equal);
    h->next_seqnum = 1;
    return h;
}

void uih_free(UsbipHost *h)
{
    GHashTableIter iter;
    gpointer value;

    if (!h) {
        return;
    }
    g_hash_table_iter_init(&iter, h->urbs);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        UihUrb *u = value;

        g_byte_array_unref(u->data);
        g_free(u);
    }
    g_hash_table_unref(h->urbs);
    g_hash_table_unref(h->forgotten);
    g_array_unref(h->devices);
    usbip_stream_free(h->stream);
    if (h->fd >= 0) {
        close(h->fd);
    }
    g_free(h);
}

void uih_send_raw(UsbipHost *h, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t n = send(h->fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            /* The server closed on us; reads will tell. */
            return;
        }
        p += n;
        len -= n;
    }
}

static void uih_send(UsbipHost *h, GByteArray *msg)
{
    uih_send_raw(h, msg->data, msg->len);
}

bool uih_iterate(UsbipHost *h, int timeout_ms)
{
    uint8_t buf[65536];
    ssize_t n;

    if (!h->alive) {
        return false;
    }
    if (!qtest_poll_fd(h->fd, POLLIN, timeout_ms)) {
        return true;
    }
    do {
        n = recv(h->fd, buf, sizeof(buf), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        h->alive = false;
        return false;
    }
    usbip_stream_feed(h->stream, buf, n);
    g_assert_false(h->protocol_error);
    return true;
}

bool uih_alive(const UsbipHost *h)
{
    return h->alive;
}

/* Run until *flag or the timeout; returns *flag. */
static bool uih_run_until(UsbipHost *h, const bool *flag, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (!*flag) {
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;

        if (left <= 0 || !uih_iterate(h, (int)left)) {
            break;
        }
    }
    return *flag;
}

bool uih_wait_closed(UsbipHost *h, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (h->alive) {
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;

        if (left <= 0) {
            break;
        }
        uih_iterate(h, (int)left);
    }
    return !h->alive;
}

/* A connection to port that sent the operation request code and had its reply; NULL if not. */
static UsbipHost *uih_operation(uint16_t port, uint16_t code, const char *busid, GError **errp)
{
    g_autoptr(GByteArray) req = g_byte_array_new();
    int fd = uih_tcp_connect(port, UIH_TIMEOUT_MS);
    bool devlist = code == USBIP_OP_REQ_DEVLIST;
    UsbipHost *h;

    if (fd < 0) {
        g_set_error(errp, UIH_ERROR, 0, "cannot connect to port %u", port);
        return NULL;
    }
    h = uih_new(fd);
    usbip_encode_op_request(req, code, busid);
    uih_send(h, req);
    if (!uih_run_until(h, devlist ? &h->got_devlist : &h->got_import, UIH_TIMEOUT_MS)) {
        g_set_error(errp, UIH_ERROR, 0, devlist ? "no OP_REP_DEVLIST" : "no OP_REP_IMPORT");
        uih_free(h);
        return NULL;
    }
    return h;
}

GArray *uih_devlist(uint16_t port, GError **errp)
{
    UsbipHost *h = uih_operation(port, USBIP_OP_REQ_DEVLIST, NULL, errp);
    GArray *devs;

    if (!h) {
        return NULL;
    }
    /* usbipd answers one operation per connection, then closes. */
    g_assert_true(uih_wait_closed(h, UIH_TIMEOUT_MS));
    devs = g_array_ref(h->devices);
    uih_free(h);
    return devs;
}

UsbipHost *uih_import(uint16_t port, const char *busid, uint32_t *status, GError **errp)
{
    UsbipHost *h = uih_operation(port, USBIP_OP_REQ_IMPORT, busid, errp);

    if (!h) {
        return NULL;
    }
    *status = h->import_status;
    if (h->import_status != USBIP_ST_OK) {
        g_assert_true(uih_wait_closed(h, UIH_TIMEOUT_MS));
        uih_free(h);
        return NULL;
    }
    g_assert_true(usbip_stream_in_urb_phase(h->stream));
    return h;
}

const UsbipDevice *uih_device(const UsbipHost *h)
{
    return &h->device;
}

uint32_t uih_devid(const UsbipHost *h)
{
    return h->devid;
}

int uih_fd(const UsbipHost *h)
{
    return h->fd;
}

/* ---- URBs ---- */

void uih_set_number_of_packets(UsbipHost *h, uint32_t n)
{
    h->number_of_packets = n;
}

UihUrb *uih_submit(UsbipHost *h, uint8_t ep, bool in, const uint8_t setup[8],
                   const uint8_t *data, uint32_t length)
{
    g_autoptr(GByteArray) msg = g_byte_array_new();
    UihUrb *u = g_new0(UihUrb, 1);
    UsbipSubmit cmd = {
        .h = { .seqnum = h->next_seqnum++, .devid = h->devid,
               .direction = in ? USBIP_DIR_IN : USBIP_DIR_OUT, .ep = ep },
        .transfer_buffer_length = length,
        .number_of_packets = h->number_of_packets,
    };

    if (setup) {
        memcpy(cmd.setup, setup, 8);
    }
    u->seqnum = cmd.h.seqnum;
    u->ep = ep;
    u->in = in;
    u->length = length;
    u->data = g_byte_array_new();
    g_hash_table_insert(h->urbs, GUINT_TO_POINTER(u->seqnum), u);
    usbip_encode_cmd_submit(msg, &cmd, data);
    uih_send(h, msg);
    return u;
}

bool uih_wait(UsbipHost *h, UihUrb *u, int timeout_ms)
{
    return uih_run_until(h, &u->done, timeout_ms);
}

int32_t uih_unlink(UsbipHost *h, UihUrb *u, int timeout_ms)
{
    g_autoptr(GByteArray) msg = g_byte_array_new();
    UsbipHeader hdr = { .seqnum = h->next_seqnum++, .devid = h->devid };

    h->unlink_seqnum = hdr.seqnum;
    h->unlink_done = false;
    usbip_encode_cmd_unlink(msg, &hdr, u->seqnum);
    uih_send(h, msg);
    g_assert_true(uih_run_until(h, &h->unlink_done, timeout_ms));
    /* A URB the server still had is gone: it must never be answered now. */
    if (h->unlink_status != 0 && !u->done) {
        u->unlinked = true;
    }
    return h->unlink_status;
}

void uih_urb_free(UsbipHost *h, UihUrb *u)
{
    g_hash_table_remove(h->urbs, GUINT_TO_POINTER(u->seqnum));
    g_hash_table_insert(h->forgotten, GUINT_TO_POINTER(u->seqnum),
                        GUINT_TO_POINTER((u->in ? USBIP_DIR_IN : USBIP_DIR_OUT) + 1));
    g_byte_array_unref(u->data);
    g_free(u);
}

unsigned uih_violations(const UsbipHost *h)
{
    return h->violations;
}

int32_t uih_control(UsbipHost *h, uint8_t type, uint8_t request, uint16_t value, uint16_t index,
                    uint8_t *data, uint16_t length, uint32_t *actual)
{
    uint8_t setup[8] = { type, request, value & 0xff, value >> 8, index & 0xff, index >> 8,
                         length & 0xff, length >> 8 };
    bool in = type & 0x80;
    UihUrb *u = uih_submit(h, 0, in, setup, in ? NULL : data, length);
    int32_t status;

    g_assert_true(uih_wait(h, u, UIH_TIMEOUT_MS));
    status = u->status;
    if (in && data && u->data->len) {
        memcpy(data, u->data->data, MIN(u->data->len, length));
    }
    if (actual) {
        *actual = u->actual_length;
    }
    uih_urb_free(h, u);
    return status;
}

int32_t uih_bulk_out(UsbipHost *h, uint8_t ep, const uint8_t *data, uint32_t length)
{
    UihUrb *u = uih_submit(h, ep, false, NULL, data, length);
    int32_t status;

    g_assert_true(uih_wait(h, u, UIH_TIMEOUT_MS));
    status = u->status;
    if (status == 0) {
        g_assert_cmpuint(u->actual_length, ==, length);
    }
    uih_urb_free(h, u);
    return status;
}

int32_t uih_bulk_in(UsbipHost *h, uint8_t ep, uint32_t length, GByteArray **out)
{
    UihUrb *u = uih_submit(h, ep, true, NULL, NULL, length);
    int32_t status;

    g_assert_true(uih_wait(h, u, UIH_TIMEOUT_MS));
    status = u->status;
    *out = g_byte_array_ref(u->data);
    uih_urb_free(h, u);
    return status;
}
