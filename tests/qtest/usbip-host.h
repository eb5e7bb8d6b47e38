/*
 * A USB/IP importer for tests: the role Linux's usbip tool and vhci-hcd
 * play. It lists a server's devices, imports one by bus id and sends it
 * URBs: control transfers with a raw setup packet, bulk and interrupt
 * transfers, unlinks. It uses proto/usbip.c in its client role.
 *
 * Every wait runs a poll() loop with a timeout, so a server that never
 * answers fails a test instead of hanging it. What the server must never do
 * (answer a URB twice, answer after a successful unlink, answer a seqnum
 * nobody sent, send malformed USB/IP) is counted or fails the test.
 */
#ifndef USBIP_HOST_H
#define USBIP_HOST_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/usbip.h"

#define UIH_TIMEOUT_MS 10000

typedef struct UsbipHost UsbipHost;

/* A device of a DEVLIST reply, with its interfaces. */
typedef struct UihDevice {
    UsbipDevice dev;             /* dev.interfaces points at ifs */
    UsbipInterface ifs[32];
} UihDevice;

typedef struct UihUrb {
    uint32_t seqnum;
    uint8_t ep;                  /* endpoint number, without direction */
    bool in;
    uint32_t length;             /* transfer_buffer_length */
    bool done;
    unsigned completions;        /* RET_SUBMITs that carried this seqnum */
    int32_t status;
    uint32_t actual_length;
    uint32_t number_of_packets;  /* as answered */
    GByteArray *data;            /* IN: what arrived */
    bool unlinked;               /* a RET_UNLINK said the server forgot it */
} UihUrb;

/* A connected TCP socket to 127.0.0.1:port, retried until timeout_ms; -1 if none. */
int uih_tcp_connect(uint16_t port, int timeout_ms);

/*
 * OP_REQ_DEVLIST on a connection of its own. Returns the devices (UihDevice),
 * or NULL with errp set; the server must close the connection afterwards.
 */
GArray *uih_devlist(uint16_t port, GError **errp);

/*
 * OP_REQ_IMPORT of busid. On success returns the host in the URB phase.
 * On a refusal returns NULL with *status the reply's status (and checks
 * that the server closed the connection); on any other failure NULL with
 * errp set.
 */
UsbipHost *uih_import(uint16_t port, const char *busid, uint32_t *status, GError **errp);
/* The imported device, as the import reply described it. */
const UsbipDevice *uih_device(const UsbipHost *h);
uint32_t uih_devid(const UsbipHost *h);
int uih_fd(const UsbipHost *h);
/* Close the connection (the server should detach the device). */
void uih_free(UsbipHost *h);

/* Run the loop once; false once the server has closed the connection. */
bool uih_iterate(UsbipHost *h, int timeout_ms);
bool uih_alive(const UsbipHost *h);
/* Wait up to timeout_ms for the server to close; true if it did. */
bool uih_wait_closed(UsbipHost *h, int timeout_ms);

/*
 * Submit a URB. number_of_packets is what Linux vhci sends (0) unless
 * uih_set_number_of_packets() chose another. For OUT, data holds length
 * bytes. For ep 0, setup is the raw 8-byte setup packet.
 */
UihUrb *uih_submit(UsbipHost *h, uint8_t ep, bool in, const uint8_t setup[8],
                   const uint8_t *data, uint32_t length);
void uih_set_number_of_packets(UsbipHost *h, uint32_t n);
/* Send raw bytes (to play a broken peer). */
void uih_send_raw(UsbipHost *h, const void *buf, size_t len);
bool uih_wait(UsbipHost *h, UihUrb *u, int timeout_ms);
/* CMD_UNLINK of u; waits for RET_UNLINK and returns its status. */
int32_t uih_unlink(UsbipHost *h, UihUrb *u, int timeout_ms);
/* Forget a URB (after it completed or was unlinked). */
void uih_urb_free(UsbipHost *h, UihUrb *u);
/* RET_SUBMITs for a URB already answered or unlinked: always a server bug. */
unsigned uih_violations(const UsbipHost *h);

/* Synchronous helpers; return the RET_SUBMIT status. */
int32_t uih_control(UsbipHost *h, uint8_t type, uint8_t request, uint16_t value, uint16_t index,
                    uint8_t *data, uint16_t length, uint32_t *actual);
int32_t uih_bulk_out(UsbipHost *h, uint8_t ep, const uint8_t *data, uint32_t length);
/* An IN transfer of up to length bytes; *out receives the data. */
int32_t uih_bulk_in(UsbipHost *h, uint8_t ep, uint32_t length, GByteArray **out);

#endif
