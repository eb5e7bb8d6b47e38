/*
 * Device model: class registry, typed properties, buses, realize.
 */
#include "hw/qdev.h"
#include "qemu/id.h"
#include "qemu/option.h"
#include "chardev/char.h"

#include <stdio.h>
#include <string.h>


static GHashTable *device_classes;   /* name -> const DeviceClass * */
static GList *realized_devices;      /* DeviceState *, creation order */
static GList *all_buses;             /* BusState * */
static unsigned anonymous_count;

void device_class_register(const DeviceClass *klass)
{
    if (!device_classes) {
        device_classes = g_hash_table_new(g_str_hash, g_str_equal);
    }
    g_assert(klass->instance_size >= sizeof(DeviceState));
    g_assert(!g_hash_table_contains(device_classes, klass->name));
    g_hash_table_insert(device_classes, (gpointer)klass->name, (gpointer)klass);
}

const DeviceClass *device_class_find(const char *name)
{
    return device_classes ? g_hash_table_lookup(device_classes, name) : NULL;
}

static gint compare_class_names(gconstpointer a, gconstpointer b)
{
    return strcmp(((const DeviceClass *)a)->name, ((const DeviceClass *)b)->name);
}

GList *device_class_list(void)
{
    GList *list = NULL;
    GHashTableIter iter;
    gpointer value;

    if (!device_classes) {
        return NULL;
    }
    g_hash_table_iter_init(&iter, device_classes);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        const DeviceClass *dc = value;

        if (dc->user_creatable) {
            list = g_list_insert_sorted(list, value, compare_class_names);
        }
    }
    return list;
}

bool device_is_a(const DeviceState *dev, const char *type)
{
    const DeviceClass *dc = dev->klass;

    return strcmp(dc->name, type) == 0 || (dc->parent_type && strcmp(dc->parent_type, type) == 0);
}

void *device_check_cast(void *obj, const char *type, const char *file, int line,
                        const char *func)
{
    DeviceState *dev = obj;

    if (dev && !device_is_a(dev, type)) {
        g_error("%s:%d: %s: device '%s' is a %s, not a %s", file, line, func,
                dev->id ? dev->id : "?", dev->klass->name, type);
    }
    return obj;
}

/* ---- properties ---- */

static const Property *prop_find(const DeviceClass *dc, const char *name)
{
    for (const Property *p = dc->props; p && p->name; p++) {
        if (strcmp(p->name, name) == 0) {
            return p;
        }
    }
    return NULL;
}

const char *prop_type_name(PropertyType type)
{
    switch (type) {
    case PROP_TYPE_STRING:  return "str";
    case PROP_TYPE_BOOL:    return "bool";
    case PROP_TYPE_UINT8:   return "uint8";
    case PROP_TYPE_UINT16:  return "uint16";
    case PROP_TYPE_UINT32:  return "uint32";
    case PROP_TYPE_CHARDEV: return "chardev";
    }
    return "?";
}

static bool prop_set_uint(DeviceState *dev, const Property *p, const char *value,
                          GError **errp)
{
    void *field = (char *)dev + p->offset;
    uint64_t max = p->type == PROP_TYPE_UINT8 ? UINT8_MAX :
                   p->type == PROP_TYPE_UINT16 ? UINT16_MAX : UINT32_MAX;
    uint64_t v;

    if (!qemu_opt_parse_uint(value, max, &v)) {
        g_set_error(errp, VCCID_ERROR, 0,
                    "Property '%s.%s' doesn't take value '%s' (expects %s, 0..%" G_GUINT64_FORMAT ")",
                    dev->klass->name, p->name, value, prop_type_name(p->type), max);
        return false;
    }
    switch (p->type) {
    case PROP_TYPE_UINT8:  *(uint8_t *)field = v; break;
    case PROP_TYPE_UINT16: *(uint16_t *)field = v; break;
    default:               *(uint32_t *)field = v; break;
    }
    return true;
}

static bool prop_set_chardev(DeviceState *dev, const Property *p, const char *value,
                             GError **errp)
{
    Chardev **field = (Chardev **)((char *)dev + p->offset);
    Chardev *chr = chardev_find(value);

    if (!chr) {
        g_set_error(errp, VCCID_ERROR, 0,
                    "Property '%s.%s' can't find value '%s' (no -chardev with that id)",
                    dev->klass->name, p->name, value);
        return false;
    }
    if (*field == chr) {
        return true;
    }
    if (!chr_fe_claim(chr, dev->id, errp)) {
        g_prefix_error(errp, "Property '%s.%s' can't take value '%s': ",
                       dev->klass->name, p->name, value);
        return false;
    }
    if (*field) {
        chr_fe_release(*field);
    }
    *field = chr;
    return true;
}

