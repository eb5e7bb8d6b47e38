/*
 * usb-ccid qtests: the slot commands of CCID 6.1 other than XfrBlock
 * (power, parameters, clock, escape, secure, mechanical, data rate), on a
 * slot with the emulated card and on an empty one.
 */
#include "usb-ccid-common.h"

static void test_power_on(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    g_autoptr(GByteArray) atr = ccid_power_on(c);
    g_autoptr(CcidAnswer) again = NULL;
    g_autoptr(CcidAnswer) st = NULL;

    check_atr(atr);
    /* A second IccPowerOn is a warm reset: same ATR, answer of exactly 10 + dwLength. */
    again = ccid_command(c, PC_to_RDR_IccPowerOn, 0, 0, 0, NULL, 0);
    assert_ok(again);
    g_assert_cmpuint(again->raw->len, ==, CCID_HDR + again->dwLength);
    g_assert_cmpuint(again->specific, ==, 0);        /* bChainParameter */
    g_assert_cmpmem(again->data, again->dwLength, atr->data, atr->len);

    st = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, 0, 0, NULL, 0);
    assert_ok(st);
    g_assert_cmpuint(ICC_STATUS(st->status), ==, ICC_ACTIVE);
    g_assert_cmpuint(st->dwLength, ==, 0);
    g_assert_cmpuint(st->specific, ==, 0);           /* bClockStatus: running */
}
USB_CCID_TEST("slot/power-on", test_power_on)

static void test_power_off(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    g_autoptr(GByteArray) atr = ccid_power_on(c);
    g_autoptr(CcidAnswer) off = ccid_command(c, PC_to_RDR_IccPowerOff, 0, 0, 0, NULL, 0);
    g_autoptr(CcidAnswer) st = NULL;
    g_autoptr(CcidAnswer) xfr = NULL;

    assert_ok(off);
    g_assert_cmpuint(ICC_STATUS(off->status), ==, ICC_INACTIVE);
    st = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, 0, 0, NULL, 0);
    assert_ok(st);
    g_assert_cmpuint(ICC_STATUS(st->status), ==, ICC_INACTIVE);
    /* An APDU to a card that is not powered: the card is mute. */
    xfr = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0, 0, select_pki0, sizeof(select_pki0));
    assert_failed(xfr, CCID_ERR_ICC_MUTE);
    g_assert_cmpuint(ICC_STATUS(xfr->status), ==, ICC_INACTIVE);
    g_assert_cmpuint(xfr->dwLength, ==, 0);
    /* And it powers on again. */
    g_autoptr(GByteArray) atr2 = ccid_power_on(c);
    g_assert_cmpmem(atr->data, atr->len, atr2->data, atr2->len);
}
USB_CCID_TEST("slot/power-off", test_power_off)

static void check_parameters(const CcidHost *c, const CcidAnswer *a)
{
    assert_ok(a);
    g_assert_true(a->specific == 0 || a->specific == 1);           /* bProtocolNum */
    g_assert_true(c->desc.dwProtocols & (1u << a->specific));
    g_assert_cmpuint(a->dwLength, ==, a->specific == 0 ? 5 : 7);
}

