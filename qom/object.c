/*
 * The -object registry: types by name, instances by id.
 */
#include "qom/object.h"
#include "qemu/error.h"
#include "qemu/id.h"

#include <stdio.h>
#include <string.h>

static GHashTable *object_classes;   /* name -> const ObjectClass * */
static GPtrArray *objects;           /* Object *, creation order */

void object_class_register(const ObjectClass *klass)
{
    if (!object_classes) {
        object_classes = g_hash_table_new(g_str_hash, g_str_equal);
    }
    g_assert(!g_hash_table_contains(object_classes, klass->name));
    g_hash_table_insert(object_classes, (gpointer)klass->name, (gpointer)klass);
}

static void object_free(Object *obj)
{
    char *id = obj->id;

    obj->klass->finalize(obj);
    g_free(id);
}

Object *object_create_from_string(const char *optstr, GError **errp)
{
    g_autoptr(QemuOpts) opts = qemu_opts_parse(optstr, "qom-type", errp);
    const ObjectClass *klass;
    const char *type, *id, *unused;
    Object *obj;

    if (!opts) {
        return NULL;
    }
    type = opts->implied ? opts->implied : qemu_opt_take(opts, "qom-type");
    klass = type && object_classes ? g_hash_table_lookup(object_classes, type) : NULL;
    if (!klass) {
        g_set_error(errp, VCCID_ERROR, 0, "-object %s: invalid object type '%s' (try -object help)",
                    optstr, type ? type : "");
        return NULL;
    }
    id = qemu_opt_take(opts, "id");
    if (!id) {
        g_set_error(errp, VCCID_ERROR, 0, "-object %s: Parameter 'id' is missing", optstr);
        return NULL;
    }
    if (!id_wellformed(id)) {
        g_set_error(errp, VCCID_ERROR, 0,
                    "-object %s: Parameter 'id' expects an identifier (a letter, then letters, "
                    "digits, '-', '_' or '.'), not '%s'", optstr, id);
        return NULL;
    }
    if (object_find(id)) {
        g_set_error(errp, VCCID_ERROR, 0, "-object %s: attempt to add duplicate object id '%s'",
                    optstr, id);
        return NULL;
    }
    obj = klass->create(id, opts, errp);
    if (!obj) {
        g_prefix_error(errp, "-object %s: ", optstr);
        return NULL;
    }
    obj->klass = klass;
    obj->id = g_strdup(id);
    unused = qemu_opts_first_unused(opts);
    if (unused) {
        g_set_error(errp, VCCID_ERROR, 0, "-object %s: Invalid parameter '%s' for '%s'",
                    optstr, unused, type);
        object_free(obj);
        return NULL;
    }
    if (!objects) {
        objects = g_ptr_array_new();
    }
    g_ptr_array_add(objects, obj);
    return obj;
}

Object *object_find(const char *id)
{
    for (guint i = 0; objects && i < objects->len; i++) {
        Object *obj = g_ptr_array_index(objects, i);

        if (strcmp(obj->id, id) == 0) {
            return obj;
        }
    }
    return NULL;
}

Object *object_dynamic_cast(Object *obj, const char *typename)
{
    if (obj && (strcmp(obj->klass->name, typename) == 0 ||
                (obj->klass->parent && strcmp(obj->klass->parent, typename) == 0))) {
        return obj;
    }
    return NULL;
}

static gint compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(((const ObjectClass *)a)->name, ((const ObjectClass *)b)->name);
}

void object_print_help(void)
{
    g_autoptr(GList) list = object_classes ? g_hash_table_get_values(object_classes) : NULL;

    printf("Object types:\n");
    list = g_list_sort(list, compare_names);
    for (GList *l = list; l; l = l->next) {
        printf("  -object %s\n", ((const ObjectClass *)l->data)->usage);
    }
}

bool object_del(const char *id, GError **errp)
{
    Object *obj = object_find(id);

    if (!obj) {
        g_set_error(errp, VCCID_ERROR, 0, "object '%s' not found", id);
        return false;
    }
    g_ptr_array_remove(objects, obj);
    object_free(obj);
    return true;
}

GPtrArray *object_list(void)
{
    if (!objects) {
        objects = g_ptr_array_new();
    }
    return objects;
}

void object_destroy_all(void)
{
    /* Later objects may refer to earlier ones: free in reverse. */
    for (guint i = objects ? objects->len : 0; i > 0; i--) {
        object_free(g_ptr_array_index(objects, i - 1));
    }
    g_clear_pointer(&objects, g_ptr_array_unref);
}
