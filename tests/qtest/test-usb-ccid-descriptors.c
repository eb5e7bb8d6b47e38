/*
 * usb-ccid qtests: the device, configuration, CCID class and string
 * descriptors, and what usbredir announces of them (USB 2.0 chapter 9,
 * CCID rev 1.1 section 5), with the default and with changed properties.
 */
#include "usb-ccid-common.h"

#define QEMU_CCID_VENDOR  0x08e6
#define QEMU_CCID_PRODUCT 0x4433

static void test_device_descriptor(Fixture *f, gconstpointer data)
{
    UsbredirHost *usb = f->c->usb;
    g_autoptr(GByteArray) d = urh_get_descriptor(usb, USB_DT_DEVICE, 0, 0, 18);
    g_autoptr(GByteArray) d8 = urh_get_descriptor(usb, USB_DT_DEVICE, 0, 0, 8);
    const struct usb_redir_device_connect_header *dc = urh_device_info(usb);

    g_assert_nonnull(d);
    g_assert_cmpuint(d->len, ==, 18);
    g_assert_cmpuint(d->data[0], ==, 18);
    g_assert_cmpuint(d->data[1], ==, USB_DT_DEVICE);
    g_assert_true(le16(d->data + 2) == 0x0200 || le16(d->data + 2) == 0x0110);
    /* CCID: the class is given at interface level. */
    g_assert_cmpuint(d->data[4], ==, 0);
    g_assert_cmpuint(d->data[5], ==, 0);
    g_assert_cmpuint(d->data[6], ==, 0);
    g_assert_true(d->data[7] == 8 || d->data[7] == 16 || d->data[7] == 32 ||
                  d->data[7] == 64);
    g_assert_cmphex(le16(d->data + 8), ==, QEMU_CCID_VENDOR);
    g_assert_cmphex(le16(d->data + 10), ==, QEMU_CCID_PRODUCT);
    g_assert_cmpuint(d->data[17], ==, 1);

    /* A short read returns the head of the same descriptor. */
    g_assert_nonnull(d8);
    g_assert_cmpuint(d8->len, ==, 8);
    g_assert_cmpmem(d8->data, 8, d->data, 8);

    /* What usbredir announced matches the descriptor. */
    g_assert_cmpuint(dc->speed, ==, usb_redir_speed_full);
    g_assert_cmpuint(dc->device_class, ==, 0);
    g_assert_cmphex(dc->vendor_id, ==, QEMU_CCID_VENDOR);
    g_assert_cmphex(dc->product_id, ==, QEMU_CCID_PRODUCT);
    g_assert_true(urh_peer_has_cap(usb, usb_redir_cap_connect_device_version));
    g_assert_cmphex(dc->device_version_bcd, ==, le16(d->data + 12));
}
USB_CCID_TEST("descriptors/device", test_device_descriptor)

/* The capabilities QEMU needs to put the device on an xHCI port. */
static void test_usbredir_caps(Fixture *f, gconstpointer data)
{
    UsbredirHost *usb = f->c->usb;

    g_assert_true(urh_peer_has_cap(usb, usb_redir_cap_ep_info_max_packet_size));
    g_assert_true(urh_peer_has_cap(usb, usb_redir_cap_32bits_bulk_length));
    g_assert_true(urh_peer_has_cap(usb, usb_redir_cap_64bits_ids));
    g_assert_cmpstr(urh_peer_version(usb), !=, "");
}
USB_CCID_TEST("usbredir/caps", test_usbredir_caps)

static void check_endpoint_info(CcidHost *c, uint8_t ep, uint8_t type, uint16_t mps)
{
    const struct usb_redir_ep_info_header *info = urh_ep_info(c->usb);
    int i = urh_ep_index(ep);

    g_assert_cmpuint(info->type[i], ==, type);
    g_assert_cmpuint(info->max_packet_size[i], ==, mps);
    g_assert_cmpuint(info->interface[i], ==, c->ifnum);
}

