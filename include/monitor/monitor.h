/*
 * QMP monitors: JSON commands and events on a socket chardev, as QEMU's
 * management tools speak them (QEMU's docs/interop/qmp-spec). Each monitor
 * serves one client at a time and keeps its own capabilities state; events
 * go to every monitor whose client has finished negotiation.
 */
#ifndef MONITOR_MONITOR_H
#define MONITOR_MONITOR_H

#include <glib.h>
#include <stdbool.h>

#include "chardev/char.h"
#include "qobject/qjson.h"

typedef struct Monitor Monitor;

/* Largest JSON text one request may be; a larger one is answered with an error. */
#define QMP_MAX_REQUEST_SIZE (64 * 1024)

/* "-mon chardev=ID[,mode=control][,pretty=off]" */
Monitor *monitor_new_from_string(const char *optstr, GError **errp);
/* "-qmp unix:PATH[,opts]" or "-qmp tcp:[HOST]:PORT[,opts]": a chardev and its monitor. */
Monitor *monitor_new_qmp(const char *spec, GError **errp);
/* A monitor on chr (which it claims). */
Monitor *monitor_new(Chardev *chr, GError **errp);
void monitor_destroy_all(void);

/*
 * Send an event to every negotiated client. data (owned, may be NULL) is
 * the event's "data" member.
 */
void qmp_event_send(const char *name, QObject *data);

#endif
