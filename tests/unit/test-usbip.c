/*
 * Unit tests of the USB/IP stream parser and encoders (proto/usbip.c).
 *
 * The expected bytes are written out by hand from the protocol document, so
 * the parser is never checked only against its own encoders.
 */
#include <errno.h>
#include <string.h>

#include "proto/usbip.h"
#include "../support/test-cases.h"

/* What the callbacks saw. */
typedef struct Rec {
    UsbipStream *s;
    unsigned devlists;
    GPtrArray *imports;          /* busids (char *) */
    GArray *submits;             /* UsbipSubmit */
    GPtrArray *submit_data;      /* GBytes * or NULL per submit */
    GArray *unlinks;             /* uint32_t pairs: seqnum, unlink_seqnum */
    unsigned errors;
    UsbipError last_error;
    bool stop_on_import;
    bool start_urbs_on_import;
    /* client role */
    uint32_t devlist_status;
    GArray *devices;             /* UsbipDevice, interfaces copied below */
    GArray *ifaces;              /* UsbipInterface */
    int import_status;           /* -1: none */
    UsbipDevice imported;
    GArray *rets;                /* UsbipRetSubmit */
    GPtrArray *ret_data;
    GArray *ret_unlinks;         /* int32 pairs: seqnum, status */
    int dir_for_seqnum[16];      /* -1: unknown */
} Rec;

static void on_devlist(void *o)
{
    ((Rec *)o)->devlists++;
}

static void on_import(void *o, const char *busid)
{
    Rec *r = o;

    g_ptr_array_add(r->imports, g_strdup(busid));
    if (r->start_urbs_on_import) {
        usbip_stream_start_urbs(r->s);
    }
    if (r->stop_on_import) {
        usbip_stream_stop(r->s);
    }
}

/* Record a URB message in msgs and a copy of its len bytes of data (NULL if none) in datas. */
static void record_urb(GArray *msgs, const void *msg, GPtrArray *datas, const uint8_t *data,
                       size_t len)
{
    g_array_append_vals(msgs, msg, 1);
    g_ptr_array_add(datas, data ? g_bytes_new(data, len) : NULL);
}

static void on_submit(void *o, const UsbipSubmit *cmd, const uint8_t *data)
{
    Rec *r = o;

    record_urb(r->submits, cmd, r->submit_data, data, cmd->transfer_buffer_length);
}

static void on_unlink(void *o, const UsbipHeader *h, uint32_t unlink_seqnum)
{
    Rec *r = o;
    uint32_t pair[2] = { h->seqnum, unlink_seqnum };

    g_array_append_vals(r->unlinks, pair, 2);
}

static void on_error(void *o, UsbipError err, const char *detail)
{
    Rec *r = o;

    g_assert_nonnull(detail);
    r->errors++;
    r->last_error = err;
}

static void on_rep_devlist(void *o, uint32_t status, const UsbipDevice *devs, uint32_t ndev)
{
    Rec *r = o;

    r->devlist_status = status;
    r->devlists++;
    for (uint32_t i = 0; i < ndev; i++) {
        g_array_append_val(r->devices, devs[i]);
        g_array_append_vals(r->ifaces, devs[i].interfaces, devs[i].bNumInterfaces);
    }
}

static void on_rep_import(void *o, uint32_t status, const UsbipDevice *dev)
{
    Rec *r = o;

    r->import_status = status;
    if (dev) {
        r->imported = *dev;
    }
}

static int on_direction(void *o, uint32_t seqnum)
{
    Rec *r = o;

    return seqnum < 16 ? r->dir_for_seqnum[seqnum] : -1;
}

static void on_ret_submit(void *o, const UsbipRetSubmit *ret, const uint8_t *data)
{
    Rec *r = o;

    record_urb(r->rets, ret, r->ret_data, data, ret->actual_length);
}

static void on_ret_unlink(void *o, const UsbipHeader *h, int32_t status)
{
    Rec *r = o;
    int32_t pair[2] = { (int32_t)h->seqnum, status };

    g_array_append_vals(r->ret_unlinks, pair, 2);
}

static const UsbipServerOps rec_server_ops = {
    .req_devlist = on_devlist,
    .req_import = on_import,
    .cmd_submit = on_submit,
    .cmd_unlink = on_unlink,
};

