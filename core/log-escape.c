/* Escaping peer strings for the log. See include/qemu/log-escape.h. */
#include <string.h>

#include "qemu/log-escape.h"

char *log_escape(const void *data, gssize len)
{
    const unsigned char *p = data;
    size_t n;
    GString *out;

    if (!p) {
        return g_strdup("");
    }
    n = len < 0 ? strlen(data) : (size_t)len;
    out = g_string_sized_new(MIN(n, LOG_ESCAPE_MAX_INPUT) + 8);
    for (size_t i = 0; i < n && i < LOG_ESCAPE_MAX_INPUT; i++) {
        if (p[i] == '\\' || p[i] == '"') {
            g_string_append_c(out, '\\');
            g_string_append_c(out, p[i]);
        } else if (p[i] >= 0x20 && p[i] < 0x7f) {
            g_string_append_c(out, p[i]);
        } else {
            g_string_append_printf(out, "\\x%02x", p[i]);
        }
    }
    if (n > LOG_ESCAPE_MAX_INPUT) {
        g_string_append(out, "...");
    }
    return g_string_free(out, FALSE);
}
