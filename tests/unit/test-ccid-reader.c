/*
 * The usb-ccid reader's state machine, in process: every PC_to_RDR message,
 * chaining, ordering under a slow card, aborts, resets, card removal and
 * malformed bulk-out transfers.
 */
#include "hw/usb.h"
#include "proto/ccid.h"
#include "../support/ccid-inproc-host.h"
#include "../support/ccid-test-card.h"
#include "../support/test-cases.h"

#include <string.h>

#define MAX_CHUNK 261   /* dwMaxCCIDMessageLength (271) - header */

static const uint8_t no_specific[3];

/* Check an answer's header: type, exact length, bSeq, status bits, error. */
static void check_answer(GByteArray *a, uint8_t type, uint8_t seq, uint8_t cmd_status,
                         uint8_t bError)
{
    CCIDHeader h;

    g_assert_nonnull(a);
    g_assert_cmpuint(a->len, >=, CCID_HEADER_SIZE);
    ccid_header_parse(a->data, &h);
    g_assert_cmphex(h.bMessageType, ==, type);
    g_assert_cmpuint(a->len, ==, CCID_HEADER_SIZE + h.dwLength);
    g_assert_cmpuint(h.bSeq, ==, seq);
    g_assert_cmphex(h.specific[0] & 0xc0, ==, cmd_status);
    if (cmd_status == CCID_COMMAND_FAILED) {
        g_assert_cmphex(h.specific[1], ==, bError);
    }
}

static GByteArray *transact(CCIDInprocHost *h, uint8_t type, uint8_t seq, const uint8_t specific[3],
                            const uint8_t *data, uint32_t len)
{
    g_assert_cmpint(ccid_inproc_send(h, type, seq, specific ? specific : no_specific, data, len),
                    ==, USB_RET_SUCCESS);
    return ccid_inproc_read_answer(h);
}

static void power_on(CCIDInprocHost *h, uint8_t seq)
{
    g_autoptr(GByteArray) a = transact(h, CCID_PC_TO_RDR_ICC_POWER_ON, seq, NULL, NULL, 0);

    check_answer(a, CCID_RDR_TO_PC_DATA_BLOCK, seq, CCID_COMMAND_OK, 0);
    g_assert_cmphex(a->data[CCID_HEADER_SIZE], ==, 0x3b);
}

static void test_power_on_atr(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    g_autoptr(GByteArray) status = NULL;
    g_autoptr(GByteArray) off = NULL;

    power_on(h, 7);
    status = transact(h, CCID_PC_TO_RDR_GET_SLOT_STATUS, 8, NULL, NULL, 0);
    check_answer(status, CCID_RDR_TO_PC_SLOT_STATUS, 8, CCID_COMMAND_OK, 0);
    g_assert_cmphex(status->data[7] & 3, ==, CCID_ICC_PRESENT_ACTIVE);
    off = transact(h, CCID_PC_TO_RDR_ICC_POWER_OFF, 9, NULL, NULL, 0);
    check_answer(off, CCID_RDR_TO_PC_SLOT_STATUS, 9, CCID_COMMAND_OK, 0);
    g_assert_cmphex(off->data[7] & 3, ==, CCID_ICC_PRESENT_INACTIVE);
    ccid_inproc_free(h);
}

static void test_no_card(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, false);
    g_autoptr(GByteArray) on = transact(h, CCID_PC_TO_RDR_ICC_POWER_ON, 1, NULL, NULL, 0);
    g_autoptr(GByteArray) xfr = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, 2, NULL,
                                         (const uint8_t *)"\x00\xa4\x04\x00", 4);

    check_answer(on, CCID_RDR_TO_PC_DATA_BLOCK, 1, CCID_COMMAND_FAILED, CCID_ERR_ICC_MUTE);
    g_assert_cmphex(on->data[7] & 3, ==, CCID_ICC_ABSENT);
    check_answer(xfr, CCID_RDR_TO_PC_DATA_BLOCK, 2, CCID_COMMAND_FAILED, CCID_ERR_ICC_MUTE);
    ccid_inproc_free(h);
}

static void test_xfr_unpowered(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    g_autoptr(GByteArray) xfr = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, 3, NULL,
                                         (const uint8_t *)"\x00\xa4\x04\x00", 4);

    check_answer(xfr, CCID_RDR_TO_PC_DATA_BLOCK, 3, CCID_COMMAND_FAILED, CCID_ERR_ICC_MUTE);
    g_assert_cmphex(xfr->data[7] & 3, ==, CCID_ICC_PRESENT_INACTIVE);
    ccid_inproc_free(h);
}

