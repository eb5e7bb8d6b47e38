/*
 * usb-ccid qtests: bulk-out messages that break the CCID framing (bad slot,
 * lengths that disagree or exceed the reader's, short headers, chaining out
 * of order) get the error the spec names, and the reader keeps working.
 */
#include "usb-ccid-common.h"

static void test_bad_slot(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    static const uint8_t types[] = {
        PC_to_RDR_GetSlotStatus, PC_to_RDR_IccPowerOn, PC_to_RDR_XfrBlock,
        PC_to_RDR_GetParameters, PC_to_RDR_IccPowerOff,
    };

    for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
        g_autoptr(CcidAnswer) a = ccid_command_slot(c, types[i], 1, 0, 0, 0, select_pki0,
                                                    types[i] == PC_to_RDR_XfrBlock ?
                                                    sizeof(select_pki0) : 0);
        assert_failed(a, CCID_ERR_BAD_SLOT);
        g_assert_cmpuint(a->dwLength, ==, 0);
    }
    {
        g_autoptr(CcidAnswer) a = ccid_command_slot(c, PC_to_RDR_GetSlotStatus, 0xff, 0, 0,
                                                    0, NULL, 0);
        assert_failed(a, CCID_ERR_BAD_SLOT);
    }
    g_autoptr(GByteArray) atr = ccid_power_on(c);
    check_atr(atr);
}
USB_CCID_TEST("malformed/bad-slot", test_bad_slot)

/* Send raw bytes, expect one failed answer with bSeq seq and bError error. */
static void expect_error(CcidHost *c, const uint8_t *msg, size_t len, uint8_t type,
                         uint8_t seq, uint8_t error)
{
    g_autoptr(CcidAnswer) a = NULL;

    ccid_send_raw(c, msg, len);
    a = ccid_read_answer(c, URH_TIMEOUT_MS);
    ccid_check_answer(a, type, 0, seq);
    assert_failed(a, error);
    g_assert_cmpuint(a->dwLength, ==, 0);
}

static void test_length_mismatch(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t msg[CCID_HDR + 32];
    uint8_t seq;
    g_byte_array_unref(ccid_power_on(c));

    /* dwLength says 20, the transfer ends after 5 bytes of data. */
    seq = ccid_build(c, msg, PC_to_RDR_XfrBlock, 0, 20, 0, 0, 0);
    memcpy(msg + CCID_HDR, select_pki0, 5);
    expect_error(c, msg, CCID_HDR + 5, RDR_to_PC_DataBlock, seq, CCID_ERR_BAD_LENGTH);
    assert_slot_works(c);

    /* dwLength says 2, eight bytes of data arrive. */
    seq = ccid_build(c, msg, PC_to_RDR_XfrBlock, 0, 2, 0, 0, 0);
    memcpy(msg + CCID_HDR, select_pki0, 8);
    expect_error(c, msg, CCID_HDR + 8, RDR_to_PC_DataBlock, seq, CCID_ERR_BAD_LENGTH);
    assert_slot_works(c);

    /* A command that takes no data, with data. */
    seq = ccid_build(c, msg, PC_to_RDR_GetSlotStatus, 0, 3, 0, 0, 0);
    memset(msg + CCID_HDR, 0, 3);
    expect_error(c, msg, CCID_HDR + 3, RDR_to_PC_SlotStatus, seq, CCID_ERR_BAD_LENGTH);

    /* The reader still works, APDUs included. */
    assert_apdus_work(c);
    assert_no_more_answers(c);
}
USB_CCID_TEST("malformed/length-mismatch", test_length_mismatch)

static void test_too_long(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    const uint32_t sizes[] = { c->desc.dwMaxCCIDMessageLength + 100, 70000 };
    g_byte_array_unref(ccid_power_on(c));

    /* Messages longer than the reader's buffer, length field consistent. */
    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
        g_autofree uint8_t *msg = g_malloc0(sizes[i]);
        uint8_t seq = ccid_build(c, msg, PC_to_RDR_XfrBlock, 0, sizes[i] - CCID_HDR, 0, 0, 0);

        expect_error(c, msg, sizes[i], RDR_to_PC_DataBlock, seq, CCID_ERR_BAD_LENGTH);
        assert_slot_works(c);
    }
    /* dwLength of 4 GB on a short message. */
    {
        uint8_t msg[CCID_HDR + 4] = { 0 };
        uint8_t seq = ccid_build(c, msg, PC_to_RDR_XfrBlock, 0, 0xffffffff, 0, 0, 0);
        expect_error(c, msg, sizeof(msg), RDR_to_PC_DataBlock, seq, CCID_ERR_BAD_LENGTH);
    }
    assert_apdus_work(c);
    assert_no_more_answers(c);
}
USB_CCID_TEST("malformed/too-long", test_too_long)

