/*
 * qtests of the socket chardev's network legs: TLS with client certificates
 * and authorization, the peers it refuses, the handshake deadline, the
 * second client, and the unix socket file. The real vccid serves its
 * usbredir export; this test is the USB host (QEMU's usb-redir role), over
 * a TLS session of its own made with GIO.
 *
 * After every refusal the same daemon must serve the next legitimate host,
 * and no refused peer may have reached the reader (no usbredir session: the
 * daemon's "host attached" count does not move).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "ccid-host.h"
#include "libqtest-vccid.h"
#include "proto/vscard.h"

/*
 * In sanitizer builds, LeakSanitizer's tracer crashes at the exit of this
 * process ("Tracer caught signal 11"), in the threads GIO and
 * glib-networking leave behind after synchronous handshakes. Leak checking
 * is off for this harness only: the vccid under test keeps it (its
 * environment is not touched) and vccid_stop() fails on any report of its.
 */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
    return "detect_leaks=0";
}

#define TLS_TIMEOUT_MS 10000
/* The deadline the daemons here are given, and how late its drop may come. */
#define HANDSHAKE_TIMEOUT_S 5

static char *certs;   /* made by tests/tls/make-certs.sh, removed at exit */

static void remove_certs(void)
{
    if (certs) {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", certs);

        g_assert_cmpint(system(cmd), ==, 0);
    }
}

static const char *certs_dir(void)
{
    const char *build = g_getenv("VCCID_TLS_WORKDIR");

    if (certs) {
        return certs;
    }
    g_assert_nonnull(g_getenv("VCCID_SOURCE_ROOT"));
    g_assert_nonnull(build);
    certs = g_build_filename(build, "tls-certs-XXXXXX", NULL);
    g_assert_nonnull(g_mkdtemp(certs));
    atexit(remove_certs);
    qtest_run_source_script("tests/tls", "make-certs.sh", certs);
    return certs;
}

static char *role_dir(const char *role)
{
    return g_build_filename(certs_dir(), role, NULL);
}

/* -object tls-creds-x509 called id, on the credentials of role, for endpoint. */
static char *creds_object(const char *id, const char *role, const char *endpoint)
{
    g_autofree char *dir = role_dir(role);

    return g_strdup_printf("tls-creds-x509,id=%s,dir=%s,endpoint=%s", id, dir, endpoint);
}

/* ---- the daemon ---- */

