/*
 * qtest for usb-ccid + ccid-card-emulated: the real vccid binary, driven
 * over its usbredir socket by a USB host the way QEMU's usb-redir drives
 * it, checked against the USB 2.0 and CCID rev 1.1 specifications.
 */
#include "ccid-host.h"
#include "libqtest-vccid.h"

#include <glib/gstdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define QEMU_CCID_VENDOR  0x08e6
#define QEMU_CCID_PRODUCT 0x4433

#define USB_DT_DEVICE 0x01
#define USB_DT_CONFIG 0x02
#define USB_DT_STRING 0x03
#define LANG_EN_US    0x0409

/* libcacard's CAC PKI applets: A0 00 00 00 79 01 0n, one per certificate. */
static const uint8_t select_pki0[] = {
    0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00,
};
/* CAC READ BUFFER (GSC-IS 2.1 5.3.3.3): P1P2 offset, data = {buffer, count}. */
#define CAC_READ_BUFFER  0x52
#define CAC_SIGN_DECRYPT 0x42
#define CAC_VALUE_BUFFER 0x02

typedef struct Fixture {
    VccidProcess *vccid;
    CcidHost *c;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->vccid = vccid_start_default();
    f->c = ccid_host_open(f->vccid->sock_path);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    /* No completion may arrive for a packet that had none pending. */
    if (f->c) {
        g_assert_cmpuint(urh_stray_completions(f->c->usb), ==, 0);
    }
    ccid_host_free(f->c);
    vccid_stop(f->vccid);
}

static void assert_ok(const CcidAnswer *a)
{
    if (CMD_STATUS(a->status) != CMD_OK) {
        g_error("answer %02x seq %u failed: bStatus %02x bError %02x", a->type, a->seq,
                a->status, a->error);
    }
}

static void assert_failed(const CcidAnswer *a, uint8_t error)
{
    if (CMD_STATUS(a->status) != CMD_FAILED || a->error != error) {
        g_error("answer %02x seq %u: expected failure with bError %02x, got "
                "bStatus %02x bError %02x", a->type, a->seq, error, a->status, a->error);
    }
}

/* The spec's "command not supported": bmCommandStatus = 1, bError = 0. */
static bool is_not_supported(const CcidAnswer *a)
{
    return CMD_STATUS(a->status) == CMD_FAILED && a->error == CCID_ERR_CMD_NOT_SUPPORTED;
}

static void assert_ok_or_not_supported(const CcidAnswer *a)
{
    if (!is_not_supported(a)) {
        assert_ok(a);
    }
}

static void assert_slot_works(CcidHost *c)
{
    g_autoptr(CcidAnswer) a = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, 0, 0, NULL, 0);

    assert_ok(a);
}

/*
 * Nothing more comes on bulk-in: a request stays pending (that is not an
 * error), and it is cancelled cleanly.
 */
static void assert_no_more_answers(CcidHost *c)
{
    UrhTransfer *t = urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size);

    urh_idle(c->usb, 200);
    if (t->done) {
        g_error("unexpected bulk-in data (%u bytes, status %u, type %02x seq %u)",
                t->data->len, t->status, t->data->len ? t->data->data[0] : 0,
                t->data->len > 6 ? t->data->data[6] : 0);
    }
    urh_cancel(c->usb, t);
    g_assert_true(urh_wait(c->usb, t, URH_TIMEOUT_MS));
    g_assert_cmpuint(t->status, ==, usb_redir_cancelled);
    g_assert_cmpuint(t->data->len, ==, 0);
    urh_transfer_release(c->usb, t);
}

static void use_reader(CcidHost *c);

static gint compare_gint64(gconstpointer a, gconstpointer b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;

    return x < y ? -1 : x > y;
}

/* ---- descriptors ---- */

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

/* The capabilities QEMU needs to put the device on an xHCI port. */
static void test_usbredir_caps(Fixture *f, gconstpointer data)
{
    UsbredirHost *usb = f->c->usb;

    g_assert_true(urh_peer_has_cap(usb, usb_redir_cap_ep_info_max_packet_size));
    g_assert_true(urh_peer_has_cap(usb, usb_redir_cap_32bits_bulk_length));
    g_assert_true(urh_peer_has_cap(usb, usb_redir_cap_64bits_ids));
    g_assert_cmpstr(urh_peer_version(usb), !=, "");
}

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

static void test_configuration(Fixture *f, gconstpointer data)
{
    UsbredirHost *usb = f->c->usb;
    uint8_t cfg = 0xaa;
    uint8_t status[2];
    int actual = 0;

    g_assert_cmpint(urh_get_configuration(usb, &cfg), ==, usb_redir_success);
    g_assert_cmpuint(cfg, ==, 1);
    /* GET_STATUS (device): two bytes. */
    g_assert_cmpint(urh_control(usb, 0x80, 0x00, 0, 0, status, 2, &actual, URH_TIMEOUT_MS),
                    ==, usb_redir_success);
    g_assert_cmpint(actual, ==, 2);
    /* Configuration 2 does not exist. */
    g_assert_cmpint(urh_set_configuration(usb, 2, &cfg), !=, usb_redir_success);
    /* Unconfigure and configure again; the reader still works. */
    g_assert_cmpint(urh_set_configuration(usb, 0, &cfg), ==, usb_redir_success);
    g_assert_cmpint(urh_get_configuration(usb, &cfg), ==, usb_redir_success);
    g_assert_cmpuint(cfg, ==, 0);
    g_assert_cmpint(urh_set_configuration(usb, 1, &cfg), ==, usb_redir_success);
    assert_slot_works(f->c);
}

/* ---- class requests (CCID 5.3) ---- */

static void test_class_requests(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    const CcidClassDesc *d = &c->desc;
    uint8_t buf[256];
    int actual = 0, st;
    unsigned n;

    /* GET_CLOCK_FREQUENCIES: bNumClockSupported DWORDs, in kHz. */
    n = d->bNumClockSupported ? d->bNumClockSupported : 1;
    st = urh_control(c->usb, 0xa1, CCID_REQ_GET_CLOCK_FREQUENCIES, 0, c->ifnum, buf, 4 * n,
                     &actual, URH_TIMEOUT_MS);
    g_assert_cmpint(st, ==, usb_redir_success);
    g_assert_cmpint(actual, ==, 4 * n);
    for (unsigned i = 0; i < n; i++) {
        g_assert_cmpuint(le32(buf + 4 * i), >=, d->dwDefaultClock);
        g_assert_cmpuint(le32(buf + 4 * i), <=, d->dwMaximumClock);
    }

    /* GET_DATA_RATES: bNumDataRatesSupported DWORDs, in bps. */
    n = d->bNumDataRatesSupported ? d->bNumDataRatesSupported : 1;
    st = urh_control(c->usb, 0xa1, CCID_REQ_GET_DATA_RATES, 0, c->ifnum, buf, 4 * n,
                     &actual, URH_TIMEOUT_MS);
    g_assert_cmpint(st, ==, usb_redir_success);
    g_assert_cmpint(actual, ==, 4 * n);
    for (unsigned i = 0; i < n; i++) {
        g_assert_cmpuint(le32(buf + 4 * i), >=, d->dwDataRate);
        g_assert_cmpuint(le32(buf + 4 * i), <=, d->dwMaxDataRate);
    }

    /* An unknown class request is a request error. */
    st = urh_control(c->usb, 0xa1, 0x7f, 0, c->ifnum, buf, 4, &actual, URH_TIMEOUT_MS);
    g_assert_cmpint(st, ==, usb_redir_stall);

    assert_slot_works(c);
}

/* ABORT (CCID 5.3.1): the control request, then PC_to_RDR_Abort with the same bSeq. */
static void test_abort(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t msg[CCID_HDR];
    uint8_t seq = c->seq;
    g_autoptr(CcidAnswer) a = NULL;
    int st = urh_control(c->usb, 0x21, CCID_REQ_ABORT, seq << 8 | 0, c->ifnum, NULL, 0,
                         NULL, URH_TIMEOUT_MS);

    g_assert_cmpint(st, ==, usb_redir_success);
    g_assert_cmpuint(ccid_build(c, msg, PC_to_RDR_Abort, 0, 0, 0, 0, 0), ==, seq);
    ccid_send_raw(c, msg, sizeof(msg));
    a = ccid_read_answer(c, URH_TIMEOUT_MS);
    ccid_check_answer(a, RDR_to_PC_SlotStatus, 0, seq);
    assert_ok(a);
    assert_slot_works(c);
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(GByteArray) r = ccid_transmit(c, select_pki0, sizeof(select_pki0));
    g_assert_true(apdu_sw(r) == 0x9000 || (apdu_sw(r) >> 8) == 0x61);
}

/* ---- slot commands ---- */

static void check_atr(const GByteArray *atr)
{
    g_assert_cmpuint(atr->len, >=, 2);
    g_assert_cmpuint(atr->len, <=, 33);
    g_assert_true(atr->data[0] == 0x3b || atr->data[0] == 0x3f);   /* TS */
}

static void test_power_on(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    g_autoptr(GByteArray) atr = ccid_power_on(c);
    g_autoptr(CcidAnswer) again = NULL;
    g_autoptr(CcidAnswer) st = NULL;

    check_atr(atr);
    /* A second IccPowerOn is a warm reset: same ATR, answer of exactly 10 + dwLength. */
    again = ccid_command(c, PC_to_RDR_IccPowerOn, 0, 0, 0, NULL, 0);
    assert_ok(again);
    g_assert_cmpuint(again->raw->len, ==, CCID_HDR + again->dwLength);
    g_assert_cmpuint(again->specific, ==, 0);        /* bChainParameter */
    g_assert_cmpmem(again->data, again->dwLength, atr->data, atr->len);

    st = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, 0, 0, NULL, 0);
    assert_ok(st);
    g_assert_cmpuint(ICC_STATUS(st->status), ==, ICC_ACTIVE);
    g_assert_cmpuint(st->dwLength, ==, 0);
    g_assert_cmpuint(st->specific, ==, 0);           /* bClockStatus: running */
}

