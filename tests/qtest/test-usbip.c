/*
 * qtests of the USB/IP export: the real vccid binary, driven over TCP on
 * loopback by a USB/IP importer (usbip-host.c) that behaves as Linux's
 * usbip tool and vhci-hcd do.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libqtest-vccid.h"
#include "usbip-host.h"
#include "usbredir-host.h"

#define PC_to_RDR_IccPowerOn   0x62
#define PC_to_RDR_GetSlotStatus 0x65
#define PC_to_RDR_XfrBlock     0x6f
#define RDR_to_PC_DataBlock    0x80
#define RDR_to_PC_SlotStatus   0x81
#define RDR_to_PC_NotifySlotChange 0x50
/* bmCommandStatus 2 in bStatus: the card still works, the answer follows. */
#define CCID_TIME_EXTENSION(status) (((status) >> 6) == 2)
#define BULK_IN_SIZE (65536 + 10)

/* SELECT of the CAC PKI applet 0 (answers 9000 or 61xx). */
static const uint8_t select_pki0[] = {
    0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00,
};

typedef struct Fixture {
    VccidProcess *vccid;
    uint16_t port;
} Fixture;

/* A reader with the emulated card (r1), a high-speed empty reader (r2). */
static void fixture_start_traced(Fixture *f, bool two, const char *trace)
{
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    static const char card[] = "ccid-card-emulated,backend=certificates,db=@DB@,"
                               "cert1=id-cert,cert2=signing-cert,cert3=encryption-cert";
    static const char *const devices[] = {
        "-device", "usb-ccid,id=r1", "-device", card, "-device", "usb-ccid,id=r2,speed=high",
    };

    f->port = qtest_free_tcp_port();
    for (size_t i = 0; i < G_N_ELEMENTS(devices); i++) {
        g_ptr_array_add(args, g_strdup(devices[i]));
    }
    g_ptr_array_add(args, g_strdup("-export"));
    g_ptr_array_add(args, g_strdup_printf("usbip,device=r1,port=%u", f->port));
    if (two) {
        g_ptr_array_add(args, g_strdup("-export"));
        g_ptr_array_add(args, g_strdup_printf("usbip,device=r2,host=127.0.0.1,port=%u", f->port));
    }
    if (trace) {
        g_ptr_array_add(args, g_strdup("-trace"));
        g_ptr_array_add(args, g_strdup(trace));
    }
    g_ptr_array_add(args, NULL);
    f->vccid = vccid_start((const char *const *)args->pdata);
}

static void fixture_start(Fixture *f, bool two)
{
    fixture_start_traced(f, two, NULL);
}

static void fixture_stop(Fixture *f)
{
    g_assert_true(vccid_is_running(f->vccid));
    vccid_stop(f->vccid);
}

static UsbipHost *import_ok(Fixture *f, const char *busid)
{
    g_autoptr(GError) err = NULL;
    uint32_t status = 0xdead;
    UsbipHost *h = uih_import(f->port, busid, &status, &err);

    g_assert_no_error(err);
    g_assert_nonnull(h);
    g_assert_cmpuint(status, ==, USBIP_ST_OK);
    return h;
}

/* Import again until the server has seen the previous importer leave. */
static UsbipHost *import_retry(Fixture *f, const char *busid)
{
    for (int i = 0; i < 200; i++) {
        g_autoptr(GError) err = NULL;
        uint32_t status = 0;
        UsbipHost *h = uih_import(f->port, busid, &status, &err);

        g_assert_no_error(err);
        if (h) {
            return h;
        }
        g_usleep(10000);
    }
    g_assert_not_reached();
}

/* ---- a minimal CCID host on top ---- */

typedef struct Ccid {
    UsbipHost *h;
    uint8_t ep_bulk_out, ep_bulk_in, ep_int_in;
    uint8_t seq;
} Ccid;

