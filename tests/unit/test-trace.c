/*
 * The trace runtime (core/trace.c): patterns, events files, the -trace
 * option and the line an enabled event writes, on a table of our own
 * registered by hand; and what scripts/tracetool.py makes of this
 * directory's trace-events file (test_trace_*).
 */
#include "trace/control.h"
#include "trace-tests_unit.h"
#include "../support/test-cases.h"
#include "../support/tmp-file.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

static TraceEvent test_events[] = {
    { .name = "usb_desc_get_descriptor" },
    { .name = "usb_desc_set_address" },
    { .name = "usb_ccid_command" },
    { .name = "usb_ccid_answer" },
    { .name = "usbredir_bulk_packet" },
};

static bool enabled(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(test_events); i++) {
        if (!strcmp(test_events[i].name, name)) {
            return test_events[i].enabled;
        }
    }
    g_assert_not_reached();
}

static void all_off(void)
{
    trace_set_pattern("*", false);
}

/* Send trace lines to a new empty file (-trace file=), whose path is returned. */
static char *trace_to_new_file(void)
{
    g_autoptr(GError) err = NULL;
    char *path = test_tmp_file_holding("");
    g_autofree char *opt = g_strdup_printf("file=%s", path);
    bool help;

    g_assert_true(trace_opt_parse(opt, &help, &err));
    g_assert_false(help);
    return path;
}

static void test_pattern_match(void)
{
    g_assert_true(trace_pattern_match("usb_ccid_*", "usb_ccid_answer"));
    g_assert_true(trace_pattern_match("*", "usb_ccid_answer"));
    g_assert_true(trace_pattern_match("usb_*_answer", "usb_ccid_answer"));
    g_assert_true(trace_pattern_match("usb_ccid_answe?", "usb_ccid_answer"));
    g_assert_true(trace_pattern_match("usb_ccid_answer", "usb_ccid_answer"));
    g_assert_false(trace_pattern_match("usb_ccid", "usb_ccid_answer"));
    g_assert_false(trace_pattern_match("usb_desc_*", "usb_ccid_answer"));
    g_assert_false(trace_pattern_match("usb_ccid_answer?", "usb_ccid_answer"));
    g_assert_false(trace_pattern_match("", "usb_ccid_answer"));
}

static void test_set_pattern(void)
{
    all_off();
    g_assert_cmpuint(trace_enable_pattern("usb_ccid_*"), ==, 2);
    g_assert_true(enabled("usb_ccid_command"));
    g_assert_true(enabled("usb_ccid_answer"));
    g_assert_false(enabled("usb_desc_set_address"));
    g_assert_cmpuint(trace_enable_pattern("nothing_*"), ==, 0);
    g_assert_cmpuint(trace_set_pattern("usb_ccid_answer", false), ==, 1);
    g_assert_false(enabled("usb_ccid_answer"));
    g_assert_true(enabled("usb_ccid_command"));
}

static void test_apply_line(void)
{
    g_autoptr(GError) err = NULL;

    all_off();
    g_assert_true(trace_apply_line("", &err));
    g_assert_true(trace_apply_line("   # usb_desc_*", &err));
    g_assert_false(enabled("usb_desc_set_address"));
    g_assert_true(trace_apply_line("  usb_desc_*  ", &err));
    g_assert_true(enabled("usb_desc_set_address"));
    g_assert_true(trace_apply_line("-usb_desc_set_address", &err));
    g_assert_false(enabled("usb_desc_set_address"));
    g_assert_true(enabled("usb_desc_get_descriptor"));
    /* A glob may match nothing (another build's events); a plain name must exist. */
    g_assert_true(trace_apply_line("vscard_*", &err));
    g_assert_no_error(err);
    g_assert_false(trace_apply_line("usb_desc_get_descriptr", &err));
    g_assert_nonnull(strstr(err->message, "usb_desc_get_descriptr"));
    g_clear_error(&err);
    g_assert_false(trace_apply_line("-", &err));
    g_assert_nonnull(err);
}

static void test_events_file(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *good = test_tmp_file_holding("# the CCID layer\n"
                                                  "usb_ccid_*\n"
                                                  "\n"
                                                  "  -usb_ccid_answer\n"
                                                  "usbredir_bulk_packet");
    g_autofree char *bad = test_tmp_file_holding("usb_desc_*\n# fine so far\nno_such_event\n");

    all_off();
    g_assert_true(trace_apply_events_file(good, &err));
    g_assert_no_error(err);
    g_assert_true(enabled("usb_ccid_command"));
    g_assert_false(enabled("usb_ccid_answer"));
    g_assert_true(enabled("usbredir_bulk_packet"));
    g_assert_false(enabled("usb_desc_set_address"));

    /* The error names the file and the line. */
    g_assert_false(trace_apply_events_file(bad, &err));
    g_assert_nonnull(strstr(err->message, ":3: "));
    g_assert_nonnull(strstr(err->message, "no_such_event"));
    g_clear_error(&err);
    g_assert_false(trace_apply_events_file("/nonexistent/events", &err));
    g_assert_nonnull(err);
    g_unlink(good);
    g_unlink(bad);
}