static void test_config_descriptor(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    const uint8_t *p = c->config->data;
    const struct usb_redir_interface_info_header *ii = urh_interface_info(c->usb);
    const struct usb_redir_ep_info_header *ei = urh_ep_info(c->usb);
    size_t off;
    unsigned n_if = 0, n_ep = 0, n_ccid = 0;

    g_assert_cmpuint(p[0], ==, 9);
    g_assert_cmpuint(p[1], ==, USB_DT_CONFIG);
    g_assert_cmpuint(le16(p + 2), ==, c->config->len);
    g_assert_cmpuint(p[4], ==, 1);            /* bNumInterfaces */
    g_assert_cmpuint(p[5], ==, 1);            /* bConfigurationValue */
    g_assert_true(p[7] & 0x80);               /* bmAttributes: bit 7 reserved, set */
    g_assert_cmpuint(p[7] & 0x1f, ==, 0);
    g_assert_cmpuint(p[8], <=, 250);          /* bMaxPower, 2 mA units */

    for (off = 9; off < c->config->len; off += p[off]) {
        const uint8_t *d = p + off;

        switch (d[1]) {
        case 0x04:
            n_if++;
            g_assert_cmpuint(d[4], ==, 3);    /* bNumEndpoints */
            g_assert_cmphex(d[5], ==, 0x0b);  /* Smart Card */
            g_assert_cmphex(d[6], ==, 0);
            g_assert_cmphex(d[7], ==, 0);     /* CCID with bulk transfers */
            break;
        case 0x21:
            n_ccid++;
            /* The class descriptor sits between the interface and its endpoints. */
            g_assert_cmpuint(n_if, ==, 1);
            g_assert_cmpuint(n_ep, ==, 0);
            g_assert_cmpuint(d[0], ==, 0x36);
            break;
        case 0x05:
            n_ep++;
            break;
        default:
            g_error("unexpected descriptor type %02x in the configuration", d[1]);
        }
    }
    g_assert_cmpuint(off, ==, c->config->len);
    g_assert_cmpuint(n_if, ==, 1);
    g_assert_cmpuint(n_ccid, ==, 1);
    g_assert_cmpuint(n_ep, ==, 3);

    /* Full speed bulk endpoints carry 64-byte packets. */
    g_assert_cmpuint(c->bulk_in_mps, ==, 64);
    g_assert_cmpuint(c->bulk_out_mps, ==, 64);
    /* Interrupt-in holds a NotifySlotChange (2 bytes) and a HardwareError (4). */
    g_assert_cmpuint(c->ep_int_in, !=, 0);
    g_assert_cmpuint(c->int_in_mps, >=, 4);
    g_assert_cmpuint(c->int_in_mps, <=, 64);

    /* usbredir's interface_info and ep_info say the same. */
    g_assert_cmpuint(ii->interface_count, ==, 1);
    g_assert_cmpuint(ii->interface[0], ==, c->ifnum);
    g_assert_cmphex(ii->interface_class[0], ==, 0x0b);
    g_assert_cmpuint(ii->interface_subclass[0], ==, 0);
    g_assert_cmpuint(ii->interface_protocol[0], ==, 0);
    check_endpoint_info(c, c->ep_bulk_in, usb_redir_type_bulk, c->bulk_in_mps);
    check_endpoint_info(c, c->ep_bulk_out, usb_redir_type_bulk, c->bulk_out_mps);
    check_endpoint_info(c, c->ep_int_in, usb_redir_type_interrupt, c->int_in_mps);
    g_assert_cmpuint(ei->type[0], ==, usb_redir_type_control);
    for (int i = 1; i < 32; i++) {
        if (i != urh_ep_index(c->ep_bulk_in) && i != urh_ep_index(c->ep_bulk_out) &&
            i != urh_ep_index(c->ep_int_in) && i != 16) {
            g_assert_cmpuint(ei->type[i], ==, usb_redir_type_invalid);
        }
    }
    for (off = 9; off < c->config->len; off += p[off]) {
        if (p[off + 1] == 0x05 && (p[off + 3] & 3) == 3) {
            g_assert_cmpuint(ei->interval[urh_ep_index(p[off + 2])], ==, p[off + 6]);
            g_assert_cmpuint(p[off + 6], >=, 1);
        }
    }
}
USB_CCID_TEST("descriptors/configuration", test_config_descriptor)