/* As Linux enumerates: device descriptor, configuration, SET_CONFIGURATION(1). */
static void ccid_setup(Ccid *c, UsbipHost *h)
{
    uint8_t buf[512];
    uint32_t actual = 0;
    uint16_t total;

    memset(c, 0, sizeof(*c));
    c->h = h;
    g_assert_cmpint(uih_control(h, 0x80, 0x06, 0x0100, 0, buf, 64, &actual), ==, 0);
    g_assert_cmpuint(actual, ==, 18);
    g_assert_cmpuint(buf[1], ==, 0x01);
    g_assert_cmpint(uih_control(h, 0x80, 0x06, 0x0200, 0, buf, 9, &actual), ==, 0);
    g_assert_cmpuint(actual, ==, 9);
    total = buf[2] | buf[3] << 8;
    g_assert_cmpuint(total, <=, sizeof(buf));
    g_assert_cmpint(uih_control(h, 0x80, 0x06, 0x0200, 0, buf, total, &actual), ==, 0);
    g_assert_cmpuint(actual, ==, total);
    for (unsigned pos = 0; pos + 2 <= total && buf[pos] >= 2; pos += buf[pos]) {
        if (buf[pos + 1] == 0x05) {
            uint8_t addr = buf[pos + 2], type = buf[pos + 3] & 3;

            if (type == 2 && !(addr & 0x80)) {
                c->ep_bulk_out = addr & 0x0f;
            } else if (type == 2) {
                c->ep_bulk_in = addr & 0x0f;
            } else if (type == 3) {
                c->ep_int_in = addr & 0x0f;
            }
        }
    }
    g_assert_cmpuint(c->ep_bulk_out, !=, 0);
    g_assert_cmpuint(c->ep_bulk_in, !=, 0);
    g_assert_cmpuint(c->ep_int_in, !=, 0);
    g_assert_cmpint(uih_control(h, 0x00, 0x09, 1, 0, NULL, 0, NULL), ==, 0);
}

static void ccid_send(Ccid *c, uint8_t type, uint8_t p1, const uint8_t *data, uint32_t len)
{
    g_autofree uint8_t *msg = g_malloc0(10 + len);

    msg[0] = type;
    msg[1] = len;
    msg[2] = len >> 8;
    msg[3] = len >> 16;
    msg[4] = len >> 24;
    msg[6] = c->seq;
    msg[7] = p1;
    if (len) {
        memcpy(msg + 10, data, len);
    }
    g_assert_cmpint(uih_bulk_out(c->h, c->ep_bulk_out, msg, 10 + len), ==, 0);
}

/* The answer to the last command (time extensions skipped). */
static GByteArray *ccid_answer(Ccid *c, uint8_t type)
{
    for (;;) {
        GByteArray *a = NULL;

        g_assert_cmpint(uih_bulk_in(c->h, c->ep_bulk_in, BULK_IN_SIZE, &a), ==, 0);
        g_assert_cmpuint(a->len, >=, 10);
        g_assert_cmpuint(a->data[6], ==, c->seq);
        if (CCID_TIME_EXTENSION(a->data[7])) {
            g_byte_array_unref(a);
            continue;
        }
        g_assert_cmpuint(a->data[0], ==, type);
        g_assert_cmpuint(a->len, ==, 10 + (a->data[1] | a->data[2] << 8 | a->data[3] << 16));
        c->seq++;
        return a;
    }
}

static GByteArray *ccid_command(Ccid *c, uint8_t type, uint8_t p1, const uint8_t *data,
                                uint32_t len, uint8_t answer_type)
{
    ccid_send(c, type, p1, data, len);
    return ccid_answer(c, answer_type);
}

/* The emulated card is inserted once its NSS database is open, a little after start-up. */
static void ccid_wait_card(Ccid *c)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)UIH_TIMEOUT_MS * 1000;

    for (;;) {
        g_autoptr(GByteArray) a = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, NULL, 0,
                                               RDR_to_PC_SlotStatus);

        if ((a->data[7] & 0x03) != 2) {
            return;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(20000);
    }
}

/* Wait for the card, PowerOn; returns the ATR. */
static GByteArray *ccid_power_on(Ccid *c)
{
    g_autoptr(GByteArray) a = NULL;
    GByteArray *atr = g_byte_array_new();

    ccid_wait_card(c);
    a = ccid_command(c, PC_to_RDR_IccPowerOn, 0, NULL, 0, RDR_to_PC_DataBlock);

    g_assert_cmpuint(a->data[7] & 0x03, ==, 0);    /* ICC present and active */
    g_byte_array_append(atr, a->data + 10, a->len - 10);
    return atr;
}

static uint16_t ccid_select_pki(Ccid *c)
{
    g_autoptr(GByteArray) a = ccid_command(c, PC_to_RDR_XfrBlock, 0, select_pki0,
                                           sizeof(select_pki0), RDR_to_PC_DataBlock);

    g_assert_cmpuint(a->len, >=, 12);
    return a->data[a->len - 2] << 8 | a->data[a->len - 1];
}

