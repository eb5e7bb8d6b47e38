/*
 * User-creatable objects: "-object TYPE,id=ID,key=value...", QEMU's way of
 * naming things that devices and chardevs refer to by id (TLS credentials,
 * authorization lists). An object is created once from the command line,
 * before any chardev, and lives until exit.
 */
#ifndef QOM_OBJECT_H
#define QOM_OBJECT_H

#include <glib.h>
#include <stdbool.h>

#include "qemu/option.h"

typedef struct Object Object;

/*
 * A type is static const data. An instance embeds Object as its first
 * member. `parent` names the abstract type an instance can be cast to
 * ("tls-creds", "authz").
 */
typedef struct ObjectClass {
    const char *name;            /* the -object type */
    const char *parent;          /* abstract type, or NULL */
    const char *usage;           /* one line for "-object help" */
    /* Build an instance from opts; mark every option used that it took. */
    Object *(*create)(const char *id, QemuOpts *opts, GError **errp);
    void (*finalize)(Object *obj);
} ObjectClass;

struct Object {
    const ObjectClass *klass;
    char *id;
};

void object_class_register(const ObjectClass *klass);
#define object_type_init(fn) \
    static void __attribute__((constructor)) do_object_type_init_ ## fn(void) { fn(); }

/* Parse "-object TYPE,id=ID,..." and create it. */
Object *object_create_from_string(const char *optstr, GError **errp);
Object *object_find(const char *id);
/* obj if it is of type typename or derives from it, else NULL. */
Object *object_dynamic_cast(Object *obj, const char *typename);
void object_print_help(void);
void object_destroy_all(void);
/* Delete one object; the caller has made sure nothing refers to it. */
bool object_del(const char *id, GError **errp);
/* Objects in creation order (the array is the registry's: do not free). */
GPtrArray *object_list(void);

#endif