static void test_parameters(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    static const uint8_t t0[5] = { 0x11, 0x00, 0x00, 0x0a, 0x00 };
    static const uint8_t t1[7] = { 0x11, 0x10, 0x00, 0x4d, 0x00, 0xfe, 0x00 };
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(CcidAnswer) get = ccid_command(c, PC_to_RDR_GetParameters, 0, 0, 0, NULL, 0);
    g_autoptr(CcidAnswer) reset = NULL;
    g_autoptr(CcidAnswer) bad = NULL;

    check_parameters(c, get);
    reset = ccid_command(c, PC_to_RDR_ResetParameters, 0, 0, 0, NULL, 0);
    check_parameters(c, reset);

    for (int proto = 0; proto <= 1; proto++) {
        g_autoptr(CcidAnswer) set = ccid_command(c, PC_to_RDR_SetParameters, proto, 0, 0,
                                                 proto ? t1 : t0, proto ? 7 : 5);
        if (!(c->desc.dwProtocols & (1u << proto))) {
            assert_failed(set, CCID_ERR_BAD_PROTOCOL);
            continue;
        }
        check_parameters(c, set);
        g_assert_cmpuint(set->specific, ==, proto);
        g_autoptr(CcidAnswer) after = ccid_command(c, PC_to_RDR_GetParameters, 0, 0, 0,
                                                   NULL, 0);
        check_parameters(c, after);
        g_assert_cmpuint(after->specific, ==, proto);
    }
    /* A protocol that does not exist: bError names bProtocolNum (offset 7). */
    bad = ccid_command(c, PC_to_RDR_SetParameters, 5, 0, 0, t0, 5);
    assert_failed(bad, CCID_ERR_BAD_PROTOCOL);
    assert_slot_works(c);
}
USB_CCID_TEST("slot/parameters", test_parameters)

static void test_escape(Fixture *f, gconstpointer data)
{
    static const uint8_t payload[] = { 0x01, 0x02, 0x03 };
    g_autoptr(CcidAnswer) a = ccid_command(f->c, PC_to_RDR_Escape, 0, 0, 0, payload,
                                           sizeof(payload));

    assert_ok_or_not_supported(a);
    if (is_not_supported(a)) {
        g_assert_cmpuint(a->dwLength, ==, 0);
    }
    assert_slot_works(f->c);
}
USB_CCID_TEST("slot/escape", test_escape)

static void test_icc_clock(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    g_byte_array_unref(ccid_power_on(c));

    /* bClockCommand 0 restarts the clock, 1 stops it. */
    for (int cmd = 1; cmd >= 0; cmd--) {
        g_autoptr(CcidAnswer) a = ccid_command(c, PC_to_RDR_IccClock, cmd, 0, 0, NULL, 0);
        if (cmd == 1 && !(c->desc.dwFeatures & CCID_FEAT_CLOCK_STOP)) {
            /* Clock stop is not advertised: it cannot succeed. */
            g_assert_cmpuint(CMD_STATUS(a->status), ==, CMD_FAILED);
        } else {
            assert_ok_or_not_supported(a);
        }
    }
    assert_apdus_work(c);
}
USB_CCID_TEST("slot/icc-clock", test_icc_clock)

static void test_t0apdu(Fixture *f, gconstpointer data)
{
    g_autoptr(CcidAnswer) a = ccid_command(f->c, PC_to_RDR_T0APDU, 0, 0, 0, NULL, 0);

    /* Only meaningful for TPDU-level T=0 readers. */
    if ((f->c->desc.dwFeatures & CCID_FEAT_LEVEL_MASK) != CCID_FEAT_TPDU) {
        g_assert_true(is_not_supported(a) || CMD_STATUS(a->status) == CMD_OK);
    } else {
        assert_ok(a);
    }
    assert_slot_works(f->c);
}
USB_CCID_TEST("slot/t0apdu", test_t0apdu)

static void test_secure(Fixture *f, gconstpointer data)
{
    /* A PIN verification structure (CCID 6.1.11.4), with a VERIFY APDU. */
    static const uint8_t pin_verify[] = {
        0x00,                     /* bPINOperation: verification */
        0x00, 0x82, 0x00, 0x00, 0x00, 0x04, 0x08, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x20, 0x00, 0x00, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    };
    g_byte_array_unref(ccid_power_on(f->c));
    g_autoptr(CcidAnswer) a = ccid_command(f->c, PC_to_RDR_Secure, 0, 0, 0, pin_verify,
                                           sizeof(pin_verify));

    if (f->c->desc.bPINSupport == 0) {
        /* No PIN pad advertised: Secure is a command the reader does not do. */
        g_assert_true(is_not_supported(a));
        g_assert_cmpuint(a->dwLength, ==, 0);
    }
    assert_slot_works(f->c);
}
USB_CCID_TEST("slot/secure", test_secure)