/* Read a whole answer APDU, following bChainParameter with XfrBlock(0x10). */
static GByteArray *read_chained(CCIDInprocHost *h, uint8_t *seq, GByteArray *first)
{
    GByteArray *apdu = g_byte_array_new();
    GByteArray *a = first;

    for (;;) {
        uint8_t chain;
        const uint8_t more[3] = { 0, CCID_CHAIN_CONTINUE, 0 };

        check_answer(a, CCID_RDR_TO_PC_DATA_BLOCK, *seq, CCID_COMMAND_OK, 0);
        g_assert_cmpuint(a->len - CCID_HEADER_SIZE, <=, MAX_CHUNK);
        g_byte_array_append(apdu, a->data + CCID_HEADER_SIZE, a->len - CCID_HEADER_SIZE);
        chain = a->data[9];
        g_byte_array_unref(a);
        if (chain == CCID_CHAIN_NONE || chain == CCID_CHAIN_END) {
            return apdu;
        }
        g_assert_true(chain == CCID_CHAIN_BEGIN || chain == CCID_CHAIN_MIDDLE);
        (*seq)++;
        a = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, *seq, more, NULL, 0);
    }
}

static void test_answer_lengths(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    uint8_t seq = 1;
    static const uint32_t lengths[] = { 0, 1, 52, 53, 54, 62, 63, 64, 65, 127, 128, 254, 255,
                                        256, 257, 259, 260, 261, 262, 300, 1000, 4096, 65535 };

    power_on(h, seq++);
    for (size_t i = 0; i < G_N_ELEMENTS(lengths); i++) {
        uint8_t apdu[5] = { 0x00, TEST_CARD_INS_GET_LENGTH, lengths[i] >> 8, lengths[i] & 0xff, 0 };
        GByteArray *first = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, seq, NULL, apdu, 5);
        g_autoptr(GByteArray) whole = read_chained(h, &seq, first);

        g_assert_cmpuint(whole->len, ==, lengths[i] + 2);
        for (uint32_t j = 0; j < whole->len - 2; j++) {
            g_assert_cmpuint(whole->data[j], ==, j & 0xff);
        }
        g_assert_cmphex(whole->data[whole->len - 2], ==, 0x90);
        seq++;
    }
    ccid_inproc_free(h);
}

/* A bulk-in shorter than the answer gets its start; the next one the rest. */
static void test_short_bulk_in(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    uint8_t apdu[5] = { 0x00, TEST_CARD_INS_GET_LENGTH, 0, 200, 0 };
    USBPacket *p1, *p2;

    power_on(h, 1);
    g_assert_cmpint(ccid_inproc_send(h, CCID_PC_TO_RDR_XFR_BLOCK, 2, no_specific, apdu, 5), ==,
                    USB_RET_SUCCESS);
    p1 = ccid_inproc_bulk_in(h, 64);
    p2 = ccid_inproc_bulk_in(h, 512);
    g_assert_cmpint(p1->status, ==, USB_RET_SUCCESS);
    g_assert_cmpuint(p1->actual_length, ==, 64);
    g_assert_cmpint(p2->status, ==, USB_RET_SUCCESS);
    g_assert_cmpuint(p2->actual_length, ==, CCID_HEADER_SIZE + 202 - 64);
    ccid_inproc_free(h);
}

/*
 * Packet-by-packet reading (UHCI): an answer that ends on a full packet is
 * followed by a zero-length packet; one read in a larger transfer is not.
 */
static void test_zlp(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    uint8_t apdu[5] = { 0x00, TEST_CARD_INS_GET_LENGTH, 0, 64 + 54 - 2, 0 };
    USBPacket *p;

    power_on(h, 1);
    ccid_inproc_drain_completed(h);
    ccid_inproc_send(h, CCID_PC_TO_RDR_XFR_BLOCK, 2, no_specific, apdu, 5);   /* 128 bytes */
    p = ccid_inproc_bulk_in(h, 64);
    g_assert_cmpuint(p->actual_length, ==, 64);
    p = ccid_inproc_bulk_in(h, 64);
    g_assert_cmpuint(p->actual_length, ==, 64);
    p = ccid_inproc_bulk_in(h, 64);
    g_assert_cmpint(p->status, ==, USB_RET_SUCCESS);
    g_assert_cmpuint(p->actual_length, ==, 0);
    /* Nothing more: the next bulk-in waits. */
    p = ccid_inproc_bulk_in(h, 64);
    g_assert_cmpint(p->status, ==, USB_RET_ASYNC);
    ccid_inproc_free(h);

    h = ccid_inproc_new(NULL, true);
    power_on(h, 1);
    ccid_inproc_drain_completed(h);
    ccid_inproc_send(h, CCID_PC_TO_RDR_XFR_BLOCK, 2, no_specific, apdu, 5);
    p = ccid_inproc_bulk_in(h, 271);
    g_assert_cmpuint(p->actual_length, ==, 128);
    p = ccid_inproc_bulk_in(h, 271);
    g_assert_cmpint(p->status, ==, USB_RET_ASYNC);
    ccid_inproc_free(h);
}

