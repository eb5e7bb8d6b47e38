/*
 * qtest harness: run the real vccid binary as a child process.
 */
#include "libqtest-vccid.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Daemons alive right now, kept in plain arrays so that the SIGABRT handler
 * (a failed g_assert) can kill them and print their stderr with
 * async-signal-safe calls only.
 */
#define MAX_LIVE 8
static struct {
    pid_t pid;
    char stderr_path[PATH_MAX];
    char tmpdir[PATH_MAX];
} live[MAX_LIVE];

/* What the temporary directories hold, so a failing test can remove them. */
#define MAX_DB_FILES 16
static char db_files[MAX_DB_FILES][64];
static char master_db_path[PATH_MAX];

/* dir + "/" + name into buf, with async-signal-safe calls only. */
static const char *join_path(char *buf, size_t size, const char *dir, const char *name)
{
    size_t n = strlen(dir), m = strlen(name);

    if (n + 1 + m + 1 > size) {
        buf[0] = '\0';
        return buf;
    }
    memcpy(buf, dir, n);
    buf[n] = '/';
    memcpy(buf + n + 1, name, m + 1);
    return buf;
}

static void remove_db_files(const char *dir)
{
    char path[PATH_MAX];

    for (int i = 0; i < MAX_DB_FILES && db_files[i][0]; i++) {
        unlink(join_path(path, sizeof(path), dir, db_files[i]));
    }
    rmdir(dir);
}

/* The daemon's directory: its socket, stderr and database copy. */
static void remove_tmpdir_signal_safe(const char *tmpdir)
{
    char path[PATH_MAX];

    unlink(join_path(path, sizeof(path), tmpdir, "usbredir.sock"));
    unlink(join_path(path, sizeof(path), tmpdir, "vccid.stderr"));
    remove_db_files(join_path(path, sizeof(path), tmpdir, "db"));
    rmdir(tmpdir);
}

static void dump_file_to_stderr(const char *path)
{
    char buf[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY);

    if (fd < 0) {
        return;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (write(STDERR_FILENO, buf, n) < 0) {
            break;
        }
    }
    close(fd);
}

static void abort_handler(int sig)
{
    static const char banner[] = "\n==== vccid stderr (test failed) ====\n";
    static const char end[] = "==== end of vccid stderr ====\n";

    for (int i = 0; i < MAX_LIVE; i++) {
        if (live[i].pid > 0) {
            kill(live[i].pid, SIGKILL);
            if (write(STDERR_FILENO, banner, sizeof(banner) - 1) < 0) {
                break;
            }
            dump_file_to_stderr(live[i].stderr_path);
            if (write(STDERR_FILENO, end, sizeof(end) - 1) < 0) {
                break;
            }
            /* Its stderr is shown: the directory has nothing else to tell. */
            remove_tmpdir_signal_safe(live[i].tmpdir);
        }
    }
    if (master_db_path[0]) {
        remove_db_files(master_db_path);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void live_add(pid_t pid, const char *stderr_path, const char *tmpdir)
{
    static bool installed;

    /* g_assert aborts; g_error in a test program traps. */
    if (!installed) {
        signal(SIGABRT, abort_handler);
        signal(SIGTRAP, abort_handler);
        signal(SIGSEGV, abort_handler);
        installed = true;
    }
    for (int i = 0; i < MAX_LIVE; i++) {
        if (live[i].pid == 0) {
            g_strlcpy(live[i].stderr_path, stderr_path, sizeof(live[i].stderr_path));
            g_strlcpy(live[i].tmpdir, tmpdir, sizeof(live[i].tmpdir));
            live[i].pid = pid;
            return;
        }
    }
    g_error("more than %d vccid processes at once", MAX_LIVE);
}

static void live_remove(pid_t pid)
{
    for (int i = 0; i < MAX_LIVE; i++) {
        if (live[i].pid == pid) {
            live[i].pid = 0;
        }
    }
}

const char *vccid_binary(void)
{
    const char *bin = g_getenv("VCCID_BINARY");

    if (!bin) {
        g_error("VCCID_BINARY is not set (run the tests with meson test)");
    }
    return bin;
}

static char *master_db;

static void remove_tree(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;

    if (!d) {
        return;
    }
    while ((name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);

        if (g_file_test(path, G_FILE_TEST_IS_DIR) &&
            !g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
            remove_tree(path);
        } else {
            g_unlink(path);
        }
    }
    g_dir_close(d);
    g_rmdir(dir);
}

static void record_db_files(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;
    int n = 0;

    while (d && (name = g_dir_read_name(d)) && n < MAX_DB_FILES) {
        g_strlcpy(db_files[n++], name, sizeof(db_files[0]));
    }
    if (d) {
        g_dir_close(d);
    }
}

static void master_db_cleanup(void)
{
    if (master_db) {
        remove_tree(master_db);
        g_clear_pointer(&master_db, g_free);
        master_db_path[0] = '\0';
    }
}

void qtest_run_source_script(const char *dir, const char *name, const char *arg)
{
    const char *root = g_getenv("VCCID_SOURCE_ROOT");
    g_autofree char *script = NULL;
    g_autofree char *err = NULL;
    g_autoptr(GError) error = NULL;
    int status;

    if (!root) {
        g_error("VCCID_SOURCE_ROOT is not set (run the tests with meson test)");
    }
    script = g_build_filename(root, dir, name, NULL);

    const char *argv[] = { "/bin/sh", script, arg, NULL };
    g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL,
                 &err, &status, &error);
    g_assert_no_error(error);
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_error("%s failed: %s", name, err);
    }
}