/* Values a host driver relies on are coherent with each other (CCID 5.1). */
static void test_class_descriptor(Fixture *f, gconstpointer data)
{
    const CcidClassDesc *d = &f->c->desc;
    uint32_t level = d->dwFeatures & CCID_FEAT_LEVEL_MASK;

    g_assert_cmphex(d->bLength, ==, 0x36);
    g_assert_cmphex(d->bDescriptorType, ==, 0x21);
    g_assert_true(d->bcdCCID == 0x0110 || d->bcdCCID == 0x0100);
    g_assert_cmpuint(d->bMaxSlotIndex, ==, 0);         /* one slot by default */
    g_assert_cmpuint(d->bVoltageSupport, !=, 0);
    g_assert_cmpuint(d->bVoltageSupport & ~0x07u, ==, 0);
    g_assert_cmpuint(d->dwProtocols, !=, 0);
    g_assert_cmpuint(d->dwProtocols & ~0x3u, ==, 0);   /* T=0 and/or T=1 */
    g_assert_cmpuint(d->dwDefaultClock, !=, 0);
    g_assert_cmpuint(d->dwDefaultClock, <=, d->dwMaximumClock);
    g_assert_cmpuint(d->dwDataRate, !=, 0);
    g_assert_cmpuint(d->dwDataRate, <=, d->dwMaxDataRate);
    if (d->dwProtocols & 2) {
        g_assert_cmpuint(d->dwMaxIFSD, >=, 1);
        g_assert_cmpuint(d->dwMaxIFSD, <=, 254);
    }
    g_assert_cmpuint(d->dwSynchProtocols, ==, 0);
    /* Exactly one exchange level. */
    g_assert_true(level == CCID_FEAT_TPDU || level == CCID_FEAT_SHORT_APDU ||
                  level == CCID_FEAT_EXTENDED_APDU);
    /* Only bits the spec defines. */
    g_assert_cmphex(d->dwFeatures & ~0x001707feu, ==, 0);
    /* An APDU-level reader carries a whole short APDU: 10 + 4 + 1 + 255 + 1. */
    if (level != CCID_FEAT_TPDU) {
        g_assert_cmpuint(d->dwMaxCCIDMessageLength, >=, 271);
    }
    g_assert_cmpuint(d->dwMaxCCIDMessageLength, <=, CCID_HDR + 65544);
    /* No display, no PIN pad and no mechanics in a virtual reader. */
    g_assert_cmpuint(d->wLcdLayout, ==, 0);
    g_assert_cmpuint(d->bPINSupport, ==, 0);
    g_assert_cmpuint(d->dwMechanical, ==, 0);
    g_assert_cmpuint(d->bMaxCCIDBusySlots, >=, 1);
    g_assert_cmpuint(d->bMaxCCIDBusySlots, <=, d->bMaxSlotIndex + 1);
    g_test_message("dwFeatures %08x dwMaxCCIDMessageLength %u dwProtocols %x",
                   d->dwFeatures, d->dwMaxCCIDMessageLength, d->dwProtocols);
}
USB_CCID_TEST("descriptors/ccid-class", test_class_descriptor)

static char *read_string(UsbredirHost *usb, uint8_t index)
{
    g_autoptr(GByteArray) s = urh_get_descriptor(usb, USB_DT_STRING, index, LANG_EN_US, 255);
    GString *out = g_string_new(NULL);

    g_assert_nonnull(s);
    g_assert_cmpuint(s->len, >=, 2);
    g_assert_cmpuint(s->data[0], ==, s->len);
    g_assert_cmpuint(s->data[1], ==, USB_DT_STRING);
    g_assert_cmpuint(s->len % 2, ==, 0);
    for (unsigned i = 2; i < s->len; i += 2) {
        uint16_t ch = le16(s->data + i);
        g_assert_cmpuint(ch, >=, 0x20);
        g_string_append_unichar(out, ch);
    }
    return g_string_free(out, FALSE);
}

