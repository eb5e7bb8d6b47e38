/*
 * Serialising USB descriptors and answering the standard requests
 * (USB 2.0, chapter 9).
 */
#include "hw/usb/desc.h"

#include <string.h>

#include "trace.h"

const USBDescDevice *usb_desc_for_speed(const USBDevice *dev)
{
    if (dev->speed == USB_SPEED_HIGH && dev->desc->high) {
        return dev->desc->high;
    }
    return dev->desc->full;
}

/*
 * The descriptors of the speed we are not running at, for the qualifier and
 * other-speed requests. Only a device running at high speed has them: at
 * full speed ours is a full-speed-only device (it cannot switch speed
 * without being exported anew), and USB 2.0 9.6.2 has such a device refuse
 * GET_DESCRIPTOR(DEVICE_QUALIFIER).
 */
static const USBDescDevice *usb_desc_other_speed(const USBDevice *dev)
{
    return dev->speed == USB_SPEED_HIGH ? dev->desc->full : NULL;
}

/* bmAttributes bit 6 of the active (or first) configuration. */
static bool usb_desc_self_powered(const USBDevice *dev)
{
    const USBDescDevice *cur = usb_desc_for_speed(dev);

    for (int i = 0; i < cur->bNumConfigurations; i++) {
        if (cur->confs[i].bConfigurationValue == dev->configuration) {
            return cur->confs[i].bmAttributes & 0x40;
        }
    }
    return cur->confs[0].bmAttributes & 0x40;
}

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = v & 0xff;
    p[1] = v >> 8;
}

/* Append bytes to dest if they fit in len; always count them. */
typedef struct DescWriter {
    uint8_t *dest;
    size_t len;
    size_t pos;
} DescWriter;

static void desc_put(DescWriter *w, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++, w->pos++) {
        if (w->pos < w->len) {
            w->dest[w->pos] = src[i];
        }
    }
}

int usb_desc_device(const USBDescID *id, const USBDescDevice *dev, uint8_t *dest, size_t len)
{
    uint8_t d[18] = {
        18, USB_DT_DEVICE, 0, 0,
        dev->bDeviceClass, dev->bDeviceSubClass, dev->bDeviceProtocol, dev->bMaxPacketSize0,
        0, 0, 0, 0, 0, 0,
        id->iManufacturer, id->iProduct, id->iSerialNumber, dev->bNumConfigurations,
    };
    DescWriter w = { dest, len, 0 };

    put_le16(d + 2, dev->bcdUSB);
    put_le16(d + 8, id->idVendor);
    put_le16(d + 10, id->idProduct);
    put_le16(d + 12, id->bcdDevice);
    desc_put(&w, d, sizeof(d));
    return w.pos;
}

static void usb_desc_put_iface(DescWriter *w, const USBDescIface *iface)
{
    uint8_t d[9] = {
        9, USB_DT_INTERFACE, iface->bInterfaceNumber, iface->bAlternateSetting,
        iface->bNumEndpoints, iface->bInterfaceClass, iface->bInterfaceSubClass,
        iface->bInterfaceProtocol, iface->iInterface,
    };

    desc_put(w, d, sizeof(d));
    for (int i = 0; i < iface->ndesc; i++) {
        desc_put(w, iface->descs[i].data, iface->descs[i].length);
    }
    for (int i = 0; i < iface->bNumEndpoints; i++) {
        const USBDescEndpoint *ep = &iface->eps[i];
        uint8_t e[7] = { 7, USB_DT_ENDPOINT, ep->bEndpointAddress, ep->bmAttributes,
                         0, 0, ep->bInterval };

        put_le16(e + 4, ep->wMaxPacketSize);
        desc_put(w, e, sizeof(e));
    }
}

int usb_desc_config(const USBDescConfig *conf, bool other_speed, uint8_t *dest, size_t len)
{
    uint8_t d[9] = {
        9, other_speed ? USB_DT_OTHER_SPEED_CONFIG : USB_DT_CONFIG, 0, 0,
        conf->bNumInterfaces, conf->bConfigurationValue, conf->iConfiguration,
        conf->bmAttributes, conf->bMaxPower,
    };
    DescWriter w = { dest, len, 0 };

    desc_put(&w, d, sizeof(d));
    for (int i = 0; i < conf->nif; i++) {
        usb_desc_put_iface(&w, &conf->ifs[i]);
    }
    /* wTotalLength is known only now. */
    if (len >= 4) {
        put_le16(dest + 2, w.pos);
    } else if (len == 3) {
        dest[2] = w.pos & 0xff;
    }
    return w.pos;
}

/* The host picks the index: anything past the table simply does not exist. */
static const char *usb_desc_string_text(USBDevice *dev, int index)
{
    if (index == dev->desc->id.iSerialNumber && dev->serial) {
        return dev->serial;
    }
    return (unsigned)index < dev->desc->nstr ? dev->desc->str[index] : NULL;
}