static void test_power_off(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    g_autoptr(GByteArray) atr = ccid_power_on(c);
    g_autoptr(CcidAnswer) off = ccid_command(c, PC_to_RDR_IccPowerOff, 0, 0, 0, NULL, 0);
    g_autoptr(CcidAnswer) st = NULL;
    g_autoptr(CcidAnswer) xfr = NULL;

    assert_ok(off);
    g_assert_cmpuint(ICC_STATUS(off->status), ==, ICC_INACTIVE);
    st = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, 0, 0, NULL, 0);
    assert_ok(st);
    g_assert_cmpuint(ICC_STATUS(st->status), ==, ICC_INACTIVE);
    /* An APDU to a card that is not powered: the card is mute. */
    xfr = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0, 0, select_pki0, sizeof(select_pki0));
    assert_failed(xfr, CCID_ERR_ICC_MUTE);
    g_assert_cmpuint(ICC_STATUS(xfr->status), ==, ICC_INACTIVE);
    g_assert_cmpuint(xfr->dwLength, ==, 0);
    /* And it powers on again. */
    g_autoptr(GByteArray) atr2 = ccid_power_on(c);
    g_assert_cmpmem(atr->data, atr->len, atr2->data, atr2->len);
}

static void check_parameters(const CcidHost *c, const CcidAnswer *a)
{
    assert_ok(a);
    g_assert_true(a->specific == 0 || a->specific == 1);           /* bProtocolNum */
    g_assert_true(c->desc.dwProtocols & (1u << a->specific));
    g_assert_cmpuint(a->dwLength, ==, a->specific == 0 ? 5 : 7);
}

static void test_parameters(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    static const uint8_t t0[5] = { 0x11, 0x00, 0x00, 0x0a, 0x00 };
    static const uint8_t t1[7] = { 0x11, 0x10, 0x00, 0x4d, 0x00, 0xfe, 0x00 };
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(CcidAnswer) get = ccid_command(c, PC_to_RDR_GetParameters, 0, 0, 0, NULL, 0);
    g_autoptr(CcidAnswer) reset = NULL;
    g_autoptr(CcidAnswer) bad = NULL;

    check_parameters(c, get);
    reset = ccid_command(c, PC_to_RDR_ResetParameters, 0, 0, 0, NULL, 0);
    check_parameters(c, reset);

    for (int proto = 0; proto <= 1; proto++) {
        g_autoptr(CcidAnswer) set = ccid_command(c, PC_to_RDR_SetParameters, proto, 0, 0,
                                                 proto ? t1 : t0, proto ? 7 : 5);
        if (!(c->desc.dwProtocols & (1u << proto))) {
            assert_failed(set, CCID_ERR_BAD_PROTOCOL);
            continue;
        }
        check_parameters(c, set);
        g_assert_cmpuint(set->specific, ==, proto);
        g_autoptr(CcidAnswer) after = ccid_command(c, PC_to_RDR_GetParameters, 0, 0, 0,
                                                   NULL, 0);
        check_parameters(c, after);
        g_assert_cmpuint(after->specific, ==, proto);
    }
    /* A protocol that does not exist: bError names bProtocolNum (offset 7). */
    bad = ccid_command(c, PC_to_RDR_SetParameters, 5, 0, 0, t0, 5);
    assert_failed(bad, CCID_ERR_BAD_PROTOCOL);
    assert_slot_works(c);
}

static void test_escape(Fixture *f, gconstpointer data)
{
    static const uint8_t payload[] = { 0x01, 0x02, 0x03 };
    g_autoptr(CcidAnswer) a = ccid_command(f->c, PC_to_RDR_Escape, 0, 0, 0, payload,
                                           sizeof(payload));

    assert_ok_or_not_supported(a);
    if (is_not_supported(a)) {
        g_assert_cmpuint(a->dwLength, ==, 0);
    }
    assert_slot_works(f->c);
}

static void test_icc_clock(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    g_byte_array_unref(ccid_power_on(c));

    /* bClockCommand 0 restarts the clock, 1 stops it. */
    for (int cmd = 1; cmd >= 0; cmd--) {
        g_autoptr(CcidAnswer) a = ccid_command(c, PC_to_RDR_IccClock, cmd, 0, 0, NULL, 0);
        if (cmd == 1 && !(c->desc.dwFeatures & CCID_FEAT_CLOCK_STOP)) {
            /* Clock stop is not advertised: it cannot succeed. */
            g_assert_cmpuint(CMD_STATUS(a->status), ==, CMD_FAILED);
        } else {
            assert_ok_or_not_supported(a);
        }
    }
    g_autoptr(GByteArray) r = ccid_transmit(c, select_pki0, sizeof(select_pki0));
    g_assert_true(apdu_sw(r) == 0x9000 || (apdu_sw(r) >> 8) == 0x61);
}

static void test_t0apdu(Fixture *f, gconstpointer data)
{
    g_autoptr(CcidAnswer) a = ccid_command(f->c, PC_to_RDR_T0APDU, 0, 0, 0, NULL, 0);

    /* Only meaningful for TPDU-level T=0 readers. */
    if ((f->c->desc.dwFeatures & CCID_FEAT_LEVEL_MASK) != CCID_FEAT_TPDU) {
        g_assert_true(is_not_supported(a) || CMD_STATUS(a->status) == CMD_OK);
    } else {
        assert_ok(a);
    }
    assert_slot_works(f->c);
}

static void test_secure(Fixture *f, gconstpointer data)
{
    /* A PIN verification structure (CCID 6.1.11.4), with a VERIFY APDU. */
    static const uint8_t pin_verify[] = {
        0x00,                     /* bPINOperation: verification */
        0x00, 0x82, 0x00, 0x00, 0x00, 0x04, 0x08, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x20, 0x00, 0x00, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    };
    g_byte_array_unref(ccid_power_on(f->c));
    g_autoptr(CcidAnswer) a = ccid_command(f->c, PC_to_RDR_Secure, 0, 0, 0, pin_verify,
                                           sizeof(pin_verify));

    if (f->c->desc.bPINSupport == 0) {
        /* No PIN pad advertised: Secure is a command the reader does not do. */
        g_assert_true(is_not_supported(a));
        g_assert_cmpuint(a->dwLength, ==, 0);
    }
    assert_slot_works(f->c);
}

static void test_mechanical(Fixture *f, gconstpointer data)
{
    g_autoptr(CcidAnswer) a = ccid_command(f->c, PC_to_RDR_Mechanical, 0x01, 0, 0, NULL, 0);

    if (f->c->desc.dwMechanical == 0) {
        g_assert_true(is_not_supported(a));
    }
    assert_slot_works(f->c);
}

static void test_set_data_rate(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t rate[8];
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(CcidAnswer) a = NULL;

    for (int i = 0; i < 4; i++) {
        rate[i] = c->desc.dwDefaultClock >> (8 * i);
        rate[4 + i] = c->desc.dwDataRate >> (8 * i);
    }
    a = ccid_command(c, PC_to_RDR_SetDataRateAndClockFrequency, 0, 0, 0, rate, 8);
    assert_ok_or_not_supported(a);
    if (CMD_STATUS(a->status) == CMD_OK) {
        /* The values in force: dwClockFrequency, dwDataRate. */
        g_assert_cmpuint(a->dwLength, ==, 8);
        g_assert_cmpuint(le32(a->data), >=, c->desc.dwDefaultClock);
        g_assert_cmpuint(le32(a->data), <=, c->desc.dwMaximumClock);
        g_assert_cmpuint(le32(a->data + 4), >=, c->desc.dwDataRate);
        g_assert_cmpuint(le32(a->data + 4), <=, c->desc.dwMaxDataRate);
    }
    assert_slot_works(c);
}

static void test_unknown_message(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t msg[CCID_HDR];
    uint8_t seq = ccid_build(c, msg, 0x99, 0, 0, 0, 0, 0);
    g_autoptr(CcidAnswer) a = NULL;

    ccid_send_raw(c, msg, sizeof(msg));
    a = ccid_read_answer(c, URH_TIMEOUT_MS);
    g_assert_cmpuint(a->seq, ==, seq);
    g_assert_true(a->type >= RDR_to_PC_DataBlock &&
                  a->type <= RDR_to_PC_DataRateAndClockFrequency);
    g_assert_cmpuint(a->raw->len, ==, CCID_HDR + a->dwLength);
    g_assert_true(is_not_supported(a));
    assert_slot_works(c);
}

/* ---- APDUs and the CAC card ---- */

static GByteArray *read_buffer(CcidHost *c, uint16_t offset, uint8_t count)
{
    uint8_t apdu[] = { 0x80, CAC_READ_BUFFER, offset >> 8, offset & 0xff, 0x02,
                       CAC_VALUE_BUFFER, count, 0x00 };

    return ccid_xfr_apdu(c, apdu, sizeof(apdu));
}

