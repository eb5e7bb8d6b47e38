/*
 * A USB host over usbredir, for tests (see usbredir-host.h).
 */
#include "usbredir-host.h"
#include "libqtest-vccid.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib-unix.h>
#include <usbredirfilter.h>

#define URH_VERSION "vccid-qtest usb host 1"
#define URH_EP_SLOTS 32

/* A usbredir request answered by a status packet with its id: sent, answered, what it said. */
typedef struct UrhRequest {
    uint64_t id;
    bool done;
    uint8_t status;
    uint8_t value;           /* the configuration or alt setting, where the answer has one */
} UrhRequest;

struct UsbredirHost {
    struct usbredirparser *parser;
    int fd;
    bool alive;

    bool hello;
    char peer_version[64];
    bool connected;
    bool have_interface_info;
    bool have_ep_info;
    unsigned connects;
    unsigned disconnects;
    struct usb_redir_device_connect_header device;
    struct usb_redir_interface_info_header interfaces;
    struct usb_redir_ep_info_header eps;

    uint64_t next_id;
    GHashTable *transfers;          /* id -> UrhTransfer * (bulk and control) */
    unsigned stray;

    /* The one outstanding usbredir control request of each kind. */
    UrhRequest config;
    UrhRequest irq;
    UrhRequest alt;

    GQueue interrupts[URH_EP_SLOTS]; /* GByteArray *, per usbredir ep index */
};

static void urh_log(void *priv, int level, const char *msg)
{
    /*
     * The parser reports protocol violations by the peer at error level;
     * the device must never commit one, so that fails the test.
     */
    if (level == usbredirparser_error) {
        g_error("usbredirparser: %s", msg);
    }
    if (level <= usbredirparser_info) {
        g_test_message("usbredirparser: %s", msg);
    }
}

static int urh_read(void *priv, uint8_t *data, int count)
{
    UsbredirHost *h = priv;
    ssize_t n;

    do {
        n = read(h->fd, data, count);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return 0;
    }
    if (n <= 0) {
        h->alive = false;
        return -1;
    }
    return n;
}

