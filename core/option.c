/*
 * Parsing of QEMU-style option strings ("drv,key=val,key2=a,,b").
 */
#include "qemu/option.h"
#include "qemu/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * Split at single commas; ",," is an escaped comma. Returns the elements
 * with escapes removed.
 */
static GPtrArray *split_elements(const char *str)
{
    GPtrArray *elems = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);

    for (const char *p = str; *p; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',') {
            g_ptr_array_add(elems, g_string_free(cur, FALSE));
            cur = g_string_new(NULL);
        } else {
            g_string_append_c(cur, *p);
        }
    }
    g_ptr_array_add(elems, g_string_free(cur, FALSE));
    return elems;
}

static void qemu_opt_free(gpointer data)
{
    QemuOpt *opt = data;

    g_free(opt->key);
    g_free(opt->value);
    g_free(opt);
}

QemuOpts *qemu_opts_parse(const char *str, const char *implied_key, GError **errp)
{
    g_autoptr(GPtrArray) elems = split_elements(str);
    QemuOpts *opts = g_new0(QemuOpts, 1);

    opts->opts = g_ptr_array_new_with_free_func(qemu_opt_free);
    for (guint i = 0; i < elems->len; i++) {
        const char *e = g_ptr_array_index(elems, i);
        const char *eq = strchr(e, '=');
        QemuOpt *opt;

        if (i == 0 && implied_key && !eq) {
            opts->implied = g_strdup(e);
            continue;
        }
        if (*e == '\0') {
            if (i == elems->len - 1 && i > 0) {
                continue;   /* a trailing comma is harmless */
            }
            g_set_error(errp, VCCID_ERROR, 0, "empty option in '%s'", str);
            qemu_opts_free(opts);
            return NULL;
        }
        opt = g_new0(QemuOpt, 1);
        if (eq) {
            opt->key = g_strndup(e, eq - e);
            opt->value = g_strdup(eq + 1);
        } else {
            opt->key = g_strdup(e);
            opt->value = g_strdup("on");
        }
        if (*opt->key == '\0') {
            g_set_error(errp, VCCID_ERROR, 0, "option '%s' has no name", e);
            qemu_opt_free(opt);
            qemu_opts_free(opts);
            return NULL;
        }
        g_ptr_array_add(opts->opts, opt);
    }
    return opts;
}

void qemu_opts_free(QemuOpts *opts)
{
    if (!opts) {
        return;
    }
    g_free(opts->implied);
    g_ptr_array_free(opts->opts, TRUE);
    g_free(opts);
}

static QemuOpt *qemu_opt_find(QemuOpts *opts, const char *key)
{
    for (guint i = opts->opts->len; i > 0; i--) {
        QemuOpt *opt = g_ptr_array_index(opts->opts, i - 1);

        if (strcmp(opt->key, key) == 0) {
            return opt;
        }
    }
    return NULL;
}

const char *qemu_opt_get(QemuOpts *opts, const char *key)
{
    QemuOpt *opt = qemu_opt_find(opts, key);

    return opt ? opt->value : NULL;
}

const char *qemu_opt_take(QemuOpts *opts, const char *key)
{
    const char *value = NULL;

    for (guint i = 0; i < opts->opts->len; i++) {
        QemuOpt *opt = g_ptr_array_index(opts->opts, i);

        if (strcmp(opt->key, key) == 0) {
            opt->used = true;
            value = opt->value;
        }
    }
    return value;
}

const char *qemu_opts_first_unused(QemuOpts *opts)
{
    for (guint i = 0; i < opts->opts->len; i++) {
        QemuOpt *opt = g_ptr_array_index(opts->opts, i);

        if (!opt->used) {
            return opt->key;
        }
    }
    return NULL;
}

bool qemu_opt_parse_bool(const char *value, bool *out)
{
    static const char *const yes[] = { "on", "yes", "true", "y", NULL };
    static const char *const no[] = { "off", "no", "false", "n", NULL };

    for (int i = 0; yes[i]; i++) {
        if (strcmp(value, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(value, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Decimal, 0x hex or 0 octal, no sign, no trailing garbage, <= max. */
bool qemu_opt_parse_uint(const char *value, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!value || !g_ascii_isdigit(*value)) {
        return false;
    }
    errno = 0;
    v = strtoull(value, &end, 0);
    if (errno || *end != '\0' || v > max) {
        return false;
    }
    *out = v;
    return true;
}