const char *vccid_master_cert_db(void)
{
    g_autoptr(GError) error = NULL;

    if (master_db) {
        return master_db;
    }
    if (!g_getenv("VCCID_SOURCE_ROOT")) {
        g_error("VCCID_SOURCE_ROOT is not set (run the tests with meson test)");
    }
    master_db = g_dir_make_tmp("vccid-qtest-db-XXXXXX", &error);
    g_assert_no_error(error);
    g_strlcpy(master_db_path, master_db, sizeof(master_db_path));
    atexit(master_db_cleanup);
    qtest_run_source_script("scripts", "make-cert-db.sh", master_db);
    record_db_files(master_db);
    return master_db;
}

GBytes *vccid_cert_der(const char *nickname)
{
    g_autofree char *db = g_strconcat("sql:", vccid_master_cert_db(), NULL);
    g_autofree char *file = g_build_filename(vccid_master_cert_db(), "export.der", NULL);
    g_autofree char *contents = NULL;
    g_autofree char *err = NULL;
    g_autoptr(GError) error = NULL;
    gsize len;
    int status;
    const char *argv[] = { "certutil", "-L", "-d", db, "-n", nickname, "-r", "-o", file, NULL };

    g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, &err,
                 &status, &error);
    g_assert_no_error(error);
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_error("certutil -L -n %s failed: %s", nickname, err);
    }
    g_file_get_contents(file, &contents, &len, &error);
    g_assert_no_error(error);
    g_unlink(file);
    return g_bytes_new(contents, len);
}

static void copy_dir_files(const char *from, const char *to)
{
    g_autoptr(GError) error = NULL;
    GDir *d = g_dir_open(from, 0, &error);
    const char *name;

    g_assert_no_error(error);
    while ((name = g_dir_read_name(d))) {
        g_autofree char *src = g_build_filename(from, name, NULL);
        g_autofree char *dst = g_build_filename(to, name, NULL);
        g_autofree char *contents = NULL;
        gsize len;

        if (!g_file_test(src, G_FILE_TEST_IS_REGULAR)) {
            continue;
        }
        g_file_get_contents(src, &contents, &len, &error);
        g_assert_no_error(error);
        g_file_set_contents(dst, contents, len, &error);
        g_assert_no_error(error);
    }
    g_dir_close(d);
}

static char *substitute(const char *arg, const VccidProcess *p)
{
    g_autofree char *db = g_strconcat("sql:", p->db_dir, NULL);
    g_auto(GStrv) parts = g_strsplit(arg, "@DB@", -1);
    g_autofree char *with_db = g_strjoinv(db, parts);
    g_auto(GStrv) parts2 = g_strsplit(with_db, "@DIR@", -1);

    return g_strjoinv(p->tmpdir, parts2);
}

