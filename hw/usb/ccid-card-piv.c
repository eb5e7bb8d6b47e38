/*
 * ccid-card-piv: a PIV card (NIST SP 800-73-4) made of certificates and
 * their keys in an NSS database.
 *
 * cert1..cert4 name the certificates of slots 9A (PIV Authentication), 9C
 * (Digital Signature), 9D (Key Management) and 9E (Card Authentication,
 * optional). The applet (proto/piv-applet.c) answers the guest; the private
 * keys stay in NSS, which signs and decrypts when the applet asks.
 *
 * The PIN: the contents of pin-file= if given, else the NSS database's
 * password; never a property value (it would show on the command line).
 * docs/ccid.txt ("PIV") explains the choices.
 *
 * NSS's private-key operations on a software database take a few
 * milliseconds, so they run on the main loop, inside apdu_from_guest.
 */
#include "hw/usb/ccid.h"
#include "proto/piv.h"

#include <cert.h>
#include <cryptohi.h>
#include <keyhi.h>
#include <nss.h>
#include <pk11pub.h>
#include <prerror.h>
#include <secerr.h>
#include <string.h>
#include <sys/stat.h>

#include "trace.h"

#define TYPE_PIV_CCID "ccid-card-piv"
#define DEFAULT_CERT_DB "/etc/pki/nssdb"
/* Larger certificates would not fit a PIV object's two-byte lengths. */
#define PIV_CERT_MAX 16384

typedef struct PIVCardState {
    CCIDCardState base;

    /* properties */
    char *db;
    char *certs[PIV_SLOT_COUNT];
    char *pin_file;
    uint8_t pin_retries;

    NSSInitContext *nss;
    SECKEYPrivateKey *keys[PIV_SLOT_COUNT];   /* found at the first use */
    CERTCertificate *cert[PIV_SLOT_COUNT];
    char *pin;                                /* from pin-file, or NULL */
    PK11SlotInfo *token;                      /* the database's key token */
    PIVApplet *applet;
} PIVCardState;

#define PIV_CCID(obj) DEVICE_CHECK(PIVCardState, (obj), TYPE_PIV_CCID)

static const char *const cert_props[PIV_SLOT_COUNT] = { "cert1", "cert2", "cert3", "cert4" };

/* ---- the backend ---- */

static bool piv_nss_verify_pin(void *opaque, const uint8_t *pin, size_t len)
{
    PIVCardState *s = opaque;
    char text[PIV_PIN_MAX_LEN + 1];
    bool ok;

    if (s->pin) {
        return strlen(s->pin) == len && memcmp(s->pin, pin, len) == 0;
    }
    g_assert(len <= PIV_PIN_MAX_LEN);
    memcpy(text, pin, len);
    text[len] = '\0';
    ok = PK11_CheckUserPassword(s->token, text) == SECSuccess;
    memset(text, 0, sizeof(text));
    return ok;
}

static SECKEYPrivateKey *piv_nss_key(PIVCardState *s, uint8_t key_ref)
{
    int i = piv_slot_index(key_ref);

    if (i < 0 || !s->cert[i]) {
        return NULL;
    }
    /* A database with a password shows its keys only after a login. */
    if (!s->keys[i]) {
        s->keys[i] = PK11_FindKeyByAnyCert(s->cert[i], NULL);
    }
    return s->keys[i];
}