int usb_desc_string(USBDevice *dev, int index, uint8_t *dest, size_t len)
{
    uint8_t d[2 + 2 * 126];
    const char *s;
    size_t n;
    DescWriter w = { dest, len, 0 };

    if (index == 0) {
        /* Language table: English (United States) only. */
        static const uint8_t langs[] = { 4, USB_DT_STRING, 0x09, 0x04 };

        desc_put(&w, langs, sizeof(langs));
        return w.pos;
    }
    if (!(s = usb_desc_string_text(dev, index))) {
        return -1;
    }
    /* Descriptor strings are UTF-16LE; ours are ASCII, at most 126 chars. */
    n = MIN(strlen(s), 126);
    d[0] = 2 + 2 * n;
    d[1] = USB_DT_STRING;
    for (size_t i = 0; i < n; i++) {
        d[2 + 2 * i] = (uint8_t)s[i] < 0x80 ? s[i] : '?';
        d[3 + 2 * i] = 0;
    }
    desc_put(&w, d, d[0]);
    return w.pos;
}

static int usb_desc_get_descriptor(USBDevice *dev, int value, uint8_t *data, size_t len)
{
    const USBDescDevice *cur = usb_desc_for_speed(dev);
    const USBDescDevice *other = usb_desc_other_speed(dev);
    int type = value >> 8, index = value & 0xff;

    switch (type) {
    case USB_DT_DEVICE:
        return usb_desc_device(&dev->desc->id, cur, data, len);
    case USB_DT_CONFIG:
        if (index >= cur->bNumConfigurations) {
            return -1;
        }
        return usb_desc_config(&cur->confs[index], false, data, len);
    case USB_DT_STRING:
        return usb_desc_string(dev, index, data, len);
    case USB_DT_DEVICE_QUALIFIER: {
        uint8_t q[10] = { 10, USB_DT_DEVICE_QUALIFIER, 0, 0, 0, 0, 0, 0, 0, 0 };
        DescWriter w = { data, len, 0 };

        /* Only a device that can run at high speed has a qualifier. */
        if (!other) {
            return -1;
        }
        put_le16(q + 2, other->bcdUSB);
        q[4] = other->bDeviceClass;
        q[5] = other->bDeviceSubClass;
        q[6] = other->bDeviceProtocol;
        q[7] = other->bMaxPacketSize0;
        q[8] = other->bNumConfigurations;
        desc_put(&w, q, sizeof(q));
        return w.pos;
    }
    case USB_DT_OTHER_SPEED_CONFIG:
        if (!other || index >= other->bNumConfigurations) {
            return -1;
        }
        return usb_desc_config(&other->confs[index], true, data, len);
    default:
        return -1;
    }
}

static bool usb_desc_set_config(USBDevice *dev, int value)
{
    const USBDescDevice *cur = usb_desc_for_speed(dev);

    if (value != 0) {
        bool found = false;

        for (int i = 0; i < cur->bNumConfigurations; i++) {
            found |= cur->confs[i].bConfigurationValue == value;
        }
        if (!found) {
            return false;
        }
    }
    dev->configuration = value;
    usb_desc_init_endpoints(dev);
    if (USB_DEVICE_GET_CLASS(dev)->set_configuration) {
        USB_DEVICE_GET_CLASS(dev)->set_configuration(dev, value);
    }
    return true;
}

static int usb_desc_answer(USBPacket *p, int len, int length)
{
    if (len < 0) {
        return USB_RET_STALL;
    }
    p->actual_length = MIN(len, length);
    return USB_RET_SUCCESS;
}

