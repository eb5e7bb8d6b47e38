/*
 * qtest: the real vccid binary with a ccid-card-piv, driven over usbredir by
 * the CCID host. The card's answers are checked against what NSS and
 * openssl say of the same database: the certificate read from slot 9A is
 * the database's DER, a signature made by 9A verifies with openssl, and 9D
 * decrypts what openssl encrypted to its certificate.
 */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>

#include "ccid-host.h"
#include "libqtest-vccid.h"

#define PIN "123456"

static const uint8_t piv_select[] = {
    0x00, 0xa4, 0x04, 0x00, 0x09, 0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x00,
};

typedef struct Card {
    char *dir;          /* the pin file and the files handed to openssl */
    VccidProcess *p;
    CcidHost *c;
} Card;

/* Private, as a PIN file should be (vccid warns about one others can read). */
static char *write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char *path = g_build_filename(dir, name, NULL);

    g_assert_true(g_file_set_contents_full(path, data, len, G_FILE_SET_CONTENTS_NONE, 0600,
                                           NULL));
    return path;
}

/* vccid with a reader and dev in it, and the CCID host on it. */
static void card_start_device(Card *card, const char *dev)
{
    card->p = vccid_start((const char *[]){ "-device", "usb-ccid,id=ccid", "-device", dev,
                                            NULL });
    card->c = ccid_host_open(card->p->sock_path);
}

static void card_start(Card *card, const char *extra)
{
    g_autofree char *pin_file = NULL;
    g_autofree char *dev = NULL;

    card->dir = g_dir_make_tmp("vccid-piv-XXXXXX", NULL);
    g_assert_nonnull(card->dir);
    pin_file = write_file(card->dir, "pin", PIN "\n", strlen(PIN) + 1);
    dev = g_strdup_printf("ccid-card-piv,db=@DB@,cert1=id-cert,cert2=signing-cert,"
                          "cert3=encryption-cert,pin-file=%s%s", pin_file, extra);
    card_start_device(card, dev);
}

static void remove_dir(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;

    while ((name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);

        g_unlink(path);
    }
    g_rmdir(dir);
}

static void card_stop(Card *card)
{
    ccid_host_free(card->c);
    vccid_stop(card->p);
    remove_dir(card->dir);
    g_free(card->dir);
}

static GByteArray *transmit(Card *card, const uint8_t *apdu, size_t len)
{
    return ccid_transmit(card->c, apdu, len);
}

static uint16_t transmit_sw(Card *card, const uint8_t *apdu, size_t len)
{
    g_autoptr(GByteArray) r = transmit(card, apdu, len);

    return apdu_sw(r);
}

static uint16_t verify(Card *card, const char *pin)
{
    uint8_t apdu[13] = { 0x00, 0x20, 0x00, 0x80, 0x08 };

    memset(apdu + 5, 0xff, 8);
    memcpy(apdu + 5, pin, strlen(pin));
    return transmit_sw(card, apdu, sizeof(apdu));
}

/* The DER certificate in a GET DATA answer: 53 82 LL LL 70 82 LL LL DER ... */
static GBytes *read_cert(Card *card, uint8_t tag_low)
{
    uint8_t apdu[] = { 0x00, 0xcb, 0x3f, 0xff, 0x05, 0x5c, 0x03, 0x5f, 0xc1, tag_low, 0x00 };
    g_autoptr(GByteArray) r = transmit(card, apdu, sizeof(apdu));
    size_t len;

    g_assert_cmphex(apdu_sw(r), ==, 0x9000);
    g_assert_cmphex(r->data[0], ==, 0x53);
    g_assert_cmphex(r->data[1], ==, 0x82);
    g_assert_cmphex(r->data[4], ==, 0x70);
    g_assert_cmphex(r->data[5], ==, 0x82);
    len = r->data[6] << 8 | r->data[7];
    g_assert_cmpuint(8 + len + 5 + 2, ==, r->len);
    return g_bytes_new(r->data + 8, len);
}

