/*
 * Unit tests of the bulk-in splitter (proto/ccid-msg.c), alone and as the
 * mirror of the bulk-out assembler.
 */
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

static void test_whole_message(void)
{
    CCIDSplitter sp;
    uint8_t buf[512];

    ccid_splitter_init(&sp, 64);
    g_assert_false(ccid_splitter_ready(&sp));
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, sizeof(buf)), ==, 0);
    push_block(&sp, 3, 20);
    g_assert_true(ccid_splitter_ready(&sp));
    g_assert_cmpuint(ccid_splitter_queued(&sp), ==, 1);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, sizeof(buf)), ==, CCID_HEADER_SIZE + 20);
    check_header(buf, 3, 20);
    g_assert_cmpuint(buf[CCID_HEADER_SIZE + 19], ==, 19);
    g_assert_false(ccid_splitter_ready(&sp));
    g_assert_cmpuint(ccid_splitter_queued(&sp), ==, 0);
    ccid_splitter_destroy(&sp);
}

/* Packet by packet (UHCI): a message ending on a full packet is ended by a ZLP. */
static void test_zlp_after_full_packet(void)
{
    CCIDSplitter sp;
    uint8_t buf[64];

    ccid_splitter_init(&sp, 64);
    push_block(&sp, 1, 128 - CCID_HEADER_SIZE);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, 64), ==, 64);
    check_header(buf, 1, 128 - CCID_HEADER_SIZE);
    /* Partly sent: still queued. */
    g_assert_cmpuint(ccid_splitter_queued(&sp), ==, 1);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, 64), ==, 64);
    g_assert_cmpuint(buf[63], ==, (128 - CCID_HEADER_SIZE - 1) & 0xff);
    g_assert_cmpuint(ccid_splitter_queued(&sp), ==, 0);
    g_assert_true(ccid_splitter_ready(&sp));
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, 64), ==, 0);
    g_assert_false(ccid_splitter_ready(&sp));
    ccid_splitter_destroy(&sp);
}

/* Whole transfers (xHCI, EHCI), short packets, small buffers: no ZLP. */
static void test_no_stray_zlp(void)
{
    CCIDSplitter sp;
    uint8_t buf[512];

    ccid_splitter_init(&sp, 64);
    push_block(&sp, 1, 128 - CCID_HEADER_SIZE);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, 512), ==, 128);
    g_assert_false(ccid_splitter_ready(&sp));

    push_block(&sp, 2, 30);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, 64), ==, 40);
    g_assert_false(ccid_splitter_ready(&sp));

    /* A 16-byte buffer is not a full packet, even when the message ends on it. */
    push_block(&sp, 3, 32 - CCID_HEADER_SIZE);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, 16), ==, 16);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, 16), ==, 16);
    g_assert_false(ccid_splitter_ready(&sp));
    ccid_splitter_destroy(&sp);
}

/* One message per transfer: a large buffer never gets the start of the next. */
static void test_one_message_per_transfer(void)
{
    CCIDSplitter sp;
    uint8_t buf[512];

    ccid_splitter_init(&sp, 512);
    push_block(&sp, 1, 0);
    push_block(&sp, 2, 5);
    push_block(&sp, 3, 261);
    g_assert_cmpuint(ccid_splitter_queued(&sp), ==, 3);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, sizeof(buf)), ==, CCID_HEADER_SIZE);
    check_header(buf, 1, 0);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, sizeof(buf)), ==, CCID_HEADER_SIZE + 5);
    check_header(buf, 2, 5);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, 100), ==, 100);
    check_header(buf, 3, 261);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, sizeof(buf)), ==, CCID_HEADER_SIZE + 261 - 100);
    g_assert_cmpuint(buf[0], ==, (100 - CCID_HEADER_SIZE) & 0xff);
    g_assert_false(ccid_splitter_ready(&sp));
    ccid_splitter_destroy(&sp);
}

/* A reset drops messages, a partly sent one and a due ZLP, and takes a new size. */
static void test_reset(void)
{
    CCIDSplitter sp;
    uint8_t buf[512];

    ccid_splitter_init(&sp, 64);
    push_block(&sp, 1, 64 - CCID_HEADER_SIZE);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, 64), ==, 64);
    g_assert_true(ccid_splitter_ready(&sp));          /* the ZLP */
    push_block(&sp, 2, 300);
    ccid_splitter_reset(&sp, 512);
    g_assert_false(ccid_splitter_ready(&sp));
    g_assert_cmpuint(ccid_splitter_queued(&sp), ==, 0);
    push_block(&sp, 4, 64 - CCID_HEADER_SIZE);
    /* 64 is no longer a full packet: no ZLP follows. */
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, 64), ==, 64);
    check_header(buf, 4, 64 - CCID_HEADER_SIZE);
    g_assert_false(ccid_splitter_ready(&sp));
    push_block(&sp, 5, 512 - CCID_HEADER_SIZE);
    g_assert_cmpuint(ccid_splitter_pull(&sp, buf, 512), ==, 512);
    g_assert_true(ccid_splitter_ready(&sp));
    ccid_splitter_destroy(&sp);
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

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ccid-msg/splitter/whole-message", test_whole_message);
    g_test_add_func("/ccid-msg/splitter/zlp-after-full-packet", test_zlp_after_full_packet);
    g_test_add_func("/ccid-msg/splitter/no-stray-zlp", test_no_stray_zlp);
    g_test_add_func("/ccid-msg/splitter/one-message-per-transfer", test_one_message_per_transfer);
    g_test_add_func("/ccid-msg/splitter/reset", test_reset);
    g_test_add_func("/ccid-msg/splitter/round-trip", test_round_trip);
    return g_test_run();
}
