/*
 * Unit tests of the PIV applet (proto/piv-applet.c) with a fake backend:
 * the PIN is 123456, an RSA "signature" is the block reversed, an ECDSA
 * one and a key agreement are marked bytes. What is checked is the
 * applet's side: APDU and TLV parsing, objects, PIN state, chaining and
 * GET RESPONSE, and the status word of every refusal.
 */
#include <string.h>

#include "proto/piv.h"

#define FAKE_PIN "123456"

typedef struct Fake {
    unsigned pin_checks;
    unsigned ops;
    uint8_t last_key;
} Fake;

static bool fake_verify_pin(void *opaque, const uint8_t *pin, size_t len)
{
    Fake *f = opaque;

    f->pin_checks++;
    return len == strlen(FAKE_PIN) && memcmp(pin, FAKE_PIN, len) == 0;
}

static PIVBackendResult fake_private_op(void *opaque, uint8_t key_ref, uint8_t alg,
                                        const uint8_t *in, size_t len, GByteArray *out)
{
    Fake *f = opaque;

    f->ops++;
    f->last_key = key_ref;
    if (alg == PIV_ALG_RSA_2048) {
        for (size_t i = 0; i < len; i++) {
            g_byte_array_append(out, &in[len - 1 - i], 1);
        }
    } else {
        static const uint8_t sig[] = { 0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02 };

        g_byte_array_append(out, sig, sizeof(sig));
    }
    return PIV_BACKEND_OK;
}

static PIVBackendResult fake_key_agreement(void *opaque, uint8_t key_ref, uint8_t alg,
                                           const uint8_t *point, size_t len, GByteArray *out)
{
    Fake *f = opaque;

    f->ops++;
    g_byte_array_append(out, point + 1, PIV_P256_BYTES);
    return PIV_BACKEND_OK;
}

static const PIVBackendOps fake_ops = {
    .verify_pin = fake_verify_pin,
    .private_op = fake_private_op,
    .key_agreement = fake_key_agreement,
};

typedef struct Card {
    Fake fake;
    PIVApplet *a;
    GBytes *certs[PIV_SLOT_COUNT];
} Card;

/* A certificate-shaped blob of len bytes (the applet does not parse it). */
static GBytes *fake_cert(size_t len, uint8_t seed)
{
    uint8_t *b = g_malloc(len);

    for (size_t i = 0; i < len; i++) {
        b[i] = (i * 13 + seed) & 0xff;
    }
    return g_bytes_new_take(b, len);
}

/* 9A RSA (1000-byte cert), 9C RSA, 9D ECC P-256, 9E empty. */
static void card_setup(Card *c, gconstpointer data)
{
    PIVCardConfig cfg = { .pin_retries = 3 };

    memset(c, 0, sizeof(*c));
    c->certs[0] = fake_cert(1000, 1);
    c->certs[1] = fake_cert(600, 2);
    c->certs[2] = fake_cert(400, 3);
    cfg.slots[0] = (PIVSlotConfig){ PIV_ALG_RSA_2048, c->certs[0] };
    cfg.slots[1] = (PIVSlotConfig){ PIV_ALG_RSA_2048, c->certs[1] };
    cfg.slots[2] = (PIVSlotConfig){ PIV_ALG_ECC_P256, c->certs[2] };
    for (int i = 0; i < PIV_GUID_LEN; i++) {
        cfg.guid[i] = 0x10 + i;
    }
    c->a = piv_applet_new(&cfg, &fake_ops, &c->fake);
}

static void card_teardown(Card *c, gconstpointer data)
{
    piv_applet_free(c->a);
    for (int i = 0; i < PIV_SLOT_COUNT; i++) {
        if (c->certs[i]) {
            g_bytes_unref(c->certs[i]);
        }
    }
}

/* Send an APDU; return the response data, *sw its status. */
static GByteArray *xfer(Card *c, const uint8_t *apdu, size_t len, uint16_t *sw)
{
    GByteArray *r = g_byte_array_new();

    piv_applet_process(c->a, apdu, len, r);
    g_assert_cmpuint(r->len, >=, 2);
    *sw = r->data[r->len - 2] << 8 | r->data[r->len - 1];
    g_byte_array_set_size(r, r->len - 2);
    return r;
}

static uint16_t xfer_sw(Card *c, const uint8_t *apdu, size_t len)
{
    uint16_t sw;

    g_byte_array_unref(xfer(c, apdu, len, &sw));
    return sw;
}