static void test_command_chaining(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    const uint32_t total = 4 + 3 + 65000;   /* echoed back: must fit an answer */
    g_autofree uint8_t *apdu = g_malloc(total);
    uint8_t seq = 1;
    uint32_t off = 0;
    g_autoptr(GByteArray) whole = NULL;
    GByteArray *a = NULL;

    for (uint32_t i = 0; i < total; i++) {
        apdu[i] = (i * 7) & 0xff;
    }
    apdu[1] = 0x2a;   /* not GET_LENGTH: the card echoes */
    power_on(h, seq++);
    while (off < total) {
        uint32_t n = MIN(MAX_CHUNK, total - off);
        uint8_t level = off == 0 ? CCID_CHAIN_BEGIN :
                        off + n == total ? CCID_CHAIN_END : CCID_CHAIN_MIDDLE;
        const uint8_t specific[3] = { 0, level, 0 };

        a = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, seq, specific, apdu + off, n);
        off += n;
        if (off < total) {
            check_answer(a, CCID_RDR_TO_PC_DATA_BLOCK, seq, CCID_COMMAND_OK, 0);
            g_assert_cmpuint(a->len, ==, CCID_HEADER_SIZE);
            g_assert_cmphex(a->data[9], ==, CCID_CHAIN_CONTINUE);
            g_byte_array_unref(a);
            seq++;
        }
    }
    whole = read_chained(h, &seq, a);
    g_assert_cmpuint(whole->len, ==, total + 2);
    g_assert_cmpmem(whole->data, total, apdu, total);
    ccid_inproc_free(h);
}

static void test_chain_errors(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    const uint8_t middle[3] = { 0, CCID_CHAIN_MIDDLE, 0 };
    const uint8_t more[3] = { 0, CCID_CHAIN_CONTINUE, 0 };
    const uint8_t bogus[3] = { 0, 0x07, 0 };
    g_autoptr(GByteArray) a1 = NULL;
    g_autoptr(GByteArray) a2 = NULL;
    g_autoptr(GByteArray) a3 = NULL;

    power_on(h, 1);
    a1 = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, 2, middle, (const uint8_t *)"ab", 2);
    check_answer(a1, CCID_RDR_TO_PC_DATA_BLOCK, 2, CCID_COMMAND_FAILED, 8);
    a2 = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, 3, more, NULL, 0);
    check_answer(a2, CCID_RDR_TO_PC_DATA_BLOCK, 3, CCID_COMMAND_FAILED, 8);
    a3 = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, 4, bogus, (const uint8_t *)"ab", 2);
    check_answer(a3, CCID_RDR_TO_PC_DATA_BLOCK, 4, CCID_COMMAND_FAILED, 8);
    ccid_inproc_free(h);
}

/*
 * Power the card on, let the insertion notice go, and leave XfrBlock seq 2
 * (00 2A p1 00) with the card, which holds its answer.
 */
static void apdu_in_flight(CCIDInprocHost *h, uint8_t p1)
{
    const uint8_t apdu[4] = { 0x00, 0x2a, p1, 0 };
    uint8_t irq[8];

    power_on(h, 1);
    while (ccid_inproc_interrupt(h, irq, sizeof(irq))) {
        /* drain the insertion notice */
    }
    test_card_set_hold(test_card_find(), true);
    g_assert_cmpint(ccid_inproc_send(h, CCID_PC_TO_RDR_XFR_BLOCK, 2, no_specific, apdu, 4), ==,
                    USB_RET_SUCCESS);
}

/* The reader works: XfrBlock seq (00 2A p1 00) comes back echoed. */
static void check_echo(CCIDInprocHost *h, uint8_t seq, uint8_t p1)
{
    const uint8_t apdu[4] = { 0x00, 0x2a, p1, 0 };
    g_autoptr(GByteArray) a = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, seq, NULL, apdu, 4);

    check_answer(a, CCID_RDR_TO_PC_DATA_BLOCK, seq, CCID_COMMAND_OK, 0);
    g_assert_cmphex(a->data[CCID_HEADER_SIZE + 2], ==, p1);
}

/* Commands sent while the card is slow are answered in order, each once. */
static void test_ordering_with_slow_card(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    TestCard *card = test_card_find();
    uint8_t apdu[4] = { 0x00, 0x2a, 0, 0 };

    power_on(h, 1);
    test_card_set_hold(card, true);
    for (uint8_t seq = 10; seq < 16; seq++) {
        apdu[2] = seq;
        g_assert_cmpint(ccid_inproc_send(h, CCID_PC_TO_RDR_XFR_BLOCK, seq, no_specific, apdu, 4),
                        ==, USB_RET_SUCCESS);
    }
    g_assert_cmpint(ccid_inproc_send(h, CCID_PC_TO_RDR_GET_SLOT_STATUS, 16, no_specific, NULL, 0),
                    ==, USB_RET_SUCCESS);
    /* One APDU at a time reaches the card. */
    g_assert_cmpuint(test_card_held(card), ==, 1);
    g_assert_null(ccid_inproc_read_answer(h));
    for (uint8_t seq = 10; seq < 16; seq++) {
        g_autoptr(GByteArray) a = NULL;

        g_assert_true(test_card_release_one(card));
        a = ccid_inproc_read_answer(h);
        check_answer(a, CCID_RDR_TO_PC_DATA_BLOCK, seq, CCID_COMMAND_OK, 0);
        g_assert_cmpuint(a->data[CCID_HEADER_SIZE + 2], ==, seq);
    }
    {
        g_autoptr(GByteArray) a = ccid_inproc_read_answer(h);

        check_answer(a, CCID_RDR_TO_PC_SLOT_STATUS, 16, CCID_COMMAND_OK, 0);
    }
    g_assert_null(ccid_inproc_read_answer(h));
    ccid_inproc_free(h);
}