/* The whole value buffer of the selected CAC applet, read in 255-byte pieces. */
static GByteArray *read_value_buffer(CcidHost *c)
{
    g_autoptr(GByteArray) head = read_buffer(c, 0, 2);
    GByteArray *all = g_byte_array_new();
    size_t total;

    g_assert_cmphex(apdu_sw(head), ==, 0x9000);
    g_assert_cmpuint(head->len, ==, 4);
    total = 2 + le16(head->data);
    while (all->len < total) {
        uint8_t n = MIN(255, total - all->len);
        g_autoptr(GByteArray) r = read_buffer(c, all->len, n);

        g_assert_cmphex(apdu_sw(r), ==, 0x9000);
        g_assert_cmpuint(r->len, ==, n + 2u);
        g_byte_array_append(all, r->data, n);
    }
    return all;
}

static void select_pki(CcidHost *c, uint8_t n)
{
    uint8_t apdu[sizeof(select_pki0)];
    g_autoptr(GByteArray) r = NULL;

    memcpy(apdu, select_pki0, sizeof(apdu));
    apdu[sizeof(apdu) - 1] = n;
    r = ccid_transmit(c, apdu, sizeof(apdu));
    g_assert_cmphex(apdu_sw(r), ==, 0x9000);
}

static void test_select_and_read_cert(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    static const uint8_t select_missing[] = {
        0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00, 0x00, 0x00, 0x79, 0x7f, 0x7f,
    };
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(GByteArray) raw = ccid_xfr_apdu(c, select_pki0, sizeof(select_pki0));
    g_autoptr(GByteArray) missing = NULL;
    g_autoptr(GByteArray) value = NULL;
    g_autoptr(GBytes) der = vccid_cert_der("id-cert");
    gsize der_len;
    const uint8_t *der_data = g_bytes_get_data(der, &der_len);

    g_assert_true(apdu_sw(raw) == 0x9000 || (apdu_sw(raw) >> 8) == 0x61);
    missing = ccid_transmit(c, select_missing, sizeof(select_missing));
    g_assert_cmphex(apdu_sw(missing), ==, 0x6a82);

    /* Value buffer of PKI applet 0: length, CertInfo (uncompressed), the DER. */
    select_pki(c, 0);
    value = read_value_buffer(c);
    g_test_message("PKI applet 0 value buffer: %u bytes; id-cert: %zu bytes", value->len,
                   der_len);
    g_assert_cmpuint(value->len, >=, 3 + der_len);
    g_assert_cmpuint(value->data[2], ==, 0x00);
    g_assert_cmpmem(value->data + 3, der_len, der_data, der_len);
}

/*
 * Every response length a short APDU can carry: READ BUFFER of n bytes
 * answers n + 2; the 256-byte signature of a 2048-bit key answers 258.
 * Each answer exactly once, with its own bSeq, and exactly 10 + dwLength.
 */
static GByteArray *sign_256(CcidHost *c)
{
    uint8_t part1[5 + 128], part2[5 + 128 + 1];

    /* A PKCS#1 type 1 block below the modulus, sent in two chained CAC pieces. */
    memset(part1, 0xff, sizeof(part1));
    memset(part2, 0xff, sizeof(part2));
    memcpy(part1, (uint8_t[]){ 0x80, CAC_SIGN_DECRYPT, 0x80, 0x00, 128, 0x00, 0x01 }, 7);
    memcpy(part2, (uint8_t[]){ 0x80, CAC_SIGN_DECRYPT, 0x00, 0x00, 128 }, 5);
    part2[5 + 128 - 21] = 0x00;
    part2[sizeof(part2) - 1] = 0x00;          /* Le: 256 */
    g_autoptr(GByteArray) r1 = ccid_xfr_apdu(c, part1, sizeof(part1));
    g_assert_cmphex(apdu_sw(r1), ==, 0x9000);
    return ccid_xfr_apdu(c, part2, sizeof(part2));
}

static void response_lengths(CcidHost *c)
{
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(GByteArray) value = NULL;
    g_autoptr(GByteArray) sig = NULL;

    select_pki(c, 0);
    value = read_value_buffer(c);
    g_assert_cmpuint(value->len, >=, 255);
    for (unsigned n = 0; n <= 255; n++) {
        g_autoptr(GByteArray) r = read_buffer(c, 0, n);

        g_assert_cmphex(apdu_sw(r), ==, 0x9000);
        g_assert_cmpuint(r->len, ==, n + 2);
        g_assert_cmpmem(r->data, n, value->data, n);
    }
    sig = sign_256(c);
    if (apdu_sw(sig) == 0x6982) {
        g_error("the card wants a PIN to sign with an empty-password database");
    }
    g_assert_cmphex(apdu_sw(sig), ==, 0x9000);
    g_assert_cmpuint(sig->len, ==, 258);
}

static void test_response_lengths(Fixture *f, gconstpointer data)
{
    response_lengths(f->c);
    assert_no_more_answers(f->c);
}

/*
 * The same over 64-byte bulk-in requests, as a UHCI host reads: an answer
 * spans several packets, and one that fills its last packet is ended by a
 * zero-length packet (not taken for the next answer).
 */
static void test_response_lengths_packetwise(Fixture *f, gconstpointer data)
{
    f->c->bulk_in_size = f->c->bulk_in_mps;
    response_lengths(f->c);
    f->c->bulk_in_size = 65536 + 64;
    assert_no_more_answers(f->c);
}

/* A command APDU of exactly len bytes that libcacard accepts: CAC SIGN piece. */
static GByteArray *sign_piece_apdu(size_t len)
{
    GByteArray *a = g_byte_array_new();
    size_t lc;

    g_byte_array_append(a, (uint8_t[]){ 0x80, CAC_SIGN_DECRYPT, 0x80, 0x00 }, 4);
    if (len <= 4 + 1 + 255) {
        lc = len - 5;
        g_assert_cmpuint(lc, >=, 1);
        g_byte_array_append(a, (uint8_t[]){ lc }, 1);
    } else {
        lc = len - 7;
        g_assert_cmpuint(lc, <=, 65535);
        g_byte_array_append(a, (uint8_t[]){ 0x00, lc >> 8, lc & 0xff }, 3);
    }
    for (size_t i = 0; i < lc; i++) {
        g_byte_array_append(a, (uint8_t[]){ i & 0xff }, 1);
    }
    return a;
}

/* The largest message the reader advertises works; one byte more is refused. */
static void test_max_message_length(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint32_t max = c->desc.dwMaxCCIDMessageLength;
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(GByteArray) apdu = NULL;
    g_autoptr(GByteArray) big = NULL;
    g_autoptr(CcidAnswer) a = NULL;
    g_autoptr(CcidAnswer) over = NULL;

    select_pki(c, 0);
    /* A case 4 short APDU of 261 bytes if the maximum is 271, as libccid sends. */
    if (max == 271) {
        apdu = sign_piece_apdu(260);
        g_byte_array_append(apdu, (uint8_t[]){ 0x00 }, 1);
    } else {
        apdu = sign_piece_apdu(max - CCID_HDR);
    }
    g_assert_cmpuint(apdu->len, ==, max - CCID_HDR);
    a = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0, 0, apdu->data, apdu->len);
    assert_ok(a);
    g_assert_cmphex(apdu_sw(&(GByteArray){ .data = (uint8_t *)a->data, .len = a->dwLength }),
                    ==, 0x9000);

    big = g_byte_array_append(g_byte_array_new(), apdu->data, apdu->len);
    g_byte_array_append(big, (uint8_t[]){ 0x00 }, 1);
    over = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0, 0, big->data, big->len);
    assert_failed(over, CCID_ERR_BAD_LENGTH);
    g_assert_cmpuint(over->dwLength, ==, 0);

    select_pki(c, 0);
}

/* Extended APDUs (up to 65,535 data bytes) with the CCID chaining. */
static void test_extended_apdu(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    static const size_t lengths[] = { 262, 300, 1000, 4096, 65535 + 7 };
    g_byte_array_unref(ccid_power_on(c));

    if (!(c->desc.dwFeatures & CCID_FEAT_EXTENDED_APDU)) {
        g_test_skip("the reader does not advertise extended APDU exchange");
        return;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(lengths); i++) {
        g_autoptr(GByteArray) apdu = sign_piece_apdu(lengths[i]);
        g_autoptr(GByteArray) r = NULL;

        /* A fresh SELECT drops what earlier pieces accumulated. */
        select_pki(c, 0);
        r = ccid_xfr_apdu(c, apdu->data, apdu->len);
        g_assert_cmphex(apdu_sw(r), ==, 0x9000);
        g_assert_cmpuint(r->len, ==, 2);
    }
    /* A whole signature after an extended exchange still works. */
    select_pki(c, 0);
    g_autoptr(GByteArray) sig = sign_256(c);
    g_assert_cmphex(apdu_sw(sig), ==, 0x9000);
    g_assert_cmpuint(sig->len, ==, 258);
    assert_no_more_answers(c);
}


/*
 * Answers longer than one message: with an extended Le the CAC ACA applet's
 * GET ACR returns up to 480 bytes in one response APDU, which the reader
 * hands out in chained DataBlocks. The bytes equal what the card gives in
 * 61xx / GET RESPONSE pieces to a short Le.
 */