static void test_short_header(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    static const uint8_t five[] = { PC_to_RDR_GetSlotStatus, 0, 0, 0, 0 };
    uint8_t eight[CCID_HDR];
    uint8_t seq;

    /* Too short to carry a bSeq: nothing to answer. The next command is answered. */
    ccid_send_raw(c, five, sizeof(five));
    assert_slot_works(c);

    /* A zero-length transfer is no message at all. */
    ccid_send_raw(c, NULL, 0);
    assert_slot_works(c);

    /*
     * Eight bytes carry a bSeq: the reader may answer it with an error or
     * drop it; either way the next command gets its own answer.
     */
    seq = ccid_build(c, eight, PC_to_RDR_GetSlotStatus, 0, 0, 0, 0, 0);
    ccid_send_raw(c, eight, 8);
    {
        uint8_t msg[CCID_HDR];
        uint8_t good = ccid_build(c, msg, PC_to_RDR_GetSlotStatus, 0, 0, 0, 0, 0);
        g_autoptr(CcidAnswer) a = NULL;

        ccid_send_raw(c, msg, sizeof(msg));
        a = ccid_read_answer(c, URH_TIMEOUT_MS);
        if (a->seq == seq) {
            g_assert_cmpuint(CMD_STATUS(a->status), ==, CMD_FAILED);
            g_assert_cmpuint(a->raw->len, ==, CCID_HDR + a->dwLength);
            ccid_answer_free(a);
            a = ccid_read_answer(c, URH_TIMEOUT_MS);
        }
        ccid_check_answer(a, RDR_to_PC_SlotStatus, 0, good);
        assert_ok(a);
    }
    assert_no_more_answers(c);
}
USB_CCID_TEST("malformed/short-header", test_short_header)

/* XfrBlock chaining out of order: the error names wLevelParameter (offset 8). */
static void test_bad_chain(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    g_byte_array_unref(ccid_power_on(c));

    if (!(c->desc.dwFeatures & CCID_FEAT_EXTENDED_APDU)) {
        g_test_skip("the reader does not advertise extended APDU exchange");
        return;
    }
    /* A chain that ends or continues without having begun. */
    static const uint16_t levels[] = { CCID_CHAIN_END, CCID_CHAIN_MIDDLE, CCID_CHAIN_CONTINUE };
    for (size_t i = 0; i < G_N_ELEMENTS(levels); i++) {
        g_autoptr(CcidAnswer) a = ccid_command(c, PC_to_RDR_XfrBlock, 0, levels[i] & 0xff,
                                               levels[i] >> 8, select_pki0,
                                               levels[i] == CCID_CHAIN_CONTINUE ? 0 :
                                               sizeof(select_pki0));
        assert_failed(a, 8);
    }
    /* A wLevelParameter the spec does not define. */
    {
        g_autoptr(CcidAnswer) a = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0x07, 0x00,
                                               select_pki0, sizeof(select_pki0));
        assert_failed(a, 8);
    }
    /* A chain abandoned halfway: the next whole APDU is answered on its own. */
    {
        g_autoptr(GByteArray) apdu = sign_piece_apdu(600);
        g_autoptr(CcidAnswer) a = ccid_command(c, PC_to_RDR_XfrBlock, 0, CCID_CHAIN_BEGIN, 0,
                                               apdu->data, 200);
        assert_ok(a);
        g_assert_cmphex(a->specific, ==, CCID_CHAIN_CONTINUE);
    }
    g_autoptr(GByteArray) r = ccid_transmit(c, select_pki0, sizeof(select_pki0));
    g_assert_cmphex(apdu_sw(r), ==, 0x9000);
    assert_no_more_answers(c);
}
USB_CCID_TEST("malformed/bad-chain", test_bad_chain)
