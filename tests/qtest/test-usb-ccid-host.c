/*
 * usb-ccid qtests: the host goes away and comes back (with work in flight,
 * as a second host, after garbage), and the usbredir chardev on TCP and as
 * a reconnecting client.
 */
#include "usb-ccid-common.h"

#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

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
USB_CCID_TEST("host/reconnect", test_reconnect)

/* The host leaves with an APDU in flight: the next host sees none of it. */
static void test_reconnect_in_flight(Fixture *f, gconstpointer data)
{
    g_byte_array_unref(ccid_power_on(f->c));

    for (int i = 0; i < 3; i++) {
        ccid_send_xfr_block(f->c, select_pki0, sizeof(select_pki0));
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
USB_CCID_TEST("host/reconnect-in-flight", test_reconnect_in_flight)

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
USB_CCID_TEST("host/reconnect-notify", test_reconnect_notify)

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
USB_CCID_TEST("host/second-refused", test_second_host_refused)

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
USB_CCID_TEST("host/garbage-peer", test_garbage_peer)

/*
 * The review's finding 7: a peer's hello version with a newline and an ANSI
 * escape reaches the log escaped, and forges no line.
 */
static void test_hello_version_escaped(Fixture *f, gconstpointer data)
{
    static const char version[] = "evil\nvccid: usbredir: FORGED\x1b[31m";
    /* usb_redir_header with a 32-bit id (no caps known yet), then the hello. */
    uint8_t hello[12 + 64 + 4] = { 0 };
    uint32_t len = GUINT32_TO_LE(64 + 4);
    g_autoptr(GError) error = NULL;
    g_autofree char *log = NULL;
    UsbredirHost *h;

    ccid_host_free(f->c);
    f->c = NULL;
    h = urh_connect_raw(f->vccid->sock_path, URH_TIMEOUT_MS, &error);
    g_assert_no_error(error);
    memcpy(hello + 4, &len, 4);
    memcpy(hello + 12, version, sizeof(version));
    g_assert_cmpint(write(urh_fd(h), hello, sizeof(hello)), ==, sizeof(hello));
    for (int i = 0; i < 100 && !(log && strstr(log, "FORGED")); i++) {
        g_free(log);
        g_usleep(50 * 1000);
        log = vccid_read_stderr(f->vccid);
    }
    urh_free(h);
    g_assert_nonnull(strstr(log, "evil\\x0avccid: usbredir: FORGED\\x1b[31m"));
    g_assert_null(strchr(log, '\x1b'));
    g_assert_null(strstr(log, "\nvccid: usbredir: FORGED"));
    f->c = ccid_host_open(f->vccid->sock_path);
    use_reader(f->c);
}
USB_CCID_TEST("host/hello-version-escaped", test_hello_version_escaped)

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
USB_CCID_TEST("host/leave-during-flood", test_leave_during_flood)

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
USB_CCID_TEST_PLAIN("host/tcp-server", test_tcp_server)

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
USB_CCID_TEST_PLAIN("host/client-reconnect", test_client_reconnect)
