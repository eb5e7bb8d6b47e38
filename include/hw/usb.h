/*
 * USB device core: the view of a USB device that an export (the host side
 * of the cable) drives. Devices answer control requests and data packets;
 * a data packet the device cannot answer yet completes later (USB_RET_ASYNC)
 * through the port's complete callback.
 */
#ifndef HW_USB_H
#define HW_USB_H

#include "hw/qdev.h"

#define USB_TOKEN_SETUP 0x2d
#define USB_TOKEN_IN    0x69   /* device -> host */
#define USB_TOKEN_OUT   0xe1   /* host -> device */

#define USB_RET_SUCCESS   (0)
#define USB_RET_NODEV     (-1)
#define USB_RET_NAK       (-2)
#define USB_RET_STALL     (-3)
#define USB_RET_BABBLE    (-4)
#define USB_RET_IOERROR   (-5)
#define USB_RET_ASYNC     (-6)

#define USB_SPEED_LOW   0
#define USB_SPEED_FULL  1
#define USB_SPEED_HIGH  2

#define USB_DIR_OUT 0x00
#define USB_DIR_IN  0x80

#define USB_TYPE_MASK     (0x03 << 5)
#define USB_TYPE_STANDARD (0x00 << 5)
#define USB_TYPE_CLASS    (0x01 << 5)
#define USB_TYPE_VENDOR   (0x02 << 5)
#define USB_RECIP_MASK      0x1f
#define USB_RECIP_DEVICE    0x00
#define USB_RECIP_INTERFACE 0x01
#define USB_RECIP_ENDPOINT  0x02

#define USB_REQ_GET_STATUS        0x00
#define USB_REQ_CLEAR_FEATURE     0x01
#define USB_REQ_SET_FEATURE       0x03
#define USB_REQ_SET_ADDRESS       0x05
#define USB_REQ_GET_DESCRIPTOR    0x06
#define USB_REQ_SET_DESCRIPTOR    0x07
#define USB_REQ_GET_CONFIGURATION 0x08
#define USB_REQ_SET_CONFIGURATION 0x09
#define USB_REQ_GET_INTERFACE     0x0a
#define USB_REQ_SET_INTERFACE     0x0b

/* bmRequestType << 8 | bRequest, as QEMU spells control requests. */
#define DeviceRequest    ((USB_DIR_IN | USB_TYPE_STANDARD | USB_RECIP_DEVICE) << 8)
#define DeviceOutRequest ((USB_DIR_OUT | USB_TYPE_STANDARD | USB_RECIP_DEVICE) << 8)
#define InterfaceRequest ((USB_DIR_IN | USB_TYPE_STANDARD | USB_RECIP_INTERFACE) << 8)
#define InterfaceOutRequest ((USB_DIR_OUT | USB_TYPE_STANDARD | USB_RECIP_INTERFACE) << 8)
#define EndpointRequest  ((USB_DIR_IN | USB_TYPE_STANDARD | USB_RECIP_ENDPOINT) << 8)
#define EndpointOutRequest ((USB_DIR_OUT | USB_TYPE_STANDARD | USB_RECIP_ENDPOINT) << 8)
#define ClassInterfaceRequest ((USB_DIR_IN | USB_TYPE_CLASS | USB_RECIP_INTERFACE) << 8)
#define ClassInterfaceOutRequest ((USB_DIR_OUT | USB_TYPE_CLASS | USB_RECIP_INTERFACE) << 8)

#define USB_DT_DEVICE          0x01
#define USB_DT_CONFIG          0x02
#define USB_DT_STRING          0x03
#define USB_DT_INTERFACE       0x04
#define USB_DT_ENDPOINT        0x05
#define USB_DT_DEVICE_QUALIFIER 0x06
#define USB_DT_OTHER_SPEED_CONFIG 0x07

#define USB_ENDPOINT_XFER_CONTROL 0
#define USB_ENDPOINT_XFER_ISOC    1
#define USB_ENDPOINT_XFER_BULK    2
#define USB_ENDPOINT_XFER_INT     3
#define USB_ENDPOINT_XFER_INVALID 255

#define USB_MAX_ENDPOINTS 16
#define USB_MAX_CONTROL_DATA 4096

#define USB_DEVICE_SELF_POWERED   0
#define USB_DEVICE_REMOTE_WAKEUP  1
#define USB_ENDPOINT_HALT         0

typedef struct USBDevice USBDevice;
typedef struct USBPort USBPort;
typedef struct USBPacket USBPacket;
typedef struct USBDesc USBDesc;

struct USBPacket {
    int pid;                 /* USB_TOKEN_IN / USB_TOKEN_OUT */
    uint8_t ep;              /* endpoint number, 1..15, without direction */
    uint64_t id;             /* the export's handle for this packet */
    uint8_t *data;           /* IN: buffer of size bytes; OUT: payload */
    size_t size;
    size_t actual_length;    /* bytes moved */
    int status;              /* USB_RET_* */
    bool async;              /* completion pending in the device */
};