static bool reap(VccidProcess *p, bool block)
{
    int status;
    pid_t r;

    if (p->exited) {
        return true;
    }
    do {
        r = waitpid(p->pid, &status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == p->pid) {
        p->exited = true;
        p->wait_status = status;
        live_remove(p->pid);
        return true;
    }
    return false;
}

bool vccid_is_running(VccidProcess *p)
{
    return !reap(p, false);
}

char *vccid_read_stderr(VccidProcess *p)
{
    char *contents = NULL;

    if (!g_file_get_contents(p->stderr_path, &contents, NULL, NULL)) {
        return g_strdup("");
    }
    return contents;
}

static bool socket_ready(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static GPtrArray *build_argv(VccidProcess *p, const char *chardev,
                             const char *const *device_args)
{
    GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) parts = g_strsplit(chardev, "@SOCK@", -1);

    g_ptr_array_add(argv, g_strdup(vccid_binary()));
    g_ptr_array_add(argv, g_strdup("-chardev"));
    g_ptr_array_add(argv, g_strjoinv(p->sock_path, parts));
    for (int i = 0; device_args && device_args[i]; i++) {
        g_ptr_array_add(argv, substitute(device_args[i], p));
    }
    g_ptr_array_add(argv, g_strdup("-export"));
    g_ptr_array_add(argv, g_strdup("usbredir,chardev=redir"));
    g_ptr_array_add(argv, NULL);
    return argv;
}

static void wait_until_listening(VccidProcess *p)
{
    gint64 deadline = g_get_monotonic_time() + VCCID_START_TIMEOUT_MS * 1000;

    while (!socket_ready(p->sock_path)) {
        if (reap(p, false)) {
            g_autofree char *err = vccid_read_stderr(p);
            remove_tree(p->tmpdir);
            g_error("vccid exited before listening (wait status 0x%x):\n%s",
                    p->wait_status, err);
        }
        if (g_get_monotonic_time() > deadline) {
            g_error("vccid did not create %s within %d ms", p->sock_path,
                    VCCID_START_TIMEOUT_MS);
        }
        g_usleep(5000);
    }
}

VccidProcess *vccid_start_full(const char *chardev, const char *const *device_args,
                               bool wait_socket)
{
    VccidProcess *p = g_new0(VccidProcess, 1);
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) argv = NULL;
    g_autofree char *cmdline = NULL;
    int err_fd;

    p->tmpdir = g_dir_make_tmp("vccid-qtest-XXXXXX", &error);
    g_assert_no_error(error);
    p->db_dir = g_build_filename(p->tmpdir, "db", NULL);
    g_assert_cmpint(g_mkdir(p->db_dir, 0700), ==, 0);
    copy_dir_files(vccid_master_cert_db(), p->db_dir);
    p->sock_path = g_build_filename(p->tmpdir, "usbredir.sock", NULL);
    p->stderr_path = g_build_filename(p->tmpdir, "vccid.stderr", NULL);

    argv = build_argv(p, chardev, device_args);
    cmdline = g_strjoinv(" ", (char **)argv->pdata);
    g_test_message("starting: %s", cmdline);

    err_fd = open(p->stderr_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    g_assert_cmpint(err_fd, >=, 0);
    g_spawn_async_with_fds(p->tmpdir, (char **)argv->pdata, NULL,
                           G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDIN_FROM_DEV_NULL,
                           NULL, NULL, &p->pid, -1, err_fd, err_fd, &error);
    close(err_fd);
    g_assert_no_error(error);
    live_add(p->pid, p->stderr_path, p->tmpdir);

    if (wait_socket) {
        wait_until_listening(p);
    }
    return p;
}

VccidProcess *vccid_start(const char *const *device_args)
{
    return vccid_start_full("socket,id=redir,path=@SOCK@,server=on,wait=off", device_args,
                            true);
}

const char *const vccid_default_devices[] = {
    "-device", "usb-ccid,id=ccid",
    "-device", "ccid-card-emulated,backend=certificates,db=@DB@,"
               "cert1=id-cert,cert2=signing-cert,cert3=encryption-cert",
    NULL,
};

VccidProcess *vccid_start_default(void)
{
    return vccid_start(vccid_default_devices);
}

uint16_t qtest_free_tcp_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&sa, &len), ==, 0);
    close(fd);
    return ntohs(sa.sin_port);
}

