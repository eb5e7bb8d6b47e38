/*
 * What the test-usb-ccid-*.c qtests share (see usb-ccid-common.h).
 */
#include "usb-ccid-common.h"

const uint8_t select_pki0[12] = {
    0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00,
};

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->vccid = vccid_start_default();
    f->c = ccid_host_open(f->vccid->sock_path);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    /* No completion may arrive for a packet that had none pending. */
    if (f->c) {
        g_assert_cmpuint(urh_stray_completions(f->c->usb), ==, 0);
    }
    ccid_host_free(f->c);
    vccid_stop(f->vccid);
}

typedef struct QueuedTest {
    const char *path;
    UsbCcidTestFunc *fixture_fn;
    void (*plain_fn)(void);
} QueuedTest;

/* Filled by constructors, before main(). */
static GQueue queued_tests = G_QUEUE_INIT;

void usb_ccid_queue_test(const char *path, UsbCcidTestFunc *fixture_fn, void (*plain_fn)(void))
{
    QueuedTest *t = g_new(QueuedTest, 1);

    *t = (QueuedTest){ path, fixture_fn, plain_fn };
    g_queue_push_tail(&queued_tests, t);
}

void usb_ccid_add_queued_tests(void)
{
    QueuedTest *t;

    while ((t = g_queue_pop_head(&queued_tests))) {
        if (t->fixture_fn) {
            g_test_add(t->path, Fixture, NULL, fixture_setup, t->fixture_fn, fixture_teardown);
        } else {
            g_test_add_func(t->path, t->plain_fn);
        }
        g_free(t);
    }
}

void assert_ok(const CcidAnswer *a)
{
    if (CMD_STATUS(a->status) != CMD_OK) {
        g_error("answer %02x seq %u failed: bStatus %02x bError %02x", a->type, a->seq,
                a->status, a->error);
    }
}

void assert_failed(const CcidAnswer *a, uint8_t error)
{
    if (CMD_STATUS(a->status) != CMD_FAILED || a->error != error) {
        g_error("answer %02x seq %u: expected failure with bError %02x, got "
                "bStatus %02x bError %02x", a->type, a->seq, error, a->status, a->error);
    }
}

bool is_not_supported(const CcidAnswer *a)
{
    return CMD_STATUS(a->status) == CMD_FAILED && a->error == CCID_ERR_CMD_NOT_SUPPORTED;
}

void assert_ok_or_not_supported(const CcidAnswer *a)
{
    if (!is_not_supported(a)) {
        assert_ok(a);
    }
}

void assert_slot_works(CcidHost *c)
{
    g_autoptr(CcidAnswer) a = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, 0, 0, NULL, 0);

    assert_ok(a);
}

void assert_apdus_work(CcidHost *c)
{
    g_autoptr(GByteArray) r = ccid_transmit(c, select_pki0, sizeof(select_pki0));

    g_assert_true(apdu_sw(r) == 0x9000 || (apdu_sw(r) >> 8) == 0x61);
}

void assert_no_more_answers(CcidHost *c)
{
    UrhTransfer *t = urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size);

    urh_idle(c->usb, 200);
    if (t->done) {
        g_error("unexpected bulk-in data (%u bytes, status %u, type %02x seq %u)",
                t->data->len, t->status, t->data->len ? t->data->data[0] : 0,
                t->data->len > 6 ? t->data->data[6] : 0);
    }
    urh_cancel(c->usb, t);
    g_assert_true(urh_wait(c->usb, t, URH_TIMEOUT_MS));
    g_assert_cmpuint(t->status, ==, usb_redir_cancelled);
    g_assert_cmpuint(t->data->len, ==, 0);
    urh_transfer_release(c->usb, t);
}

void check_atr(const GByteArray *atr)
{
    g_assert_cmpuint(atr->len, >=, 2);
    g_assert_cmpuint(atr->len, <=, 33);
    g_assert_true(atr->data[0] == 0x3b || atr->data[0] == 0x3f);   /* TS */
}

void check_notify(const CcidHost *c, const GByteArray *n, bool present)
{
    unsigned bytes = 1 + ((c->desc.bMaxSlotIndex + 1) * 2 + 7) / 8;

    g_assert_nonnull(n);
    g_assert_cmpuint(n->len, ==, bytes);
    g_assert_cmphex(n->data[0], ==, RDR_to_PC_NotifySlotChange);
    g_assert_cmpuint(n->data[1] & 1, ==, present);
    /* Slots that do not exist report nothing. */
    g_assert_cmpuint(n->data[1] & 0xfc, ==, 0);
}