/* GENERAL AUTHENTICATE with a 256-byte block, in two chained APDUs. */
static GByteArray *general_authenticate_rsa(Card *card, uint8_t key, const uint8_t block[256],
                                            uint16_t *sw)
{
    uint8_t tmpl[10 + 256] = { 0x7c, 0x82, 0x01, 0x06, 0x82, 0x00, 0x81, 0x82, 0x01, 0x00 };
    uint8_t first[5 + 200] = { 0x10, 0x87, 0x07, key, 200 };
    uint8_t last[5 + 66 + 1] = { 0x00, 0x87, 0x07, key, 66 };
    g_autoptr(GByteArray) r1 = NULL;
    GByteArray *r;

    memcpy(tmpl + 10, block, 256);
    memcpy(first + 5, tmpl, 200);
    memcpy(last + 5, tmpl + 200, 66);
    r1 = transmit(card, first, sizeof(first));
    g_assert_cmphex(apdu_sw(r1), ==, 0x9000);
    r = transmit(card, last, sizeof(last));
    *sw = apdu_sw(r);
    if (*sw == 0x9000) {
        g_assert_cmpuint(r->len, ==, 8 + 256 + 2);
        g_assert_cmpmem(r->data, 8, ((const uint8_t[]){ 0x7c, 0x82, 0x01, 0x04,
                                                        0x82, 0x82, 0x01, 0x00 }), 8);
        memmove(r->data, r->data + 8, 256);
        g_byte_array_set_size(r, 256);
    }
    return r;
}

static void run_openssl(const char *const *argv, char **out)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *errs = NULL;
    int status;

    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                               out, &errs, &status, &err));
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_test_message("%s: %s", argv[1], errs);
    }
    g_assert_true(g_spawn_check_wait_status(status, NULL));
}

/* The public key of a DER certificate, as a PEM file for openssl. */
static char *public_key_file(const char *dir, const char *name, GBytes *der)
{
    g_autofree char *cert = g_strconcat(name, ".der", NULL);
    g_autofree char *cert_path = write_file(dir, cert, g_bytes_get_data(der, NULL),
                                            g_bytes_get_size(der));
    g_autofree char *pem = NULL;

    run_openssl((const char *[]){ "openssl", "x509", "-inform", "DER", "-in", cert_path,
                                  "-noout", "-pubkey", NULL }, &pem);
    return write_file(dir, name, pem, strlen(pem));
}

/* DigestInfo prefix of SHA-256 (RFC 8017 9.2 note 1). */
static const uint8_t sha256_info[] = {
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
    0x01, 0x05, 0x00, 0x04, 0x20,
};

/* The PKCS#1 v1.5 signature block of SHA-256(message), for a raw RSA 2048 signature. */
static void pkcs1_sha256_block(uint8_t block[256], const char *message)
{
    g_autoptr(GChecksum) sha = g_checksum_new(G_CHECKSUM_SHA256);
    gsize digest_len = 32;

    memset(block, 0xff, 256);
    block[0] = 0x00;
    block[1] = 0x01;
    block[256 - sizeof(sha256_info) - 32 - 1] = 0x00;
    memcpy(block + 256 - sizeof(sha256_info) - 32, sha256_info, sizeof(sha256_info));
    g_checksum_update(sha, (const guchar *)message, strlen(message));
    g_checksum_get_digest(sha, block + 256 - 32, &digest_len);
}

/* openssl finds sig a good SHA-256 signature of the file msg_path by cert's key. */
static void assert_openssl_verifies(Card *card, const char *key_name, GBytes *cert,
                                    const char *msg_path, const GByteArray *sig)
{
    g_autofree char *pub = public_key_file(card->dir, key_name, cert);
    g_autofree char *sig_path = write_file(card->dir, "sig", sig->data, sig->len);
    g_autofree char *out = NULL;

    run_openssl((const char *[]){ "openssl", "dgst", "-sha256", "-verify", pub, "-signature",
                                  sig_path, msg_path, NULL }, &out);
    g_assert_nonnull(strstr(out, "Verified OK"));
}