static void test_long_response(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    static const uint8_t select_aca[] = {
        0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00, 0x00, 0x00, 0x79, 0x03, 0x00,
    };
    static const uint8_t p1s[] = { 0x10, 0x50, 0x21, 0x00 };
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(GByteArray) sel = ccid_transmit(c, select_aca, sizeof(select_aca));
    bool chained = false;

    if (!(c->desc.dwFeatures & CCID_FEAT_EXTENDED_APDU)) {
        g_test_skip("the reader does not advertise extended APDU exchange");
        return;
    }
    g_assert_cmphex(apdu_sw(sel), ==, 0x9000);
    for (size_t i = 0; i < G_N_ELEMENTS(p1s); i++) {
        const uint8_t ext[] = { 0x80, 0x4c, p1s[i], 0x00, 0x00, 0x00, 0x00 };
        const uint8_t shrt[] = { 0x80, 0x4c, p1s[i], 0x00, 0x00 };
        g_autoptr(GByteArray) whole = ccid_xfr_apdu(c, ext, sizeof(ext));
        g_autoptr(GByteArray) pieces = ccid_transmit(c, shrt, sizeof(shrt));

        g_test_message("GET ACR %02x: %u bytes", p1s[i], whole->len);
        g_assert_cmphex(apdu_sw(whole), ==, 0x9000);
        g_assert_cmpmem(whole->data, whole->len, pieces->data, pieces->len);
        chained |= whole->len > c->desc.dwMaxCCIDMessageLength - CCID_HDR;
    }
    /* At least one answer needed the reader's response chaining. */
    g_assert_true(chained);
    assert_no_more_answers(c);
}

static void test_long_response_packetwise(Fixture *f, gconstpointer data)
{
    f->c->bulk_in_size = f->c->bulk_in_mps;
    test_long_response(f, data);
}

/* ---- malformed messages ---- */

static void test_bad_slot(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    static const uint8_t types[] = {
        PC_to_RDR_GetSlotStatus, PC_to_RDR_IccPowerOn, PC_to_RDR_XfrBlock,
        PC_to_RDR_GetParameters, PC_to_RDR_IccPowerOff,
    };

    for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
        g_autoptr(CcidAnswer) a = ccid_command_slot(c, types[i], 1, 0, 0, 0, select_pki0,
                                                    types[i] == PC_to_RDR_XfrBlock ?
                                                    sizeof(select_pki0) : 0);
        assert_failed(a, CCID_ERR_BAD_SLOT);
        g_assert_cmpuint(a->dwLength, ==, 0);
    }
    {
        g_autoptr(CcidAnswer) a = ccid_command_slot(c, PC_to_RDR_GetSlotStatus, 0xff, 0, 0,
                                                    0, NULL, 0);
        assert_failed(a, CCID_ERR_BAD_SLOT);
    }
    g_autoptr(GByteArray) atr = ccid_power_on(c);
    check_atr(atr);
}

/* Send raw bytes, expect one failed answer with bSeq seq and bError error. */
static void expect_error(CcidHost *c, const uint8_t *msg, size_t len, uint8_t type,
                         uint8_t seq, uint8_t error)
{
    g_autoptr(CcidAnswer) a = NULL;

    ccid_send_raw(c, msg, len);
    a = ccid_read_answer(c, URH_TIMEOUT_MS);
    ccid_check_answer(a, type, 0, seq);
    assert_failed(a, error);
    g_assert_cmpuint(a->dwLength, ==, 0);
}

static void test_length_mismatch(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t msg[CCID_HDR + 32];
    uint8_t seq;
    g_byte_array_unref(ccid_power_on(c));

    /* dwLength says 20, the transfer ends after 5 bytes of data. */
    seq = ccid_build(c, msg, PC_to_RDR_XfrBlock, 0, 20, 0, 0, 0);
    memcpy(msg + CCID_HDR, select_pki0, 5);
    expect_error(c, msg, CCID_HDR + 5, RDR_to_PC_DataBlock, seq, CCID_ERR_BAD_LENGTH);
    assert_slot_works(c);

    /* dwLength says 2, eight bytes of data arrive. */
    seq = ccid_build(c, msg, PC_to_RDR_XfrBlock, 0, 2, 0, 0, 0);
    memcpy(msg + CCID_HDR, select_pki0, 8);
    expect_error(c, msg, CCID_HDR + 8, RDR_to_PC_DataBlock, seq, CCID_ERR_BAD_LENGTH);
    assert_slot_works(c);

    /* A command that takes no data, with data. */
    seq = ccid_build(c, msg, PC_to_RDR_GetSlotStatus, 0, 3, 0, 0, 0);
    memset(msg + CCID_HDR, 0, 3);
    expect_error(c, msg, CCID_HDR + 3, RDR_to_PC_SlotStatus, seq, CCID_ERR_BAD_LENGTH);

    /* The reader still works, APDUs included. */
    g_autoptr(GByteArray) r = ccid_transmit(c, select_pki0, sizeof(select_pki0));
    g_assert_true(apdu_sw(r) == 0x9000 || (apdu_sw(r) >> 8) == 0x61);
    assert_no_more_answers(c);
}

static void test_too_long(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    const uint32_t sizes[] = { c->desc.dwMaxCCIDMessageLength + 100, 70000 };
    g_byte_array_unref(ccid_power_on(c));

    /* Messages longer than the reader's buffer, length field consistent. */
    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
        g_autofree uint8_t *msg = g_malloc0(sizes[i]);
        uint8_t seq = ccid_build(c, msg, PC_to_RDR_XfrBlock, 0, sizes[i] - CCID_HDR, 0, 0, 0);

        expect_error(c, msg, sizes[i], RDR_to_PC_DataBlock, seq, CCID_ERR_BAD_LENGTH);
        assert_slot_works(c);
    }
    /* dwLength of 4 GB on a short message. */
    {
        uint8_t msg[CCID_HDR + 4] = { 0 };
        uint8_t seq = ccid_build(c, msg, PC_to_RDR_XfrBlock, 0, 0xffffffff, 0, 0, 0);
        expect_error(c, msg, sizeof(msg), RDR_to_PC_DataBlock, seq, CCID_ERR_BAD_LENGTH);
    }
    g_autoptr(GByteArray) r = ccid_transmit(c, select_pki0, sizeof(select_pki0));
    g_assert_true(apdu_sw(r) == 0x9000 || (apdu_sw(r) >> 8) == 0x61);
    assert_no_more_answers(c);
}

static void test_short_header(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    static const uint8_t five[] = { PC_to_RDR_GetSlotStatus, 0, 0, 0, 0 };
    uint8_t eight[CCID_HDR];
    uint8_t seq;

    /* Too short to carry a bSeq: nothing to answer. The next command is answered. */
    ccid_send_raw(c, five, sizeof(five));
    assert_slot_works(c);

    /* A zero-length transfer is no message at all. */
    ccid_send_raw(c, NULL, 0);
    assert_slot_works(c);

    /*
     * Eight bytes carry a bSeq: the reader may answer it with an error or
     * drop it; either way the next command gets its own answer.
     */
    seq = ccid_build(c, eight, PC_to_RDR_GetSlotStatus, 0, 0, 0, 0, 0);
    ccid_send_raw(c, eight, 8);
    {
        uint8_t msg[CCID_HDR];
        uint8_t good = ccid_build(c, msg, PC_to_RDR_GetSlotStatus, 0, 0, 0, 0, 0);
        g_autoptr(CcidAnswer) a = NULL;

        ccid_send_raw(c, msg, sizeof(msg));
        a = ccid_read_answer(c, URH_TIMEOUT_MS);
        if (a->seq == seq) {
            g_assert_cmpuint(CMD_STATUS(a->status), ==, CMD_FAILED);
            g_assert_cmpuint(a->raw->len, ==, CCID_HDR + a->dwLength);
            ccid_answer_free(a);
            a = ccid_read_answer(c, URH_TIMEOUT_MS);
        }
        ccid_check_answer(a, RDR_to_PC_SlotStatus, 0, good);
        assert_ok(a);
    }
    assert_no_more_answers(c);
}

/* A message sent in 64-byte packets, as UHCI and EHCI hosts send. */
static void test_packetwise_bulk_out(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint16_t mps = c->bulk_out_mps;
    g_byte_array_unref(ccid_power_on(c));
    /* 128 bytes exactly (ends on a full packet) and 150 (ends short). */
    static const size_t totals[] = { 128, 150, 64 };

    select_pki(c, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(totals); i++) {
        g_autoptr(GByteArray) apdu = sign_piece_apdu(totals[i] - CCID_HDR);
        g_autofree uint8_t *msg = g_malloc(totals[i]);
        uint8_t seq = ccid_build(c, msg, PC_to_RDR_XfrBlock, 0, apdu->len, 0, 0, 0);
        g_autoptr(CcidAnswer) a = NULL;

        memcpy(msg + CCID_HDR, apdu->data, apdu->len);
        for (size_t off = 0; off < totals[i]; off += mps) {
            ccid_send_raw(c, msg + off, MIN(mps, totals[i] - off));
        }
        /* Hosts may end a transfer that fills its last packet with a ZLP. */
        if (totals[i] % mps == 0 && i == 0) {
            ccid_send_raw(c, NULL, 0);
        }
        a = ccid_read_answer(c, URH_TIMEOUT_MS);
        ccid_check_answer(a, RDR_to_PC_DataBlock, 0, seq);
        assert_ok(a);
        g_assert_cmpuint(a->dwLength, ==, 2);
        g_assert_cmphex(a->data[0] << 8 | a->data[1], ==, 0x9000);
    }
    assert_no_more_answers(c);
}


