/*
 * Every peer is bounded (docs/ccid.txt, section 9): the floods of the
 * review of issue 9, each from a peer that means harm. Each test checks
 * that the process it attacked grew by less than MAX_GROWTH_KB (VmRSS and
 * its peak VmHWM, from /proc), and either that the peer is dropped and the
 * next peer served, or (backpressure) that reading from the peer paused,
 * what it sent waiting in the socket, and that it was served in the end.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>

#include "usb-ccid-common.h"
#include "usbip-host.h"
#include "proto/usbip.h"
#include "proto/vscard.h"

#define MAX_GROWTH_KB (8 * 1024)
#define DROP_TIMEOUT_MS 10000

/* A field of /proc/PID/status in kB (VmRSS, VmHWM). */
static long proc_status_kb(GPid pid, const char *field)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
    g_autofree char *text = NULL;
    g_autofree char *key = g_strdup_printf("\n%s:", field);
    const char *p;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    p = strstr(text, key);
    g_assert_nonnull(p);
    return strtol(p + strlen(key), NULL, 10);
}

typedef struct Memory {
    long rss, hwm;
} Memory;

static Memory memory_of(GPid pid)
{
    return (Memory){ proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "VmHWM") };
}

static void assert_growth_bounded(GPid pid, Memory before, const char *what)
{
    Memory after = memory_of(pid);

    g_test_message("%s: VmRSS %ld -> %ld kB, VmHWM %ld -> %ld kB", what, before.rss, after.rss,
                   before.hwm, after.hwm);
    g_assert_cmpint(after.rss - before.rss, <, MAX_GROWTH_KB);
    g_assert_cmpint(after.hwm - before.hwm, <, MAX_GROWTH_KB);
}

/* Iterate the host until the daemon drops it. */
static void assert_host_dropped(CcidHost *c)
{
    gint64 deadline = g_get_monotonic_time() + DROP_TIMEOUT_MS * 1000;

    while (urh_peer_alive(c->usb) && g_get_monotonic_time() < deadline) {
        urh_iterate(c->usb, 50);
    }
    g_assert_false(urh_peer_alive(c->usb));
}

static void assert_log_has(VccidProcess *v, const char *text)
{
    g_autofree char *log = vccid_read_stderr(v);

    g_assert_nonnull(strstr(log, text));
}

static void assert_log_lacks(VccidProcess *v, const char *text)
{
    g_autofree char *log = vccid_read_stderr(v);

    g_assert_null(strstr(log, text));
}

/* The daemon serves the next host: the reader works end to end. */
static void assert_next_host_served(VccidProcess *v)
{
    CcidHost *c = ccid_host_open(v->sock_path);

    use_reader(c);
    ccid_host_free(c);
    g_assert_true(vccid_is_running(v));
}

/*
 * The flood of what (the daemon logged log_part) dropped host c without the
 * daemon growing past the bound since before; the next host is served, and
 * the daemon stops cleanly.
 */
static void assert_dropped_then_served(VccidProcess *v, CcidHost *c, Memory before,
                                       const char *what, const char *log_part)
{
    assert_host_dropped(c);
    assert_growth_bounded(v->pid, before, what);
    assert_log_has(v, log_part);
    ccid_host_free(c);
    assert_next_host_served(v);
    vccid_stop(v);
}

/*
 * Host c was kept through the flood (the daemon never logged log_absent):
 * its reader still works, and the daemon stops cleanly.
 */
static void assert_kept_then_served(VccidProcess *v, CcidHost *c, const char *log_absent)
{
    assert_log_lacks(v, log_absent);
    assert_slot_works(c);
    ccid_host_free(c);
    vccid_stop(v);
}

/* Finding 2a: 5,000 pending 64 KiB bulk-in requests (VmSize went 85 -> 406 MB). */
static void test_pending_bulk_in(void)
{
    VccidProcess *v = vccid_start_default();
    CcidHost *c = ccid_host_open(v->sock_path);
    Memory before = memory_of(v->pid);
    int sent = 0;

    for (; sent < 5000 && urh_peer_alive(c->usb); sent++) {
        urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, 64 * 1024);
        urh_iterate(c->usb, 0);
    }
    g_test_message("%d bulk-in requests sent before the drop was seen", sent);
    assert_dropped_then_served(v, c, before, "pending bulk-in", "transfers pending on endpoint");
}

/*
 * Finding 2b: 64 GetSlotStatus whose answers nobody reads fill the reader's
 * queues; then 200 bulk-outs of 1 MiB each, which the reader can only hold
 * (+193 MB RSS before).
 */
