/*
 * A small device model in the spirit of QEMU's qdev: classes registered by
 * name, instances created from "-device DRIVER,key=value" options, typed
 * properties stored at fixed offsets in the instance, buses that hold a
 * bounded number of children, and realize/unrealize with GError reporting.
 */
#ifndef HW_QDEV_H
#define HW_QDEV_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qemu/error.h"

typedef struct DeviceState DeviceState;
typedef struct DeviceClass DeviceClass;
typedef struct BusState BusState;
typedef struct Chardev Chardev;

typedef enum PropertyType {
    PROP_TYPE_STRING,   /* char *, owned by the instance */
    PROP_TYPE_BOOL,     /* bool, "on|off|true|false|yes|no" */
    PROP_TYPE_UINT8,
    PROP_TYPE_UINT16,
    PROP_TYPE_UINT32,
    PROP_TYPE_CHARDEV,  /* Chardev *, looked up by -chardev id */
} PropertyType;

typedef struct Property {
    const char *name;
    PropertyType type;
    size_t offset;
    const char *defval;         /* default as it would be typed, or NULL */
    const char *description;
} Property;

#define DEFINE_PROP(_name, _state, _field, _type, _def, _desc) \
    { .name = (_name), .type = (_type), .offset = offsetof(_state, _field), \
      .defval = (_def), .description = (_desc) }
#define DEFINE_PROP_STRING(n, s, f, d, desc)  DEFINE_PROP(n, s, f, PROP_TYPE_STRING, d, desc)
#define DEFINE_PROP_BOOL(n, s, f, d, desc)    DEFINE_PROP(n, s, f, PROP_TYPE_BOOL, d, desc)
#define DEFINE_PROP_UINT8(n, s, f, d, desc)   DEFINE_PROP(n, s, f, PROP_TYPE_UINT8, d, desc)
#define DEFINE_PROP_UINT16(n, s, f, d, desc)  DEFINE_PROP(n, s, f, PROP_TYPE_UINT16, d, desc)
#define DEFINE_PROP_UINT32(n, s, f, d, desc)  DEFINE_PROP(n, s, f, PROP_TYPE_UINT32, d, desc)
#define DEFINE_PROP_CHR(n, s, f, desc)        DEFINE_PROP(n, s, f, PROP_TYPE_CHARDEV, NULL, desc)
#define DEFINE_PROP_END_OF_LIST()             { .name = NULL }

/* A property type's name as -device help shows it (QEMU's: str, bool, uint8, chardev, ...). */
const char *prop_type_name(PropertyType type);

/*
 * A class is static const data. Subclasses embed DeviceClass as their first
 * member, so a DeviceClass pointer can be cast to the subclass. parent_type
 * names the abstract kind the class is (TYPE_USB_DEVICE, TYPE_CCID_CARD):
 * what code that finds a device on a list may treat it as.
 */
struct DeviceClass {
    const char *name;            /* the -device driver name */
    const char *parent_type;     /* abstract kind it is, NULL: none */
    const char *desc;            /* one line for "-device help" */
    size_t instance_size;        /* >= sizeof(DeviceState) */
    const char *bus_type;        /* bus this device plugs into, NULL: none */
    const Property *props;       /* terminated by DEFINE_PROP_END_OF_LIST */
    bool user_creatable;         /* listed and accepted by -device */

    bool (*realize)(DeviceState *dev, GError **errp);
    void (*unrealize)(DeviceState *dev);
};

/* What a bus's owner does as children come and go. Both optional. */
typedef struct BusOps {
    /* Before the child's realize: take note of it, or refuse it (errp). */
    bool (*plug)(BusState *bus, DeviceState *child, GError **errp);
    /* After the child's unrealize, or after its realize failed. */
    void (*unplug)(BusState *bus, DeviceState *child);
} BusOps;

struct BusState {
    char *name;                  /* "<parent id>.0" or "<type>.<n>" */
    const char *type;            /* e.g. TYPE_CCID_BUS */
    const BusOps *ops;           /* NULL: children need no bookkeeping */
    DeviceState *parent;
    GList *children;             /* DeviceState *, in plug order */
    unsigned max_children;       /* 0: unbounded */
};

struct DeviceState {
    const DeviceClass *klass;
    char *id;                    /* user id or generated "<driver>.<n>" */
    BusState *parent_bus;
    bool realized;
};

#define DEVICE(obj) ((DeviceState *)(obj))
#define DEVICE_GET_CLASS(obj) (DEVICE(obj)->klass)

/* True if dev's class is type, or is of the abstract kind type. */
bool device_is_a(const DeviceState *dev, const char *type);
/*
 * A checked cast, in the spirit of QEMU's OBJECT_CHECK: obj (or NULL) as
 * a C_TYPE, after making sure its class is type_name or of that kind.
 * Anything else is a programming error: abort, naming the caller.
 */
#define DEVICE_CHECK(C_TYPE, obj, type_name) \
    ((C_TYPE *)device_check_cast((obj), (type_name), __FILE__, __LINE__, __func__))
void *device_check_cast(void *obj, const char *type, const char *file, int line,
                        const char *func);

/* Type registry; call from a constructor, as QEMU's type_init() does. */
void device_class_register(const DeviceClass *klass);
const DeviceClass *device_class_find(const char *name);
/* All user-creatable classes sorted by name. Free the list, not the data. */
GList *device_class_list(void);
/* Register a class (DeviceClass, or a subclass that embeds it first) at start-up. */
#define device_class_init(klass) \
    static void __attribute__((constructor)) do_device_class_init_ ## klass(void) \
    { \
        device_class_register((const DeviceClass *)&(klass)); \
    }

/*
 * Create, set properties and realize a device from a -device option string
 * ("driver,id=x,prop=val"). On error nothing is left behind.
 */
DeviceState *device_create_from_string(const char *optstr, GError **errp);
/* Print "-device help" / "-device DRIVER,help" to stdout. */
void device_print_help(const char *driver);
/* True if optstr is a help request ("help", "?", "DRIVER,help"). */
bool device_opts_want_help(const char *optstr);

DeviceState *device_find(const char *id);
/* Realized devices in creation order. */
const GList *device_list(void);
void device_destroy_all(void);

/* Property defaults are applied by device_new(); exposed for unit tests. */
DeviceState *device_new(const char *driver, const char *id, GError **errp);
bool device_set_prop(DeviceState *dev, const char *name, const char *value, GError **errp);
bool device_realize(DeviceState *dev, GError **errp);
void device_free(DeviceState *dev);

/* Buses. A bus belongs to its parent device and dies with it. */
BusState *bus_new(const char *type, DeviceState *parent, unsigned max_children,
                  const BusOps *ops);
void bus_free(BusState *bus);
BusState *bus_find_free(const char *type, const char *name);

#endif