/* A slow card: the reader asks the host for more time until it answers. */
static void test_time_extension(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    TestCard *card = test_card_find();
    gint64 deadline = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
    g_autoptr(GByteArray) ext = NULL;
    g_autoptr(GByteArray) a = NULL;

    apdu_in_flight(h, 0x77);
    while (!(ext = ccid_inproc_read_answer(h)) && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(10000);
    }
    g_assert_nonnull(ext);
    g_assert_cmpuint(ext->len, ==, CCID_HEADER_SIZE);
    g_assert_cmphex(ext->data[0], ==, CCID_RDR_TO_PC_DATA_BLOCK);
    g_assert_cmpuint(ext->data[6], ==, 2);
    g_assert_cmphex(ext->data[7] & 0xc0, ==, CCID_TIME_EXTENSION);
    g_assert_true(test_card_release_one(card));
    a = ccid_inproc_read_answer(h);
    check_answer(a, CCID_RDR_TO_PC_DATA_BLOCK, 2, CCID_COMMAND_OK, 0);
    g_assert_cmphex(a->data[CCID_HEADER_SIZE + 2], ==, 0x77);
    /* Answered: no more extensions. */
    for (int i = 0; i < 70; i++) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(10000);
    }
    g_assert_null(ccid_inproc_read_answer(h));
    ccid_inproc_free(h);
}

static void test_abort_in_flight(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    TestCard *card = test_card_find();
    g_autoptr(GByteArray) aborted = NULL;
    g_autoptr(GByteArray) abort_ans = NULL;

    apdu_in_flight(h, 0x55);
    g_assert_cmpint(ccid_inproc_control(h, 0x21, CCID_REQUEST_ABORT, 3 << 8, 0, NULL, 0, NULL),
                    ==, USB_RET_SUCCESS);
    ccid_inproc_send(h, CCID_PC_TO_RDR_ABORT, 3, no_specific, NULL, 0);
    aborted = ccid_inproc_read_answer(h);
    check_answer(aborted, CCID_RDR_TO_PC_DATA_BLOCK, 2, CCID_COMMAND_FAILED, CCID_ERR_CMD_ABORTED);
    abort_ans = ccid_inproc_read_answer(h);
    check_answer(abort_ans, CCID_RDR_TO_PC_SLOT_STATUS, 3, CCID_COMMAND_OK, 0);
    /* The card's late answer to the aborted APDU must not surface. */
    test_card_set_hold(card, false);
    g_assert_true(test_card_release_one(card));
    g_assert_null(ccid_inproc_read_answer(h));
    ccid_inproc_drain_completed(h);
    check_echo(h, 4, 0x66);
    ccid_inproc_free(h);
}

/* A USB reset mid-APDU: the next session sees a clean reader. */
static void test_reset_in_flight(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    TestCard *card = test_card_find();
    uint8_t irq[8];
    g_autoptr(GByteArray) st = NULL;

    apdu_in_flight(h, 0x11);
    ccid_inproc_bulk_in(h, 512);   /* held by the device */
    usb_device_reset(h->dev);
    ccid_inproc_forget_in_flight(h);   /* the reset dropped it */
    test_card_set_hold(card, false);
    g_assert_true(test_card_release_one(card));
    /* The reset announces the card that is in the slot. */
    g_assert_cmpuint(ccid_inproc_interrupt(h, irq, sizeof(irq)), ==, 2);
    g_assert_cmphex(irq[0], ==, CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE);
    g_assert_cmphex(irq[1], ==, 0x03);
    st = transact(h, CCID_PC_TO_RDR_GET_SLOT_STATUS, 3, NULL, NULL, 0);
    check_answer(st, CCID_RDR_TO_PC_SLOT_STATUS, 3, CCID_COMMAND_OK, 0);
    g_assert_cmphex(st->data[7] & 3, ==, CCID_ICC_PRESENT_INACTIVE);
    power_on(h, 4);
    check_echo(h, 5, 0x22);
    ccid_inproc_free(h);
}

/* The card left with XfrBlock seq 2 in flight: it fails, and the host hears of it. */
static void check_card_left(CCIDInprocHost *h)
{
    uint8_t irq[8];
    g_autoptr(GByteArray) a = ccid_inproc_read_answer(h);

    check_answer(a, CCID_RDR_TO_PC_DATA_BLOCK, 2, CCID_COMMAND_FAILED, CCID_ERR_ICC_MUTE);
    g_assert_cmphex(a->data[7] & 3, ==, CCID_ICC_ABSENT);
    g_assert_cmpuint(ccid_inproc_interrupt(h, irq, sizeof(irq)), ==, 2);
    g_assert_cmphex(irq[0], ==, CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE);
    g_assert_cmphex(irq[1], ==, 0x02);   /* absent, changed */
}

static void test_card_removed_in_flight(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    TestCard *card = test_card_find();
    uint8_t irq[8];

    apdu_in_flight(h, 0x33);
    test_card_remove(card);
    check_card_left(h);
    g_assert_cmpuint(ccid_inproc_interrupt(h, irq, sizeof(irq)), ==, 0);
    test_card_release_one(card);
    g_assert_null(ccid_inproc_read_answer(h));
    test_card_insert(card);
    g_assert_cmpuint(ccid_inproc_interrupt(h, irq, sizeof(irq)), ==, 2);
    g_assert_cmphex(irq[1], ==, 0x03);
    ccid_inproc_free(h);
}