static void test_mechanical(Fixture *f, gconstpointer data)
{
    g_autoptr(CcidAnswer) a = ccid_command(f->c, PC_to_RDR_Mechanical, 0x01, 0, 0, NULL, 0);

    if (f->c->desc.dwMechanical == 0) {
        g_assert_true(is_not_supported(a));
    }
    assert_slot_works(f->c);
}
USB_CCID_TEST("slot/mechanical", test_mechanical)

static void test_set_data_rate(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t rate[8];
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(CcidAnswer) a = NULL;

    for (int i = 0; i < 4; i++) {
        rate[i] = c->desc.dwDefaultClock >> (8 * i);
        rate[4 + i] = c->desc.dwDataRate >> (8 * i);
    }
    a = ccid_command(c, PC_to_RDR_SetDataRateAndClockFrequency, 0, 0, 0, rate, 8);
    assert_ok_or_not_supported(a);
    if (CMD_STATUS(a->status) == CMD_OK) {
        /* The values in force: dwClockFrequency, dwDataRate. */
        g_assert_cmpuint(a->dwLength, ==, 8);
        g_assert_cmpuint(le32(a->data), >=, c->desc.dwDefaultClock);
        g_assert_cmpuint(le32(a->data), <=, c->desc.dwMaximumClock);
        g_assert_cmpuint(le32(a->data + 4), >=, c->desc.dwDataRate);
        g_assert_cmpuint(le32(a->data + 4), <=, c->desc.dwMaxDataRate);
    }
    assert_slot_works(c);
}
USB_CCID_TEST("slot/set-data-rate", test_set_data_rate)

static void test_unknown_message(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t msg[CCID_HDR];
    uint8_t seq = ccid_build(c, msg, 0x99, 0, 0, 0, 0, 0);
    g_autoptr(CcidAnswer) a = NULL;

    ccid_send_raw(c, msg, sizeof(msg));
    a = ccid_read_answer(c, URH_TIMEOUT_MS);
    g_assert_cmpuint(a->seq, ==, seq);
    g_assert_true(a->type >= RDR_to_PC_DataBlock &&
                  a->type <= RDR_to_PC_DataRateAndClockFrequency);
    g_assert_cmpuint(a->raw->len, ==, CCID_HDR + a->dwLength);
    g_assert_true(is_not_supported(a));
    assert_slot_works(c);
}
USB_CCID_TEST("slot/unknown-message", test_unknown_message)

static void test_no_card(void)
{
    VccidProcess *v = vccid_start_no_card();
    CcidHost *c = ccid_host_open(v->sock_path);
    g_autoptr(CcidAnswer) st = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, 0, 0, NULL, 0);
    g_autoptr(CcidAnswer) on = NULL;
    g_autoptr(CcidAnswer) xfr = NULL;
    g_autoptr(GByteArray) n = NULL;

    g_assert_cmpuint(ICC_STATUS(st->status), ==, ICC_ABSENT);
    on = ccid_command(c, PC_to_RDR_IccPowerOn, 0, 0, 0, NULL, 0);
    assert_failed(on, CCID_ERR_ICC_MUTE);
    g_assert_cmpuint(ICC_STATUS(on->status), ==, ICC_ABSENT);
    g_assert_cmpuint(on->dwLength, ==, 0);
    xfr = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0, 0, select_pki0, sizeof(select_pki0));
    assert_failed(xfr, CCID_ERR_ICC_MUTE);
    g_assert_cmpuint(ICC_STATUS(xfr->status), ==, ICC_ABSENT);

    /* If the reader reports the empty slot, it says "absent". */
    g_assert_cmpint(urh_start_interrupt_receiving(c->usb, c->ep_int_in), ==,
                    usb_redir_success);
    n = urh_wait_interrupt(c->usb, c->ep_int_in, 300);
    if (n) {
        check_notify(c, n, false);
    }
    g_assert_cmpuint(urh_stray_completions(c->usb), ==, 0);
    ccid_host_free(c);
    vccid_stop(v);
}
USB_CCID_TEST_PLAIN("slot/no-card", test_no_card)
