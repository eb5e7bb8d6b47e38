/*
 * usb-ccid qtests: requests on the control endpoint (configuration,
 * standard requests, short reads) and the CCID class requests (CCID 5.3),
 * ABORT among them.
 */
#include "usb-ccid-common.h"

static void test_configuration(Fixture *f, gconstpointer data)
{
    UsbredirHost *usb = f->c->usb;
    uint8_t cfg = 0xaa;
    uint8_t status[2];
    int actual = 0;

    g_assert_cmpint(urh_get_configuration(usb, &cfg), ==, usb_redir_success);
    g_assert_cmpuint(cfg, ==, 1);
    /* GET_STATUS (device): two bytes. */
    g_assert_cmpint(urh_control(usb, 0x80, 0x00, 0, 0, status, 2, &actual, URH_TIMEOUT_MS),
                    ==, usb_redir_success);
    g_assert_cmpint(actual, ==, 2);
    /* Configuration 2 does not exist. */
    g_assert_cmpint(urh_set_configuration(usb, 2, &cfg), !=, usb_redir_success);
    /* Unconfigure and configure again; the reader still works. */
    g_assert_cmpint(urh_set_configuration(usb, 0, &cfg), ==, usb_redir_success);
    g_assert_cmpint(urh_get_configuration(usb, &cfg), ==, usb_redir_success);
    g_assert_cmpuint(cfg, ==, 0);
    g_assert_cmpint(urh_set_configuration(usb, 1, &cfg), ==, usb_redir_success);
    assert_slot_works(f->c);
}
USB_CCID_TEST("configuration", test_configuration)

/*
 * A class request that answers a list of count DWORDs (a count of 0 in the
 * class descriptor means one), each within [min, max].
 */
static void check_dword_list(CcidHost *c, uint8_t request, uint8_t count, uint32_t min,
                             uint32_t max)
{
    unsigned n = count ? count : 1;
    uint8_t buf[4 * 255];
    int actual = 0;
    int st = urh_control(c->usb, 0xa1, request, 0, c->ifnum, buf, 4 * n, &actual,
                         URH_TIMEOUT_MS);

    g_assert_cmpint(st, ==, usb_redir_success);
    g_assert_cmpint(actual, ==, 4 * n);
    for (unsigned i = 0; i < n; i++) {
        g_assert_cmpuint(le32(buf + 4 * i), >=, min);
        g_assert_cmpuint(le32(buf + 4 * i), <=, max);
    }
}

static void test_class_requests(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    const CcidClassDesc *d = &c->desc;
    uint8_t buf[4];
    int actual = 0, st;

    /* GET_CLOCK_FREQUENCIES: bNumClockSupported DWORDs, in kHz. */
    check_dword_list(c, CCID_REQ_GET_CLOCK_FREQUENCIES, d->bNumClockSupported,
                     d->dwDefaultClock, d->dwMaximumClock);
    /* GET_DATA_RATES: bNumDataRatesSupported DWORDs, in bps. */
    check_dword_list(c, CCID_REQ_GET_DATA_RATES, d->bNumDataRatesSupported, d->dwDataRate,
                     d->dwMaxDataRate);

    /* An unknown class request is a request error. */
    st = urh_control(c->usb, 0xa1, 0x7f, 0, c->ifnum, buf, 4, &actual, URH_TIMEOUT_MS);
    g_assert_cmpint(st, ==, usb_redir_stall);

    assert_slot_works(c);
}
USB_CCID_TEST("class-requests", test_class_requests)

/* ABORT (CCID 5.3.1): the control request, then PC_to_RDR_Abort with the same bSeq. */
static void test_abort(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t msg[CCID_HDR];
    uint8_t seq = c->seq;
    g_autoptr(CcidAnswer) a = NULL;
    int st = urh_control(c->usb, 0x21, CCID_REQ_ABORT, seq << 8 | 0, c->ifnum, NULL, 0,
                         NULL, URH_TIMEOUT_MS);

    g_assert_cmpint(st, ==, usb_redir_success);
    g_assert_cmpuint(ccid_build(c, msg, PC_to_RDR_Abort, 0, 0, 0, 0, 0), ==, seq);
    ccid_send_raw(c, msg, sizeof(msg));
    a = ccid_read_answer(c, URH_TIMEOUT_MS);
    ccid_check_answer(a, RDR_to_PC_SlotStatus, 0, seq);
    assert_ok(a);
    assert_slot_works(c);
    g_byte_array_unref(ccid_power_on(c));
    assert_apdus_work(c);
}
USB_CCID_TEST("abort", test_abort)

