/*
 * usb-ccid qtests: APDUs through XfrBlock to libcacard's CAC card: every
 * short response length, the largest message, extended APDUs chained in
 * and out (CCID 6.1.4), and the rate of short APDUs.
 */
#include "usb-ccid-common.h"

static void test_select_and_read_cert(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    static const uint8_t select_missing[] = {
        0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00, 0x00, 0x00, 0x79, 0x7f, 0x7f,
    };
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(GByteArray) raw = ccid_xfr_apdu(c, select_pki0, sizeof(select_pki0));
    g_autoptr(GByteArray) missing = NULL;
    g_autoptr(GByteArray) value = NULL;
    g_autoptr(GBytes) der = vccid_cert_der("id-cert");
    gsize der_len;
    const uint8_t *der_data = g_bytes_get_data(der, &der_len);

    g_assert_true(apdu_sw(raw) == 0x9000 || (apdu_sw(raw) >> 8) == 0x61);
    missing = ccid_transmit(c, select_missing, sizeof(select_missing));
    g_assert_cmphex(apdu_sw(missing), ==, 0x6a82);

    /* Value buffer of PKI applet 0: length, CertInfo (uncompressed), the DER. */
    select_pki(c, 0);
    value = read_value_buffer(c);
    g_test_message("PKI applet 0 value buffer: %u bytes; id-cert: %zu bytes", value->len,
                   der_len);
    g_assert_cmpuint(value->len, >=, 3 + der_len);
    g_assert_cmpuint(value->data[2], ==, 0x00);
    g_assert_cmpmem(value->data + 3, der_len, der_data, der_len);
}
USB_CCID_TEST("apdu/select-read-cert", test_select_and_read_cert)

/*
 * Every response length a short APDU can carry: READ BUFFER of n bytes
 * answers n + 2; the 256-byte signature of a 2048-bit key answers 258.
 * Each answer exactly once, with its own bSeq, and exactly 10 + dwLength.
 */
static void response_lengths(CcidHost *c)
{
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(GByteArray) value = NULL;
    g_autoptr(GByteArray) sig = NULL;

    select_pki(c, 0);
    value = read_value_buffer(c);
    g_assert_cmpuint(value->len, >=, 255);
    for (unsigned n = 0; n <= 255; n++) {
        g_autoptr(GByteArray) r = read_buffer(c, 0, n);

        g_assert_cmphex(apdu_sw(r), ==, 0x9000);
        g_assert_cmpuint(r->len, ==, n + 2);
        g_assert_cmpmem(r->data, n, value->data, n);
    }
    sig = sign_256(c);
    if (apdu_sw(sig) == 0x6982) {
        g_error("the card wants a PIN to sign with an empty-password database");
    }
    g_assert_cmphex(apdu_sw(sig), ==, 0x9000);
    g_assert_cmpuint(sig->len, ==, 258);
}

static void test_response_lengths(Fixture *f, gconstpointer data)
{
    response_lengths(f->c);
    assert_no_more_answers(f->c);
}
USB_CCID_TEST("apdu/response-lengths", test_response_lengths)

/*
 * The same over 64-byte bulk-in requests, as a UHCI host reads: an answer
 * spans several packets, and one that fills its last packet is ended by a
 * zero-length packet (not taken for the next answer).
 */
static void test_response_lengths_packetwise(Fixture *f, gconstpointer data)
{
    f->c->bulk_in_size = f->c->bulk_in_mps;
    response_lengths(f->c);
    f->c->bulk_in_size = 65536 + 64;
    assert_no_more_answers(f->c);
}
USB_CCID_TEST("apdu/response-lengths-packetwise", test_response_lengths_packetwise)

/* The largest message the reader advertises works; one byte more is refused. */
static void test_max_message_length(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint32_t max = c->desc.dwMaxCCIDMessageLength;
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(GByteArray) apdu = NULL;
    g_autoptr(GByteArray) big = NULL;
    g_autoptr(CcidAnswer) a = NULL;
    g_autoptr(CcidAnswer) over = NULL;

    select_pki(c, 0);
    /* A case 4 short APDU of 261 bytes if the maximum is 271, as libccid sends. */
    if (max == 271) {
        apdu = sign_piece_apdu(260);
        g_byte_array_append(apdu, (uint8_t[]){ 0x00 }, 1);
    } else {
        apdu = sign_piece_apdu(max - CCID_HDR);
    }
    g_assert_cmpuint(apdu->len, ==, max - CCID_HDR);
    a = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0, 0, apdu->data, apdu->len);
    assert_ok(a);
    g_assert_cmphex(apdu_sw(&(GByteArray){ .data = (uint8_t *)a->data, .len = a->dwLength }),
                    ==, 0x9000);

    big = g_byte_array_append(g_byte_array_new(), apdu->data, apdu->len);
    g_byte_array_append(big, (uint8_t[]){ 0x00 }, 1);
    over = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0, 0, big->data, big->len);
    assert_failed(over, CCID_ERR_BAD_LENGTH);
    g_assert_cmpuint(over->dwLength, ==, 0);

    select_pki(c, 0);
}
USB_CCID_TEST("apdu/max-message-length", test_max_message_length)