static int urh_write(void *priv, uint8_t *data, int count)
{
    UsbredirHost *h = priv;
    ssize_t n;

    do {
        n = send(h->fd, data, count, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return 0;
    }
    if (n < 0) {
        h->alive = false;
        return -1;
    }
    return n;
}

static void urh_on_hello(void *priv, struct usb_redir_hello_header *hello)
{
    UsbredirHost *h = priv;

    h->hello = true;
    memcpy(h->peer_version, hello->version, sizeof(h->peer_version));
    h->peer_version[sizeof(h->peer_version) - 1] = '\0';

    /* Like QEMU: tell a filtering peer that we accept any device. */
    if (usbredirparser_peer_has_cap(h->parser, usb_redir_cap_filter)) {
        static const struct usbredirfilter_rule allow_all = {
            .device_class = -1, .vendor_id = -1, .product_id = -1,
            .device_version_bcd = -1, .allow = 1,
        };
        usbredirparser_send_filter_filter(h->parser, &allow_all, 1);
    }
}

static void urh_on_device_connect(void *priv, struct usb_redir_device_connect_header *dc)
{
    UsbredirHost *h = priv;

    h->device = *dc;
    h->connected = true;
    h->connects++;
}

static void urh_on_device_disconnect(void *priv)
{
    UsbredirHost *h = priv;

    h->connected = false;
    h->have_interface_info = false;
    h->have_ep_info = false;
    h->disconnects++;
    /* The parser itself answers with device_disconnect_ack. */
}

static void urh_on_interface_info(void *priv, struct usb_redir_interface_info_header *info)
{
    UsbredirHost *h = priv;

    h->interfaces = *info;
    h->have_interface_info = true;
}

static void urh_on_ep_info(void *priv, struct usb_redir_ep_info_header *info)
{
    UsbredirHost *h = priv;

    h->eps = *info;
    h->have_ep_info = true;
}

/* Record the answer to r if id is r's and r has none yet; false if it is not r's. */
static bool urh_request_answered(UrhRequest *r, uint64_t id, uint8_t status, uint8_t value)
{
    if (id != r->id || r->done) {
        return false;
    }
    r->done = true;
    r->status = status;
    r->value = value;
    return true;
}

static void urh_on_configuration_status(void *priv, uint64_t id,
                                        struct usb_redir_configuration_status_header *st)
{
    UsbredirHost *h = priv;

    if (!urh_request_answered(&h->config, id, st->status, st->configuration)) {
        h->stray++;
    }
}

static void urh_on_alt_setting_status(void *priv, uint64_t id,
                                      struct usb_redir_alt_setting_status_header *st)
{
    UsbredirHost *h = priv;

    if (!urh_request_answered(&h->alt, id, st->status, st->alt)) {
        h->stray++;
    }
}

static void urh_on_interrupt_receiving_status(void *priv, uint64_t id,
                                              struct usb_redir_interrupt_receiving_status_header *st)
{
    UsbredirHost *h = priv;

    /* Unsolicited status (id 0) reports an error on a running endpoint. */
    if (!urh_request_answered(&h->irq, id, st->status, 0) && st->status != usb_redir_success) {
        g_test_message("interrupt endpoint %02x stopped: status %u", st->endpoint, st->status);
    }
}

static void urh_complete(UsbredirHost *h, uint64_t id, uint8_t status, uint8_t *data,
                         int data_len)
{
    UrhTransfer *t = g_hash_table_lookup(h->transfers, &id);

    if (!t) {
        h->stray++;
        g_test_message("completion for unknown packet id %" G_GUINT64_FORMAT, id);
    } else {
        t->completions++;
        if (t->done) {
            h->stray++;
            g_test_message("second completion for packet id %" G_GUINT64_FORMAT, id);
        } else {
            t->done = true;
            t->status = status;
            if (data_len > 0) {
                g_byte_array_append(t->data, data, data_len);
            }
        }
    }
    if (data) {
        usbredirparser_free_packet_data(h->parser, data);
    }
}

static void urh_on_control_packet(void *priv, uint64_t id,
                                  struct usb_redir_control_packet_header *hdr,
                                  uint8_t *data, int data_len)
{
    urh_complete(priv, id, hdr->status, data, data_len);
}

static void urh_on_bulk_packet(void *priv, uint64_t id,
                               struct usb_redir_bulk_packet_header *hdr,
                               uint8_t *data, int data_len)
{
    urh_complete(priv, id, hdr->status, data, data_len);
}

static void urh_on_interrupt_packet(void *priv, uint64_t id,
                                    struct usb_redir_interrupt_packet_header *hdr,
                                    uint8_t *data, int data_len)
{
    UsbredirHost *h = priv;
    GByteArray *pkt = g_byte_array_new();

    if (hdr->status == usb_redir_success && data_len > 0) {
        g_byte_array_append(pkt, data, data_len);
    }
    g_queue_push_tail(&h->interrupts[urh_ep_index(hdr->endpoint)], pkt);
    if (data) {
        usbredirparser_free_packet_data(h->parser, data);
    }
}

static void urh_transfer_free(gpointer p)
{
    UrhTransfer *t = p;

    g_byte_array_unref(t->data);
    g_free(t);
}

static void urh_setup_parser(UsbredirHost *h)
{
    uint32_t caps[USB_REDIR_CAPS_SIZE] = { 0 };
    struct usbredirparser *p = usbredirparser_create();

    g_assert_nonnull(p);
    p->priv = h;
    p->log_func = urh_log;
    p->read_func = urh_read;
    p->write_func = urh_write;
    p->hello_func = urh_on_hello;
    p->device_connect_func = urh_on_device_connect;
    p->device_disconnect_func = urh_on_device_disconnect;
    p->interface_info_func = urh_on_interface_info;
    p->ep_info_func = urh_on_ep_info;
    p->configuration_status_func = urh_on_configuration_status;
    p->interrupt_receiving_status_func = urh_on_interrupt_receiving_status;
    p->alt_setting_status_func = urh_on_alt_setting_status;
    p->control_packet_func = urh_on_control_packet;
    p->bulk_packet_func = urh_on_bulk_packet;
    p->interrupt_packet_func = urh_on_interrupt_packet;

    urh_set_qemu_caps(caps);
    /* No usbredirparser_fl_usb_host: we are the usb-guest side. */
    usbredirparser_init(p, URH_VERSION, caps, USB_REDIR_CAPS_SIZE, 0);
    h->parser = p;
}

/* A nonblocking stream to the usbredir export, or -1 and errp. */
static int urh_connect_fd(int fd, const char *where, GError **errp)
{
    int err = errno;

    if (fd < 0) {
        g_set_error(errp, G_FILE_ERROR, g_file_error_from_errno(err), "connect(%s): %s", where,
                    g_strerror(err));
        return -1;
    }
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    return fd;
}

static int connect_unix(const char *path, int timeout_ms, GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    return urh_connect_fd(qtest_connect_within((struct sockaddr *)&sa, sizeof(sa), timeout_ms),
                          path, errp);
}

static UsbredirHost *urh_new(int fd)
{
    UsbredirHost *h = g_new0(UsbredirHost, 1);

    h->fd = fd;
    h->alive = true;
    h->next_id = 1;
    h->transfers = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
                                         urh_transfer_free);
    for (int i = 0; i < URH_EP_SLOTS; i++) {
        g_queue_init(&h->interrupts[i]);
    }
    urh_setup_parser(h);
    return h;
}