static void test_held_bulk_out(void)
{
    VccidProcess *v = vccid_start_default();
    CcidHost *c = ccid_host_open(v->sock_path);
    g_autofree uint8_t *big = g_malloc0(1024 * 1024);
    Memory before = memory_of(v->pid);
    int sent = 0;

    for (int i = 0; i < 64; i++) {
        uint8_t msg[CCID_HDR];

        ccid_build(c, msg, PC_to_RDR_GetSlotStatus, 0, 0, 0, 0, 0);
        urh_bulk_submit(c->usb, c->ep_bulk_out, msg, sizeof(msg));
    }
    urh_idle(c->usb, 200);
    for (; sent < 200 && urh_peer_alive(c->usb); sent++) {
        /* A CCID header that announces the megabyte, then the rest of it. */
        ccid_build(c, big, PC_to_RDR_XfrBlock, 0, 1024 * 1024 - CCID_HDR, 0, 0, 0);
        urh_bulk_submit(c->usb, c->ep_bulk_out, big, 1024 * 1024);
        urh_iterate(c->usb, 0);
    }
    g_test_message("%d bulk-outs of 1 MiB sent before the drop was seen", sent);
    assert_dropped_then_served(v, c, before, "held bulk-out", "bulk-out data held");
}

/*
 * Send pattern over and over (len bytes in all) without blocking; stop at
 * the first error, or when the peer has taken nothing for a second (it
 * stopped reading). Returns what went out.
 */
static size_t send_pattern_until_stalled(int fd, const uint8_t *pattern, size_t pattern_len,
                                         size_t len)
{
    size_t done = 0;

    while (done < len) {
        size_t off = done % pattern_len;
        ssize_t n = send(fd, pattern + off, MIN(len - done, pattern_len - off),
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };

            if (poll(&pfd, 1, 1000) <= 0) {
                break;
            }
            continue;
        }
        if (n <= 0) {
            break;
        }
        done += n;
    }
    return done;
}

/* len bytes of zeros, as above. */
static size_t send_until_error(int fd, size_t len)
{
    g_autofree uint8_t *chunk = g_malloc0(1024 * 1024);

    return send_pattern_until_stalled(fd, chunk, 1024 * 1024, len);
}

/*
 * Read and count what the peer sends until want bytes came, it closed, or
 * it sent nothing for timeout_ms.
 */
static size_t recv_count(int fd, size_t want, int timeout_ms)
{
    g_autofree uint8_t *buf = g_malloc(65536);
    size_t got = 0;

    while (got < want) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (poll(&pfd, 1, timeout_ms) <= 0) {
            break;
        }
        n = recv(fd, buf, 65536, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += n;
    }
    return got;
}

/* Iterate the host until every transfer in ts is done (or it is dropped). */
static void wait_all_done(CcidHost *c, GPtrArray *ts)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    for (guint i = 0; i < ts->len; i++) {
        UrhTransfer *t = g_ptr_array_index(ts, i);

        while (!t->done && urh_peer_alive(c->usb) && g_get_monotonic_time() < deadline) {
            urh_iterate(c->usb, 50);
        }
        g_assert_true(t->done);
    }
}

/*
 * Send reqs (the first *sent bytes already went) and count the answers
 * until n IN and n OUT answers came, the peer closed, or nothing happened
 * for a while.
 */
static void raw_exchange(int fd, GByteArray *reqs, size_t *sent, size_t n,
                         void (*count)(GByteArray *in, size_t *ins, size_t *outs, size_t *bad,
                                       void *opaque),
                         void *opaque, size_t *ins, size_t *outs, size_t *bad)
{
    g_autoptr(GByteArray) answers = g_byte_array_new();
    g_autofree uint8_t *buf = g_malloc(65536);
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    while ((*ins < n || *outs < n) && g_get_monotonic_time() < deadline) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN | (*sent < reqs->len ? POLLOUT : 0) };
        ssize_t r;

        if (poll(&pfd, 1, 1000) <= 0) {
            continue;
        }
        if (pfd.revents & POLLOUT) {
            r = send(fd, reqs->data + *sent, reqs->len - *sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            *sent += r > 0 ? r : 0;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            r = recv(fd, buf, 65536, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                break;
            }
            g_byte_array_append(answers, buf, MAX(r, 0));
            count(answers, ins, outs, bad, opaque);
        }
    }
    g_assert_cmpuint(answers->len, ==, 0);
}

/* A usbredir bulk packet as a host sends it (64-bit ids), appended to out. */
static void redir_raw_bulk(GByteArray *out, uint64_t id, uint8_t ep, const uint8_t *data,
                           uint16_t len)
{
    uint32_t type = GUINT32_TO_LE(usb_redir_bulk_packet);
    uint32_t plen = GUINT32_TO_LE(10 + (ep & 0x80 ? 0 : len));
    uint64_t lid = GUINT64_TO_LE(id);
    uint16_t llen = GUINT16_TO_LE(len);
    uint8_t bulk[10] = { ep, 0 };

    memcpy(bulk + 2, &llen, 2);
    g_byte_array_append(out, (uint8_t *)&type, 4);
    g_byte_array_append(out, (uint8_t *)&plen, 4);
    g_byte_array_append(out, (uint8_t *)&lid, 8);
    g_byte_array_append(out, bulk, sizeof(bulk));
    if (!(ep & 0x80)) {
        g_byte_array_append(out, data, len);
    }
}

