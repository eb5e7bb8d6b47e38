/*
 * An in-process USB host for the usb-ccid device model: it attaches to the
 * device through a USBPort as an export would, and sends bulk-out, bulk-in,
 * interrupt-in and control packets. Used by unit tests and the fuzzer.
 * Its names say "inproc": the qtests' CcidHost (tests/qtest/ccid-host.h)
 * is the other host, which drives the vccid binary over usbredir.
 */
#ifndef TESTS_CCID_INPROC_HOST_H
#define TESTS_CCID_INPROC_HOST_H

#include "hw/usb.h"
#include "proto/ccid.h"

#define CCID_INPROC_BULK_OUT 3
#define CCID_INPROC_BULK_IN  2
#define CCID_INPROC_INT_IN   1
#define CCID_INPROC_IN_SIZE  1024

typedef struct CCIDInprocHost {
    USBDevice *dev;
    USBPort port;
    GQueue in_flight;        /* USBPacket * the device holds */
    GQueue completed;        /* USBPacket * it completed, oldest first */
} CCIDInprocHost;

/* Create "usb-ccid" (+ "ccid-card-test" when with_card) and attach. */
CCIDInprocHost *ccid_inproc_new(const char *reader_opts, bool with_card);
void ccid_inproc_free(CCIDInprocHost *h);

/* Send one bulk-out transfer; returns the packet status. */
int ccid_inproc_bulk_out(CCIDInprocHost *h, const uint8_t *data, size_t len);
/* Post a bulk-in of size bytes; it may complete now or later. */
USBPacket *ccid_inproc_bulk_in(CCIDInprocHost *h, size_t size);
/* Next answer: posts bulk-ins until one completes; NULL if none is ready. */
GByteArray *ccid_inproc_read_answer(CCIDInprocHost *h);
/* Build and send a PC_to_RDR message. */
int ccid_inproc_send(CCIDInprocHost *h, uint8_t type, uint8_t seq, const uint8_t specific[3],
                     const uint8_t *data, uint32_t len);
/* Poll the interrupt endpoint; returns bytes read (0 = NAK). */
size_t ccid_inproc_interrupt(CCIDInprocHost *h, uint8_t *buf, size_t size);
/* A control transfer; returns the status and fills data for IN requests. */
int ccid_inproc_control(CCIDInprocHost *h, uint8_t type, uint8_t req, uint16_t value,
                        uint16_t index, uint8_t *data, uint16_t length, size_t *actual);
/* After a USB reset: the device dropped the packets it held; free ours. */
void ccid_inproc_forget_in_flight(CCIDInprocHost *h);
/* Free packets that completed. */
void ccid_inproc_drain_completed(CCIDInprocHost *h);

#endif