/* Standard requests a host driver sends: CLEAR_FEATURE(HALT), GET_STATUS, SET_INTERFACE. */
static void test_standard_requests(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    const uint8_t eps[] = { c->ep_bulk_in, c->ep_bulk_out, c->ep_int_in };
    uint8_t status[2] = { 0xff, 0xff };
    uint8_t alt = 0xff;
    int actual = 0;

    for (size_t i = 0; i < G_N_ELEMENTS(eps); i++) {
        /* CLEAR_FEATURE(ENDPOINT_HALT), as libusb_clear_halt() sends. */
        g_assert_cmpint(urh_control(c->usb, 0x02, 0x01, 0, eps[i], NULL, 0, NULL,
                                    URH_TIMEOUT_MS), ==, usb_redir_success);
        g_assert_cmpint(urh_control(c->usb, 0x82, 0x00, 0, eps[i], status, 2, &actual,
                                    URH_TIMEOUT_MS), ==, usb_redir_success);
        g_assert_cmpint(actual, ==, 2);
        g_assert_cmpuint(status[0] & 1, ==, 0);          /* not halted */
    }
    g_assert_cmpint(urh_set_alt_setting(c->usb, c->ifnum, 0), ==, usb_redir_success);
    g_assert_cmpint(urh_get_alt_setting(c->usb, c->ifnum, &alt), ==, usb_redir_success);
    g_assert_cmpuint(alt, ==, 0);
    /* There is no alternate setting 1. */
    g_assert_cmpint(urh_set_alt_setting(c->usb, c->ifnum, 1), !=, usb_redir_success);
    use_reader(c);
    assert_no_more_answers(c);
}


/* IN control requests with a short wLength get at most wLength bytes (USB 2.0 9.3.5). */
static void test_short_control_reads(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    const struct { uint8_t type, req; uint16_t value, index; } reqs[] = {
        { 0x80, 0x00, 0, 0 },                           /* GET_STATUS device */
        { 0x81, 0x00, 0, c->ifnum },                    /* GET_STATUS interface */
        { 0x82, 0x00, 0, c->ep_bulk_in },               /* GET_STATUS endpoint */
        { 0x80, 0x06, USB_DT_DEVICE << 8, 0 },
        { 0x80, 0x06, USB_DT_CONFIG << 8, 0 },
        { 0x80, 0x06, USB_DT_STRING << 8, 0 },
        { 0x80, 0x06, USB_DT_STRING << 8 | 2, LANG_EN_US },
        { 0x80, 0x08, 0, 0 },                           /* GET_CONFIGURATION */
        { 0xa1, CCID_REQ_GET_CLOCK_FREQUENCIES, 0, c->ifnum },
        { 0xa1, CCID_REQ_GET_DATA_RATES, 0, c->ifnum },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(reqs); i++) {
        for (uint16_t len = 0; len <= 3; len++) {
            uint8_t buf[4] = { 0 };
            int actual = -1;
            int st = urh_control(c->usb, reqs[i].type, reqs[i].req, reqs[i].value,
                                 reqs[i].index, buf, len, &actual, URH_TIMEOUT_MS);

            g_assert_cmpint(st, ==, usb_redir_success);
            g_assert_cmpint(actual, <=, len);
        }
    }
    use_reader(c);
}

/* XfrBlock chaining out of order: the error names wLevelParameter (offset 8). */
static void test_bad_chain(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    g_byte_array_unref(ccid_power_on(c));

    if (!(c->desc.dwFeatures & CCID_FEAT_EXTENDED_APDU)) {
        g_test_skip("the reader does not advertise extended APDU exchange");
        return;
    }
    /* A chain that ends or continues without having begun. */
    static const uint16_t levels[] = { CCID_CHAIN_END, CCID_CHAIN_MIDDLE, CCID_CHAIN_CONTINUE };
    for (size_t i = 0; i < G_N_ELEMENTS(levels); i++) {
        g_autoptr(CcidAnswer) a = ccid_command(c, PC_to_RDR_XfrBlock, 0, levels[i] & 0xff,
                                               levels[i] >> 8, select_pki0,
                                               levels[i] == CCID_CHAIN_CONTINUE ? 0 :
                                               sizeof(select_pki0));
        assert_failed(a, 8);
    }
    /* A wLevelParameter the spec does not define. */
    {
        g_autoptr(CcidAnswer) a = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0x07, 0x00,
                                               select_pki0, sizeof(select_pki0));
        assert_failed(a, 8);
    }
    /* A chain abandoned halfway: the next whole APDU is answered on its own. */
    {
        g_autoptr(GByteArray) apdu = sign_piece_apdu(600);
        g_autoptr(CcidAnswer) a = ccid_command(c, PC_to_RDR_XfrBlock, 0, CCID_CHAIN_BEGIN, 0,
                                               apdu->data, 200);
        assert_ok(a);
        g_assert_cmphex(a->specific, ==, CCID_CHAIN_CONTINUE);
    }
    g_autoptr(GByteArray) r = ccid_transmit(c, select_pki0, sizeof(select_pki0));
    g_assert_cmphex(apdu_sw(r), ==, 0x9000);
    assert_no_more_answers(c);
}

/* ---- ordering, pending and cancelled packets ---- */

static void test_pipelined_commands(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t seqs[8], types[8];
    g_byte_array_unref(ccid_power_on(c));

    /* Eight commands sent back to back, then eight answers read, in order. */
    for (int i = 0; i < 8; i++) {
        uint8_t msg[CCID_HDR + sizeof(select_pki0)];
        bool xfr = i % 2;

        types[i] = xfr ? PC_to_RDR_XfrBlock : PC_to_RDR_GetSlotStatus;
        seqs[i] = ccid_build(c, msg, types[i], 0, xfr ? sizeof(select_pki0) : 0, 0, 0, 0);
        memcpy(msg + CCID_HDR, select_pki0, sizeof(select_pki0));
        ccid_send_raw(c, msg, CCID_HDR + (xfr ? sizeof(select_pki0) : 0));
    }
    for (int i = 0; i < 8; i++) {
        g_autoptr(CcidAnswer) a = ccid_read_answer(c, URH_TIMEOUT_MS);

        ccid_check_answer(a, types[i] == PC_to_RDR_XfrBlock ? RDR_to_PC_DataBlock :
                          RDR_to_PC_SlotStatus, 0, seqs[i]);
        assert_ok(a);
    }
    assert_no_more_answers(c);
}

static void test_pending_bulk_in(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    UrhTransfer *t[3];
    uint8_t seqs[3];
    g_byte_array_unref(ccid_power_on(c));

    /* Bulk-in requests posted before any command stay pending, not failed. */
    for (int i = 0; i < 3; i++) {
        t[i] = urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size);
    }
    urh_idle(c->usb, 100);
    for (int i = 0; i < 3; i++) {
        g_assert_false(t[i]->done);
    }
    /* Each command completes the oldest request with its own answer. */
    for (int i = 0; i < 3; i++) {
        uint8_t msg[CCID_HDR + sizeof(select_pki0)];

        seqs[i] = ccid_build(c, msg, PC_to_RDR_XfrBlock, 0, sizeof(select_pki0), 0, 0, 0);
        memcpy(msg + CCID_HDR, select_pki0, sizeof(select_pki0));
        ccid_send_raw(c, msg, sizeof(msg));
        g_assert_true(urh_wait(c->usb, t[i], URH_TIMEOUT_MS));
        g_assert_cmpuint(t[i]->status, ==, usb_redir_success);
        g_assert_cmpuint(t[i]->data->len, >=, CCID_HDR);
        g_assert_cmphex(t[i]->data->data[0], ==, RDR_to_PC_DataBlock);
        g_assert_cmpuint(t[i]->data->data[6], ==, seqs[i]);
        g_assert_cmpuint(t[i]->data->len, ==, CCID_HDR + le32(t[i]->data->data + 1));
        for (int j = i + 1; j < 3; j++) {
            g_assert_false(t[j]->done);
        }
    }
    for (int i = 0; i < 3; i++) {
        g_assert_cmpuint(t[i]->completions, ==, 1);
        urh_transfer_release(c->usb, t[i]);
    }
    assert_no_more_answers(c);
}

static void test_cancel_bulk_in(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    UrhTransfer *t = urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size);

    urh_idle(c->usb, 50);
    g_assert_false(t->done);
    urh_cancel(c->usb, t);
    g_assert_true(urh_wait(c->usb, t, URH_TIMEOUT_MS));
    g_assert_cmpuint(t->status, ==, usb_redir_cancelled);
    urh_transfer_release(c->usb, t);
    /* The next answer goes to the next request, not to the cancelled one. */
    assert_slot_works(c);
    assert_no_more_answers(c);
}


/*
 * A host that sends far more commands than the reader queues before reading
 * any answer: the reader may hold bulk-out packets (flow control) but must
 * answer every command, once, in order.
 */
static void test_flood(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    enum { N = 100 };
    UrhTransfer *outs[N];
    uint8_t seqs[N];
    g_byte_array_unref(ccid_power_on(c));

    for (int i = 0; i < N; i++) {
        uint8_t msg[CCID_HDR + sizeof(select_pki0)];
        bool xfr = i % 3 != 0;

        seqs[i] = ccid_build(c, msg, xfr ? PC_to_RDR_XfrBlock : PC_to_RDR_GetSlotStatus, 0,
                             xfr ? sizeof(select_pki0) : 0, 0, 0, 0);
        memcpy(msg + CCID_HDR, select_pki0, sizeof(select_pki0));
        outs[i] = urh_bulk_submit(c->usb, c->ep_bulk_out, msg,
                                  xfr ? sizeof(msg) : CCID_HDR);
    }
    for (int i = 0; i < N; i++) {
        g_autoptr(CcidAnswer) a = ccid_read_answer(c, URH_TIMEOUT_MS);

        ccid_check_answer(a, i % 3 ? RDR_to_PC_DataBlock : RDR_to_PC_SlotStatus, 0, seqs[i]);
        assert_ok(a);
    }
    for (int i = 0; i < N; i++) {
        g_assert_true(urh_wait(c->usb, outs[i], URH_TIMEOUT_MS));
        g_assert_cmpuint(outs[i]->status, ==, usb_redir_success);
        g_assert_cmpuint(outs[i]->completions, ==, 1);
        urh_transfer_release(c->usb, outs[i]);
    }
    assert_no_more_answers(c);
}

