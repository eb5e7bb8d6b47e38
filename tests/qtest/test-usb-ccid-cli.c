/*
 * usb-ccid qtests: the command line: help and version output, and errors
 * that exit 2 with one line naming the culprit and leave no socket behind.
 */
#include "usb-ccid-common.h"

#include <sys/wait.h>
#include <glib/gstdio.h>

static unsigned count_lines(const char *s)
{
    unsigned n = 0;
    g_auto(GStrv) lines = g_strsplit(s, "\n", -1);

    for (int i = 0; lines[i]; i++) {
        n += lines[i][0] != '\0';
    }
    return n;
}

/* A command line that exits 0 having printed each of words (a NULL-terminated list). */
static void expect_cli_output(const char *const *args, const char *const *words)
{
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int st = vccid_run_cli(args, &out, &err);

    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (int i = 0; words[i]; i++) {
        g_assert_nonnull(strstr(out, words[i]));
    }
}

static void test_cli_help(void)
{
    expect_cli_output((const char *[]){ "--help", NULL },
                      (const char *[]){ "-device", "-chardev", "-export", NULL });
    expect_cli_output((const char *[]){ "-h", NULL }, (const char *[]){ "-device", NULL });
}
USB_CCID_TEST_PLAIN("cli/help", test_cli_help)

static void test_cli_version(void)
{
    const char *version = g_getenv("VCCID_VERSION");

    g_assert_nonnull(version);
    expect_cli_output((const char *[]){ "--version", NULL }, (const char *[]){ version, NULL });
}
USB_CCID_TEST_PLAIN("cli/version", test_cli_version)

static void test_cli_device_help(void)
{
    expect_cli_output((const char *[]){ "-device", "help", NULL },
                      (const char *[]){ "usb-ccid", "ccid-card-emulated", "ccid-card-passthru",
                                        NULL });
    /* The defaults are listed (0x08e6, the vendor id). */
    expect_cli_output((const char *[]){ "-device", "usb-ccid,help", NULL },
                      (const char *[]){ "serial", "speed", "0x08e6", NULL });
    expect_cli_output((const char *[]){ "-device", "ccid-card-emulated,help", NULL },
                      (const char *[]){ "backend", "db", "cert1", "cert2", "cert3", NULL });
}
USB_CCID_TEST_PLAIN("cli/device-help", test_cli_device_help)

/* A bad command line exits 2 with one line naming the culprit (or one of culprits). */
static void expect_cli_error_any(const char *const *args, const char *const *culprits)
{
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int st = vccid_run_cli(args, &out, &err);
    bool named = false;

    g_test_message("stderr: %s", err);
    g_assert_true(WIFEXITED(st));
    g_assert_cmpint(WEXITSTATUS(st), ==, 2);
    g_assert_cmpuint(count_lines(err), ==, 1);
    for (int i = 0; culprits[i]; i++) {
        named |= strstr(err, culprits[i]) != NULL;
    }
    if (!named) {
        g_error("the error message does not name %s: %s", culprits[0], err);
    }
}

static void expect_cli_error(const char *const *args, const char *culprit)
{
    expect_cli_error_any(args, (const char *[]){ culprit, NULL });
}

static void test_cli_errors(void)
{
    g_autofree char *dir = g_dir_make_tmp("vccid-cli-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "s.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=r,path=%s,server=on,wait=off", sock);

    expect_cli_error((const char *[]){ "--bogus-option", NULL }, "--bogus-option");
    expect_cli_error((const char *[]){ "-device", "no-such-device", NULL }, "no-such-device");
    expect_cli_error((const char *[]){ "-device", "usb-ccid,bogusprop=1", NULL }, "bogusprop");
    expect_cli_error((const char *[]){ "-device", "usb-ccid,vendorid=xyz", NULL }, "xyz");
    expect_cli_error((const char *[]){ "-device", "usb-ccid,vendorid=0x123456", NULL },
                     "vendorid");
    expect_cli_error_any((const char *[]){ "-chardev", "socket,id=r", "-device", "usb-ccid",
                                           "-export", "usbredir,chardev=r", NULL },
                         (const char *[]){ "path", "host", NULL });
    expect_cli_error((const char *[]){ "-chardev", "pipe,id=r,path=/x", "-device", "usb-ccid",
                                       "-export", "usbredir,chardev=r", NULL }, "pipe");
    expect_cli_error((const char *[]){ "-device", "usb-ccid", "-export",
                                       "usbredir,chardev=nope", NULL }, "nope");
    expect_cli_error((const char *[]){ "-device", NULL }, "-device");
    /* Nothing half-starts: a bad option after a good chardev leaves no socket. */
    expect_cli_error((const char *[]){ "-chardev", chardev, "-device", "usb-ccid,speed=warp",
                                       "-export", "usbredir,chardev=r", NULL }, "warp");
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    g_rmdir(dir);
}
USB_CCID_TEST_PLAIN("cli/errors", test_cli_errors)

/*
 * A reader exported nowhere cannot be reached: a usage error, like giving
 * no device at all.
 */
static void test_cli_no_export(void)
{
    expect_cli_error((const char *[]){ "-device", "usb-ccid", NULL }, "-export");
}
USB_CCID_TEST_PLAIN("cli/no-export", test_cli_no_export)

/* A socket that cannot be created: the message names it. */
static void test_cli_bind_error(void)
{
    expect_cli_error((const char *[]){ "-chardev",
                                       "socket,id=r,path=/nonexistent/s,server=on,wait=off",
                                       "-device", "usb-ccid", "-export", "usbredir,chardev=r",
                                       NULL }, "/nonexistent/s");
}
USB_CCID_TEST_PLAIN("cli/bind-error", test_cli_bind_error)

/* A card libcacard cannot make fails the start, naming the culprit, and leaves no socket. */
static void test_cli_card_errors(void)
{
    g_autofree char *dir = g_dir_make_tmp("vccid-cli-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "s.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=r,path=%s,server=on,wait=off", sock);
    g_autofree char *db = g_strconcat("db=sql:", vccid_master_cert_db(), NULL);
    g_autofree char *two = g_strdup_printf("ccid-card-emulated,backend=certificates,%s,"
                                           "cert1=id-cert,cert2=signing-cert", db);
    g_autofree char *bad = g_strdup_printf("ccid-card-emulated,backend=smoke,%s", db);
    g_autofree char *missing = g_strdup_printf("ccid-card-emulated,backend=certificates,%s,"
                                               "cert1=id-cert,cert2=signing-cert,"
                                               "cert3=no-such-cert", db);

    expect_cli_error((const char *[]){ "-chardev", chardev, "-device", "usb-ccid",
                                       "-device", two, "-export", "usbredir,chardev=r",
                                       NULL }, "cert3");
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    expect_cli_error((const char *[]){ "-chardev", chardev, "-device", "usb-ccid",
                                       "-device", bad, "-export", "usbredir,chardev=r",
                                       NULL }, "smoke");
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    expect_cli_error((const char *[]){ "-chardev", chardev, "-device", "usb-ccid",
                                       "-device", missing, "-export", "usbredir,chardev=r",
                                       NULL }, "no-such-cert");
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    g_rmdir(dir);
}
USB_CCID_TEST_PLAIN("cli/card-errors", test_cli_card_errors)