/* Build a short (or, for lc > 255, extended) APDU with Le 00. */
static GByteArray *apdu_new(uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
                            const uint8_t *data, size_t lc, bool le)
{
    GByteArray *a = g_byte_array_new();
    uint8_t h[4] = { cla, ins, p1, p2 };

    g_byte_array_append(a, h, 4);
    if (lc > 255) {
        uint8_t l[3] = { 0, lc >> 8, lc & 0xff };

        g_byte_array_append(a, l, 3);
        g_byte_array_append(a, data, lc);
        if (le) {
            g_byte_array_append(a, (const uint8_t[]){ 0, 0 }, 2);
        }
        return a;
    }
    if (lc) {
        uint8_t l = lc;

        g_byte_array_append(a, &l, 1);
        g_byte_array_append(a, data, lc);
    }
    if (le) {
        g_byte_array_append(a, (const uint8_t[]){ 0 }, 1);
    }
    return a;
}

/* Send a command, following 61 xx with GET RESPONSE; the whole data. */
static GByteArray *transmit(Card *c, uint8_t ins, uint8_t p1, uint8_t p2,
                            const uint8_t *data, size_t lc, uint16_t *sw)
{
    g_autoptr(GByteArray) a = apdu_new(0, ins, p1, p2, data, lc, true);
    GByteArray *all = xfer(c, a->data, a->len, sw);
    static const uint8_t get_response[] = { 0x00, 0xc0, 0x00, 0x00, 0x00 };

    while ((*sw & 0xff00) == PIV_SW_BYTES_REMAINING) {
        size_t announced = (*sw & 0xff) ? (*sw & 0xff) : 256;
        g_autoptr(GByteArray) more = xfer(c, get_response, sizeof(get_response), sw);

        /* 61 00 says 256 or more; 61 xx says exactly xx. */
        g_assert_cmpuint(more->len, ==, (announced == 256 || *sw != PIV_SW_OK) ? 256 : announced);
        g_byte_array_append(all, more->data, more->len);
    }
    return all;
}

static GByteArray *get_data(Card *c, uint32_t tag, uint16_t *sw)
{
    uint8_t d[5] = { 0x5c, 3, tag >> 16, tag >> 8, tag };

    if (tag == 0x7e) {
        d[1] = 1;
        d[2] = 0x7e;
        return transmit(c, 0xcb, 0x3f, 0xff, d, 3, sw);
    }
    return transmit(c, 0xcb, 0x3f, 0xff, d, 5, sw);
}

static uint16_t verify(Card *c, const char *pin)
{
    uint8_t d[8];

    memset(d, 0xff, sizeof(d));
    memcpy(d, pin, MIN(strlen(pin), sizeof(d)));
    return xfer_sw(c, (const uint8_t[]){ 0x00, 0x20, 0x00, 0x80, 0x08, d[0], d[1], d[2], d[3],
                                         d[4], d[5], d[6], d[7] }, 13);
}

static uint16_t verify_status(Card *c)
{
    return xfer_sw(c, (const uint8_t[]){ 0x00, 0x20, 0x00, 0x80 }, 4);
}

/* A dynamic authentication template { 82 empty, tag value }. */
static GByteArray *dyn_auth(uint8_t tag, const uint8_t *val, size_t len)
{
    GByteArray *t = g_byte_array_new();
    size_t inner = 2 + (len < 0x80 ? 2 : len < 0x100 ? 3 : 4) + len;

    g_byte_array_append(t, (const uint8_t[]){ 0x7c }, 1);
    piv_put_ber_length(t, inner);
    g_byte_array_append(t, (const uint8_t[]){ 0x82, 0x00, tag }, 3);
    piv_put_ber_length(t, len);
    g_byte_array_append(t, val, len);
    return t;
}

/* GENERAL AUTHENTICATE with the template sent in chained short APDUs. */
static GByteArray *general_authenticate(Card *c, uint8_t alg, uint8_t key, const GByteArray *t,
                                        uint16_t *sw)
{
    size_t off = 0;

    while (t->len - off > 255) {
        g_autoptr(GByteArray) link = apdu_new(0x10, 0x87, alg, key, t->data + off, 255, false);

        g_assert_cmphex(xfer_sw(c, link->data, link->len), ==, PIV_SW_OK);
        off += 255;
    }
    return transmit(c, 0x87, alg, key, t->data + off, t->len - off, sw);
}

static GByteArray *rsa_sign(Card *c, uint8_t key, uint16_t *sw)
{
    uint8_t block[PIV_RSA_2048_BYTES];
    g_autoptr(GByteArray) t = NULL;

    for (size_t i = 0; i < sizeof(block); i++) {
        block[i] = i;
    }
    t = dyn_auth(0x81, block, sizeof(block));
    return general_authenticate(c, PIV_ALG_RSA_2048, key, t, sw);
}

/* ---- tests ---- */

static void test_atr(void)
{
    uint8_t x = 0;

    g_assert_cmpuint(piv_atr_len, <=, 33);
    g_assert_cmphex(piv_atr[0], ==, 0x3b);
    for (size_t i = 1; i < piv_atr_len; i++) {
        x ^= piv_atr[i];
    }
    g_assert_cmphex(x, ==, 0);                         /* TCK */
    g_assert_cmpuint(piv_atr[1] & 0x0f, ==, piv_atr_len - 7);  /* historical bytes */
}