GByteArray *next_slot_notify(CcidHost *c, gint64 deadline)
{
    while (g_get_monotonic_time() < deadline) {
        GByteArray *n = urh_wait_interrupt(c->usb, c->ep_int_in, 200);

        if (n) {
            g_assert_cmpuint(n->len, >=, 2);
            g_assert_cmphex(n->data[0], ==, RDR_to_PC_NotifySlotChange);
            return n;
        }
    }
    return NULL;
}

GByteArray *read_buffer(CcidHost *c, uint16_t offset, uint8_t count)
{
    uint8_t apdu[] = { 0x80, CAC_READ_BUFFER, offset >> 8, offset & 0xff, 0x02,
                       CAC_VALUE_BUFFER, count, 0x00 };

    return ccid_xfr_apdu(c, apdu, sizeof(apdu));
}

GByteArray *read_value_buffer(CcidHost *c)
{
    g_autoptr(GByteArray) head = read_buffer(c, 0, 2);
    GByteArray *all = g_byte_array_new();
    size_t total;

    g_assert_cmphex(apdu_sw(head), ==, 0x9000);
    g_assert_cmpuint(head->len, ==, 4);
    total = 2 + le16(head->data);
    while (all->len < total) {
        uint8_t n = MIN(255, total - all->len);
        g_autoptr(GByteArray) r = read_buffer(c, all->len, n);

        g_assert_cmphex(apdu_sw(r), ==, 0x9000);
        g_assert_cmpuint(r->len, ==, n + 2u);
        g_byte_array_append(all, r->data, n);
    }
    return all;
}

void select_pki(CcidHost *c, uint8_t n)
{
    uint8_t apdu[sizeof(select_pki0)];
    g_autoptr(GByteArray) r = NULL;

    memcpy(apdu, select_pki0, sizeof(apdu));
    apdu[sizeof(apdu) - 1] = n;
    r = ccid_transmit(c, apdu, sizeof(apdu));
    g_assert_cmphex(apdu_sw(r), ==, 0x9000);
}

GByteArray *sign_piece_apdu(size_t len)
{
    GByteArray *a = g_byte_array_new();
    size_t lc;

    g_byte_array_append(a, (uint8_t[]){ 0x80, CAC_SIGN_DECRYPT, 0x80, 0x00 }, 4);
    if (len <= 4 + 1 + 255) {
        lc = len - 5;
        g_assert_cmpuint(lc, >=, 1);
        g_byte_array_append(a, (uint8_t[]){ lc }, 1);
    } else {
        lc = len - 7;
        g_assert_cmpuint(lc, <=, 65535);
        g_byte_array_append(a, (uint8_t[]){ 0x00, lc >> 8, lc & 0xff }, 3);
    }
    for (size_t i = 0; i < lc; i++) {
        g_byte_array_append(a, (uint8_t[]){ i & 0xff }, 1);
    }
    return a;
}

void use_reader(CcidHost *c)
{
    g_autoptr(GByteArray) atr = ccid_power_on(c);
    g_autoptr(GByteArray) r = NULL;

    check_atr(atr);
    select_pki(c, 0);
    r = read_buffer(c, 0, 2);
    g_assert_cmphex(apdu_sw(r), ==, 0x9000);
}

GByteArray *sign_256(CcidHost *c)
{
    uint8_t part1[5 + 128], part2[5 + 128 + 1];

    /* A PKCS#1 type 1 block below the modulus, sent in two chained CAC pieces. */
    memset(part1, 0xff, sizeof(part1));
    memset(part2, 0xff, sizeof(part2));
    memcpy(part1, (uint8_t[]){ 0x80, CAC_SIGN_DECRYPT, 0x80, 0x00, 128, 0x00, 0x01 }, 7);
    memcpy(part2, (uint8_t[]){ 0x80, CAC_SIGN_DECRYPT, 0x00, 0x00, 128 }, 5);
    part2[5 + 128 - 21] = 0x00;
    part2[sizeof(part2) - 1] = 0x00;          /* Le: 256 */
    g_autoptr(GByteArray) r1 = ccid_xfr_apdu(c, part1, sizeof(part1));
    g_assert_cmphex(apdu_sw(r1), ==, 0x9000);
    return ccid_xfr_apdu(c, part2, sizeof(part2));
}