static unsigned count(const char *haystack, const char *needle)
{
    unsigned n = 0;

    for (const char *p = strstr(haystack, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* Wait until the daemon's log holds needle at least n times. */
static void wait_log(VccidProcess *p, const char *needle, unsigned n)
{
    gint64 deadline = g_get_monotonic_time() + TLS_TIMEOUT_MS * 1000;

    for (;;) {
        g_autofree char *log = vccid_read_stderr(p);

        if (count(log, needle) >= n) {
            return;
        }
        if (g_get_monotonic_time() > deadline) {
            g_error("vccid did not log \"%s\" (x%u) within %d ms:\n%s", needle, n,
                    TLS_TIMEOUT_MS, log);
        }
        g_assert_true(vccid_is_running(p));
        g_usleep(10000);
    }
}

static unsigned log_count(VccidProcess *p, const char *needle)
{
    g_autofree char *log = vccid_read_stderr(p);

    return count(log, needle);
}

/*
 * vccid on 127.0.0.1:port with the usbredir export on chardev, and the
 * server credentials as tls0, an authz-simple for the good client as
 * simple0 and an authz-list that refuses mallory as list0.
 */
static VccidProcess *start_vccid(const char *chardev)
{
    g_autofree char *creds = creds_object("tls0", "server", "server");
    g_autofree char *ccreds = creds_object("tlsc", "client", "client");
    const char *args[] = {
        "-object", creds,
        "-object", ccreds,
        "-object", "authz-simple,id=simple0,identity=C=GB,,O=vccid test,,CN=client",
        "-object", "authz-list,id=list0,policy=deny,"
                   "rules.0.match=*CN=mallory,rules.0.policy=deny,rules.0.format=glob,"
                   "rules.1.match=C=GB,,O=vccid test,,CN=*,rules.1.policy=allow,"
                   "rules.1.format=glob",
        "-device", "usb-ccid,id=ccid",
        "-device", "ccid-card-emulated,backend=certificates,db=@DB@,"
                   "cert1=id-cert,cert2=signing-cert,cert3=encryption-cert",
        NULL,
    };
    VccidProcess *p = vccid_start_full(chardev, args, false);

    wait_log(p, "ready", 1);
    return p;
}

static VccidProcess *start_tls_server(uint16_t port, const char *authz)
{
    g_autofree char *chardev = g_strdup_printf(
        "socket,id=redir,host=127.0.0.1,port=%u,server=on,wait=off,tls-creds=tls0%s%s,"
        "handshake-timeout=%d", port, authz ? ",tls-authz=" : "", authz ? authz : "",
        HANDSHAKE_TIMEOUT_S);

    return start_vccid(chardev);
}

/* ---- this side's TLS: a socketpair end for the USB host, a session behind it ---- */

typedef struct Tunnel {
    GIOStream *tls;
    GSocket *sock;
    int inner;           /* our end of the socketpair */
    gint refs;           /* one per pumping thread */
} Tunnel;

/* Pumping threads alive; all have ended before the test binary exits. */
static gint tunnel_threads;

static void tunnel_unref(Tunnel *t)
{
    g_atomic_int_dec_and_test(&tunnel_threads);
    if (g_atomic_int_dec_and_test(&t->refs)) {
        close(t->inner);
        g_object_unref(t->tls);
        g_object_unref(t->sock);
        g_free(t);
    }
}

/* TLS -> USB host; the daemon's end of stream becomes the host's. */
static gpointer tunnel_down(gpointer opaque)
{
    Tunnel *t = opaque;
    GInputStream *in = g_io_stream_get_input_stream(t->tls);
    char buf[16384];
    gssize n;

    while ((n = g_input_stream_read(in, buf, sizeof(buf), NULL, NULL)) > 0) {
        for (gssize off = 0; off < n;) {
            ssize_t w = write(t->inner, buf + off, n - off);

            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                goto out;
            }
            off += w;
        }
    }
out:
    shutdown(t->inner, SHUT_RDWR);
    tunnel_unref(t);
    return NULL;
}

/* USB host -> TLS; the host leaving closes the TCP connection. */
static gpointer tunnel_up(gpointer opaque)
{
    Tunnel *t = opaque;
    GOutputStream *out = g_io_stream_get_output_stream(t->tls);
    char buf[16384];
    ssize_t n;

    while ((n = read(t->inner, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0 && !g_output_stream_write_all(out, buf, n, NULL, NULL, NULL)) {
            break;
        }
    }
    g_socket_shutdown(t->sock, TRUE, TRUE, NULL);
    tunnel_unref(t);
    return NULL;
}

/* The test judges the daemon's certificate in its own tests, not here. */
static gboolean accept_any(GTlsConnection *conn, GTlsCertificate *cert,
                           GTlsCertificateFlags errors, gpointer opaque)
{
    return TRUE;
}

/* Run the handshake on tls, then hand back a socketpair end that carries its bytes. */
static int tunnel_start(GIOStream *tls, GSocket *sock, GError **errp)
{
    Tunnel *t;
    int sv[2];

    g_socket_set_timeout(sock, TLS_TIMEOUT_MS / 1000);
    if (!g_tls_connection_handshake(G_TLS_CONNECTION(tls), NULL, errp)) {
        g_object_unref(tls);
        g_object_unref(sock);
        return -1;
    }
    g_socket_set_timeout(sock, 0);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    t = g_new0(Tunnel, 1);
    t->tls = tls;
    t->sock = sock;
    t->inner = sv[1];
    t->refs = 2;
    g_atomic_int_add(&tunnel_threads, 2);
    g_thread_unref(g_thread_new("tls-down", tunnel_down, t));
    g_thread_unref(g_thread_new("tls-up", tunnel_up, t));
    return sv[0];
}

static GSocket *tcp_connect(uint16_t port)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
    g_autoptr(GSocketAddress) addr = g_inet_socket_address_new(lo, port);
    GSocket *sock = g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                 G_SOCKET_PROTOCOL_DEFAULT, &error);

    g_assert_no_error(error);
    g_socket_connect(sock, addr, NULL, &error);
    g_assert_no_error(error);
    return sock;
}

/*
 * A TLS client with the credentials of role (its client-cert.pem, if it
 * has one) to 127.0.0.1:port. Returns the fd for the USB host, or -1 with
 * errp set if the handshake failed on this side.
 */
static int tls_client_connect(uint16_t port, const char *role, GError **errp)
{
    g_autofree char *dir = role_dir(role);
    g_autofree char *cert = g_build_filename(dir, "client-cert.pem", NULL);
    g_autofree char *key = g_build_filename(dir, "client-key.pem", NULL);
    GSocket *sock = tcp_connect(port);
    g_autoptr(GSocketConnection) tcp = g_socket_connection_factory_create_connection(sock);
    GIOStream *tls = g_tls_client_connection_new(G_IO_STREAM(tcp), NULL, errp);

    g_assert_nonnull(tls);
    if (g_file_test(cert, G_FILE_TEST_EXISTS)) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GTlsCertificate) c = g_tls_certificate_new_from_files(cert, key, &error);

        g_assert_no_error(error);
        g_tls_connection_set_certificate(G_TLS_CONNECTION(tls), c);
    }
    g_tls_connection_set_require_close_notify(G_TLS_CONNECTION(tls), FALSE);
    g_signal_connect(tls, "accept-certificate", G_CALLBACK(accept_any), NULL);
    return tunnel_start(tls, sock, errp);
}

/* ---- what the host sees ---- */

/*
 * Close the host and wait until the daemon has seen it go: this side's
 * tunnel closes the TCP connection from its own thread, and a next client
 * must not race ahead of that.
 */
static void host_leave(VccidProcess *p, CcidHost *c)
{
    unsigned gone = log_count(p, "peer disconnected");

    ccid_host_free(c);
    wait_log(p, "peer disconnected", gone + 1);
}

/* A host that is served: the device comes, the card answers power-on. */
static void assert_served(VccidProcess *p, int fd)
{
    g_autoptr(GError) error = NULL;
    UsbredirHost *usb = urh_new_from_fd(fd, TLS_TIMEOUT_MS, &error);
    CcidHost *c;
    g_autoptr(GByteArray) atr = NULL;

    g_assert_no_error(error);
    c = ccid_host_new(usb);
    atr = ccid_power_on(c);
    g_assert_cmpuint(atr->len, >, 2);
    g_assert_cmphex(atr->data[0], ==, 0x3b);
    host_leave(p, c);
}

/* The daemon closes fd within ms without having sent a byte (no usbredir hello). */
static void assert_closed_silently(int fd, int ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    char buf[64];
    ssize_t n;

    g_assert_cmpint(poll(&pfd, 1, ms), ==, 1);
    n = read(fd, buf, sizeof(buf));
    g_assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
    close(fd);
}

static void legit_client_served(VccidProcess *p, uint16_t port)
{
    g_autoptr(GError) error = NULL;
    unsigned before = log_count(p, "ccid: host attached");
    int fd = tls_client_connect(port, "client", &error);

    g_assert_no_error(error);
    assert_served(p, fd);
    g_assert_cmpuint(log_count(p, "ccid: host attached"), ==, before + 1);
}

/*
 * A refused TLS client: its handshake fails, or (TLS 1.3, where the
 * client finishes first) the daemon closes at once; the log says why, and
 * nothing reached the reader. Then a legitimate host is served.
 */
