/*
 * JSON values, parser and writer (RFC 8259), bounded for hostile input:
 * nesting is limited, strings must be valid UTF-8 without NUL, numbers
 * follow the grammar exactly.
 */
#include "qobject/qjson.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- values ---- */

static QObject *qobject_new(QType type)
{
    QObject *obj = g_new0(QObject, 1);

    obj->type = type;
    return obj;
}

QObject *qnull_new(void)
{
    return qobject_new(QTYPE_NULL);
}

QObject *qbool_new(bool b)
{
    QObject *obj = qobject_new(QTYPE_BOOL);

    obj->u.b = b;
    return obj;
}

QObject *qint_new(int64_t i)
{
    QObject *obj = qobject_new(QTYPE_INT);

    obj->u.i = i;
    return obj;
}

QObject *qdouble_new(double d)
{
    QObject *obj = qobject_new(QTYPE_DOUBLE);

    obj->u.d = d;
    return obj;
}

QObject *qstring_take(char *s)
{
    QObject *obj = qobject_new(QTYPE_STRING);

    obj->u.s = s;
    return obj;
}

QObject *qstring_new(const char *s)
{
    return qstring_take(g_strdup(s));
}

QObject *qlist_new(void)
{
    QObject *obj = qobject_new(QTYPE_LIST);

    obj->items = g_ptr_array_new_with_free_func((GDestroyNotify)qobject_free);
    return obj;
}

QObject *qdict_new(void)
{
    QObject *obj = qlist_new();

    obj->type = QTYPE_DICT;
    obj->keys = g_ptr_array_new_with_free_func(g_free);
    return obj;
}

void qobject_free(QObject *obj)
{
    if (!obj) {
        return;
    }
    if (obj->type == QTYPE_STRING) {
        g_free(obj->u.s);
    }
    if (obj->items) {
        g_ptr_array_unref(obj->items);
    }
    if (obj->keys) {
        g_ptr_array_unref(obj->keys);
    }
    g_free(obj);
}

QObject *qobject_copy(const QObject *obj)
{
    QObject *copy;

    switch (obj->type) {
    case QTYPE_STRING:
        return qstring_new(obj->u.s);
    case QTYPE_LIST:
    case QTYPE_DICT:
        copy = obj->type == QTYPE_LIST ? qlist_new() : qdict_new();
        for (guint i = 0; i < obj->items->len; i++) {
            g_ptr_array_add(copy->items, qobject_copy(g_ptr_array_index(obj->items, i)));
            if (obj->keys) {
                g_ptr_array_add(copy->keys, g_strdup(g_ptr_array_index(obj->keys, i)));
            }
        }
        return copy;
    default:
        copy = qobject_new(obj->type);
        copy->u = obj->u;
        return copy;
    }
}

/* JSON's names for them, as QMP's errors say "expected: integer". */
static const char *const qtype_names[] = {
    [QTYPE_NULL] = "null",
    [QTYPE_BOOL] = "boolean",
    [QTYPE_INT] = "integer",
    [QTYPE_DOUBLE] = "number",
    [QTYPE_STRING] = "string",
    [QTYPE_LIST] = "array",
    [QTYPE_DICT] = "object",
};

const char *qtype_name(QType type)
{
    return (unsigned)type < G_N_ELEMENTS(qtype_names) ? qtype_names[type] : "?";
}

void qlist_append(QObject *list, QObject *value)
{
    g_assert(list->type == QTYPE_LIST);
    g_ptr_array_add(list->items, value);
}

static int qdict_index(const QObject *dict, const char *key)
{
    for (guint i = 0; i < dict->keys->len; i++) {
        if (strcmp(g_ptr_array_index(dict->keys, i), key) == 0) {
            return i;
        }
    }
    return -1;
}

void qdict_put(QObject *dict, const char *key, QObject *value)
{
    int i;

    g_assert(dict->type == QTYPE_DICT);
    i = qdict_index(dict, key);
    if (i >= 0) {
        qobject_free(dict->items->pdata[i]);
        dict->items->pdata[i] = value;
        return;
    }
    g_ptr_array_add(dict->keys, g_strdup(key));
    g_ptr_array_add(dict->items, value);
}

QObject *qdict_get(const QObject *dict, const char *key)
{
    int i;

    if (!dict || dict->type != QTYPE_DICT) {
        return NULL;
    }
    i = qdict_index(dict, key);
    return i >= 0 ? g_ptr_array_index(dict->items, i) : NULL;
}