/* A bus reset while a bulk-in waits for the answer to an APDU. */
static void test_reset_pending_bulk_in(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t msg[CCID_HDR + sizeof(select_pki0)];
    UrhTransfer *t;
    uint8_t cfg;
    g_byte_array_unref(ccid_power_on(c));

    /* Three APDUs and a GetSlotStatus queued, the first answer awaited. */
    for (int i = 0; i < 4; i++) {
        bool xfr = i < 3;

        ccid_build(c, msg, xfr ? PC_to_RDR_XfrBlock : PC_to_RDR_GetSlotStatus, 0,
                   xfr ? sizeof(select_pki0) : 0, 0, 0, 0);
        memcpy(msg + CCID_HDR, select_pki0, sizeof(select_pki0));
        ccid_send_raw(c, msg, xfr ? sizeof(msg) : CCID_HDR);
    }
    t = urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size);
    urh_reset(c->usb);
    /* As QEMU does on reset: cancel what is in flight. */
    urh_cancel(c->usb, t);
    g_assert_true(urh_wait(c->usb, t, URH_TIMEOUT_MS));
    g_assert_cmpuint(t->completions, ==, 1);
    urh_transfer_release(c->usb, t);

    /* After a reset the host configures the device again. */
    g_assert_true(urh_device_connected(c->usb));
    g_assert_cmpint(urh_set_configuration(c->usb, 1, &cfg), ==, usb_redir_success);
    c->seq = 0x40;
    /* Nothing from before the reset may come out now. */
    g_autoptr(GByteArray) atr2 = ccid_power_on(c);
    check_atr(atr2);
    g_autoptr(GByteArray) r = ccid_transmit(c, select_pki0, sizeof(select_pki0));
    g_assert_true(apdu_sw(r) == 0x9000 || (apdu_sw(r) >> 8) == 0x61);
    assert_no_more_answers(c);
}

/* ---- interrupt endpoint ---- */

static void check_notify(const CcidHost *c, const GByteArray *n, bool present)
{
    unsigned bytes = 1 + ((c->desc.bMaxSlotIndex + 1) * 2 + 7) / 8;

    g_assert_nonnull(n);
    g_assert_cmpuint(n->len, ==, bytes);
    g_assert_cmphex(n->data[0], ==, RDR_to_PC_NotifySlotChange);
    g_assert_cmpuint(n->data[1] & 1, ==, present);
    /* Slots that do not exist report nothing. */
    g_assert_cmpuint(n->data[1] & 0xfc, ==, 0);
}

static void test_notify_slot_change(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    g_autoptr(GByteArray) n = NULL;

    g_assert_cmpint(urh_start_interrupt_receiving(c->usb, c->ep_int_in), ==,
                    usb_redir_success);
    /* The card is in the slot: the reader reports it. */
    n = urh_wait_interrupt(c->usb, c->ep_int_in, URH_TIMEOUT_MS);
    if (!n) {
        g_error("no NotifySlotChange within %d ms of starting interrupt-in", URH_TIMEOUT_MS);
    }
    check_notify(c, n, true);
    /* Powering the card does not change the slot. */
    g_byte_array_unref(ccid_power_on(c));
    urh_idle(c->usb, 200);
    g_assert_cmpuint(urh_interrupt_pending(c->usb), ==, 0);
    g_assert_cmpint(urh_stop_interrupt_receiving(c->usb, c->ep_int_in), ==,
                    usb_redir_success);
}

static void test_no_card(void)
{
    VccidProcess *v = vccid_start_no_card();
    CcidHost *c = ccid_host_open(v->sock_path);
    g_autoptr(CcidAnswer) st = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, 0, 0, NULL, 0);
    g_autoptr(CcidAnswer) on = NULL;
    g_autoptr(CcidAnswer) xfr = NULL;
    g_autoptr(GByteArray) n = NULL;

    g_assert_cmpuint(ICC_STATUS(st->status), ==, ICC_ABSENT);
    on = ccid_command(c, PC_to_RDR_IccPowerOn, 0, 0, 0, NULL, 0);
    assert_failed(on, CCID_ERR_ICC_MUTE);
    g_assert_cmpuint(ICC_STATUS(on->status), ==, ICC_ABSENT);
    g_assert_cmpuint(on->dwLength, ==, 0);
    xfr = ccid_command(c, PC_to_RDR_XfrBlock, 0, 0, 0, select_pki0, sizeof(select_pki0));
    assert_failed(xfr, CCID_ERR_ICC_MUTE);
    g_assert_cmpuint(ICC_STATUS(xfr->status), ==, ICC_ABSENT);

    /* If the reader reports the empty slot, it says "absent". */
    g_assert_cmpint(urh_start_interrupt_receiving(c->usb, c->ep_int_in), ==,
                    usb_redir_success);
    n = urh_wait_interrupt(c->usb, c->ep_int_in, 300);
    if (n) {
        check_notify(c, n, false);
    }
    g_assert_cmpuint(urh_stray_completions(c->usb), ==, 0);
    ccid_host_free(c);
    vccid_stop(v);
}

/* ---- the host goes away and comes back ---- */

static void use_reader(CcidHost *c)
{
    g_autoptr(GByteArray) atr = ccid_power_on(c);
    g_autoptr(GByteArray) r = NULL;

    check_atr(atr);
    select_pki(c, 0);
    r = read_buffer(c, 0, 2);
    g_assert_cmphex(apdu_sw(r), ==, 0x9000);
}

static void test_reconnect(Fixture *f, gconstpointer data)
{
    use_reader(f->c);
    for (int round = 0; round < 3; round++) {
        /* The host leaves abruptly, as a killed QEMU does. */
        g_assert_cmpuint(urh_stray_completions(f->c->usb), ==, 0);
        ccid_host_free(f->c);
        f->c = ccid_host_open(f->vccid->sock_path);
        f->c->seq = 0x80 + round;
        use_reader(f->c);
        assert_no_more_answers(f->c);
    }
    g_assert_true(vccid_is_running(f->vccid));
}

/* The host leaves with an APDU in flight: the next host sees none of it. */
static void test_reconnect_in_flight(Fixture *f, gconstpointer data)
{
    uint8_t msg[CCID_HDR + sizeof(select_pki0)];
    g_byte_array_unref(ccid_power_on(f->c));

    for (int i = 0; i < 3; i++) {
        ccid_build(f->c, msg, PC_to_RDR_XfrBlock, 0, sizeof(select_pki0), 0, 0, 0);
        memcpy(msg + CCID_HDR, select_pki0, sizeof(select_pki0));
        ccid_send_raw(f->c, msg, sizeof(msg));
    }
    urh_bulk_submit(f->c->usb, f->c->ep_bulk_in, NULL, f->c->bulk_in_size);
    ccid_host_free(f->c);

    f->c = ccid_host_open(f->vccid->sock_path);
    f->c->seq = 0xc0;
    {
        g_autoptr(CcidAnswer) st = ccid_command(f->c, PC_to_RDR_GetSlotStatus, 0, 0, 0,
                                                NULL, 0);
        assert_ok(st);
    }
    use_reader(f->c);
    assert_no_more_answers(f->c);
}


/*
 * ABORT with a command in flight (CCID 5.3.1): the command gets its own
 * answer (its result, or CMD_ABORTED), then the Abort gets a SlotStatus.
 */
static void test_abort_in_flight(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t xfr[CCID_HDR + sizeof(select_pki0)], abort_msg[CCID_HDR];
    g_byte_array_unref(ccid_power_on(c));
    g_autoptr(CcidAnswer) first = NULL;
    g_autoptr(CcidAnswer) second = NULL;
    uint8_t s1, s2;

    s1 = ccid_build(c, xfr, PC_to_RDR_XfrBlock, 0, sizeof(select_pki0), 0, 0, 0);
    memcpy(xfr + CCID_HDR, select_pki0, sizeof(select_pki0));
    ccid_send_raw(c, xfr, sizeof(xfr));
    s2 = ccid_build(c, abort_msg, PC_to_RDR_Abort, 0, 0, 0, 0, 0);
    g_assert_cmpint(urh_control(c->usb, 0x21, CCID_REQ_ABORT, s2 << 8, c->ifnum, NULL, 0,
                                NULL, URH_TIMEOUT_MS), ==, usb_redir_success);
    ccid_send_raw(c, abort_msg, sizeof(abort_msg));

    first = ccid_read_answer(c, URH_TIMEOUT_MS);
    ccid_check_answer(first, RDR_to_PC_DataBlock, 0, s1);
    if (CMD_STATUS(first->status) != CMD_OK) {
        g_assert_cmphex(first->error, ==, CCID_ERR_CMD_ABORTED);
    }
    second = ccid_read_answer(c, URH_TIMEOUT_MS);
    ccid_check_answer(second, RDR_to_PC_SlotStatus, 0, s2);
    assert_ok(second);
    select_pki(c, 0);
    assert_no_more_answers(c);
}