static PIVBackendResult piv_nss_private_op(void *opaque, uint8_t key_ref, uint8_t alg,
                                           const uint8_t *in, size_t len, GByteArray *out)
{
    PIVCardState *s = opaque;
    SECKEYPrivateKey *key = piv_nss_key(s, key_ref);
    SECItem data = { siBuffer, (unsigned char *)in, len };
    SECItem sig = { siBuffer, NULL, 0 };
    SECStatus rv;

    if (!key) {
        trace_ccid_card_piv_key_failed(DEVICE(s)->id, key_ref, "lookup",
                                       PR_ErrorToName(PR_GetError()));
        return PIV_BACKEND_FAILED;
    }
    if (alg == PIV_ALG_RSA_2048) {
        unsigned out_len = 0;

        /* Raw RSA: the client padded the block for a signature or decrypts one. */
        g_byte_array_set_size(out, PIV_RSA_2048_BYTES);
        rv = PK11_PubDecryptRaw(key, out->data, &out_len, out->len, data.data, data.len);
        if (rv != SECSuccess || out_len != PIV_RSA_2048_BYTES) {
            g_byte_array_set_size(out, 0);
            trace_ccid_card_piv_key_failed(DEVICE(s)->id, key_ref, "raw RSA",
                                           PR_ErrorToName(PR_GetError()));
            return PIV_BACKEND_FAILED;
        }
        return PIV_BACKEND_OK;
    }
    /* ECDSA over the hash the client sent; PIV answers a DER Ecdsa-Sig-Value. */
    if (SECITEM_AllocItem(NULL, &sig, 2 * PIV_P256_BYTES) == NULL) {
        return PIV_BACKEND_FAILED;
    }
    rv = PK11_SignWithMechanism(key, CKM_ECDSA, NULL, &sig, &data);
    if (rv == SECSuccess) {
        SECItem der = { siBuffer, NULL, 0 };

        rv = DSAU_EncodeDerSigWithLen(&der, &sig, sig.len);
        if (rv == SECSuccess) {
            g_byte_array_append(out, der.data, der.len);
            SECITEM_FreeItem(&der, PR_FALSE);
        }
    }
    SECITEM_FreeItem(&sig, PR_FALSE);
    if (rv != SECSuccess) {
        trace_ccid_card_piv_key_failed(DEVICE(s)->id, key_ref, "ECDSA",
                                       PR_ErrorToName(PR_GetError()));
        return PIV_BACKEND_FAILED;
    }
    return PIV_BACKEND_OK;
}

/*
 * ECDH (SP 800-73-4 part 2 table 7, tag 85): the peer's point becomes a
 * public key on our key's curve; the answer is the shared x coordinate.
 */
static PIVBackendResult piv_nss_key_agreement(void *opaque, uint8_t key_ref, uint8_t alg,
                                              const uint8_t *point, size_t len,
                                              GByteArray *out)
{
    PIVCardState *s = opaque;
    SECKEYPrivateKey *key = piv_nss_key(s, key_ref);
    int i = piv_slot_index(key_ref);
    SECKEYPublicKey *peer;
    PK11SymKey *shared = NULL;
    PIVBackendResult r = PIV_BACKEND_FAILED;

    if (!key || alg != PIV_ALG_ECC_P256) {
        return PIV_BACKEND_UNSUPPORTED;
    }
    /* Our own public key, with the point replaced: same curve parameters. */
    peer = CERT_ExtractPublicKey(s->cert[i]);
    if (!peer || peer->keyType != ecKey) {
        goto out;
    }
    if (SECITEM_AllocItem(peer->arena, &peer->u.ec.publicValue, len) == NULL) {
        goto out;
    }
    memcpy(peer->u.ec.publicValue.data, point, len);
    shared = PK11_PubDeriveWithKDF(key, peer, PR_FALSE, NULL, NULL, CKM_ECDH1_DERIVE,
                                   CKM_GENERIC_SECRET_KEY_GEN, CKA_DERIVE, 0, CKD_NULL,
                                   NULL, NULL);
    if (!shared) {
        trace_ccid_card_piv_key_failed(DEVICE(s)->id, key_ref, "ECDH",
                                       PR_ErrorToName(PR_GetError()));
    } else if (PK11_ExtractKeyValue(shared) == SECSuccess) {
        SECItem *x = PK11_GetKeyData(shared);

        if (x && x->len == PIV_P256_BYTES) {
            g_byte_array_append(out, x->data, x->len);
            r = PIV_BACKEND_OK;
        }
    }
out:
    if (shared) {
        PK11_FreeSymKey(shared);
    }
    if (peer) {
        SECKEY_DestroyPublicKey(peer);
    }
    return r;
}

static const PIVBackendOps piv_nss_ops = {
    .verify_pin = piv_nss_verify_pin,
    .private_op = piv_nss_private_op,
    .key_agreement = piv_nss_key_agreement,
};

