/*
 * The QMP commands. QEMU's commands keep QEMU's names, arguments, replies
 * and errors; vccid's own are named vccid-* / query-vccid-* (QMP's rule
 * for names that are not QEMU's: say whose they are) and documented in
 * docs/ccid.txt, "The QMP monitor".
 *
 * device_add, chardev-add, object-add and vccid-export-add turn their
 * arguments into the option string their command-line option takes and go
 * the same way: what -device accepts, device_add accepts, with the same
 * errors.
 */
#include "chardev/char.h"
#include "export/export.h"
#include "hw/qdev.h"
#include "hw/usb.h"
#include "hw/usb/ccid.h"
#include "monitor/monitor.h"
#include "monitor/qmp.h"
#include "qom/object.h"
#include "sysemu/runstate.h"

#include <stdio.h>
#include <string.h>

#include "config-host.h"

#define PERIPHERAL_PATH "/machine/peripheral/"
#define PERIPHERAL_ANON_PATH "/machine/peripheral-anon/"
#define OBJECTS_PATH "/objects/"

/* ---- option strings from QMP arguments ---- */

/* Append ",key=value" with the option syntax's comma doubling. */
static void opt_append(GString *out, const char *key, const char *value)
{
    if (key) {
        g_string_append_c(out, ',');
        g_string_append(out, key);
        g_string_append_c(out, '=');
    }
    for (const char *p = value; *p; p++) {
        if (*p == ',') {
            g_string_append_c(out, ',');
        }
        g_string_append_c(out, *p);
    }
}

static bool opt_key_valid(const char *key)
{
    return *key && !strpbrk(key, ",=");
}

/*
 * One member as key=value; objects and arrays flattened into dotted keys
 * (rules.0.match=...), the way QEMU's keyval syntax spells them.
 */
static bool opt_append_value(GString *out, const char *key, const QObject *v, int depth,
                             GError **errp)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];

    if (!opt_key_valid(key)) {
        g_set_error(errp, VCCID_ERROR, 0, "Parameter '%s' is unexpected", key);
        return false;
    }
    switch (v->type) {
    case QTYPE_STRING:
        opt_append(out, key, v->u.s);
        return true;
    case QTYPE_BOOL:
        opt_append(out, key, v->u.b ? "on" : "off");
        return true;
    case QTYPE_INT:
        g_snprintf(buf, sizeof(buf), "%" G_GINT64_FORMAT, v->u.i);
        opt_append(out, key, buf);
        return true;
    case QTYPE_DOUBLE:
        opt_append(out, key, g_ascii_dtostr(buf, sizeof(buf), v->u.d));
        return true;
    case QTYPE_LIST:
    case QTYPE_DICT:
        /* Device properties are scalars; objects take lists (authz-list's rules). */
        if (depth < 0 || depth > 4 || v->items->len == 0) {
            break;
        }
        for (guint i = 0; i < v->items->len; i++) {
            g_autofree char *sub = v->keys
                ? g_strdup_printf("%s.%s", key, (char *)g_ptr_array_index(v->keys, i))
                : g_strdup_printf("%s.%u", key, i);

            if (!opt_append_value(out, sub, g_ptr_array_index(v->items, i), depth + 1, errp)) {
                return false;
            }
        }
        return true;
    default:
        break;
    }
    g_set_error(errp, VCCID_ERROR, 0, "Invalid parameter type for '%s', expected: string", key);
    return false;
}

/*
 * "first,key=value,..." from args; first is the member named first_key.
 * nested: objects and arrays become dotted keys; else they are refused.
 */
