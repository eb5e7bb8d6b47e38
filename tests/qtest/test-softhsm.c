/*
 * qtests of backend=nss-emulated on a real PKCS#11 token: a SoftHSM2 token
 * (tests/softhsm/make-token.sh) with a key generated inside it and a
 * self-signed certificate, registered in an NSS database. The card vccid
 * makes of it must carry the token's certificate, let the token check the
 * PIN and sign with the token's key.
 */
#include "usb-ccid-common.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* make-token.sh's defaults */
#define TOKEN_LABEL "vccid-token"
#define TOKEN_PIN "648219"

/* ISO 7816-4 VERIFY. */
#define ISO_VERIFY       0x20

/* The token's directory: softhsm2.conf, the NSS database, cert.der. */
static char *token_dir;

static void make_token(void)
{
    const char *root = g_getenv("VCCID_SOURCE_ROOT");
    g_autofree char *script = NULL;
    g_autofree char *conf = NULL;
    g_autofree char *err = NULL;
    g_autoptr(GError) error = NULL;
    int status;

    g_assert_nonnull(root);
    script = g_build_filename(root, "tests", "softhsm", "make-token.sh", NULL);
    token_dir = g_dir_make_tmp("vccid-softhsm-XXXXXX", &error);
    g_assert_no_error(error);
    const char *argv[] = { "/bin/sh", script, token_dir, NULL };
    g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, &err,
                 &status, &error);
    g_assert_no_error(error);
    if (!g_spawn_check_wait_status(status, NULL)) {
        /* No skip: softhsm2 is in scripts/install-deps.sh --test. */
        g_error("make-token.sh failed: %s", err);
    }
    /* vccid, started by the tests, inherits it: NSS loads SoftHSM2 in there. */
    conf = g_build_filename(token_dir, "softhsm2.conf", NULL);
    g_setenv("SOFTHSM2_CONF", conf, TRUE);
}

static void remove_token(void)
{
    const char *argv[] = { "rm", "-rf", token_dir, NULL };

    g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL,
                 NULL, NULL);
    g_free(token_dir);
}

static GBytes *token_cert_der(void)
{
    g_autofree char *path = g_build_filename(token_dir, "cert.der", NULL);
    g_autoptr(GError) error = NULL;
    char *data;
    gsize len;

    g_file_get_contents(path, &data, &len, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(len, >, 100);
    return g_bytes_new_take(data, len);
}

/* vccid with the token's slot as its card; extra is appended to the card's options. */
static VccidProcess *start_on_token(const char *extra)
{
    g_autofree char *card = g_strdup_printf("ccid-card-emulated,backend=nss-emulated,"
                                            "db=sql:%s%s", token_dir, extra);
    const char *args[] = { "-device", "usb-ccid,id=ccid", "-device", card, NULL };

    return vccid_start(args);
}

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->vccid = start_on_token(",slots=removable,token=" TOKEN_LABEL);
    f->c = ccid_host_open(f->vccid->sock_path);
    g_byte_array_unref(ccid_power_on(f->c));
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    ccid_host_free(f->c);
    vccid_stop(f->vccid);
}

/* VERIFY with the PIN padded to 8 bytes with FF, as CAC middleware sends it. */
static uint16_t verify(CcidHost *c, const char *pin)
{
    uint8_t apdu[5 + 8] = { 0x00, ISO_VERIFY, 0x00, 0x00, 0x08 };
    size_t n = strlen(pin);
    g_autoptr(GByteArray) r = NULL;

    g_assert_cmpuint(n, <=, 8);
    memset(apdu + 5, 0xff, 8);
    memcpy(apdu + 5, pin, n);
    r = ccid_xfr_apdu(c, apdu, sizeof(apdu));
    g_assert_cmpuint(r->len, ==, 2);
    return apdu_sw(r);
}

/* VERIFY without data: is the card logged in? */
static uint16_t verify_status(CcidHost *c)
{
    static const uint8_t apdu[] = { 0x00, ISO_VERIFY, 0x00, 0x00 };
    g_autoptr(GByteArray) r = ccid_xfr_apdu(c, apdu, sizeof(apdu));

    return apdu_sw(r);
}