UsbredirHost *urh_connect_raw(const char *path, int timeout_ms, GError **errp)
{
    int fd = connect_unix(path, timeout_ms, errp);

    return fd < 0 ? NULL : urh_new(fd);
}

static int connect_tcp(uint16_t port, int timeout_ms, GError **errp)
{
    g_autofree char *where = g_strdup_printf("127.0.0.1:%u", port);

    return urh_connect_fd(qtest_tcp_connect_within(port, timeout_ms), where, errp);
}

static bool device_ready(UsbredirHost *h, void *opaque)
{
    return h->hello && h->connected && h->have_interface_info && h->have_ep_info;
}

/* Wait for the device on a fresh connection; frees h on failure. */
static UsbredirHost *urh_wait_ready(UsbredirHost *h, int timeout_ms, GError **errp)
{
    if (!urh_run_until(h, device_ready, NULL, timeout_ms)) {
        g_set_error(errp, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                    "no device announced within %d ms (hello %d, connect %d, "
                    "interface_info %d, ep_info %d, peer %s)", timeout_ms, h->hello,
                    h->connected, h->have_interface_info, h->have_ep_info,
                    h->alive ? "alive" : "gone");
        urh_free(h);
        return NULL;
    }
    return h;
}

UsbredirHost *urh_connect(const char *path, int timeout_ms, GError **errp)
{
    UsbredirHost *h = urh_connect_raw(path, timeout_ms, errp);

    return h ? urh_wait_ready(h, timeout_ms, errp) : NULL;
}

UsbredirHost *urh_connect_tcp(uint16_t port, int timeout_ms, GError **errp)
{
    int fd = connect_tcp(port, timeout_ms, errp);

    return fd < 0 ? NULL : urh_wait_ready(urh_new(fd), timeout_ms, errp);
}

UsbredirHost *urh_new_from_fd(int fd, int timeout_ms, GError **errp)
{
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    return urh_wait_ready(urh_new(fd), timeout_ms, errp);
}

int urh_fd(const UsbredirHost *h)
{
    return h->fd;
}

void urh_free(UsbredirHost *h)
{
    if (!h) {
        return;
    }
    close(h->fd);
    usbredirparser_destroy(h->parser);
    g_hash_table_destroy(h->transfers);
    for (int i = 0; i < URH_EP_SLOTS; i++) {
        g_queue_clear_full(&h->interrupts[i], (GDestroyNotify)g_byte_array_unref);
    }
    g_free(h);
}

static void urh_flush(UsbredirHost *h)
{
    while (h->alive && usbredirparser_has_data_to_write(h->parser)) {
        if (usbredirparser_do_write(h->parser) < 0) {
            h->alive = false;
            return;
        }
        if (usbredirparser_has_data_to_write(h->parser)) {
            /* Socket buffer full: let poll() tell us when to go on. */
            return;
        }
    }
}

