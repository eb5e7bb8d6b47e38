/*
 * The PIV card application (NIST SP 800-73-4 part 2): command APDUs in,
 * response APDUs out. See include/proto/piv.h and docs/ccid.txt ("PIV").
 *
 * The applet is the card's only application and is selected from power-on
 * (a PIV card's default application); SELECT of the PIV AID answers the
 * application property template, SELECT of anything else 6A82.
 */
#include "proto/piv.h"

#include <string.h>

const uint8_t piv_aid[PIV_AID_LEN] = {
    0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
};
/* A partial AID must name at least the RID (ISO 7816-4 partial DF name). */
#define PIV_RID_LEN 5

/*
 * ISO 7816-3: TS 3B (direct convention); T0 8E: TD1 follows, 14 historical
 * bytes; TD1 81: TD2 follows, T=1; TD2 31: TA3 and TB3 follow, T=1; TA3 FE:
 * IFSC 254; TB3 45: BWI 4, CWI 5. Historical bytes (ISO 7816-4 8.1.1),
 * category 80 then compact-TLV: 73 card capabilities (selection by full
 * and partial DF name; command chaining and extended Lc/Le), 58 issuer
 * data "vccidPIV". TCK: the XOR of T0..TCK is 0. No byte matches a CAC's
 * ATR, so clients probe the card by AID and find PIV.
 */
const uint8_t piv_atr[] = {
    0x3b, 0x8e, 0x81, 0x31, 0xfe, 0x45,
    0x80, 0x73, 0xc0, 0x00, 0xc0, 0x58, 'v', 'c', 'c', 'i', 'd', 'P', 'I', 'V',
    0x1a,
};
const size_t piv_atr_len = sizeof(piv_atr);

/* ISO 7816-4 instructions. */
#define INS_VERIFY                 0x20
#define INS_CHANGE_REFERENCE_DATA  0x24
#define INS_RESET_RETRY_COUNTER    0x2c
#define INS_GENERATE_KEY_PAIR      0x47
#define INS_GENERAL_AUTHENTICATE   0x87
#define INS_SELECT                 0xa4
#define INS_GET_RESPONSE           0xc0
#define INS_GET_DATA               0xcb
#define INS_PUT_DATA               0xdb

#define CLA_CHAINING 0x10

/* SP 800-73-4 part 1 table 3: BER-TLV tags of the data objects. */
#define TAG_DISCOVERY       0x7e
#define TAG_CHUID           0x5fc102
#define TAG_CCC             0x5fc107
#define TAG_CERT_9A         0x5fc105
#define TAG_CERT_9C         0x5fc10a
#define TAG_CERT_9D         0x5fc10b
#define TAG_CERT_9E         0x5fc101

/* SP 800-73-4 part 2 table 7: the dynamic authentication template. */
#define TAG_DYN_AUTH        0x7c
#define TAG_DYN_WITNESS     0x80
#define TAG_DYN_CHALLENGE   0x81
#define TAG_DYN_RESPONSE    0x82
#define TAG_DYN_EXPONENT    0x85

static const uint8_t slot_keys[PIV_SLOT_COUNT] = {
    PIV_KEY_AUTHENTICATION, PIV_KEY_SIGNATURE, PIV_KEY_MANAGEMENT, PIV_KEY_CARD_AUTHENTICATION,
};
static const uint32_t slot_cert_tags[PIV_SLOT_COUNT] = {
    TAG_CERT_9A, TAG_CERT_9C, TAG_CERT_9D, TAG_CERT_9E,
};

struct PIVApplet {
    const PIVBackendOps *ops;
    void *opaque;
    PIVSlotConfig slots[PIV_SLOT_COUNT];
    uint8_t guid[PIV_GUID_LEN];
    uint8_t pin_max;
    uint8_t pin_left;
    bool pin_verified;
    /* 9C's PIN is "always": one signature per VERIFY (part 1 3.2.1). */
    bool signature_allowed;

    /* A command chain in progress: its header and the data so far. */
    bool chaining;
    uint8_t chain_ins, chain_p1, chain_p2;
    GByteArray *chain;

    /* The rest of a response, handed out by GET RESPONSE. */
    GByteArray *pending;
    size_t pending_off;
};

/* A parsed command APDU (ISO 7816-4 5.1). */
typedef struct Command {
    uint8_t cla, ins, p1, p2;
    const uint8_t *data;
    size_t lc;
    size_t ne;                 /* bytes the client takes; absent Le: 256 */
} Command;