static void check_refused(const char *authz, const char *role, const char *why)
{
    uint16_t port = qtest_free_tcp_port();
    VccidProcess *p = start_tls_server(port, authz);
    g_autoptr(GError) error = NULL;
    int fd;

    for (int round = 0; round < 2; round++) {
        fd = tls_client_connect(port, role, &error);
        if (fd >= 0) {
            assert_closed_silently(fd, TLS_TIMEOUT_MS);
        }
        g_clear_error(&error);
        wait_log(p, why, round + 1);
        g_assert_cmpuint(log_count(p, "ccid: host attached"), ==, round);
        legit_client_served(p, port);
    }
    vccid_stop(p);
}

/* ---- the tests ---- */

/* One line from fd within ms, or NULL (EOF, error, timeout). */
static char *read_line_fd(int fd, int ms)
{
    GString *line = g_string_new(NULL);
    gint64 deadline = g_get_monotonic_time() + (gint64)ms * 1000;
    char c;

    while (g_get_monotonic_time() < deadline) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        if (poll(&pfd, 1, 100) == 1) {
            if (read(fd, &c, 1) != 1) {
                break;
            }
            if (c == '\n') {
                return g_string_free(line, FALSE);
            }
            g_string_append_c(line, c);
        }
    }
    g_string_free(line, TRUE);
    return NULL;
}

/*
 * A QMP monitor on a TLS chardev with tls-authz: the authorized client gets
 * the greeting and negotiates; another is closed without a byte.
 */
static void test_qmp_over_tls(void)
{
    uint16_t port = qtest_free_tcp_port();
    g_autofree char *creds = creds_object("tls0", "server", "server");
    g_autofree char *mon = g_strdup_printf("socket,id=qmp0,host=127.0.0.1,port=%u,server=on,"
                                           "wait=off,tls-creds=tls0,tls-authz=simple0", port);
    const char *args[] = {
        "-object", creds,
        "-object", "authz-simple,id=simple0,identity=C=GB,,O=vccid test,,CN=client",
        "-chardev", mon, "-mon", "chardev=qmp0,mode=control",
        "-device", "usb-ccid,id=ccid", NULL,
    };
    VccidProcess *p = vccid_start_full("socket,id=redir,path=@SOCK@,server=on,wait=off", args,
                                       true);
    g_autoptr(GError) error = NULL;
    g_autofree char *greeting = NULL;
    g_autofree char *reply = NULL;
    static const char negotiate[] = "{\"execute\": \"qmp_capabilities\", \"id\": 7}\n";
    int fd;

    wait_log(p, "ready", 1);
    fd = tls_client_connect(port, "client-mallory", &error);
    if (fd >= 0) {
        assert_closed_silently(fd, TLS_TIMEOUT_MS);
    }
    g_clear_error(&error);
    wait_log(p, "denied", 1);

    fd = tls_client_connect(port, "client", &error);
    g_assert_no_error(error);
    greeting = read_line_fd(fd, TLS_TIMEOUT_MS);
    g_assert_nonnull(greeting);
    g_assert_nonnull(strstr(greeting, "\"QMP\""));
    g_assert_cmpint(write(fd, negotiate, strlen(negotiate)), ==, (ssize_t)strlen(negotiate));
    reply = read_line_fd(fd, TLS_TIMEOUT_MS);
    g_assert_nonnull(reply);
    g_assert_nonnull(strstr(reply, "\"return\""));
    g_assert_nonnull(strstr(reply, "\"id\": 7"));
    close(fd);
    vccid_stop(p);
}

static void test_tls_authz_simple(void)
{
    uint16_t port = qtest_free_tcp_port();
    VccidProcess *p = start_tls_server(port, "simple0");

    legit_client_served(p, port);
    /* The identity is the DN as GnuTLS prints it, QEMU's format. */
    wait_log(p, "TLS peer 'C=GB,O=vccid test,CN=client'", 1);
    legit_client_served(p, port);
    vccid_stop(p);
}

static void test_tls_authz_list(void)
{
    uint16_t port = qtest_free_tcp_port();
    VccidProcess *p = start_tls_server(port, "list0");

    legit_client_served(p, port);
    vccid_stop(p);
}

static void test_tls_no_authz(void)
{
    uint16_t port = qtest_free_tcp_port();
    VccidProcess *p = start_tls_server(port, NULL);

    /* Without tls-authz any certificate of the CA will do, mallory's too. */
    legit_client_served(p, port);
    {
        g_autoptr(GError) error = NULL;
        int fd = tls_client_connect(port, "client-mallory", &error);

        g_assert_no_error(error);
        assert_served(p, fd);
    }
    vccid_stop(p);
}

static void test_refuse_no_cert(void)
{
    check_refused("simple0", "client-nocert", "did not send a certificate");
}

static void test_refuse_other_ca(void)
{
    check_refused("simple0", "client-other-ca", "The peer's certificate is not trusted");
}

static void test_refuse_expired(void)
{
    check_refused("simple0", "client-expired", "The peer's certificate has expired");
}

/* The server's ca-crl.pem revokes this client's certificate. */
static void test_refuse_revoked(void)
{
    check_refused(NULL, "client-revoked", "The certificate chain is revoked");
}

static void test_refuse_authz_simple(void)
{
    check_refused("simple0", "client-mallory",
                  "authz check for 'C=GB,O=vccid test,CN=mallory' is denied by 'simple0'");
}

static void test_refuse_authz_list(void)
{
    check_refused("list0", "client-mallory",
                  "authz check for 'C=GB,O=vccid test,CN=mallory' is denied by 'list0'");
}

/* A plain usbredir host on a TLS port: the handshake fails, no session. */
static void test_refuse_plain_to_tls(void)
{
    uint16_t port = qtest_free_tcp_port();
    VccidProcess *p = start_tls_server(port, "simple0");
    g_autoptr(GError) error = NULL;
    UsbredirHost *h = urh_connect_tcp(port, 3000, &error);

    g_assert_null(h);
    g_assert_nonnull(error);
    wait_log(p, "TLS handshake failed", 1);
    g_assert_cmpuint(log_count(p, "ccid: host attached"), ==, 0);
    legit_client_served(p, port);
    vccid_stop(p);
}

