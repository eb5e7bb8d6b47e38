/* log_escape (core/log-escape.c): nothing a peer sends survives raw into a log line. */
#include <string.h>

#include "qemu/log-escape.h"
#include "../support/test-cases.h"

static void check(const void *in, gssize len, const char *want)
{
    g_autofree char *got = log_escape(in, len);

    g_assert_cmpstr(got, ==, want);
}

static void test_printable_kept(void)
{
    check("Test Reader 1", -1, "Test Reader 1");
    check("", -1, "");
    check(NULL, 0, "");
    check("abc", 0, "");
}

static void test_forgery_escaped(void)
{
    check("r\nvccid: card inserted", -1, "r\\x0avccid: card inserted");
    check("\x1b[31mred\r", -1, "\\x1b[31mred\\x0d");
    check("a\\x0a\"", -1, "a\\\\x0a\\\"");
    check("\x7f\xc3\xa9", -1, "\\x7f\\xc3\\xa9");
    /* An embedded NUL does not cut the string short when the length is given. */
    check("a\0b", 3, "a\\x00b");
}

static void test_length_capped(void)
{
    g_autofree char *in = g_strnfill(10000, '\n');
    g_autofree char *got = log_escape(in, -1);

    g_assert_cmpuint(strlen(got), ==, LOG_ESCAPE_MAX_INPUT * 4 + 3);
    g_assert_true(g_str_has_suffix(got, "..."));
    g_assert_null(strchr(got, '\n'));
}

static const TestCase cases[] = {
    { "/log-escape/printable", test_printable_kept },
    { "/log-escape/forgery", test_forgery_escaped },
    { "/log-escape/capped", test_length_capped },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_add_cases(cases);
    return g_test_run();
}
