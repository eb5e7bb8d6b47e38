/*
 * The passthru card without a guest: what the host side of an APDU costs,
 * in plain TCP and in TLS, and across a slow link.
 *
 * A USB host made of the qtest harness (tests/qtest: usbredir-host.c,
 * ccid-host.c) sends SELECTs of the CAC PKI applet (the guest benchmark's
 * APDU) as PC_to_RDR_XfrBlock to vccid's reader, whose ccid-card-passthru
 * forwards them to this tree's vscclient (a libcacard card on the harness's
 * certificate database) and back. No QEMU and no guest: the figures are
 * vccid's, vscclient's and the socket's, and they do not need the guest lock.
 *
 *   host-passthru [-n N] [-r ROUNDS] [-d DELAY_MS] [-s SETUPS]
 *     -n  timed SELECTs per run (default 2000; 50 more before, untimed)
 *     -r  rounds (default 5); each round runs every setup once, the order
 *         reversed every other round, so that a drift of the machine's load
 *         weighs on all setups alike
 *     -d  if > 0, vscclient reaches vccid through bench/delay-proxy.py,
 *         holding each chunk DELAY_MS each way
 *     -s  comma-separated setups among plain, tls (default both)
 *
 * Environment, as for the qtests: VCCID_BINARY, VSCCLIENT_BINARY,
 * VCCID_SOURCE_ROOT (for scripts/make-cert-db.sh, tests/tls/make-certs.sh
 * and bench/delay-proxy.py).
 *
 * Prints one "HOST setup=... apdu_per_s=... p50_us=... p99_us=..." line per
 * run, then the median of each setup and the ratio TLS/plain of the medians
 * and of each round's pair.
 */
#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ccid-host.h"
#include "libqtest-vccid.h"

#define WARMUP 50
#define MAX_SETUPS 2

/* SELECT of the first CAC PKI applet; the card answers 61 0D. */
static const uint8_t select_pki[] = {
    0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00,
};

/* make-certs.sh's client certificate as GnuTLS prints its DN, commas doubled for -object. */
#define TLS_CLIENT_DN "C=GB,,O=vccid test,,CN=client"

typedef struct Run {
    double apdu_per_s;
    double p50_us;
    double p99_us;
} Run;

typedef struct Child {
    GPid pid;
    int stdin_fd;
    int stdout_fd;
} Child;

static const char *source_root(void)
{
    const char *root = g_getenv("VCCID_SOURCE_ROOT");

    if (!root) {
        g_error("VCCID_SOURCE_ROOT is not set");
    }
    return root;
}

static Child spawn(const char *const *argv, bool want_stdout)
{
    g_autoptr(GError) err = NULL;
    Child c = { .stdout_fd = -1 };

    g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
                             G_SPAWN_DO_NOT_REAP_CHILD |
                             (want_stdout ? 0 : G_SPAWN_STDOUT_TO_DEV_NULL),
                             NULL, NULL, &c.pid, &c.stdin_fd,
                             want_stdout ? &c.stdout_fd : NULL, NULL, &err);
    g_assert_no_error(err);
    return c;
}

static int child_wait(Child *c)
{
    int status;

    g_assert_cmpint(waitpid(c->pid, &status, 0), ==, c->pid);
    g_spawn_close_pid(c->pid);
    close(c->stdin_fd);
    if (c->stdout_fd >= 0) {
        close(c->stdout_fd);
    }
    return status;
}

/* One line from a child's stdout (the proxy's "LISTENING PORT"). */
static char *child_read_line(Child *c)
{
    GString *line = g_string_new(NULL);
    char ch;

    while (read(c->stdout_fd, &ch, 1) == 1 && ch != '\n') {
        g_string_append_c(line, ch);
    }
    return g_string_free(line, FALSE);
}

/* delay-proxy.py in front of 127.0.0.1:port; returns the port to use instead. */
static uint16_t proxy_start(Child *proxy, double delay_ms, uint16_t port)
{
    g_autofree char *script = g_build_filename(source_root(), "bench", "delay-proxy.py", NULL);
    g_autofree char *delay = g_strdup_printf("%g", delay_ms);
    g_autofree char *upstream = g_strdup_printf("%u", port);
    const char *argv[] = {
        "/usr/bin/env", "python3", script, "--delay", delay, "127.0.0.1", upstream, NULL,
    };
    g_autofree char *line = NULL;
    unsigned proxy_port = 0;

    *proxy = spawn(argv, true);
    line = child_read_line(proxy);
    if (sscanf(line, "LISTENING %u", &proxy_port) != 1) {
        g_error("delay-proxy.py said '%s'", line);
    }
    return proxy_port;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), compare_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One XfrBlock exchange of the SELECT: the answer must be 61 0D. */