static const UsbipClientOps rec_client_ops = {
    .rep_devlist = on_rep_devlist,
    .rep_import = on_rep_import,
    .submit_direction = on_direction,
    .ret_submit = on_ret_submit,
    .ret_unlink = on_ret_unlink,
};

static void bytes_free0(gpointer p)
{
    if (p) {
        g_bytes_unref(p);
    }
}

static Rec *rec_new(UsbipRole role)
{
    Rec *r = g_new0(Rec, 1);

    r->s = role == USBIP_ROLE_SERVER ? usbip_server_stream_new(&rec_server_ops, on_error, r) :
                                       usbip_client_stream_new(&rec_client_ops, on_error, r);
    r->imports = g_ptr_array_new_with_free_func(g_free);
    r->submits = g_array_new(FALSE, TRUE, sizeof(UsbipSubmit));
    r->submit_data = g_ptr_array_new_with_free_func(bytes_free0);
    r->unlinks = g_array_new(FALSE, TRUE, sizeof(uint32_t));
    r->devices = g_array_new(FALSE, TRUE, sizeof(UsbipDevice));
    r->ifaces = g_array_new(FALSE, TRUE, sizeof(UsbipInterface));
    r->rets = g_array_new(FALSE, TRUE, sizeof(UsbipRetSubmit));
    r->ret_data = g_ptr_array_new_with_free_func(bytes_free0);
    r->ret_unlinks = g_array_new(FALSE, TRUE, sizeof(int32_t));
    r->import_status = -1;
    for (int i = 0; i < 16; i++) {
        r->dir_for_seqnum[i] = -1;
    }
    return r;
}

