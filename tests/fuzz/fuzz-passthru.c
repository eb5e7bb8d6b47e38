/*
 * libFuzzer target: ccid-card-passthru's state machine (docs/ccid.txt,
 * section 8.3) between a hostile VSCard client and a guest that sends,
 * aborts and resets.
 *
 * The input is a script: each op byte feeds client bytes (raw, or the
 * well-formed opening so that deep states are reached), answers a command
 * as a client would, or makes the guest power the card, send an APDU,
 * abort, reset the reader or read answers, or makes the client leave and
 * another come. Nothing may crash or leak, and every answer the reader
 * gives must be exactly 10 + dwLength bytes.
 */
#include "hw/usb.h"
#include "proto/ccid.h"
#include "proto/vscard.h"
#include "../support/ccid-inproc-host.h"
#include "fake-chardev.h"
#include "fuzz-input.h"

#include <string.h>

static void run_main_loop(void)
{
    while (g_main_context_pending(NULL)) {
        g_main_context_iteration(NULL, FALSE);
    }
}

/* Every answer the guest got is a whole RDR_to_PC message of its announced length. */
static void check_answers(CCIDInprocHost *h)
{
    GByteArray *a;

    while ((a = ccid_inproc_read_answer(h)) != NULL) {
        CCIDHeader hdr;

        g_assert_cmpuint(a->len, >=, CCID_HEADER_SIZE);
        ccid_header_parse(a->data, &hdr);
        g_assert_cmphex(hdr.bMessageType & 0x80, ==, 0x80);
        g_assert_cmpuint(a->len, ==, CCID_HEADER_SIZE + hdr.dwLength);
        g_byte_array_unref(a);
    }
    ccid_inproc_drain_completed(h);
}

static void client_send(Chardev *chr, VSCMsgType type, uint32_t reader_id,
                        const void *payload, uint32_t len)
{
    g_autoptr(GByteArray) b = g_byte_array_new();

    vscard_build(b, type, reader_id, payload, len);
    fake_chardev_feed(chr, b->data, b->len);
}

static void run_op(CCIDInprocHost *h, Chardev *chr, FuzzInput *in, uint8_t *seq)
{
    static const uint8_t atr[] = { 0x3b, 0x02, 0x14, 0x50 };
    static const uint8_t apdu[] = { 0x00, 0xa4, 0x04, 0x00, 0x01, 0x3f };
    uint8_t op = fuzz_take_byte(in) % 10;

    switch (op) {
    case 0: case 1: {
        /* raw client bytes: a length, then that many */
        size_t n;
        const uint8_t *bytes = fuzz_take_bytes(in, (size_t)fuzz_take_byte(in) * 2, &n);

        fake_chardev_feed(chr, bytes, n);
        break;
    }
    case 2: {
        g_autoptr(GByteArray) b = g_byte_array_new();

        vscard_build_init(b, VSCARD_UNDEFINED_READER_ID, 0);
        fake_chardev_feed(chr, b->data, b->len);
        client_send(chr, VSC_ReaderAdd, VSCARD_UNDEFINED_READER_ID, NULL, 0);
        client_send(chr, VSC_ATR, fuzz_take_byte(in) & 1, atr, sizeof(atr));
        break;
    }
    case 3:
        /* the client answers the oldest command it holds (or none) */
        if (fuzz_take_byte(in) & 1) {
            client_send(chr, VSC_APDU, 0, "\x90\x00", 2);
        } else {
            client_send(chr, VSC_Error, 0, "\0\0\0\1", 4);
        }
        break;
    case 4:
        ccid_inproc_send(h, fuzz_take_byte(in) & 1 ? CCID_PC_TO_RDR_ICC_POWER_ON :
                         CCID_PC_TO_RDR_ICC_POWER_OFF, (*seq)++, NULL, NULL, 0);
        break;
    case 5:
        ccid_inproc_send(h, CCID_PC_TO_RDR_XFR_BLOCK, (*seq)++, NULL, apdu, sizeof(apdu));
        break;
    case 6:
        ccid_inproc_send(h, CCID_PC_TO_RDR_ABORT, (*seq)++, NULL, NULL, 0);
        break;
    case 7:
        check_answers(h);
        break;
    case 8:
        if (fuzz_take_byte(in) & 1) {
            usb_device_reset(h->dev);
            ccid_inproc_forget_in_flight(h);
        }
        break;
    case 9:
        /* the client leaves and another comes */
        fake_chardev_close(chr);
        fake_chardev_open(chr);
        break;
    }
    run_main_loop();
    g_byte_array_set_size(fake_chardev_written(chr), 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Hostile input is expected to be logged; only a failure is shown. */
static void discard_log(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                        gpointer opaque)
{
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) {
        g_log_default_handler(domain, level, msg, opaque);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    FuzzInput in = { data, size };
    CCIDInprocHost *h;
    Chardev *chr = chardev_find("fake");
    GError *err = NULL;
    uint8_t seq = 0;

    if (!quiet) {
        g_log_set_default_handler(discard_log, NULL);
        quiet = true;
    }
    h = ccid_inproc_new(NULL, false);
    if (!device_create_from_string("ccid-card-passthru,chardev=fake", &err)) {
        g_error("fuzz-passthru setup: %s", err->message);
    }
    fake_chardev_open(chr);
    run_main_loop();
    while (in.len) {
        run_op(h, chr, &in, &seq);
    }
    fake_chardev_close(chr);
    run_main_loop();
    check_answers(h);
    ccid_inproc_free(h);
    g_byte_array_set_size(fake_chardev_written(chr), 0);
    return 0;
}