bool urh_send_only(UsbredirHost *h, int timeout_ms)
{
    urh_flush(h);
    if (!h->alive || !usbredirparser_has_data_to_write(h->parser)) {
        return false;
    }
    if (!qtest_poll_fd(h->fd, POLLOUT, timeout_ms)) {
        return false;   /* the device took nothing for timeout_ms */
    }
    urh_flush(h);
    return h->alive;
}

bool urh_iterate(UsbredirHost *h, int timeout_ms)
{
    short events = POLLIN;
    int r;

    urh_flush(h);
    if (!h->alive) {
        return false;
    }
    if (usbredirparser_has_data_to_write(h->parser)) {
        events |= POLLOUT;
    }
    if (qtest_poll_fd(h->fd, events, timeout_ms) & (POLLIN | POLLHUP | POLLERR)) {
        r = usbredirparser_do_read(h->parser);
        if (r == usbredirparser_read_parse_error) {
            g_error("usbredir: the device sent a packet the parser rejected");
        }
        if (r == usbredirparser_read_io_error) {
            h->alive = false;
        }
    }
    urh_flush(h);
    return h->alive;
}

bool urh_run_until(UsbredirHost *h, bool (*cond)(UsbredirHost *h, void *opaque),
                   void *opaque, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (!cond(h, opaque)) {
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;

        if (left <= 0 || !h->alive) {
            return cond(h, opaque);
        }
        urh_iterate(h, MIN(left, 100));
    }
    return true;
}

static bool never(UsbredirHost *h, void *opaque)
{
    return false;
}

void urh_idle(UsbredirHost *h, int ms)
{
    urh_run_until(h, never, NULL, ms);
}

bool urh_peer_alive(const UsbredirHost *h)
{
    return h->alive;
}

bool urh_got_hello(const UsbredirHost *h)
{
    return h->hello;
}

const char *urh_peer_version(const UsbredirHost *h)
{
    return h->peer_version;
}

bool urh_peer_has_cap(UsbredirHost *h, int cap)
{
    return usbredirparser_peer_has_cap(h->parser, cap);
}

bool urh_device_connected(const UsbredirHost *h)
{
    return h->connected;
}

unsigned urh_device_connect_count(const UsbredirHost *h)
{
    return h->connects;
}

unsigned urh_device_disconnect_count(const UsbredirHost *h)
{
    return h->disconnects;
}

const struct usb_redir_device_connect_header *urh_device_info(const UsbredirHost *h)
{
    return &h->device;
}

const struct usb_redir_interface_info_header *urh_interface_info(const UsbredirHost *h)
{
    return &h->interfaces;
}

const struct usb_redir_ep_info_header *urh_ep_info(const UsbredirHost *h)
{
    return &h->eps;
}

static UrhTransfer *urh_new_transfer(UsbredirHost *h, uint8_t ep, uint32_t length)
{
    UrhTransfer *t = g_new0(UrhTransfer, 1);

    t->id = h->next_id++;
    t->ep = ep;
    t->length = length;
    t->data = g_byte_array_new();
    g_hash_table_insert(h->transfers, &t->id, t);
    return t;
}

static bool transfer_done(UsbredirHost *h, void *opaque)
{
    return ((UrhTransfer *)opaque)->done;
}

bool urh_wait(UsbredirHost *h, UrhTransfer *t, int timeout_ms)
{
    return urh_run_until(h, transfer_done, t, timeout_ms);
}

void urh_transfer_release(UsbredirHost *h, UrhTransfer *t)
{
    g_hash_table_remove(h->transfers, &t->id);
}

