/*
 * The trace runtime: the registry of every trace-events group linked into
 * the program, the -trace option and the one output line per event.
 */
#include "trace/control.h"
#include "qemu/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct TraceGroup {
    TraceEvent *events;
    size_t n;
} TraceGroup;

/* Filled by constructors before main(): groups are never removed. */
static GArray *trace_groups;
static GMutex trace_out_lock;
static FILE *trace_out;          /* NULL: stderr */

void trace_register_events(TraceEvent *events, size_t n)
{
    TraceGroup g = { events, n };

    if (!trace_groups) {
        trace_groups = g_array_new(FALSE, FALSE, sizeof(TraceGroup));
    }
    g_array_append_val(trace_groups, g);
}

void trace_event_emit(const TraceEvent *ev, const char *fmt, ...)
{
    gint64 now = g_get_monotonic_time();
    g_autofree char *args = NULL;
    va_list ap;
    FILE *out;

    va_start(ap, fmt);
    args = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_mutex_lock(&trace_out_lock);
    out = trace_out ? trace_out : stderr;
    fprintf(out, "%" G_GINT64_FORMAT ".%06d %d %s %s\n", now / G_USEC_PER_SEC,
            (int)(now % G_USEC_PER_SEC), (int)getpid(), ev->name, args);
    fflush(out);
    g_mutex_unlock(&trace_out_lock);
}

bool trace_pattern_match(const char *pattern, const char *name)
{
    return g_pattern_match_simple(pattern, name);
}

size_t trace_set_pattern(const char *pattern, bool enabled)
{
    size_t matched = 0;

    for (guint i = 0; trace_groups && i < trace_groups->len; i++) {
        TraceGroup *g = &g_array_index(trace_groups, TraceGroup, i);

        for (size_t j = 0; j < g->n; j++) {
            if (trace_pattern_match(pattern, g->events[j].name)) {
                g->events[j].enabled = enabled;
                matched++;
            }
        }
    }
    return matched;
}

bool trace_apply_line(const char *line, GError **errp)
{
    g_autofree char *pattern = g_strstrip(g_strdup(line));
    const char *p = pattern;
    bool enable = true;

    if (*p == '\0' || *p == '#') {
        return true;
    }
    if (*p == '-') {
        enable = false;
        p++;
    }
    if (*p == '\0') {
        g_set_error(errp, VCCID_ERROR, 0, "'%s' names no trace event", pattern);
        return false;
    }
    /* A mistyped name would otherwise switch nothing on, silently. */
    if (trace_set_pattern(p, enable) == 0 && !strpbrk(p, "*?")) {
        g_set_error(errp, VCCID_ERROR, 0, "no trace event is called '%s' (the trace help lists them)", p);
        return false;
    }
    return true;
}

bool trace_apply_events_file(const char *path, GError **errp)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;

    if (!g_file_get_contents(path, &text, NULL, errp)) {
        return false;
    }
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        if (!trace_apply_line(lines[i], errp)) {
            g_prefix_error(errp, "%s:%d: ", path, i + 1);
            return false;
        }
    }
    return true;
}

bool trace_set_output_file(const char *path, GError **errp)
{
    FILE *f = fopen(path, "w");

    if (!f) {
        g_set_error(errp, VCCID_ERROR, 0, "cannot open trace file '%s': %s", path,
                    g_strerror(errno));
        return false;
    }
    g_mutex_lock(&trace_out_lock);
    if (trace_out) {
        fclose(trace_out);
    }
    trace_out = f;
    g_mutex_unlock(&trace_out_lock);
    return true;
}

bool trace_opt_parse(const char *optstr, bool *help, GError **errp)
{
    g_auto(GStrv) parts = g_strsplit(optstr, ",", -1);

    *help = false;
    for (int i = 0; parts[i]; i++) {
        const char *part = parts[i];
        const char *eq = strchr(part, '=');
        const char *value = eq ? eq + 1 : part;
        size_t keylen = eq ? (size_t)(eq - part) : 0;
        bool ok;

        if (!eq || (keylen == 6 && !strncmp(part, "enable", 6))) {
            if (!strcmp(value, "help") || !strcmp(value, "?")) {
                *help = true;
                return true;
            }
            if (!*value) {
                g_set_error(errp, VCCID_ERROR, 0, "empty pattern");
                return false;
            }
            ok = trace_apply_line(value, errp);
        } else if (keylen == 6 && !strncmp(part, "events", 6)) {
            ok = trace_apply_events_file(value, errp);
        } else if (keylen == 4 && !strncmp(part, "file", 4)) {
            ok = trace_set_output_file(value, errp);
        } else {
            g_set_error(errp, VCCID_ERROR, 0, "Invalid parameter '%.*s'", (int)keylen, part);
            ok = false;
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

static int trace_name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void trace_list_events(FILE *out)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new();

    for (guint i = 0; trace_groups && i < trace_groups->len; i++) {
        TraceGroup *g = &g_array_index(trace_groups, TraceGroup, i);

        for (size_t j = 0; j < g->n; j++) {
            g_ptr_array_add(names, (gpointer)g->events[j].name);
        }
    }
    g_ptr_array_sort(names, trace_name_cmp);
    for (guint i = 0; i < names->len; i++) {
        fprintf(out, "%s\n", (const char *)g_ptr_array_index(names, i));
    }
}