/* Extended APDUs (up to 65,535 data bytes) with the CCID chaining. */
static void test_extended_apdu(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    static const size_t lengths[] = { 262, 300, 1000, 4096, 65535 + 7 };
    g_byte_array_unref(ccid_power_on(c));

    if (!(c->desc.dwFeatures & CCID_FEAT_EXTENDED_APDU)) {
        g_test_skip("the reader does not advertise extended APDU exchange");
        return;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(lengths); i++) {
        g_autoptr(GByteArray) apdu = sign_piece_apdu(lengths[i]);
        g_autoptr(GByteArray) r = NULL;

        /* A fresh SELECT drops what earlier pieces accumulated. */
        select_pki(c, 0);
        r = ccid_xfr_apdu(c, apdu->data, apdu->len);
        g_assert_cmphex(apdu_sw(r), ==, 0x9000);
        g_assert_cmpuint(r->len, ==, 2);
    }
    /* A whole signature after an extended exchange still works. */
    select_pki(c, 0);
    g_autoptr(GByteArray) sig = sign_256(c);
    g_assert_cmphex(apdu_sw(sig), ==, 0x9000);
    g_assert_cmpuint(sig->len, ==, 258);
    assert_no_more_answers(c);
}
USB_CCID_TEST("apdu/extended", test_extended_apdu)

/*
 * Answers longer than one message: with an extended Le the CAC ACA applet's
 * GET ACR returns up to 480 bytes in one response APDU, which the reader
 * hands out in chained DataBlocks. The bytes equal what the card gives in
 * 61xx / GET RESPONSE pieces to a short Le.
 */
static void test_long_response(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    static const uint8_t select_aca[] = {
        0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00, 0x00, 0x00, 0x79, 0x03, 0x00,
    };
    static const uint8_t p1s[] = { 0x10, 0x50, 0x21, 0x00 };
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(GByteArray) sel = ccid_transmit(c, select_aca, sizeof(select_aca));
    bool chained = false;

    if (!(c->desc.dwFeatures & CCID_FEAT_EXTENDED_APDU)) {
        g_test_skip("the reader does not advertise extended APDU exchange");
        return;
    }
    g_assert_cmphex(apdu_sw(sel), ==, 0x9000);
    for (size_t i = 0; i < G_N_ELEMENTS(p1s); i++) {
        const uint8_t ext[] = { 0x80, 0x4c, p1s[i], 0x00, 0x00, 0x00, 0x00 };
        const uint8_t shrt[] = { 0x80, 0x4c, p1s[i], 0x00, 0x00 };
        g_autoptr(GByteArray) whole = ccid_xfr_apdu(c, ext, sizeof(ext));
        g_autoptr(GByteArray) pieces = ccid_transmit(c, shrt, sizeof(shrt));

        g_test_message("GET ACR %02x: %u bytes", p1s[i], whole->len);
        g_assert_cmphex(apdu_sw(whole), ==, 0x9000);
        g_assert_cmpmem(whole->data, whole->len, pieces->data, pieces->len);
        chained |= whole->len > c->desc.dwMaxCCIDMessageLength - CCID_HDR;
    }
    /* At least one answer needed the reader's response chaining. */
    g_assert_true(chained);
    assert_no_more_answers(c);
}
USB_CCID_TEST("apdu/long-response", test_long_response)

static void test_long_response_packetwise(Fixture *f, gconstpointer data)
{
    f->c->bulk_in_size = f->c->bulk_in_mps;
    test_long_response(f, data);
}
USB_CCID_TEST("apdu/long-response-packetwise", test_long_response_packetwise)

static gint compare_gint64(gconstpointer a, gconstpointer b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;

    return x < y ? -1 : x > y;
}

/* Many short APDUs in a row: none lost, and how fast (for the record). */
static void test_throughput(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    enum { N = 500 };
    g_autoptr(GArray) lat = g_array_sized_new(FALSE, FALSE, sizeof(gint64), N);
    g_byte_array_unref(ccid_power_on(c));
    gint64 start = g_get_monotonic_time(), total;

    for (int i = 0; i < N; i++) {
        gint64 t0 = g_get_monotonic_time();
        g_autoptr(GByteArray) r = ccid_xfr_apdu(c, select_pki0, sizeof(select_pki0));
        gint64 dt = g_get_monotonic_time() - t0;

        g_assert_true(apdu_sw(r) == 0x9000 || (apdu_sw(r) >> 8) == 0x61);
        g_array_append_val(lat, dt);
    }
    total = g_get_monotonic_time() - start;
    g_array_sort(lat, (GCompareFunc)compare_gint64);
    g_test_message("%d SELECTs over usbredir: %.0f APDU/s, p50 %.3f ms, p99 %.3f ms", N,
                   N * 1e6 / total, g_array_index(lat, gint64, N / 2) / 1e3,
                   g_array_index(lat, gint64, N * 99 / 100) / 1e3);
    assert_no_more_answers(c);
}
USB_CCID_TEST("apdu/throughput", test_throughput)