const char *qdict_get_str(const QObject *dict, const char *key)
{
    QObject *v = qdict_get(dict, key);

    return v && v->type == QTYPE_STRING ? v->u.s : NULL;
}

guint qdict_size(const QObject *dict)
{
    return dict->keys->len;
}

/* ---- parser ---- */

#define QJSON_ERROR g_quark_from_static_string("qjson-error")

typedef struct JSONParser {
    const char *p;
    const char *end;
    GError **errp;
} JSONParser;

static bool parse_fail(JSONParser *ps, const char *what)
{
    if (ps->errp && !*ps->errp) {
        g_set_error_literal(ps->errp, QJSON_ERROR, 0, what);
    }
    return false;
}

static void skip_ws(JSONParser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) {
        ps->p++;
    }
}

static QObject *parse_value(JSONParser *ps, int depth);

static int hex4(const char *p)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        int d = g_ascii_xdigit_value(p[i]);

        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

/* ps->p at the opening quote. */
static char *parse_string(JSONParser *ps)
{
    g_autoptr(GString) s = g_string_new(NULL);

    ps->p++;
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = *ps->p;

        if (c < 0x20) {
            parse_fail(ps, "control character in string");
            return NULL;
        }
        if (c != '\\') {
            g_string_append_c(s, c);
            ps->p++;
            continue;
        }
        if (ps->end - ps->p < 2) {
            break;
        }
        c = ps->p[1];
        ps->p += 2;
        switch (c) {
        case '"': case '\\': case '/': g_string_append_c(s, c); break;
        case 'b': g_string_append_c(s, '\b'); break;
        case 'f': g_string_append_c(s, '\f'); break;
        case 'n': g_string_append_c(s, '\n'); break;
        case 'r': g_string_append_c(s, '\r'); break;
        case 't': g_string_append_c(s, '\t'); break;
        case 'u': {
            int cp = ps->end - ps->p >= 4 ? hex4(ps->p) : -1;

            if (cp < 0) {
                parse_fail(ps, "invalid \\u escape");
                return NULL;
            }
            ps->p += 4;
            if (cp >= 0xd800 && cp < 0xdc00) {
                int lo = ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u'
                         ? hex4(ps->p + 2) : -1;

                if (lo < 0xdc00 || lo > 0xdfff) {
                    parse_fail(ps, "unpaired surrogate in \\u escape");
                    return NULL;
                }
                ps->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if ((cp >= 0xdc00 && cp <= 0xdfff) || cp == 0) {
                parse_fail(ps, "invalid \\u escape");
                return NULL;
            }
            g_string_append_unichar(s, cp);
            break;
        }
        default:
            parse_fail(ps, "invalid escape in string");
            return NULL;
        }
    }
    if (ps->p >= ps->end) {
        parse_fail(ps, "unterminated string");
        return NULL;
    }
    ps->p++;
    if (!g_utf8_validate(s->str, s->len, NULL)) {
        parse_fail(ps, "invalid UTF-8 in string");
        return NULL;
    }
    return g_string_free(g_steal_pointer(&s), FALSE);
}

/* Skip the next character if it is one of chars. */
static bool skip_one_of(JSONParser *ps, const char *chars)
{
    if (ps->p < ps->end && *ps->p && strchr(chars, *ps->p)) {
        ps->p++;
        return true;
    }
    return false;
}

/* Skip one or more digits; false if no digit is next. */
static bool skip_digits(JSONParser *ps)
{
    if (ps->p >= ps->end || !g_ascii_isdigit(*ps->p)) {
        return false;
    }
    while (ps->p < ps->end && g_ascii_isdigit(*ps->p)) {
        ps->p++;
    }
    return true;
}

/*
 * Skip a number's text (RFC 8259, section 6): false if it is not one.
 * *integral: it has neither a fraction nor an exponent.
 */
static bool skip_number(JSONParser *ps, bool *integral)
{
    *integral = true;
    skip_one_of(ps, "-");
    /* The integer part: a lone 0, or digits that do not start with one. */
    if (!skip_one_of(ps, "0") && !skip_digits(ps)) {
        return false;
    }
    if (skip_one_of(ps, ".")) {
        *integral = false;
        if (!skip_digits(ps)) {
            return false;
        }
    }
    if (skip_one_of(ps, "eE")) {
        *integral = false;
        skip_one_of(ps, "+-");
        if (!skip_digits(ps)) {
            return false;
        }
    }
    return true;
}

