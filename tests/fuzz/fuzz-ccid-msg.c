/*
 * libFuzzer target: the bulk-in splitter (proto/ccid-msg.c) against a model.
 *
 * The input is a script: each op byte pushes a message of a chosen length,
 * pulls a packet into a buffer of a chosen size, or resets with another
 * packet size. Every byte pulled must be the next byte of the oldest
 * message, no packet may hold bytes of two messages, and a zero-length
 * packet may come only right after a full packet that ended a message.
 */
#include "proto/ccid.h"
#include "fuzz-input.h"

#include <string.h>

typedef struct Model {
    GQueue messages;         /* GByteArray *: what the splitter should hand out */
    size_t offset;           /* bytes of the head already pulled */
    size_t max_packet;
    bool zlp_due;
} Model;

static void model_clear(Model *m, size_t max_packet)
{
    g_queue_clear_full(&m->messages, (GDestroyNotify)g_byte_array_unref);
    m->offset = 0;
    m->max_packet = max_packet;
    m->zlp_due = false;
}

static void do_push(CCIDSplitter *sp, Model *m, FuzzInput *in)
{
    uint32_t len = fuzz_take_u16(in) % 1024;
    GByteArray *msg = g_byte_array_sized_new(CCID_HEADER_SIZE + len);
    CCIDHeader h = {
        .bMessageType = CCID_RDR_TO_PC_DATA_BLOCK | (fuzz_take_byte(in) & 7),
        .dwLength = len,
        .bSeq = fuzz_take_byte(in),
    };

    g_byte_array_set_size(msg, CCID_HEADER_SIZE + len);
    ccid_header_write(msg->data, &h);
    for (uint32_t i = 0; i < len; i++) {
        msg->data[CCID_HEADER_SIZE + i] = (i * 7 + h.bSeq) & 0xff;
    }
    ccid_splitter_push(sp, &h, msg->data + CCID_HEADER_SIZE);
    g_queue_push_tail(&m->messages, msg);
}

static void do_pull(CCIDSplitter *sp, Model *m, FuzzInput *in)
{
    size_t room = fuzz_take_u16(in) % 1100;
    g_autofree uint8_t *buf = g_malloc(room + 1);
    GByteArray *head = g_queue_peek_head(&m->messages);
    bool ready = ccid_splitter_ready(sp);
    size_t n;

    g_assert_true(ready == (m->zlp_due || head != NULL));
    g_assert_cmpuint(ccid_splitter_queued(sp), ==, g_queue_get_length(&m->messages));
    n = ccid_splitter_pull(sp, buf, room);
    if (m->zlp_due) {
        g_assert_cmpuint(n, ==, 0);
        m->zlp_due = false;
        return;
    }
    if (!head) {
        g_assert_cmpuint(n, ==, 0);
        return;
    }
    g_assert_cmpuint(n, ==, MIN(room, head->len - m->offset));
    g_assert_true(memcmp(buf, head->data + m->offset, n) == 0);
    m->offset += n;
    if (m->offset == head->len) {
        g_byte_array_unref(g_queue_pop_head(&m->messages));
        m->offset = 0;
        m->zlp_due = room == m->max_packet && n == m->max_packet;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzInput in = { data, size };
    CCIDSplitter sp;
    Model m = { G_QUEUE_INIT, 0, 64, false };

    ccid_splitter_init(&sp, 64);
    while (in.len) {
        switch (fuzz_take_byte(&in) % 8) {
        case 0: case 1: case 2:
            do_push(&sp, &m, &in);
            break;
        case 3: case 4: case 5: case 6:
            do_pull(&sp, &m, &in);
            break;
        case 7: {
            size_t mps = fuzz_take_byte(&in) & 1 ? 512 : 64;

            ccid_splitter_reset(&sp, mps);
            model_clear(&m, mps);
            break;
        }
        }
    }
    ccid_splitter_destroy(&sp);
    model_clear(&m, 0);
    return 0;
}
