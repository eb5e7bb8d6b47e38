/*
 * Strings a peer chose (a reader name, a usbredir version string) on their
 * way to a log line or a trace point. Escaped, they cannot end the line,
 * start a forged one or carry terminal escapes.
 */
#ifndef QEMU_LOG_ESCAPE_H
#define QEMU_LOG_ESCAPE_H

#include <glib.h>

/* Input bytes shown before the rest is cut to "...". */
#define LOG_ESCAPE_MAX_INPUT 128

/*
 * A printable copy of at most LOG_ESCAPE_MAX_INPUT bytes of data: printable
 * ASCII stays, a backslash or double quote gets a backslash, every other
 * byte (control characters, DEL, anything beyond ASCII) becomes \xNN; a
 * longer input ends in "...". len -1: data is NUL-terminated. data NULL
 * gives "". Free with g_free().
 */
char *log_escape(const void *data, gssize len);

#endif