bool device_set_prop(DeviceState *dev, const char *name, const char *value, GError **errp)
{
    const Property *p = prop_find(dev->klass, name);
    void *field;

    if (!p) {
        g_set_error(errp, VCCID_ERROR, 0, "Property '%s.%s' not found (try -device %s,help)",
                    dev->klass->name, name, dev->klass->name);
        return false;
    }
    if (dev->realized) {
        g_set_error(errp, VCCID_ERROR, 0, "Property '%s.%s' cannot be set after realize",
                    dev->klass->name, name);
        return false;
    }
    field = (char *)dev + p->offset;
    switch (p->type) {
    case PROP_TYPE_STRING:
        g_free(*(char **)field);
        *(char **)field = g_strdup(value);
        return true;
    case PROP_TYPE_BOOL:
        if (!qemu_opt_parse_bool(value, (bool *)field)) {
            g_set_error(errp, VCCID_ERROR, 0,
                        "Property '%s.%s' doesn't take value '%s' (expects on or off)",
                        dev->klass->name, name, value);
            return false;
        }
        return true;
    case PROP_TYPE_CHARDEV:
        return prop_set_chardev(dev, p, value, errp);
    default:
        return prop_set_uint(dev, p, value, errp);
    }
}

static void props_release(DeviceState *dev)
{
    for (const Property *p = dev->klass->props; p && p->name; p++) {
        void *field = (char *)dev + p->offset;

        if (p->type == PROP_TYPE_STRING) {
            g_clear_pointer((char **)field, g_free);
        } else if (p->type == PROP_TYPE_CHARDEV && *(Chardev **)field) {
            chr_fe_release(*(Chardev **)field);
            *(Chardev **)field = NULL;
        }
    }
}

/* ---- instances ---- */

DeviceState *device_new(const char *driver, const char *id, GError **errp)
{
    const DeviceClass *dc = device_class_find(driver);
    DeviceState *dev;

    if (!dc || !dc->user_creatable) {
        g_set_error(errp, VCCID_ERROR, 0,
                    "'%s' is not a valid device model name (try -device help)", driver);
        return NULL;
    }
    if (id && !id_wellformed(id)) {
        g_set_error(errp, VCCID_ERROR, 0,
                    "Parameter 'id' expects an identifier (letters, digits, '-', '.', '_', "
                    "starting with a letter), not '%s'", id);
        return NULL;
    }
    if (id && device_find(id)) {
        g_set_error(errp, VCCID_ERROR, 0, "Duplicate device ID '%s'", id);
        return NULL;
    }
    dev = g_malloc0(dc->instance_size);
    dev->klass = dc;
    dev->id = id ? g_strdup(id) : g_strdup_printf("%s.%u", driver, anonymous_count++);
    for (const Property *p = dc->props; p && p->name; p++) {
        if (p->defval && !device_set_prop(dev, p->name, p->defval, errp)) {
            g_error("bad default for %s.%s", dc->name, p->name);
        }
    }
    return dev;
}

static bool device_plug_into_bus(DeviceState *dev, const char *busname, GError **errp)
{
    BusState *bus = bus_find_free(dev->klass->bus_type, busname);

    if (!bus) {
        if (busname) {
            g_set_error(errp, VCCID_ERROR, 0,
                        "Bus '%s' not found or full (device '%s' needs a free %s)",
                        busname, dev->klass->name, dev->klass->bus_type);
        } else {
            g_set_error(errp, VCCID_ERROR, 0,
                        "No free '%s' bus for device '%s' (add a reader before the card, "
                        "one card per reader slot)",
                        dev->klass->bus_type, dev->klass->name);
        }
        return false;
    }
    dev->parent_bus = bus;
    bus->children = g_list_append(bus->children, dev);
    if (bus->ops && bus->ops->plug && !bus->ops->plug(bus, dev, errp)) {
        bus->children = g_list_remove(bus->children, dev);
        dev->parent_bus = NULL;
        return false;
    }
    return true;
}

static void device_unplug_from_bus(DeviceState *dev)
{
    BusState *bus = dev->parent_bus;

    if (bus) {
        if (bus->ops && bus->ops->unplug) {
            bus->ops->unplug(bus, dev);
        }
        bus->children = g_list_remove(bus->children, dev);
        dev->parent_bus = NULL;
    }
}

static bool device_realize_on_bus(DeviceState *dev, const char *busname, GError **errp)
{
    if (dev->klass->bus_type && !device_plug_into_bus(dev, busname, errp)) {
        return false;
    }
    if (dev->klass->realize && !dev->klass->realize(dev, errp)) {
        device_unplug_from_bus(dev);
        return false;
    }
    dev->realized = true;
    realized_devices = g_list_append(realized_devices, dev);
    return true;
}

bool device_realize(DeviceState *dev, GError **errp)
{
    return device_realize_on_bus(dev, NULL, errp);
}

void device_free(DeviceState *dev)
{
    if (!dev) {
        return;
    }
    if (dev->realized) {
        realized_devices = g_list_remove(realized_devices, dev);
        if (dev->klass->unrealize) {
            dev->klass->unrealize(dev);
        }
        dev->realized = false;
    }
    device_unplug_from_bus(dev);
    props_release(dev);
    g_free(dev->id);
    g_free(dev);
}