static void exchange(CcidHost *c)
{
    g_autoptr(GByteArray) r = ccid_xfr_apdu(c, select_pki, sizeof(select_pki));

    g_assert_cmpuint(apdu_sw(r), ==, 0x610d);
}

static void wait_card(CcidHost *c)
{
    gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;

    while (g_get_monotonic_time() < deadline) {
        g_autoptr(GByteArray) n = urh_wait_interrupt(c->usb, c->ep_int_in, 200);

        if (n && n->len >= 2 && n->data[0] == RDR_to_PC_NotifySlotChange &&
            (n->data[1] & 3) == 3) {
            return;
        }
    }
    g_error("the card did not come");
}

static Run run_one(const char *setup, const char *tls_dir, int n, double delay_ms)
{
    bool tls = strcmp(setup, "tls") == 0;
    uint16_t port = qtest_free_tcp_port();
    g_autofree char *server_obj = g_strdup_printf(
        "tls-creds-x509,id=tls0,dir=%s/server,endpoint=server,verify-peer=on", tls_dir);
    g_autofree char *chardev = g_strdup_printf(
        "socket,id=vsc,host=127.0.0.1,port=%u,server=on,wait=off%s", port,
        tls ? ",tls-creds=tls0,tls-authz=auth0" : "");
    const char *plain_args[] = {
        "-chardev", chardev, "-device", "usb-ccid,id=ccid",
        "-device", "ccid-card-passthru,chardev=vsc", NULL,
    };
    const char *tls_args[] = {
        "-object", server_obj, "-object", "authz-simple,id=auth0,identity=" TLS_CLIENT_DN,
        "-chardev", chardev, "-device", "usb-ccid,id=ccid",
        "-device", "ccid-card-passthru,chardev=vsc", NULL,
    };
    VccidProcess *v = vccid_start(tls ? tls_args : plain_args);
    CcidHost *c = ccid_host_open(v->sock_path);
    g_autofree char *emul = g_strdup_printf(
        "db=\"sql:%s\" use_hw=no soft=(,Test,CAC,,id-cert,signing-cert,encryption-cert)",
        v->db_dir);
    g_autofree char *client_dir = g_strdup_printf("%s/client", tls_dir);
    g_autofree char *client_port = NULL;
    Child proxy = { .pid = 0 };
    Child client;
    g_autofree double *us = g_new(double, n);
    gint64 start;
    double total_s;
    Run r;

    g_assert_cmpint(urh_start_interrupt_receiving(c->usb, c->ep_int_in), ==, 0);
    client_port = g_strdup_printf("%u", delay_ms > 0 ? proxy_start(&proxy, delay_ms, port)
                                                     : port);
    if (tls) {
        client = spawn((const char *const[]){ g_getenv("VSCCLIENT_BINARY"), "-e", emul,
                                              "--tls-creds", client_dir, "127.0.0.1",
                                              client_port, NULL }, false);
    } else {
        client = spawn((const char *const[]){ g_getenv("VSCCLIENT_BINARY"), "-e", emul,
                                              "127.0.0.1", client_port, NULL }, false);
    }
    wait_card(c);
    g_byte_array_unref(ccid_power_on(c));
    for (int i = 0; i < WARMUP; i++) {
        exchange(c);
    }
    start = g_get_monotonic_time();
    for (int i = 0; i < n; i++) {
        gint64 t = g_get_monotonic_time();

        exchange(c);
        us[i] = g_get_monotonic_time() - t;
    }
    total_s = (g_get_monotonic_time() - start) / 1e6;
    r.apdu_per_s = n / total_s;
    r.p50_us = median(us, n);       /* sorts us */
    r.p99_us = us[(int)(0.99 * (n - 1))];

    g_assert_cmpint(write(client.stdin_fd, "exit\n", 5), ==, 5);
    child_wait(&client);
    if (proxy.pid) {
        kill(proxy.pid, SIGTERM);
        child_wait(&proxy);
    }
    ccid_host_free(c);
    vccid_stop(v);
    return r;
}