/*
 * Take the whole usbredir packets at the start of in; count the bulk-in
 * answers that carry a message of type want (and any other bulk-in answer
 * in *bad), and the bulk-out answers.
 */
static void redir_raw_count(GByteArray *in, uint8_t ep_in, uint8_t want, size_t *ins,
                            size_t *outs, size_t *bad)
{
    size_t off = 0;

    while (in->len - off >= 16) {
        uint32_t type, len;

        memcpy(&type, in->data + off, 4);
        memcpy(&len, in->data + off + 4, 4);
        type = GUINT32_FROM_LE(type);
        len = GUINT32_FROM_LE(len);
        if (in->len - off < 16 + len) {
            break;
        }
        if (type == usb_redir_bulk_packet && len >= 10) {
            const uint8_t *bulk = in->data + off + 16;

            if (bulk[0] != ep_in) {
                *outs += 1;
            } else if (bulk[1] == usb_redir_success && len > 10 && bulk[10] == want) {
                *ins += 1;
            } else {
                *bad += 1;
            }
        }
        off += 16 + len;
    }
    g_byte_array_remove_range(in, 0, off);
}

static void redir_count_slot_status(GByteArray *in, size_t *ins, size_t *outs, size_t *bad,
                                    void *opaque)
{
    CcidHost *c = opaque;

    redir_raw_count(in, c->ep_bulk_in, RDR_to_PC_SlotStatus, ins, outs, bad);
}

/*
 * Backpressure on a host that writes far ahead of its reading: 100,000
 * GetSlotStatus, each with its bulk-in, before it reads anything. The
 * answers (6 MB) would pass the chardev's 4 MiB cap; instead the daemon
 * stops reading once 1 MiB waits for the host, the rest waits in the
 * socket and in the host, and when the host reads, every answer arrives.
 * Before backpressure the host was dropped ("peer is not reading its input").
 * (Raw packets: the host's usbredirparser queues its writes in a list.)
 */
static void test_usbredir_host_reads_late(void)
{
    enum { N = 100000 };
    VccidProcess *v = vccid_start_default();
    CcidHost *c = ccid_host_open(v->sock_path);
    g_autoptr(GByteArray) reqs = g_byte_array_new();
    Memory before = memory_of(v->pid);
    int fd = urh_fd(c->usb);
    size_t sent, ins = 0, outs = 0, bad = 0;

    g_assert_true(urh_peer_has_cap(c->usb, usb_redir_cap_64bits_ids));
    for (uint64_t i = 0; i < N; i++) {
        uint8_t msg[CCID_HDR];

        ccid_build(c, msg, PC_to_RDR_GetSlotStatus, 0, 0, 0, 0, 0);
        redir_raw_bulk(reqs, (1ull << 40) + 2 * i, c->ep_bulk_out, msg, sizeof(msg));
        redir_raw_bulk(reqs, (1ull << 40) + 2 * i + 1, c->ep_bulk_in, NULL, c->bulk_in_size);
    }
    sent = send_pattern_until_stalled(fd, reqs->data, reqs->len, reqs->len);
    g_test_message("%zu of %u bytes of requests taken before the daemon stopped reading",
                   sent, reqs->len);
    g_assert_cmpuint(sent, <, reqs->len);
    assert_growth_bounded(v->pid, before, "usbredir host that reads late");

    /* Now the host reads, and sends the rest as the daemon takes it. */
    raw_exchange(fd, reqs, &sent, N, redir_count_slot_status, c, &ins, &outs, &bad);
    g_test_message("%zu bulk-in and %zu bulk-out answers, %zu others", ins, outs, bad);
    g_assert_cmpuint(ins, ==, N);
    g_assert_cmpuint(outs, ==, N);
    g_assert_cmpuint(bad, ==, 0);
    assert_kept_then_served(v, c, "peer is not reading its input");
}

/*
 * No deadlock: bulk-in requests come on the same socket as bulk-out data.
 * A host fills the reader's queues with 64 GetSlotStatus, then sends ten
 * bulk-outs of 64 KiB the reader can only hold (640 KiB: past the high-water
 * mark, below the cap), and only then the bulk-ins for all 74 answers. The
 * device holds no IN transfer, so nothing would drain without reading on:
 * the daemon must read on to see those bulk-ins. Every answer arrives and
 * the host is not dropped.
 */