/* The reader, not the card, keeps the slot: a card that goes away is removed. */
static void test_card_unplugged(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    g_autoptr(GByteArray) on = NULL;

    apdu_in_flight(h, 0x44);
    device_free(DEVICE(test_card_find()));
    g_assert_null(test_card_find());
    check_card_left(h);
    on = transact(h, CCID_PC_TO_RDR_ICC_POWER_ON, 3, NULL, NULL, 0);
    check_answer(on, CCID_RDR_TO_PC_DATA_BLOCK, 3, CCID_COMMAND_FAILED, CCID_ERR_ICC_MUTE);
    g_assert_cmphex(on->data[7] & 3, ==, CCID_ICC_ABSENT);
    ccid_inproc_free(h);
}

/* Commands that need a card, without one: ICC_MUTE, whatever the command. */
static void test_no_card_parameters(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, false);
    const uint8_t t0[5] = { 0x11, 0x00, 0x00, 0x0a, 0x00 };
    g_autoptr(GByteArray) get = transact(h, CCID_PC_TO_RDR_GET_PARAMETERS, 1, NULL, NULL, 0);
    g_autoptr(GByteArray) reset = transact(h, CCID_PC_TO_RDR_RESET_PARAMETERS, 2, NULL, NULL, 0);
    g_autoptr(GByteArray) set = transact(h, CCID_PC_TO_RDR_SET_PARAMETERS, 3, NULL, t0, 5);

    check_answer(get, CCID_RDR_TO_PC_PARAMETERS, 1, CCID_COMMAND_FAILED, CCID_ERR_ICC_MUTE);
    g_assert_cmphex(get->data[7] & 3, ==, CCID_ICC_ABSENT);
    check_answer(reset, CCID_RDR_TO_PC_PARAMETERS, 2, CCID_COMMAND_FAILED, CCID_ERR_ICC_MUTE);
    check_answer(set, CCID_RDR_TO_PC_PARAMETERS, 3, CCID_COMMAND_FAILED, CCID_ERR_ICC_MUTE);
    ccid_inproc_free(h);
}

/*
 * Lengths the reader refuses: an APDU shorter than CLA INS P1 P2, a
 * SetDataRateAndClockFrequency without its 8 bytes, and a chained command
 * that grows past the largest extended APDU.
 */
static void test_bad_lengths(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    const uint8_t begin[3] = { 0, CCID_CHAIN_BEGIN, 0 };
    const uint8_t middle[3] = { 0, CCID_CHAIN_MIDDLE, 0 };
    g_autofree uint8_t *piece = g_malloc0(MAX_CHUNK);
    g_autoptr(GByteArray) shortapdu = NULL;
    g_autoptr(GByteArray) rate = NULL;
    GByteArray *a;
    uint32_t sent = 0;
    uint8_t seq = 4;

    power_on(h, 1);
    shortapdu = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, 2, NULL, (const uint8_t *)"ab", 2);
    check_answer(shortapdu, CCID_RDR_TO_PC_DATA_BLOCK, 2, CCID_COMMAND_FAILED,
                 CCID_OFFSET_LENGTH);
    rate = transact(h, CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK_FREQUENCY, 3, NULL, piece, 4);
    check_answer(rate, CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK_FREQUENCY, 3, CCID_COMMAND_FAILED,
                 CCID_OFFSET_LENGTH);
    a = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, seq, begin, piece, MAX_CHUNK);
    for (sent = MAX_CHUNK; sent <= ISO7816_MAX_APDU_COMMAND; sent += MAX_CHUNK) {
        check_answer(a, CCID_RDR_TO_PC_DATA_BLOCK, seq, CCID_COMMAND_OK, 0);
        g_assert_cmphex(a->data[9], ==, CCID_CHAIN_CONTINUE);
        g_byte_array_unref(a);
        a = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, ++seq, middle, piece, MAX_CHUNK);
    }
    /* The piece that went past 65,545 bytes is refused, and the chain is gone. */
    check_answer(a, CCID_RDR_TO_PC_DATA_BLOCK, seq, CCID_COMMAND_FAILED, CCID_ERR_XFR_OVERRUN);
    g_byte_array_unref(a);
    a = transact(h, CCID_PC_TO_RDR_XFR_BLOCK, ++seq, middle, piece, MAX_CHUNK);
    check_answer(a, CCID_RDR_TO_PC_DATA_BLOCK, seq, CCID_COMMAND_FAILED, CCID_OFFSET_SPECIFIC + 1);
    g_byte_array_unref(a);
    ccid_inproc_free(h);
}