int piv_slot_index(uint8_t key_ref)
{
    for (int i = 0; i < PIV_SLOT_COUNT; i++) {
        if (slot_keys[i] == key_ref) {
            return i;
        }
    }
    return -1;
}

/* ---- APDU and BER-TLV ---- */

static bool command_parse(const uint8_t *b, size_t len, Command *c)
{
    memset(c, 0, sizeof(*c));
    if (len < 4) {
        return false;
    }
    c->cla = b[0];
    c->ins = b[1];
    c->p1 = b[2];
    c->p2 = b[3];
    c->ne = 256;
    if (len == 4) {                                   /* case 1 */
        return true;
    }
    if (len == 5) {                                   /* case 2 short */
        c->ne = b[4] ? b[4] : 256;
        return true;
    }
    if (b[4]) {                                       /* cases 3, 4 short */
        c->lc = b[4];
        c->data = b + 5;
        if (len == 5 + c->lc) {
            return true;
        }
        if (len == 6 + c->lc) {
            c->ne = b[5 + c->lc] ? b[5 + c->lc] : 256;
            return true;
        }
        return false;
    }
    if (len < 7) {
        return false;
    }
    if (len == 7) {                                   /* case 2 extended */
        c->ne = (b[5] << 8 | b[6]) ? (size_t)(b[5] << 8 | b[6]) : 65536;
        return true;
    }
    c->lc = b[5] << 8 | b[6];
    c->data = b + 7;
    if (c->lc == 0) {
        return false;
    }
    if (len == 7 + c->lc) {                           /* case 3 extended */
        return true;
    }
    if (len == 9 + c->lc) {                           /* case 4 extended */
        size_t le = b[7 + c->lc] << 8 | b[8 + c->lc];

        c->ne = le ? le : 65536;
        return true;
    }
    return false;
}

/*
 * One BER-TLV at *off of buf: tags of up to three bytes, definite lengths
 * of up to two bytes (a PIV object is smaller than 64 KiB). The value must
 * lie inside buf.
 */
static bool tlv_next(const uint8_t *buf, size_t len, size_t *off, uint32_t *tag,
                     const uint8_t **val, size_t *vlen)
{
    size_t p = *off;
    size_t l;

    if (p >= len) {
        return false;
    }
    *tag = buf[p++];
    if ((*tag & 0x1f) == 0x1f) {
        for (int i = 0; ; i++) {
            if (p >= len || i == 2) {
                return false;
            }
            *tag = *tag << 8 | buf[p];
            if (!(buf[p++] & 0x80)) {
                break;
            }
        }
    }
    if (p >= len) {
        return false;
    }
    l = buf[p++];
    if (l == 0x81 || l == 0x82) {
        size_t n = l & 0x7f;

        if (len - p < n) {
            return false;
        }
        l = n == 1 ? buf[p] : (size_t)(buf[p] << 8 | buf[p + 1]);
        p += n;
    } else if (l > 0x7f) {
        return false;
    }
    if (len - p < l) {
        return false;
    }
    *val = buf + p;
    *vlen = l;
    *off = p + l;
    return true;
}

static void put_tag(GByteArray *out, uint32_t tag)
{
    uint8_t b[3];
    int n = tag > 0xffff ? 3 : tag > 0xff ? 2 : 1;

    for (int i = 0; i < n; i++) {
        b[i] = tag >> (8 * (n - 1 - i));
    }
    g_byte_array_append(out, b, n);
}

void piv_put_ber_length(GByteArray *out, size_t len)
{
    uint8_t b[3];

    g_assert(len <= 0xffff);
    if (len < 0x80) {
        b[0] = len;
        g_byte_array_append(out, b, 1);
    } else if (len < 0x100) {
        b[0] = 0x81;
        b[1] = len;
        g_byte_array_append(out, b, 2);
    } else {
        b[0] = 0x82;
        b[1] = len >> 8;
        b[2] = len;
        g_byte_array_append(out, b, 3);
    }
}

static void put_tlv(GByteArray *out, uint32_t tag, const void *val, size_t len)
{
    put_tag(out, tag);
    piv_put_ber_length(out, len);
    if (len) {
        g_byte_array_append(out, val, len);
    }
}

