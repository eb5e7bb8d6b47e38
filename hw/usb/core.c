/*
 * USB device core: attach/detach to an export's port, reset, dispatch of
 * control and data packets, asynchronous completion.
 */
#include "hw/usb.h"
#include "hw/usb/desc.h"

#include <string.h>

#include "trace.h"

static bool usb_parse_speed(const char *s, int *speed)
{
    if (!s || strcmp(s, "full") == 0) {
        *speed = USB_SPEED_FULL;
    } else if (strcmp(s, "high") == 0) {
        *speed = USB_SPEED_HIGH;
    } else {
        return false;
    }
    return true;
}

bool usb_device_realize(USBDevice *dev, GError **errp)
{
    if (!usb_parse_speed(dev->speed_str, &dev->speed)) {
        g_set_error(errp, VCCID_ERROR, 0,
                    "Property '%s.speed' doesn't take value '%s' (expects full or high)",
                    DEVICE(dev)->klass->name, dev->speed_str);
        return false;
    }
    if (dev->speed == USB_SPEED_HIGH && !dev->desc->high) {
        g_set_error(errp, VCCID_ERROR, 0, "device '%s' has no high-speed descriptors",
                    DEVICE(dev)->klass->name);
        return false;
    }
    if (dev->serial && strlen(dev->serial) > 126) {
        g_set_error(errp, VCCID_ERROR, 0,
                    "Property '%s.serial' is too long (%zu characters, at most 126)",
                    DEVICE(dev)->klass->name, strlen(dev->serial));
        return false;
    }
    usb_desc_init_endpoints(dev);
    return true;
}

bool object_is_usb_device(DeviceState *dev)
{
    return device_is_a(dev, TYPE_USB_DEVICE);
}

USBDevice *usb_device_find_first(void)
{
    for (const GList *l = device_list(); l; l = l->next) {
        if (object_is_usb_device(l->data)) {
            return USB_DEVICE(l->data);
        }
    }
    return NULL;
}

void usb_device_attach(USBDevice *dev, USBPort *port)
{
    trace_usb_device_attach(DEVICE(dev)->id, port->speed);
    dev->port = port;
    if (port->speed == USB_SPEED_FULL || port->speed == USB_SPEED_HIGH) {
        dev->speed = port->speed;
    }
    usb_device_reset(dev);
    if (USB_DEVICE_GET_CLASS(dev)->handle_attach) {
        USB_DEVICE_GET_CLASS(dev)->handle_attach(dev);
    }
}

void usb_device_detach(USBDevice *dev)
{
    if (!dev->port) {
        return;
    }
    trace_usb_device_detach(DEVICE(dev)->id);
    /* Reset first: the device drops held packets that belong to this port. */
    usb_device_reset(dev);
    if (USB_DEVICE_GET_CLASS(dev)->handle_detach) {
        USB_DEVICE_GET_CLASS(dev)->handle_detach(dev);
    }
    dev->port = NULL;
}

void usb_device_reset(USBDevice *dev)
{
    trace_usb_device_reset(DEVICE(dev)->id);
    dev->addr = 0;
    dev->configuration = 0;
    dev->remote_wakeup = false;
    usb_desc_init_endpoints(dev);
    if (USB_DEVICE_GET_CLASS(dev)->handle_reset) {
        USB_DEVICE_GET_CLASS(dev)->handle_reset(dev);
    }
}

void usb_device_handle_control(USBDevice *dev, USBPacket *p, const uint8_t setup[8],
                               uint8_t *data)
{
    int request = (setup[0] << 8) | setup[1];
    int value = setup[2] | (setup[3] << 8);
    int index = setup[4] | (setup[5] << 8);
    int length = setup[6] | (setup[7] << 8);
    const USBDeviceClass *uc = USB_DEVICE_GET_CLASS(dev);

    /*
     * Handlers write small fixed answers (a status word, a configuration
     * byte) whatever wLength the host chose; they work in a buffer of the
     * largest size and only wLength bytes go back.
     */
    uint8_t buf[USB_MAX_CONTROL_DATA];
    bool in = setup[0] & USB_DIR_IN;

    trace_usb_control(DEVICE(dev)->id, setup[0], setup[1], value, index, length);
    p->actual_length = 0;
    p->status = USB_RET_STALL;
    if (length > USB_MAX_CONTROL_DATA) {
        trace_usb_control_too_long(DEVICE(dev)->id, length);
        return;
    }
    memset(buf, 0, sizeof(buf));
    if (!in && length) {
        memcpy(buf, data, length);
    }
    if (!usb_desc_handle_control(dev, p, request, value, index, length, buf) &&
        uc->handle_control) {
        uc->handle_control(dev, p, request, value, index, length, buf);
    }
    if (in && p->status == USB_RET_SUCCESS) {
        p->actual_length = MIN(p->actual_length, (size_t)length);
        memcpy(data, buf, p->actual_length);
    }
    trace_usb_control_done(DEVICE(dev)->id, setup[0], setup[1], p->status, p->actual_length);
}

USBEndpointInfo *usb_device_ep(USBDevice *dev, int pid, uint8_t ep)
{
    USBEndpointInfo *info;

    if (ep == 0 || ep >= USB_MAX_ENDPOINTS) {
        return NULL;
    }
    info = pid == USB_TOKEN_IN ? &dev->ep_in[ep] : &dev->ep_out[ep];
    return info->type == USB_ENDPOINT_XFER_INVALID ? NULL : info;
}

void usb_device_handle_data(USBDevice *dev, USBPacket *p)
{
    USBEndpointInfo *ep = usb_device_ep(dev, p->pid, p->ep);

    trace_usb_packet(DEVICE(dev)->id, p->id, p->pid, p->ep, p->size);
    p->actual_length = 0;
    p->async = false;
    if (!ep || ep->halted) {
        trace_usb_packet_stall(DEVICE(dev)->id, p->id, p->pid, p->ep, ep && ep->halted);
        p->status = USB_RET_STALL;
        return;
    }
    p->status = USB_RET_SUCCESS;
    USB_DEVICE_GET_CLASS(dev)->handle_data(dev, p);
    p->async = p->status == USB_RET_ASYNC;
    trace_usb_packet_done(DEVICE(dev)->id, p->id, p->status, p->actual_length);
}

void usb_device_cancel_packet(USBDevice *dev, USBPacket *p)
{
    if (!p->async) {
        return;
    }
    trace_usb_packet_cancel(DEVICE(dev)->id, p->id);
    p->async = false;
    if (USB_DEVICE_GET_CLASS(dev)->cancel_packet) {
        USB_DEVICE_GET_CLASS(dev)->cancel_packet(dev, p);
    }
}

void usb_packet_complete(USBDevice *dev, USBPacket *p)
{
    g_assert(p->async && p->status != USB_RET_ASYNC);
    trace_usb_packet_complete(DEVICE(dev)->id, p->id, p->status, p->actual_length);
    p->async = false;
    if (dev->port) {
        dev->port->ops->complete(dev->port, p);
    }
}

void usb_wakeup(USBDevice *dev, uint8_t ep)
{
    trace_usb_wakeup(DEVICE(dev)->id, ep);
    if (dev->port && dev->port->ops->wakeup) {
        dev->port->ops->wakeup(dev->port, ep);
    }
}

size_t usb_packet_copy_in(USBPacket *p, const void *src, size_t len)
{
    size_t n = MIN(len, p->size - p->actual_length);

    memcpy(p->data + p->actual_length, src, n);
    p->actual_length += n;
    return n;
}