/* A TLS client on a plain port: its handshake fails; plain hosts still work. */
static void test_refuse_tls_to_plain(void)
{
    uint16_t port = qtest_free_tcp_port();
    g_autofree char *chardev = g_strdup_printf("socket,id=redir,host=127.0.0.1,port=%u,"
                                               "server=on,wait=off", port);
    VccidProcess *p = start_vccid(chardev);
    g_autoptr(GError) error = NULL;
    UsbredirHost *h;
    int fd = tls_client_connect(port, "client", &error);

    g_assert_cmpint(fd, <, 0);
    g_assert_nonnull(error);
    g_clear_error(&error);
    h = urh_connect_tcp(port, TLS_TIMEOUT_MS, &error);
    if (!h) {
        /* The daemon may still be finishing with the TLS client. */
        g_clear_error(&error);
        g_usleep(200000);
        h = urh_connect_tcp(port, TLS_TIMEOUT_MS, &error);
    }
    g_assert_no_error(error);
    {
        CcidHost *c = ccid_host_new(h);
        g_autoptr(GByteArray) atr = ccid_power_on(c);

        g_assert_cmpuint(atr->len, >, 2);
        ccid_host_free(c);
    }
    vccid_stop(p);
}

/* A client that connects and never finishes its handshake is dropped at the deadline. */
static void test_handshake_deadline(void)
{
    uint16_t port = qtest_free_tcp_port();
    VccidProcess *p = start_tls_server(port, "simple0");
    static const uint8_t partial_hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 };
    g_autofree char *dropped =
        g_strdup_printf("new peer dropped (no TLS handshake within %ds)", HANDSHAKE_TIMEOUT_S);

    for (int round = 0; round < 2; round++) {
        g_autoptr(GSocket) sock = tcp_connect(port);
        gint64 start = g_get_monotonic_time(), elapsed_ms;

        /* Round 0 says nothing, round 1 the start of a ClientHello. */
        if (round == 1) {
            g_assert_cmpint(g_socket_send(sock, (const char *)partial_hello,
                                          sizeof(partial_hello), NULL, NULL), ==,
                            sizeof(partial_hello));
        }
        assert_closed_silently(dup(g_socket_get_fd(sock)), (HANDSHAKE_TIMEOUT_S + 5) * 1000);
        elapsed_ms = (g_get_monotonic_time() - start) / 1000;
        g_assert_cmpint(elapsed_ms, >=, HANDSHAKE_TIMEOUT_S * 1000 - 100);
        wait_log(p, dropped, round + 1);
        legit_client_served(p, port);
    }
    vccid_stop(p);
}

/* While one host is served, a second client is closed at once, not queued. */
static void test_second_client(void)
{
    uint16_t port = qtest_free_tcp_port();
    VccidProcess *p = start_tls_server(port, "simple0");
    g_autoptr(GError) error = NULL;
    int fd = tls_client_connect(port, "client", &error);
    UsbredirHost *usb;
    CcidHost *c;

    g_assert_no_error(error);
    usb = urh_new_from_fd(fd, TLS_TIMEOUT_MS, &error);
    g_assert_no_error(error);
    c = ccid_host_new(usb);
    for (int i = 0; i < 2; i++) {
        g_autoptr(GSocket) second = tcp_connect(port);
        gint64 start = g_get_monotonic_time();

        assert_closed_silently(dup(g_socket_get_fd(second)), 2000);
        g_assert_cmpint(g_get_monotonic_time() - start, <, 1500 * 1000);
    }
    /* A second TLS client too: refused before its handshake. */
    fd = tls_client_connect(port, "client", &error);
    if (fd >= 0) {
        assert_closed_silently(fd, 2000);
    }
    g_clear_error(&error);
    wait_log(p, "second client refused", 3);
    {
        g_autoptr(GByteArray) atr = ccid_power_on(c);

        g_assert_cmpuint(atr->len, >, 2);
    }
    host_leave(p, c);
    legit_client_served(p, port);
    vccid_stop(p);
}

/* ---- vccid as the TLS client ---- */

typedef struct TestServer {
    GSocket *listener;
    uint16_t port;
} TestServer;

static void test_server_listen(TestServer *s)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
    g_autoptr(GSocketAddress) any = g_inet_socket_address_new(lo, 0);
    g_autoptr(GSocketAddress) bound = NULL;

    s->listener = g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                               G_SOCKET_PROTOCOL_DEFAULT, &error);
    g_assert_no_error(error);
    g_socket_bind(s->listener, any, TRUE, &error);
    g_assert_no_error(error);
    g_socket_listen(s->listener, &error);
    g_assert_no_error(error);
    bound = g_socket_get_local_address(s->listener, &error);
    g_assert_no_error(error);
    s->port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
}

/* Accept vccid and be its TLS server with role's server-cert.pem (or client-cert.pem). */
static int test_server_accept(TestServer *s, const char *role, GTlsCertificate **peer,
                              GError **errp)
{
    g_autofree char *dir = role_dir(role);
    g_autofree char *cert = g_build_filename(dir, "server-cert.pem", NULL);
    g_autofree char *key = g_build_filename(dir, "server-key.pem", NULL);
    g_autoptr(GTlsCertificate) c = NULL;
    g_autoptr(GSocketConnection) tcp = NULL;
    GIOStream *tls;
    GSocket *sock;
    int fd;

    if (!g_file_test(cert, G_FILE_TEST_EXISTS)) {
        g_free(cert);
        g_free(key);
        cert = g_build_filename(dir, "client-cert.pem", NULL);
        key = g_build_filename(dir, "client-key.pem", NULL);
    }
    c = g_tls_certificate_new_from_files(cert, key, errp);
    g_assert_nonnull(c);
    g_socket_set_timeout(s->listener, TLS_TIMEOUT_MS / 1000);
    sock = g_socket_accept(s->listener, NULL, errp);
    g_assert_nonnull(sock);
    tcp = g_socket_connection_factory_create_connection(sock);
    tls = g_tls_server_connection_new(G_IO_STREAM(tcp), c, errp);
    g_assert_nonnull(tls);
    g_object_set(tls, "authentication-mode", G_TLS_AUTHENTICATION_REQUIRED, NULL);
    g_tls_connection_set_require_close_notify(G_TLS_CONNECTION(tls), FALSE);
    g_signal_connect(tls, "accept-certificate", G_CALLBACK(accept_any), NULL);
    fd = tunnel_start(g_object_ref(tls), sock, errp);
    if (fd >= 0 && peer) {
        *peer = g_tls_connection_get_peer_certificate(G_TLS_CONNECTION(tls));
        if (*peer) {
            g_object_ref(*peer);
        }
    }
    g_object_unref(tls);
    return fd;
}