/* Wrap what was appended to out since start in a TLV with this tag. */
static void wrap_tlv(GByteArray *out, size_t start, uint32_t tag)
{
    g_autoptr(GByteArray) head = g_byte_array_new();
    size_t len = out->len - start;

    put_tag(head, tag);
    piv_put_ber_length(head, len);
    g_byte_array_set_size(out, out->len + head->len);
    memmove(out->data + start + head->len, out->data + start, len);
    memcpy(out->data + start, head->data, head->len);
}

/* ---- data objects ---- */

/* SELECT: the application property template (part 2 table 3). */
static void build_property_template(GByteArray *out)
{
    static const uint8_t label[] = "vccid PIV";
    static const uint8_t algs[] = { PIV_ALG_RSA_2048, PIV_ALG_ECC_P256 };
    size_t start = out->len, ac;

    put_tlv(out, 0x4f, piv_aid + PIV_RID_LEN, PIV_AID_LEN - PIV_RID_LEN);
    put_tlv(out, 0x79, (const uint8_t[]){ 0x4f, PIV_RID_LEN, 0xa0, 0x00, 0x00, 0x03, 0x08 }, 7);
    put_tlv(out, 0x50, label, sizeof(label) - 1);
    ac = out->len;
    for (size_t i = 0; i < sizeof(algs); i++) {
        put_tlv(out, 0x80, &algs[i], 1);
    }
    put_tlv(out, 0x06, (const uint8_t[]){ 0x00 }, 1);
    wrap_tlv(out, ac, 0xac);
    wrap_tlv(out, start, 0x61);
}

/*
 * The FASC-N (TIG SCEPACS): 40 characters of four bits, least significant
 * first, and an odd parity bit each; start, field separator and end
 * sentinels; a longitudinal redundancy character over the rest. Agency,
 * system and credential 9999/9999/999999 mark a non-federal issuer; the
 * person identifier comes from the GUID so that it differs per card.
 */
static void build_fascn(const uint8_t guid[PIV_GUID_LEN], uint8_t out[25])
{
    enum { SS = 0xb, FS = 0xd, ES = 0xf };
    uint8_t chars[40];
    size_t n = 0;
    uint8_t lrc = 0;
    const char *fixed[] = { "9999", "9999", "999999", "1", "1" };

    chars[n++] = SS;
    for (size_t f = 0; f < G_N_ELEMENTS(fixed); f++) {
        for (const char *p = fixed[f]; *p; p++) {
            chars[n++] = *p - '0';
        }
        chars[n++] = FS;
    }
    for (int i = 0; i < 10; i++) {
        chars[n++] = guid[i] % 10;           /* person identifier */
    }
    chars[n++] = 1;                          /* organizational category */
    for (int i = 0; i < 4; i++) {
        chars[n++] = 9;                      /* organization identifier */
    }
    chars[n++] = 1;                          /* person/organization association */
    chars[n++] = ES;
    for (size_t i = 0; i < n; i++) {
        lrc ^= chars[i];
    }
    chars[n++] = lrc;
    g_assert(n == 40);

    memset(out, 0, 25);
    for (size_t i = 0, bit = 0; i < n; i++) {
        uint8_t c = chars[i];
        uint8_t ones = 0;

        for (int b = 0; b < 5; b++, bit++) {
            uint8_t v = b < 4 ? (c >> b) & 1 : !(ones & 1);

            ones += v;
            out[bit / 8] |= v << (7 - bit % 8);
        }
    }
}

/* Card Holder Unique Identifier (part 1 table 9). */
static void build_chuid(const PIVApplet *a, GByteArray *out)
{
    uint8_t fascn[25];
    size_t start = out->len;

    build_fascn(a->guid, fascn);
    put_tlv(out, 0x30, fascn, sizeof(fascn));
    put_tlv(out, 0x34, a->guid, PIV_GUID_LEN);
    put_tlv(out, 0x35, "20991231", 8);        /* expiration date YYYYMMDD */
    put_tlv(out, 0x3e, NULL, 0);              /* issuer signature: none */
    put_tlv(out, 0xfe, NULL, 0);
    wrap_tlv(out, start, 0x53);
}