typedef struct USBPortOps {
    /* An async packet finished; p->status and p->actual_length are set. */
    void (*complete)(USBPort *port, USBPacket *p);
    /* The device has data for an interrupt-in endpoint (ep number). */
    void (*wakeup)(USBPort *port, uint8_t ep);
} USBPortOps;

struct USBPort {
    const USBPortOps *ops;
    void *opaque;
    int speed;               /* speed the export offers the device at */
};

typedef struct USBEndpointInfo {
    uint8_t type;            /* USB_ENDPOINT_XFER_* */
    uint16_t max_packet_size;
    uint8_t interval;
    uint8_t ifnum;
    bool halted;
} USBEndpointInfo;

typedef struct USBDeviceClass {
    DeviceClass parent_class;
    /* Bus reset or port reset: forget all transient state. */
    void (*handle_reset)(USBDevice *dev);
    /*
     * Class/vendor control requests the descriptor core did not handle.
     * Set p->status / p->actual_length. data has room for length bytes
     * (IN) or holds them (OUT).
     */
    void (*handle_control)(USBDevice *dev, USBPacket *p, int request, int value,
                           int index, int length, uint8_t *data);
    /* Bulk and interrupt packets. Set p->status; USB_RET_ASYNC to hold. */
    void (*handle_data)(USBDevice *dev, USBPacket *p);
    /* Forget a held packet; it will not be completed. */
    void (*cancel_packet)(USBDevice *dev, USBPacket *p);
    /* Configuration changed (0 = unconfigured). */
    void (*set_configuration)(USBDevice *dev, int config);
    /* The host side attached (port != NULL) or went away. */
    void (*handle_attach)(USBDevice *dev);
    void (*handle_detach)(USBDevice *dev);
} USBDeviceClass;

#define TYPE_USB_DEVICE "usb-device"
#define USB_DEVICE(obj) DEVICE_CHECK(USBDevice, (obj), TYPE_USB_DEVICE)
#define USB_DEVICE_GET_CLASS(d) ((const USBDeviceClass *)DEVICE_GET_CLASS(USB_DEVICE(d)))

struct USBDevice {
    DeviceState qdev;
    USBPort *port;           /* NULL while no host is attached */
    int speed;               /* USB_SPEED_FULL or USB_SPEED_HIGH */
    uint8_t addr;
    int configuration;       /* 0 = not configured */
    bool remote_wakeup;
    const USBDesc *desc;     /* set by the device before usb_device_realize */
    char *serial;            /* "serial" property; NULL: the descriptor's */
    char *speed_str;         /* "speed" property */
    USBEndpointInfo ep_in[USB_MAX_ENDPOINTS];
    USBEndpointInfo ep_out[USB_MAX_ENDPOINTS];
};

/*
 * Properties every USB device has; devices list them in their own array.
 * The device state must embed its USBDevice as a member named "dev".
 */
#define DEFINE_USB_DEVICE_PROPERTIES(_state) \
    DEFINE_PROP_STRING("serial", _state, dev.serial, NULL, \
                       "iSerialNumber string (default: the device's own)"), \
    DEFINE_PROP_STRING("speed", _state, dev.speed_str, "full", \
                       "bus speed offered to the host: full or high")

/* Devices call this from realize once desc is set. */
bool usb_device_realize(USBDevice *dev, GError **errp);
USBDevice *usb_device_find_first(void);
bool object_is_usb_device(DeviceState *dev);

/* Called by exports. */
void usb_device_attach(USBDevice *dev, USBPort *port);
void usb_device_detach(USBDevice *dev);
void usb_device_reset(USBDevice *dev);
/*
 * A complete control transfer: setup[8] plus data (IN: room for wLength
 * bytes, no more is written; OUT: wLength bytes of payload). Sets p->status
 * and p->actual_length.
 */
void usb_device_handle_control(USBDevice *dev, USBPacket *p, const uint8_t setup[8],
                               uint8_t *data);
/* A bulk or interrupt packet. May leave p->status == USB_RET_ASYNC. */
void usb_device_handle_data(USBDevice *dev, USBPacket *p);
void usb_device_cancel_packet(USBDevice *dev, USBPacket *p);
USBEndpointInfo *usb_device_ep(USBDevice *dev, int pid, uint8_t ep);

/* Called by devices. */
void usb_packet_complete(USBDevice *dev, USBPacket *p);
void usb_wakeup(USBDevice *dev, uint8_t ep);
/* Copy up to p->size - p->actual_length bytes into an IN packet. */
size_t usb_packet_copy_in(USBPacket *p, const void *src, size_t len);

#endif