static char *opts_from_args(const QObject *args, const char *first_key, bool nested,
                            GError **errp)
{
    g_autoptr(GString) out = g_string_new(NULL);

    opt_append(out, NULL, qdict_get_str(args, first_key));
    for (guint i = 0; i < args->keys->len; i++) {
        const char *key = g_ptr_array_index(args->keys, i);

        if (strcmp(key, first_key) != 0 &&
            !opt_append_value(out, key, g_ptr_array_index(args->items, i), nested ? 0 : -1,
                              errp)) {
            return NULL;
        }
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}

/* ---- QEMU's commands ---- */

QObject *qmp_version_info(void)
{
    QObject *ret = qdict_new();
    QObject *triple = qdict_new();
    unsigned major = 0, minor = 0, micro = 0;

    sscanf(VCCID_VERSION, "%u.%u.%u", &major, &minor, &micro);
    qdict_put(triple, "micro", qint_new(micro));
    qdict_put(triple, "minor", qint_new(minor));
    qdict_put(triple, "major", qint_new(major));
    /* QMP calls the program's version "qemu"; vccid reports its own there. */
    qdict_put(ret, "qemu", triple);
    qdict_put(ret, "package", qstring_new("vccid " VCCID_VERSION));
    return ret;
}

static QObject *qmp_query_version(const QObject *args, GError **errp)
{
    return qmp_version_info();
}

static QObject *qmp_query_commands(const QObject *args, GError **errp)
{
    QObject *ret = qlist_new();

    for (const QmpCommand *c = qmp_commands; c->name; c++) {
        QObject *info = qdict_new();

        qdict_put(info, "name", qstring_new(c->name));
        qlist_append(ret, info);
    }
    return ret;
}

static QObject *qmp_query_status(const QObject *args, GError **errp)
{
    QObject *ret = qdict_new();

    /* vccid has no guest to pause: it runs until it shuts down. */
    qdict_put(ret, "status", qstring_new(runstate_shutdown_requested() ? "shutdown" : "running"));
    qdict_put(ret, "singlestep", qbool_new(false));
    qdict_put(ret, "running", qbool_new(!runstate_shutdown_requested()));
    return ret;
}

static QObject *qmp_quit(const QObject *args, GError **errp)
{
    qemu_system_shutdown_request("host-qmp-quit");
    return NULL;
}

static QObject *qmp_device_add(const QObject *args, GError **errp)
{
    g_autofree char *optstr = opts_from_args(args, "driver", false, errp);

    if (!optstr || !device_create_from_string(optstr, errp)) {
        return NULL;
    }
    return NULL;
}

/* Generated ids are "<driver>.<n>"; QEMU puts such devices under peripheral-anon. */
static bool device_id_is_generated(const DeviceState *dev)
{
    size_t n = strlen(dev->klass->name);

    return strncmp(dev->id, dev->klass->name, n) == 0 && dev->id[n] == '.' &&
           dev->id[n + 1] && strspn(dev->id + n + 1, "0123456789") == strlen(dev->id + n + 1);
}

static char *device_path(const DeviceState *dev)
{
    return g_strdup_printf("%s%s", device_id_is_generated(dev) ? PERIPHERAL_ANON_PATH
                                                               : PERIPHERAL_PATH, dev->id);
}

/* A device by id, or by its QOM path. */
static DeviceState *device_lookup(const char *name)
{
    if (g_str_has_prefix(name, PERIPHERAL_PATH)) {
        name += strlen(PERIPHERAL_PATH);
    } else if (g_str_has_prefix(name, PERIPHERAL_ANON_PATH)) {
        name += strlen(PERIPHERAL_ANON_PATH);
    }
    return device_find(name);
}

/*
 * DEVICE_DELETED for each (id or NULL, path) pair, from the main loop: QEMU
 * answers device_del first and reports the deletion after.
 */
static gboolean device_deleted_events(gpointer opaque)
{
    GPtrArray *gone = opaque;

    for (guint i = 0; i < gone->len; i += 2) {
        QObject *data = qdict_new();

        if (gone->pdata[i]) {
            qdict_put(data, "device", qstring_new(gone->pdata[i]));
        }
        qdict_put(data, "path", qstring_new(gone->pdata[i + 1]));
        qmp_event_send("DEVICE_DELETED", data);
    }
    return G_SOURCE_REMOVE;
}

static QObject *qmp_device_del(const QObject *args, GError **errp)
{
    const char *id = qdict_get_str(args, "id");
    DeviceState *dev = device_lookup(id);
    GPtrArray *gone;

    if (!dev) {
        g_set_error(errp, VCCID_ERROR, QMP_ERROR_CLASS_DEVICE_NOT_FOUND,
                    "Device '%s' not found", id);
        return NULL;
    }
    /* The devices on its buses go with it, and are reported first, as QEMU does. */
    gone = g_ptr_array_new_with_free_func(g_free);
    for (const GList *l = device_list(); l; l = l->next) {
        DeviceState *child = l->data;

        if (child->parent_bus && child->parent_bus->parent == dev) {
            g_ptr_array_add(gone, device_id_is_generated(child) ? NULL : g_strdup(child->id));
            g_ptr_array_add(gone, device_path(child));
        }
    }
    g_ptr_array_add(gone, device_id_is_generated(dev) ? NULL : g_strdup(dev->id));
    g_ptr_array_add(gone, device_path(dev));
    if (object_is_usb_device(dev)) {
        export_del_device(dev);
    }
    device_free(dev);
    g_idle_add_full(G_PRIORITY_DEFAULT, device_deleted_events, gone,
                    (GDestroyNotify)g_ptr_array_unref);
    return NULL;
}

/* ChardevBackend {"type": "socket", "data": ChardevSocket} as socket options. */
static bool chardev_socket_opts(GString *out, const QObject *data, GError **errp)
{
    static const char *const flags[] = { "server", "wait", "nodelay", NULL };
    /* owner, group and mode (octal digits in a string, as on the command line) are vccid's. */
    static const char *const strs[] = { "tls-creds", "tls-authz", "owner", "group", "mode", NULL };
    const QObject *addr = qdict_get(data, "addr");
    const QObject *inner = qdict_get(addr, "data");
    const char *type = qdict_get_str(addr, "type");
    const QObject *v;

    if (!addr || addr->type != QTYPE_DICT || !type || !inner || inner->type != QTYPE_DICT) {
        g_set_error(errp, VCCID_ERROR, 0, "Parameter 'backend.data.addr' is missing or is not "
                    "a SocketAddressLegacy ({\"type\": \"unix\"|\"inet\", \"data\": {...}})");
        return false;
    }
    if (strcmp(type, "unix") == 0 && qdict_get_str(inner, "path")) {
        opt_append(out, "path", qdict_get_str(inner, "path"));
    } else if (strcmp(type, "inet") == 0 && qdict_get_str(inner, "port")) {
        opt_append(out, "host", qdict_get_str(inner, "host") ? qdict_get_str(inner, "host") : "");
        opt_append(out, "port", qdict_get_str(inner, "port"));
    } else {
        g_set_error(errp, VCCID_ERROR, 0, "socket address type '%s' is not supported here "
                    "(unix with 'path', or inet with 'host' and 'port')", type);
        return false;
    }
    for (guint i = 0; i < data->keys->len; i++) {
        const char *key = g_ptr_array_index(data->keys, i);
        bool known = strcmp(key, "addr") == 0 || strcmp(key, "reconnect") == 0;

        for (int j = 0; flags[j]; j++) {
            known |= strcmp(key, flags[j]) == 0;
        }
        for (int j = 0; strs[j]; j++) {
            known |= strcmp(key, strs[j]) == 0;
        }
        if (!known) {
            g_set_error(errp, VCCID_ERROR, 0, "Parameter 'backend.data.%s' is unexpected", key);
            return false;
        }
    }
    for (int j = 0; flags[j]; j++) {
        v = qdict_get(data, flags[j]);
        if (v && v->type != QTYPE_BOOL) {
            g_set_error(errp, VCCID_ERROR, 0, "Invalid parameter type for 'backend.data.%s', "
                        "expected: boolean", flags[j]);
            return false;
        }
        if (v) {
            opt_append(out, flags[j], v->u.b ? "on" : "off");
        }
    }
    for (int j = 0; strs[j]; j++) {
        v = qdict_get(data, strs[j]);
        if (v && v->type != QTYPE_STRING) {
            g_set_error(errp, VCCID_ERROR, 0, "Invalid parameter type for 'backend.data.%s', "
                        "expected: string", strs[j]);
            return false;
        }
        if (v) {
            opt_append(out, strs[j], v->u.s);
        }
    }
    v = qdict_get(data, "reconnect");
    if (v && (v->type != QTYPE_INT || v->u.i < 0 || v->u.i > 3600)) {
        g_set_error(errp, VCCID_ERROR, 0, "Invalid parameter type for 'backend.data.reconnect', "
                    "expected: integer (0..3600)");
        return false;
    }
    if (v) {
        g_string_append_printf(out, ",reconnect=%" G_GINT64_FORMAT, v->u.i);
    }
    return true;
}

static QObject *qmp_chardev_add(const QObject *args, GError **errp)
{
    const char *id = qdict_get_str(args, "id");
    const QObject *backend = qdict_get(args, "backend");
    const char *type = qdict_get_str(backend, "type");
    const QObject *data = qdict_get(backend, "data");
    g_autoptr(GString) opts = g_string_new("socket");

    if (!type) {
        g_set_error(errp, VCCID_ERROR, 0, "Parameter 'backend.type' is missing");
        return NULL;
    }
    if (strcmp(type, "socket") != 0) {
        g_set_error(errp, VCCID_ERROR, 0, "chardev backend type '%s' is not supported "
                    "(vccid has socket chardevs only)", type);
        return NULL;
    }
    if (!data || data->type != QTYPE_DICT) {
        g_set_error(errp, VCCID_ERROR, 0, "Parameter 'backend.data' is missing");
        return NULL;
    }
    if (chardev_find(id)) {
        g_set_error(errp, VCCID_ERROR, 0, "Chardev '%s' already exists", id);
        return NULL;
    }
    opt_append(opts, "id", id);
    if (!chardev_socket_opts(opts, data, errp) || !chardev_new_from_string(opts->str, errp)) {
        return NULL;
    }
    return NULL;
}

static QObject *qmp_chardev_remove(const QObject *args, GError **errp)
{
    chardev_remove(qdict_get_str(args, "id"), errp);
    return NULL;
}

static QObject *qmp_object_add(const QObject *args, GError **errp)
{
    g_autofree char *optstr = opts_from_args(args, "qom-type", true, errp);

    if (optstr) {
        object_create_from_string(optstr, errp);
    }
    return NULL;
}

static QObject *qmp_object_del(const QObject *args, GError **errp)
{
    const char *id = qdict_get_str(args, "id");
    if (chardev_uses_object(id)) {
        g_set_error(errp, VCCID_ERROR, 0, "object '%s' is in use, can not be deleted", id);
        return NULL;
    }
    object_del(id, errp);
    return NULL;
}

static QObject *prop_info(const char *name, const char *type)
{
    QObject *info = qdict_new();

    qdict_put(info, "name", qstring_new(name));
    qdict_put(info, "type", qstring_new(type));
    return info;
}

/* The type qom-list reports: as -device help says, but a chardev is named by its id there. */
static const char *prop_qom_type(PropertyType type)
{
    return type == PROP_TYPE_CHARDEV ? "str" : prop_type_name(type);
}

static QObject *qmp_qom_list(const QObject *args, GError **errp)
{
    const char *path = qdict_get_str(args, "path");
    QObject *ret = qlist_new();
    DeviceState *dev;

    if (strcmp(path, "/") == 0) {
        qlist_append(ret, prop_info("type", "string"));
        qlist_append(ret, prop_info("machine", "child<container>"));
        qlist_append(ret, prop_info("objects", "child<container>"));
        return ret;
    }
    if (strcmp(path, "/machine") == 0) {
        qlist_append(ret, prop_info("type", "string"));
        qlist_append(ret, prop_info("peripheral", "child<container>"));
        qlist_append(ret, prop_info("peripheral-anon", "child<container>"));
        return ret;
    }
    if (strcmp(path, "/machine/peripheral") == 0 || strcmp(path, "/machine/peripheral-anon") == 0) {
        bool anon = g_str_has_suffix(path, "-anon");

        qlist_append(ret, prop_info("type", "string"));
        for (const GList *l = device_list(); l; l = l->next) {
            DeviceState *d = l->data;
            g_autofree char *t = g_strdup_printf("child<%s>", d->klass->name);

            if (device_id_is_generated(d) == anon) {
                qlist_append(ret, prop_info(d->id, t));
            }
        }
        return ret;
    }
    if (strcmp(path, "/objects") == 0) {
        GPtrArray *objs = object_list();

        qlist_append(ret, prop_info("type", "string"));
        for (guint i = 0; i < objs->len; i++) {
            Object *o = g_ptr_array_index(objs, i);
            g_autofree char *t = g_strdup_printf("child<%s>", o->klass->name);

            qlist_append(ret, prop_info(o->id, t));
        }
        return ret;
    }
    dev = g_str_has_prefix(path, "/machine/") ? device_lookup(path) : NULL;
    if (!dev) {
        qobject_free(ret);
        g_set_error(errp, VCCID_ERROR, QMP_ERROR_CLASS_DEVICE_NOT_FOUND,
                    "Device '%s' not found", path);
        return NULL;
    }
    qlist_append(ret, prop_info("type", "string"));
    qlist_append(ret, prop_info("realized", "bool"));
    if (dev->parent_bus) {
        qlist_append(ret, prop_info("parent_bus", "link<bus>"));
    }
    for (const Property *p = dev->klass->props; p && p->name; p++) {
        qlist_append(ret, prop_info(p->name, prop_qom_type(p->type)));
    }
    return ret;
}

static QObject *qmp_qom_get(const QObject *args, GError **errp)
{
    const char *path = qdict_get_str(args, "path");
    const char *name = qdict_get_str(args, "property");
    DeviceState *dev = g_str_has_prefix(path, "/machine/") ? device_lookup(path) : NULL;
    void *field;

    if (!dev) {
        g_set_error(errp, VCCID_ERROR, QMP_ERROR_CLASS_DEVICE_NOT_FOUND,
                    "Device '%s' not found", path);
        return NULL;
    }
    if (strcmp(name, "type") == 0) {
        return qstring_new(dev->klass->name);
    }
    if (strcmp(name, "realized") == 0) {
        return qbool_new(dev->realized);
    }
    if (strcmp(name, "parent_bus") == 0 && dev->parent_bus) {
        return qstring_new(dev->parent_bus->name);
    }
    for (const Property *p = dev->klass->props; p && p->name; p++) {
        if (strcmp(p->name, name) != 0) {
            continue;
        }
        field = (char *)dev + p->offset;
        switch (p->type) {
        case PROP_TYPE_STRING:
            return qstring_new(*(char **)field ? *(char **)field : "");
        case PROP_TYPE_BOOL:
            return qbool_new(*(bool *)field);
        case PROP_TYPE_UINT8:
            return qint_new(*(uint8_t *)field);
        case PROP_TYPE_UINT16:
            return qint_new(*(uint16_t *)field);
        case PROP_TYPE_UINT32:
            return qint_new(*(uint32_t *)field);
        case PROP_TYPE_CHARDEV:
            return qstring_new(*(Chardev **)field ? chardev_get_id(*(Chardev **)field) : "");
        }
    }
    g_set_error(errp, VCCID_ERROR, 0, "Property '%s.%s' not found", dev->klass->name, name);
    return NULL;
}

/* ---- vccid's own commands ---- */

static QObject *qmp_vccid_export_add(const QObject *args, GError **errp)
{
    g_autofree char *optstr = opts_from_args(args, "type", false, errp);

    if (optstr) {
        export_create_from_string(optstr, errp);
    }
    return NULL;
}

static QObject *qmp_vccid_export_del(const QObject *args, GError **errp)
{
    export_del(qdict_get_str(args, "id"), errp);
    return NULL;
}

static void export_info_append(const ExportInfo *info, void *opaque)
{
    QObject *e = qdict_new();

    qdict_put(e, "type", qstring_new(info->type));
    qdict_put(e, "id", qstring_new(info->id));
    qdict_put(e, "device", qstring_new(info->device));
    if (info->chardev) {
        qdict_put(e, "chardev", qstring_new(info->chardev));
    }
    qdict_put(e, "address", qstring_new(info->peer));
    qdict_put(e, "connected", qbool_new(info->connected));
    qdict_put(e, "attached", qbool_new(info->attached));
    qlist_append(opaque, e);
}

static QObject *qmp_query_vccid_exports(const QObject *args, GError **errp)
{
    QObject *ret = qlist_new();

    export_foreach(export_info_append, ret);
    return ret;
}

typedef struct ReaderExports {
    const char *device;
    QObject *list;
} ReaderExports;

static void reader_export_append(const ExportInfo *info, void *opaque)
{
    ReaderExports *re = opaque;

    if (strcmp(info->device, re->device) == 0) {
        export_info_append(info, re->list);
    }
}

static QObject *card_info(DeviceState *card)
{
    CCIDCardState *c = CCID_CARD(card);
    QObject *info = qdict_new();
    QObject *peers = qlist_new();
    uint32_t len = 0;
    const uint8_t *atr = CCID_CARD_GET_CLASS(c)->get_atr(c, &len);

    qdict_put(info, "slot", qint_new(c->slot));
    qdict_put(info, "card", qstring_new(card->id));
    qdict_put(info, "driver", qstring_new(card->klass->name));
    qdict_put(info, "present", qbool_new(atr && len));
    if (atr && len) {
        GString *hex = g_string_new(NULL);

        for (uint32_t i = 0; i < len; i++) {
            g_string_append_printf(hex, "%02x", atr[i]);
        }
        qdict_put(info, "atr", qstring_take(g_string_free(hex, FALSE)));
    }
    /* A card lent over a chardev (ccid-card-passthru): who lends it. */
    for (const Property *p = card->klass->props; p && p->name; p++) {
        Chardev *chr;
        QObject *peer;

        if (p->type != PROP_TYPE_CHARDEV || !(chr = *(Chardev **)((char *)card + p->offset))) {
            continue;
        }
        peer = qdict_new();
        qdict_put(peer, "chardev", qstring_new(chardev_get_id(chr)));
        qdict_put(peer, "address", qstring_new(chardev_describe(chr)));
        qdict_put(peer, "connected", qbool_new(chr_fe_is_connected(chr)));
        qlist_append(peers, peer);
    }
    qdict_put(info, "peers", peers);
    return info;
}

static QObject *qmp_query_vccid_readers(const QObject *args, GError **errp)
{
    QObject *ret = qlist_new();

    for (const GList *l = device_list(); l; l = l->next) {
        DeviceState *dev = l->data;
        QObject *reader, *slots;
        ReaderExports re;

        if (!object_is_usb_device(dev)) {
            continue;
        }
        reader = qdict_new();
        slots = qlist_new();
        qdict_put(reader, "id", qstring_new(dev->id));
        qdict_put(reader, "driver", qstring_new(dev->klass->name));
        for (const GList *c = device_list(); c; c = c->next) {
            DeviceState *card = c->data;

            if (card->parent_bus && card->parent_bus->parent == dev &&
                device_is_a(card, TYPE_CCID_CARD)) {
                qlist_append(slots, card_info(card));
            }
        }
        qdict_put(reader, "cards", slots);
        re.device = dev->id;
        re.list = qlist_new();
        export_foreach(reader_export_append, &re);
        qdict_put(reader, "exports", re.list);
        qlist_append(ret, reader);
    }
    return ret;
}

/* ---- the table ---- */

static const QmpArg args_none[] = { { NULL } };
static const QmpArg args_capabilities[] = { { "enable", QTYPE_LIST, true }, { NULL } };
static const QmpArg args_id[] = { { "id", QTYPE_STRING, false }, { NULL } };
static const QmpArg args_device_add[] = {
    { "driver", QTYPE_STRING, false }, { "bus", QTYPE_STRING, true },
    { "id", QTYPE_STRING, true }, { NULL }
};
static const QmpArg args_chardev_add[] = {
    { "id", QTYPE_STRING, false }, { "backend", QTYPE_DICT, false }, { NULL }
};
static const QmpArg args_object_add[] = {
    { "qom-type", QTYPE_STRING, false }, { "id", QTYPE_STRING, false }, { NULL }
};
static const QmpArg args_qom_list[] = { { "path", QTYPE_STRING, false }, { NULL } };
static const QmpArg args_qom_get[] = {
    { "path", QTYPE_STRING, false }, { "property", QTYPE_STRING, false }, { NULL }
};
static const QmpArg args_export_add[] = {
    { "type", QTYPE_STRING, false }, { "id", QTYPE_STRING, false },
    { "chardev", QTYPE_STRING, true }, { "device", QTYPE_STRING, true },
    { "host", QTYPE_STRING, true }, { "port", -1, true }, { NULL }
};

const QmpCommand qmp_commands[] = {
    { "qmp_capabilities", NULL, args_capabilities },
    { "query-version", qmp_query_version, args_none },
    { "query-commands", qmp_query_commands, args_none },
    { "query-status", qmp_query_status, args_none },
    { "quit", qmp_quit, args_none },
    { "device_add", qmp_device_add, args_device_add, .extra_args = true },
    { "device_del", qmp_device_del, args_id },
    { "chardev-add", qmp_chardev_add, args_chardev_add },
    { "chardev-remove", qmp_chardev_remove, args_id },
    { "object-add", qmp_object_add, args_object_add, .extra_args = true },
    { "object-del", qmp_object_del, args_id },
    { "qom-list", qmp_qom_list, args_qom_list },
    { "qom-get", qmp_qom_get, args_qom_get },
    { "vccid-export-add", qmp_vccid_export_add, args_export_add },
    { "vccid-export-del", qmp_vccid_export_del, args_id },
    { "query-vccid-exports", qmp_query_vccid_exports, args_none },
    { "query-vccid-readers", qmp_query_vccid_readers, args_none },
    { NULL }
};

const QmpCommand *qmp_command_find(const char *name)
{
    for (const QmpCommand *c = qmp_commands; c->name; c++) {
        if (strcmp(c->name, name) == 0) {
            return c;
        }
    }
    return NULL;
}