/* Card Capability Container (part 1 table 8). */
static void build_ccc(const PIVApplet *a, GByteArray *out)
{
    uint8_t id[21] = { 0xa0, 0x00, 0x00, 0x01, 0x16,   /* GSC-RID */
                       0xff,                           /* manufacturer: none */
                       0x02 };                         /* card type: Java Card */
    size_t start = out->len;

    memcpy(id + 7, a->guid, 14);
    put_tlv(out, 0xf0, id, sizeof(id));
    put_tlv(out, 0xf1, (const uint8_t[]){ 0x21 }, 1);  /* container version */
    put_tlv(out, 0xf2, (const uint8_t[]){ 0x21 }, 1);  /* grammar version */
    put_tlv(out, 0xf3, NULL, 0);
    put_tlv(out, 0xf4, (const uint8_t[]){ 0x00 }, 1);  /* no PKCS#15 */
    put_tlv(out, 0xf5, (const uint8_t[]){ 0x10 }, 1);  /* data model: PIV */
    for (uint8_t t = 0xf6; t <= 0xfe; t++) {
        if (t != 0xf8 && t != 0xf9) {
            put_tlv(out, t, NULL, 0);
        }
    }
    wrap_tlv(out, start, 0x53);
}

/* Discovery Object (part 1 table 20): PIN usage policy "PIV PIN only". */
static void build_discovery(GByteArray *out)
{
    size_t start = out->len;

    put_tlv(out, 0x4f, piv_aid, PIV_AID_LEN);
    put_tlv(out, 0x5f2f, (const uint8_t[]){ 0x40, 0x00 }, 2);
    wrap_tlv(out, start, TAG_DISCOVERY);
}

/* X.509 Certificate for a slot (part 1 table 10 and others). */
static void build_cert_object(GBytes *cert, GByteArray *out)
{
    size_t start = out->len, len;
    const uint8_t *der = g_bytes_get_data(cert, &len);

    put_tlv(out, 0x70, der, len);
    put_tlv(out, 0x71, (const uint8_t[]){ 0x00 }, 1);  /* not compressed */
    put_tlv(out, 0xfe, NULL, 0);
    wrap_tlv(out, start, 0x53);
}

/* ---- commands ---- */

static uint16_t do_select(PIVApplet *a, const Command *c, GByteArray *out)
{
    if (c->p1 <= 0x09 && c->p1 != 0x04) {
        /*
         * By file identifier or path: the PIV application has no files.
         * Windows' Plug and Play asks for the MF and EF.ATR this way and
         * goes on to the PIV AID when they are not found.
         */
        return PIV_SW_FILE_NOT_FOUND;
    }
    if (c->p1 != 0x04 || (c->p2 & 0x03) != 0) {
        return PIV_SW_INCORRECT_P1P2;
    }
    if (c->lc < PIV_RID_LEN || c->lc > PIV_AID_LEN || memcmp(c->data, piv_aid, c->lc) != 0) {
        return PIV_SW_FILE_NOT_FOUND;
    }
    build_property_template(out);
    return PIV_SW_OK;
}

static uint16_t do_get_data(PIVApplet *a, const Command *c, GByteArray *out)
{
    size_t off = 0, vlen;
    const uint8_t *val;
    uint32_t tag, object = 0;

    if (c->p1 != 0x3f || c->p2 != 0xff) {
        return PIV_SW_INCORRECT_P1P2;
    }
    if (!tlv_next(c->data, c->lc, &off, &tag, &val, &vlen) || tag != 0x5c ||
        off != c->lc || vlen < 1 || vlen > 3) {
        return PIV_SW_WRONG_DATA;
    }
    for (size_t i = 0; i < vlen; i++) {
        object = object << 8 | val[i];
    }
    switch (object) {
    case TAG_DISCOVERY:
        build_discovery(out);
        return PIV_SW_OK;
    case TAG_CHUID:
        build_chuid(a, out);
        return PIV_SW_OK;
    case TAG_CCC:
        build_ccc(a, out);
        return PIV_SW_OK;
    }
    for (int i = 0; i < PIV_SLOT_COUNT; i++) {
        if (object == slot_cert_tags[i] && a->slots[i].cert) {
            build_cert_object(a->slots[i].cert, out);
            return PIV_SW_OK;
        }
    }
    /* Printed Information, Key History, biometrics, ...: not on this card. */
    return PIV_SW_FILE_NOT_FOUND;
}

