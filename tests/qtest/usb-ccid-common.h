/*
 * What the test-usb-ccid-*.c qtests share: a running vccid with the
 * default reader and card (the fixture), checks on CCID answers, and the
 * CAC applet commands they drive the emulated card with.
 */
#ifndef USB_CCID_COMMON_H
#define USB_CCID_COMMON_H

#include "ccid-host.h"
#include "libqtest-vccid.h"

#include <string.h>

/* USB 2.0 table 9-5 (descriptor types) and the one string language we ask for. */
#define USB_DT_DEVICE 0x01
#define USB_DT_CONFIG 0x02
#define USB_DT_STRING 0x03
#define LANG_EN_US    0x0409

/* libcacard's CAC PKI applets: A0 00 00 00 79 01 0n, one per certificate. */
extern const uint8_t select_pki0[12];
/* CAC READ BUFFER (GSC-IS 2.1 5.3.3.3): P1P2 offset, data = {buffer, count}. */
#define CAC_READ_BUFFER  0x52
#define CAC_SIGN_DECRYPT 0x42
#define CAC_VALUE_BUFFER 0x02

/* vccid_start_default() and a host that has configured its reader. */
typedef struct Fixture {
    VccidProcess *vccid;
    CcidHost *c;
} Fixture;

typedef void UsbCcidTestFunc(Fixture *f, gconstpointer data);

/*
 * Register fn as the test /usb-ccid/PATH of this binary, on the line after
 * it: a constructor queues it, as device_type_init() queues a type, and
 * main() (usb-ccid-main.c) adds the queue in order after g_test_init().
 * USB_CCID_TEST runs fn with the fixture: at teardown no completion may
 * have arrived for a packet that had none pending, and vccid must stop
 * cleanly. USB_CCID_TEST_PLAIN runs fn(void), which starts what it needs.
 */
#define USB_CCID_TEST(path, fn) \
    static void __attribute__((constructor)) usb_ccid_queue_ ## fn(void) \
    { \
        usb_ccid_queue_test("/usb-ccid/" path, fn, NULL); \
    }
#define USB_CCID_TEST_PLAIN(path, fn) \
    static void __attribute__((constructor)) usb_ccid_queue_ ## fn(void) \
    { \
        usb_ccid_queue_test("/usb-ccid/" path, NULL, fn); \
    }
void usb_ccid_queue_test(const char *path, UsbCcidTestFunc *fixture_fn, void (*plain_fn)(void));
/* Add the queued tests to GLib's (after g_test_init()). */
void usb_ccid_add_queued_tests(void);

void assert_ok(const CcidAnswer *a);
void assert_failed(const CcidAnswer *a, uint8_t error);
/* The spec's "command not supported": bmCommandStatus = 1, bError = 0. */
bool is_not_supported(const CcidAnswer *a);
void assert_ok_or_not_supported(const CcidAnswer *a);
/* GetSlotStatus is answered without error. */
void assert_slot_works(CcidHost *c);
/* SELECT of PKI applet 0 answers 9000 or 61xx: APDUs reach the card. */
void assert_apdus_work(CcidHost *c);
/*
 * Nothing more comes on bulk-in: a request stays pending (that is not an
 * error), and it is cancelled cleanly.
 */
void assert_no_more_answers(CcidHost *c);

/* An ATR of plausible length with a valid TS byte. */
void check_atr(const GByteArray *atr);
/* A RDR_to_PC_NotifySlotChange for the reader's slots, slot 0 present or not. */
void check_notify(const CcidHost *c, const GByteArray *n, bool present);
/*
 * The next interrupt-in message before deadline (monotonic time), checked to
 * be a NotifySlotChange (CCID 6.3.1); NULL if none came by then.
 */
GByteArray *next_slot_notify(CcidHost *c, gint64 deadline);

/* CAC READ BUFFER of count bytes of the value buffer at offset. */
GByteArray *read_buffer(CcidHost *c, uint16_t offset, uint8_t count);
/* The whole value buffer of the selected CAC applet, read in 255-byte pieces. */
GByteArray *read_value_buffer(CcidHost *c);
/* SELECT PKI applet n; fails the test unless it answers 9000. */
void select_pki(CcidHost *c, uint8_t n);
/* A command APDU of exactly len bytes that libcacard accepts: CAC SIGN piece. */
GByteArray *sign_piece_apdu(size_t len);
/* Sign a 256-byte block with the selected PKI applet's key; the response APDU. */
GByteArray *sign_256(CcidHost *c);
/* Power on, select PKI applet 0 and read from it: the reader works end to end. */
void use_reader(CcidHost *c);

#endif
