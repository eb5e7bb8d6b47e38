/*
 * The QMP monitor's JSON: parser, writer and streamer (qobject/qjson.c).
 */
#include "qobject/qjson.h"
#include "../support/test-cases.h"

#include <string.h>

static void test_roundtrip(void)
{
    static const char *const texts[] = {
        "{}", "[]", "null", "true", "false", "0", "-12", "9223372036854775807",
        "\"a\\\"b\\\\c\\n\"", "{\"execute\": \"x\", \"id\": [1, {\"a\": null}]}",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(QObject) obj = qjson_parse(texts[i], strlen(texts[i]), &err);
        g_autofree char *out = NULL;

        g_assert_no_error(err);
        g_assert_nonnull(obj);
        out = qjson_to_string(obj);
        g_assert_cmpstr(out, ==, texts[i]);
    }
}

static void test_values(void)
{
    static const char text[] = "{\"s\":\"\\u00e9\\ud83d\\ude00\",\"d\":1.5e3,"
                               "\"big\":18446744073709551616}";
    g_autoptr(QObject) obj = qjson_parse(text, strlen(text), NULL);

    g_assert_nonnull(obj);
    g_assert_cmpstr(qdict_get_str(obj, "s"), ==, "\xc3\xa9\xf0\x9f\x98\x80");
    g_assert_cmpint(qdict_get(obj, "d")->type, ==, QTYPE_DOUBLE);
    g_assert_cmpfloat(qdict_get(obj, "d")->u.d, ==, 1500.0);
    g_assert_cmpint(qdict_get(obj, "big")->type, ==, QTYPE_DOUBLE);
    g_assert_null(qdict_get(obj, "missing"));
}

static void test_rejects(void)
{
    static const char *const bad[] = {
        "", "{", "}", "{\"a\"}", "{\"a\":1,}", "[1,]", "01", "-", "1.", "1e", "tru",
        "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\u0000\"", "\"a\x01\"", "\"\xff\"",
        "{\"a\":1,\"a\":2}", "{} {}", "{'a': 1}", "nul",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(QObject) obj = qjson_parse(bad[i], strlen(bad[i]), &err);

        g_assert_null(obj);
        g_assert_nonnull(err);
    }
}

static void test_depth(void)
{
    g_autoptr(GString) deep = g_string_new(NULL);
    g_autoptr(GError) err = NULL;
    QObject *obj;

    for (int i = 0; i < QJSON_MAX_DEPTH + 2; i++) {
        g_string_append_c(deep, '[');
    }
    for (int i = 0; i < QJSON_MAX_DEPTH + 2; i++) {
        g_string_append_c(deep, ']');
    }
    obj = qjson_parse(deep->str, deep->len, &err);
    g_assert_null(obj);
    g_assert_nonnull(err);
}

static void collect(void *opaque, const char *text, size_t len)
{
    g_ptr_array_add(opaque, text ? g_strndup(text, len) : g_strdup("<overflow>"));
}

static void test_streamer(void)
{
    g_autoptr(GPtrArray) got = g_ptr_array_new_with_free_func(g_free);
    static const char input[] = " {\"a\": \"}{\\\"\"}\n[1,[2]]foo {\"b\"\n:1}} 12 ";
    g_autofree char *big = g_strnfill(100, 'x');
    JSONStreamer js;

    json_streamer_init(&js, 64, collect, got);
    /* One byte at a time: the split does not depend on how bytes arrive. */
    for (size_t i = 0; i < strlen(input); i++) {
        json_streamer_feed(&js, (const uint8_t *)input + i, 1);
    }
    g_assert_cmpuint(got->len, ==, 6);
    g_assert_cmpstr(got->pdata[0], ==, "{\"a\": \"}{\\\"\"}");
    g_assert_cmpstr(got->pdata[1], ==, "[1,[2]]");
    g_assert_cmpstr(got->pdata[2], ==, "foo");
    g_assert_cmpstr(got->pdata[3], ==, "{\"b\"\n:1}");
    g_assert_cmpstr(got->pdata[4], ==, "}");
    g_assert_cmpstr(got->pdata[5], ==, "12");

    /* Too large: reported once at its end, and the next text is whole. */
    json_streamer_feed(&js, (const uint8_t *)"{\"", 2);
    json_streamer_feed(&js, (const uint8_t *)big, strlen(big));
    json_streamer_feed(&js, (const uint8_t *)"\":{}}{}", 7);
    g_assert_cmpuint(got->len, ==, 8);
    g_assert_cmpstr(got->pdata[6], ==, "<overflow>");
    g_assert_cmpstr(got->pdata[7], ==, "{}");

    /* A byte no JSON text can hold ends the text at once. */
    json_streamer_feed(&js, (const uint8_t *)"{bad", 4);
    g_assert_cmpuint(got->len, ==, 9);
    g_assert_cmpstr(got->pdata[8], ==, "{b");
    json_streamer_destroy(&js);
}

static const TestCase cases[] = {
    { "/qjson/roundtrip", test_roundtrip },
    { "/qjson/values", test_values },
    { "/qjson/rejects", test_rejects },
    { "/qjson/depth", test_depth },
    { "/qjson/streamer", test_streamer },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_add_cases(cases);
    return g_test_run();
}