/* The PIN's digits, or -1 if the 8 bytes are not digits padded with FF. */
static int pin_length(const uint8_t *pin)
{
    int n = 0;

    while (n < PIV_PIN_MAX_LEN && pin[n] >= '0' && pin[n] <= '9') {
        n++;
    }
    for (int i = n; i < PIV_PIN_MAX_LEN; i++) {
        if (pin[i] != 0xff) {
            return -1;
        }
    }
    return n;
}

static uint16_t do_verify(PIVApplet *a, const Command *c)
{
    int n;

    if (c->p1 == 0xff) {
        /* Part 2 3.2.1: P1 FF without data resets the PIN's security status. */
        if (c->lc || c->p2 != PIV_KEY_PIN) {
            return c->lc ? PIV_SW_WRONG_LENGTH : PIV_SW_INCORRECT_P1P2;
        }
        a->pin_verified = false;
        a->signature_allowed = false;
        return PIV_SW_OK;
    }
    if (c->p1 != 0x00) {
        return PIV_SW_INCORRECT_P1P2;
    }
    if (c->p2 == 0x00 || c->p2 == 0x81) {
        return PIV_SW_REF_NOT_FOUND;          /* no global PIN; the PUK is not for VERIFY */
    }
    if (c->p2 != PIV_KEY_PIN) {
        return PIV_SW_INCORRECT_P1P2;
    }
    if (a->pin_left == 0) {
        return PIV_SW_AUTH_BLOCKED;
    }
    if (c->lc == 0) {
        return a->pin_verified ? PIV_SW_OK : PIV_SW_VERIFY_FAILED | a->pin_left;
    }
    if (c->lc != PIV_PIN_MAX_LEN) {
        return PIV_SW_WRONG_DATA;
    }
    n = pin_length(c->data);
    if (n > 0 && a->ops->verify_pin(a->opaque, c->data, n)) {
        a->pin_left = a->pin_max;
        a->pin_verified = true;
        a->signature_allowed = true;
        return PIV_SW_OK;
    }
    /* A malformed PIN is a wrong PIN: a card compares bytes. */
    a->pin_verified = false;
    a->signature_allowed = false;
    a->pin_left--;
    return PIV_SW_VERIFY_FAILED | a->pin_left;
}

static uint16_t backend_status(PIVBackendResult r)
{
    switch (r) {
    case PIV_BACKEND_OK:
        return PIV_SW_OK;
    case PIV_BACKEND_UNSUPPORTED:
        return PIV_SW_FUNC_NOT_SUPPORTED;
    default:
        return PIV_SW_WRONG_DATA;
    }
}

static uint16_t do_general_authenticate(PIVApplet *a, const Command *c, GByteArray *out)
{
    int slot = piv_slot_index(c->p2);
    const uint8_t *tmpl, *val, *challenge = NULL, *point = NULL;
    size_t tlen, vlen, challenge_len = 0, point_len = 0, off = 0;
    bool response_asked = false;
    uint32_t tag, seen = 0;
    g_autoptr(GByteArray) result = g_byte_array_new();
    PIVBackendResult r;
    uint8_t alg;

    if (slot < 0) {
        return PIV_SW_INCORRECT_P1P2;         /* 9B (management key) included */
    }
    alg = a->slots[slot].alg;
    if (!alg) {
        return PIV_SW_REF_NOT_FOUND;
    }
    if (c->p1 != alg) {
        return PIV_SW_INCORRECT_P1P2;
    }
    if (c->p2 != PIV_KEY_CARD_AUTHENTICATION &&
        (!a->pin_verified || (c->p2 == PIV_KEY_SIGNATURE && !a->signature_allowed))) {
        return PIV_SW_SECURITY_STATUS;
    }
    if (!tlv_next(c->data, c->lc, &off, &tag, &tmpl, &tlen) || tag != TAG_DYN_AUTH ||
        off != c->lc) {
        return PIV_SW_WRONG_DATA;
    }
    for (off = 0; off < tlen; ) {
        if (!tlv_next(tmpl, tlen, &off, &tag, &val, &vlen)) {
            return PIV_SW_WRONG_DATA;
        }
        if (tag < TAG_DYN_WITNESS || tag > TAG_DYN_EXPONENT || (seen & (1u << (tag & 7)))) {
            return PIV_SW_WRONG_DATA;
        }
        seen |= 1u << (tag & 7);
        switch (tag) {
        case TAG_DYN_CHALLENGE:
            challenge = val;
            challenge_len = vlen;
            break;
        case TAG_DYN_RESPONSE:
            response_asked = vlen == 0;
            break;
        case TAG_DYN_EXPONENT:
            point = val;
            point_len = vlen;
            break;
        default:
            /* Witness/challenge requests are for symmetric keys: none here. */
            return PIV_SW_WRONG_DATA;
        }
    }
    if (!response_asked || (!challenge == !point)) {
        return PIV_SW_WRONG_DATA;
    }
    if (challenge) {
        size_t want_max = alg == PIV_ALG_RSA_2048 ? PIV_RSA_2048_BYTES : PIV_P256_BYTES;

        if (challenge_len == 0 || challenge_len > want_max ||
            (alg == PIV_ALG_RSA_2048 && challenge_len != PIV_RSA_2048_BYTES)) {
            return PIV_SW_WRONG_DATA;
        }
        r = a->ops->private_op(a->opaque, c->p2, alg, challenge, challenge_len, result);
    } else {
        /* An uncompressed P-256 point (SEC 1 2.3.3). */
        if (alg != PIV_ALG_ECC_P256 || point_len != 1 + 2 * PIV_P256_BYTES || point[0] != 0x04) {
            return PIV_SW_WRONG_DATA;
        }
        r = a->ops->key_agreement ?
            a->ops->key_agreement(a->opaque, c->p2, alg, point, point_len, result) :
            PIV_BACKEND_UNSUPPORTED;
    }
    if (r != PIV_BACKEND_OK || result->len == 0 || result->len > 0x1000) {
        return r == PIV_BACKEND_OK ? PIV_SW_MEMORY_FAILURE : backend_status(r);
    }
    if (c->p2 == PIV_KEY_SIGNATURE) {
        a->signature_allowed = false;
    }
    {
        size_t start = out->len;

        put_tlv(out, TAG_DYN_RESPONSE, result->data, result->len);
        wrap_tlv(out, start, TAG_DYN_AUTH);
    }
    return PIV_SW_OK;
}