static void ccid_check_alive(Ccid *c)
{
    g_autoptr(GByteArray) a = ccid_command(c, PC_to_RDR_GetSlotStatus, 0, NULL, 0,
                                           RDR_to_PC_SlotStatus);

    g_assert_cmpuint(a->len, ==, 10);
}

/* The reader still answers and the importer saw nothing amiss; then all stop. */
static void import_end(Ccid *c, Fixture *f)
{
    ccid_check_alive(c);
    g_assert_cmpuint(uih_violations(c->h), ==, 0);
    uih_free(c->h);
    fixture_stop(f);
}

/* ---- tests ---- */

static void test_devlist(void)
{
    Fixture f;
    g_autoptr(GError) err = NULL;
    g_autoptr(GArray) devs = NULL;
    const UihDevice *d1, *d2;

    fixture_start(&f, true);
    devs = uih_devlist(f.port, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(devs->len, ==, 2);
    d1 = &g_array_index(devs, UihDevice, 0);
    d2 = &g_array_index(devs, UihDevice, 1);
    g_assert_cmpstr(d1->dev.busid, ==, "1-1");
    g_assert_cmpstr(d2->dev.busid, ==, "1-2");
    g_assert_cmpstr(d1->dev.path, ==, "/vccid/r1");
    g_assert_cmpuint(d1->dev.busnum, ==, 1);
    g_assert_cmpuint(d1->dev.devnum, ==, 1);
    g_assert_cmpuint(d2->dev.devnum, ==, 2);
    /* Linux's enum usb_device_speed: full 2, high 3. */
    g_assert_cmpuint(d1->dev.speed, ==, USBIP_SPEED_FULL);
    g_assert_cmpuint(d2->dev.speed, ==, USBIP_SPEED_HIGH);
    g_assert_cmphex(d1->dev.idVendor, ==, 0x08e6);
    g_assert_cmphex(d1->dev.idProduct, ==, 0x4433);
    g_assert_cmpuint(d1->dev.bDeviceClass, ==, 0);
    g_assert_cmpuint(d1->dev.bNumConfigurations, ==, 1);
    g_assert_cmpuint(d1->dev.bConfigurationValue, ==, 1);
    /* One interface, class 0x0B (Smart Card), subclass 0, protocol 0. */
    g_assert_cmpuint(d1->dev.bNumInterfaces, ==, 1);
    g_assert_cmphex(d1->ifs[0].bInterfaceClass, ==, 0x0b);
    g_assert_cmphex(d1->ifs[0].bInterfaceSubClass, ==, 0x00);
    g_assert_cmphex(d1->ifs[0].bInterfaceProtocol, ==, 0x00);
    g_assert_cmpuint(d2->dev.bNumInterfaces, ==, 1);
    g_assert_cmphex(d2->ifs[0].bInterfaceClass, ==, 0x0b);
    fixture_stop(&f);
}

static void test_import_descriptors(void)
{
    Fixture f;
    UsbipHost *h;
    const UsbipDevice *d;
    uint8_t buf[255];
    uint32_t actual = 0;
    UihUrb *u;
    static const uint8_t get_dev[8] = { 0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00 };

    fixture_start(&f, true);
    h = import_ok(&f, "1-2");
    d = uih_device(h);
    g_assert_cmpstr(d->busid, ==, "1-2");
    g_assert_cmpuint(uih_devid(h), ==, 1u << 16 | 2);
    g_assert_cmpuint(d->speed, ==, USBIP_SPEED_HIGH);

    /* The device descriptor, as vhci asks for it first: 64 bytes, 18 come. */
    g_assert_cmpint(uih_control(h, 0x80, 0x06, 0x0100, 0, buf, 64, &actual), ==, 0);
    g_assert_cmpuint(actual, ==, 18);
    g_assert_cmphex(buf[0], ==, 18);
    g_assert_cmphex(buf[1], ==, 0x01);
    g_assert_cmphex(buf[8] | buf[9] << 8, ==, d->idVendor);
    g_assert_cmphex(buf[10] | buf[11] << 8, ==, d->idProduct);
    g_assert_cmphex(buf[2] | buf[3] << 8, ==, 0x0200);

    /* The raw setup packet decides; usbip-win2's number_of_packets is echoed. */
    uih_set_number_of_packets(h, USBIP_NO_ISO_PACKETS);
    u = uih_submit(h, 0, true, get_dev, NULL, 18);
    g_assert_true(uih_wait(h, u, UIH_TIMEOUT_MS));
    g_assert_cmpint(u->status, ==, 0);
    g_assert_cmpuint(u->data->len, ==, 18);
    g_assert_cmphex(u->number_of_packets, ==, USBIP_NO_ISO_PACKETS);
    uih_urb_free(h, u);
    uih_set_number_of_packets(h, 0);

    /* A descriptor that does not exist stalls: -EPIPE. */
    g_assert_cmpint(uih_control(h, 0x80, 0x06, 0x0399, 0x0409, buf, 255, &actual), ==, -EPIPE);
    g_assert_cmpuint(actual, ==, 0);

    /* SET_CONFIGURATION goes to the device as an ep 0 URB. */
    g_assert_cmpint(uih_control(h, 0x80, 0x08, 0, 0, buf, 1, &actual), ==, 0);
    g_assert_cmpuint(buf[0], ==, 0);
    g_assert_cmpint(uih_control(h, 0x00, 0x09, 1, 0, NULL, 0, NULL), ==, 0);
    g_assert_cmpint(uih_control(h, 0x80, 0x08, 0, 0, buf, 1, &actual), ==, 0);
    g_assert_cmpuint(actual, ==, 1);
    g_assert_cmpuint(buf[0], ==, 1);
    g_assert_cmpint(uih_control(h, 0x01, 0x0b, 0, 0, NULL, 0, NULL), ==, 0);
    g_assert_cmpint(uih_control(h, 0x00, 0x09, 7, 0, NULL, 0, NULL), ==, -EPIPE);
    g_assert_cmpuint(uih_violations(h), ==, 0);
    uih_free(h);
    fixture_stop(&f);
}

static void test_power_on_apdu(void)
{
    Fixture f;
    Ccid c;
    g_autoptr(GByteArray) atr = NULL;
    uint16_t sw;

    fixture_start(&f, false);
    ccid_setup(&c, import_ok(&f, "1-1"));
    atr = ccid_power_on(&c);
    g_assert_cmpuint(atr->len, >=, 2);
    g_assert_true(atr->data[0] == 0x3b || atr->data[0] == 0x3f);
    sw = ccid_select_pki(&c);
    g_assert_true(sw == 0x9000 || (sw >> 8) == 0x61);
    /* A zero-length bulk-OUT transfer is legal USB; the reader goes on. */
    g_assert_cmpint(uih_bulk_out(c.h, c.ep_bulk_out, NULL, 0), ==, 0);
    import_end(&c, &f);
}

/*
 * Interrupt-IN: the card present at attach is reported once; the next
 * URB stays pending (no slot change); unlinking it answers -ECONNRESET and
 * it never gets a RET_SUBMIT.
 */
static void test_unlink_pending_interrupt(void)
{
    Fixture f;
    Ccid c;
    UihUrb *u;

    fixture_start(&f, false);
    ccid_setup(&c, import_ok(&f, "1-1"));
    u = uih_submit(c.h, c.ep_int_in, true, NULL, NULL, 8);
    g_assert_true(uih_wait(c.h, u, UIH_TIMEOUT_MS));
    g_assert_cmpint(u->status, ==, 0);
    g_assert_cmpuint(u->data->len, ==, 2);
    g_assert_cmphex(u->data->data[0], ==, RDR_to_PC_NotifySlotChange);
    g_assert_cmphex(u->data->data[1] & 0x01, ==, 0x01);    /* card present */
    uih_urb_free(c.h, u);

    u = uih_submit(c.h, c.ep_int_in, true, NULL, NULL, 8);
    g_assert_false(uih_wait(c.h, u, 300));
    /* Other endpoints go on meanwhile. */
    ccid_check_alive(&c);
    g_assert_false(u->done);
    g_assert_cmpint(uih_unlink(c.h, u, UIH_TIMEOUT_MS), ==, -ECONNRESET);
    g_assert_false(uih_wait(c.h, u, 300));
    g_assert_cmpuint(u->completions, ==, 0);
    uih_urb_free(c.h, u);
    import_end(&c, &f);
}

/* A URB that completed: its unlink finds nothing (status 0) and brings no second answer. */
static void unlink_completed(Ccid *c, UihUrb *u)
{
    g_assert_cmpint(uih_unlink(c->h, u, UIH_TIMEOUT_MS), ==, 0);
    g_assert_cmpuint(u->completions, ==, 1);
    uih_urb_free(c->h, u);
}

/*
 * Bulk-IN held by the device: unlinked, it is forgotten, and the answer to
 * the next command goes to the next URB. A URB that completed answers the
 * unlink with status 0 and no second RET_SUBMIT.
 */
static void test_unlink_bulk(void)
{
    Fixture f;
    Ccid c;
    UihUrb *u;
    g_autoptr(GByteArray) atr = NULL;

    fixture_start(&f, false);
    ccid_setup(&c, import_ok(&f, "1-1"));
    u = uih_submit(c.h, c.ep_bulk_in, true, NULL, NULL, BULK_IN_SIZE);
    g_assert_false(uih_wait(c.h, u, 200));
    g_assert_cmpint(uih_unlink(c.h, u, UIH_TIMEOUT_MS), ==, -ECONNRESET);
    atr = ccid_power_on(&c);
    g_assert_cmpuint(atr->len, >=, 2);
    g_assert_false(u->done);
    uih_urb_free(c.h, u);

    /* Completed: the unlink finds nothing and says so with status 0. */
    ccid_send(&c, PC_to_RDR_GetSlotStatus, 0, NULL, 0);
    u = uih_submit(c.h, c.ep_bulk_in, true, NULL, NULL, BULK_IN_SIZE);
    g_assert_true(uih_wait(c.h, u, UIH_TIMEOUT_MS));
    g_assert_cmpint(u->status, ==, 0);
    unlink_completed(&c, u);
    c.seq++;
    import_end(&c, &f);
}

static void test_second_importer(void)
{
    Fixture f;
    Ccid c;
    g_autoptr(GError) err = NULL;
    uint32_t status = 0;
    g_autoptr(GByteArray) atr = NULL;

    fixture_start(&f, false);
    ccid_setup(&c, import_ok(&f, "1-1"));
    atr = ccid_power_on(&c);

    /* Refused with status 1 and closed (uih_import checks the close). */
    g_assert_null(uih_import(f.port, "1-1", &status, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(status, ==, USBIP_ST_NA);
    g_assert_null(uih_import(f.port, "9-9", &status, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(status, ==, USBIP_ST_NA);
    /* A bus id is compared whole: a prefix is another bus id. */
    g_assert_null(uih_import(f.port, "1-", &status, &err));
    g_assert_cmpuint(status, ==, USBIP_ST_NA);

    /* The first importer keeps working. */
    g_assert_true(uih_alive(c.h));
    g_assert_cmpuint(ccid_select_pki(&c) >> 8, !=, 0x6f);
    ccid_check_alive(&c);
    uih_free(c.h);
    fixture_stop(&f);
}

/* Closing detaches; the reader and its card wait for the next importer. */
static void test_reimport(void)
{
    Fixture f;
    Ccid c;
    UihUrb *pending;
    g_autoptr(GByteArray) atr1 = NULL;
    g_autoptr(GByteArray) atr2 = NULL;
    g_autofree char *log = NULL;

    fixture_start(&f, false);
    ccid_setup(&c, import_ok(&f, "1-1"));
    atr1 = ccid_power_on(&c);
    /* Leave with a URB held by the device: it must not outlive us. */
    pending = uih_submit(c.h, c.ep_bulk_in, true, NULL, NULL, BULK_IN_SIZE);
    (void)pending;
    uih_free(c.h);

    for (int round = 0; round < 3; round++) {
        ccid_setup(&c, import_retry(&f, "1-1"));
        /* A fresh attach: the device was reset, the card is still in. */
        atr2 = ccid_power_on(&c);
        g_assert_cmpmem(atr1->data, atr1->len, atr2->data, atr2->len);
        g_clear_pointer(&atr2, g_byte_array_unref);
        g_assert_cmpuint(ccid_select_pki(&c) >> 8, !=, 0x6f);
        uih_free(c.h);
    }
    g_assert_true(vccid_is_running(f.vccid));
    log = vccid_read_stderr(f.vccid);
    g_assert_nonnull(strstr(log, "usbip: r1 detached"));
    fixture_stop(&f);
}

/*
 * A broken peer loses its own connection (before or after importing 1-1);
 * the listener goes on serving.
 */
static void check_dropped(Fixture *f, const char *what, const void *raw, size_t len,
                          bool after_import)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GArray) devs = NULL;

    g_test_message("malformed: %s", what);
    if (after_import) {
        UsbipHost *h = import_retry(f, "1-1");

        uih_send_raw(h, raw, len);
        g_assert_true(uih_wait_closed(h, UIH_TIMEOUT_MS));
        uih_free(h);
    } else {
        int fd = uih_tcp_connect(f->port, UIH_TIMEOUT_MS);
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        char b;

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(write(fd, raw, len), ==, (ssize_t)len);
        g_assert_cmpint(poll(&pfd, 1, UIH_TIMEOUT_MS), ==, 1);
        g_assert_cmpint(read(fd, &b, 1), ==, 0);
        close(fd);
    }
    devs = uih_devlist(f->port, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(devs->len, >=, 1);
}

/* A CMD_SUBMIT header for seqnum 1 on devid 1-1 (0x00010001). */
static void submit_header(uint8_t hdr[48], uint8_t dir, uint8_t ep, uint32_t len)
{
    const UsbipSubmit cmd = {
        .h = { .seqnum = 1, .devid = 0x00010001, .direction = dir, .ep = ep },
        .transfer_buffer_length = len,
    };
    g_autoptr(GByteArray) out = g_byte_array_new();

    /* Only the header: an IN submit carries no data, and OUT's is not given. */
    usbip_encode_cmd_submit(out, &cmd, NULL);
    g_assert_cmpuint(out->len, >=, 48);
    memcpy(hdr, out->data, 48);
}

static void test_malformed(void)
{
    Fixture f;
    Ccid c2;
    uint8_t bad_version[8] = { 0x01, 0x06, 0x80, 0x05, 0, 0, 0, 0 };
    uint8_t bad_code[8] = { 0x01, 0x11, 0x12, 0x34, 0, 0, 0, 0 };
    uint8_t hdr[48];
    g_autofree char *log = NULL;

    fixture_start(&f, true);
    ccid_setup(&c2, import_ok(&f, "1-2"));
    ccid_check_alive(&c2);

    check_dropped(&f, "operation of another version", bad_version, 8, false);
    check_dropped(&f, "unknown operation", bad_code, 8, false);
    memset(hdr, 0xff, sizeof(hdr));
    check_dropped(&f, "garbage instead of a URB", hdr, 48, true);

    submit_header(hdr, 1, 20, 64);
    check_dropped(&f, "endpoint 20", hdr, 48, true);
    submit_header(hdr, 1, 1, 0x200000);
    check_dropped(&f, "transfer_buffer_length 2 MiB", hdr, 48, true);
    submit_header(hdr, 1, 1, 64);
    hdr[35] = 3;                     /* number_of_packets 3: iso */
    check_dropped(&f, "iso packets", hdr, 48, true);
    submit_header(hdr, 1, 1, 64);
    hdr[11] = 9;                     /* devid 0x00010009: not the imported one */
    check_dropped(&f, "wrong devid", hdr, 48, true);

    /* The other reader's importer never noticed; vccid still serves 1-1. */
    g_assert_true(uih_alive(c2.h));
    ccid_check_alive(&c2);
    uih_free(c2.h);
    {
        Ccid c1;

        ccid_setup(&c1, import_retry(&f, "1-1"));
        ccid_check_alive(&c1);
        uih_free(c1.h);
    }
    log = vccid_read_stderr(f.vccid);
    g_assert_nonnull(strstr(log, "malformed USB/IP"));
    fixture_stop(&f);
}

/*
 * Connections that send nothing hold a slot for a bounded time: past the
 * cap (64) a new connection is closed at once; once the idle ones time out
 * (10 s without an operation), the listener serves again.
 */
static void test_idle_connections(void)
{
    Fixture f;
    int idle[64];
    g_autoptr(GError) err = NULL;
    g_autoptr(GArray) devs = NULL;
    Ccid c;

    fixture_start(&f, true);
    /* An importer that holds its device is not idle: it stays. */
    ccid_setup(&c, import_ok(&f, "1-2"));
    for (size_t i = 0; i < G_N_ELEMENTS(idle) - 1; i++) {
        idle[i] = uih_tcp_connect(f.port, UIH_TIMEOUT_MS);
        g_assert_cmpint(idle[i], >=, 0);
    }
    /* Let the daemon accept them all, then one more is one too many. */
    ccid_check_alive(&c);
    idle[63] = uih_tcp_connect(f.port, UIH_TIMEOUT_MS);
    g_assert_cmpint(idle[63], >=, 0);
    {
        struct pollfd pfd = { .fd = idle[63], .events = POLLIN };
        char b;

        /* At once, not after the idle timeout. */
        g_assert_cmpint(poll(&pfd, 1, 3000), ==, 1);
        g_assert_cmpint(read(idle[63], &b, 1), ==, 0);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(idle) - 1; i++) {
        struct pollfd pfd = { .fd = idle[i], .events = POLLIN };
        char b;

        g_assert_cmpint(poll(&pfd, 1, 20000), ==, 1);
        g_assert_cmpint(read(idle[i], &b, 1), ==, 0);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(idle); i++) {
        close(idle[i]);
    }
    devs = uih_devlist(f.port, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(devs->len, ==, 2);
    g_assert_true(uih_alive(c.h));
    ccid_check_alive(&c);
    uih_free(c.h);
    fixture_stop(&f);
}

/*
 * usbip-win2 resets the device with the hub-class SetPortFeature(PORT_RESET)
 * sent as an ep 0 URB; a new configuration ends URBs in flight as well.
 * Either answers what the device held with -ESHUTDOWN, once.
 */
static void test_port_reset(void)
{
    Fixture f;
    Ccid c;
    UihUrb *bulk, *irq;
    uint8_t config = 0xff;
    uint32_t actual = 0;

    fixture_start(&f, false);
    ccid_setup(&c, import_ok(&f, "1-1"));
    bulk = uih_submit(c.h, c.ep_bulk_in, true, NULL, NULL, BULK_IN_SIZE);
    g_assert_false(uih_wait(c.h, bulk, 100));
    g_assert_cmpint(uih_control(c.h, 0x23, 0x03, 4, 1, NULL, 0, NULL), ==, 0);
    g_assert_true(uih_wait(c.h, bulk, UIH_TIMEOUT_MS));
    g_assert_cmpint(bulk->status, ==, -ESHUTDOWN);
    uih_urb_free(c.h, bulk);
    /* Reset: unconfigured again. */
    g_assert_cmpint(uih_control(c.h, 0x80, 0x08, 0, 0, &config, 1, &actual), ==, 0);
    g_assert_cmpuint(actual, ==, 1);
    g_assert_cmpuint(config, ==, 0);

    ccid_setup(&c, c.h);
    /* The notification of the card at attach, then one that waits. */
    irq = uih_submit(c.h, c.ep_int_in, true, NULL, NULL, 8);
    g_assert_true(uih_wait(c.h, irq, UIH_TIMEOUT_MS));
    uih_urb_free(c.h, irq);
    irq = uih_submit(c.h, c.ep_int_in, true, NULL, NULL, 8);
    g_assert_false(uih_wait(c.h, irq, 100));
    g_assert_cmpint(uih_control(c.h, 0x00, 0x09, 1, 0, NULL, 0, NULL), ==, 0);
    g_assert_true(uih_wait(c.h, irq, UIH_TIMEOUT_MS));
    g_assert_cmpint(irq->status, ==, -ESHUTDOWN);
    /* Unlinking it now finds nothing: status 0, and no second answer. */
    unlink_completed(&c, irq);
    import_end(&c, &f);
}

/*
 * One reader exported over usbredir (the harness's chardev) and USB/IP:
 * whoever attaches first holds it. A USB/IP import while usbredir holds it
 * is refused; a usbredir peer that takes it from a USB/IP importer ends that
 * importer at its next URB, and the importer leaving does not detach the
 * usbredir peer's session.
 */
static void test_usbredir_too(void)
{
    Fixture f;
    Ccid c;
    g_autoptr(GError) err = NULL;
    UsbredirHost *redir;
    uint32_t status = 0;
    UrhTransfer *t;
    uint8_t config = 0;
    static const uint8_t slot_status[10] = { PC_to_RDR_GetSlotStatus, 0, 0, 0, 0, 0, 0x42 };

    fixture_start(&f, false);
    redir = urh_connect(f.vccid->sock_path, URH_TIMEOUT_MS, &err);
    g_assert_no_error(err);
    g_assert_null(uih_import(f.port, "1-1", &status, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(status, ==, USBIP_ST_NA);
    urh_free(redir);

    ccid_setup(&c, import_retry(&f, "1-1"));
    ccid_check_alive(&c);
    redir = urh_connect(f.vccid->sock_path, URH_TIMEOUT_MS, &err);
    g_assert_no_error(err);
    uih_submit(c.h, c.ep_int_in, true, NULL, NULL, 8);
    g_assert_true(uih_wait_closed(c.h, UIH_TIMEOUT_MS));
    uih_free(c.h);
    /* The usbredir peer still has the reader: a command is answered. */
    urh_idle(redir, 200);
    g_assert_true(urh_device_connected(redir));
    g_assert_cmpint(urh_set_configuration(redir, 1, &config), ==, usb_redir_success);
    /* The answer completes a transfer the device held: through its port. */
    t = urh_bulk_submit(redir, 0x80 | c.ep_bulk_in, NULL, 64);
    urh_idle(redir, 100);
    g_assert_cmpint(urh_bulk_out(redir, c.ep_bulk_out, slot_status, sizeof(slot_status),
                                 URH_TIMEOUT_MS), ==, usb_redir_success);
    g_assert_true(urh_wait(redir, t, URH_TIMEOUT_MS));
    g_assert_cmpint(t->status, ==, usb_redir_success);
    g_assert_cmpuint(t->data->len, ==, 10);
    g_assert_cmphex(t->data->data[0], ==, RDR_to_PC_SlotStatus);
    urh_transfer_release(redir, t);
    urh_free(redir);
    fixture_stop(&f);
}

/* The export's trace points fire as the protocol goes. */
static void test_trace(void)
{
    Fixture f;
    Ccid c;
    UihUrb *u;
    g_autofree char *log = NULL;

    fixture_start_traced(&f, false, "usbip_*");
    ccid_setup(&c, import_ok(&f, "1-1"));
    u = uih_submit(c.h, c.ep_bulk_in, true, NULL, NULL, 64);
    g_assert_cmpint(uih_unlink(c.h, u, UIH_TIMEOUT_MS), ==, -ECONNRESET);
    uih_urb_free(c.h, u);
    uih_free(c.h);
    g_assert_true(vccid_is_running(f.vccid));
    log = vccid_read_stderr(f.vccid);
    g_assert_nonnull(strstr(log, "usbip_import 127.0.0.1:"));
    g_assert_nonnull(strstr(log, "usbip_control seqnum 1 bmRequestType 0x80 bRequest 0x06 "
                                 "wValue 0x0100"));
    g_assert_nonnull(strstr(log, "usbip_urb_held seqnum"));
    g_assert_nonnull(strstr(log, "unlinks 5: status -104"));
    fixture_stop(&f);
}

static void test_cli(void)
{
    /* An -export value and the error it is refused with. */
    static const StringCase cases[] = {
        { "usbip,device=r1,bogus=1", "Invalid parameter 'bogus'" },
        { "usbip,device=r1,port=70000", "Parameter 'port'" },
        { "usbip,device=r1,host=not-an-address", "Parameter 'host'" },
        { "usbip,device=nope", "names no USB device" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const char *args[] = { "-device", "usb-ccid,id=r1", "-export", cases[i].input, NULL };

        vccid_assert_cli_error(args, cases[i].expected);
    }
    {
        const char *args[] = { "-export", "help", NULL };
        g_autofree char *out = NULL;
        g_autofree char *err = NULL;

        g_assert_cmpint(vccid_run_cli(args, &out, &err), ==, 0);
        g_assert_nonnull(strstr(out, "-export usbip"));
    }
    {
        const char *args[] = { "--help", NULL };
        g_autofree char *out = NULL;
        g_autofree char *err = NULL;

        g_assert_cmpint(vccid_run_cli(args, &out, &err), ==, 0);
        g_assert_nonnull(strstr(out, "-export usbip[,id=ID][,device=ID][,host=127.0.0.1][,port=3240]"));
    }
}

static const TestCase cases[] = {
    { "/usbip/devlist", test_devlist },
    { "/usbip/import/descriptors", test_import_descriptors },
    { "/usbip/ccid/power-on-apdu", test_power_on_apdu },
    { "/usbip/unlink/pending-interrupt", test_unlink_pending_interrupt },
    { "/usbip/unlink/bulk", test_unlink_bulk },
    { "/usbip/import/second-refused", test_second_importer },
    { "/usbip/import/reimport", test_reimport },
    { "/usbip/malformed", test_malformed },
    { "/usbip/idle-connections", test_idle_connections },
    { "/usbip/port-reset", test_port_reset },
    { "/usbip/usbredir-too", test_usbredir_too },
    { "/usbip/trace", test_trace },
    { "/usbip/cli", test_cli },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_add_cases(cases);
    return g_test_run();
}