int qtest_unix_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int qtest_unix_connect_within(const char *path, int timeout_ms)
{
    int fd = qtest_unix_connect(path);

    for (int i = 0; i < timeout_ms / 10 && fd < 0; i++) {
        g_usleep(10000);
        fd = qtest_unix_connect(path);
    }
    return fd;
}

int qtest_connect_within(const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int err;

        g_assert_cmpint(fd, >=, 0);
        if (connect(fd, sa, len) == 0) {
            return fd;
        }
        err = errno;
        close(fd);
        /* Not yet: a unix server may have bound but not yet listen()ed. */
        if ((err != ECONNREFUSED && err != ENOENT && err != EAGAIN) ||
            g_get_monotonic_time() > deadline) {
            errno = err;
            return -1;
        }
        g_usleep(5000);
    }
}

int qtest_tcp_connect_within(uint16_t port, int timeout_ms)
{
    struct sockaddr_in sa = {
        .sin_family = AF_INET,
        .sin_port = htons(port),
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };

    return qtest_connect_within((struct sockaddr *)&sa, sizeof(sa), timeout_ms);
}

short qtest_poll_fd(int fd, short events, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    int r;

    do {
        r = poll(&pfd, 1, MAX(timeout_ms, 0));
    } while (r < 0 && errno == EINTR);
    g_assert_cmpint(r, >=, 0);
    return r ? pfd.revents : 0;
}

int qtest_unix_listen(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(fd, 4), ==, 0);
    return fd;
}

int qtest_accept(int listen_fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = listen_fd, .events = POLLIN };
    int r;

    do {
        r = poll(&pfd, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
        return -1;
    }
    return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

VccidProcess *vccid_start_no_card(void)
{
    static const char *const args[] = { "-device", "usb-ccid,id=ccid", NULL };

    return vccid_start(args);
}

/* Sanitizer and GLib messages that mean the daemon misbehaved. */
static const char *const bad_markers[] = {
    "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
    "runtime error:", "-CRITICAL **", "-ERROR **",
};

static void check_stderr_clean(VccidProcess *p)
{
    g_autofree char *err = vccid_read_stderr(p);

    for (size_t i = 0; i < G_N_ELEMENTS(bad_markers); i++) {
        if (strstr(err, bad_markers[i])) {
            remove_tree(p->tmpdir);
            g_error("vccid printed \"%s\":\n%s", bad_markers[i], err);
        }
    }
}

static void check_exit(VccidProcess *p)
{
    int st = p->wait_status;

    /* A clean exit, or death by the SIGTERM we sent, are both fine. */
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        return;
    }
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM) {
        return;
    }
    g_autofree char *err = vccid_read_stderr(p);
    if (WIFSIGNALED(st)) {
        remove_tree(p->tmpdir);
        g_error("vccid died of signal %d (%s):\n%s", WTERMSIG(st),
                g_strsignal(WTERMSIG(st)), err);
    }
    remove_tree(p->tmpdir);
    g_error("vccid exited with status %d:\n%s", WEXITSTATUS(st), err);
}

/*
 * Reap p within VCCID_STOP_TIMEOUT_MS of being asked to leave (how is said
 * in the error), check how it ended and what it printed, and free it.
 */
static void wait_exit_and_free(VccidProcess *p, const char *asked)
{
    gint64 deadline = g_get_monotonic_time() + VCCID_STOP_TIMEOUT_MS * 1000;

    while (!reap(p, false)) {
        if (g_get_monotonic_time() > deadline) {
            kill(p->pid, SIGKILL);
            reap(p, true);
            g_autofree char *err = vccid_read_stderr(p);
            remove_tree(p->tmpdir);
            g_error("vccid did not exit within %d ms of %s:\n%s",
                    VCCID_STOP_TIMEOUT_MS, asked, err);
        }
        g_usleep(2000);
    }
    check_exit(p);
    check_stderr_clean(p);

    remove_tree(p->tmpdir);
    g_free(p->tmpdir);
    g_free(p->db_dir);
    g_free(p->sock_path);
    g_free(p->stderr_path);
    g_free(p);
}