static void test_usbredir_held_bulk_out_then_read(void)
{
    VccidProcess *v = vccid_start_default();
    CcidHost *c = ccid_host_open(v->sock_path);
    g_autofree uint8_t *big = g_malloc0(64 * 1024);
    g_autoptr(GPtrArray) ins = g_ptr_array_new();
    Memory before = memory_of(v->pid);

    for (int i = 0; i < 64; i++) {
        uint8_t msg[CCID_HDR];

        ccid_build(c, msg, PC_to_RDR_GetSlotStatus, 0, 0, 0, 0, 0);
        urh_bulk_submit(c->usb, c->ep_bulk_out, msg, sizeof(msg));
    }
    for (int i = 0; i < 10; i++) {
        /*
         * Longer than the reader takes: each is answered with an error, in
         * its turn. One byte short of 64 KiB, so that the transfer ends.
         */
        ccid_build(c, big, PC_to_RDR_XfrBlock, 0, 64 * 1024 - 1 - CCID_HDR, 0, 0, 0);
        urh_bulk_submit(c->usb, c->ep_bulk_out, big, 64 * 1024 - 1);
    }
    while (urh_send_only(c->usb, 1000)) {
    }
    urh_idle(c->usb, 200);
    for (int i = 0; i < 74; i++) {
        g_ptr_array_add(ins, urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size));
    }
    wait_all_done(c, ins);
    for (guint i = 0; i < ins->len; i++) {
        UrhTransfer *t = g_ptr_array_index(ins, i);

        g_assert_cmpuint(t->status, ==, usb_redir_success);
        g_assert_cmpuint(t->data->data[0], ==, i < 64 ? RDR_to_PC_SlotStatus
                                                      : RDR_to_PC_DataBlock);
    }
    g_assert_true(urh_peer_alive(c->usb));
    assert_growth_bounded(v->pid, before, "held bulk-out, then read");
    assert_kept_then_served(v, c, "dropping the peer");
}

/*
 * Finding 2c: one usbredir packet of 100 MB, after a proper hello (64-bit
 * ids): dropped at its header, before anything is allocated for it.
 */
static void test_huge_packet(void)
{
    VccidProcess *v = vccid_start_default();
    CcidHost *c = ccid_host_open(v->sock_path);
    Memory before = memory_of(v->pid);
    /* usb_redir_header with a 64-bit id: type, length, id; then a bulk header. */
    uint8_t hdr[16 + 8] = { 0 };
    uint32_t type = GUINT32_TO_LE(usb_redir_bulk_packet);
    uint32_t length = GUINT32_TO_LE(100 * 1000 * 1000);
    size_t sent;

    g_assert_true(urh_peer_has_cap(c->usb, usb_redir_cap_64bits_ids));
    memcpy(hdr, &type, 4);
    memcpy(hdr + 4, &length, 4);
    hdr[8] = 0x77;
    hdr[16] = c->ep_bulk_out;
    g_assert_cmpint(send(urh_fd(c->usb), hdr, sizeof(hdr), MSG_NOSIGNAL), ==, sizeof(hdr));
    sent = send_until_error(urh_fd(c->usb), 100 * 1000 * 1000 - 8);
    g_test_message("%zu bytes of the packet sent before the drop", sent);
    g_assert_cmpuint(sent, <, 100 * 1000 * 1000 - 8);
    assert_dropped_then_served(v, c, before, "100 MB packet", "a packet of 100000000 bytes");
}

static int unix_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    return fd;
}

/* Milliseconds until the daemon closes fd (reading what it sends), or -1 after timeout_ms. */
static gint64 ms_until_closed(int fd, int timeout_ms)
{
    gint64 start = g_get_monotonic_time();
    gint64 deadline = start + timeout_ms * 1000;

    while (g_get_monotonic_time() < deadline) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        uint8_t buf[4096];

        if (poll(&pfd, 1, 100) > 0) {
            ssize_t n = recv(fd, buf, sizeof(buf), 0);

            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                return (g_get_monotonic_time() - start) / 1000;
            }
        }
    }
    return -1;
}

/*
 * Finding 4: 11 bytes of a usbredir header, then silence, held the port
 * for ever. The deadline runs until the protocol's hello is whole.
 */
static void test_partial_hello(void)
{
    static const uint8_t partial[11] = { 0, 0, 0, 0, 68, 0, 0, 0, 0, 0, 0 };
    VccidProcess *v = vccid_start_full(
        "socket,id=redir,path=@SOCK@,server=on,wait=off,handshake-timeout=2",
        vccid_default_devices, true);
    int fd = unix_connect(v->sock_path);
    gint64 ms;

    g_assert_cmpint(send(fd, partial, sizeof(partial), MSG_NOSIGNAL), ==, sizeof(partial));
    ms = ms_until_closed(fd, 8000);
    g_test_message("closed after %" G_GINT64_FORMAT " ms", ms);
    g_assert_cmpint(ms, >=, 1500);
    close(fd);
    assert_log_has(v, "no hello within 2s");
    assert_next_host_served(v);
    vccid_stop(v);
}

/* ---- a card that takes its time: the passthru client is the test ---- */

