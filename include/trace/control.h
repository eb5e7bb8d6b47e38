/*
 * Trace points: the runtime behind the trace_NAME() functions that
 * scripts/tracetool.py generates from each directory's trace-events file.
 *
 * Every event starts disabled. A disabled trace_NAME() costs one test of the
 * event's bool; an enabled one writes a line to stderr (or -trace file=)
 *
 *     SECONDS.MICROSECONDS PID NAME ARGS
 *
 * with a monotonic time stamp, from whatever thread calls it.
 */
#ifndef TRACE_CONTROL_H
#define TRACE_CONTROL_H

#include <glib.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct TraceEvent {
    const char *name;
    bool enabled;
} TraceEvent;

/* Called by the generated code, before main(), once per trace-events file. */
void trace_register_events(TraceEvent *events, size_t n);

/* One line for an enabled event (the generated trace_NAME() calls this). */
void trace_event_emit(const TraceEvent *ev, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* True if name matches the glob pattern ('*' any run, '?' any one character). */
bool trace_pattern_match(const char *pattern, const char *name);

/*
 * Switch every event whose name matches pattern on or off; returns how many
 * matched. The debug= properties of devices are aliases made of this:
 * debug=N enables their group, e.g. trace_enable_pattern("usb_ccid_*").
 */
size_t trace_set_pattern(const char *pattern, bool enabled);
static inline size_t trace_enable_pattern(const char *pattern)
{
    return trace_set_pattern(pattern, true);
}

/*
 * One line of an events file: a pattern to enable, "-PATTERN" to disable,
 * or nothing (blank, or a '#' comment). A pattern without wildcards must
 * name an event.
 */
bool trace_apply_line(const char *line, GError **errp);
/* Every line of a file, in order. */
bool trace_apply_events_file(const char *path, GError **errp);

/* Write trace lines to path (truncated) instead of stderr. */
bool trace_set_output_file(const char *path, GError **errp);

/*
 * The -trace option: "[enable=]PATTERN", "events=FILE", "file=FILE", any
 * of them together separated by commas. Sets *help if the pattern is
 * "help", in which case nothing else is done.
 */
bool trace_opt_parse(const char *optstr, bool *help, GError **errp);

/* Every event name, sorted, one per line. */
void trace_list_events(FILE *out);

#endif