/*
 * key signs the PKCS#1 v1.5 block of SHA-256(message) (left in block) raw,
 * and openssl verifies the signature with cert. Returns the message's file.
 */
static char *assert_rsa_signs(Card *card, uint8_t key, GBytes *cert, const char *message,
                              uint8_t block[256])
{
    g_autofree char *key_name = g_strdup_printf("%02x.pem", key);
    g_autoptr(GByteArray) sig = NULL;
    char *msg_path;
    uint16_t sw;

    pkcs1_sha256_block(block, message);
    sig = general_authenticate_rsa(card, key, block, &sw);
    g_assert_cmphex(sw, ==, 0x9000);
    msg_path = write_file(card->dir, "msg", message, strlen(message));
    assert_openssl_verifies(card, key_name, cert, msg_path, sig);
    return msg_path;
}

/* The certificate the card gives for tag 5FC1xx is nickname's in the database. */
static GBytes *read_cert_of(Card *card, uint8_t tag_low, const char *nickname)
{
    GBytes *cert = read_cert(card, tag_low);
    g_autoptr(GBytes) der = vccid_cert_der(nickname);

    g_assert_true(g_bytes_equal(cert, der));
    return cert;
}

static void test_card(void)
{
    static const uint8_t atr[] = {
        0x3b, 0x8e, 0x81, 0x31, 0xfe, 0x45, 0x80, 0x73, 0xc0, 0x00, 0xc0, 0x58,
        'v', 'c', 'c', 'i', 'd', 'P', 'I', 'V', 0x1a,
    };
    static const char message[] = "signed by slot 9A of a PIV card";
    Card card;
    g_autoptr(GByteArray) got_atr = NULL;
    g_autoptr(GByteArray) sel = NULL;
    g_autoptr(GBytes) cert = NULL;
    g_autofree char *msg_path = NULL;
    uint8_t block[256];
    uint16_t sw;

    card_start(&card, "");
    got_atr = ccid_power_on(card.c);
    g_assert_cmpmem(got_atr->data, got_atr->len, atr, sizeof(atr));

    sel = transmit(&card, piv_select, sizeof(piv_select));
    g_assert_cmphex(apdu_sw(sel), ==, 0x9000);
    g_assert_cmphex(sel->data[0], ==, 0x61);

    cert = read_cert_of(&card, 0x05, "id-cert");

    /* No PIN yet: the private key is out of reach. */
    memset(block, 0, sizeof(block));
    g_byte_array_unref(general_authenticate_rsa(&card, 0x9a, block, &sw));
    g_assert_cmphex(sw, ==, 0x6982);
    g_assert_cmphex(transmit_sw(&card, (const uint8_t[]){ 0x00, 0x20, 0x00, 0x80 }, 4), ==,
                    0x63c3);
    g_assert_cmphex(verify(&card, "999999"), ==, 0x63c2);
    g_assert_cmphex(verify(&card, PIN), ==, 0x9000);
    g_assert_cmphex(transmit_sw(&card, (const uint8_t[]){ 0x00, 0x20, 0x00, 0x80 }, 4), ==,
                    0x9000);

    msg_path = assert_rsa_signs(&card, 0x9a, cert, message, block);

    /* 9D decrypts what openssl encrypted to its certificate. */
    {
        g_autoptr(GBytes) cert9d = read_cert_of(&card, 0x0b, "encryption-cert");
        g_autofree char *pub9d = public_key_file(card.dir, "9d.pem", cert9d);
        g_autofree char *ct_path = g_build_filename(card.dir, "ct", NULL);
        g_autofree char *ct = NULL;
        g_autofree char *ignored = NULL;
        g_autoptr(GByteArray) plain = NULL;
        gsize ct_len;

        run_openssl((const char *[]){ "openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey",
                                      pub9d, "-in", msg_path, "-out", ct_path, NULL },
                    &ignored);
        g_assert_true(g_file_get_contents(ct_path, &ct, &ct_len, NULL));
        g_assert_cmpuint(ct_len, ==, 256);
        plain = general_authenticate_rsa(&card, 0x9d, (const uint8_t *)ct, &sw);
        g_assert_cmphex(sw, ==, 0x9000);
        /* 00 02 <random non-zero> 00 message */
        g_assert_cmphex(plain->data[0], ==, 0x00);
        g_assert_cmphex(plain->data[1], ==, 0x02);
        g_assert_cmpmem(plain->data + 256 - strlen(message), strlen(message), message,
                        strlen(message));
    }

    /* Three wrong PINs block it, for good. */
    g_assert_cmphex(verify(&card, "000000"), ==, 0x63c2);
    g_assert_cmphex(verify(&card, "000000"), ==, 0x63c1);
    g_assert_cmphex(verify(&card, "000000"), ==, 0x63c0);
    g_assert_cmphex(verify(&card, PIN), ==, 0x6983);
    g_assert_cmphex(transmit_sw(&card, (const uint8_t[]){ 0x00, 0x20, 0x00, 0x80 }, 4), ==,
                    0x6983);
    card_stop(&card);
}