static void test_select(Card *c, gconstpointer data)
{
    static const uint8_t pix[] = { 0x4f, 0x06, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00 };
    uint16_t sw;

    for (size_t n = 5; n <= PIV_AID_LEN; n++) {
        g_autoptr(GByteArray) r = transmit(c, 0xa4, 0x04, 0x00, piv_aid, n, &sw);

        g_assert_cmphex(sw, ==, PIV_SW_OK);
        g_assert_cmphex(r->data[0], ==, 0x61);
        g_assert_cmpuint(r->data[1], ==, r->len - 2);
        g_assert_true(memcmp(r->data + 2, pix, sizeof(pix)) == 0);
    }
    {
        uint8_t other[] = { 0xa0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00 };

        g_autoptr(GByteArray) r = transmit(c, 0xa4, 0x04, 0x00, other, sizeof(other), &sw);
        g_assert_cmphex(sw, ==, PIV_SW_FILE_NOT_FOUND);
        g_assert_cmpuint(r->len, ==, 0);
    }
    g_byte_array_unref(transmit(c, 0xa4, 0x04, 0x00, piv_aid, 4, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_FILE_NOT_FOUND);
    /* Windows' Plug and Play: the MF, EF.ATR, the SC PNP AID; none is here. */
    g_byte_array_unref(transmit(c, 0xa4, 0x00, 0x00, (const uint8_t[]){ 0x3f, 0x00 }, 2, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_FILE_NOT_FOUND);
    g_byte_array_unref(transmit(c, 0xa4, 0x02, 0x00, (const uint8_t[]){ 0x2f, 0x01 }, 2, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_FILE_NOT_FOUND);
    {
        static const uint8_t pnp[] = { 0xa0, 0x00, 0x00, 0x03, 0x97, 0x43, 0x49, 0x44, 0x5f,
                                       0x01, 0x00 };
        static const uint8_t gids[] = { 0xa0, 0x00, 0x00, 0x03, 0x97, 0x42, 0x54, 0x46, 0x59 };

        g_byte_array_unref(transmit(c, 0xa4, 0x04, 0x00, pnp, sizeof(pnp), &sw));
        g_assert_cmphex(sw, ==, PIV_SW_FILE_NOT_FOUND);
        g_byte_array_unref(transmit(c, 0xa4, 0x04, 0x00, gids, sizeof(gids), &sw));
        g_assert_cmphex(sw, ==, PIV_SW_FILE_NOT_FOUND);
    }
    /* GET DATA (INS CA) of Windows' card identifier 7F68: not a PIV command. */
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x00, 0xca, 0x7f, 0x68, 0x00 }, 5), ==,
                    PIV_SW_INS_NOT_SUPPORTED);
    g_byte_array_unref(transmit(c, 0xa4, 0x0c, 0x00, piv_aid, PIV_AID_LEN, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_INCORRECT_P1P2);
    /* The PIV application stays selected after the failed SELECTs. */
    g_byte_array_unref(get_data(c, 0x7e, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_OK);
}

static void test_certificates(Card *c, gconstpointer data)
{
    static const uint32_t tags[] = { 0x5fc105, 0x5fc10a, 0x5fc10b };
    uint16_t sw;

    for (int i = 0; i < 3; i++) {
        g_autoptr(GByteArray) r = get_data(c, tags[i], &sw);
        size_t len;
        const uint8_t *der = g_bytes_get_data(c->certs[i], &len);
        size_t hdr = 4;   /* 53 82 xx xx */

        g_assert_cmphex(sw, ==, PIV_SW_OK);
        g_assert_cmphex(r->data[0], ==, 0x53);
        g_assert_cmpuint((size_t)(r->data[2] << 8 | r->data[3]), ==, r->len - hdr);
        g_assert_cmphex(r->data[hdr], ==, 0x70);
        g_assert_cmpuint((size_t)(r->data[hdr + 2] << 8 | r->data[hdr + 3]), ==, len);
        g_assert_true(memcmp(r->data + hdr + 4, der, len) == 0);
        g_assert_true(memcmp(r->data + hdr + 4 + len,
                             (const uint8_t[]){ 0x71, 0x01, 0x00, 0xfe, 0x00 }, 5) == 0);
        g_assert_cmpuint(r->len, ==, hdr + 4 + len + 5);
    }
    /* 9E is empty; Printed Information, Key History, a fingerprint: absent. */
    g_byte_array_unref(get_data(c, 0x5fc101, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_FILE_NOT_FOUND);
    g_byte_array_unref(get_data(c, 0x5fc109, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_FILE_NOT_FOUND);
    g_byte_array_unref(get_data(c, 0x5fc10c, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_FILE_NOT_FOUND);
    g_byte_array_unref(get_data(c, 0x5fc103, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_FILE_NOT_FOUND);
}

static void test_long_response(Card *c, gconstpointer data)
{
    static const uint8_t cmd[] = { 0x00, 0xcb, 0x3f, 0xff, 0x05, 0x5c, 0x03, 0x5f, 0xc1, 0x05 };
    static const uint8_t get_response_10[] = { 0x00, 0xc0, 0x00, 0x00, 0x10 };
    uint8_t cmd_le[sizeof(cmd) + 1], cmd_ext[sizeof(cmd) + 2];
    g_autoptr(GByteArray) whole = NULL;
    uint16_t sw;

    /* No Le: 256 bytes, then 61 00; a short Le: that many, then 61 xx. */
    g_byte_array_unref(xfer(c, cmd, sizeof(cmd), &sw));
    g_assert_cmphex(sw, ==, 0x6100);
    memcpy(cmd_le, cmd, sizeof(cmd));
    cmd_le[sizeof(cmd)] = 0x20;
    {
        g_autoptr(GByteArray) r = xfer(c, cmd_le, sizeof(cmd_le), &sw);
        g_assert_cmpuint(r->len, ==, 0x20);
        g_assert_cmphex(sw, ==, 0x6100);
    }
    {
        g_autoptr(GByteArray) r = xfer(c, get_response_10, sizeof(get_response_10), &sw);
        g_assert_cmpuint(r->len, ==, 0x10);
        g_assert_cmphex(sw, ==, 0x6100);
    }
    /* Another command drops what was pending. */
    g_assert_cmphex(verify_status(c), ==, 0x63c3);
    g_assert_cmphex(xfer_sw(c, get_response_10, sizeof(get_response_10)), ==,
                    PIV_SW_CONDITIONS_OF_USE);
    /* An extended Le takes it all at once (1000 + 4 + 4 + 5 bytes). */
    memcpy(cmd_ext, cmd, 5);
    cmd_ext[4] = 0;
    cmd_ext[5] = 0;
    cmd_ext[6] = 5;
    {
        uint8_t ext[7 + 5 + 2];

        memcpy(ext, cmd_ext, 7);
        memcpy(ext + 7, cmd + 5, 5);
        ext[12] = 0;
        ext[13] = 0;
        whole = xfer(c, ext, sizeof(ext), &sw);
        g_assert_cmphex(sw, ==, PIV_SW_OK);
        g_assert_cmpuint(whole->len, ==, 1013);
    }
    /* The pieces joined by GET RESPONSE are the same bytes; the last is 61 xx exact. */
    {
        g_autoptr(GByteArray) r = get_data(c, 0x5fc105, &sw);
        g_assert_cmphex(sw, ==, PIV_SW_OK);
        g_assert_cmpmem(r->data, r->len, whole->data, whole->len);
    }
}

static void test_chuid_ccc_discovery(Card *c, gconstpointer data)
{
    uint16_t sw;
    g_autoptr(GByteArray) chuid = get_data(c, 0x5fc102, &sw);
    g_autoptr(GByteArray) ccc = NULL;
    g_autoptr(GByteArray) disc = NULL;
    uint8_t lrc = 0;

    g_assert_cmphex(sw, ==, PIV_SW_OK);
    g_assert_cmphex(chuid->data[0], ==, 0x53);
    g_assert_cmpuint(chuid->data[1], ==, chuid->len - 2);
    /* FASC-N: 25 bytes; SS then 9 9 9 9 (non-federal agency code). */
    g_assert_cmphex(chuid->data[2], ==, 0x30);
    g_assert_cmpuint(chuid->data[3], ==, 25);
    g_assert_cmphex(chuid->data[4], ==, 0xd4);
    g_assert_cmphex(chuid->data[5], ==, 0xe7);
    /* The LRC is the XOR of the characters' four data bits. */
    for (int i = 0; i < 40; i++) {
        uint8_t ch = 0;

        for (int b = 0; b < 4; b++) {
            int bit = i * 5 + b;

            ch |= ((chuid->data[4 + bit / 8] >> (7 - bit % 8)) & 1) << b;
        }
        lrc ^= ch;
    }
    g_assert_cmphex(lrc, ==, 0);
    /* The GUID is the configured one. */
    g_assert_cmphex(chuid->data[29], ==, 0x34);
    g_assert_cmpuint(chuid->data[30], ==, 16);
    for (int i = 0; i < 16; i++) {
        g_assert_cmphex(chuid->data[31 + i], ==, 0x10 + i);
    }
    g_assert_true(memcmp(chuid->data + chuid->len - 4,
                         (const uint8_t[]){ 0x3e, 0x00, 0xfe, 0x00 }, 4) == 0);

    ccc = get_data(c, 0x5fc107, &sw);
    g_assert_cmphex(sw, ==, PIV_SW_OK);
    g_assert_true(memcmp(ccc->data, (const uint8_t[]){ 0x53, ccc->len - 2, 0xf0, 0x15,
                                                       0xa0, 0x00, 0x00, 0x01, 0x16 }, 9) == 0);

    disc = get_data(c, 0x7e, &sw);
    g_assert_cmphex(sw, ==, PIV_SW_OK);
    g_assert_cmpuint(disc->len, ==, 20);
    g_assert_cmphex(disc->data[0], ==, 0x7e);
    g_assert_cmphex(disc->data[2], ==, 0x4f);
    g_assert_true(memcmp(disc->data + 4, piv_aid, PIV_AID_LEN) == 0);
    g_assert_true(memcmp(disc->data + 15, (const uint8_t[]){ 0x5f, 0x2f, 0x02, 0x40, 0x00 },
                         5) == 0);
}

/* An APDU and the status word it must get. */
typedef struct ApduCase {
    uint8_t apdu[12];
    size_t len;
    uint16_t sw;
} ApduCase;

static void check_apdu_cases(Card *c, const ApduCase *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        g_test_message("case %zu", i);
        g_assert_cmphex(xfer_sw(c, cases[i].apdu, cases[i].len), ==, cases[i].sw);
    }
}

static void test_get_data_malformed(Card *c, gconstpointer data)
{
    static const ApduCase cases[] = {
        { { 0x00, 0xcb, 0x3f, 0xfe, 0x03, 0x5c, 0x01, 0x7e }, 8, PIV_SW_INCORRECT_P1P2 },
        { { 0x00, 0xcb, 0x3f, 0xff, 0x03, 0x5d, 0x01, 0x7e }, 8, PIV_SW_WRONG_DATA },
        { { 0x00, 0xcb, 0x3f, 0xff, 0x03, 0x5c, 0x02, 0x7e }, 8, PIV_SW_WRONG_DATA },
        { { 0x00, 0xcb, 0x3f, 0xff, 0x02, 0x5c, 0x00 }, 7, PIV_SW_WRONG_DATA },
        { { 0x00, 0xcb, 0x3f, 0xff, 0x06, 0x5c, 0x04, 1, 2, 3, 4 }, 11, PIV_SW_WRONG_DATA },
        { { 0x00, 0xcb, 0x3f, 0xff, 0x04, 0x5c, 0x01, 0x7e, 0x00 }, 9, PIV_SW_WRONG_DATA },
        { { 0x00, 0xcb, 0x3f, 0xff, 0x03, 0x5c, 0x81, 0x01 }, 8, PIV_SW_WRONG_DATA },
        { { 0x00, 0xcb, 0x3f, 0xff, 0x03, 0x5c, 0x83, 0x01 }, 8, PIV_SW_WRONG_DATA },
        { { 0x00, 0xcb, 0x3f, 0xff, 0x02, 0x5f, 0xc1 }, 7, PIV_SW_WRONG_DATA },
        { { 0x00, 0xcb, 0x3f, 0xff }, 4, PIV_SW_WRONG_DATA },
        { { 0x00, 0xcb, 0x3f, 0xff, 0x03, 0x5c, 0x01 }, 7, PIV_SW_WRONG_LENGTH },
        { { 0x00, 0xcb, 0x3f }, 3, PIV_SW_WRONG_LENGTH },
        { { 0x00, 0xcb, 0x3f, 0xff, 0x00, 0x00 }, 6, PIV_SW_WRONG_LENGTH },
        { { 0x00, 0xcb, 0x3f, 0xff, 0x00, 0x00, 0x00, 0x5c }, 8, PIV_SW_WRONG_LENGTH },
    };

    check_apdu_cases(c, cases, G_N_ELEMENTS(cases));
}

static void test_verify(Card *c, gconstpointer data)
{
    g_assert_cmphex(verify_status(c), ==, 0x63c3);
    g_assert_cmphex(verify(c, "000000"), ==, 0x63c2);
    g_assert_cmphex(verify_status(c), ==, 0x63c2);
    g_assert_cmpuint(piv_applet_pin_retries(c->a), ==, 2);
    g_assert_cmphex(verify(c, FAKE_PIN), ==, PIV_SW_OK);
    g_assert_cmphex(verify_status(c), ==, PIV_SW_OK);
    g_assert_cmpuint(piv_applet_pin_retries(c->a), ==, 3);
    /* P1 FF logs out. */
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x00, 0x20, 0xff, 0x80 }, 4), ==, PIV_SW_OK);
    g_assert_cmphex(verify_status(c), ==, 0x63c3);
    /* A reset of the card logs out too. */
    g_assert_cmphex(verify(c, FAKE_PIN), ==, PIV_SW_OK);
    piv_applet_reset(c->a);
    g_assert_cmphex(verify_status(c), ==, 0x63c3);
    /* Wrong length, wrong reference, wrong P1: refused without a try. */
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x00, 0x20, 0x00, 0x80, 0x06,
                                                  '1', '2', '3', '4', '5', '6' }, 11), ==,
                    PIV_SW_WRONG_DATA);
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x00, 0x20, 0x00, 0x00 }, 4), ==,
                    PIV_SW_REF_NOT_FOUND);
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x00, 0x20, 0x00, 0x81 }, 4), ==,
                    PIV_SW_REF_NOT_FOUND);
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x00, 0x20, 0x01, 0x80 }, 4), ==,
                    PIV_SW_INCORRECT_P1P2);
    g_assert_cmpuint(piv_applet_pin_retries(c->a), ==, 3);
    /* Digits then garbage: a wrong PIN, and the backend is not asked. */
    c->fake.pin_checks = 0;
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x00, 0x20, 0x00, 0x80, 0x08,
                                                  '1', '2', '3', '4', '5', '6', 0x00, 0xff },
                            13), ==, 0x63c2);
    g_assert_cmpuint(c->fake.pin_checks, ==, 0);
    /* Blocked: 63 C0 at the last try, then 69 83 whatever comes. */
    g_assert_cmphex(verify(c, "1234567"), ==, 0x63c1);
    g_assert_cmphex(verify(c, "12345678"), ==, 0x63c0);
    g_assert_cmphex(verify(c, FAKE_PIN), ==, PIV_SW_AUTH_BLOCKED);
    g_assert_cmphex(verify_status(c), ==, PIV_SW_AUTH_BLOCKED);
    piv_applet_reset(c->a);
    g_assert_cmphex(verify_status(c), ==, PIV_SW_AUTH_BLOCKED);
    g_assert_cmpuint(piv_applet_pin_retries(c->a), ==, 0);
    /* No way to unblock or change the PIN on this card. */
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x00, 0x2c, 0x00, 0x80 }, 4), ==,
                    PIV_SW_FUNC_NOT_SUPPORTED);
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x00, 0x24, 0x00, 0x80 }, 4), ==,
                    PIV_SW_FUNC_NOT_SUPPORTED);
}