static void pending_clear(PIVApplet *a)
{
    g_byte_array_set_size(a->pending, 0);
    a->pending_off = 0;
}

static void chain_clear(PIVApplet *a)
{
    a->chaining = false;
    g_byte_array_set_size(a->chain, 0);
}

/*
 * Hand out up to ne bytes of data; keep the rest for GET RESPONSE and say
 * how much is left (61 xx, 00 for 256 or more).
 */
static uint16_t send_data(PIVApplet *a, const uint8_t *data, size_t len, size_t ne,
                          GByteArray *resp)
{
    size_t n = MIN(len, ne);
    size_t rest = len - n;

    g_byte_array_append(resp, data, n);
    pending_clear(a);
    if (!rest) {
        return PIV_SW_OK;
    }
    g_byte_array_append(a->pending, data + n, rest);
    return PIV_SW_BYTES_REMAINING | (rest > 0xff ? 0 : rest);
}

static uint16_t do_get_response(PIVApplet *a, const Command *c, GByteArray *resp)
{
    size_t left = a->pending->len - a->pending_off;
    size_t n;

    if (c->p1 || c->p2) {
        return PIV_SW_INCORRECT_P1P2;
    }
    if (!left) {
        return PIV_SW_CONDITIONS_OF_USE;
    }
    n = MIN(left, c->ne);
    g_byte_array_append(resp, a->pending->data + a->pending_off, n);
    a->pending_off += n;
    left -= n;
    if (!left) {
        pending_clear(a);
        return PIV_SW_OK;
    }
    return PIV_SW_BYTES_REMAINING | (left > 0xff ? 0 : left);
}

static uint16_t dispatch(PIVApplet *a, const Command *c, GByteArray *resp)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    uint16_t sw;

    if (c->ins == INS_GET_RESPONSE) {
        return do_get_response(a, c, resp);
    }
    pending_clear(a);
    switch (c->ins) {
    case INS_SELECT:
        sw = do_select(a, c, out);
        break;
    case INS_GET_DATA:
        sw = do_get_data(a, c, out);
        break;
    case INS_VERIFY:
        sw = do_verify(a, c);
        break;
    case INS_GENERAL_AUTHENTICATE:
        sw = do_general_authenticate(a, c, out);
        break;
    case INS_PUT_DATA:
    case INS_GENERATE_KEY_PAIR:
        /* Both need the card management key (9B), which this card has not. */
        sw = PIV_SW_SECURITY_STATUS;
        break;
    case INS_CHANGE_REFERENCE_DATA:
    case INS_RESET_RETRY_COUNTER:
        /* The PIN belongs to the backend (docs/ccid.txt); there is no PUK. */
        sw = PIV_SW_FUNC_NOT_SUPPORTED;
        break;
    default:
        sw = PIV_SW_INS_NOT_SUPPORTED;
        break;
    }
    if (sw == PIV_SW_OK && out->len) {
        sw = send_data(a, out->data, out->len, c->ne, resp);
    }
    return sw;
}