/* Many short APDUs in a row: none lost, and how fast (for the record). */
static void test_throughput(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    enum { N = 500 };
    g_autoptr(GArray) lat = g_array_sized_new(FALSE, FALSE, sizeof(gint64), N);
    g_byte_array_unref(ccid_power_on(c));
    gint64 start = g_get_monotonic_time(), total;

    for (int i = 0; i < N; i++) {
        gint64 t0 = g_get_monotonic_time();
        g_autoptr(GByteArray) r = ccid_xfr_apdu(c, select_pki0, sizeof(select_pki0));
        gint64 dt = g_get_monotonic_time() - t0;

        g_assert_true(apdu_sw(r) == 0x9000 || (apdu_sw(r) >> 8) == 0x61);
        g_array_append_val(lat, dt);
    }
    total = g_get_monotonic_time() - start;
    g_array_sort(lat, (GCompareFunc)compare_gint64);
    g_test_message("%d SELECTs over usbredir: %.0f APDU/s, p50 %.3f ms, p99 %.3f ms", N,
                   N * 1e6 / total, g_array_index(lat, gint64, N / 2) / 1e3,
                   g_array_index(lat, gint64, N * 99 / 100) / 1e3);
    assert_no_more_answers(c);
}

/* A new host (a rebooted guest) is told about the card on interrupt-in. */
static void test_reconnect_notify(Fixture *f, gconstpointer data)
{
    g_byte_array_unref(ccid_power_on(f->c));

    ccid_host_free(f->c);
    f->c = ccid_host_open(f->vccid->sock_path);
    g_assert_cmpint(urh_start_interrupt_receiving(f->c->usb, f->c->ep_int_in), ==,
                    usb_redir_success);
    g_autoptr(GByteArray) n = urh_wait_interrupt(f->c->usb, f->c->ep_int_in, URH_TIMEOUT_MS);
    if (!n) {
        g_error("the new host got no NotifySlotChange within %d ms", URH_TIMEOUT_MS);
    }
    check_notify(f->c, n, true);
    /* The card is still there for the new host, and works. */
    g_autoptr(CcidAnswer) st = ccid_command(f->c, PC_to_RDR_GetSlotStatus, 0, 0, 0, NULL, 0);
    assert_ok(st);
    g_assert_cmpuint(ICC_STATUS(st->status), !=, ICC_ABSENT);
    use_reader(f->c);
}


/* A second host waits while the first is served, then gets the device. */
/*
 * A second host while one is served is closed at once: left in the backlog
 * it would hold its port and be served the moment the first host leaves.
 */
static void test_second_host_refused(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    UsbredirHost *second = urh_connect_raw(f->vccid->sock_path, URH_TIMEOUT_MS, &error);
    g_autofree char *log = NULL;
    gint64 deadline = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;

    g_assert_no_error(error);
    while (urh_peer_alive(second) && g_get_monotonic_time() < deadline) {
        urh_iterate(second, 50);
    }
    g_assert_false(urh_peer_alive(second));
    g_assert_false(urh_got_hello(second));
    urh_free(second);
    log = vccid_read_stderr(f->vccid);
    g_assert_nonnull(strstr(log, "second client refused"));
    /* The first host is not disturbed. */
    use_reader(f->c);
    assert_no_more_answers(f->c);
    ccid_host_free(f->c);
    /* Once it has left, the next host is served. */
    f->c = ccid_host_open(f->vccid->sock_path);
    f->c->seq = 0x33;
    use_reader(f->c);
}

/* A peer that sends bytes that are not usbredir does not hurt the daemon. */
static void test_garbage_peer(Fixture *f, gconstpointer data)
{
    uint8_t junk[4096];

    ccid_host_free(f->c);
    f->c = NULL;
    for (int round = 0; round < 3; round++) {
        g_autoptr(GError) error = NULL;
        UsbredirHost *h = urh_connect_raw(f->vccid->sock_path, URH_TIMEOUT_MS, &error);

        g_assert_no_error(error);
        for (size_t i = 0; i < sizeof(junk); i++) {
            junk[i] = (i * 7 + round * 13) ^ 0x5a;
        }
        /* Bytes as if written at the peer's end, ahead of any hello. */
        g_assert_cmpint(write(urh_fd(h), junk, sizeof(junk)), >, 0);
        urh_free(h);
    }
    f->c = ccid_host_open(f->vccid->sock_path);
    use_reader(f->c);
    g_assert_true(vccid_is_running(f->vccid));
}

/* The usbredir chardev on TCP (host=, port=), as QEMU's socket chardev uses it. */
static void test_tcp_server(void)
{
    uint16_t port = qtest_free_tcp_port();
    g_autofree char *chardev = g_strdup_printf("socket,id=redir,host=127.0.0.1,port=%u,"
                                               "server=on,wait=off", port);
    VccidProcess *v = vccid_start_full(chardev, vccid_default_devices, false);
    g_autoptr(GError) error = NULL;
    UsbredirHost *usb = urh_connect_tcp(port, VCCID_START_TIMEOUT_MS, &error);
    CcidHost *c;

    g_assert_no_error(error);
    c = ccid_host_new(usb);
    use_reader(c);
    ccid_host_free(c);
    /* And again, on a new connection. */
    c = ccid_host_new(urh_connect_tcp(port, URH_TIMEOUT_MS, &error));
    g_assert_no_error(error);
    use_reader(c);
    ccid_host_free(c);
    vccid_stop(v);
}

/* vccid as the client (server=off, reconnect=): it comes back after the host leaves. */
static void test_client_reconnect(void)
{
    g_autofree char *dir = g_dir_make_tmp("vccid-listen-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "host.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=redir,path=%s,server=off,"
                                               "reconnect=1", path);
    int lfd = qtest_unix_listen(path);
    VccidProcess *v = vccid_start_full(chardev, vccid_default_devices, false);

    for (int round = 0; round < 2; round++) {
        g_autoptr(GError) error = NULL;
        int fd = qtest_accept(lfd, VCCID_START_TIMEOUT_MS);
        UsbredirHost *usb;
        CcidHost *c;

        if (fd < 0) {
            g_error("vccid did not connect (round %d) within %d ms", round,
                    VCCID_START_TIMEOUT_MS);
        }
        usb = urh_new_from_fd(fd, URH_TIMEOUT_MS, &error);
        g_assert_no_error(error);
        c = ccid_host_new(usb);
        c->seq = round * 0x50;
        use_reader(c);
        ccid_host_free(c);
    }
    close(lfd);
    vccid_stop(v);
    g_unlink(path);
    g_rmdir(dir);
}


/* The host leaves with commands queued and bulk-out packets held. */
static void test_leave_during_flood(Fixture *f, gconstpointer data)
{
    g_byte_array_unref(ccid_power_on(f->c));

    for (int i = 0; i < 100; i++) {
        uint8_t msg[CCID_HDR + sizeof(select_pki0)];

        ccid_build(f->c, msg, PC_to_RDR_XfrBlock, 0, sizeof(select_pki0), 0, 0, 0);
        memcpy(msg + CCID_HDR, select_pki0, sizeof(select_pki0));
        urh_bulk_submit(f->c->usb, f->c->ep_bulk_out, msg, sizeof(msg));
    }
    for (int i = 0; i < 5; i++) {
        g_autoptr(CcidAnswer) a = ccid_read_answer(f->c, URH_TIMEOUT_MS);
        assert_ok(a);
    }
    for (int i = 0; i < 4; i++) {
        urh_bulk_submit(f->c->usb, f->c->ep_bulk_in, NULL, f->c->bulk_in_size);
    }
    ccid_host_free(f->c);
    f->c = ccid_host_open(f->vccid->sock_path);
    f->c->seq = 0x90;
    use_reader(f->c);
    assert_no_more_answers(f->c);
}

/* ---- command line ---- */

static unsigned count_lines(const char *s)
{
    unsigned n = 0;
    g_auto(GStrv) lines = g_strsplit(s, "\n", -1);

    for (int i = 0; lines[i]; i++) {
        n += lines[i][0] != '\0';
    }
    return n;
}