static VccidProcess *start_tls_client(TestServer *s)
{
    g_autofree char *chardev = g_strdup_printf(
        "socket,id=redir,host=127.0.0.1,port=%u,reconnect=1,tls-creds=tlsc", s->port);

    return start_vccid(chardev);
}

/* vccid connects with its client certificate, checks ours, and is served over TLS. */
static void test_client_success(void)
{
    TestServer s;
    VccidProcess *p;
    g_autoptr(GError) error = NULL;
    g_autoptr(GTlsCertificate) peer = NULL;
    int fd;

    test_server_listen(&s);
    p = start_tls_client(&s);
    fd = test_server_accept(&s, "server", &peer, &error);
    g_assert_no_error(error);
    g_assert_nonnull(peer);   /* vccid showed its client certificate */
    assert_served(p, fd);
    wait_log(p, "TLS peer 'CN=localhost'", 1);
    g_object_unref(s.listener);
    vccid_stop(p);
}

/* vccid refuses servers it cannot trust or whose name is not 127.0.0.1, and retries. */
static void test_client_refuses(void)
{
    TestServer s;
    VccidProcess *p;
    /* The server's certificate and vccid's reason for refusing it. */
    static const StringCase bad[] = {
        { "client-other-ca", "The peer's certificate is not trusted" },
        { "client-mallory", "Certificate does not match the hostname 127.0.0.1" },
        { "client-expired", "The peer's certificate has expired" },
    };

    test_server_listen(&s);
    p = start_tls_client(&s);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;
        int fd = test_server_accept(&s, bad[i].input, NULL, &error);

        if (fd >= 0) {
            assert_closed_silently(fd, TLS_TIMEOUT_MS);
        }
        wait_log(p, bad[i].expected, 1);
    }
    g_assert_cmpuint(log_count(p, "ccid: host attached"), ==, 0);
    {
        g_autoptr(GError) error = NULL;
        int fd = test_server_accept(&s, "server", NULL, &error);

        g_assert_no_error(error);
        assert_served(p, fd);
    }
    g_object_unref(s.listener);
    vccid_stop(p);
}

/* ---- vscclient over TLS ---- */

static const char *vscclient_binary(void)
{
    const char *bin = g_getenv("VSCCLIENT_BINARY");

    g_assert_nonnull(bin);
    return bin;
}

static char *vscclient_emulator(void)
{
    return vscclient_soft_card(vccid_master_cert_db());
}

/* Run vscclient (no --reconnect) to its exit; returns its wait status. */
static int vscclient_run(const char *const *extra, uint16_t port, char **err)
{
    g_autofree char *emul = vscclient_emulator();
    g_autofree char *portstr = g_strdup_printf("%u", port);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) error = NULL;
    int status;

    g_ptr_array_add(argv, (char *)vscclient_binary());
    g_ptr_array_add(argv, "-e");
    g_ptr_array_add(argv, emul);
    for (int i = 0; extra[i]; i++) {
        g_ptr_array_add(argv, (char *)extra[i]);
    }
    g_ptr_array_add(argv, "127.0.0.1");
    g_ptr_array_add(argv, portstr);
    g_ptr_array_add(argv, NULL);
    g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                 NULL, err, &status, &error);
    g_assert_no_error(error);
    return status;
}

static VccidProcess *start_passthru(uint16_t port)
{
    g_autofree char *creds = creds_object("tls0", "server", "server");
    g_autofree char *chardev = g_strdup_printf(
        "socket,id=pt,host=127.0.0.1,port=%u,server=on,wait=off,tls-creds=tls0,"
        "tls-authz=simple0", port);
    const char *args[] = {
        "-object", creds,
        "-object", "authz-simple,id=simple0,identity=C=GB,,O=vccid test,,CN=client",
        "-chardev", chardev,
        "-device", "usb-ccid,id=ccid",
        "-device", "ccid-card-passthru,chardev=pt",
        NULL,
    };
    VccidProcess *p = vccid_start(args);

    /* vccid_start() waits for the usbredir socket only; "ready" follows every listener. */
    wait_log(p, "ready", 1);
    return p;
}

/* This tree's vscclient over TLS to vccid's passthru with tls-authz: the card works. */
static void test_vscclient_passthru(void)
{
    uint16_t port = qtest_free_tcp_port();
    VccidProcess *p = start_passthru(port);
    g_autofree char *client = role_dir("client");
    g_autofree char *emul = vscclient_emulator();
    g_autofree char *portstr = g_strdup_printf("%u", port);
    const char *vsc_args[] = { "-e", emul, "--tls-creds", client, "127.0.0.1", portstr, NULL };
    g_autoptr(GByteArray) atr = NULL;
    CcidHost *c = ccid_host_open(p->sock_path);
    VscclientProcess vc = vscclient_start(vsc_args);

    wait_log(p, "TLS peer 'C=GB,O=vccid test,CN=client'", 1);
    wait_log(p, "card inserted", 1);
    atr = ccid_power_on(c);
    g_assert_cmpuint(atr->len, >, 2);
    vscclient_exit(&vc);
    ccid_host_free(c);
    vccid_stop(p);
}

