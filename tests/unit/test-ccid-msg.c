/*
 * Unit tests of the bulk-in splitter (proto/ccid-msg.c), alone and as the
 * mirror of the bulk-out assembler.
 */
#include <stdarg.h>
#include <string.h>

#include "proto/ccid.h"

/* Queue a DataBlock of len payload bytes (i & 0xff) with this bSeq. */
static void push_block(CCIDSplitter *sp, uint8_t seq, uint32_t len)
{
    g_autofree uint8_t *data = g_malloc(MAX(len, 1));
    CCIDHeader h = {
        .bMessageType = CCID_RDR_TO_PC_DATA_BLOCK,
        .dwLength = len,
        .bSeq = seq,
        .specific = { CCID_ICC_PRESENT_ACTIVE, 0, CCID_CHAIN_NONE },
    };

    for (uint32_t i = 0; i < len; i++) {
        data[i] = i & 0xff;
    }
    ccid_splitter_push(sp, &h, data);
}

static void check_header(const uint8_t *buf, uint8_t seq, uint32_t len)
{
    CCIDHeader h;

    ccid_header_parse(buf, &h);
    g_assert_cmphex(h.bMessageType, ==, CCID_RDR_TO_PC_DATA_BLOCK);
    g_assert_cmpuint(h.dwLength, ==, len);
    g_assert_cmpuint(h.bSeq, ==, seq);
}

typedef struct Fixture {
    CCIDSplitter sp;
    uint8_t buf[1024];
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer max_packet)
{
    ccid_splitter_init(&f->sp, GPOINTER_TO_UINT(max_packet));
}

static void fixture_teardown(Fixture *f, gconstpointer max_packet)
{
    ccid_splitter_destroy(&f->sp);
}

#define DRAINED (-1)   /* ends expect_pulls(): nothing more is ready */
#define MORE    (-2)   /* ends expect_pulls(): more is ready */

/* Pull packets of room bytes into f->buf, expecting these lengths in turn. */
static void expect_pulls(Fixture *f, size_t room, ...)
{
    va_list ap;
    int want;

    va_start(ap, room);
    while ((want = va_arg(ap, int)) >= 0) {
        g_assert_true(ccid_splitter_ready(&f->sp));
        g_assert_cmpint(ccid_splitter_pull(&f->sp, f->buf, room), ==, want);
    }
    va_end(ap);
    g_assert_true(ccid_splitter_ready(&f->sp) == (want == MORE));
}

static void test_whole_message(Fixture *f, gconstpointer data)
{
    g_assert_false(ccid_splitter_ready(&f->sp));
    g_assert_cmpuint(ccid_splitter_pull(&f->sp, f->buf, 512), ==, 0);
    push_block(&f->sp, 3, 20);
    g_assert_cmpuint(ccid_splitter_queued(&f->sp), ==, 1);
    expect_pulls(f, 512, CCID_HEADER_SIZE + 20, DRAINED);
    check_header(f->buf, 3, 20);
    g_assert_cmpuint(f->buf[CCID_HEADER_SIZE + 19], ==, 19);
    g_assert_cmpuint(ccid_splitter_queued(&f->sp), ==, 0);
}

/* Packet by packet (UHCI): a message ending on a full packet is ended by a ZLP. */
static void test_zlp_after_full_packet(Fixture *f, gconstpointer data)
{
    push_block(&f->sp, 1, 128 - CCID_HEADER_SIZE);
    expect_pulls(f, 64, 64, MORE);
    check_header(f->buf, 1, 128 - CCID_HEADER_SIZE);
    /* Partly sent: still queued. */
    g_assert_cmpuint(ccid_splitter_queued(&f->sp), ==, 1);
    expect_pulls(f, 64, 64, MORE);
    g_assert_cmpuint(f->buf[63], ==, (128 - CCID_HEADER_SIZE - 1) & 0xff);
    g_assert_cmpuint(ccid_splitter_queued(&f->sp), ==, 0);
    expect_pulls(f, 64, 0, DRAINED);
}

/* Whole transfers (xHCI, EHCI), short packets, small buffers: no ZLP. */
static void test_no_stray_zlp(Fixture *f, gconstpointer data)
{
    push_block(&f->sp, 1, 128 - CCID_HEADER_SIZE);
    expect_pulls(f, 512, 128, DRAINED);
    /* Exactly one packet's worth, read as part of a larger transfer. */
    push_block(&f->sp, 1, 64 - CCID_HEADER_SIZE);
    expect_pulls(f, 512, 64, DRAINED);
    push_block(&f->sp, 2, 30);
    expect_pulls(f, 64, 40, DRAINED);
    /* A 16-byte buffer is not a full packet, even when the message ends on it. */
    push_block(&f->sp, 3, 32 - CCID_HEADER_SIZE);
    expect_pulls(f, 16, 16, 16, DRAINED);
}

