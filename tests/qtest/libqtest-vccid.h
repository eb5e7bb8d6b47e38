/*
 * qtest harness: run the real vccid binary as a child process.
 *
 * Each VccidProcess gets its own temporary directory holding a copy of a
 * freshly made NSS certificate database, the usbredir unix socket and a
 * file that captures the daemon's stderr. When a test fails (an assertion
 * aborts the test binary), that stderr is printed and the daemon killed, so
 * a failure always shows what the daemon said and never leaves it running.
 */
#ifndef LIBQTEST_VCCID_H
#define LIBQTEST_VCCID_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "../support/test-cases.h"

/* Bounds for anything the harness waits for; ASan builds start slowly. */
#define VCCID_START_TIMEOUT_MS 20000
#define VCCID_STOP_TIMEOUT_MS  10000
/* A command line that only prints or fails must be done by then. */
#define VCCID_CLI_TIMEOUT_MS   5000

typedef struct VccidProcess {
    GPid pid;
    char *tmpdir;        /* removed at vccid_stop() */
    char *db_dir;        /* NSS database (copy), "sql:" + db_dir for db= */
    char *sock_path;     /* the usbredir chardev's unix socket */
    char *stderr_path;   /* the daemon's stderr */
    bool exited;
    int wait_status;     /* from waitpid, valid when exited */
} VccidProcess;

/* The DER encoding of a certificate of the master database, by nickname. */
GBytes *vccid_cert_der(const char *nickname);

/* Path of the binary under test ($VCCID_BINARY). */
const char *vccid_binary(void);

/*
 * Directory of an NSS database made once per test binary with
 * scripts/make-cert-db.sh ($VCCID_SOURCE_ROOT); removed at exit.
 */
const char *vccid_master_cert_db(void);

/*
 * Start vccid with the usbredir export on a fresh unix socket and the given
 * device options. In the strings of device_args, "@DB@" is replaced by the
 * process's database ("sql:DIR") and "@DIR@" by its temporary directory.
 * Waits until the socket accepts connections; fails the test if the
 * daemon exits or does not listen in time.
 */
VccidProcess *vccid_start(const char *const *device_args);
/*
 * The general form: chardev is the -chardev value for id "redir" ("@SOCK@"
 * becomes the process's socket path); with wait_socket, wait until the
 * unix socket at sock_path exists (a server), else return once started.
 */
VccidProcess *vccid_start_full(const char *chardev, const char *const *device_args,
                               bool wait_socket);
/* The device options of vccid_start_default(), for vccid_start_full(). */
extern const char *const vccid_default_devices[];

/*
 * Run the source tree's script dir/name (under VCCID_SOURCE_ROOT) with sh and
 * one argument; fail the test, with what it printed, if it fails.
 */
void qtest_run_source_script(const char *dir, const char *name, const char *arg);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
uint16_t qtest_free_tcp_port(void);
/* A stream connected to the unix socket at path, or -1 if nothing listens there. */
int qtest_unix_connect(const char *path);
/* As qtest_unix_connect(), retried for timeout_ms while nothing listens yet. */
int qtest_unix_connect_within(const char *path, int timeout_ms);
/*
 * A stream connected to sa, retried for timeout_ms while nothing listens
 * there yet; -1 with errno set if none.
 */
int qtest_connect_within(const struct sockaddr *sa, socklen_t len, int timeout_ms);
/* The same for 127.0.0.1:port. */
int qtest_tcp_connect_within(uint16_t port, int timeout_ms);
/* poll() one fd, again after EINTR: its revents, or 0 after timeout_ms (below 0: at once). */
short qtest_poll_fd(int fd, short events, int timeout_ms);
/* A listening unix socket at path; accept one peer within timeout_ms (-1 if none). */
int qtest_unix_listen(const char *path);
int qtest_accept(int listen_fd, int timeout_ms);

/* usb-ccid with ccid-card-emulated on the three certificates. */
VccidProcess *vccid_start_default(void);
/* usb-ccid alone: an empty slot. */
VccidProcess *vccid_start_no_card(void);

/* True if the daemon is still running (reaps it if it exited). */
bool vccid_is_running(VccidProcess *p);

/*
 * Stop the daemon (SIGTERM, then SIGKILL after a timeout), reap it and fail
 * the test if it crashed, exited with an error or printed a sanitizer
 * report. Frees p.
 */
void vccid_stop(VccidProcess *p);
/* As vccid_stop(), for a daemon that was asked to exit another way (QMP quit). */
void vccid_wait_exit(VccidProcess *p);

/* The daemon's stderr so far (for tests that check messages). */
char *vccid_read_stderr(VccidProcess *p);

/*
 * Run vccid with argv (without argv[0]) to completion, with a timeout, and
 * return its wait status and output. Fails the test on a timeout.
 */
int vccid_run_cli(const char *const *args, char **out, char **err);
/* vccid with args refuses to start: it exits with status 2 and says fragment on stderr. */
void vccid_assert_cli_error(const char *const *args, const char *fragment);

/* This tree's vscclient (VSCCLIENT_BINARY), running, its stdin a pipe for its commands. */
typedef struct VscclientProcess {
    GPid pid;
    int stdin_fd;
} VscclientProcess;

/* Start vscclient with args (without argv[0]); its output goes to /dev/null. */
VscclientProcess vscclient_start(const char *const *args);
/* Type line (newline included) on vscclient's stdin. */
void vscclient_command(VscclientProcess *vc, const char *line);
/* Reap vscclient once it has exited (or is about to); returns its wait status. */
int vscclient_wait(VscclientProcess *vc);
/* vscclient's "exit": it leaves, with status 0. */
void vscclient_exit(VscclientProcess *vc);
/* vscclient's -e: a libcacard soft card on the three certificates of the NSS database dir. */
char *vscclient_soft_card(const char *db_dir);

#endif