/*
 * On TLS a second client is closed unheard: the passthru card's busy reply
 * (a VSC_Error) would need a handshake, and is never sent in clear text.
 */
static void test_passthru_second_client_unheard(void)
{
    uint16_t port = qtest_free_tcp_port();
    VccidProcess *p = start_passthru(port);
    /* Held in its TLS handshake, and only closed at the end. */
    g_autoptr(GSocket) first G_GNUC_UNUSED = tcp_connect(port);
    g_autoptr(GSocket) second = tcp_connect(port);

    assert_closed_silently(dup(g_socket_get_fd(second)), TLS_TIMEOUT_MS);
    wait_log(p, "second client refused", 1);
    vccid_stop(p);
}

/* vscclient refuses a host whose name or CA is wrong, and says why. */
static void test_vscclient_refuses(void)
{
    uint16_t port = qtest_free_tcp_port();
    VccidProcess *p = start_passthru(port);
    g_autofree char *client = role_dir("client");
    g_autofree char *other = role_dir("client-other-ca");
    g_autofree char *nothing = role_dir("no-such-role");
    const char *wrong_name[] = { "--tls-creds", client, "--tls-hostname", "wrong.example", NULL };
    const char *wrong_ca[] = { "--tls-creds", other, NULL };
    const char *no_dir[] = { "--tls-creds", nothing, NULL };
    const char *no_creds[] = { "--tls-hostname", "localhost", NULL };
    struct {
        const char *const *args;
        int code;
        const char *why;
    } cases[] = {
        { wrong_name, 1, "Certificate does not match the hostname wrong.example" },
        { wrong_ca, 1, "The peer's certificate is not trusted" },
        { no_dir, 2, "Unable to access credentials" },
        { no_creds, 2, "--tls-hostname needs --tls-creds" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *err = NULL;
        int status = vscclient_run(cases[i].args, port, &err);

        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, cases[i].code);
        if (!strstr(err, cases[i].why)) {
            g_error("vscclient: expected \"%s\" in:\n%s", cases[i].why, err);
        }
    }
    g_assert_cmpuint(log_count(p, "card inserted"), ==, 0);
    vccid_stop(p);
}

/* ---- command-line errors ---- */

static void test_cli_errors(void)
{
    g_autofree char *server = role_dir("server");
    g_autofree char *screds = creds_object("s", "server", "server");
    g_autofree char *ccreds = creds_object("c", "client", "client");
    g_autofree char *no_key = creds_object("s", "client", "server");
    g_autofree char *bad_ep = g_strdup_printf("tls-creds-x509,id=s,dir=%s,endpoint=peer",
                                              server);
    g_autofree char *bad_verify = g_strdup_printf("tls-creds-x509,id=s,dir=%s,verify-peer=maybe",
                                                  server);
    g_autofree char *bad_prop = g_strdup_printf("tls-creds-x509,id=s,dir=%s,colour=red", server);
    const char *tail[] = { "-device", "usb-ccid", "-export", "usbredir,chardev=r", NULL };
    static const char *cases[][3] = {
        /* object, chardev, expected fragment */
        { NULL, "socket,id=r,path=@DIR@/s.sock,server=on,wait=off,tls-creds=s",
          "'tls-creds' option is incompatible with 'unix' address type" },
        { NULL, "socket,id=r,host=127.0.0.1,port=1,server=on,wait=off,tls-authz=a",
          "'tls-authz' option requires 'tls-creds' option" },
        { NULL, "socket,id=r,host=127.0.0.1,port=1,server=on,wait=off,tls-creds=nope",
          "No TLS credentials with id 'nope'" },
        { "C", "socket,id=r,host=127.0.0.1,port=1,server=on,wait=off,tls-creds=c",
          "Expected TLS credentials for a server endpoint" },
        { "S", "socket,id=r,host=127.0.0.1,port=1,reconnect=1,tls-creds=s",
          "Expected TLS credentials for a client endpoint" },
        { "C", "socket,id=r,host=127.0.0.1,port=1,reconnect=1,tls-creds=c,tls-authz=c",
          "'tls-authz' option is only valid with server=on" },
        { "S", "socket,id=r,host=127.0.0.1,port=1,server=on,wait=off,tls-creds=s,tls-authz=s",
          "Object with id 's' is 'tls-creds-x509', not an authorization object" },
        { "A", "socket,id=r,host=127.0.0.1,port=1,server=on,wait=off,tls-creds=a",
          "Object with id 'a' is not TLS credentials" },
        { NULL, "socket,id=r,host=127.0.0.1,port=1,server=on,wait=off,handshake-timeout=x",
          "Parameter 'handshake-timeout' expects 0..3600, not 'x'" },
        { NULL, "socket,id=r,host=127.0.0.1,port=1,server=on,wait=off,keep-alive-idle=0",
          "Parameter 'keep-alive-idle' expects 1..86400, not '0'" },
        { NULL, "socket,id=r,host=127.0.0.1,port=1,server=on,wait=off,keep-alive=sometimes",
          "Parameter 'keep-alive' expects on or off" },
    };
    g_autofree char *tmp = g_dir_make_tmp("vccid-tls-cli-XXXXXX", NULL);

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const char *obj = !cases[i][0] ? NULL : cases[i][0][0] == 'S' ? screds :
                          cases[i][0][0] == 'C' ? ccreds : "authz-simple,id=a,identity=x";
        g_auto(GStrv) parts = g_strsplit(cases[i][1], "@DIR@", -1);
        g_autofree char *chardev = g_strjoinv(tmp, parts);
        const char *args[12];
        int n = 0;

        if (obj) {
            args[n++] = "-object";
            args[n++] = obj;
        }
        args[n++] = "-chardev";
        args[n++] = chardev;
        for (int j = 0; tail[j]; j++) {
            args[n++] = tail[j];
        }
        args[n] = NULL;
        vccid_assert_cli_error(args, cases[i][2]);
    }
    {
        const char *a1[] = { "-object", no_key, "-device", "usb-ccid", NULL };
        const char *a2[] = { "-object", bad_ep, "-device", "usb-ccid", NULL };
        const char *a3[] = { "-object", bad_verify, "-device", "usb-ccid", NULL };
        const char *a4[] = { "-object", bad_prop, "-device", "usb-ccid", NULL };
        const char *a5[] = { "-object", "tls-creds-x509,id=s,dir=/nonexistent-dir,endpoint=server",
                             "-device", "usb-ccid", NULL };
        const char *a6[] = { "-object", "tls-creds-psk,id=s", "-device", "usb-ccid", NULL };

        vccid_assert_cli_error(a1, "server-cert.pem: No such file or directory");
        vccid_assert_cli_error(a2, "Parameter 'endpoint' does not accept value 'peer'");
        vccid_assert_cli_error(a3, "Parameter 'verify-peer' expects on or off, not 'maybe'");
        vccid_assert_cli_error(a4, "Invalid parameter 'colour'");
        vccid_assert_cli_error(a5, "Unable to access credentials /nonexistent-dir/ca-cert.pem");
        vccid_assert_cli_error(a6, "invalid object type 'tls-creds-psk'");
    }
    {
        /* A revocation list the CA did not sign would silently not apply: refused. */
        g_autofree char *dir = g_dir_make_tmp("vccid-tls-crl-XXXXXX", NULL);
        g_autofree char *creds = g_strdup_printf("tls-creds-x509,id=s,dir=%s,endpoint=server",
                                                 dir);
        const char *a7[] = { "-object", creds, "-device", "usb-ccid", NULL };
        const char *files[] = { "ca-cert.pem", "server-cert.pem", "server-key.pem", NULL };

        for (int i = 0; files[i]; i++) {
            g_autofree char *from = g_build_filename(server, files[i], NULL);
            g_autofree char *to = g_build_filename(dir, files[i], NULL);
            g_autofree char *data = NULL;
            gsize len;

            g_assert_true(g_file_get_contents(from, &data, &len, NULL));
            g_assert_true(g_file_set_contents(to, data, len, NULL));
        }
        {
            g_autofree char *other = role_dir("client-other-ca");
            g_autofree char *from = g_build_filename(server, "ca-crl.pem", NULL);
            g_autofree char *to = g_build_filename(dir, "ca-crl.pem", NULL);
            g_autofree char *data = NULL;
            g_autofree char *ca_from = g_build_filename(other, "ca-cert.pem", NULL);
            g_autofree char *ca_to = g_build_filename(dir, "ca-cert.pem", NULL);
            gsize len;

            /* Our CRL, but another CA in ca-cert.pem. */
            g_assert_true(g_file_get_contents(from, &data, &len, NULL));
            g_assert_true(g_file_set_contents(to, data, len, NULL));
            g_clear_pointer(&data, g_free);
            g_assert_true(g_file_get_contents(ca_from, &data, &len, NULL));
            g_assert_true(g_file_set_contents(ca_to, data, len, NULL));
            vccid_assert_cli_error(a7, "Unable to load CA revocation list");
            g_unlink(to);
            g_unlink(ca_to);
        }
        for (int i = 0; files[i]; i++) {
            g_autofree char *to = g_build_filename(dir, files[i], NULL);

            g_unlink(to);
        }
        g_rmdir(dir);
    }
    g_rmdir(tmp);
}