/*
 * The raw RSA operation of the selected PKI applet on a 256-byte block, sent
 * as two chained CAC SIGN/DECRYPT pieces (P1 0x80: more follows).
 */
static GByteArray *cac_sign(CcidHost *c, const uint8_t block[256])
{
    uint8_t part1[5 + 128], part2[5 + 128 + 1];
    g_autoptr(GByteArray) r1 = NULL;

    memcpy(part1, (uint8_t[]){ 0x80, CAC_SIGN_DECRYPT, 0x80, 0x00, 128 }, 5);
    memcpy(part1 + 5, block, 128);
    memcpy(part2, (uint8_t[]){ 0x80, CAC_SIGN_DECRYPT, 0x00, 0x00, 128 }, 5);
    memcpy(part2 + 5, block + 128, 128);
    part2[sizeof(part2) - 1] = 0x00;     /* Le: 256 */
    r1 = ccid_xfr_apdu(c, part1, sizeof(part1));
    if (apdu_sw(r1) != 0x9000) {
        return g_steal_pointer(&r1);
    }
    return ccid_transmit(c, part2, sizeof(part2));
}

/* EMSA-PKCS1-v1_5 (RFC 8017 9.2) of SHA-256(msg) for a 2048-bit key. */
static void pkcs1_sha256_block(const char *msg, uint8_t block[256])
{
    static const uint8_t digest_info[] = {
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
        0x01, 0x05, 0x00, 0x04, 0x20,
    };
    g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
    gsize hash_len = 32;
    size_t t_len = sizeof(digest_info) + hash_len;

    g_checksum_update(sum, (const guchar *)msg, strlen(msg));
    memset(block, 0xff, 256);
    block[0] = 0x00;
    block[1] = 0x01;
    block[256 - t_len - 1] = 0x00;
    memcpy(block + 256 - t_len, digest_info, sizeof(digest_info));
    g_checksum_get_digest(sum, block + 256 - hash_len, &hash_len);
    g_assert_cmpuint(hash_len, ==, 32);
}

/* Does sig verify as an RSA PKCS#1 v1.5 SHA-256 signature of msg under the certificate? */
static bool signature_verifies(GBytes *cert, const char *msg, const uint8_t *sig, size_t len)
{
    gnutls_pubkey_t key;
    gsize cert_len;
    const gnutls_datum_t der = {
        .data = (unsigned char *)g_bytes_get_data(cert, &cert_len),
        .size = cert_len,
    };
    const gnutls_datum_t data = { .data = (unsigned char *)msg, .size = strlen(msg) };
    const gnutls_datum_t signature = { .data = (unsigned char *)sig, .size = len };
    int rc;

    g_assert_cmpint(gnutls_pubkey_init(&key), ==, 0);
    g_assert_cmpint(gnutls_pubkey_import_x509_raw(key, &der, GNUTLS_X509_FMT_DER, 0), ==, 0);
    rc = gnutls_pubkey_verify_data2(key, GNUTLS_SIGN_RSA_SHA256, 0, &data, &signature);
    gnutls_pubkey_deinit(key);
    return rc >= 0;
}

/*
 * The certificate on the card is the token's: the value buffer of PKI applet
 * 0 is the length, CertInfo (0: not compressed), then certutil's DER.
 */
static void check_certificate(CcidHost *c)
{
    g_autoptr(GBytes) der = token_cert_der();
    g_autoptr(GByteArray) value = NULL;
    gsize der_len;
    const uint8_t *der_data = g_bytes_get_data(der, &der_len);

    select_pki(c, 0);
    value = read_value_buffer(c);
    g_assert_cmpuint(value->len, ==, 3 + der_len);
    g_assert_cmpuint(value->data[2], ==, 0x00);
    g_assert_cmpmem(value->data + 3, der_len, der_data, der_len);
}

/*
 * The token checks the PIN. libcacard hands VERIFY to PK11_Authenticate and
 * answers 69 85 (conditions of use not satisfied) to any refusal; VERIFY
 * without data answers 90 00 once logged in and 6A 88 (referenced data not
 * found) before: libcacard
 * cannot count retries.
 */