/* The passthru client's ATR: a T=1 card. */
/* vccid with a passthru card, its client's socket at vsc_path(); trace, if set, for -trace. */
static VccidProcess *start_passthru_card(const char *trace)
{
    const char *const args[] = {
        "-chardev", "socket,id=vsc,path=@DIR@/vsc.sock,server=on,wait=off",
        "-device", "usb-ccid,id=ccid",
        "-device", "ccid-card-passthru,chardev=vsc",
        trace ? "-trace" : NULL, trace,
        NULL,
    };

    return vccid_start(args);
}

static char *vsc_path(VccidProcess *v)
{
    return g_build_filename(v->tmpdir, "vsc.sock", NULL);
}

static const uint8_t slow_card_atr[] = { 0x3b, 0x8b, 0x80, 0x01, 0x00, 0x31, 0xc1, 0x64,
                                         0x08, 0x60, 0x32, 0x00, 0x00, 0x90, 0x00 };

/* Answer every whole VSC_APDU in in (taken from it) with 90 00; returns how many. */
static unsigned slow_card_answer(int fd, GByteArray *in)
{
    static const uint8_t ok[] = { 0x90, 0x00 };
    g_autoptr(GByteArray) out = g_byte_array_new();
    size_t off = 0;
    unsigned n = 0;

    while (in->len - off >= VSCARD_HEADER_SIZE) {
        const uint8_t *h = in->data + off;
        uint32_t len = h[8] << 24 | h[9] << 16 | h[10] << 8 | h[11];

        if (in->len - off < VSCARD_HEADER_SIZE + len) {
            break;
        }
        if (h[3] == VSC_APDU) {
            vscard_build(out, VSC_APDU, 0, ok, sizeof(ok));
            n++;
        }
        off += VSCARD_HEADER_SIZE + len;
    }
    g_byte_array_remove_range(in, 0, off);
    g_assert_cmpint(send(fd, out->data, out->len, MSG_NOSIGNAL), ==, out->len);
    return n;
}

/* Read what the daemon sent the client, without waiting. */
static void slow_card_read(int fd, GByteArray *in)
{
    uint8_t buf[65536];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        g_byte_array_append(in, buf, n);
    }
}

/*
 * The paused path, and that it resumes: a host sends an APDU, eight
 * bulk-ins (as a host keeps reads queued), then 1,500 more 270-byte
 * XfrBlocks. The card (this test, as the passthru client) does not answer
 * yet, so the reader is busy with the first APDU and holds a bulk-in (its
 * time extensions use one each 500 ms), and the rest fills the command
 * queue and then is held: the daemon stops reading at 256 KiB held (trace
 * usbredir_held_back) instead of taking all of it. Then the card answers
 * as the APDUs come and the host reads on, a new bulk-in for each one
 * answered: reading resumes and every APDU is answered, the host kept.
 */
static void test_usbredir_busy_card_holds_back(void)
{
    enum { N = 1500, K = 8 };
    VccidProcess *v = start_passthru_card("enable=usbredir_held_back");
    g_autofree char *path = vsc_path(v);
    g_autoptr(GByteArray) msgs = g_byte_array_new();
    g_autoptr(GByteArray) from_daemon = g_byte_array_new();
    g_autofree uint8_t *xfr = g_malloc0(CCID_HDR + 260);
    g_autoptr(GByteArray) atr = NULL;
    CcidHost *c = ccid_host_open(v->sock_path);
    int fd = unix_connect(path);
    UrhTransfer *reads[K];
    unsigned answered = 0, blocks = 0, extensions = 0;
    gint64 deadline;

    vscard_build_init(msgs, VSCARD_UNDEFINED_READER_ID, 0);
    vscard_build(msgs, VSC_ReaderAdd, VSCARD_UNDEFINED_READER_ID, NULL, 0);
    vscard_build(msgs, VSC_ATR, 0, slow_card_atr, sizeof(slow_card_atr));
    g_assert_cmpint(send(fd, msgs->data, msgs->len, MSG_NOSIGNAL), ==, msgs->len);
    atr = ccid_power_on(c);

    /* UPDATE BINARY with 255 bytes: a command the reader passes to the card whole. */
    memcpy(xfr + CCID_HDR, (const uint8_t[]){ 0x00, 0xd6, 0x00, 0x00, 0xff }, 5);
    for (int i = 0; i < N; i++) {
        ccid_build(c, xfr, PC_to_RDR_XfrBlock, 0, 260, 0, 0, 0);
        urh_bulk_submit(c->usb, c->ep_bulk_out, xfr, CCID_HDR + 260);
        for (int k = 0; i == 0 && k < K; k++) {
            reads[k] = urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size);
        }
    }
    while (urh_send_only(c->usb, 1000)) {
    }
    assert_log_has(v, "usbredir_held_back");
    g_assert_true(urh_peer_alive(c->usb));

    deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    while (blocks < N && urh_peer_alive(c->usb) && g_get_monotonic_time() < deadline) {
        urh_iterate(c->usb, 10);
        slow_card_read(fd, from_daemon);
        answered += slow_card_answer(fd, from_daemon);
        for (int k = 0; k < K; k++) {
            UrhTransfer *t = reads[k];

            if (!t->done) {
                continue;
            }
            g_assert_cmpuint(t->status, ==, usb_redir_success);
            g_assert_cmpuint(t->data->data[0], ==, RDR_to_PC_DataBlock);
            if (t->data->data[7] >> 6 == 2) {
                extensions++;
            } else {
                g_assert_cmpuint(apdu_sw(t->data), ==, 0x9000);
                blocks++;
            }
            urh_transfer_release(c->usb, t);
            reads[k] = urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size);
        }
    }
    g_test_message("%u APDUs answered by the card, %u by the reader, %u time extensions",
                   answered, blocks, extensions);
    g_assert_cmpuint(blocks, ==, N);
    g_assert_cmpuint(answered, ==, N);
    g_assert_true(urh_peer_alive(c->usb));
    close(fd);
    ccid_host_free(c);
    vccid_stop(v);
}