/* ---- unix socket files ---- */

static void test_unix_mode(void)
{
    VccidProcess *p = vccid_start_no_card();
    struct stat st;

    g_assert_cmpint(lstat(p->sock_path, &st), ==, 0);
    g_assert_true(S_ISSOCK(st.st_mode));
    g_assert_cmphex(st.st_mode & 0777, ==, 0600);
    vccid_stop(p);
}

/* A plain peer that connects and never speaks is dropped at handshake-timeout too. */
static void test_silent_plain_peer(void)
{
    static const char *const dev[] = { "-device", "usb-ccid,id=ccid", NULL };
    VccidProcess *p = vccid_start_full("socket,id=redir,path=@SOCK@,server=on,wait=off,"
                                       "handshake-timeout=1", dev, true);
    g_autoptr(GError) error = NULL;
    UsbredirHost *h = urh_connect_raw(p->sock_path, URH_TIMEOUT_MS, &error);
    gint64 start = g_get_monotonic_time();
    CcidHost *c;

    g_assert_no_error(error);
    /* It hears vccid's hello but says nothing back. */
    while (urh_peer_alive(h) && g_get_monotonic_time() - start < 5 * G_USEC_PER_SEC) {
        g_usleep(20000);
        {
            struct pollfd pfd = { .fd = urh_fd(h), .events = POLLIN };
            char buf[4096];

            if (poll(&pfd, 1, 0) == 1 && read(urh_fd(h), buf, sizeof(buf)) == 0) {
                break;
            }
        }
    }
    g_assert_cmpint(g_get_monotonic_time() - start, >=, 900 * 1000);
    g_assert_cmpint(g_get_monotonic_time() - start, <, 5 * G_USEC_PER_SEC);
    urh_free(h);
    wait_log(p, "peer disconnected (no hello within 1s)", 1);
    /* A host that speaks is served. */
    c = ccid_host_open(p->sock_path);
    g_assert_true(urh_device_connected(c->usb));
    ccid_host_free(c);
    vccid_stop(p);
}

/*
 * The kernel's view of vccid's end of a loopback TCP connection (local port
 * server, remote port client): its timer ("tr", 2 = keepalive) and when it
 * fires, in clock ticks (USER_HZ). False if no such connection is listed.
 */