int urh_control(UsbredirHost *h, uint8_t requesttype, uint8_t request, uint16_t value,
                uint16_t index, uint8_t *data, uint16_t length, int *actual,
                int timeout_ms)
{
    struct usb_redir_control_packet_header hdr = {
        .endpoint = requesttype & 0x80,
        .request = request,
        .requesttype = requesttype,
        .value = value,
        .index = index,
        .length = length,
    };
    bool in = requesttype & 0x80;
    UrhTransfer *t = urh_new_transfer(h, hdr.endpoint, length);
    int status;

    usbredirparser_send_control_packet(h->parser, t->id, &hdr, in ? NULL : data,
                                       in ? 0 : length);
    if (!urh_wait(h, t, timeout_ms)) {
        g_error("control request %02x/%02x value %04x: no answer within %d ms%s",
                requesttype, request, value, timeout_ms,
                h->alive ? "" : " (the device closed the connection)");
    }
    status = t->status;
    if (in) {
        g_assert_cmpuint(t->data->len, <=, length);
        if (t->data->len) {
            memcpy(data, t->data->data, t->data->len);
        }
    }
    if (actual) {
        *actual = in ? (int)t->data->len : length;
    }
    urh_transfer_release(h, t);
    return status;
}

GByteArray *urh_get_descriptor(UsbredirHost *h, uint8_t type, uint8_t index,
                               uint16_t langid, uint16_t length)
{
    g_autofree uint8_t *buf = g_malloc0(length);
    int actual = 0;
    int status = urh_control(h, 0x80, 0x06 /* GET_DESCRIPTOR */, type << 8 | index,
                             langid, buf, length, &actual, URH_TIMEOUT_MS);

    if (status != usb_redir_success) {
        return NULL;
    }
    return g_byte_array_append(g_byte_array_new(), buf, actual);
}

static bool request_done(UsbredirHost *h, void *opaque)
{
    return ((UrhRequest *)opaque)->done;
}

/* r is sent next, with a new id (returned). */
static uint64_t urh_request_start(UsbredirHost *h, UrhRequest *r)
{
    r->id = h->next_id++;
    r->done = false;
    return r->id;
}

/* Wait for r's status answer; what names the request (and its answer) if none comes. */
static void urh_request_wait(UsbredirHost *h, UrhRequest *r, const char *what)
{
    if (!urh_run_until(h, request_done, r, URH_TIMEOUT_MS)) {
        g_error("%s: no status within %d ms", what, URH_TIMEOUT_MS);
    }
}

static int urh_config_request(UsbredirHost *h, bool set, uint8_t config, uint8_t *out)
{
    uint64_t id = urh_request_start(h, &h->config);

    if (set) {
        struct usb_redir_set_configuration_header hdr = { .configuration = config };
        usbredirparser_send_set_configuration(h->parser, id, &hdr);
    } else {
        usbredirparser_send_get_configuration(h->parser, id);
    }
    urh_request_wait(h, &h->config, set ? "set_configuration" : "get_configuration");
    if (out) {
        *out = h->config.value;
    }
    return h->config.status;
}

int urh_set_configuration(UsbredirHost *h, uint8_t config, uint8_t *status_config)
{
    return urh_config_request(h, true, config, status_config);
}

int urh_get_configuration(UsbredirHost *h, uint8_t *config)
{
    return urh_config_request(h, false, 0, config);
}

static int urh_alt_request(UsbredirHost *h, bool set, uint8_t iface, uint8_t alt,
                           uint8_t *out)
{
    uint64_t id = urh_request_start(h, &h->alt);

    if (set) {
        struct usb_redir_set_alt_setting_header hdr = { .interface = iface, .alt = alt };
        usbredirparser_send_set_alt_setting(h->parser, id, &hdr);
    } else {
        struct usb_redir_get_alt_setting_header hdr = { .interface = iface };
        usbredirparser_send_get_alt_setting(h->parser, id, &hdr);
    }
    urh_request_wait(h, &h->alt, set ? "set_alt_setting" : "get_alt_setting");
    if (out) {
        *out = h->alt.value;
    }
    return h->alt.status;
}

int urh_set_alt_setting(UsbredirHost *h, uint8_t iface, uint8_t alt)
{
    return urh_alt_request(h, true, iface, alt, NULL);
}

int urh_get_alt_setting(UsbredirHost *h, uint8_t iface, uint8_t *alt)
{
    return urh_alt_request(h, false, iface, 0, alt);
}