static void test_parameters(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    const uint8_t t1[7] = { 0x11, 0x10, 0x00, 0x4d, 0x00, 0xfe, 0x00 };
    const uint8_t t0[5] = { 0x11, 0x00, 0x00, 0x0a, 0x00 };
    const uint8_t proto_t1[3] = { 1, 0, 0 };
    const uint8_t proto_t0[3] = { 0, 0, 0 };
    const uint8_t proto_bad[3] = { 5, 0, 0 };
    g_autoptr(GByteArray) get = NULL;
    g_autoptr(GByteArray) set1 = NULL;
    g_autoptr(GByteArray) set0 = NULL;
    g_autoptr(GByteArray) bad = NULL;
    g_autoptr(GByteArray) badlen = NULL;
    g_autoptr(GByteArray) reset = NULL;

    power_on(h, 1);
    get = transact(h, CCID_PC_TO_RDR_GET_PARAMETERS, 2, NULL, NULL, 0);
    check_answer(get, CCID_RDR_TO_PC_PARAMETERS, 2, CCID_COMMAND_OK, 0);
    /* The test card's ATR (TD1 = 0x80) names T=0 first. */
    g_assert_cmpuint(get->data[9], ==, 0);
    g_assert_cmpuint(get->len, ==, CCID_HEADER_SIZE + 5);
    set1 = transact(h, CCID_PC_TO_RDR_SET_PARAMETERS, 3, proto_t1, t1, 7);
    check_answer(set1, CCID_RDR_TO_PC_PARAMETERS, 3, CCID_COMMAND_OK, 0);
    g_assert_cmpmem(set1->data + CCID_HEADER_SIZE, 7, t1, 7);
    set0 = transact(h, CCID_PC_TO_RDR_SET_PARAMETERS, 4, proto_t0, t0, 5);
    check_answer(set0, CCID_RDR_TO_PC_PARAMETERS, 4, CCID_COMMAND_OK, 0);
    g_assert_cmpuint(set0->data[9], ==, 0);
    bad = transact(h, CCID_PC_TO_RDR_SET_PARAMETERS, 5, proto_bad, t0, 5);
    check_answer(bad, CCID_RDR_TO_PC_PARAMETERS, 5, CCID_COMMAND_FAILED, 7);
    badlen = transact(h, CCID_PC_TO_RDR_SET_PARAMETERS, 6, proto_t1, t0, 5);
    check_answer(badlen, CCID_RDR_TO_PC_PARAMETERS, 6, CCID_COMMAND_FAILED, 1);
    reset = transact(h, CCID_PC_TO_RDR_RESET_PARAMETERS, 7, NULL, NULL, 0);
    check_answer(reset, CCID_RDR_TO_PC_PARAMETERS, 7, CCID_COMMAND_OK, 0);
    g_assert_cmpuint(reset->data[9], ==, 0);
    g_assert_cmpmem(reset->data + CCID_HEADER_SIZE, 5, t0, 5);
    ccid_inproc_free(h);
}

static void test_unsupported_commands(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    static const struct { uint8_t cmd, answer; uint32_t len; } cases[] = {
        { CCID_PC_TO_RDR_ESCAPE, CCID_RDR_TO_PC_ESCAPE, 3 },
        { CCID_PC_TO_RDR_ICC_CLOCK, CCID_RDR_TO_PC_SLOT_STATUS, 0 },
        { CCID_PC_TO_RDR_T0_APDU, CCID_RDR_TO_PC_SLOT_STATUS, 0 },
        { CCID_PC_TO_RDR_SECURE, CCID_RDR_TO_PC_DATA_BLOCK, 4 },
        { CCID_PC_TO_RDR_MECHANICAL, CCID_RDR_TO_PC_SLOT_STATUS, 0 },
        { 0x99, CCID_RDR_TO_PC_SLOT_STATUS, 0 },
    };
    g_autoptr(GByteArray) rate = NULL;
    const uint8_t rate_req[8] = { 0 };

    power_on(h, 1);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GByteArray) a = transact(h, cases[i].cmd, 20 + i, NULL,
                                           (const uint8_t *)"abcd", cases[i].len);

        check_answer(a, cases[i].answer, 20 + i, CCID_COMMAND_FAILED, CCID_ERR_CMD_NOT_SUPPORTED);
        g_assert_cmpuint(a->len, ==, CCID_HEADER_SIZE);
    }
    rate = transact(h, CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK_FREQUENCY, 40, NULL, rate_req, 8);
    check_answer(rate, CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK_FREQUENCY, 40, CCID_COMMAND_OK, 0);
    g_assert_cmpuint(rate->len, ==, CCID_HEADER_SIZE + 8);
    ccid_inproc_free(h);
}

/* The first len bytes of msg as one bulk-out; the answer of type, to seq, fails with error. */
static GByteArray *send_failing(CCIDInprocHost *h, const uint8_t *msg, size_t len, uint8_t type,
                                uint8_t seq, uint8_t error)
{
    GByteArray *a;

    ccid_inproc_bulk_out(h, msg, len);
    a = ccid_inproc_read_answer(h);
    check_answer(a, type, seq, CCID_COMMAND_FAILED, error);
    return a;
}