/* ---- CCIDCardClass ---- */

static const uint8_t *piv_get_atr(CCIDCardState *card, uint32_t *len)
{
    *len = piv_atr_len;
    return piv_atr;
}

static void piv_apdu_from_guest(CCIDCardState *card, const uint8_t *apdu, uint32_t len)
{
    PIVCardState *s = PIV_CCID(card);
    g_autoptr(GByteArray) resp = g_byte_array_new();

    if (len >= ISO7816_MIN_APDU_COMMAND) {
        trace_ccid_card_piv_apdu(DEVICE(s)->id, apdu[0], apdu[1], apdu[2], apdu[3], len);
    }
    piv_applet_process(s->applet, apdu, len, resp);
    trace_ccid_card_piv_answer(DEVICE(s)->id, resp->data[resp->len - 2] << 8 |
                               resp->data[resp->len - 1], resp->len - 2);
    ccid_card_send_apdu_to_guest(card, resp->data, resp->len);
}

static void piv_power_off(CCIDCardState *card)
{
    trace_ccid_card_piv_power_off(DEVICE(card)->id);
    piv_applet_reset(PIV_CCID(card)->applet);
}

/* ---- realize ---- */

/* A PIN of 6 to 8 digits (SP 800-73-4 part 2 3.2.1), alone on a line. */
static char *piv_read_pin_file(const char *path, GError **errp)
{
    char *text = NULL;
    gsize len = 0;
    g_autoptr(GError) err = NULL;
    struct stat st;
    size_t n;

    if (!g_file_get_contents(path, &text, &len, &err)) {
        g_set_error(errp, VCCID_ERROR, 0, "Property '%s.pin-file': %s", TYPE_PIV_CCID,
                    err->message);
        return NULL;
    }
    if (stat(path, &st) == 0 && (st.st_mode & 0077)) {
        g_warning("%s.pin-file: '%s' can be read by others (mode %03o): chmod 600 it",
                  TYPE_PIV_CCID, path, (unsigned)(st.st_mode & 0777));
    }
    n = strcspn(text, "\r\n");
    if (n < 6 || n > PIV_PIN_MAX_LEN || strspn(text, "0123456789") < n) {
        g_set_error(errp, VCCID_ERROR, 0, "Property '%s.pin-file': '%s' does not hold a PIN "
                    "of 6 to 8 digits on its first line", TYPE_PIV_CCID, path);
        memset(text, 0, len);
        g_free(text);
        return NULL;
    }
    memset(text + n, 0, len - n);
    return text;
}

/* The PIV algorithm of a certificate's key: RSA 2048 or ECC P-256; 0 if neither. */
static uint8_t piv_cert_alg(CERTCertificate *cert)
{
    SECKEYPublicKey *pub = CERT_ExtractPublicKey(cert);
    uint8_t alg = 0;

    if (!pub) {
        return 0;
    }
    if (pub->keyType == rsaKey && SECKEY_PublicKeyStrengthInBits(pub) == 2048) {
        alg = PIV_ALG_RSA_2048;
    } else if (pub->keyType == ecKey && SECKEY_PublicKeyStrengthInBits(pub) == 256) {
        alg = PIV_ALG_ECC_P256;
    }
    SECKEY_DestroyPublicKey(pub);
    return alg;
}

/* The CHUID's GUID: a SHA-256 of the certificates, so a card keeps its identity. */
static void piv_make_guid(PIVCardState *s, uint8_t guid[PIV_GUID_LEN])
{
    g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
    uint8_t digest[32];
    gsize len = sizeof(digest);

    for (int i = 0; i < PIV_SLOT_COUNT; i++) {
        if (s->cert[i]) {
            g_checksum_update(sum, s->cert[i]->derCert.data, s->cert[i]->derCert.len);
        }
    }
    g_checksum_get_digest(sum, digest, &len);
    memcpy(guid, digest, PIV_GUID_LEN);
    guid[6] = (guid[6] & 0x0f) | 0x80;      /* RFC 9562 version 8: custom */
    guid[8] = (guid[8] & 0x3f) | 0x80;      /* variant 10 */
}