/* One message per transfer: a large buffer never gets the start of the next. */
static void test_one_message_per_transfer(Fixture *f, gconstpointer data)
{
    push_block(&f->sp, 1, 0);
    push_block(&f->sp, 2, 5);
    push_block(&f->sp, 3, 261);
    g_assert_cmpuint(ccid_splitter_queued(&f->sp), ==, 3);
    expect_pulls(f, 512, CCID_HEADER_SIZE, MORE);
    check_header(f->buf, 1, 0);
    expect_pulls(f, 512, CCID_HEADER_SIZE + 5, MORE);
    check_header(f->buf, 2, 5);
    expect_pulls(f, 100, 100, MORE);
    check_header(f->buf, 3, 261);
    expect_pulls(f, 512, CCID_HEADER_SIZE + 261 - 100, DRAINED);
    g_assert_cmpuint(f->buf[0], ==, (100 - CCID_HEADER_SIZE) & 0xff);
}

/* A reset drops messages, a partly sent one and a due ZLP, and takes a new size. */
static void test_reset(Fixture *f, gconstpointer data)
{
    push_block(&f->sp, 1, 64 - CCID_HEADER_SIZE);
    expect_pulls(f, 64, 64, MORE);                 /* the ZLP is due */
    push_block(&f->sp, 2, 300);
    ccid_splitter_reset(&f->sp, 512);
    g_assert_false(ccid_splitter_ready(&f->sp));
    g_assert_cmpuint(ccid_splitter_queued(&f->sp), ==, 0);
    /* 64 is no longer a full packet: no ZLP follows. */
    push_block(&f->sp, 4, 64 - CCID_HEADER_SIZE);
    expect_pulls(f, 64, 64, DRAINED);
    check_header(f->buf, 4, 64 - CCID_HEADER_SIZE);
    push_block(&f->sp, 5, 512 - CCID_HEADER_SIZE);
    expect_pulls(f, 512, 512, 0, DRAINED);
}

/*
 * The splitter is the assembler's mirror: what one cuts into packets of the
 * endpoint's size, the other puts back together, ZLPs included.
 */
static void test_round_trip(void)
{
    static const uint32_t lengths[] = { 0, 1, 54, 118, 128 - CCID_HEADER_SIZE, 200, 261, 254 };
    const size_t mps = 64;
    CCIDSplitter sp;
    CCIDAssembler a;
    unsigned got = 0;
    uint8_t buf[64];

    ccid_splitter_init(&sp, mps);
    ccid_assembler_init(&a, 271, mps);
    for (unsigned i = 0; i < G_N_ELEMENTS(lengths); i++) {
        push_block(&sp, i, lengths[i]);
    }
    while (ccid_splitter_ready(&sp)) {
        size_t n = ccid_splitter_pull(&sp, buf, mps);
        CCIDAssembled msg;

        switch (ccid_assembler_push(&a, buf, n, &msg)) {
        case CCID_ASM_MESSAGE:
            g_assert_cmpuint(got, <, G_N_ELEMENTS(lengths));
            g_assert_cmpuint(msg.hdr.bSeq, ==, got);
            g_assert_cmpuint(msg.len, ==, lengths[got]);
            for (uint32_t j = 0; j < msg.len; j++) {
                g_assert_cmpuint(msg.payload[j], ==, j & 0xff);
            }
            got++;
            break;
        case CCID_ASM_NEED_MORE:
            break;
        default:
            g_assert_not_reached();
        }
    }
    g_assert_cmpuint(got, ==, G_N_ELEMENTS(lengths));
    ccid_assembler_destroy(&a);
    ccid_splitter_destroy(&sp);
}

static const struct {
    const char *path;
    guint max_packet;
    void (*fn)(Fixture *f, gconstpointer max_packet);
} splitter_cases[] = {
    { "whole-message", 64, test_whole_message },
    { "zlp-after-full-packet", 64, test_zlp_after_full_packet },
    { "no-stray-zlp", 64, test_no_stray_zlp },
    { "one-message-per-transfer", 512, test_one_message_per_transfer },
    { "reset", 64, test_reset },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (unsigned i = 0; i < G_N_ELEMENTS(splitter_cases); i++) {
        g_autofree char *path = g_strdup_printf("/ccid-msg/splitter/%s", splitter_cases[i].path);

        g_test_add(path, Fixture, GUINT_TO_POINTER(splitter_cases[i].max_packet), fixture_setup,
                   splitter_cases[i].fn, fixture_teardown);
    }
    g_test_add_func("/ccid-msg/splitter/round-trip", test_round_trip);
    return g_test_run();
}
