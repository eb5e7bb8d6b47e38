/*
 * ccid-card-test: see ccid-test-card.h.
 */
#include "ccid-test-card.h"

#include <string.h>

static const uint8_t test_atr[] = { 0x3b, 0x88, 0x80, 0x01, 'v', 'c', 'c', 'i', 'd', 't', 's', 't', 0x0c };

struct TestCard {
    CCIDCardState base;
    bool hold;
    bool present;
    GQueue held;             /* GByteArray * answers */
};

#define TYPE_TEST_CARD "ccid-card-test"
#define TEST_CARD(obj) DEVICE_CHECK(TestCard, (obj), TYPE_TEST_CARD)

static TestCard *the_card;

/*
 * A real card calls the reader from a main-loop callback, and the reader
 * acts on it when that callback returns (its wakeup source runs next). Do
 * the same after each call made from outside the reader.
 */
static void test_card_settle(void)
{
    while (g_main_context_pending(NULL)) {
        g_main_context_iteration(NULL, FALSE);
    }
}

uint32_t test_card_answer(const uint8_t *apdu, uint32_t len, uint8_t *out, uint32_t out_size)
{
    uint32_t n;

    if (len >= 4 && apdu[1] == TEST_CARD_INS_GET_LENGTH) {
        n = MIN((uint32_t)(apdu[2] << 8 | apdu[3]), out_size - 2);
        for (uint32_t i = 0; i < n; i++) {
            out[i] = i & 0xff;
        }
    } else {
        n = MIN(len, out_size - 2);
        if (n) {
            memcpy(out, apdu, n);
        }
    }
    out[n] = 0x90;
    out[n + 1] = 0x00;
    return n + 2;
}

static const uint8_t *test_get_atr(CCIDCardState *card, uint32_t *len)
{
    TestCard *c = TEST_CARD(card);

    *len = c->present ? sizeof(test_atr) : 0;
    return c->present ? test_atr : NULL;
}

static void test_apdu_from_guest(CCIDCardState *card, const uint8_t *apdu, uint32_t len)
{
    TestCard *c = TEST_CARD(card);
    GByteArray *ans = g_byte_array_sized_new(len + 2);

    g_byte_array_set_size(ans, ISO7816_MAX_APDU_RESPONSE);
    g_byte_array_set_size(ans, test_card_answer(apdu, len, ans->data, ISO7816_MAX_APDU_RESPONSE));
    if (c->hold) {
        g_queue_push_tail(&c->held, ans);
        return;
    }
    ccid_card_send_apdu_to_guest(card, ans->data, ans->len);
    g_byte_array_unref(ans);
}

bool test_card_release_one(TestCard *c)
{
    GByteArray *ans = g_queue_pop_head(&c->held);

    if (!ans) {
        return false;
    }
    ccid_card_send_apdu_to_guest(&c->base, ans->data, ans->len);
    g_byte_array_unref(ans);
    test_card_settle();
    return true;
}

static bool test_realize(DeviceState *d, GError **errp)
{
    TestCard *c = TEST_CARD(d);

    g_queue_init(&c->held);
    the_card = c;
    test_card_insert(c);
    return true;
}

static void test_unrealize(DeviceState *d)
{
    TestCard *c = TEST_CARD(d);

    g_queue_clear_full(&c->held, (GDestroyNotify)g_byte_array_unref);
    the_card = NULL;
}

static const Property test_card_props[] = {
    DEFINE_CCID_CARD_PROPERTIES(TestCard, base),
    DEFINE_PROP_END_OF_LIST(),
};

static const CCIDCardClass test_card_class = {
    .parent_class = CCID_CARD_DEVICE_CLASS(TYPE_TEST_CARD, "test card", TestCard, test_card_props,
                                           test_realize, test_unrealize),
    .get_atr = test_get_atr,
    .apdu_from_guest = test_apdu_from_guest,
};

void test_card_register(void)
{
    if (!device_class_find(TYPE_TEST_CARD)) {
        device_class_register(&test_card_class.parent_class);
    }
}

TestCard *test_card_find(void)
{
    return the_card;
}

void test_card_set_hold(TestCard *c, bool hold)
{
    c->hold = hold;
}

unsigned test_card_held(TestCard *c)
{
    return g_queue_get_length(&c->held);
}

void test_card_insert(TestCard *c)
{
    c->present = true;
    ccid_card_card_inserted(&c->base);
    test_card_settle();
}

void test_card_remove(TestCard *c)
{
    c->present = false;
    ccid_card_card_removed(&c->base);
    test_card_settle();
}