static void run_tool(const char *const *argv, const char *input)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *out = NULL;
    g_autofree char *errs = NULL;
    g_autoptr(GSubprocess) p = g_subprocess_newv(argv, G_SUBPROCESS_FLAGS_STDIN_PIPE |
                                                 G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                                 G_SUBPROCESS_FLAGS_STDERR_PIPE, &err);

    g_assert_no_error(err);
    g_assert_true(g_subprocess_communicate_utf8(p, input, NULL, &out, &errs, &err));
    if (!g_subprocess_get_successful(p)) {
        g_test_message("%s failed: %s", argv[0], errs);
    }
    g_assert_true(g_subprocess_get_successful(p));
}

/*
 * A database of three self-signed certificates (names[]) for 9A, 9C, 9D:
 * P-256 keys if ec, else RSA 2048; with a password if password.
 */
static char *make_db(const char *dir, bool ec, const char *password,
                     const char *const names[3])
{
    g_autofree char *db = g_strconcat("sql:", dir, NULL);
    g_autofree char *noise = write_file(dir, "noise", "some noise for certutil's keygen", 32);
    g_autofree char *pwfile = write_file(dir, "pwfile", password ? password : "",
                                         password ? strlen(password) : 0);

    if (password) {
        run_tool((const char *[]){ "certutil", "-N", "-d", db, "-f", pwfile, NULL }, NULL);
    } else {
        run_tool((const char *[]){ "certutil", "-N", "-d", db, "--empty-password", NULL },
                 NULL);
    }
    for (int i = 0; i < 3; i++) {
        g_autofree char *subject = g_strdup_printf("CN=vccid %s", names[i]);
        g_autofree char *serial = g_strdup_printf("%d", 100 + i);

        run_tool((const char *[]){ "certutil", "-S", "-d", db, "-x", "-k", ec ? "ec" : "rsa",
                                   ec ? "-q" : "-g", ec ? "nistp256" : "2048", "-s", subject,
                                   "-n", names[i], "-t", ",,", "-m", serial, "-v", "12",
                                   "-z", noise, "-f", pwfile, NULL }, NULL);
    }
    g_unlink(noise);
    g_unlink(pwfile);
    return g_steal_pointer(&db);
}

static void expect_cli_error(const char *device, const char *needle);

