/*
 * The command-line layer: QEMU-style option strings and the device model
 * (properties, ids, buses).
 */
#include "hw/qdev.h"

#include <string.h>
#include "qemu/option.h"
#include "../support/ccid-test-card.h"
#include "../support/test-cases.h"

static void test_opts_escapes(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QemuOpts) o = qemu_opts_parse("drv,a=1,b=x,,y,flag,c=", "driver", &err);

    g_assert_no_error(err);
    g_assert_cmpstr(o->implied, ==, "drv");
    g_assert_cmpstr(qemu_opt_get(o, "a"), ==, "1");
    g_assert_cmpstr(qemu_opt_get(o, "b"), ==, "x,y");
    g_assert_cmpstr(qemu_opt_get(o, "flag"), ==, "on");
    g_assert_cmpstr(qemu_opt_get(o, "c"), ==, "");
    g_assert_null(qemu_opt_get(o, "d"));
    g_assert_cmpstr(qemu_opt_take(o, "a"), ==, "1");
    g_assert_cmpstr(qemu_opts_first_unused(o), ==, "b");
}

static void test_opts_errors(void)
{
    GError *err = NULL;

    g_assert_null(qemu_opts_parse("drv,=x", "driver", &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_assert_null(qemu_opts_parse("drv,a=1,b,,,=x", "driver", &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
}

/* Escaped commas at the edges of values. */
static void test_opts_edge_commas(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QemuOpts) o1 = qemu_opts_parse("drv,a=1,,b,,,c", "driver", &err);
    g_autoptr(QemuOpts) o2 = qemu_opts_parse("drv,a=x,,", "driver", &err);

    g_assert_no_error(err);
    g_assert_cmpstr(qemu_opt_get(o1, "a"), ==, "1,b,");
    g_assert_cmpstr(qemu_opt_get(o1, "c"), ==, "on");
    g_assert_cmpstr(qemu_opt_get(o2, "a"), ==, "x,");
}

static void test_parse_values(void)
{
    bool b = false;
    uint64_t v = 0;

    g_assert_true(qemu_opt_parse_bool("on", &b) && b);
    g_assert_true(qemu_opt_parse_bool("no", &b) && !b);
    g_assert_false(qemu_opt_parse_bool("maybe", &b));
    g_assert_true(qemu_opt_parse_uint("0x08e6", 0xffff, &v) && v == 0x8e6);
    g_assert_true(qemu_opt_parse_uint("17", 0xffff, &v) && v == 17);
    g_assert_false(qemu_opt_parse_uint("-1", 0xffff, &v));
    g_assert_false(qemu_opt_parse_uint("70000", 0xffff, &v));
    g_assert_false(qemu_opt_parse_uint("12abc", 0xffff, &v));
    g_assert_false(qemu_opt_parse_uint("", 0xffff, &v));
}

static void expect_create_error(const char *opts, const char *fragment)
{
    g_autoptr(GError) err = NULL;

    g_assert_null(device_create_from_string(opts, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, fragment)) {
        g_error("'%s': message '%s' does not name '%s'", opts, err->message, fragment);
    }
}

static void test_device_errors(void)
{
    g_autoptr(GError) err = NULL;

    test_card_register();
    expect_create_error("no-such-device", "no-such-device");
    expect_create_error("usb-ccid,bogus=1", "bogus");
    expect_create_error("usb-ccid,vendorid=0x12345", "vendorid");
    expect_create_error("usb-ccid,debug=yes", "debug");
    expect_create_error("usb-ccid,speed=super", "speed");
    expect_create_error("usb-ccid,id=1abc", "id");
    expect_create_error("ccid-card-test", "ccid-bus");
    g_assert_nonnull(device_create_from_string("usb-ccid,id=r1", &err));
    g_assert_no_error(err);
    expect_create_error("usb-ccid,id=r1", "Duplicate");
    expect_create_error("usb-ccid,bus=r1", "bus");
    expect_create_error("ccid-card-test,slot=1", "slot");
    g_assert_nonnull(device_create_from_string("ccid-card-test,bus=r1", &err));
    g_assert_no_error(err);
    /* One slot: a second card has no room. */
    expect_create_error("ccid-card-test", "ccid-bus");
    expect_create_error("ccid-card-test,bus=r1.0", "r1.0");
    device_destroy_all();
    g_assert_null(device_find("r1"));
}

static void test_device_defaults(void)
{
    g_autoptr(GError) err = NULL;
    DeviceState *d;

    test_card_register();
    d = device_create_from_string("usb-ccid", &err);
    g_assert_no_error(err);
    g_assert_nonnull(d);
    /* An anonymous device gets an id, so logs can name it. */
    g_assert_nonnull(d->id);
    g_assert_true(device_find(d->id) == d);
    device_destroy_all();
}

/* Classes say what kind of device they are; lists of devices are read by kind. */
static void test_device_kinds(void)
{
    g_autoptr(GError) err = NULL;
    DeviceState *reader, *card;

    test_card_register();
    reader = device_create_from_string("usb-ccid,id=r1", &err);
    g_assert_no_error(err);
    card = device_create_from_string("ccid-card-test", &err);
    g_assert_no_error(err);
    g_assert_true(device_is_a(reader, "usb-ccid"));
    g_assert_true(device_is_a(reader, "usb-device"));
    g_assert_false(device_is_a(reader, "ccid-card"));
    g_assert_true(device_is_a(card, "ccid-card"));
    g_assert_false(device_is_a(card, "usb-device"));
    g_assert_true(DEVICE_CHECK(DeviceState, reader, "usb-device") == reader);
    g_assert_null(DEVICE_CHECK(DeviceState, NULL, "usb-device"));
    device_destroy_all();
}

/* A cast to the wrong kind aborts and says which device and which kinds. */
static void test_device_bad_cast(void)
{
    if (g_test_subprocess()) {
        DeviceState *card;

        test_card_register();
        g_assert_nonnull(device_create_from_string("usb-ccid,id=r1", NULL));
        card = device_create_from_string("ccid-card-test,id=c1", NULL);
        g_assert_nonnull(card);
        DEVICE_CHECK(DeviceState, card, "usb-device");
        return;
    }
    g_test_trap_subprocess(NULL, 0, 0);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*device 'c1' is a ccid-card-test, not a usb-device*");
}

static const TestCase cases[] = {
    { "/qdev/opts/escapes", test_opts_escapes },
    { "/qdev/opts/errors", test_opts_errors },
    { "/qdev/opts/edge-commas", test_opts_edge_commas },
    { "/qdev/opts/values", test_parse_values },
    { "/qdev/device/errors", test_device_errors },
    { "/qdev/device/defaults", test_device_defaults },
    { "/qdev/device/kinds", test_device_kinds },
    { "/qdev/device/bad-cast", test_device_bad_cast },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_add_cases(cases);
    return g_test_run();
}