UrhTransfer *urh_bulk_submit(UsbredirHost *h, uint8_t ep, const uint8_t *data,
                             uint32_t length)
{
    bool in = ep & 0x80;
    struct usb_redir_bulk_packet_header hdr = {
        .endpoint = ep,
        .length = length & 0xffff,
        .length_high = length >> 16,
    };
    UrhTransfer *t = urh_new_transfer(h, ep, length);

    usbredirparser_send_bulk_packet(h->parser, t->id, &hdr, in ? NULL : (uint8_t *)data,
                                    in ? 0 : length);
    urh_flush(h);
    return t;
}

void urh_cancel(UsbredirHost *h, UrhTransfer *t)
{
    usbredirparser_send_cancel_data_packet(h->parser, t->id);
    urh_flush(h);
}

/* A bulk transfer submitted and completed within timeout_ms, or the test fails. */
static UrhTransfer *urh_bulk_complete(UsbredirHost *h, uint8_t ep, const uint8_t *data,
                                      uint32_t length, int timeout_ms)
{
    UrhTransfer *t = urh_bulk_submit(h, ep, data, length);
    bool in = ep & 0x80;

    if (!urh_wait(h, t, timeout_ms)) {
        g_error("bulk-%s of %u bytes %s ep %02x: no completion within %d ms", in ? "in" : "out",
                length, in ? "from" : "to", ep, timeout_ms);
    }
    return t;
}

int urh_bulk_out(UsbredirHost *h, uint8_t ep, const uint8_t *data, uint32_t length,
                 int timeout_ms)
{
    UrhTransfer *t = urh_bulk_complete(h, ep, data, length, timeout_ms);
    int status = t->status;

    urh_transfer_release(h, t);
    return status;
}

int urh_bulk_in(UsbredirHost *h, uint8_t ep, uint32_t length, GByteArray **out,
                int timeout_ms)
{
    UrhTransfer *t = urh_bulk_complete(h, ep, NULL, length, timeout_ms);
    int status = t->status;

    g_assert_cmpuint(t->data->len, <=, length);
    *out = g_byte_array_ref(t->data);
    urh_transfer_release(h, t);
    return status;
}

unsigned urh_stray_completions(const UsbredirHost *h)
{
    return h->stray;
}

static int urh_interrupt_request(UsbredirHost *h, bool start, uint8_t ep)
{
    uint64_t id = urh_request_start(h, &h->irq);

    if (start) {
        struct usb_redir_start_interrupt_receiving_header hdr = { .endpoint = ep };
        usbredirparser_send_start_interrupt_receiving(h->parser, id, &hdr);
    } else {
        struct usb_redir_stop_interrupt_receiving_header hdr = { .endpoint = ep };
        usbredirparser_send_stop_interrupt_receiving(h->parser, id, &hdr);
    }
    urh_request_wait(h, &h->irq, start ? "start_interrupt_receiving" : "stop_interrupt_receiving");
    return h->irq.status;
}

int urh_start_interrupt_receiving(UsbredirHost *h, uint8_t ep)
{
    return urh_interrupt_request(h, true, ep);
}

int urh_stop_interrupt_receiving(UsbredirHost *h, uint8_t ep)
{
    return urh_interrupt_request(h, false, ep);
}

static bool interrupt_arrived(UsbredirHost *h, void *opaque)
{
    return !g_queue_is_empty(opaque);
}

GByteArray *urh_wait_interrupt(UsbredirHost *h, uint8_t ep, int timeout_ms)
{
    GQueue *q = &h->interrupts[urh_ep_index(ep)];

    urh_run_until(h, interrupt_arrived, q, timeout_ms);
    return g_queue_pop_head(q);
}

unsigned urh_interrupt_pending(const UsbredirHost *h)
{
    unsigned n = 0;

    for (int i = 0; i < URH_EP_SLOTS; i++) {
        n += g_queue_get_length((GQueue *)&h->interrupts[i]);
    }
    return n;
}

void urh_reset(UsbredirHost *h)
{
    usbredirparser_send_reset(h->parser);
    urh_flush(h);
}

bool urh_wait_device(UsbredirHost *h, int timeout_ms)
{
    return urh_run_until(h, device_ready, NULL, timeout_ms);
}
