/*
 * Writes seed inputs for fuzz-usbredir: usbredir streams as QEMU's usb-redir
 * would send them, made by libusbredirparser in the guest role after it has
 * seen the hello of a usb-host with vccid's capabilities.
 *
 * usage: gen-usbredir-seeds OUTDIR
 * Each seed is a list of records: op byte 0 (feed), a 16-bit length, then
 * that many stream bytes (fuzz-export-script.h reads the same format).
 */
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <usbredirparser.h>

#include "../qtest/usbredir-host.h"

typedef struct Pipe {
    GByteArray *out;     /* what the parser wrote */
    GByteArray *in;      /* what it may read */
    size_t in_off;
} Pipe;

static int pipe_write(void *priv, uint8_t *data, int count)
{
    g_byte_array_append(((Pipe *)priv)->out, data, count);
    return count;
}

static int pipe_read(void *priv, uint8_t *data, int count)
{
    Pipe *p = priv;
    size_t n = MIN((size_t)count, p->in->len - p->in_off);

    memcpy(data, p->in->data + p->in_off, n);
    p->in_off += n;
    return n;
}

static void on_hello(void *priv, struct usb_redir_hello_header *hello)
{
}

static void on_log(void *priv, int level, const char *msg)
{
}

/* A guest-role parser that has read a usb-host hello with our caps. */
static struct usbredirparser *guest_parser(Pipe *pipe)
{
    struct usbredirparser *host = usbredirparser_create();
    struct usbredirparser *guest = usbredirparser_create();
    Pipe host_pipe = { g_byte_array_new(), g_byte_array_new(), 0 };
    uint32_t caps[USB_REDIR_CAPS_SIZE] = { 0 };

    urh_set_qemu_caps(caps);
    host->priv = &host_pipe;
    host->write_func = pipe_write;
    host->read_func = pipe_read;
    host->log_func = on_log;
    usbredirparser_init(host, "host", caps, USB_REDIR_CAPS_SIZE, usbredirparser_fl_usb_host);
    usbredirparser_do_write(host);

    guest->priv = pipe;
    guest->write_func = pipe_write;
    guest->read_func = pipe_read;
    guest->hello_func = on_hello;
    guest->log_func = on_log;
    usbredirparser_init(guest, "qemu usb-redir guest seed", caps, USB_REDIR_CAPS_SIZE, 0);
    g_byte_array_append(pipe->in, host_pipe.out->data, host_pipe.out->len);
    usbredirparser_do_read(guest);
    usbredirparser_destroy(host);
    g_byte_array_unref(host_pipe.out);
    g_byte_array_unref(host_pipe.in);
    return guest;
}

static void ccid_msg(uint8_t *m, uint8_t type, uint32_t len, uint8_t seq)
{
    memset(m, 0, 10);
    m[0] = type;
    m[1] = len & 0xff;
    m[2] = len >> 8;
    m[6] = seq;
}

static void bulk(struct usbredirparser *g, uint64_t id, uint8_t ep, uint8_t *data, int len,
                 uint32_t in_len)
{
    struct usb_redir_bulk_packet_header h = {
        .endpoint = ep, .length = (ep & 0x80) ? in_len : (uint32_t)len,
    };

    usbredirparser_send_bulk_packet(g, id, &h, (ep & 0x80) ? NULL : data, (ep & 0x80) ? 0 : len);
}

static void write_seed(const char *dir, const char *name, GByteArray *stream)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    GByteArray *rec = g_byte_array_new();

    /* Records of at most 65535 bytes: op 0, length (big endian), bytes. */
    for (size_t off = 0; off < stream->len;) {
        size_t n = MIN(stream->len - off, 65535);
        uint8_t hdr[3] = { 0, n >> 8, n & 0xff };

        g_byte_array_append(rec, hdr, 3);
        g_byte_array_append(rec, stream->data + off, n);
        off += n;
    }
    if (!g_file_set_contents(path, (const char *)rec->data, rec->len, NULL)) {
        g_error("cannot write %s", path);
    }
    g_byte_array_unref(rec);
}

static void session(const char *dir, const char *name, int variant)
{
    Pipe pipe = { g_byte_array_new(), g_byte_array_new(), 0 };
    struct usbredirparser *g = guest_parser(&pipe);
    struct usb_redir_set_configuration_header cfg = { .configuration = 1 };
    struct usb_redir_control_packet_header ctl = {
        .endpoint = 0x80, .request = 6, .requesttype = 0x80, .value = 0x0200, .length = 255,
    };
    struct usb_redir_start_interrupt_receiving_header irq = { .endpoint = 0x81 };
    uint8_t m[10 + 12];
    static const uint8_t select_cac[] = { 0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00, 0x00,
                                          0x00, 0x79, 0x01, 0x00 };

    usbredirparser_send_set_configuration(g, 1, &cfg);
    usbredirparser_send_control_packet(g, 2, &ctl, NULL, 0);
    usbredirparser_send_start_interrupt_receiving(g, 3, &irq);
    ccid_msg(m, 0x62, 0, 0);
    bulk(g, 4, 0x03, m, 10, 0);
    bulk(g, 5, 0x82, NULL, 0, 512);
    ccid_msg(m, 0x6f, sizeof(select_cac), 1);
    memcpy(m + 10, select_cac, sizeof(select_cac));
    bulk(g, 6, 0x03, m, sizeof(m), 0);
    bulk(g, 7, 0x82, NULL, 0, 64);
    bulk(g, 8, 0x82, NULL, 0, 64);
    if (variant == 1) {
        usbredirparser_send_cancel_data_packet(g, 8);
        usbredirparser_send_reset(g);
    }
    if (variant == 2) {
        ccid_msg(m, 0x6f, 1000, 2);   /* dwLength lies */
        bulk(g, 9, 0x03, m, 10, 0);
        bulk(g, 10, 0x82, NULL, 0, 512);
        ctl.requesttype = 0x21;       /* class ABORT */
        ctl.request = 1;
        ctl.value = 0x0300;
        ctl.length = 0;
        usbredirparser_send_control_packet(g, 11, &ctl, NULL, 0);
    }
    usbredirparser_do_write(g);
    write_seed(dir, name, pipe.out);
    usbredirparser_destroy(g);
    g_byte_array_unref(pipe.out);
    g_byte_array_unref(pipe.in);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen-usbredir-seeds OUTDIR\n");
        return 2;
    }
    session(argv[1], "session", 0);
    session(argv[1], "session-cancel-reset", 1);
    session(argv[1], "session-malformed-abort", 2);
    return 0;
}