/* ---- USB/IP ---- */

/* The usb-ccid's endpoints (hw/usb/dev-smartcard-reader.c). */
#define USBIP_EP_BULK_IN 2
#define USBIP_EP_BULK_OUT 3

static void usbip_raw_submit(GByteArray *out, uint32_t devid, uint32_t seqnum, bool in,
                             const uint8_t *data, uint32_t len)
{
    UsbipSubmit cmd = {
        .h = { .command = USBIP_CMD_SUBMIT, .seqnum = seqnum, .devid = devid,
               .direction = in ? USBIP_DIR_IN : USBIP_DIR_OUT,
               .ep = in ? USBIP_EP_BULK_IN : USBIP_EP_BULK_OUT },
        .transfer_buffer_length = len,
    };

    usbip_encode_cmd_submit(out, &cmd, data);
}

/*
 * Take the whole RET_SUBMITs at the start of in (odd seqnums are IN URBs,
 * whose data follows); count IN answers carrying a message of type want
 * (others in *bad), and OUT answers.
 */
static void usbip_raw_count(GByteArray *in, uint8_t want, size_t *ins, size_t *outs, size_t *bad)
{
    size_t off = 0;

    while (in->len - off >= 48) {
        const uint8_t *r = in->data + off;
        uint32_t seqnum = r[4] << 24 | r[5] << 16 | r[6] << 8 | r[7];
        int32_t status = (int32_t)(r[20] << 24 | r[21] << 16 | r[22] << 8 | r[23]);
        uint32_t actual = r[24] << 24 | r[25] << 16 | r[26] << 8 | r[27];
        size_t len = 48 + (seqnum & 1 ? actual : 0);

        if (in->len - off < len) {
            break;
        }
        if (!(seqnum & 1)) {
            *outs += status == 0;
            *bad += status != 0;
        } else if (status == 0 && actual >= CCID_HDR && r[48] == want) {
            *ins += 1;
        } else {
            *bad += 1;
        }
        off += len;
    }
    g_byte_array_remove_range(in, 0, off);
}

static void usbip_count_slot_status(GByteArray *in, size_t *ins, size_t *outs, size_t *bad,
                                    void *opaque)
{
    usbip_raw_count(in, RDR_to_PC_SlotStatus, ins, outs, bad);
}

/*
 * The USB/IP form of host-reads-late: 200,000 GetSlotStatus with their
 * bulk-in URBs before the importer reads anything. The RET_SUBMITs (21 MB)
 * would pass the export's 16 MiB output cap; instead the daemon stops
 * reading once 1 MiB waits, and when the importer reads, every URB is
 * answered on the same connection. Before backpressure the importer was
 * dropped ("bytes of answers not read").
 */