static bool piv_open_db(PIVCardState *s, GError **errp)
{
    const char *db = s->db ? s->db : DEFAULT_CERT_DB;

    /* A context of our own: ccid-card-emulated's libcacard has its own NSS setup. */
    s->nss = NSS_InitContext(db, "", "", "", NULL,
                             NSS_INIT_READONLY | NSS_INIT_NOROOTINIT | NSS_INIT_OPTIMIZESPACE);
    if (!s->nss) {
        g_set_error(errp, VCCID_ERROR, 0, "Property '%s.db': cannot open NSS database '%s': %s",
                    TYPE_PIV_CCID, db, PR_ErrorToName(PR_GetError()));
        return false;
    }
    return true;
}

static bool piv_load_certs(PIVCardState *s, PIVCardConfig *cfg, GError **errp)
{
    const char *db = s->db ? s->db : DEFAULT_CERT_DB;

    for (int i = 0; i < PIV_SLOT_COUNT; i++) {
        CERTCertificate *cert;

        if (!s->certs[i]) {
            if (i < 3) {
                g_set_error(errp, VCCID_ERROR, 0, "%s needs cert1, cert2 and cert3 "
                            "(slots 9A, 9C, 9D): %s is missing", TYPE_PIV_CCID, cert_props[i]);
                return false;
            }
            continue;
        }
        cert = CERT_FindCertByNickname(CERT_GetDefaultCertDB(), s->certs[i]);
        if (!cert) {
            g_set_error(errp, VCCID_ERROR, 0, "Property '%s.%s': no certificate named '%s' "
                        "in %s", TYPE_PIV_CCID, cert_props[i], s->certs[i], db);
            return false;
        }
        s->cert[i] = cert;
        cfg->slots[i].alg = piv_cert_alg(cert);
        if (!cfg->slots[i].alg || cert->derCert.len > PIV_CERT_MAX) {
            g_set_error(errp, VCCID_ERROR, 0, "Property '%s.%s': certificate '%s' %s",
                        TYPE_PIV_CCID, cert_props[i], s->certs[i],
                        cfg->slots[i].alg ? "is too large for a PIV object"
                                          : "has a key PIV cannot hold here "
                                            "(RSA 2048 or ECC P-256)");
            return false;
        }
        cfg->slots[i].cert = g_bytes_new(cert->derCert.data, cert->derCert.len);
    }
    return true;
}

/*
 * Where the PIN comes from. With pin-file=, that PIN; a database with a
 * password must then open with it. Without, the database's password, so a
 * database without one cannot make a card: every PIN would be right.
 */
static bool piv_setup_pin(PIVCardState *s, GError **errp)
{
    const char *db = s->db ? s->db : DEFAULT_CERT_DB;

    s->token = PK11_GetInternalKeySlot();
    if (s->pin_file) {
        s->pin = piv_read_pin_file(s->pin_file, errp);
        if (!s->pin) {
            return false;
        }
        if (PK11_NeedLogin(s->token) &&
            PK11_CheckUserPassword(s->token, s->pin) != SECSuccess) {
            g_set_error(errp, VCCID_ERROR, 0, "Property '%s.pin-file': the PIN does not open "
                        "the NSS database %s, which has a password", TYPE_PIV_CCID, db);
            return false;
        }
        return true;
    }
    if (!PK11_NeedLogin(s->token)) {
        g_set_error(errp, VCCID_ERROR, 0, "%s: the NSS database %s has no password, so it "
                    "cannot be the PIN: give pin-file=FILE (a file holding the PIN)",
                    TYPE_PIV_CCID, db);
        return false;
    }
    return true;
}

/* With the keys visible (no password, or pin-file), say now if one is missing. */
static bool piv_check_keys(PIVCardState *s, GError **errp)
{
    if (PK11_NeedLogin(s->token) && !PK11_IsLoggedIn(s->token, NULL)) {
        return true;
    }
    for (int i = 0; i < PIV_SLOT_COUNT; i++) {
        if (s->cert[i] && !(s->keys[i] = PK11_FindKeyByAnyCert(s->cert[i], NULL))) {
            g_set_error(errp, VCCID_ERROR, 0, "Property '%s.%s': no private key for "
                        "certificate '%s'", TYPE_PIV_CCID, cert_props[i], s->certs[i]);
            return false;
        }
    }
    return true;
}