static void rec_free(Rec *r)
{
    usbip_stream_free(r->s);
    g_ptr_array_unref(r->imports);
    g_array_unref(r->submits);
    g_ptr_array_unref(r->submit_data);
    g_array_unref(r->unlinks);
    g_array_unref(r->devices);
    g_array_unref(r->ifaces);
    g_array_unref(r->rets);
    g_ptr_array_unref(r->ret_data);
    g_array_unref(r->ret_unlinks);
    g_free(r);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

/* A CMD_SUBMIT header written field by field as the document lays it out. */
static void make_submit(uint8_t h[48], uint32_t seqnum, uint32_t dir, uint32_t ep, uint32_t len,
                        uint32_t npackets)
{
    memset(h, 0, 48);
    put32(h, USBIP_CMD_SUBMIT);
    put32(h + 4, seqnum);
    put32(h + 8, 0x00010002);
    put32(h + 12, dir);
    put32(h + 16, ep);
    put32(h + 20, 0x200);          /* transfer_flags */
    put32(h + 24, len);
    put32(h + 28, 0);              /* start_frame */
    put32(h + 32, npackets);
    put32(h + 36, 7);              /* interval */
    if (ep == 0) {
        /* GET_DESCRIPTOR(DEVICE), wLength 18: raw little-endian bytes. */
        static const uint8_t setup[8] = { 0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00 };

        memcpy(h + 40, setup, 8);
    }
}

static void test_req_devlist(void)
{
    static const uint8_t req[] = { 0x01, 0x11, 0x80, 0x05, 0, 0, 0, 0 };
    Rec *r = rec_new(USBIP_ROLE_SERVER);

    g_assert_true(usbip_stream_feed(r->s, req, 5));
    g_assert_cmpuint(r->devlists, ==, 0);
    g_assert_cmpuint(usbip_stream_pending(r->s), ==, 5);
    g_assert_true(usbip_stream_feed(r->s, req + 5, 3));
    g_assert_cmpuint(r->devlists, ==, 1);
    g_assert_cmpuint(usbip_stream_pending(r->s), ==, 0);
    g_assert_false(usbip_stream_in_urb_phase(r->s));
    rec_free(r);
}

static void test_req_import_busid(void)
{
    uint8_t req[40] = { 0x01, 0x11, 0x80, 0x03, 0, 0, 0, 0 };
    Rec *r = rec_new(USBIP_ROLE_SERVER);

    memcpy(req + 8, "1-2", 4);
    /* Bytes after the NUL are not part of the busid. */
    memcpy(req + 12, "junk", 4);
    for (size_t i = 0; i < sizeof(req); i++) {
        g_assert_true(usbip_stream_feed(r->s, req + i, 1));
    }
    g_assert_cmpuint(r->imports->len, ==, 1);
    g_assert_cmpstr(g_ptr_array_index(r->imports, 0), ==, "1-2");

    /* 32 bytes without a NUL: truncated to 31, never read past the field. */
    memset(req + 8, 'x', 32);
    g_assert_true(usbip_stream_feed(r->s, req, sizeof(req)));
    g_assert_cmpuint(strlen(g_ptr_array_index(r->imports, 1)), ==, 31);
    rec_free(r);
}

static void test_bad_version(void)
{
    static const uint8_t req[] = { 0x01, 0x06, 0x80, 0x05, 0, 0, 0, 0,
                                   0x01, 0x11, 0x80, 0x05, 0, 0, 0, 0 };
    Rec *r = rec_new(USBIP_ROLE_SERVER);

    g_assert_false(usbip_stream_feed(r->s, req, sizeof(req)));
    g_assert_cmpuint(r->errors, ==, 1);
    g_assert_cmpint(r->last_error, ==, USBIP_ERR_BAD_VERSION);
    g_assert_true(usbip_stream_is_dead(r->s));
    /* The good request after it is not parsed: the stream is dead. */
    g_assert_cmpuint(r->devlists, ==, 0);
    g_assert_false(usbip_stream_feed(r->s, req + 8, 8));
    g_assert_cmpuint(r->devlists, ==, 0);
    g_assert_cmpuint(r->errors, ==, 1);
    rec_free(r);
}

static void test_bad_opcode(void)
{
    /* A reply code sent to a server, and an unknown code. */
    static const uint8_t rep[] = { 0x01, 0x11, 0x00, 0x05, 0, 0, 0, 0 };
    static const uint8_t unk[] = { 0x01, 0x11, 0x80, 0x99, 0, 0, 0, 0 };
    Rec *r = rec_new(USBIP_ROLE_SERVER);
    Rec *r2 = rec_new(USBIP_ROLE_SERVER);

    g_assert_false(usbip_stream_feed(r->s, rep, sizeof(rep)));
    g_assert_cmpint(r->last_error, ==, USBIP_ERR_BAD_OPCODE);
    g_assert_false(usbip_stream_feed(r2->s, unk, sizeof(unk)));
    g_assert_cmpint(r2->last_error, ==, USBIP_ERR_BAD_OPCODE);
    rec_free(r);
    rec_free(r2);
}

/* Import, then URBs in the same buffer: the owner switches phase from the callback. */
static void test_import_then_urbs(void)
{
    g_autoptr(GByteArray) in = g_byte_array_new();
    uint8_t h[48];
    const UsbipSubmit *c;
    Rec *r = rec_new(USBIP_ROLE_SERVER);

    r->start_urbs_on_import = true;
    usbip_encode_op_request(in, USBIP_OP_REQ_IMPORT, "1-1");
    make_submit(h, 1, USBIP_DIR_IN, 0, 18, 0);
    g_byte_array_append(in, h, 48);
    g_assert_true(usbip_stream_feed(r->s, in->data, in->len));
    g_assert_true(usbip_stream_in_urb_phase(r->s));
    g_assert_cmpuint(r->submits->len, ==, 1);
    c = &g_array_index(r->submits, UsbipSubmit, 0);
    g_assert_cmpuint(c->h.command, ==, USBIP_CMD_SUBMIT);
    g_assert_cmpuint(c->h.seqnum, ==, 1);
    g_assert_cmpuint(c->h.devid, ==, 0x00010002);
    g_assert_cmpuint(c->h.direction, ==, USBIP_DIR_IN);
    g_assert_cmpuint(c->h.ep, ==, 0);
    g_assert_cmpuint(c->transfer_flags, ==, 0x200);
    g_assert_cmpuint(c->transfer_buffer_length, ==, 18);
    g_assert_cmpuint(c->interval, ==, 7);
    g_assert_cmpmem(c->setup, 8, h + 40, 8);
    g_assert_null(g_ptr_array_index(r->submit_data, 0));
    rec_free(r);
}

/* Without the switch, the same bytes are not an operation: an error, not a misparse. */
static void test_stop_from_callback(void)
{
    g_autoptr(GByteArray) in = g_byte_array_new();
    Rec *r = rec_new(USBIP_ROLE_SERVER);

    r->stop_on_import = true;
    usbip_encode_op_request(in, USBIP_OP_REQ_IMPORT, "1-1");
    usbip_encode_op_request(in, USBIP_OP_REQ_DEVLIST, NULL);
    g_assert_false(usbip_stream_feed(r->s, in->data, in->len));
    g_assert_cmpuint(r->imports->len, ==, 1);
    g_assert_cmpuint(r->devlists, ==, 0);
    g_assert_cmpuint(r->errors, ==, 0);
    rec_free(r);
}

static Rec *rec_in_urb_phase(void)
{
    Rec *r = rec_new(USBIP_ROLE_SERVER);

    usbip_stream_start_urbs(r->s);
    return r;
}

/* An OUT submit split at every byte boundary arrives whole and once. */
static void test_submit_out_split(void)
{
    uint8_t msg[48 + 10];

    make_submit(msg, 9, USBIP_DIR_OUT, 2, 10, USBIP_NO_ISO_PACKETS);
    for (int i = 0; i < 10; i++) {
        msg[48 + i] = 0x60 + i;
    }
    for (size_t cut = 0; cut <= sizeof(msg); cut++) {
        Rec *r = rec_in_urb_phase();
        GBytes *data;

        g_assert_true(usbip_stream_feed(r->s, msg, cut));
        g_assert_true(usbip_stream_feed(r->s, msg + cut, sizeof(msg) - cut));
        g_assert_cmpuint(r->submits->len, ==, 1);
        g_assert_cmpuint(g_array_index(r->submits, UsbipSubmit, 0).number_of_packets, ==,
                         USBIP_NO_ISO_PACKETS);
        data = g_ptr_array_index(r->submit_data, 0);
        g_assert_nonnull(data);
        g_assert_cmpmem(g_bytes_get_data(data, NULL), g_bytes_get_size(data), msg + 48, 10);
        g_assert_cmpuint(usbip_stream_pending(r->s), ==, 0);
        rec_free(r);
    }
}

static void test_unlink(void)
{
    uint8_t msg[48] = { 0 };
    Rec *r = rec_in_urb_phase();

    put32(msg, USBIP_CMD_UNLINK);
    put32(msg + 4, 12);
    put32(msg + 8, 0x00010001);
    put32(msg + 20, 11);
    g_assert_true(usbip_stream_feed(r->s, msg, sizeof(msg)));
    g_assert_cmpuint(r->unlinks->len, ==, 2);
    g_assert_cmpuint(g_array_index(r->unlinks, uint32_t, 0), ==, 12);
    g_assert_cmpuint(g_array_index(r->unlinks, uint32_t, 1), ==, 11);
    rec_free(r);
}

/* A length beyond the cap kills the stream before any of its payload is held. */
static void test_length_cap(void)
{
    uint8_t h[48];
    Rec *r = rec_in_urb_phase();
    Rec *ok = rec_in_urb_phase();

    make_submit(h, 1, USBIP_DIR_OUT, 2, USBIP_MAX_TRANSFER_LENGTH + 1, 0);
    g_assert_false(usbip_stream_feed(r->s, h, sizeof(h)));
    g_assert_cmpint(r->last_error, ==, USBIP_ERR_TOO_LONG);
    g_assert_cmpuint(r->submits->len, ==, 0);

    /* IN with a huge length is refused as well: we would allocate it. */
    make_submit(h, 1, USBIP_DIR_IN, 1, 0xffffffff, 0);
    rec_free(r);
    r = rec_in_urb_phase();
    g_assert_false(usbip_stream_feed(r->s, h, sizeof(h)));
    g_assert_cmpint(r->last_error, ==, USBIP_ERR_TOO_LONG);

    /* At the cap: accepted, and the payload is waited for. */
    make_submit(h, 1, USBIP_DIR_IN, 1, USBIP_MAX_TRANSFER_LENGTH, 0);
    g_assert_true(usbip_stream_feed(ok->s, h, sizeof(h)));
    g_assert_cmpuint(ok->submits->len, ==, 1);
    rec_free(r);
    rec_free(ok);
}

static void check_header_error(uint32_t offset, uint32_t value, UsbipError expected)
{
    uint8_t h[48];
    Rec *r = rec_in_urb_phase();

    make_submit(h, 1, USBIP_DIR_IN, 1, 64, 0);
    put32(h + offset, value);
    g_assert_false(usbip_stream_feed(r->s, h, sizeof(h)));
    g_assert_cmpuint(r->errors, ==, 1);
    g_assert_cmpint(r->last_error, ==, expected);
    g_assert_cmpuint(r->submits->len, ==, 0);
    rec_free(r);
}

static void test_bad_headers(void)
{
    check_header_error(0, USBIP_RET_SUBMIT, USBIP_ERR_BAD_COMMAND);
    check_header_error(0, 0, USBIP_ERR_BAD_COMMAND);
    check_header_error(0, 0x01110005, USBIP_ERR_BAD_COMMAND);
    check_header_error(12, 2, USBIP_ERR_BAD_DIRECTION);
    check_header_error(16, 16, USBIP_ERR_BAD_ENDPOINT);
    check_header_error(32, 5, USBIP_ERR_ISO);
}

/* ---- encoders, checked against hand-written bytes ---- */

static void test_encode_ret_submit(void)
{
    static const uint8_t data[3] = { 0xaa, 0xbb, 0xcc };
    UsbipRetSubmit ret = { .h.seqnum = 0x01020304, .status = -EPIPE, .actual_length = 3 };
    uint8_t want[48 + 3] = { 0 };
    g_autoptr(GByteArray) out = g_byte_array_new();

    put32(want, 3);
    put32(want + 4, 0x01020304);
    put32(want + 20, (uint32_t)-EPIPE);
    put32(want + 24, 3);
    memcpy(want + 48, data, 3);
    usbip_encode_ret_submit(out, &ret, data);
    g_assert_cmpmem(out->data, out->len, want, sizeof(want));
    /* The status is the negative errno: 0xffffffe0 for EPIPE (32). */
    g_assert_cmpuint(out->data[23], ==, 0xe0);
}

static void test_encode_ret_unlink(void)
{
    uint8_t want[48] = { 0 };
    g_autoptr(GByteArray) out = g_byte_array_new();

    put32(want, 4);
    put32(want + 4, 77);
    put32(want + 20, (uint32_t)-ECONNRESET);
    usbip_encode_ret_unlink(out, 77, -ECONNRESET);
    g_assert_cmpmem(out->data, out->len, want, sizeof(want));
}

static const UsbipInterface ccid_ifaces[] = { { 0x0b, 0x00, 0x00 } };

static UsbipDevice sample_device(void)
{
    UsbipDevice d = {
        .path = "/vccid/ccid", .busid = "1-3", .busnum = 1, .devnum = 3,
        .speed = USBIP_SPEED_FULL, .idVendor = 0x08e6, .idProduct = 0x4433,
        .bcdDevice = 0x0100, .bConfigurationValue = 1, .bNumConfigurations = 1,
        .bNumInterfaces = 1, .interfaces = ccid_ifaces,
    };

    return d;
}

static void test_encode_devlist(void)
{
    UsbipDevice d = sample_device();
    g_autoptr(GByteArray) out = g_byte_array_new();
    const uint8_t *rec;

    usbip_encode_rep_devlist(out, &d, 1);
    g_assert_cmpuint(out->len, ==, 8 + 4 + 312 + 4);
    g_assert_cmpmem(out->data, 8, ((uint8_t[]){ 0x01, 0x11, 0x00, 0x05, 0, 0, 0, 0 }), 8);
    g_assert_cmpmem(out->data + 8, 4, ((uint8_t[]){ 0, 0, 0, 1 }), 4);
    rec = out->data + 12;
    g_assert_cmpstr((const char *)rec, ==, "/vccid/ccid");
    g_assert_cmpstr((const char *)rec + 256, ==, "1-3");
    g_assert_cmpmem(rec + 288, 12, ((uint8_t[]){ 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 2 }), 12);
    g_assert_cmpmem(rec + 300, 12,
                    ((uint8_t[]){ 0x08, 0xe6, 0x44, 0x33, 0x01, 0x00, 0, 0, 0, 1, 1, 1 }), 12);
    g_assert_cmpmem(rec + 312, 4, ((uint8_t[]){ 0x0b, 0, 0, 0 }), 4);
}

static void test_encode_import(void)
{
    UsbipDevice d = sample_device();
    g_autoptr(GByteArray) ok = g_byte_array_new();
    g_autoptr(GByteArray) refused = g_byte_array_new();

    usbip_encode_rep_import(ok, USBIP_ST_OK, &d);
    g_assert_cmpuint(ok->len, ==, 8 + 312);
    usbip_encode_rep_import(refused, USBIP_ST_NA, NULL);
    g_assert_cmpmem(refused->data, refused->len,
                    ((uint8_t[]){ 0x01, 0x11, 0x00, 0x03, 0, 0, 0, 1 }), 8);
}

/* ---- client role ---- */

static void test_client_devlist(void)
{
    UsbipDevice d[2] = { sample_device(), sample_device() };
    static const UsbipInterface two[] = { { 3, 1, 1 }, { 0x0b, 0, 0 } };
    g_autoptr(GByteArray) out = g_byte_array_new();
    Rec *r = rec_new(USBIP_ROLE_CLIENT);

    g_strlcpy(d[1].busid, "1-4", sizeof(d[1].busid));
    d[1].bNumInterfaces = 2;
    d[1].interfaces = two;
    usbip_encode_rep_devlist(out, d, 2);
    for (size_t i = 0; i < out->len; i++) {
        g_assert_true(usbip_stream_feed(r->s, out->data + i, 1));
        g_assert_cmpuint(r->devlists, ==, i + 1 == out->len);
    }
    g_assert_cmpuint(r->devices->len, ==, 2);
    g_assert_cmpstr(g_array_index(r->devices, UsbipDevice, 1).busid, ==, "1-4");
    g_assert_cmpuint(g_array_index(r->devices, UsbipDevice, 1).idProduct, ==, 0x4433);
    g_assert_cmpuint(r->ifaces->len, ==, 3);
    g_assert_cmpuint(g_array_index(r->ifaces, UsbipInterface, 0).bInterfaceClass, ==, 0x0b);
    g_assert_cmpuint(g_array_index(r->ifaces, UsbipInterface, 1).bInterfaceClass, ==, 3);
    g_assert_cmpuint(g_array_index(r->ifaces, UsbipInterface, 2).bInterfaceClass, ==, 0x0b);
    rec_free(r);
}

static void test_client_too_many_devices(void)
{
    uint8_t msg[12] = { 0x01, 0x11, 0x00, 0x05, 0, 0, 0, 0 };
    Rec *r = rec_new(USBIP_ROLE_CLIENT);

    put32(msg + 8, USBIP_MAX_DEVICES + 1);
    g_assert_false(usbip_stream_feed(r->s, msg, sizeof(msg)));
    g_assert_cmpint(r->last_error, ==, USBIP_ERR_TOO_MANY_DEVICES);
    rec_free(r);
}

static void test_client_import_and_urbs(void)
{
    UsbipDevice d = sample_device();
    UsbipRetSubmit in = { .h.seqnum = 1, .actual_length = 4 };
    UsbipRetSubmit out_ret = { .h.seqnum = 2, .actual_length = 10 };
    static const uint8_t four[4] = { 1, 2, 3, 4 };
    g_autoptr(GByteArray) out = g_byte_array_new();
    Rec *r = rec_new(USBIP_ROLE_CLIENT);
    GBytes *b;

    r->dir_for_seqnum[1] = USBIP_DIR_IN;
    r->dir_for_seqnum[2] = USBIP_DIR_OUT;
    usbip_encode_rep_import(out, USBIP_ST_OK, &d);
    usbip_encode_ret_submit(out, &in, four);
    /* An OUT answer's actual_length carries no data. */
    usbip_encode_ret_submit(out, &out_ret, NULL);
    usbip_encode_ret_unlink(out, 3, 0);
    g_assert_true(usbip_stream_feed(r->s, out->data, out->len));
    g_assert_cmpint(r->import_status, ==, 0);
    g_assert_cmpuint(r->imported.devnum, ==, 3);
    g_assert_cmpuint(r->rets->len, ==, 2);
    b = g_ptr_array_index(r->ret_data, 0);
    g_assert_cmpmem(g_bytes_get_data(b, NULL), g_bytes_get_size(b), four, 4);
    g_assert_null(g_ptr_array_index(r->ret_data, 1));
    g_assert_cmpuint(g_array_index(r->rets, UsbipRetSubmit, 1).actual_length, ==, 10);
    g_assert_cmpuint(r->ret_unlinks->len, ==, 2);
    g_assert_cmpint(g_array_index(r->ret_unlinks, int32_t, 0), ==, 3);

    /* An answer to a seqnum nobody submitted is fatal. */
    in.h.seqnum = 9;
    g_byte_array_set_size(out, 0);
    usbip_encode_ret_submit(out, &in, four);
    g_assert_false(usbip_stream_feed(r->s, out->data, out->len));
    g_assert_cmpint(r->last_error, ==, USBIP_ERR_UNKNOWN_SEQNUM);
    rec_free(r);
}

static void test_client_import_refused(void)
{
    static const uint8_t rep[] = { 0x01, 0x11, 0x00, 0x03, 0, 0, 0, 1 };
    Rec *r = rec_new(USBIP_ROLE_CLIENT);

    g_assert_true(usbip_stream_feed(r->s, rep, sizeof(rep)));
    g_assert_cmpint(r->import_status, ==, 1);
    g_assert_false(usbip_stream_in_urb_phase(r->s));
    rec_free(r);
}

/* Submit and unlink round-trip through the encoders and a server stream. */
static void test_roundtrip_submit(void)
{
    UsbipSubmit cmd = {
        .h = { .seqnum = 5, .devid = 0x10001, .direction = USBIP_DIR_OUT, .ep = 0 },
        .transfer_buffer_length = 2,
        .setup = { 0x21, 0x0a, 0, 0, 0, 0, 2, 0 },
    };
    static const uint8_t payload[2] = { 0xde, 0xad };
    UsbipHeader uh = { .seqnum = 6, .devid = 0x10001 };
    g_autoptr(GByteArray) out = g_byte_array_new();
    Rec *r = rec_in_urb_phase();

    usbip_encode_cmd_submit(out, &cmd, payload);
    usbip_encode_cmd_unlink(out, &uh, 5);
    g_assert_cmpuint(out->len, ==, 48 + 2 + 48);
    g_assert_true(usbip_stream_feed(r->s, out->data, out->len));
    g_assert_cmpuint(r->submits->len, ==, 1);
    g_assert_cmpmem(g_array_index(r->submits, UsbipSubmit, 0).setup, 8, cmd.setup, 8);
    g_assert_cmpuint(r->unlinks->len, ==, 2);
    g_assert_cmpuint(g_array_index(r->unlinks, uint32_t, 1), ==, 5);
    rec_free(r);
}

static const TestCase cases[] = {
    { "/usbip/op/req-devlist", test_req_devlist },
    { "/usbip/op/req-import-busid", test_req_import_busid },
    { "/usbip/op/bad-version", test_bad_version },
    { "/usbip/op/bad-opcode", test_bad_opcode },
    { "/usbip/op/import-then-urbs", test_import_then_urbs },
    { "/usbip/op/stop-from-callback", test_stop_from_callback },
    { "/usbip/urb/submit-out-split", test_submit_out_split },
    { "/usbip/urb/unlink", test_unlink },
    { "/usbip/urb/length-cap", test_length_cap },
    { "/usbip/urb/bad-headers", test_bad_headers },
    { "/usbip/encode/ret-submit", test_encode_ret_submit },
    { "/usbip/encode/ret-unlink", test_encode_ret_unlink },
    { "/usbip/encode/devlist", test_encode_devlist },
    { "/usbip/encode/import", test_encode_import },
    { "/usbip/client/devlist", test_client_devlist },
    { "/usbip/client/too-many-devices", test_client_too_many_devices },
    { "/usbip/client/import-and-urbs", test_client_import_and_urbs },
    { "/usbip/client/import-refused", test_client_import_refused },
    { "/usbip/roundtrip/submit-unlink", test_roundtrip_submit },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_add_cases(cases);
    return g_test_run();
}