bool usb_desc_handle_control(USBDevice *dev, USBPacket *p, int request, int value,
                             int index, int length, uint8_t *data)
{
    const char *name = DEVICE(dev)->id;
    bool set = (request & 0xff) == USB_REQ_SET_FEATURE;
    USBEndpointInfo *ep;
    int ret, len;

    switch (request) {
    case DeviceOutRequest | USB_REQ_SET_ADDRESS:
        trace_usb_desc_set_address(name, value);
        dev->addr = value;
        ret = USB_RET_SUCCESS;
        break;
    case DeviceRequest | USB_REQ_GET_DESCRIPTOR:
        len = usb_desc_get_descriptor(dev, value, data, length);
        trace_usb_desc_get_descriptor(name, value >> 8, value & 0xff, length, len);
        ret = usb_desc_answer(p, len, length);
        break;
    case DeviceRequest | USB_REQ_GET_CONFIGURATION:
        trace_usb_desc_get_configuration(name, dev->configuration);
        data[0] = dev->configuration;
        ret = usb_desc_answer(p, 1, length);
        break;
    case DeviceOutRequest | USB_REQ_SET_CONFIGURATION:
        ret = usb_desc_set_config(dev, value) ? USB_RET_SUCCESS : USB_RET_STALL;
        trace_usb_desc_set_configuration(name, value, ret);
        break;
    case DeviceRequest | USB_REQ_GET_STATUS:
        /* USB 2.0 9.4.5: Self Powered agrees with the configuration's bmAttributes. */
        data[0] = (usb_desc_self_powered(dev) << USB_DEVICE_SELF_POWERED) |
                  (dev->remote_wakeup << USB_DEVICE_REMOTE_WAKEUP);
        data[1] = 0;
        ret = usb_desc_answer(p, 2, length);
        trace_usb_desc_get_status(name, USB_RECIP_DEVICE, index, data[0], ret);
        break;
    case DeviceOutRequest | USB_REQ_CLEAR_FEATURE:
    case DeviceOutRequest | USB_REQ_SET_FEATURE:
        if (value != USB_DEVICE_REMOTE_WAKEUP) {
            return false;
        }
        trace_usb_desc_device_feature(name, value, set);
        dev->remote_wakeup = set;
        ret = USB_RET_SUCCESS;
        break;
    case InterfaceRequest | USB_REQ_GET_INTERFACE:
        if (!dev->configuration) {
            ret = USB_RET_STALL;
        } else {
            data[0] = 0;    /* our interfaces have no alternate settings */
            ret = usb_desc_answer(p, 1, length);
        }
        trace_usb_desc_interface(name, index, 0, false, ret);
        break;
    case InterfaceOutRequest | USB_REQ_SET_INTERFACE:
        ret = (dev->configuration && value == 0) ? USB_RET_SUCCESS : USB_RET_STALL;
        trace_usb_desc_interface(name, index, value, true, ret);
        break;
    case InterfaceRequest | USB_REQ_GET_STATUS:
        data[0] = data[1] = 0;
        ret = usb_desc_answer(p, 2, length);
        trace_usb_desc_get_status(name, USB_RECIP_INTERFACE, index, data[0], ret);
        break;
    case EndpointRequest | USB_REQ_GET_STATUS:
        ep = usb_device_ep(dev, (index & USB_DIR_IN) ? USB_TOKEN_IN : USB_TOKEN_OUT, index & 0xf);
        data[0] = ep && ep->halted;
        data[1] = 0;
        ret = ep ? usb_desc_answer(p, 2, length) : USB_RET_STALL;
        trace_usb_desc_get_status(name, USB_RECIP_ENDPOINT, index, data[0], ret);
        break;
    case EndpointOutRequest | USB_REQ_CLEAR_FEATURE:
    case EndpointOutRequest | USB_REQ_SET_FEATURE:
        ep = usb_device_ep(dev, (index & USB_DIR_IN) ? USB_TOKEN_IN : USB_TOKEN_OUT, index & 0xf);
        if (!ep || value != USB_ENDPOINT_HALT) {
            ret = USB_RET_STALL;
        } else {
            ep->halted = set;
            ret = USB_RET_SUCCESS;
        }
        trace_usb_desc_endpoint_feature(name, index, value, set, ret);
        break;
    default:
        return false;
    }
    p->status = ret;
    return true;
}

void usb_desc_init_endpoints(USBDevice *dev)
{
    const USBDescDevice *cur = usb_desc_for_speed(dev);

    memset(dev->ep_in, 0, sizeof(dev->ep_in));
    memset(dev->ep_out, 0, sizeof(dev->ep_out));
    for (int i = 0; i < USB_MAX_ENDPOINTS; i++) {
        dev->ep_in[i].type = dev->ep_out[i].type = USB_ENDPOINT_XFER_INVALID;
    }
    /*
     * Unconfigured, we still describe the first configuration's endpoints:
     * an export announces endpoints before the guest configures the device,
     * as a real device seen through usbredir-host is configured by its host.
     */
    for (int c = 0; c < cur->bNumConfigurations; c++) {
        const USBDescConfig *conf = &cur->confs[c];
        int want = dev->configuration ? dev->configuration : cur->confs[0].bConfigurationValue;

        if (conf->bConfigurationValue != want) {
            continue;
        }
        for (int i = 0; i < conf->nif; i++) {
            const USBDescIface *iface = &conf->ifs[i];

            for (int e = 0; e < iface->bNumEndpoints; e++) {
                const USBDescEndpoint *d = &iface->eps[e];
                USBEndpointInfo *ep = (d->bEndpointAddress & USB_DIR_IN) ?
                    &dev->ep_in[d->bEndpointAddress & 0xf] : &dev->ep_out[d->bEndpointAddress & 0xf];

                ep->type = d->bmAttributes & 0x3;
                ep->max_packet_size = d->wMaxPacketSize;
                ep->interval = d->bInterval;
                ep->ifnum = iface->bInterfaceNumber;
            }
        }
    }
}