static void piv_unrealize(DeviceState *d);

static bool piv_realize(DeviceState *d, GError **errp)
{
    PIVCardState *s = PIV_CCID(d);
    PIVCardConfig cfg = { .pin_retries = s->pin_retries };
    bool ok;

    if (s->pin_retries < 1 || s->pin_retries > 15) {
        g_set_error(errp, VCCID_ERROR, 0, "Property '%s.pin-retries' doesn't take value %u "
                    "(1 to 15)", TYPE_PIV_CCID, s->pin_retries);
        return false;
    }
    ok = piv_open_db(s, errp) && piv_load_certs(s, &cfg, errp) && piv_setup_pin(s, errp) &&
         piv_check_keys(s, errp);
    if (ok) {
        piv_make_guid(s, cfg.guid);
        s->applet = piv_applet_new(&cfg, &piv_nss_ops, s);
    }
    for (int i = 0; i < PIV_SLOT_COUNT; i++) {
        if (cfg.slots[i].cert) {
            g_bytes_unref(cfg.slots[i].cert);
        }
    }
    if (!ok) {
        piv_unrealize(d);
        return false;
    }
    g_message("%s: PIV card from %s (PIN from %s)", d->id, s->db ? s->db : DEFAULT_CERT_DB,
              s->pin_file ? "pin-file" : "the database password");
    ccid_card_card_inserted(&s->base);
    return true;
}

static void piv_unrealize(DeviceState *d)
{
    PIVCardState *s = PIV_CCID(d);

    g_clear_pointer(&s->applet, piv_applet_free);
    for (int i = 0; i < PIV_SLOT_COUNT; i++) {
        g_clear_pointer(&s->keys[i], SECKEY_DestroyPrivateKey);
        g_clear_pointer(&s->cert[i], CERT_DestroyCertificate);
    }
    g_clear_pointer(&s->token, PK11_FreeSlot);
    if (s->pin) {
        memset(s->pin, 0, strlen(s->pin));
        g_clear_pointer(&s->pin, g_free);
    }
    if (s->nss) {
        NSS_ShutdownContext(s->nss);
        s->nss = NULL;
    }
}

static const Property piv_properties[] = {
    DEFINE_CCID_CARD_PROPERTIES(PIVCardState, base),
    DEFINE_PROP_STRING("db", PIVCardState, db, NULL,
                       "NSS database, e.g. sql:/path (default " DEFAULT_CERT_DB ")"),
    DEFINE_PROP_STRING("cert1", PIVCardState, certs[0], NULL,
                       "certificate nickname for slot 9A (PIV Authentication)"),
    DEFINE_PROP_STRING("cert2", PIVCardState, certs[1], NULL,
                       "certificate nickname for slot 9C (Digital Signature)"),
    DEFINE_PROP_STRING("cert3", PIVCardState, certs[2], NULL,
                       "certificate nickname for slot 9D (Key Management)"),
    DEFINE_PROP_STRING("cert4", PIVCardState, certs[3], NULL,
                       "certificate nickname for slot 9E (Card Authentication), optional"),
    DEFINE_PROP_STRING("pin-file", PIVCardState, pin_file, NULL,
                       "file holding the PIN (6-8 digits); default: the database password"),
    DEFINE_PROP_UINT8("pin-retries", PIVCardState, pin_retries, "3",
                      "wrong PINs before the PIN blocks (1-15)"),
    DEFINE_PROP_END_OF_LIST(),
};

static const CCIDCardClass piv_card_class = {
    .parent_class = CCID_CARD_DEVICE_CLASS(TYPE_PIV_CCID, "emulated PIV card (NSS keys)",
                                           PIVCardState, piv_properties,
                                           piv_realize, piv_unrealize),
    .get_atr = piv_get_atr,
    .apdu_from_guest = piv_apdu_from_guest,
    .power_off = piv_power_off,
};

device_class_init(piv_card_class)
