/*
 * JSON values for the QMP monitor: a small tree type, a bounded parser and
 * a writer, and a streamer that cuts a byte stream into top-level JSON
 * texts. Pure: GLib only, no sockets; fuzzed through the monitor.
 */
#ifndef QOBJECT_QJSON_H
#define QOBJECT_QJSON_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum QType {
    QTYPE_NULL,
    QTYPE_BOOL,
    QTYPE_INT,
    QTYPE_DOUBLE,
    QTYPE_STRING,
    QTYPE_LIST,
    QTYPE_DICT,
} QType;

/*
 * One value with one owner. A dict keeps its members in insertion order
 * (keys[i] names items[i]); QMP objects are small, lookups are linear.
 */
typedef struct QObject {
    QType type;
    union {
        bool b;
        int64_t i;
        double d;
        char *s;
    } u;
    GPtrArray *items;    /* QObject *: list elements or dict values */
    GPtrArray *keys;     /* char *: dict keys */
} QObject;

/* Deepest nesting the parser accepts. */
#define QJSON_MAX_DEPTH 64

QObject *qnull_new(void);
QObject *qbool_new(bool b);
QObject *qint_new(int64_t i);
QObject *qdouble_new(double d);
QObject *qstring_new(const char *s);
QObject *qstring_take(char *s);
QObject *qlist_new(void);
QObject *qdict_new(void);
void qobject_free(QObject *obj);
QObject *qobject_copy(const QObject *obj);
const char *qtype_name(QType type);

/* Takes ownership of value. */
void qlist_append(QObject *list, QObject *value);
/* Takes ownership of value; replaces a member of the same name. */
void qdict_put(QObject *dict, const char *key, QObject *value);
QObject *qdict_get(const QObject *dict, const char *key);
/* The member if it is a string, else NULL. */
const char *qdict_get_str(const QObject *dict, const char *key);
guint qdict_size(const QObject *dict);

/* Parse exactly one JSON value from text (len bytes, no NUL needed). */
QObject *qjson_parse(const char *text, size_t len, GError **errp);
/* Compact JSON, QEMU's spacing ("key": value, ...). */
char *qjson_to_string(const QObject *obj);
void qjson_append(GString *out, const QObject *obj);

/*
 * The streamer: bytes in, one callback per top-level JSON text out (an
 * object or array, or a run of other characters, which the parser will
 * then reject). A text longer than max_size is discarded up to its end and
 * reported with text NULL. Memory held is bounded by max_size.
 */
typedef void JSONStreamerEmit(void *opaque, const char *text, size_t len);

typedef struct JSONStreamer {
    GString *buf;
    size_t max_size;
    int depth;               /* open braces and brackets */
    bool in_string;
    bool escape;
    bool scalar;             /* collecting a run outside any container */
    bool overflow;           /* discarding the rest of a too large text */
    JSONStreamerEmit *emit;
    void *opaque;
} JSONStreamer;

void json_streamer_init(JSONStreamer *js, size_t max_size, JSONStreamerEmit *emit, void *opaque);
void json_streamer_feed(JSONStreamer *js, const uint8_t *buf, size_t len);
void json_streamer_reset(JSONStreamer *js);
void json_streamer_destroy(JSONStreamer *js);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(QObject, qobject_free)

#endif