static void test_cli_help(void)
{
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int st = vccid_run_cli((const char *[]){ "--help", NULL }, &out, &err);

    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    g_assert_nonnull(strstr(out, "-device"));
    g_assert_nonnull(strstr(out, "-chardev"));
    g_assert_nonnull(strstr(out, "-export"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    st = vccid_run_cli((const char *[]){ "-h", NULL }, &out, &err);
    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    g_assert_nonnull(strstr(out, "-device"));
}

static void test_cli_version(void)
{
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    const char *version = g_getenv("VCCID_VERSION");
    int st = vccid_run_cli((const char *[]){ "--version", NULL }, &out, &err);

    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    g_assert_nonnull(version);
    g_assert_nonnull(strstr(out, version));
}

static void test_cli_device_help(void)
{
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int st = vccid_run_cli((const char *[]){ "-device", "help", NULL }, &out, &err);

    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    g_assert_nonnull(strstr(out, "usb-ccid"));
    g_assert_nonnull(strstr(out, "ccid-card-emulated"));
    g_assert_nonnull(strstr(out, "ccid-card-passthru"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    st = vccid_run_cli((const char *[]){ "-device", "usb-ccid,help", NULL }, &out, &err);
    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    g_assert_nonnull(strstr(out, "serial"));
    g_assert_nonnull(strstr(out, "speed"));
    g_assert_nonnull(strstr(out, "0x08e6"));       /* defaults are listed */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    st = vccid_run_cli((const char *[]){ "-device", "ccid-card-emulated,help", NULL },
                       &out, &err);
    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (int i = 0; i < 5; i++) {
        static const char *const props[] = { "backend", "db", "cert1", "cert2", "cert3" };
        g_assert_nonnull(strstr(out, props[i]));
    }
}

/* A bad command line exits 2 with one line naming the culprit (or one of culprits). */
static void expect_cli_error_any(const char *const *args, const char *const *culprits)
{
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int st = vccid_run_cli(args, &out, &err);
    bool named = false;

    g_test_message("stderr: %s", err);
    g_assert_true(WIFEXITED(st));
    g_assert_cmpint(WEXITSTATUS(st), ==, 2);
    g_assert_cmpuint(count_lines(err), ==, 1);
    for (int i = 0; culprits[i]; i++) {
        named |= strstr(err, culprits[i]) != NULL;
    }
    if (!named) {
        g_error("the error message does not name %s: %s", culprits[0], err);
    }
}

static void expect_cli_error(const char *const *args, const char *culprit)
{
    expect_cli_error_any(args, (const char *[]){ culprit, NULL });
}

static void test_cli_errors(void)
{
    g_autofree char *dir = g_dir_make_tmp("vccid-cli-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "s.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=r,path=%s,server=on,wait=off", sock);

    expect_cli_error((const char *[]){ "--bogus-option", NULL }, "--bogus-option");
    expect_cli_error((const char *[]){ "-device", "no-such-device", NULL }, "no-such-device");
    expect_cli_error((const char *[]){ "-device", "usb-ccid,bogusprop=1", NULL }, "bogusprop");
    expect_cli_error((const char *[]){ "-device", "usb-ccid,vendorid=xyz", NULL }, "xyz");
    expect_cli_error((const char *[]){ "-device", "usb-ccid,vendorid=0x123456", NULL },
                     "vendorid");
    expect_cli_error_any((const char *[]){ "-chardev", "socket,id=r", "-device", "usb-ccid",
                                           "-export", "usbredir,chardev=r", NULL },
                         (const char *[]){ "path", "host", NULL });
    expect_cli_error((const char *[]){ "-chardev", "pipe,id=r,path=/x", "-device", "usb-ccid",
                                       "-export", "usbredir,chardev=r", NULL }, "pipe");
    expect_cli_error((const char *[]){ "-device", "usb-ccid", "-export",
                                       "usbredir,chardev=nope", NULL }, "nope");
    expect_cli_error((const char *[]){ "-device", NULL }, "-device");
    /* Nothing half-starts: a bad option after a good chardev leaves no socket. */
    expect_cli_error((const char *[]){ "-chardev", chardev, "-device", "usb-ccid,speed=warp",
                                       "-export", "usbredir,chardev=r", NULL }, "warp");
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    g_rmdir(dir);
}

/*
 * A reader exported nowhere cannot be reached: a usage error, like giving
 * no device at all.
 */
static void test_cli_no_export(void)
{
    expect_cli_error((const char *[]){ "-device", "usb-ccid", NULL }, "-export");
}

/* A socket that cannot be created: the message names it. */
static void test_cli_bind_error(void)
{
    expect_cli_error((const char *[]){ "-chardev",
                                       "socket,id=r,path=/nonexistent/s,server=on,wait=off",
                                       "-device", "usb-ccid", "-export", "usbredir,chardev=r",
                                       NULL }, "/nonexistent/s");
}

/* A card libcacard cannot make fails the start, naming the culprit, and leaves no socket. */
static void test_cli_card_errors(void)
{
    g_autofree char *dir = g_dir_make_tmp("vccid-cli-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "s.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=r,path=%s,server=on,wait=off", sock);
    g_autofree char *db = g_strconcat("db=sql:", vccid_master_cert_db(), NULL);
    g_autofree char *two = g_strdup_printf("ccid-card-emulated,backend=certificates,%s,"
                                           "cert1=id-cert,cert2=signing-cert", db);
    g_autofree char *bad = g_strdup_printf("ccid-card-emulated,backend=smoke,%s", db);
    g_autofree char *missing = g_strdup_printf("ccid-card-emulated,backend=certificates,%s,"
                                               "cert1=id-cert,cert2=signing-cert,"
                                               "cert3=no-such-cert", db);

    expect_cli_error((const char *[]){ "-chardev", chardev, "-device", "usb-ccid",
                                       "-device", two, "-export", "usbredir,chardev=r",
                                       NULL }, "cert3");
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    expect_cli_error((const char *[]){ "-chardev", chardev, "-device", "usb-ccid",
                                       "-device", bad, "-export", "usbredir,chardev=r",
                                       NULL }, "smoke");
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    expect_cli_error((const char *[]){ "-chardev", chardev, "-device", "usb-ccid",
                                       "-device", missing, "-export", "usbredir,chardev=r",
                                       NULL }, "no-such-cert");
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    g_rmdir(dir);
}

/*
 * Every test, by path under /usb-ccid/. meson.build registers each path as
 * its own meson test (so one failure does not hide the others); the
 * "meta/all-registered" test checks that the two lists agree.
 */
typedef struct QTestCase {
    const char *path;
    void (*fixture_fn)(Fixture *f, gconstpointer data);   /* with a running vccid */
    void (*plain_fn)(void);                               /* starts what it needs */
} QTestCase;

static const QTestCase cases[] = {
    { "descriptors/device", test_device_descriptor, NULL },
    { "descriptors/configuration", test_config_descriptor, NULL },
    { "descriptors/ccid-class", test_class_descriptor, NULL },
    { "descriptors/strings", test_string_descriptors, NULL },
    { "usbredir/caps", test_usbredir_caps, NULL },
    { "properties", NULL, test_properties },
    { "high-speed", NULL, test_high_speed },
    { "configuration", test_configuration, NULL },
    { "class-requests", test_class_requests, NULL },
    { "abort", test_abort, NULL },
    { "abort-in-flight", test_abort_in_flight, NULL },
    { "slot/power-on", test_power_on, NULL },
    { "slot/power-off", test_power_off, NULL },
    { "slot/parameters", test_parameters, NULL },
    { "slot/escape", test_escape, NULL },
    { "slot/icc-clock", test_icc_clock, NULL },
    { "slot/t0apdu", test_t0apdu, NULL },
    { "slot/secure", test_secure, NULL },
    { "slot/mechanical", test_mechanical, NULL },
    { "slot/set-data-rate", test_set_data_rate, NULL },
    { "slot/unknown-message", test_unknown_message, NULL },
    { "slot/no-card", NULL, test_no_card },
    { "apdu/select-read-cert", test_select_and_read_cert, NULL },
    { "apdu/response-lengths", test_response_lengths, NULL },
    { "apdu/response-lengths-packetwise", test_response_lengths_packetwise, NULL },
    { "apdu/max-message-length", test_max_message_length, NULL },
    { "apdu/extended", test_extended_apdu, NULL },
    { "apdu/long-response", test_long_response, NULL },
    { "apdu/long-response-packetwise", test_long_response_packetwise, NULL },
    { "apdu/throughput", test_throughput, NULL },
    { "malformed/bad-slot", test_bad_slot, NULL },
    { "malformed/length-mismatch", test_length_mismatch, NULL },
    { "malformed/too-long", test_too_long, NULL },
    { "malformed/short-header", test_short_header, NULL },
    { "malformed/bad-chain", test_bad_chain, NULL },
    { "standard-requests", test_standard_requests, NULL },
    { "short-control-reads", test_short_control_reads, NULL },
    { "bulk/packetwise-out", test_packetwise_bulk_out, NULL },
    { "bulk/pipelined", test_pipelined_commands, NULL },
    { "bulk/pending-in", test_pending_bulk_in, NULL },
    { "bulk/flood", test_flood, NULL },
    { "bulk/cancel-in", test_cancel_bulk_in, NULL },
    { "bulk/reset-pending-in", test_reset_pending_bulk_in, NULL },
    { "interrupt/notify-slot-change", test_notify_slot_change, NULL },
    { "host/reconnect", test_reconnect, NULL },
    { "host/reconnect-in-flight", test_reconnect_in_flight, NULL },
    { "host/reconnect-notify", test_reconnect_notify, NULL },
    { "host/second-refused", test_second_host_refused, NULL },
    { "host/garbage-peer", test_garbage_peer, NULL },
    { "host/leave-during-flood", test_leave_during_flood, NULL },
    { "host/tcp-server", NULL, test_tcp_server },
    { "host/client-reconnect", NULL, test_client_reconnect },
    { "cli/help", NULL, test_cli_help },
    { "cli/version", NULL, test_cli_version },
    { "cli/device-help", NULL, test_cli_device_help },
    { "cli/errors", NULL, test_cli_errors },
    { "cli/no-export", NULL, test_cli_no_export },
    { "cli/bind-error", NULL, test_cli_bind_error },
    { "cli/card-errors", NULL, test_cli_card_errors },
};

static void test_all_registered(void)
{
    const char *listed = g_getenv("VCCID_QTEST_PATHS");
    g_auto(GStrv) names = NULL;

    if (!listed) {
        g_test_skip("VCCID_QTEST_PATHS is not set (run with meson test)");
        return;
    }
    names = g_strsplit(listed, " ", -1);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        if (!g_strv_contains((const char *const *)names, cases[i].path)) {
            g_error("test %s is missing from tests/qtest/meson.build", cases[i].path);
        }
    }
    /* A path meson runs that no case has would "pass" by running nothing. */
    for (int i = 0; names[i]; i++) {
        bool found = false;

        for (size_t j = 0; j < G_N_ELEMENTS(cases); j++) {
            found |= !strcmp(names[i], cases[j].path);
        }
        if (!found) {
            g_error("meson.build lists %s, which test-usb-ccid.c does not have", names[i]);
        }
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path = g_strconcat("/usb-ccid/", cases[i].path, NULL);

        if (cases[i].fixture_fn) {
            g_test_add(path, Fixture, NULL, fixture_setup, cases[i].fixture_fn,
                       fixture_teardown);
        } else {
            g_test_add_func(path, cases[i].plain_fn);
        }
    }
    g_test_add_func("/usb-ccid/meta/all-registered", test_all_registered);
    return g_test_run();
}