static void test_string_descriptors(Fixture *f, gconstpointer data)
{
    UsbredirHost *usb = f->c->usb;
    g_autoptr(GByteArray) langs = urh_get_descriptor(usb, USB_DT_STRING, 0, 0, 255);
    g_autoptr(GByteArray) dev = urh_get_descriptor(usb, USB_DT_DEVICE, 0, 0, 18);
    g_autoptr(GByteArray) none = NULL;
    const uint8_t *p = f->c->config->data;

    g_assert_nonnull(langs);
    g_assert_cmpuint(langs->len, >=, 4);
    g_assert_cmpuint(langs->data[0], ==, langs->len);
    g_assert_cmpuint(langs->data[1], ==, USB_DT_STRING);
    g_assert_cmphex(le16(langs->data + 2), ==, LANG_EN_US);

    /* iManufacturer, iProduct, iSerialNumber: all present and readable. */
    for (int i = 14; i <= 16; i++) {
        g_assert_cmpuint(dev->data[i], !=, 0);
        g_autofree char *s = read_string(usb, dev->data[i]);
        g_test_message("string %u: \"%s\"", dev->data[i], s);
        g_assert_cmpuint(strlen(s), >, 0);
    }
    /* iConfiguration and iInterface, if given. */
    for (size_t off = 0; off < f->c->config->len; off += p[off]) {
        uint8_t idx = p[off + 1] == 0x02 ? p[off + 6] : p[off + 1] == 0x04 ? p[off + 8] : 0;
        if (idx) {
            g_autofree char *s = read_string(usb, idx);
            g_assert_cmpuint(strlen(s), >, 0);
        }
    }
    /* A short read of a string returns its head. */
    {
        g_autoptr(GByteArray) s2 = urh_get_descriptor(usb, USB_DT_STRING, dev->data[15],
                                                      LANG_EN_US, 2);
        g_assert_nonnull(s2);
        g_assert_cmpuint(s2->len, ==, 2);
        g_assert_cmpuint(s2->data[1], ==, USB_DT_STRING);
    }
    /* A string that does not exist is a request error (stall). */
    none = urh_get_descriptor(usb, USB_DT_STRING, 0xee, LANG_EN_US, 255);
    g_assert_null(none);
}
USB_CCID_TEST("descriptors/strings", test_string_descriptors)

static void test_properties(void)
{
    static const char *const args[] = {
        "-device", "usb-ccid,id=ccid,vendorid=0x1234,productid=0x5678,serial=QT-42",
        "-device", "ccid-card-emulated,backend=certificates,db=@DB@,"
                   "cert1=id-cert,cert2=signing-cert,cert3=encryption-cert",
        NULL,
    };
    VccidProcess *v = vccid_start(args);
    CcidHost *c = ccid_host_open(v->sock_path);
    g_autoptr(GByteArray) dev = urh_get_descriptor(c->usb, USB_DT_DEVICE, 0, 0, 18);
    g_autofree char *serial = read_string(c->usb, dev->data[16]);

    g_assert_cmphex(urh_device_info(c->usb)->vendor_id, ==, 0x1234);
    g_assert_cmphex(urh_device_info(c->usb)->product_id, ==, 0x5678);
    g_assert_cmphex(le16(dev->data + 8), ==, 0x1234);
    g_assert_cmphex(le16(dev->data + 10), ==, 0x5678);
    g_assert_cmpstr(serial, ==, "QT-42");
    ccid_host_free(c);
    vccid_stop(v);
}
USB_CCID_TEST_PLAIN("properties", test_properties)

static void test_high_speed(void)
{
    static const char *const args[] = { "-device", "usb-ccid,id=ccid,speed=high", NULL };
    VccidProcess *v = vccid_start(args);
    CcidHost *c = ccid_host_open(v->sock_path);

    g_assert_cmpuint(urh_device_info(c->usb)->speed, ==, usb_redir_speed_high);
    g_assert_cmpuint(c->bulk_in_mps, ==, 512);
    g_assert_cmpuint(c->bulk_out_mps, ==, 512);
    check_endpoint_info(c, c->ep_bulk_in, usb_redir_type_bulk, 512);
    assert_slot_works(c);
    ccid_host_free(c);
    vccid_stop(v);
}
USB_CCID_TEST_PLAIN("high-speed", test_high_speed)