static bool tcp_timer(uint16_t server, uint16_t client, unsigned *timer, unsigned long *when)
{
    g_autofree char *table = NULL;
    g_auto(GStrv) rows = NULL;
    g_autofree char *local = g_strdup_printf("0100007F:%04X", server);
    g_autofree char *remote = g_strdup_printf("0100007F:%04X", client);

    g_assert_true(g_file_get_contents("/proc/net/tcp", &table, NULL, NULL));
    rows = g_strsplit(table, "\n", -1);
    for (int i = 1; rows[i]; i++) {
        char l[64], r[64];

        if (sscanf(rows[i], "%*d: %63s %63s %*x %*x:%*x %x:%lx", l, r, timer, when) == 4 &&
            strcmp(l, local) == 0 && strcmp(r, remote) == 0) {
            return true;
        }
    }
    return false;
}

/* TCP peers get keepalive (keep-alive-idle= seconds of silence before probes), or none. */
static void check_keepalive(const char *opts, unsigned want_timer, unsigned max_secs)
{
    static const char *const dev[] = { "-device", "usb-ccid,id=ccid", NULL };
    uint16_t port = qtest_free_tcp_port();
    g_autofree char *chardev = g_strdup_printf("socket,id=redir,host=127.0.0.1,port=%u,"
                                               "server=on,wait=off%s", port, opts);
    VccidProcess *p = vccid_start_full(chardev, dev, false);
    g_autoptr(GError) error = NULL;
    g_autoptr(GSocketAddress) mine = NULL;
    UsbredirHost *h;
    unsigned timer = 0;
    unsigned long when = 0;

    wait_log(p, "ready", 1);
    h = urh_connect_tcp(port, URH_TIMEOUT_MS, &error);
    g_assert_no_error(error);
    {
        g_autoptr(GSocket) sock = g_socket_new_from_fd(dup(urh_fd(h)), &error);

        g_assert_no_error(error);
        mine = g_socket_get_local_address(sock, &error);
        g_assert_no_error(error);
    }
    /* Quiet for a moment, so the only timer left is keepalive's (if any). */
    g_usleep(300 * 1000);
    g_assert_true(tcp_timer(port, g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(mine)),
                            &timer, &when));
    g_assert_cmpuint(timer, ==, want_timer);
    if (want_timer) {
        g_assert_cmpuint(when, <=, max_secs * 100);
    }
    urh_free(h);
    vccid_stop(p);
}

static void test_tcp_keepalive(void)
{
    check_keepalive("", 2, 30);
    check_keepalive(",keep-alive-idle=5", 2, 5);
    check_keepalive(",keep-alive=off", 0, 0);
}

/* A file that is not a socket is never removed to make room; a live socket neither. */
static void test_unix_not_a_socket(void)
{
    g_autofree char *tmp = g_dir_make_tmp("vccid-tls-unix-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(tmp, "precious", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=r,path=%s,server=on,wait=off", path);
    g_autofree char *contents = NULL;
    const char *args[] = { "-chardev", chardev, "-device", "usb-ccid", "-export",
                           "usbredir,chardev=r", NULL };
    int listen_fd;

    g_assert_true(g_file_set_contents(path, "keep me", -1, NULL));
    vccid_assert_cli_error(args, "exists and is not a socket");
    g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
    g_assert_cmpstr(contents, ==, "keep me");
    g_unlink(path);

    listen_fd = qtest_unix_listen(path);
    vccid_assert_cli_error(args, "is in use by another server");
    g_assert_true(g_file_test(path, G_FILE_TEST_EXISTS));
    close(listen_fd);
    /* Now nobody listens: a stale socket is replaced. */
    {
        static const char *const dev[] = { "-device", "usb-ccid,id=ccid", NULL };
        g_autofree char *redir = g_strdup_printf("socket,id=redir,path=%s,server=on,wait=off",
                                                 path);
        VccidProcess *p = vccid_start_full(redir, dev, false);

        wait_log(p, "ready", 1);
        vccid_stop(p);
    }
    g_unlink(path);
    g_rmdir(tmp);
}

static const TestCase cases[] = {
    { "/tls/server/authz-simple", test_tls_authz_simple },
    { "/tls/server/authz-list", test_tls_authz_list },
    { "/tls/server/no-authz", test_tls_no_authz },
    { "/tls/refuse/no-client-cert", test_refuse_no_cert },
    { "/tls/refuse/other-ca", test_refuse_other_ca },
    { "/tls/refuse/expired", test_refuse_expired },
    { "/tls/refuse/revoked", test_refuse_revoked },
    { "/tls/refuse/authz-simple", test_refuse_authz_simple },
    { "/tls/refuse/authz-list", test_refuse_authz_list },
    { "/tls/refuse/plain-to-tls", test_refuse_plain_to_tls },
    { "/tls/refuse/tls-to-plain", test_refuse_tls_to_plain },
    { "/tls/refuse/handshake-deadline", test_handshake_deadline },
    { "/tls/refuse/second-client", test_second_client },
    { "/tls/client/success", test_client_success },
    { "/tls/client/refuses", test_client_refuses },
    { "/tls/cli-errors", test_cli_errors },
    { "/tls/vscclient/passthru", test_vscclient_passthru },
    { "/tls/vscclient/refuses", test_vscclient_refuses },
    { "/tls/passthru/second-client-unheard", test_passthru_second_client_unheard },
    { "/socket/unix-mode", test_unix_mode },
    { "/socket/silent-plain-peer", test_silent_plain_peer },
    { "/socket/tcp-keepalive", test_tcp_keepalive },
    { "/socket/unix-not-a-socket", test_unix_not_a_socket },
    { "/tls/qmp-monitor", test_qmp_over_tls },
};

int main(int argc, char **argv)
{
    gint64 deadline;
    int rc;

    g_test_init(&argc, &argv, NULL);
    test_add_cases(cases);
    rc = g_test_run();
    /* Every peer has closed by now; let the threads see it and end. */
    deadline = g_get_monotonic_time() + TLS_TIMEOUT_MS * 1000;
    while (g_atomic_int_get(&tunnel_threads) > 0 && g_get_monotonic_time() < deadline) {
        g_usleep(10000);
    }
    g_assert_cmpint(g_atomic_int_get(&tunnel_threads), ==, 0);
    return rc;
}
