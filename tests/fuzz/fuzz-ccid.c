/*
 * libFuzzer target: the usb-ccid reader driven by arbitrary host traffic.
 *
 * The input is a script of USB operations on an in-process reader with a
 * test card: each op byte picks bulk-out (with a length and bytes from the
 * input), bulk-in of a given size, an interrupt poll, a class control
 * request, a USB reset, card insert/remove, or holding/releasing the card's
 * answers. The reader must never crash, leak or answer out of bounds, and
 * every answer it gives must be exactly 10 + dwLength bytes.
 */
#include "hw/usb.h"
#include "proto/ccid.h"
#include "../support/ccid-inproc-host.h"
#include "../support/ccid-test-card.h"
#include "fuzz-input.h"

#include <string.h>

/* Bytes of the answer being received that are still to come (0: none). */
static size_t answer_remaining;

/*
 * Follow the bulk-in stream: each answer starts with a header whose
 * dwLength fits one message, no transfer holds bytes of two answers, and an
 * answer is exactly 10 + dwLength bytes long.
 */
static void check_completed(CCIDInprocHost *h)
{
    for (GList *l = h->completed.head; l; l = l->next) {
        USBPacket *p = l->data;
        CCIDHeader hdr;

        if (p->pid != USB_TOKEN_IN || p->ep != CCID_INPROC_BULK_IN ||
            p->status != USB_RET_SUCCESS) {
            continue;
        }
        if (answer_remaining == 0 && p->actual_length == 0) {
            continue;   /* a ZLP ending an answer that filled its last packet */
        }
        if (answer_remaining == 0) {
            g_assert_cmpuint(p->actual_length, >=, CCID_HEADER_SIZE);
            ccid_header_parse(p->data, &hdr);
            g_assert_cmphex(hdr.bMessageType & 0x80, ==, 0x80);
            g_assert_cmpuint(hdr.dwLength, <=, 261);
            answer_remaining = CCID_HEADER_SIZE + hdr.dwLength;
        }
        g_assert_cmpuint(p->actual_length, <=, answer_remaining);
        answer_remaining -= p->actual_length;
    }
    ccid_inproc_drain_completed(h);
}

static void run_op(CCIDInprocHost *h, FuzzInput *in)
{
    TestCard *card = test_card_find();
    uint8_t op = fuzz_take_byte(in) % 10;
    uint8_t buf[64];

    switch (op) {
    case 0: case 1: case 2: {
        /* bulk-out: a length, then that many bytes */
        size_t n;
        const uint8_t *bytes = fuzz_take_bytes(in, (size_t)fuzz_take_byte(in) * 2, &n);

        ccid_inproc_bulk_out(h, bytes, n);
        break;
    }
    case 3: case 4:
        ccid_inproc_bulk_in(h, fuzz_take_byte(in) & 1 ? 64 : 512);
        break;
    case 5:
        ccid_inproc_interrupt(h, buf, sizeof(buf));
        break;
    case 6: {
        uint8_t req = fuzz_take_byte(in) & 3;

        ccid_inproc_control(h, req == 1 ? 0x21 : 0xa1, req, fuzz_take_byte(in) << 8, 0, buf,
                            sizeof(buf), NULL);
        break;
    }
    case 7:
        if (fuzz_take_byte(in) & 1) {
            /* The reset forgets held packets, as an export does. */
            usb_device_reset(h->dev);
            ccid_inproc_forget_in_flight(h);
            answer_remaining = 0;
        }
        break;
    case 8:
        if (fuzz_take_byte(in) & 1) {
            test_card_remove(card);
        } else {
            test_card_insert(card);
        }
        break;
    case 9:
        test_card_set_hold(card, fuzz_take_byte(in) & 1);
        test_card_release_one(card);
        break;
    }
    check_completed(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void discard_log(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                        gpointer opaque)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    FuzzInput in = { data, size };
    CCIDInprocHost *h;

    if (!quiet) {
        /* Hostile input is expected to be logged; the logs are not the point here. */
        g_log_set_default_handler(discard_log, NULL);
        quiet = true;
    }
    h = ccid_inproc_new(NULL, true);
    answer_remaining = 0;
    while (in.len) {
        run_op(h, &in);
    }
    /* Deliver what the card still holds, as a slow card eventually would. */
    while (test_card_release_one(test_card_find())) {
    }
    check_completed(h);
    ccid_inproc_free(h);
    return 0;
}
