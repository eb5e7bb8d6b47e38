/*
 * QEMU-style option strings: "first,key=value,flag,key2=a,,b".
 * A doubled comma is a literal comma. The first element may be an implied
 * key without "=" (the driver for -device, the backend for -chardev).
 */
#ifndef QEMU_OPTION_H
#define QEMU_OPTION_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct QemuOpt {
    char *key;
    char *value;
    bool used;
} QemuOpt;

typedef struct QemuOpts {
    char *implied;     /* value of the implied first key, or NULL */
    GPtrArray *opts;   /* QemuOpt *, in order */
} QemuOpts;

/*
 * Parse str. If implied_key is non-NULL, a first element without '=' is
 * its value. A bare "key" later on means "key=on". Duplicate keys: last wins
 * for lookups but all are kept. Returns NULL with errp set on a syntax error.
 */
QemuOpts *qemu_opts_parse(const char *str, const char *implied_key, GError **errp);
void qemu_opts_free(QemuOpts *opts);
const char *qemu_opt_get(QemuOpts *opts, const char *key);
/* Look up and mark used. */
const char *qemu_opt_take(QemuOpts *opts, const char *key);
/* First key not marked used, or NULL. */
const char *qemu_opts_first_unused(QemuOpts *opts);
bool qemu_opt_parse_bool(const char *value, bool *out);
bool qemu_opt_parse_uint(const char *value, uint64_t max, uint64_t *out);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(QemuOpts, qemu_opts_free)

#endif