void vccid_stop(VccidProcess *p)
{
    if (reap(p, false)) {
        /* It was not asked to leave: whatever the status, that is a bug. */
        g_autofree char *err = vccid_read_stderr(p);
        remove_tree(p->tmpdir);
        g_error("vccid exited on its own during the test (wait status 0x%x):\n%s",
                p->wait_status, err);
    }
    kill(p->pid, SIGTERM);
    wait_exit_and_free(p, "SIGTERM");
}

void vccid_wait_exit(VccidProcess *p)
{
    wait_exit_and_free(p, "being asked to");
}

static char *read_all_fd(int fd)
{
    GString *s = g_string_new(NULL);
    char buf[4096];
    ssize_t n;

    lseek(fd, 0, SEEK_SET);
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        g_string_append_len(s, buf, n);
    }
    return g_string_free(s, FALSE);
}

static int tmpfile_fd(void)
{
    g_autofree char *name = NULL;
    g_autoptr(GError) error = NULL;
    int fd = g_file_open_tmp("vccid-cli-XXXXXX", &name, &error);

    g_assert_no_error(error);
    g_unlink(name);
    return fd;
}

int vccid_run_cli(const char *const *args, char **out, char **err)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) error = NULL;
    int out_fd = tmpfile_fd(), err_fd = tmpfile_fd();
    gint64 deadline;
    GPid pid;
    int status;
    pid_t r;

    g_ptr_array_add(argv, (char *)vccid_binary());
    for (int i = 0; args[i]; i++) {
        g_ptr_array_add(argv, (char *)args[i]);
    }
    g_ptr_array_add(argv, NULL);
    g_spawn_async_with_fds(NULL, (char **)argv->pdata, NULL,
                           G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDIN_FROM_DEV_NULL,
                           NULL, NULL, &pid, -1, out_fd, err_fd, &error);
    g_assert_no_error(error);

    /* A command line that never returns must fail the test, not hang it. */
    deadline = g_get_monotonic_time() + VCCID_CLI_TIMEOUT_MS * 1000;
    while ((r = waitpid(pid, &status, WNOHANG)) == 0) {
        if (g_get_monotonic_time() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            g_autofree char *e = read_all_fd(err_fd);
            g_error("vccid did not exit within %d ms:\n%s", VCCID_CLI_TIMEOUT_MS, e);
        }
        g_usleep(2000);
    }
    g_assert_cmpint(r, ==, pid);
    *out = read_all_fd(out_fd);
    *err = read_all_fd(err_fd);
    close(out_fd);
    close(err_fd);
    return status;
}

void vccid_assert_cli_error(const char *const *args, const char *fragment)
{
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int status = vccid_run_cli(args, &out, &err);

    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 2);
    if (!strstr(err, fragment)) {
        g_error("expected \"%s\" in:\n%s", fragment, err);
    }
}

VscclientProcess vscclient_start(const char *const *args)
{
    const char *bin = g_getenv("VSCCLIENT_BINARY");
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    VscclientProcess vc;

    g_assert_nonnull(bin);
    g_ptr_array_add(argv, (char *)bin);
    for (int i = 0; args[i]; i++) {
        g_ptr_array_add(argv, (char *)args[i]);
    }
    g_ptr_array_add(argv, NULL);
    g_spawn_async_with_pipes(NULL, (char **)argv->pdata, NULL,
                             G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL,
                             NULL, NULL, &vc.pid, &vc.stdin_fd, NULL, NULL, &err);
    g_assert_no_error(err);
    return vc;
}

void vscclient_command(VscclientProcess *vc, const char *line)
{
    g_assert_cmpint(write(vc->stdin_fd, line, strlen(line)), ==, (ssize_t)strlen(line));
}

int vscclient_wait(VscclientProcess *vc)
{
    int status;

    g_assert_cmpint(waitpid(vc->pid, &status, 0), ==, vc->pid);
    g_spawn_close_pid(vc->pid);
    close(vc->stdin_fd);
    return status;
}

void vscclient_exit(VscclientProcess *vc)
{
    int status;

    vscclient_command(vc, "exit\n");
    status = vscclient_wait(vc);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
}

char *vscclient_soft_card(const char *db_dir)
{
    return g_strdup_printf("db=\"sql:%s\" use_hw=no "
                           "soft=(,Test,CAC,,id-cert,signing-cert,encryption-cert)", db_dir);
}