void piv_applet_process(PIVApplet *a, const uint8_t *apdu, size_t len, GByteArray *resp)
{
    Command c;
    uint16_t sw;
    uint8_t sw_bytes[2];

    if (!command_parse(apdu, len, &c)) {
        chain_clear(a);
        pending_clear(a);
        sw = PIV_SW_WRONG_LENGTH;
    } else if ((c.cla & ~CLA_CHAINING) != 0) {
        /* Secure messaging, logical channels, proprietary classes: none. */
        sw = PIV_SW_CLA_NOT_SUPPORTED;
    } else if (c.cla & CLA_CHAINING) {
        if (a->chaining && (c.ins != a->chain_ins || c.p1 != a->chain_p1 || c.p2 != a->chain_p2)) {
            chain_clear(a);
            sw = PIV_SW_LAST_COMMAND_EXPECTED;
        } else if (a->chain->len + c.lc > PIV_CHAIN_MAX) {
            chain_clear(a);
            sw = PIV_SW_WRONG_LENGTH;
        } else {
            pending_clear(a);
            a->chaining = true;
            a->chain_ins = c.ins;
            a->chain_p1 = c.p1;
            a->chain_p2 = c.p2;
            if (c.lc) {
                g_byte_array_append(a->chain, c.data, c.lc);
            }
            sw = PIV_SW_OK;
        }
    } else if (a->chaining && c.ins == a->chain_ins && c.p1 == a->chain_p1 &&
               c.p2 == a->chain_p2) {
        /* The last link: the command is the whole chain's data. */
        g_autoptr(GByteArray) whole = a->chain;

        a->chain = g_byte_array_new();
        a->chaining = false;
        if (whole->len + c.lc > PIV_CHAIN_MAX) {
            sw = PIV_SW_WRONG_LENGTH;
        } else {
            if (c.lc) {
                g_byte_array_append(whole, c.data, c.lc);
            }
            c.data = whole->data;
            c.lc = whole->len;
            sw = dispatch(a, &c, resp);
        }
    } else {
        /* A command outside the chain ends it (ISO 7816-4 5.3.3). */
        chain_clear(a);
        sw = dispatch(a, &c, resp);
    }
    sw_bytes[0] = sw >> 8;
    sw_bytes[1] = sw & 0xff;
    g_byte_array_append(resp, sw_bytes, 2);
}

void piv_applet_reset(PIVApplet *a)
{
    a->pin_verified = false;
    a->signature_allowed = false;
    chain_clear(a);
    pending_clear(a);
}

unsigned piv_applet_pin_retries(const PIVApplet *a)
{
    return a->pin_left;
}

PIVApplet *piv_applet_new(const PIVCardConfig *config, const PIVBackendOps *ops, void *opaque)
{
    PIVApplet *a = g_new0(PIVApplet, 1);

    g_assert(config->pin_retries >= 1 && config->pin_retries <= 15);
    a->ops = ops;
    a->opaque = opaque;
    for (int i = 0; i < PIV_SLOT_COUNT; i++) {
        a->slots[i].alg = config->slots[i].alg;
        a->slots[i].cert = config->slots[i].cert ? g_bytes_ref(config->slots[i].cert) : NULL;
    }
    memcpy(a->guid, config->guid, PIV_GUID_LEN);
    a->pin_max = a->pin_left = config->pin_retries;
    a->chain = g_byte_array_new();
    a->pending = g_byte_array_new();
    return a;
}

void piv_applet_free(PIVApplet *a)
{
    if (!a) {
        return;
    }
    for (int i = 0; i < PIV_SLOT_COUNT; i++) {
        if (a->slots[i].cert) {
            g_bytes_unref(a->slots[i].cert);
        }
    }
    g_byte_array_unref(a->chain);
    g_byte_array_unref(a->pending);
    g_free(a);
}
