/*
 * libFuzzer target: the USB/IP export (export/usbip.c) with a usb-ccid
 * reader and a test card behind it, fed what a hostile importer could send.
 *
 * The export owns real sockets, so the harness talks to it over loopback
 * TCP and runs the main loop until it has nothing left to do after each
 * step, reading and discarding the answers. Byte 0 of the input says
 * whether each connection starts by importing bus id 1-1 (so most inputs
 * explore the URB phase); the rest is the script of fuzz-export-script.h,
 * the peer a TCP connection.
 */
#include "export/export.h"
#include "hw/qdev.h"
#include "proto/usbip.h"
#include "fuzz-export-script.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* Ports below Linux's ephemeral range, so no outgoing connection holds ours. */
#define PORT_BASE 20000
#define PORT_RANGE 12000

static uint16_t port;

static void setup_once(void)
{
    if (fuzz_export_setup_once()) {
        /* One port per fuzzing process; the listener is bound anew per input. */
        port = PORT_BASE + getpid() % PORT_RANGE;
    }
}

static void create_devices(void)
{
    GError *err = NULL;

    if (!device_create_from_string("usb-ccid,id=reader", &err) ||
        !device_create_from_string("ccid-card-test", &err)) {
        fprintf(stderr, "fuzz-usbip-export setup: %s\n", err->message);
        abort();
    }
    /* Another process may hold the port: move on to the next one. */
    for (int tries = 0;; tries++) {
        g_autofree char *opts = g_strdup_printf("usbip,device=reader,port=%u", port);

        if (export_create_from_string(opts, &err)) {
            return;
        }
        if (tries == 100) {
            fprintf(stderr, "fuzz-usbip-export setup: %s\n", err->message);
            abort();
        }
        g_clear_error(&err);
        port = PORT_BASE + (port - PORT_BASE + 1) % PORT_RANGE;
    }
}

/* Read whatever the export sent; a closed connection reads as -1 from then on. */
static void drain(int *fd)
{
    uint8_t buf[65536];

    while (*fd >= 0) {
        ssize_t n = recv(*fd, buf, sizeof(buf), MSG_DONTWAIT);

        if (n > 0) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return;
        }
        close(*fd);
        *fd = -1;
    }
}

/* Run the main loop until it is idle. */
static void pump(int *fd)
{
    for (int i = 0; i < 256; i++) {
        bool busy = g_main_context_iteration(NULL, FALSE);

        drain(fd);
        if (!busy) {
            break;
        }
    }
}

static void send_all(int *fd, const uint8_t *data, size_t len)
{
    while (*fd >= 0 && len) {
        ssize_t n = send(*fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pump(fd);
            continue;
        }
        if (n <= 0) {
            close(*fd);
            *fd = -1;
            return;
        }
        data += n;
        len -= n;
    }
    pump(fd);
}

static int open_connection(bool import)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    /* Closed with a reset: no TIME_WAIT, so long runs do not use up local ports. */
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        abort();
    }
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        /* Not the export's fault (the machine ran out of something): skip. */
        close(fd);
        return -1;
    }
    pump(&fd);
    if (import) {
        g_autoptr(GByteArray) req = g_byte_array_new();

        usbip_encode_op_request(req, USBIP_OP_REQ_IMPORT, "1-1");
        send_all(&fd, req->data, req->len);
    }
    return fd;
}

static void close_connection(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    /* Let the export see the end of the stream and detach the reader. */
    for (int i = 0; i < 8; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
}

/* The peer: a connection that imports 1-1 first or not. */
typedef struct Peer {
    int fd;
    bool import;
} Peer;

static void peer_send(void *opaque, const uint8_t *data, size_t len)
{
    send_all(&((Peer *)opaque)->fd, data, len);
}

static void peer_replace(void *opaque)
{
    Peer *p = opaque;

    close_connection(&p->fd);
    p->fd = open_connection(p->import);
}

static void peer_settle(void *opaque)
{
    pump(&((Peer *)opaque)->fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Peer p;
    FuzzExportPeer peer = { .send = peer_send, .replace = peer_replace,
                            .settle = peer_settle, .opaque = &p };

    if (size < 1) {
        return 0;
    }
    setup_once();
    create_devices();
    p.import = !(data[0] & 1);
    data++;
    size--;
    p.fd = open_connection(p.import);
    fuzz_export_play(&peer, data, size);
    close_connection(&p.fd);
    export_destroy_all();
    device_destroy_all();
    return 0;
}
