/*
 * USB descriptors as data. A device describes itself with const structs;
 * the descriptor core serialises them for GET_DESCRIPTOR and answers the
 * standard requests.
 */
#ifndef HW_USB_DESC_H
#define HW_USB_DESC_H

#include "hw/usb.h"

typedef struct USBDescID {
    uint16_t idVendor;
    uint16_t idProduct;
    uint16_t bcdDevice;
    uint8_t iManufacturer;
    uint8_t iProduct;
    uint8_t iSerialNumber;
} USBDescID;

typedef struct USBDescOther {
    uint8_t length;          /* of data, the descriptor's own bLength */
    const uint8_t *data;
} USBDescOther;

typedef struct USBDescEndpoint {
    uint8_t bEndpointAddress;
    uint8_t bmAttributes;
    uint16_t wMaxPacketSize;
    uint8_t bInterval;
} USBDescEndpoint;

typedef struct USBDescIface {
    uint8_t bInterfaceNumber;
    uint8_t bAlternateSetting;
    uint8_t bNumEndpoints;
    uint8_t bInterfaceClass;
    uint8_t bInterfaceSubClass;
    uint8_t bInterfaceProtocol;
    uint8_t iInterface;
    uint8_t ndesc;
    const USBDescOther *descs;   /* class descriptors after the interface */
    const USBDescEndpoint *eps;
} USBDescIface;

typedef struct USBDescConfig {
    uint8_t bNumInterfaces;
    uint8_t bConfigurationValue;
    uint8_t iConfiguration;
    uint8_t bmAttributes;
    uint8_t bMaxPower;           /* in 2 mA units */
    uint8_t nif;
    const USBDescIface *ifs;
} USBDescConfig;

typedef struct USBDescDevice {
    uint16_t bcdUSB;
    uint8_t bDeviceClass;
    uint8_t bDeviceSubClass;
    uint8_t bDeviceProtocol;
    uint8_t bMaxPacketSize0;
    uint8_t bNumConfigurations;
    const USBDescConfig *confs;
} USBDescDevice;

struct USBDesc {
    USBDescID id;
    const USBDescDevice *full;
    const USBDescDevice *high;   /* NULL: full speed only */
    const char *const *str;      /* indexed by string number */
    unsigned nstr;               /* entries in str; higher indexes do not exist */
};

/* The descriptor set for the device's current speed. */
const USBDescDevice *usb_desc_for_speed(const USBDevice *dev);
/*
 * Serialise descriptors; return the full length written (at most len bytes
 * are stored) or -1 if the descriptor does not exist.
 */
int usb_desc_device(const USBDescID *id, const USBDescDevice *dev, uint8_t *dest, size_t len);
int usb_desc_config(const USBDescConfig *conf, bool other_speed, uint8_t *dest, size_t len);
int usb_desc_string(USBDevice *dev, int index, uint8_t *dest, size_t len);
/*
 * Handle the standard requests. Returns true if handled (p->status set),
 * false to pass the request on to the device.
 */
bool usb_desc_handle_control(USBDevice *dev, USBPacket *p, int request, int value,
                             int index, int length, uint8_t *data);
/* Fill dev->ep_in/ep_out from the active configuration. */
void usb_desc_init_endpoints(USBDevice *dev);

#endif