/*
 * ABORT with a command in flight (CCID 5.3.1): the command gets its own
 * answer (its result, or CMD_ABORTED), then the Abort gets a SlotStatus.
 */
static void test_abort_in_flight(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(CcidAnswer) first = NULL;
    g_autoptr(CcidAnswer) second = NULL;
    uint8_t s1, s2;

    s1 = ccid_send_xfr_block(c, select_pki0, sizeof(select_pki0));
    s2 = ccid_send_abort(c);

    first = ccid_read_answer(c, URH_TIMEOUT_MS);
    ccid_check_answer(first, RDR_to_PC_DataBlock, 0, s1);
    if (CMD_STATUS(first->status) != CMD_OK) {
        g_assert_cmphex(first->error, ==, CCID_ERR_CMD_ABORTED);
    }
    second = ccid_read_answer(c, URH_TIMEOUT_MS);
    ccid_check_answer(second, RDR_to_PC_SlotStatus, 0, s2);
    assert_ok(second);
    select_pki(c, 0);
    assert_no_more_answers(c);
}
USB_CCID_TEST("abort-in-flight", test_abort_in_flight)

/* Standard requests a host driver sends: CLEAR_FEATURE(HALT), GET_STATUS, SET_INTERFACE. */
static void test_standard_requests(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    const uint8_t eps[] = { c->ep_bulk_in, c->ep_bulk_out, c->ep_int_in };
    uint8_t status[2] = { 0xff, 0xff };
    uint8_t alt = 0xff;
    int actual = 0;

    for (size_t i = 0; i < G_N_ELEMENTS(eps); i++) {
        /* CLEAR_FEATURE(ENDPOINT_HALT), as libusb_clear_halt() sends. */
        g_assert_cmpint(urh_control(c->usb, 0x02, 0x01, 0, eps[i], NULL, 0, NULL,
                                    URH_TIMEOUT_MS), ==, usb_redir_success);
        g_assert_cmpint(urh_control(c->usb, 0x82, 0x00, 0, eps[i], status, 2, &actual,
                                    URH_TIMEOUT_MS), ==, usb_redir_success);
        g_assert_cmpint(actual, ==, 2);
        g_assert_cmpuint(status[0] & 1, ==, 0);          /* not halted */
    }
    g_assert_cmpint(urh_set_alt_setting(c->usb, c->ifnum, 0), ==, usb_redir_success);
    g_assert_cmpint(urh_get_alt_setting(c->usb, c->ifnum, &alt), ==, usb_redir_success);
    g_assert_cmpuint(alt, ==, 0);
    /* There is no alternate setting 1. */
    g_assert_cmpint(urh_set_alt_setting(c->usb, c->ifnum, 1), !=, usb_redir_success);
    use_reader(c);
    assert_no_more_answers(c);
}
USB_CCID_TEST("standard-requests", test_standard_requests)

/* IN control requests with a short wLength get at most wLength bytes (USB 2.0 9.3.5). */
static void test_short_control_reads(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    const struct { uint8_t type, req; uint16_t value, index; } reqs[] = {
        { 0x80, 0x00, 0, 0 },                           /* GET_STATUS device */
        { 0x81, 0x00, 0, c->ifnum },                    /* GET_STATUS interface */
        { 0x82, 0x00, 0, c->ep_bulk_in },               /* GET_STATUS endpoint */
        { 0x80, 0x06, USB_DT_DEVICE << 8, 0 },
        { 0x80, 0x06, USB_DT_CONFIG << 8, 0 },
        { 0x80, 0x06, USB_DT_STRING << 8, 0 },
        { 0x80, 0x06, USB_DT_STRING << 8 | 2, LANG_EN_US },
        { 0x80, 0x08, 0, 0 },                           /* GET_CONFIGURATION */
        { 0xa1, CCID_REQ_GET_CLOCK_FREQUENCIES, 0, c->ifnum },
        { 0xa1, CCID_REQ_GET_DATA_RATES, 0, c->ifnum },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(reqs); i++) {
        for (uint16_t len = 0; len <= 3; len++) {
            uint8_t buf[4] = { 0 };
            int actual = -1;
            int st = urh_control(c->usb, reqs[i].type, reqs[i].req, reqs[i].value,
                                 reqs[i].index, buf, len, &actual, URH_TIMEOUT_MS);

            g_assert_cmpint(st, ==, usb_redir_success);
            g_assert_cmpint(actual, <=, len);
        }
    }
    use_reader(c);
}
USB_CCID_TEST("short-control-reads", test_short_control_reads)