static GByteArray *general_authenticate_ec(Card *card, uint8_t key, uint8_t tag,
                                           const uint8_t *val, size_t len, uint16_t *sw)
{
    uint8_t apdu[5 + 6 + 65 + 1] = { 0x00, 0x87, 0x11, key, 6 + len, 0x7c, 4 + len,
                                     0x82, 0x00, tag, len };
    GByteArray *r;

    g_assert_cmpuint(len, <=, 65);
    memcpy(apdu + 11, val, len);
    apdu[11 + len] = 0x00;
    r = transmit(card, apdu, 12 + len);
    *sw = apdu_sw(r);
    if (*sw == 0x9000) {
        g_assert_cmphex(r->data[0], ==, 0x7c);
        g_assert_cmphex(r->data[2], ==, 0x82);
        g_assert_cmpuint(r->data[3] + 4 + 2, ==, r->len);
        memmove(r->data, r->data + 4, r->data[3]);
        g_byte_array_set_size(r, r->len - 6);
    }
    return r;
}

/* ECC P-256 keys: ECDSA with 9A verified by openssl; ECDH with 9D. */
static void test_ecc(void)
{
    static const char message[] = "signed by an ECC P-256 key in slot 9A";
    g_autofree char *dir = g_dir_make_tmp("vccid-piv-ec-XXXXXX", NULL);
    g_autofree char *db = make_db(dir, true, NULL,
                                  (const char *const[]){ "ec-auth", "ec-sign", "ec-kex" });
    g_autofree char *pin_file = write_file(dir, "pin", PIN "\n", strlen(PIN) + 1);
    g_autofree char *dev = g_strdup_printf("ccid-card-piv,db=%s,cert1=ec-auth,cert2=ec-sign,"
                                           "cert3=ec-kex,pin-file=%s", db, pin_file);
    Card card = { .dir = g_dir_make_tmp("vccid-piv-XXXXXX", NULL) };
    g_autoptr(GChecksum) sha = g_checksum_new(G_CHECKSUM_SHA256);
    uint8_t digest[32];
    gsize digest_len = sizeof(digest);
    g_autoptr(GByteArray) sel = NULL;
    g_autoptr(GByteArray) sig = NULL;
    g_autoptr(GBytes) cert = NULL;
    g_autofree char *msg_path = NULL;
    uint16_t sw;

    card_start_device(&card, dev);
    g_byte_array_unref(ccid_power_on(card.c));
    sel = transmit(&card, piv_select, sizeof(piv_select));
    g_assert_cmphex(apdu_sw(sel), ==, 0x9000);
    g_assert_cmphex(verify(&card, PIN), ==, 0x9000);

    g_checksum_update(sha, (const guchar *)message, strlen(message));
    g_checksum_get_digest(sha, digest, &digest_len);
    /* RSA's algorithm on an EC key is refused. */
    {
        uint8_t rsa[5] = { 0x00, 0x87, 0x07, 0x9a, 0x00 };

        g_assert_cmphex(transmit_sw(&card, rsa, sizeof(rsa)), ==, 0x6a86);
    }
    sig = general_authenticate_ec(&card, 0x9a, 0x81, digest, sizeof(digest), &sw);
    g_assert_cmphex(sw, ==, 0x9000);
    g_assert_cmphex(sig->data[0], ==, 0x30);               /* DER Ecdsa-Sig-Value */
    cert = read_cert(&card, 0x05);
    msg_path = write_file(card.dir, "msg", message, strlen(message));
    assert_openssl_verifies(&card, "9a.pem", cert, msg_path, sig);

    /* ECDH: openssl's ephemeral key against 9D; both sides get the same secret. */
    {
        g_autoptr(GBytes) cert9d = read_cert(&card, 0x0b);
        g_autofree char *pub9d = public_key_file(card.dir, "9d.pem", cert9d);
        g_autofree char *eph = g_build_filename(card.dir, "eph.pem", NULL);
        g_autofree char *eph_der = g_build_filename(card.dir, "eph.der", NULL);
        g_autofree char *z_path = g_build_filename(card.dir, "z", NULL);
        g_autofree char *ignored = NULL;
        g_autofree char *spki = NULL;
        g_autofree char *z = NULL;
        g_autoptr(GByteArray) shared = NULL;
        gsize spki_len, z_len;
        uint8_t bad_point[65];

        run_openssl((const char *[]){ "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                                      "ec_paramgen_curve:P-256", "-out", eph, NULL }, &ignored);
        g_clear_pointer(&ignored, g_free);
        run_openssl((const char *[]){ "openssl", "pkey", "-in", eph, "-pubout", "-outform",
                                      "DER", "-out", eph_der, NULL }, &ignored);
        g_clear_pointer(&ignored, g_free);
        run_openssl((const char *[]){ "openssl", "pkeyutl", "-derive", "-inkey", eph,
                                      "-peerkey", pub9d, "-out", z_path, NULL }, &ignored);
        g_assert_true(g_file_get_contents(eph_der, &spki, &spki_len, NULL));
        g_assert_true(g_file_get_contents(z_path, &z, &z_len, NULL));
        g_assert_cmpuint(spki_len, >, 65);
        shared = general_authenticate_ec(&card, 0x9d, 0x85,
                                         (const uint8_t *)spki + spki_len - 65, 65, &sw);
        g_assert_cmphex(sw, ==, 0x9000);
        g_assert_cmpmem(shared->data, shared->len, z, z_len);

        /* A point that is not on the curve: refused, and vccid lives on. */
        memset(bad_point, 0x11, sizeof(bad_point));
        bad_point[0] = 0x04;
        g_byte_array_unref(general_authenticate_ec(&card, 0x9d, 0x85, bad_point, 65, &sw));
        g_assert_cmphex(sw, ==, 0x6a80);
    }
    card_stop(&card);
    remove_dir(dir);
}

/*
 * Without pin-file, the PIN is the database's password: the keys are out of
 * reach until VERIFY gave NSS the right one. With pin-file on such a
 * database, the file's PIN must open it.
 */
static void test_db_password(void)
{
    g_autofree char *dir = g_dir_make_tmp("vccid-piv-pw-XXXXXX", NULL);
    g_autofree char *db = make_db(dir, false, "24681357",
                                  (const char *const[]){ "auth", "sign", "kex" });
    g_autofree char *dev = g_strdup_printf("ccid-card-piv,db=%s,cert1=auth,cert2=sign,"
                                           "cert3=kex", db);
    g_autofree char *wrong_pin = write_file(dir, "pin", "123456\n", 7);
    g_autofree char *with_wrong = g_strdup_printf("%s,pin-file=%s", dev, wrong_pin);
    Card card = { .dir = g_dir_make_tmp("vccid-piv-XXXXXX", NULL) };
    g_autoptr(GByteArray) sel = NULL;
    g_autoptr(GByteArray) sig = NULL;
    uint8_t block[256];
    uint16_t sw;

    expect_cli_error(with_wrong, "does not open");
    g_unlink(wrong_pin);

    card_start_device(&card, dev);
    g_byte_array_unref(ccid_power_on(card.c));
    sel = transmit(&card, piv_select, sizeof(piv_select));
    g_assert_cmphex(apdu_sw(sel), ==, 0x9000);
    memset(block, 0, sizeof(block));
    block[1] = 0x01;
    g_byte_array_unref(general_authenticate_rsa(&card, 0x9a, block, &sw));
    g_assert_cmphex(sw, ==, 0x6982);
    g_assert_cmphex(verify(&card, "13572468"), ==, 0x63c2);
    g_assert_cmphex(verify(&card, "24681357"), ==, 0x9000);
    sig = general_authenticate_rsa(&card, 0x9a, block, &sw);
    g_assert_cmphex(sw, ==, 0x9000);
    g_assert_cmpuint(sig->len, ==, 256);
    card_stop(&card);
    remove_dir(dir);
}

/*
 * cert4: slot 9E, Card Authentication, signs without a PIN; its object
 * 5FC101 is there. Without cert4 the slot is empty (6A82, 6A88).
 */
static void test_card_authentication(void)
{
    static const char message[] = "card authentication challenge";
    Card card;
    g_autoptr(GBytes) cert = NULL;
    uint8_t block[256];
    uint16_t sw;

    card_start(&card, ",cert4=fake-smartcard-ca");
    g_byte_array_unref(ccid_power_on(card.c));
    g_assert_cmphex(transmit_sw(&card, piv_select, sizeof(piv_select)), ==, 0x9000);
    cert = read_cert_of(&card, 0x01, "fake-smartcard-ca");
    g_free(assert_rsa_signs(&card, 0x9e, cert, message, block));
    /* 9A still wants the PIN. */
    g_byte_array_unref(general_authenticate_rsa(&card, 0x9a, block, &sw));
    g_assert_cmphex(sw, ==, 0x6982);
    card_stop(&card);

    card_start(&card, "");
    g_byte_array_unref(ccid_power_on(card.c));
    {
        uint8_t get[] = { 0x00, 0xcb, 0x3f, 0xff, 0x05, 0x5c, 0x03, 0x5f, 0xc1, 0x01, 0x00 };

        g_assert_cmphex(transmit_sw(&card, get, sizeof(get)), ==, 0x6a82);
    }
    g_byte_array_unref(general_authenticate_rsa(&card, 0x9e, block, &sw));
    g_assert_cmphex(sw, ==, 0x6a88);
    card_stop(&card);
}

static void expect_cli_error(const char *device, const char *needle)
{
    g_autofree char *dir = g_dir_make_tmp("vccid-piv-cli-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "s.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=r,path=%s,server=on,wait=off", sock);
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int status = vccid_run_cli((const char *[]){ "-chardev", chardev, "-device", "usb-ccid",
                                                 "-device", device, "-export",
                                                 "usbredir,chardev=r", NULL }, &out, &err);

    g_test_message("%s -> %s", device, err);
    g_assert_false(g_spawn_check_wait_status(status, NULL));
    g_assert_nonnull(strstr(err, needle));
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    g_rmdir(dir);
}

static void test_cli_errors(void)
{
    g_autofree char *db = g_strconcat("db=sql:", vccid_master_cert_db(), NULL);
    g_autofree char *dir = g_dir_make_tmp("vccid-piv-pin-XXXXXX", NULL);
    g_autofree char *bad_pin = write_file(dir, "pin", "12ab56\n", 7);
    g_autofree char *no_pin = g_strdup_printf("ccid-card-piv,%s,cert1=id-cert,"
                                              "cert2=signing-cert,cert3=encryption-cert", db);
    g_autofree char *bad = g_strdup_printf("%s,pin-file=%s", no_pin, bad_pin);
    g_autofree char *missing = g_strdup_printf("ccid-card-piv,%s,cert1=id-cert,"
                                               "cert2=signing-cert,cert3=no-such-cert,"
                                               "pin-file=%s", db, bad_pin);
    g_autofree char *two = g_strdup_printf("ccid-card-piv,%s,cert1=id-cert,cert2=signing-cert",
                                           db);

    /* The test database has no password: it cannot be the PIN. */
    expect_cli_error(no_pin, "pin-file");
    expect_cli_error(bad, "6 to 8 digits");
    expect_cli_error(missing, "no-such-cert");
    expect_cli_error(two, "cert3");
    g_unlink(bad_pin);
    g_rmdir(dir);
}

static const TestCase cases[] = {
    { "/piv/card", test_card },
    { "/piv/card-authentication", test_card_authentication },
    { "/piv/ecc", test_ecc },
    { "/piv/db-password", test_db_password },
    { "/piv/cli-errors", test_cli_errors },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_add_cases(cases);
    return g_test_run();
}
