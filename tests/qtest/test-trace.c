/*
 * Trace points of the running daemon: -trace help lists them, -trace
 * enable=PATTERN makes a host's descriptor request show up on stderr, and
 * -trace events=FILE,file=FILE writes only the listed events to the file.
 */
#include "libqtest-vccid.h"
#include "usbredir-host.h"
#include "../support/tmp-file.h"

#include <glib/gstdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define USB_DT_DEVICE 0x01

static const char *const no_card[] = { "-device", "usb-ccid,id=ccid", NULL };

/* Start vccid with extra arguments before the usb-ccid device, fetch its device descriptor. */
static VccidProcess *start_and_fetch_descriptor(const char *const *trace_args)
{
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) d = NULL;
    UsbredirHost *usb;
    VccidProcess *p;

    for (int i = 0; trace_args[i]; i++) {
        g_ptr_array_add(args, (gpointer)trace_args[i]);
    }
    for (int i = 0; no_card[i]; i++) {
        g_ptr_array_add(args, (gpointer)no_card[i]);
    }
    g_ptr_array_add(args, NULL);
    p = vccid_start((const char *const *)args->pdata);
    usb = urh_connect(p->sock_path, URH_TIMEOUT_MS, &err);
    g_assert_no_error(err);
    d = urh_get_descriptor(usb, USB_DT_DEVICE, 0, 0, 18);
    g_assert_nonnull(d);
    g_assert_cmpuint(d->len, ==, 18);
    urh_free(usb);
    return p;
}

static void test_help(void)
{
    /* One of each directory's groups, each on a line of its own. */
    static const char *const some[] = {
        "usb_desc_get_descriptor", "usb_ccid_command", "chardev_socket_read", "usbredir_bulk_packet",
    };
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int st = vccid_run_cli((const char *[]){ "-trace", "help", NULL }, &out, &err);

    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (size_t i = 0; i < G_N_ELEMENTS(some); i++) {
        g_autofree char *line = g_strdup_printf("\n%s\n", some[i]);

        g_assert_nonnull(strstr(out, line));
    }
}

static void test_enable(void)
{
    VccidProcess *p = start_and_fetch_descriptor((const char *[]){
        "-trace", "enable=usb_desc_*", NULL });
    g_autofree char *err = vccid_read_stderr(p);
    g_autoptr(GRegex) re = g_regex_new(
        "^[0-9]+\\.[0-9]{6} [0-9]+ usb_desc_get_descriptor dev ccid type 0x01 index 0 "
        "wLength 18: 18 bytes$", G_REGEX_MULTILINE, 0, NULL);

    g_assert_true(g_regex_match(re, err, 0, NULL));
    /* Only what was asked for. */
    g_assert_null(strstr(err, " usbredir_"));
    vccid_stop(p);
}

static void test_events_file(void)
{
    g_autofree char *events = test_tmp_file_holding("# descriptors only\nusb_desc_*\n"
                                               "-usb_desc_set_*\n");
    g_autofree char *opt = g_strdup_printf("events=%s,file=@DIR@/trace.log", events);
    VccidProcess *p = start_and_fetch_descriptor((const char *[]){ "-trace", opt, NULL });
    g_autofree char *log = g_build_filename(p->tmpdir, "trace.log", NULL);
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL;
    g_autofree char *err = NULL;

    g_assert_true(g_file_get_contents(log, &text, NULL, &error));
    g_assert_nonnull(strstr(text, " usb_desc_get_descriptor dev ccid type 0x01 index 0"));
    g_assert_null(strstr(text, "usb_desc_set_"));
    /* The file, not stderr. */
    err = vccid_read_stderr(p);
    g_assert_null(strstr(err, "usb_desc_get_descriptor"));
    vccid_stop(p);
    g_unlink(events);
}

static void test_errors(void)
{
    vccid_assert_cli_error((const char *[]){ "-trace", "usb_desc_get_descriptr", "-device",
                                             "usb-ccid", NULL }, "usb_desc_get_descriptr");
}

static const TestCase cases[] = {
    { "/trace/help", test_help },
    { "/trace/enable", test_enable },
    { "/trace/events-file", test_events_file },
    { "/trace/errors", test_errors },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_add_cases(cases);
    return g_test_run();
}