static QObject *parse_number(JSONParser *ps)
{
    const char *start = ps->p;
    bool integral;
    g_autofree char *text = NULL;

    if (!skip_number(ps, &integral)) {
        parse_fail(ps, "invalid number");
        return NULL;
    }
    text = g_strndup(start, ps->p - start);
    if (integral) {
        gint64 v;

        /* Out of int64's range: a double, as QEMU does. */
        if (g_ascii_string_to_signed(text, 10, G_MININT64, G_MAXINT64, &v, NULL)) {
            return qint_new(v);
        }
    }
    return qdouble_new(g_ascii_strtod(text, NULL));
}

static bool parse_literal(JSONParser *ps, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, word, n) == 0) {
        ps->p += n;
        return true;
    }
    return false;
}

static QObject *parse_container(JSONParser *ps, int depth, bool is_dict)
{
    g_autoptr(QObject) obj = is_dict ? qdict_new() : qlist_new();
    char close = is_dict ? '}' : ']';

    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return g_steal_pointer(&obj);
    }
    for (;;) {
        g_autofree char *key = NULL;
        QObject *value;

        skip_ws(ps);
        if (is_dict) {
            if (ps->p >= ps->end || *ps->p != '"') {
                parse_fail(ps, "expecting a member name");
                return NULL;
            }
            key = parse_string(ps);
            if (!key) {
                return NULL;
            }
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                parse_fail(ps, "expecting ':'");
                return NULL;
            }
            ps->p++;
            if (qdict_get(obj, key)) {
                parse_fail(ps, "duplicate member name");
                return NULL;
            }
        }
        value = parse_value(ps, depth + 1);
        if (!value) {
            return NULL;
        }
        if (is_dict) {
            qdict_put(obj, key, value);
        } else {
            qlist_append(obj, value);
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return g_steal_pointer(&obj);
        }
        parse_fail(ps, is_dict ? "expecting ',' or '}'" : "expecting ',' or ']'");
        return NULL;
    }
}

static QObject *parse_value(JSONParser *ps, int depth)
{
    char *s;

    if (depth > QJSON_MAX_DEPTH) {
        parse_fail(ps, "nesting too deep");
        return NULL;
    }
    skip_ws(ps);
    if (ps->p >= ps->end) {
        parse_fail(ps, "expecting value");
        return NULL;
    }
    switch (*ps->p) {
    case '{':
        return parse_container(ps, depth, true);
    case '[':
        return parse_container(ps, depth, false);
    case '"':
        s = parse_string(ps);
        return s ? qstring_take(s) : NULL;
    case 't':
        if (parse_literal(ps, "true")) {
            return qbool_new(true);
        }
        break;
    case 'f':
        if (parse_literal(ps, "false")) {
            return qbool_new(false);
        }
        break;
    case 'n':
        if (parse_literal(ps, "null")) {
            return qnull_new();
        }
        break;
    default:
        if (*ps->p == '-' || g_ascii_isdigit(*ps->p)) {
            return parse_number(ps);
        }
        break;
    }
    parse_fail(ps, "expecting value");
    return NULL;
}

QObject *qjson_parse(const char *text, size_t len, GError **errp)
{
    JSONParser ps = { .p = text, .end = text + len, .errp = errp };
    g_autoptr(QObject) obj = parse_value(&ps, 0);

    if (!obj) {
        return NULL;
    }
    skip_ws(&ps);
    if (ps.p != ps.end) {
        parse_fail(&ps, "trailing characters");
        return NULL;
    }
    return g_steal_pointer(&obj);
}

/* ---- writer ---- */

static void append_string(GString *out, const char *s)
{
    g_string_append_c(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':  g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        case '\b': g_string_append(out, "\\b"); break;
        case '\f': g_string_append(out, "\\f"); break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                g_string_append_printf(out, "\\u%04x", *p);
            } else {
                g_string_append_c(out, *p);
            }
        }
    }
    g_string_append_c(out, '"');
}