static void test_malformed(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    uint8_t msg[CCID_HEADER_SIZE + 8] = { CCID_PC_TO_RDR_GET_SLOT_STATUS, 0, 0, 0, 0, 0, 1 };
    g_autoptr(GByteArray) a3 = NULL;
    g_autoptr(GByteArray) a4 = NULL;
    g_autoptr(GByteArray) ok = NULL;
    g_autofree uint8_t *big = g_malloc0(640);

    /* dwLength says 0 but 8 bytes follow: the length lies. */
    g_byte_array_unref(send_failing(h, msg, sizeof(msg), CCID_RDR_TO_PC_SLOT_STATUS, 1,
                                    CCID_OFFSET_LENGTH));
    /* dwLength 100 but the transfer ends after 8. */
    msg[0] = CCID_PC_TO_RDR_XFR_BLOCK;
    msg[1] = 100;
    msg[6] = 2;
    g_byte_array_unref(send_failing(h, msg, sizeof(msg), CCID_RDR_TO_PC_DATA_BLOCK, 2,
                                    CCID_OFFSET_LENGTH));
    /* Bad slot. */
    msg[0] = CCID_PC_TO_RDR_GET_SLOT_STATUS;
    msg[1] = 0;
    msg[5] = 3;
    msg[6] = 3;
    a3 = send_failing(h, msg, CCID_HEADER_SIZE, CCID_RDR_TO_PC_SLOT_STATUS, 3, CCID_OFFSET_SLOT);
    g_assert_cmphex(a3->data[7] & 3, ==, CCID_ICC_ABSENT);
    /* Longer than dwMaxCCIDMessageLength, sent in 64-byte packets then a short one. */
    msg[5] = 0;
    big[0] = CCID_PC_TO_RDR_XFR_BLOCK;
    big[1] = 0x70;
    big[2] = 0x02;
    big[6] = 4;
    for (int i = 0; i < 10; i++) {
        g_assert_cmpint(ccid_inproc_bulk_out(h, big + 64 * i, 64), ==, USB_RET_SUCCESS);
    }
    g_assert_null(ccid_inproc_read_answer(h));
    ccid_inproc_drain_completed(h);
    ccid_inproc_bulk_out(h, big, 0);
    a4 = ccid_inproc_read_answer(h);
    check_answer(a4, CCID_RDR_TO_PC_DATA_BLOCK, 4, CCID_COMMAND_FAILED, CCID_OFFSET_LENGTH);
    /* A 7-byte fragment: enough to answer. */
    msg[6] = 5;
    g_byte_array_unref(send_failing(h, msg, 7, CCID_RDR_TO_PC_SLOT_STATUS, 5, CCID_OFFSET_LENGTH));
    /* A 3-byte fragment cannot be answered; it is dropped. */
    ccid_inproc_bulk_out(h, msg, 3);
    /* Power-on with a bad bPowerSelect. */
    msg[0] = CCID_PC_TO_RDR_ICC_POWER_ON;
    msg[6] = 6;
    msg[7] = 9;
    g_byte_array_unref(send_failing(h, msg, CCID_HEADER_SIZE, CCID_RDR_TO_PC_DATA_BLOCK, 6,
                                    CCID_OFFSET_SPECIFIC));
    /* And the reader still works. */
    ok = transact(h, CCID_PC_TO_RDR_GET_SLOT_STATUS, 7, NULL, NULL, 0);
    check_answer(ok, CCID_RDR_TO_PC_SLOT_STATUS, 7, CCID_COMMAND_OK, 0);
    g_assert_null(ccid_inproc_read_answer(h));
    ccid_inproc_free(h);
}

/* A host that writes without reading is held back, and loses nothing. */
static void test_backpressure(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    unsigned held = 0;

    for (unsigned seq = 0; seq < 100; seq++) {
        int st = ccid_inproc_send(h, CCID_PC_TO_RDR_GET_SLOT_STATUS, seq, no_specific, NULL, 0);

        held += st == USB_RET_ASYNC;
    }
    g_assert_cmpuint(held, >, 0);
    for (unsigned seq = 0; seq < 100; seq++) {
        g_autoptr(GByteArray) a = ccid_inproc_read_answer(h);

        check_answer(a, CCID_RDR_TO_PC_SLOT_STATUS, seq & 0xff, CCID_COMMAND_OK, 0);
    }
    g_assert_null(ccid_inproc_read_answer(h));
    g_assert_true(g_queue_is_empty(&h->in_flight) ||
                  ((USBPacket *)h->in_flight.head->data)->pid == USB_TOKEN_IN);
    ccid_inproc_free(h);
}

static void test_class_requests(void)
{
    CCIDInprocHost *h = ccid_inproc_new(NULL, true);
    uint8_t buf[64];
    size_t n = 0;

    g_assert_cmpint(ccid_inproc_control(h, 0xa1, CCID_REQUEST_GET_CLOCK_FREQUENCIES, 0, 0, buf,
                                      sizeof(buf), &n), ==, USB_RET_SUCCESS);
    g_assert_cmpuint(n, ==, 4);
    g_assert_cmpuint(buf[0] | buf[1] << 8, ==, 3580);
    g_assert_cmpint(ccid_inproc_control(h, 0xa1, CCID_REQUEST_GET_DATA_RATES, 0, 0, buf,
                                      sizeof(buf), &n), ==, USB_RET_SUCCESS);
    g_assert_cmpuint(n, ==, 4);
    g_assert_cmpuint(buf[0] | buf[1] << 8, ==, 9600);
    g_assert_cmpint(ccid_inproc_control(h, 0xa1, 0x7f, 0, 0, buf, sizeof(buf), &n), ==,
                    USB_RET_STALL);
    ccid_inproc_free(h);
}