static void check_verify(CcidHost *c)
{
    select_pki(c, 0);
    g_assert_cmphex(verify_status(c), ==, 0x6a88);
    g_assert_cmphex(verify(c, "000000"), ==, 0x6985);
    g_assert_cmphex(verify(c, TOKEN_PIN "9"), ==, 0x6985);
    g_assert_cmphex(verify_status(c), ==, 0x6a88);
    g_assert_cmphex(verify(c, TOKEN_PIN), ==, 0x9000);
    g_assert_cmphex(verify_status(c), ==, 0x9000);
    /* A wrong PIN after a right one logs out again. */
    g_assert_cmphex(verify(c, "111111"), ==, 0x6985);
    g_assert_cmphex(verify_status(c), ==, 0x6a88);
}

/* The key never leaves the token: it signs only after the PIN, and the signature verifies. */
static void check_sign(CcidHost *c)
{
    static const char msg[] = "vccid signs with a SoftHSM2 key";
    g_autoptr(GBytes) der = token_cert_der();
    g_autoptr(GByteArray) refused = NULL;
    g_autoptr(GByteArray) sig = NULL;
    uint8_t block[256];

    pkcs1_sha256_block(msg, block);
    select_pki(c, 0);
    refused = cac_sign(c, block);
    g_test_message("SIGN before VERIFY: SW %04x", apdu_sw(refused));
    g_assert_cmphex(apdu_sw(refused), !=, 0x9000);
    g_assert_cmphex(verify(c, TOKEN_PIN), ==, 0x9000);
    sig = cac_sign(c, block);
    g_assert_cmphex(apdu_sw(sig), ==, 0x9000);
    g_assert_cmpuint(sig->len, ==, 256 + 2);
    g_assert_true(signature_verifies(der, msg, sig->data, 256));
    /* and a signature of something else does not */
    g_assert_false(signature_verifies(der, "something else", sig->data, 256));
}

/* One check against the token's slot as an emulated card (the Fixture). */
typedef struct TokenCase {
    const char *path;
    void (*check)(CcidHost *c);
} TokenCase;

static void test_on_token(Fixture *f, gconstpointer data)
{
    const TokenCase *tc = data;

    tc->check(f->c);
}

/*
 * Section 8.1's path: vscclient lends the token (--slots removable --token)
 * to ccid-card-passthru. Only the token's reader is announced (not
 * SoftHSM2's free slot), and the card behaves as it does in vccid.
 */
static void test_vscclient_passthru(void)
{
    g_autofree char *port = g_strdup_printf("%u", qtest_free_tcp_port());
    g_autofree char *chardev = g_strdup_printf(
        "socket,id=vsc,host=127.0.0.1,port=%s,server=on,wait=off", port);
    const char *args[] = {
        "-chardev", chardev, "-device", "usb-ccid,id=ccid",
        "-device", "ccid-card-passthru,chardev=vsc", NULL,
    };
    g_autofree char *db = g_strdup_printf("sql:%s", token_dir);
    const char *vsc_args[] = { "--db", db, "--slots", "removable", "--token", TOKEN_LABEL,
                               "127.0.0.1", port, NULL };
    g_autofree char *log = NULL;
    VscclientProcess vc;
    VccidProcess *v;
    CcidHost *c;

    g_assert_nonnull(g_getenv("VSCCLIENT_BINARY"));
    v = vccid_start(args);
    c = ccid_host_open(v->sock_path);
    vc = vscclient_start(vsc_args);
    g_byte_array_unref(ccid_power_on(c));
    check_certificate(c);
    check_verify(c);
    check_sign(c);

    vscclient_exit(&vc);
    log = vccid_read_stderr(v);
    g_assert_null(strstr(log, "refused"));
    ccid_host_free(c);
    vccid_stop(v);
}

/*
 * slots=removable-hw (the default, QEMU's use_hw=yes) wants PK11_IsHW,
 * which SoftHSM2 never claims: the reader stays empty, even though
 * libcacard's event thread announces the slot as a reader, and vccid says
 * how to take the token.
 */
static void test_default_slots_no_card(void)
{
    VccidProcess *p = start_on_token("");
    CcidHost *c = ccid_host_open(p->sock_path);
    g_autoptr(CcidAnswer) a = NULL;
    g_autofree char *log = NULL;

    g_usleep(500 * 1000);
    a = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, 0, 0, NULL, 0);
    g_assert_cmpuint(a->status & 0x03, ==, 2);     /* bmICCStatus: no ICC present */
    log = vccid_read_stderr(p);
    if (!strstr(log, "software token(s) '" TOKEN_LABEL "' left out (slots=removable")) {
        g_error("no hint about the token left out in: %s", log);
    }
    ccid_host_free(c);
    vccid_stop(p);
}

