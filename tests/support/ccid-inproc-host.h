/*
 * An in-process USB host for the usb-ccid device model: it attaches to the
 * device through a USBPort as an export would, and sends bulk-out, bulk-in,
 * interrupt-in and control packets. Used by unit tests and the fuzzer.
 */
#ifndef TESTS_CCID_INPROC_HOST_H
#define TESTS_CCID_INPROC_HOST_H

#include "hw/usb.h"
#include "proto/ccid.h"

#define CCID_HOST_BULK_OUT 3
#define CCID_HOST_BULK_IN  2
#define CCID_HOST_INT_IN   1
#define CCID_HOST_IN_SIZE  1024

typedef struct CCIDHost {
    USBDevice *dev;
    USBPort port;
    GQueue in_flight;        /* USBPacket * the device holds */
    GQueue completed;        /* USBPacket * it completed, oldest first */
} CCIDHost;

/* Create "usb-ccid" (+ "ccid-card-test" when with_card) and attach. */
CCIDHost *ccid_host_new(const char *reader_opts, bool with_card);
void ccid_host_free(CCIDHost *h);

/* Send one bulk-out transfer; returns the packet status. */
int ccid_host_bulk_out(CCIDHost *h, const uint8_t *data, size_t len);
/* Post a bulk-in of size bytes; it may complete now or later. */
USBPacket *ccid_host_bulk_in(CCIDHost *h, size_t size);
/* Next answer: posts bulk-ins until one completes; NULL if none is ready. */
GByteArray *ccid_host_read_answer(CCIDHost *h);
/* Build and send a PC_to_RDR message. */
int ccid_host_send(CCIDHost *h, uint8_t type, uint8_t seq, const uint8_t specific[3],
                   const uint8_t *data, uint32_t len);
/* Poll the interrupt endpoint; returns bytes read (0 = NAK). */
size_t ccid_host_interrupt(CCIDHost *h, uint8_t *buf, size_t size);
/* A control transfer; returns the status and fills data for IN requests. */
int ccid_host_control(CCIDHost *h, uint8_t type, uint8_t req, uint16_t value, uint16_t index,
                      uint8_t *data, uint16_t length, size_t *actual);
/* After a USB reset: the device dropped the packets it held; free ours. */
void ccid_host_forget_in_flight(CCIDHost *h);
/* Free packets that completed. */
void ccid_host_drain_completed(CCIDHost *h);

#endif