static bool apply_opts(DeviceState *dev, QemuOpts *opts, GError **errp)
{
    for (guint i = 0; i < opts->opts->len; i++) {
        QemuOpt *opt = g_ptr_array_index(opts->opts, i);

        if (opt->used) {
            continue;
        }
        if (!device_set_prop(dev, opt->key, opt->value, errp)) {
            return false;
        }
        opt->used = true;
    }
    return true;
}

DeviceState *device_create_from_string(const char *optstr, GError **errp)
{
    g_autoptr(QemuOpts) opts = qemu_opts_parse(optstr, "driver", errp);
    const char *driver, *id, *busname;
    DeviceState *dev;

    if (!opts) {
        return NULL;
    }
    driver = opts->implied ? opts->implied : qemu_opt_take(opts, "driver");
    if (!driver || !*driver) {
        g_set_error(errp, VCCID_ERROR, 0, "-device '%s': Parameter 'driver' is missing", optstr);
        return NULL;
    }
    id = qemu_opt_take(opts, "id");
    busname = qemu_opt_take(opts, "bus");
    dev = device_new(driver, id, errp);
    if (!dev) {
        return NULL;
    }
    if (busname && !dev->klass->bus_type) {
        g_set_error(errp, VCCID_ERROR, 0, "Device '%s' does not plug into a bus; drop bus=%s",
                    driver, busname);
        device_free(dev);
        return NULL;
    }
    if (!apply_opts(dev, opts, errp) || !device_realize_on_bus(dev, busname, errp)) {
        device_free(dev);
        return NULL;
    }
    return dev;
}

DeviceState *device_find(const char *id)
{
    for (GList *l = realized_devices; l; l = l->next) {
        DeviceState *dev = l->data;

        if (strcmp(dev->id, id) == 0) {
            return dev;
        }
    }
    return NULL;
}

const GList *device_list(void)
{
    return realized_devices;
}

void device_destroy_all(void)
{
    /* Children before parents: destroy in reverse creation order. */
    while (realized_devices) {
        GList *last = g_list_last(realized_devices);

        device_free(last->data);
    }
}

/* ---- help ---- */

bool device_opts_want_help(const char *optstr)
{
    g_auto(GStrv) parts = g_strsplit(optstr, ",", -1);

    for (int i = 0; parts[i]; i++) {
        if (strcmp(parts[i], "help") == 0 || strcmp(parts[i], "?") == 0) {
            return true;
        }
    }
    return false;
}

static void print_class_props(const DeviceClass *dc)
{
    printf("%s options:\n", dc->name);
    for (const Property *p = dc->props; p && p->name; p++) {
        g_autofree char *left = g_strdup_printf("%s=<%s>", p->name, prop_type_name(p->type));

        printf("  %-24s - %s", left, p->description ? p->description : "");
        if (p->defval) {
            printf(" (default: %s)", p->defval);
        }
        printf("\n");
    }
}

void device_print_help(const char *driver)
{
    if (driver && strcmp(driver, "help") != 0 && strcmp(driver, "?") != 0) {
        const DeviceClass *dc = device_class_find(driver);

        if (!dc || !dc->user_creatable) {
            fprintf(stderr, "vccid: -device %s: not a valid device model name (try -device help)\n",
                    driver);
            return;
        }
        print_class_props(dc);
        return;
    }
    GList *classes = device_class_list();

    printf("Devices:\n");
    for (GList *l = classes; l; l = l->next) {
        const DeviceClass *dc = l->data;

        printf("name \"%s\", bus %s, desc \"%s\"\n", dc->name,
               dc->bus_type ? dc->bus_type : "none (export it with -export)",
               dc->desc ? dc->desc : "");
    }
    g_list_free(classes);
}

/* ---- buses ---- */

BusState *bus_new(const char *type, DeviceState *parent, unsigned max_children,
                  const BusOps *ops)
{
    BusState *bus = g_new0(BusState, 1);

    bus->type = type;
    bus->ops = ops;
    bus->parent = parent;
    bus->max_children = max_children;
    /* As QEMU does: a device's first bus is "<device id>.0". */
    bus->name = g_strdup_printf("%s.0", parent->id);
    all_buses = g_list_append(all_buses, bus);
    return bus;
}

void bus_free(BusState *bus)
{
    if (!bus) {
        return;
    }
    while (bus->children) {
        device_free(bus->children->data);
    }
    all_buses = g_list_remove(all_buses, bus);
    g_free(bus->name);
    g_free(bus);
}

static bool bus_name_matches(BusState *bus, const char *name)
{
    /* Also accept the parent's id alone: bus=ccid for bus "ccid.0". */
    return strcmp(bus->name, name) == 0 || strcmp(bus->parent->id, name) == 0;
}

BusState *bus_find_free(const char *type, const char *name)
{
    for (GList *l = all_buses; l; l = l->next) {
        BusState *bus = l->data;

        if (strcmp(bus->type, type) != 0) {
            continue;
        }
        if (name && !bus_name_matches(bus, name)) {
            continue;
        }
        if (bus->max_children && g_list_length(bus->children) >= bus->max_children) {
            continue;
        }
        return bus;
    }
    return NULL;
}