void qjson_append(GString *out, const QObject *obj)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];

    switch (obj->type) {
    case QTYPE_NULL:
        g_string_append(out, "null");
        break;
    case QTYPE_BOOL:
        g_string_append(out, obj->u.b ? "true" : "false");
        break;
    case QTYPE_INT:
        g_string_append_printf(out, "%" G_GINT64_FORMAT, obj->u.i);
        break;
    case QTYPE_DOUBLE:
        if (!isfinite(obj->u.d)) {
            g_string_append(out, "null");
        } else {
            g_string_append(out, g_ascii_dtostr(buf, sizeof(buf), obj->u.d));
        }
        break;
    case QTYPE_STRING:
        append_string(out, obj->u.s);
        break;
    case QTYPE_LIST:
    case QTYPE_DICT:
        g_string_append_c(out, obj->type == QTYPE_LIST ? '[' : '{');
        for (guint i = 0; i < obj->items->len; i++) {
            if (i) {
                g_string_append(out, ", ");
            }
            if (obj->keys) {
                append_string(out, g_ptr_array_index(obj->keys, i));
                g_string_append(out, ": ");
            }
            qjson_append(out, g_ptr_array_index(obj->items, i));
        }
        g_string_append_c(out, obj->type == QTYPE_LIST ? ']' : '}');
        break;
    }
}

char *qjson_to_string(const QObject *obj)
{
    GString *out = g_string_new(NULL);

    qjson_append(out, obj);
    return g_string_free(out, FALSE);
}

/* ---- streamer ---- */

void json_streamer_init(JSONStreamer *js, size_t max_size, JSONStreamerEmit *emit, void *opaque)
{
    memset(js, 0, sizeof(*js));
    js->buf = g_string_new(NULL);
    js->max_size = max_size;
    js->emit = emit;
    js->opaque = opaque;
}

void json_streamer_reset(JSONStreamer *js)
{
    g_string_truncate(js->buf, 0);
    js->depth = 0;
    js->in_string = js->escape = js->scalar = js->overflow = false;
}

void json_streamer_destroy(JSONStreamer *js)
{
    if (js->buf) {
        g_string_free(js->buf, TRUE);
        js->buf = NULL;
    }
}

static bool json_is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool json_is_structural(uint8_t c)
{
    return c == '{' || c == '}' || c == '[' || c == ']' || c == ',' || c == ':';
}

/* Outside strings, only these bytes can be part of a JSON text. */
static bool json_may_appear(uint8_t c)
{
    return json_is_ws(c) || json_is_structural(c) || c == '"' || g_ascii_isdigit(c) ||
           (c && strchr("-+.eE" "truefalsn", c) != NULL);
}

/* The text is complete: hand it over (or report it too large) and start afresh. */
static void json_streamer_finish(JSONStreamer *js)
{
    bool overflow = js->overflow;
    g_autoptr(GString) text = js->buf;

    js->buf = g_string_new(NULL);
    json_streamer_reset(js);
    js->emit(js->opaque, overflow ? NULL : text->str, overflow ? 0 : text->len);
}

static void json_streamer_take(JSONStreamer *js, uint8_t c)
{
    if (js->overflow) {
        return;
    }
    if (js->buf->len >= js->max_size) {
        js->overflow = true;
        g_string_truncate(js->buf, 0);
        return;
    }
    g_string_append_c(js->buf, c);
}

void json_streamer_feed(JSONStreamer *js, const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len && js->buf; i++) {
        uint8_t c = buf[i];

        if (js->in_string) {
            json_streamer_take(js, c);
            if (js->escape) {
                js->escape = false;
            } else if (c == '\\') {
                js->escape = true;
            } else if (c == '"') {
                js->in_string = false;
            }
            continue;
        }
        if (js->scalar) {
            if (json_is_ws(c) || json_is_structural(c)) {
                json_streamer_finish(js);
                i--;          /* c starts what comes next */
                continue;
            }
            json_streamer_take(js, c);
            if (c == '"') {
                js->in_string = true;
            }
            continue;
        }
        if (js->depth == 0) {
            if (json_is_ws(c)) {
                continue;
            }
            json_streamer_take(js, c);
            if (c == '{' || c == '[') {
                js->depth = 1;
            } else if (c == '}' || c == ']' || c == ',' || c == ':') {
                json_streamer_finish(js);
            } else {
                js->scalar = true;
                js->in_string = c == '"';
            }
            continue;
        }
        json_streamer_take(js, c);
        if (!json_may_appear(c)) {
            /* No JSON text goes on like this: answer now, not at the closing brace. */
            json_streamer_finish(js);
            continue;
        }
        if (c == '"') {
            js->in_string = true;
        } else if ((c == '{' || c == '[') && js->depth < G_MAXINT) {
            js->depth++;
        } else if ((c == '}' || c == ']') && --js->depth == 0) {
            json_streamer_finish(js);
        }
    }
}