static void test_usbip_importer_reads_late(void)
{
    enum { N = 200000 };
    uint16_t port = qtest_free_tcp_port();
    g_autofree char *export = g_strdup_printf("usbip,device=r1,port=%u", port);
    const char *const args[] = {
        "-device", "usb-ccid,id=r1",
        "-device", "ccid-card-emulated,backend=certificates,db=@DB@,"
                   "cert1=id-cert,cert2=signing-cert,cert3=encryption-cert",
        "-export", export, NULL,
    };
    VccidProcess *v = vccid_start(args);
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) reqs = g_byte_array_new();
    g_autoptr(GByteArray) answer = NULL;
    uint8_t gss[CCID_HDR] = { PC_to_RDR_GetSlotStatus };
    uint32_t status = 0;
    UsbipHost *h = uih_import(port, "1-1", &status, &err);
    Memory before = memory_of(v->pid);
    size_t sent, ins = 0, outs = 0, bad = 0;

    g_assert_no_error(err);
    g_assert_nonnull(h);
    g_assert_cmpint(uih_control(h, 0x00, 0x09, 1, 0, NULL, 0, NULL), ==, 0);
    for (uint32_t i = 0; i < N; i++) {
        gss[6] = i;
        usbip_raw_submit(reqs, uih_devid(h), 0x100000 + 2 * i, false, gss, sizeof(gss));
        usbip_raw_submit(reqs, uih_devid(h), 0x100000 + 2 * i + 1, true, NULL, 65546);
    }
    sent = send_pattern_until_stalled(uih_fd(h), reqs->data, reqs->len, reqs->len);
    g_test_message("%zu of %u bytes of URBs taken before the daemon stopped reading",
                   sent, reqs->len);
    g_assert_cmpuint(sent, <, reqs->len);
    assert_growth_bounded(v->pid, before, "USB/IP importer that reads late");

    raw_exchange(uih_fd(h), reqs, &sent, N, usbip_count_slot_status, NULL, &ins, &outs, &bad);
    g_test_message("%zu IN and %zu OUT URBs answered, %zu others", ins, outs, bad);
    g_assert_cmpuint(ins, ==, N);
    g_assert_cmpuint(outs, ==, N);
    g_assert_cmpuint(bad, ==, 0);
    assert_log_lacks(v, "disconnecting");

    /* The same connection goes on. */
    gss[6] = 0;
    g_assert_cmpint(uih_bulk_out(h, USBIP_EP_BULK_OUT, gss, sizeof(gss)), ==, 0);
    g_assert_cmpint(uih_bulk_in(h, USBIP_EP_BULK_IN, 65546, &answer), ==, 0);
    g_assert_cmpuint(answer->data[0], ==, RDR_to_PC_SlotStatus);
    uih_free(h);
    vccid_stop(v);
}

/* ---- vscclient against a host that floods it and never reads ---- */

static int tcp_listen_loopback(uint16_t *port)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    g_assert_cmpint(listen(fd, 4), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&addr, &len), ==, 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* Read a peer's Init (header and 12-byte payload): vscclient's, or the daemon's answer. */
static void expect_client_init(int fd)
{
    uint8_t buf[VSCARD_HEADER_SIZE + 12];
    size_t got = 0;
    gint64 deadline = g_get_monotonic_time() + DROP_TIMEOUT_MS * 1000;

    while (got < sizeof(buf) && g_get_monotonic_time() < deadline) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (poll(&pfd, 1, 100) <= 0) {
            continue;
        }
        n = recv(fd, buf + got, sizeof(buf) - got, 0);
        g_assert_cmpint(n, >, 0);
        got += n;
    }
    g_assert_cmpuint(got, ==, sizeof(buf));
    g_assert_cmpuint(buf[3], ==, VSC_Init);
    g_assert_cmpmem(buf + VSCARD_HEADER_SIZE, 4, "VSCD", 4);
}

/*
 * Finding 3: a host that sends 200 MiB of VSC_Flush and never reads the
 * FlushComplete answers took vscclient to 211 MB RSS (later: vscclient
 * dropped it at its 1 MiB output cap). Now vscclient stops reading once
 * 256 KiB of answers wait, and the rest of the flood waits in the socket;
 * when the host reads, every Flush is answered on the same connection.
 */
static void test_vscclient_flood(void)
{
    const char *bin = g_getenv("VSCCLIENT_BINARY");
    g_autofree char *emul = NULL;
    g_autofree char *port_str = NULL;
    g_autoptr(GByteArray) flushes = g_byte_array_new();
    g_autoptr(GError) err = NULL;
    uint16_t port;
    int lfd, fd, stdin_fd, status;
    GPid pid;
    Memory before;
    size_t sent, want, got;

    if (!bin) {
        g_test_skip("VSCCLIENT_BINARY not set");
        return;
    }
    emul = vscclient_soft_card(vccid_master_cert_db());
    lfd = tcp_listen_loopback(&port);
    port_str = g_strdup_printf("%u", port);
    {
        const char *argv[] = { bin, "-e", emul, "127.0.0.1", port_str, NULL };

        g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
                                 G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL,
                                 NULL, NULL, &pid, &stdin_fd, NULL, NULL, &err);
        g_assert_no_error(err);
    }
    fd = qtest_accept(lfd, DROP_TIMEOUT_MS);
    g_assert_cmpint(fd, >=, 0);
    expect_client_init(fd);
    before = memory_of(pid);

    for (int i = 0; i < 65536; i++) {
        vscard_build(flushes, VSC_Flush, 0, NULL, 0);
    }
    sent = send_pattern_until_stalled(fd, flushes->data, flushes->len, 200u * 1024 * 1024);
    g_test_message("%zu bytes of Flush sent before vscclient stopped reading", sent);
    g_assert_cmpuint(sent, <, 200u * 1024 * 1024);
    assert_growth_bounded(pid, before, "vscclient");

    /* Still connected: every whole Flush gets its FlushComplete (a header, no payload). */
    want = sent / VSCARD_HEADER_SIZE * VSCARD_HEADER_SIZE;
    got = recv_count(fd, want + 1, 2000);
    g_test_message("%zu bytes of FlushComplete read, %zu expected", got, want);
    g_assert_cmpuint(got, ==, want);
    g_assert_cmpint(waitpid(pid, &status, WNOHANG), ==, 0);
    close(fd);

    kill(pid, SIGTERM);
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_spawn_close_pid(pid);
    close(stdin_fd);
    close(lfd);
}