static void test_sign_rsa(Card *c, gconstpointer data)
{
    uint16_t sw;

    g_byte_array_unref(rsa_sign(c, PIV_KEY_AUTHENTICATION, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_SECURITY_STATUS);
    g_assert_cmpuint(c->fake.ops, ==, 0);
    g_assert_cmphex(verify(c, FAKE_PIN), ==, PIV_SW_OK);
    for (int round = 0; round < 2; round++) {
        g_autoptr(GByteArray) r = rsa_sign(c, PIV_KEY_AUTHENTICATION, &sw);

        g_assert_cmphex(sw, ==, PIV_SW_OK);
        g_assert_cmpuint(r->len, ==, 8 + 256);
        g_assert_true(memcmp(r->data, (const uint8_t[]){ 0x7c, 0x82, 0x01, 0x04,
                                                         0x82, 0x82, 0x01, 0x00 }, 8) == 0);
        for (int i = 0; i < 256; i++) {
            g_assert_cmpuint(r->data[8 + i], ==, 255 - i);
        }
    }
    /* 9C: one signature per VERIFY. */
    g_byte_array_unref(rsa_sign(c, PIV_KEY_SIGNATURE, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_OK);
    g_assert_cmphex(c->fake.last_key, ==, PIV_KEY_SIGNATURE);
    g_byte_array_unref(rsa_sign(c, PIV_KEY_SIGNATURE, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_SECURITY_STATUS);
    g_byte_array_unref(rsa_sign(c, PIV_KEY_AUTHENTICATION, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_OK);
    g_assert_cmphex(verify(c, FAKE_PIN), ==, PIV_SW_OK);
    g_byte_array_unref(rsa_sign(c, PIV_KEY_SIGNATURE, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_OK);
}

static void test_sign_refused(Card *c, gconstpointer data)
{
    uint8_t short_block[100] = { 0 };
    g_autoptr(GByteArray) t = dyn_auth(0x81, short_block, sizeof(short_block));
    uint16_t sw;

    g_assert_cmphex(verify(c, FAKE_PIN), ==, PIV_SW_OK);
    /* Wrong algorithm for the key, unknown key, empty slot, 9B. */
    g_byte_array_unref(general_authenticate(c, PIV_ALG_ECC_P256, 0x9a, t, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_INCORRECT_P1P2);
    g_byte_array_unref(general_authenticate(c, PIV_ALG_RSA_2048, 0x95, t, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_INCORRECT_P1P2);
    g_byte_array_unref(general_authenticate(c, PIV_ALG_RSA_2048, 0x9b, t, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_INCORRECT_P1P2);
    g_byte_array_unref(general_authenticate(c, PIV_ALG_RSA_2048, 0x9e, t, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_REF_NOT_FOUND);
    /* An RSA block that is not 256 bytes. */
    g_byte_array_unref(general_authenticate(c, PIV_ALG_RSA_2048, 0x9a, t, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_WRONG_DATA);
    g_assert_cmpuint(c->fake.ops, ==, 0);
}

static void test_template_malformed(Card *c, gconstpointer data)
{
    static const struct {
        uint8_t t[16];
        size_t len;
    } cases[] = {
        { { 0x7c, 0x00 }, 2 },                                     /* empty */
        { { 0x7c, 0x02, 0x82, 0x00 }, 4 },                         /* nothing to sign */
        { { 0x7c, 0x03, 0x81, 0x01, 0x01 }, 5 },                   /* no 82 asked */
        { { 0x7c, 0x05, 0x82, 0x00, 0x81, 0x01 }, 6 },             /* 7C too long */
        { { 0x7c, 0x04, 0x82, 0x00, 0x81, 0x05, 1 }, 7 },          /* 81 too long */
        { { 0x7c, 0x05, 0x82, 0x00, 0x81, 0x01, 1, 0x00 }, 8 },    /* trailing byte */
        { { 0x7d, 0x05, 0x82, 0x00, 0x81, 0x01, 1 }, 7 },          /* not 7C */
        { { 0x7c, 0x07, 0x82, 0x00, 0x82, 0x00, 0x81, 0x01, 1 }, 9 },  /* 82 twice */
        { { 0x7c, 0x07, 0x82, 0x00, 0x80, 0x00, 0x81, 0x01, 1 }, 9 },  /* witness */
        { { 0x7c, 0x05, 0x82, 0x00, 0x83, 0x01, 1 }, 7 },          /* unknown tag */
        { { 0x7c, 0x05, 0x82, 0x00, 0x81, 0x84, 1 }, 7 },          /* bad length form */
        { { 0x7c, 0x04, 0x82, 0x00, 0x81, 0x00 }, 6 },             /* empty hash */
        { { 0x7c, 0x06, 0x82, 0x00, 0x85, 0x02, 0x04, 0x01 }, 8 }, /* short point */
        { { 0x7c, 0x08, 0x82, 0x00, 0x81, 0x01, 1, 0x85, 0x00 }, 9 },  /* both */
        { { 0x7c, 0x81 }, 2 },                                     /* cut length */
        { { 0x7c }, 1 },
    };
    uint16_t sw;

    g_assert_cmphex(verify(c, FAKE_PIN), ==, PIV_SW_OK);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GByteArray t = { .data = (uint8_t *)cases[i].t, .len = cases[i].len };

        g_test_message("case %zu", i);
        g_byte_array_unref(general_authenticate(c, PIV_ALG_ECC_P256, 0x9d, &t, &sw));
        g_assert_cmphex(sw, ==, PIV_SW_WRONG_DATA);
    }
    g_assert_cmpuint(c->fake.ops, ==, 0);
}

static void test_ecc(Card *c, gconstpointer data)
{
    uint8_t hash[32], point[65];
    g_autoptr(GByteArray) t = NULL;
    g_autoptr(GByteArray) r = NULL;
    uint16_t sw;

    memset(hash, 0xab, sizeof(hash));
    for (int i = 0; i < 65; i++) {
        point[i] = i ? i : 0x04;
    }
    g_assert_cmphex(verify(c, FAKE_PIN), ==, PIV_SW_OK);
    t = dyn_auth(0x81, hash, sizeof(hash));
    r = general_authenticate(c, PIV_ALG_ECC_P256, 0x9d, t, &sw);
    g_assert_cmphex(sw, ==, PIV_SW_OK);
    g_assert_true(memcmp(r->data, (const uint8_t[]){ 0x7c, 0x0a, 0x82, 0x08, 0x30 }, 5) == 0);
    g_byte_array_unref(t);
    g_byte_array_unref(r);
    /* A hash longer than the key is refused. */
    t = dyn_auth(0x81, point, 33);
    r = general_authenticate(c, PIV_ALG_ECC_P256, 0x9d, t, &sw);
    g_assert_cmphex(sw, ==, PIV_SW_WRONG_DATA);
    g_byte_array_unref(t);
    g_byte_array_unref(r);
    t = dyn_auth(0x85, point, sizeof(point));
    r = general_authenticate(c, PIV_ALG_ECC_P256, 0x9d, t, &sw);
    g_assert_cmphex(sw, ==, PIV_SW_OK);
    g_assert_cmpuint(r->len, ==, 4 + 32);
    g_assert_cmpmem(r->data + 4, 32, point + 1, 32);
    g_byte_array_unref(t);
    g_byte_array_unref(r);
    /* Key agreement is for EC keys only. */
    t = dyn_auth(0x85, point, sizeof(point));
    r = general_authenticate(c, PIV_ALG_RSA_2048, 0x9a, t, &sw);
    g_assert_cmphex(sw, ==, PIV_SW_WRONG_DATA);
}

static void test_chaining(Card *c, gconstpointer data)
{
    uint8_t block[300] = { 0 };
    uint16_t sw;

    /* A link of another command breaks the chain. */
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x10, 0x87, 0x07, 0x9a, 0x02, 0x7c, 0x00 }, 7),
                    ==, PIV_SW_OK);
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x10, 0x87, 0x07, 0x9c, 0x02, 0x7c, 0x00 }, 7),
                    ==, PIV_SW_LAST_COMMAND_EXPECTED);
    /* A command outside the chain drops it and is answered itself. */
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x10, 0x87, 0x07, 0x9a, 0x02, 0x7c, 0x00 }, 7),
                    ==, PIV_SW_OK);
    g_assert_cmphex(verify_status(c), ==, 0x63c3);
    g_assert_cmphex(verify(c, FAKE_PIN), ==, PIV_SW_OK);
    g_assert_cmphex(xfer_sw(c, (const uint8_t[]){ 0x00, 0x87, 0x07, 0x9a, 0x02, 0x7c, 0x00 }, 7),
                    ==, PIV_SW_WRONG_DATA);
    /* A chain longer than the cap is refused and forgotten. */
    for (size_t sent = 0; ; sent += 255) {
        g_autoptr(GByteArray) link = apdu_new(0x10, 0x87, 0x07, 0x9a, block, 255, false);

        sw = xfer_sw(c, link->data, link->len);
        if (sent + 255 > PIV_CHAIN_MAX) {
            g_assert_cmphex(sw, ==, PIV_SW_WRONG_LENGTH);
            break;
        }
        g_assert_cmphex(sw, ==, PIV_SW_OK);
    }
    g_byte_array_unref(rsa_sign(c, PIV_KEY_AUTHENTICATION, &sw));
    g_assert_cmphex(sw, ==, PIV_SW_OK);
    /* Extended Lc in one APDU works as well as chaining. */
    {
        g_autoptr(GByteArray) t = NULL;
        g_autoptr(GByteArray) a = NULL;
        g_autoptr(GByteArray) r = NULL;

        memset(block, 1, sizeof(block));
        t = dyn_auth(0x81, block, 256);
        a = apdu_new(0x00, 0x87, 0x07, 0x9a, t->data, t->len, true);
        g_assert_cmpuint(a->len, ==, 7 + t->len + 2);
        r = xfer(c, a->data, a->len, &sw);
        g_assert_cmphex(sw, ==, PIV_SW_OK);
        g_assert_cmpuint(r->len, ==, 264);
    }
}