/* Bad token= and slots= values stop vccid with a line that names them. */
static void test_bad_choices(void)
{
    /* Options for the card and the error they are refused with. */
    static const StringCase cases[] = {
        { ",slots=removable,token=no-such-token", "no token labelled 'no-such-token'" },
        { ",token=" TOKEN_LABEL, "not a removable hardware slot (slots=removable" },
        { ",slots=hardware", "'ccid-card-emulated.slots' doesn't take value 'hardware'" },
        { ",backend=certificates,cert1=a,cert2=b,cert3=c,slots=removable",
          "'ccid-card-emulated.slots' is for backend=nss-emulated" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *card = g_strdup_printf("ccid-card-emulated,backend=nss-emulated,"
                                                "db=sql:%s%s", token_dir, cases[i].input);
        const char *args[] = { "-device", "usb-ccid", "-device", card, NULL };

        vccid_assert_cli_error(args, cases[i].expected);
    }
}

/* vscclient's choices: refused before it connects anywhere, with a line that says why. */
static void test_vscclient_bad_choices(void)
{
    g_autofree char *db = g_strdup_printf("sql:%s", token_dir);
    static const struct {
        const char *args[6];
        int status;
        const char *message;
    } cases[] = {
        { { "--db", NULL, "--slots", "removable", "--token", "no-such-token" }, 1,
          "--token no-such-token: no token with that label" },
        { { "--db", NULL, "--token", TOKEN_LABEL }, 1,
          "is not a removable hardware slot (--slots removable" },
        { { "--db", NULL, "--slots", "hardware" }, 2, "--slots hardware: expected" },
        { { "--db", NULL, "-e", "use_hw=removable" }, 2, "-e is raw libcacard options" },
        { { "--db", NULL, "-c", "vccid-hsm", "--token", TOKEN_LABEL }, 2,
          "-c makes a software card" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_autoptr(GError) error = NULL;
        g_autofree char *err = NULL;
        int status;

        g_ptr_array_add(argv, (char *)g_getenv("VSCCLIENT_BINARY"));
        for (int j = 0; j < 6 && (j == 1 || cases[i].args[j]); j++) {
            g_ptr_array_add(argv, (char *)(j == 1 ? db : cases[i].args[j]));
        }
        /* Port 1 on loopback: nothing listens, and nothing may be tried. */
        g_ptr_array_add(argv, "127.0.0.1");
        g_ptr_array_add(argv, "1");
        g_ptr_array_add(argv, NULL);
        g_assert_nonnull(argv->pdata[0]);
        g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_STDIN_FROM_DEV_NULL |
                     G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err, &status, &error);
        g_assert_no_error(error);
        g_assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) != cases[i].status || !strstr(err, cases[i].message)) {
            g_error("case %zu: expected status %d and '%s', got %d: %s", i, cases[i].status,
                    cases[i].message, WEXITSTATUS(status), err);
        }
    }
}

static const TestCase cases[] = {
    { "/softhsm/vscclient-passthru", test_vscclient_passthru },
    { "/softhsm/default-slots-no-card", test_default_slots_no_card },
    { "/softhsm/bad-choices", test_bad_choices },
    { "/softhsm/vscclient-bad-choices", test_vscclient_bad_choices },
};

static const TokenCase token_cases[] = {
    { "/softhsm/certificate", check_certificate },
    { "/softhsm/verify", check_verify },
    { "/softhsm/sign", check_sign },
};

int main(int argc, char **argv)
{
    int rc;

    g_test_init(&argc, &argv, NULL);
    make_token();
    for (size_t i = 0; i < G_N_ELEMENTS(token_cases); i++) {
        g_test_add(token_cases[i].path, Fixture, &token_cases[i], fixture_setup, test_on_token,
                   fixture_teardown);
    }
    test_add_cases(cases);
    rc = g_test_run();
    remove_token();
    return rc;
}
