/*
 * QMP commands: the table the dispatcher reads, and the error classes.
 */
#ifndef MONITOR_QMP_H
#define MONITOR_QMP_H

#include <glib.h>
#include <stdbool.h>

#include "qemu/error.h"
#include "qobject/qjson.h"

/*
 * The "class" of a QMP error is the GError's code in VCCID_ERROR: every
 * layer below reports code 0, QEMU's GenericError.
 */
typedef enum QmpErrorClass {
    QMP_ERROR_CLASS_GENERIC_ERROR = 0,
    QMP_ERROR_CLASS_COMMAND_NOT_FOUND,
    QMP_ERROR_CLASS_DEVICE_NOT_FOUND,
} QmpErrorClass;

const char *qmp_error_class_name(int code);

/* One argument a command takes; type -1: any JSON type. */
typedef struct QmpArg {
    const char *name;
    int type;                 /* QType, or -1 */
    bool optional;
} QmpArg;

/*
 * A command: args (never NULL for a command that takes some) are checked
 * before fn runs; fn returns the "return" value (a dict if NULL is
 * returned without an error) or NULL with errp set.
 */
typedef QObject *QmpCommandFunc(const QObject *args, GError **errp);

typedef struct QmpCommand {
    const char *name;
    QmpCommandFunc *fn;
    const QmpArg *args;       /* terminated by { NULL } */
    bool extra_args;          /* takes members beyond args (device_add's properties) */
} QmpCommand;

/* The commands after negotiation, sorted by nothing; ends with { NULL }. */
extern const QmpCommand qmp_commands[];

const QmpCommand *qmp_command_find(const char *name);
/* query-version's reply, which the greeting carries too. */
QObject *qmp_version_info(void);

#endif
