/*
 * A USB host over usbredir, for tests: the role QEMU's usb-redir device
 * plays (libusbredirparser without usbredirparser_fl_usb_host). It connects
 * to a usbredir server socket, learns the device it announces and sends it
 * control, bulk and interrupt traffic.
 *
 * Everything is driven by a poll() loop inside the blocking helpers; every
 * wait has a timeout, so a device that never answers fails a test instead
 * of hanging it.
 */
#ifndef USBREDIR_HOST_H
#define USBREDIR_HOST_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <usbredirparser.h>

/* Default for waits: generous, since ASan builds are slow. */
#define URH_TIMEOUT_MS 10000

typedef struct UsbredirHost UsbredirHost;

/* The capabilities QEMU's usb-redir announces, set in caps. */
static inline void urh_set_qemu_caps(uint32_t caps[USB_REDIR_CAPS_SIZE])
{
    static const int qemu_caps[] = {
        usb_redir_cap_connect_device_version, usb_redir_cap_filter,
        usb_redir_cap_device_disconnect_ack, usb_redir_cap_ep_info_max_packet_size,
        usb_redir_cap_64bits_ids, usb_redir_cap_32bits_bulk_length,
    };

    for (size_t i = 0; i < G_N_ELEMENTS(qemu_caps); i++) {
        usbredirparser_caps_set_cap(caps, qemu_caps[i]);
    }
}

/* A bulk or interrupt transfer the host submitted, and its completion. */
typedef struct UrhTransfer {
    uint64_t id;
    uint8_t ep;              /* with direction bit */
    uint32_t length;         /* requested (IN) or sent (OUT) */
    bool done;
    uint8_t status;          /* usb_redir_success, ... */
    GByteArray *data;        /* IN: what arrived */
    unsigned completions;    /* how many answers carried this id */
} UrhTransfer;

/*
 * Connect to the usbredir unix socket at path and wait for the device:
 * hello, device_connect, interface_info and ep_info. Returns NULL with errp
 * set if no device was announced within timeout_ms.
 */
UsbredirHost *urh_connect(const char *path, int timeout_ms, GError **errp);
/* Connect without waiting for a device (to watch the handshake itself). */
UsbredirHost *urh_connect_raw(const char *path, int timeout_ms, GError **errp);
/* The same over TCP to 127.0.0.1:port. */
UsbredirHost *urh_connect_tcp(uint16_t port, int timeout_ms, GError **errp);
/*
 * Take over a connected socket (say, one vccid connected to as a client)
 * and wait for the device on it. Returns NULL with errp set on a timeout.
 */
UsbredirHost *urh_new_from_fd(int fd, int timeout_ms, GError **errp);
/* A connected socket's raw fd (to send bytes that are not usbredir). */
int urh_fd(const UsbredirHost *h);
/* Close the connection abruptly, as a dying QEMU would. */
void urh_free(UsbredirHost *h);

/* Run the loop once for at most timeout_ms; false once the peer is gone. */
bool urh_iterate(UsbredirHost *h, int timeout_ms);
/*
 * Send what is queued without reading anything: true while some is left and
 * the device took more within timeout_ms. For hosts that read late.
 */
bool urh_send_only(UsbredirHost *h, int timeout_ms);
/* Run the loop until cond(h, opaque) or the timeout; returns cond's value. */
bool urh_run_until(UsbredirHost *h, bool (*cond)(UsbredirHost *h, void *opaque),
                   void *opaque, int timeout_ms);
/* Keep the loop running for ms milliseconds (to see what else arrives). */
void urh_idle(UsbredirHost *h, int ms);

/* What the device announced. */
bool urh_peer_alive(const UsbredirHost *h);
bool urh_got_hello(const UsbredirHost *h);
const char *urh_peer_version(const UsbredirHost *h);
bool urh_peer_has_cap(UsbredirHost *h, int cap);
bool urh_device_connected(const UsbredirHost *h);
unsigned urh_device_connect_count(const UsbredirHost *h);
unsigned urh_device_disconnect_count(const UsbredirHost *h);
const struct usb_redir_device_connect_header *urh_device_info(const UsbredirHost *h);
const struct usb_redir_interface_info_header *urh_interface_info(const UsbredirHost *h);
const struct usb_redir_ep_info_header *urh_ep_info(const UsbredirHost *h);
/* usbredir's endpoint index: IN endpoints at 16..31. */
static inline int urh_ep_index(uint8_t ep)
{
    return ((ep & 0x80) >> 3) | (ep & 0x0f);
}

/*
 * A control transfer. For IN requests (requesttype & 0x80) data receives
 * up to length bytes and *actual their number. Returns the usbredir status.
 */
int urh_control(UsbredirHost *h, uint8_t requesttype, uint8_t request, uint16_t value,
                uint16_t index, uint8_t *data, uint16_t length, int *actual,
                int timeout_ms);
/* GET_DESCRIPTOR from the device; returns the bytes, or NULL on a stall. */
GByteArray *urh_get_descriptor(UsbredirHost *h, uint8_t type, uint8_t index,
                               uint16_t langid, uint16_t length);

/* usbredir's set_configuration / get_configuration (as QEMU sends them). */
int urh_set_configuration(UsbredirHost *h, uint8_t config, uint8_t *status_config);
int urh_get_configuration(UsbredirHost *h, uint8_t *config);

/* usbredir's set_alt_setting / get_alt_setting (SET_INTERFACE / GET_INTERFACE). */
int urh_set_alt_setting(UsbredirHost *h, uint8_t iface, uint8_t alt);
int urh_get_alt_setting(UsbredirHost *h, uint8_t iface, uint8_t *alt);

/* Bulk: submit, then wait. length is the IN request size or OUT payload. */
UrhTransfer *urh_bulk_submit(UsbredirHost *h, uint8_t ep, const uint8_t *data,
                             uint32_t length);
bool urh_wait(UsbredirHost *h, UrhTransfer *t, int timeout_ms);
/* Ask the device to cancel; the transfer still completes (cancelled or not). */
void urh_cancel(UsbredirHost *h, UrhTransfer *t);
/* Forget a transfer (it may still be completed by the device: counted as stray). */
void urh_transfer_release(UsbredirHost *h, UrhTransfer *t);
/* Synchronous helpers; return the usbredir status. */
int urh_bulk_out(UsbredirHost *h, uint8_t ep, const uint8_t *data, uint32_t length,
                 int timeout_ms);
int urh_bulk_in(UsbredirHost *h, uint8_t ep, uint32_t length, GByteArray **out,
                int timeout_ms);
/* Completions whose id matched no transfer we had (stale or duplicate). */
unsigned urh_stray_completions(const UsbredirHost *h);

/* Interrupt-in: start receiving, then collect what the device sends. */
int urh_start_interrupt_receiving(UsbredirHost *h, uint8_t ep);
int urh_stop_interrupt_receiving(UsbredirHost *h, uint8_t ep);
/* Next interrupt packet of ep, or NULL after timeout_ms. */
GByteArray *urh_wait_interrupt(UsbredirHost *h, uint8_t ep, int timeout_ms);
unsigned urh_interrupt_pending(const UsbredirHost *h);

/* usbredir reset (a USB bus reset of the device). */
void urh_reset(UsbredirHost *h);
/* Wait for the next device_connect after a disconnect. */
bool urh_wait_device(UsbredirHost *h, int timeout_ms);

#endif