static void test_other_commands(Card *c, gconstpointer data)
{
    static const ApduCase cases[] = {
        { { 0x00, 0xfd, 0x00, 0x00 }, 4, PIV_SW_INS_NOT_SUPPORTED },   /* a vendor's version */
        { { 0x00, 0xb0, 0x00, 0x00, 0x00 }, 5, PIV_SW_INS_NOT_SUPPORTED },
        { { 0x80, 0xcb, 0x3f, 0xff }, 4, PIV_SW_CLA_NOT_SUPPORTED },
        { { 0x01, 0xa4, 0x04, 0x00 }, 4, PIV_SW_CLA_NOT_SUPPORTED },
        { { 0x0c, 0xa4, 0x04, 0x00 }, 4, PIV_SW_CLA_NOT_SUPPORTED },
        { { 0x00, 0xdb, 0x3f, 0xff, 0x01, 0x00 }, 6, PIV_SW_SECURITY_STATUS },
        { { 0x00, 0x47, 0x00, 0x9a, 0x01, 0x00 }, 6, PIV_SW_SECURITY_STATUS },
        { { 0x00, 0xc0, 0x00, 0x00, 0x00 }, 5, PIV_SW_CONDITIONS_OF_USE },
        { { 0x00, 0xc0, 0x01, 0x00, 0x00 }, 5, PIV_SW_INCORRECT_P1P2 },
        { { 0x00 }, 1, PIV_SW_WRONG_LENGTH },
        { { 0x00, 0xa4, 0x04, 0x00, 0x05, 0xa0 }, 6, PIV_SW_WRONG_LENGTH },
    };

    check_apdu_cases(c, cases, G_N_ELEMENTS(cases));
    g_assert_cmpint(piv_slot_index(0x9e), ==, 3);
    g_assert_cmpint(piv_slot_index(0x9b), ==, -1);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/piv/atr", test_atr);
#define ADD(path, fn) g_test_add("/piv/" path, Card, NULL, card_setup, fn, card_teardown)
    ADD("select", test_select);
    ADD("get-data/certificates", test_certificates);
    ADD("get-data/long-response", test_long_response);
    ADD("get-data/chuid-ccc-discovery", test_chuid_ccc_discovery);
    ADD("get-data/malformed", test_get_data_malformed);
    ADD("verify", test_verify);
    ADD("general-authenticate/rsa", test_sign_rsa);
    ADD("general-authenticate/refused", test_sign_refused);
    ADD("general-authenticate/malformed", test_template_malformed);
    ADD("general-authenticate/ecc", test_ecc);
    ADD("chaining", test_chaining);
    ADD("other-commands", test_other_commands);
#undef ADD
    return g_test_run();
}