int main(int argc, char **argv)
{
    int n = 2000, rounds = 5;
    double delay_ms = 0;
    g_autofree char *setups_opt = NULL;
    const GOptionEntry options[] = {
        { "apdus", 'n', 0, G_OPTION_ARG_INT, &n, "SELECTs per run (2000)", "N" },
        { "rounds", 'r', 0, G_OPTION_ARG_INT, &rounds, "rounds, each running every setup (5)",
          "ROUNDS" },
        { "delay", 'd', 0, G_OPTION_ARG_DOUBLE, &delay_ms,
          "through delay-proxy.py, delaying each direction by this much (0: no proxy)",
          "DELAY_MS" },
        { "setups", 's', 0, G_OPTION_ARG_STRING, &setups_opt, "setups, in order (plain,tls)",
          "plain,tls" },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- the passthru card without a guest");
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) setups = NULL;
    g_autofree char *tls_dir = g_dir_make_tmp("vccid-bench-tls-XXXXXX", NULL);
    g_autofree char *make_certs = NULL;
    Run runs[MAX_SETUPS][64];
    int nsetups;

    g_option_context_add_main_entries(ctx, options, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "host-passthru: %s\n", err->message);
        return 2;
    }
    setups = g_strsplit(setups_opt ? setups_opt : "plain,tls", ",", MAX_SETUPS + 1);
    nsetups = g_strv_length(setups);
    if (n < 1 || rounds < 1 || rounds > 64 || nsetups < 1 || nsetups > MAX_SETUPS ||
        !g_getenv("VSCCLIENT_BINARY")) {
        fprintf(stderr, "host-passthru: bad arguments or VSCCLIENT_BINARY not set\n");
        return 2;
    }
    make_certs = g_strdup_printf("sh '%s/tests/tls/make-certs.sh' '%s' >/dev/null",
                                 source_root(), tls_dir);
    if (system(make_certs) != 0) {
        g_error("%s failed", make_certs);
    }

    for (int round = 0; round < rounds; round++) {
        for (int k = 0; k < nsetups; k++) {
            int s = round % 2 ? nsetups - 1 - k : k;
            Run *r = &runs[s][round];

            *r = run_one(setups[s], tls_dir, n, delay_ms);
            printf("HOST setup=%s round=%d delay_ms=%g apdus=%d apdu_per_s=%.0f "
                   "p50_us=%.0f p99_us=%.0f\n", setups[s], round, delay_ms, n,
                   r->apdu_per_s, r->p50_us, r->p99_us);
            fflush(stdout);
        }
    }

    printf("\nmedians over %d rounds of %d SELECTs%s:\n", rounds, n,
           delay_ms > 0 ? " (through delay-proxy.py)" : "");
    double med[MAX_SETUPS][3];
    for (int s = 0; s < nsetups; s++) {
        double v[3][64];

        for (int i = 0; i < rounds; i++) {
            v[0][i] = runs[s][i].apdu_per_s;
            v[1][i] = runs[s][i].p50_us;
            v[2][i] = runs[s][i].p99_us;
        }
        for (int f = 0; f < 3; f++) {
            med[s][f] = median(v[f], rounds);
        }
        printf("  %-6s %8.0f APDU/s  p50 %7.0f us  p99 %7.0f us\n", setups[s],
               med[s][0], med[s][1], med[s][2]);
    }
    if (nsetups == 2) {
        double pair[64];

        for (int i = 0; i < rounds; i++) {
            pair[i] = runs[1][i].apdu_per_s / runs[0][i].apdu_per_s;
        }
        printf("ratio %s/%s: APDU/s %.2f, p50 %.2f, p99 %.2f; APDU/s per round: median %.2f",
               setups[1], setups[0], med[1][0] / med[0][0], med[1][1] / med[0][1],
               med[1][2] / med[0][2], median(pair, rounds));
        printf(" (%.2f .. %.2f)\n", pair[0], pair[rounds - 1]);
    }
    g_free(make_certs);
    make_certs = g_strdup_printf("rm -rf '%s'", tls_dir);
    return system(make_certs) == 0 ? 0 : 1;
}