static void test_opt_parse(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *events = test_tmp_file_holding("usbredir_*\n");
    g_autofree char *opt = g_strdup_printf("usb_desc_set_address,events=%s", events);
    bool help;

    all_off();
    g_assert_true(trace_opt_parse("enable=usb_ccid_command", &help, &err));
    g_assert_false(help);
    g_assert_true(enabled("usb_ccid_command"));
    g_assert_true(trace_opt_parse(opt, &help, &err));
    g_assert_true(enabled("usb_desc_set_address"));
    g_assert_true(enabled("usbredir_bulk_packet"));
    g_assert_false(enabled("usb_ccid_answer"));

    g_assert_true(trace_opt_parse("help", &help, &err));
    g_assert_true(help);
    g_assert_true(trace_opt_parse("enable=help", &help, &err));
    g_assert_true(help);

    g_assert_false(trace_opt_parse("enable=", &help, &err));
    g_clear_error(&err);
    g_assert_false(trace_opt_parse("usb_*,colour=red", &help, &err));
    g_assert_nonnull(strstr(err->message, "colour"));
    g_clear_error(&err);
    g_assert_false(trace_opt_parse("file=/nonexistent/dir/trace.log", &help, &err));
    g_assert_nonnull(err);
    g_unlink(events);
}

static void test_output_line(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *path = trace_to_new_file();
    g_autofree char *text = NULL;
    g_autofree char *expect = g_strdup_printf(" %d usb_ccid_answer type 0x80 seq 7\n", (int)getpid());
    g_autoptr(GRegex) re = g_regex_new("^[0-9]+\\.[0-9]{6} [0-9]+ usb_ccid_answer ", 0, 0, NULL);

    trace_event_emit(&test_events[3], "type 0x%02x seq %u", 0x80, 7);
    g_assert_true(g_file_get_contents(path, &text, NULL, &err));
    g_assert_true(g_regex_match(re, text, 0, NULL));
    g_assert_true(g_str_has_suffix(text, expect));
    g_unlink(path);
}

static void test_list(void)
{
    g_autofree char *path = test_tmp_file_holding("");
    g_autofree char *text = NULL;
    FILE *f = fopen(path, "w");

    trace_list_events(f);
    fclose(f);
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    /* Both groups, sorted, one a line. */
    g_assert_cmpstr(text, ==, "test_trace_disabled_keyword\ntest_trace_no_args\n"
                    "test_trace_pointer\ntest_trace_string\ntest_trace_wide\n"
                    "usb_ccid_answer\nusb_ccid_command\nusb_desc_get_descriptor\n"
                    "usb_desc_set_address\nusbredir_bulk_packet\n");
    g_unlink(path);
}

/* The generated functions: silent and harmless while off, one line each when on. */
static void test_generated(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *path = trace_to_new_file();
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;

    trace_set_pattern("*", false);
    g_assert_false(TRACE_TEST_TRACE_STRING_ENABLED());
    /* Off, the format is never applied: this pointer would crash %s. */
    trace_test_trace_string((const char *)16, 1);
    trace_test_trace_no_args();
    trace_test_trace_disabled_keyword(1);
    g_assert_true(g_file_get_contents(path, &text, NULL, &err));
    g_assert_cmpstr(text, ==, "");
    g_clear_pointer(&text, g_free);

    g_assert_cmpuint(trace_enable_pattern("test_trace_*"), ==, 5);
    g_assert_true(TRACE_TEST_TRACE_STRING_ENABLED());
    trace_test_trace_no_args();
    trace_test_trace_string("card", -3);
    trace_test_trace_wide(G_GUINT64_CONSTANT(0x1122334455667788), 0xab, 65536, true);
    trace_test_trace_pointer("tight", NULL);
    trace_test_trace_disabled_keyword(42);
    g_assert_true(g_file_get_contents(path, &text, NULL, &err));
    lines = g_strsplit(text, "\n", -1);
    g_assert_cmpuint(g_strv_length(lines), ==, 6);
    g_assert_true(g_str_has_suffix(lines[0], " test_trace_no_args nothing to say"));
    g_assert_true(g_str_has_suffix(lines[1], " test_trace_string s card n -3"));
    g_assert_true(g_str_has_suffix(lines[2], " test_trace_wide id 0x1122334455667788 b 0xab "
                                   "len 65536 flag 1"));
    g_assert_nonnull(strstr(lines[3], " test_trace_pointer tight "));
    g_assert_true(g_str_has_suffix(lines[4], " test_trace_disabled_keyword u 42"));
    g_assert_cmpstr(lines[5], ==, "");
    trace_set_pattern("*", false);
    g_unlink(path);
}

static const TestCase cases[] = {
    { "/trace/pattern-match", test_pattern_match },
    { "/trace/set-pattern", test_set_pattern },
    { "/trace/apply-line", test_apply_line },
    { "/trace/events-file", test_events_file },
    { "/trace/opt-parse", test_opt_parse },
    { "/trace/output-line", test_output_line },
    { "/trace/list", test_list },
    { "/trace/generated", test_generated },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    trace_register_events(test_events, G_N_ELEMENTS(test_events));
    test_add_cases(cases);
    return g_test_run();
}