static void test_descriptors(void)
{
    CCIDInprocHost *h = ccid_inproc_new("usb-ccid,id=reader,vendorid=0x1234,productid=0x5678,"
                                "serial=XYZ", true);
    uint8_t buf[256];
    size_t n = 0;

    g_assert_cmpint(ccid_inproc_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, USB_DT_DEVICE << 8, 0,
                                      buf, 18, &n), ==, USB_RET_SUCCESS);
    g_assert_cmpuint(n, ==, 18);
    g_assert_cmpuint(buf[8] | buf[9] << 8, ==, 0x1234);
    g_assert_cmpuint(buf[10] | buf[11] << 8, ==, 0x5678);
    g_assert_cmpint(ccid_inproc_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, USB_DT_CONFIG << 8, 0,
                                      buf, sizeof(buf), &n), ==, USB_RET_SUCCESS);
    g_assert_cmpuint(n, ==, 9 + 9 + 0x36 + 3 * 7);
    g_assert_cmpuint(buf[2] | buf[3] << 8, ==, n);
    g_assert_cmphex(buf[14], ==, 0x0b);          /* interface class: smart card */
    g_assert_cmphex(buf[19], ==, 0x21);          /* CCID class descriptor */
    g_assert_cmpuint(buf[18 + 44] | buf[18 + 45] << 8, ==, 271);   /* dwMaxCCIDMessageLength */
    g_assert_cmpuint(buf[18 + 52], ==, 0);       /* bPINSupport: none */
    g_assert_cmpint(ccid_inproc_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, USB_DT_STRING << 8 | 3,
                                      0x409, buf, sizeof(buf), &n), ==, USB_RET_SUCCESS);
    g_assert_cmpuint(n, ==, 8);
    g_assert_cmpuint(buf[2], ==, 'X');
    g_assert_cmpint(ccid_inproc_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, USB_DT_STRING << 8 | 99,
                                      0x409, buf, sizeof(buf), &n), ==, USB_RET_STALL);
    /* USB 2.0 9.6.2 / 9.4.5: full speed only; bus powered as bmAttributes says. */
    g_assert_cmpint(ccid_inproc_control(h, 0x80, USB_REQ_GET_DESCRIPTOR,
                                      USB_DT_DEVICE_QUALIFIER << 8, 0, buf, 10, &n), ==,
                    USB_RET_STALL);
    g_assert_cmpint(ccid_inproc_control(h, 0x80, USB_REQ_GET_STATUS, 0, 0, buf, 2, &n), ==,
                    USB_RET_SUCCESS);
    g_assert_cmphex(buf[0] & 1, ==, 0);
    {
        /* A host may ask for fewer bytes than the answer has: no more is written. */
        g_autofree uint8_t *one = g_malloc(1);

        g_assert_cmpint(ccid_inproc_control(h, 0x80, USB_REQ_GET_STATUS, 0, 0, one, 1, &n), ==,
                        USB_RET_SUCCESS);
        g_assert_cmpuint(n, ==, 1);
        g_assert_cmpint(ccid_inproc_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, USB_DT_CONFIG << 8,
                                          0, one, 1, &n), ==, USB_RET_SUCCESS);
        g_assert_cmpuint(n, ==, 1);
        g_assert_cmpuint(one[0], ==, 9);
    }
    ccid_inproc_free(h);
}

static const TestCase cases[] = {
    { "/ccid-reader/power-on", test_power_on_atr },
    { "/ccid-reader/no-card", test_no_card },
    { "/ccid-reader/xfr-unpowered", test_xfr_unpowered },
    { "/ccid-reader/answer-lengths", test_answer_lengths },
    { "/ccid-reader/short-bulk-in", test_short_bulk_in },
    { "/ccid-reader/zlp", test_zlp },
    { "/ccid-reader/command-chaining", test_command_chaining },
    { "/ccid-reader/chain-errors", test_chain_errors },
    { "/ccid-reader/ordering-slow-card", test_ordering_with_slow_card },
    { "/ccid-reader/time-extension", test_time_extension },
    { "/ccid-reader/abort-in-flight", test_abort_in_flight },
    { "/ccid-reader/reset-in-flight", test_reset_in_flight },
    { "/ccid-reader/card-removed-in-flight", test_card_removed_in_flight },
    { "/ccid-reader/card-unplugged", test_card_unplugged },
    { "/ccid-reader/parameters", test_parameters },
    { "/ccid-reader/no-card-parameters", test_no_card_parameters },
    { "/ccid-reader/bad-lengths", test_bad_lengths },
    { "/ccid-reader/unsupported", test_unsupported_commands },
    { "/ccid-reader/malformed", test_malformed },
    { "/ccid-reader/backpressure", test_backpressure },
    { "/ccid-reader/class-requests", test_class_requests },
    { "/ccid-reader/descriptors", test_descriptors },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
    test_add_cases(cases);
    return g_test_run();
}