/*
 * A passthru client that sends 200 MiB of junk before it reads anything:
 * each message is answered with a VSC_Error that the client does not
 * read yet. The daemon stops reading from the client once those answers
 * pass the chardev's high-water mark, so the rest waits in the socket
 * instead of in the daemon; when the client reads, every answer arrives
 * and the client is still served. (Before backpressure, the answers grew
 * to the chardev's cap and the client was dropped.)
 */
static void test_passthru_client_floods_before_reading(void)
{
    VccidProcess *v = start_passthru_card(NULL);
    g_autofree char *path = vsc_path(v);
    g_autoptr(GByteArray) opening = g_byte_array_new();
    g_autoptr(GByteArray) junk = g_byte_array_new();
    g_autofree char *log = NULL;
    CcidHost *c = ccid_host_open(v->sock_path);
    Memory before = memory_of(v->pid);
    int fd = unix_connect(path);
    size_t sent, answers, want, got;

    vscard_build_init(opening, VSCARD_UNDEFINED_READER_ID, 0);
    vscard_build(opening, VSC_ReaderAdd, VSCARD_UNDEFINED_READER_ID, NULL, 0);
    g_assert_cmpint(send(fd, opening->data, opening->len, MSG_NOSIGNAL), ==, opening->len);
    /* In step, for reader 0, so each is answered with a VSC_Error and the client kept. */
    for (int i = 0; i < 65536; i++) {
        vscard_build(junk, 42, 0, NULL, 0);
    }
    sent = send_pattern_until_stalled(fd, junk->data, junk->len, 200u * 1024 * 1024);
    g_test_message("%zu bytes of junk sent before the daemon stopped reading", sent);
    g_assert_cmpuint(sent, <, 200u * 1024 * 1024);
    assert_growth_bounded(v->pid, before, "passthru client that reads late");

    /* Now it reads: the Init, the ReaderAdd's answer, then one Error per whole message. */
    answers = sent / VSCARD_HEADER_SIZE;
    want = (VSCARD_HEADER_SIZE + 12) + (VSCARD_HEADER_SIZE + 4) * (answers + 1);
    got = recv_count(fd, want + 1, 2000);
    g_test_message("%zu bytes of answers read, %zu expected", got, want);
    g_assert_cmpuint(got, ==, want);
    log = vccid_read_stderr(v);
    g_assert_null(strstr(log, "peer is not reading its input"));
    g_assert_null(strstr(log, "client gone"));
    close(fd);
    assert_slot_works(c);

    /* The next client is served: its Init is answered. */
    fd = unix_connect(path);
    g_assert_cmpint(send(fd, opening->data, opening->len, MSG_NOSIGNAL), ==, opening->len);
    expect_client_init(fd);
    close(fd);
    ccid_host_free(c);
    vccid_stop(v);
}

static const TestCase cases[] = {
    { "/bounds/usbredir/pending-bulk-in", test_pending_bulk_in },
    { "/bounds/usbredir/held-bulk-out", test_held_bulk_out },
    { "/bounds/usbredir/huge-packet", test_huge_packet },
    { "/bounds/usbredir/partial-hello", test_partial_hello },
    { "/bounds/usbredir/host-reads-late", test_usbredir_host_reads_late },
    { "/bounds/usbredir/held-bulk-out-then-read", test_usbredir_held_bulk_out_then_read },
    { "/bounds/passthru/client-floods-before-reading",
      test_passthru_client_floods_before_reading },
    { "/bounds/usbredir/busy-card-holds-back", test_usbredir_busy_card_holds_back },
    { "/bounds/usbip/importer-reads-late", test_usbip_importer_reads_late },
    { "/bounds/vscclient/flood", test_vscclient_flood },
};

int main(int argc, char **argv)
{
    /*
     * Under AddressSanitizer (meson -Dsanitize=true) freed memory waits in a
     * quarantine of up to 256 MB before reuse, which RSS would count as
     * growth: the daemons started here reuse it at once instead.
     */
    const char *asan = g_getenv("ASAN_OPTIONS");
    g_autofree char *asan_options = g_strdup_printf("%s%squarantine_size_mb=0",
                                                    asan ? asan : "", asan ? ":" : "");

    g_setenv("ASAN_OPTIONS", asan_options, TRUE);
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    test_add_cases(cases);
    return g_test_run();
}
