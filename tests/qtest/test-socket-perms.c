/*
 * A unix server socket's owner, group and mode (-chardev owner=, group=,
 * mode=, and the same through QMP chardev-add): what the socket file gets,
 * what is refused at start-up, and who can really connect, checked by a
 * child that drops to user nobody with and without the socket's group.
 *
 * Changing a file's owner or group takes root, so most of these tests run
 * only as root (as CI does) and are skipped otherwise, saying why. The
 * group used is "daemon", which every Debian system has; the user is
 * "nobody".
 */
#include "libqtest-vccid.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_GROUP "daemon"
#define TEST_USER "nobody"
#define NO_SUCH_USER "vccid-no-such-user"
#define NO_SUCH_GROUP "vccid-no-such-group"
#define QMP_TIMEOUT_MS 10000

static const char *const usb_ccid[] = { "-device", "usb-ccid,id=ccid", NULL };

/* The ids of TEST_USER and TEST_GROUP, or false (and the test skipped) without root. */
static bool need_root(uid_t *uid, gid_t *gid)
{
    struct passwd *pw = getpwnam(TEST_USER);
    struct group *gr = getgrnam(TEST_GROUP);

    if (geteuid() != 0) {
        g_test_skip("changing a socket file's owner or group, and connecting as another "
                    "user, take root");
        return false;
    }
    if (!pw || !gr) {
        g_test_skip("no user " TEST_USER " or no group " TEST_GROUP " on this system");
        return false;
    }
    *uid = pw->pw_uid;
    *gid = gr->gr_gid;
    return true;
}

/* vccid serving usbredir on its unix socket with these extra chardev options. */
static VccidProcess *start_with(const char *opts)
{
    g_autofree char *chardev = g_strdup_printf("socket,id=redir,path=@SOCK@,server=on,"
                                               "wait=off%s%s", *opts ? "," : "", opts);

    return vccid_start_full(chardev, usb_ccid, true);
}

static void assert_socket_file(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
    struct stat st;

    g_assert_cmpint(lstat(path, &st), ==, 0);
    g_assert_true(S_ISSOCK(st.st_mode));
    g_assert_cmpuint(st.st_mode & 07777, ==, mode);
    g_assert_cmpuint(st.st_uid, ==, uid);
    g_assert_cmpuint(st.st_gid, ==, gid);
}

/*
 * Run vccid with a chardev for a socket in a fresh directory, expecting it
 * to refuse: exit status 2, one line on stderr containing want, and no
 * socket file made.
 */
static void assert_refused(const char *chardev_opts, const char *want)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("vccid-perms-XXXXXX", &error);
    g_autofree char *path = NULL;
    g_autofree char *chardev = NULL;
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_auto(GStrv) parts = g_strsplit(chardev_opts, "@SOCK@", -1);
    g_autofree char *opts = NULL;
    const char *args[] = { "-chardev", NULL, "-device", "usb-ccid", "-export",
                           "usbredir,chardev=redir", NULL };
    int status;

    g_assert_no_error(error);
    path = g_build_filename(dir, "s.sock", NULL);
    opts = g_strjoinv(path, parts);
    chardev = g_strdup_printf("socket,id=redir,%s", opts);
    g_test_message("expecting refusal of -chardev %s", chardev);
    args[1] = chardev;
    status = vccid_run_cli(args, &out, &err);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 2);
    g_assert_nonnull(strstr(err, want));
    g_assert_cmpint(strchr(err, '\n') - err, ==, strlen(err) - 1);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/*
 * In a child that becomes uid:gid with only the supplementary groups
 * given, connect to path. Returns 0 if it connected, else connect's errno.
 */
static int connect_as(const char *path, uid_t uid, gid_t gid, const gid_t *groups,
                      size_t ngroups)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int status;
    pid_t pid;

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        int fd;

        if (setgroups(ngroups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
            _exit(255);
        }
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0) {
            _exit(254);
        }
        _exit(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : MIN(errno, 253));
    }
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), <, 254);
    return WEXITSTATUS(status);
}

/* ---- what the socket file gets ---- */

/* Without options: 0600 and vccid's own; mode= alone needs no privilege. */
static void test_default_mode(void)
{
    VccidProcess *p = start_with("");

    assert_socket_file(p->sock_path, 0600, geteuid(), getegid());
    vccid_stop(p);
    p = start_with("mode=0700");
    assert_socket_file(p->sock_path, 0700, geteuid(), getegid());
    vccid_stop(p);
}

/* group= without mode= opens the socket to that group: 0660. */
static void test_group_alone(void)
{
    uid_t uid;
    gid_t gid;
    VccidProcess *p;

    if (!need_root(&uid, &gid)) {
        return;
    }
    p = start_with("group=" TEST_GROUP);
    assert_socket_file(p->sock_path, 0660, geteuid(), gid);
    vccid_stop(p);
}

/* owner= by name, group= by number, and mode=, which wins over group='s 0660. */
static void test_owner_group_mode(void)
{
    g_autofree char *opts = NULL;
    uid_t uid;
    gid_t gid;
    VccidProcess *p;

    if (!need_root(&uid, &gid)) {
        return;
    }
    opts = g_strdup_printf("owner=" TEST_USER ",group=%u,mode=0640", (unsigned)gid);
    p = start_with(opts);
    assert_socket_file(p->sock_path, 0640, uid, gid);
    vccid_stop(p);

    /* owner= alone keeps the default mode; a number is a uid. */
    g_free(opts);
    opts = g_strdup_printf("owner=%u", (unsigned)uid);
    p = start_with(opts);
    assert_socket_file(p->sock_path, 0600, uid, getegid());
    vccid_stop(p);
}

/* ---- who can connect ---- */

static void test_group_member_connects(void)
{
    uid_t uid;
    gid_t gid;
    gid_t nobody_gid;
    VccidProcess *p;

    if (!need_root(&uid, &gid)) {
        return;
    }
    nobody_gid = getpwnam(TEST_USER)->pw_gid;
    g_assert_cmpuint(nobody_gid, !=, gid);
    p = start_with("group=" TEST_GROUP ",mode=0660");
    /* The user must reach the socket through its (root-owned, private) directory. */
    g_assert_cmpint(chmod(p->tmpdir, 0711), ==, 0);
    g_assert_cmpint(connect_as(p->sock_path, uid, nobody_gid, &gid, 1), ==, 0);
    g_assert_cmpint(connect_as(p->sock_path, uid, nobody_gid, NULL, 0), ==, EACCES);
    vccid_stop(p);

    /* By default the group gets nothing. */
    p = start_with("");
    g_assert_cmpint(chmod(p->tmpdir, 0711), ==, 0);
    g_assert_cmpint(connect_as(p->sock_path, uid, nobody_gid, &gid, 1), ==, EACCES);
    vccid_stop(p);
}

/* ---- refused at start-up ---- */

static void test_unknown_owner_group(void)
{
    assert_refused("path=@SOCK@,server=on,wait=off,owner=" NO_SUCH_USER,
                   "chardev 'redir': owner '" NO_SUCH_USER "' does not exist");
    assert_refused("path=@SOCK@,server=on,wait=off,group=" NO_SUCH_GROUP,
                   "chardev 'redir': group '" NO_SUCH_GROUP "' does not exist");
    assert_refused("path=@SOCK@,server=on,wait=off,owner=root,group=" NO_SUCH_GROUP,
                   "group '" NO_SUCH_GROUP "' does not exist");
}

static void test_mode_refused(void)
{
    /* A mode and why it is refused. */
    static const StringCase cases[] = {
        { "0666", "never world-writable" },
        { "0662", "never world-writable" },
        { "0602", "never world-writable" },
        { "0664", "bits for other users" },
        { "0601", "bits for other users" },
        { "01660", "only the permission bits 0777" },
        { "04600", "only the permission bits 0777" },
        { "0x1b0", "expects an octal mode" },
        { "0680", "expects an octal mode" },
        { "rw", "expects an octal mode" },
        { "", "expects an octal mode" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const char *mode = cases[i].input;
        const char *why = cases[i].expected;
        g_autofree char *opts = g_strdup_printf("path=@SOCK@,server=on,wait=off,mode=%s", mode);
        g_autofree char *named = g_strdup_printf("mode=%s", mode);

        assert_refused(opts, why);
        if (*mode && !strstr(why, "octal")) {
            assert_refused(opts, named);
        }
    }
}

/* Only a unix socket with server=on has a socket file to set. */
static void test_not_unix_server(void)
{
    static const char *const keys[] = { "owner=root", "group=root", "mode=0600" };
    g_autofree char *port = g_strdup_printf("%u", qtest_free_tcp_port());

    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
        g_autofree char *key = g_strndup(keys[i], strchr(keys[i], '=') - keys[i]);
        g_autofree char *want = g_strdup_printf("'%s' option is only valid for a unix socket "
                                                "with server=on", key);
        g_autofree char *tcp = g_strdup_printf("host=127.0.0.1,port=%s,server=on,wait=off,%s",
                                               port, keys[i]);
        g_autofree char *client = g_strdup_printf("path=@SOCK@,server=off,%s", keys[i]);

        assert_refused(tcp, want);
        assert_refused(client, want);
    }
}

/* True if this process belongs to group gid, and so may give it its files without root. */
static bool in_group(gid_t gid)
{
    gid_t groups[NGROUPS_MAX];
    int n = getgroups(NGROUPS_MAX, groups);

    for (int i = 0; i < n; i++) {
        if (groups[i] == gid) {
            return true;
        }
    }
    return getegid() == gid;
}

/*
 * The command line that runs vccid, serving at sock (in dir) with
 * group=TEST_GROUP, as a user who may not give that group a file; NULL (the
 * test skipped) if this user may.
 */
static char *outsider_command(const char *dir, const char *sock, const struct passwd *pw,
                              const struct group *gr)
{
    g_autofree char *runas = NULL;

    if (geteuid() == 0) {
        /* Root may; setpriv (util-linux) runs vccid as nobody, in no other group. */
        g_assert_cmpint(chown(dir, pw->pw_uid, -1), ==, 0);
        runas = g_strdup_printf("setpriv --reuid=%u --regid=%u --clear-groups ",
                                (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
    } else if (in_group(gr->gr_gid)) {
        g_test_skip("this user is in group " TEST_GROUP ", so may give it a file");
        return NULL;
    }
    return g_strdup_printf("%s%s -chardev socket,id=redir,path=%s,server=on,wait=off,"
                           "group=" TEST_GROUP " -device usb-ccid -export usbredir,chardev=redir",
                           runas ? runas : "", vccid_binary(), sock);
}

/* Without root, giving the socket file to another group fails, naming the option and why. */
static void test_chown_fails(void)
{
    struct group *gr = getgrnam(TEST_GROUP);
    struct passwd *pw = getpwnam(TEST_USER);
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = NULL;
    g_autofree char *sock = NULL;
    g_autofree char *cmd = NULL;
    g_autofree char *err = NULL;
    int status;

    if (!gr || !pw) {
        g_test_skip("no user " TEST_USER " or no group " TEST_GROUP " on this system");
        return;
    }
    dir = g_dir_make_tmp("vccid-perms-XXXXXX", &error);
    g_assert_no_error(error);
    sock = g_build_filename(dir, "s.sock", NULL);
    cmd = outsider_command(dir, sock, pw, gr);
    if (!cmd) {
        g_rmdir(dir);
        return;
    }
    if (!g_spawn_command_line_sync(cmd, NULL, &err, &status, &error)) {
        g_test_skip("setpriv is not available");
        g_rmdir(dir);
        return;
    }
    g_test_message("%s: %s", cmd, err);
    g_assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 127 || WEXITSTATUS(status) == 126) {
        g_test_skip("user " TEST_USER " cannot run the vccid binary here");
        g_rmdir(dir);
        return;
    }
    g_assert_cmpint(WEXITSTATUS(status), ==, 2);
    g_assert_nonnull(strstr(err, "group=" TEST_GROUP ": cannot change the owner of"));
    g_assert_nonnull(strstr(err, g_strerror(EPERM)));
    g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/* ---- QMP: -qmp and chardev-add take the same options ---- */

/* The monitor's next line, without its CR LF (a reply: nothing here makes events). */
static char *qmp_line(int fd, GString *buf)
{
    gint64 deadline = g_get_monotonic_time() + QMP_TIMEOUT_MS * 1000;

    for (;;) {
        char *nl = memchr(buf->str, '\n', buf->len);
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        char chunk[4096];
        ssize_t n;

        if (nl) {
            char *line = g_strndup(buf->str, nl - buf->str);

            g_string_erase(buf, 0, nl - buf->str + 1);
            return g_strchomp(line);   /* the "\r" of "\r\n" */
        }
        g_assert_cmpint(poll(&pfd, 1, (deadline - g_get_monotonic_time()) / 1000), ==, 1);
        n = read(fd, chunk, sizeof(chunk));
        g_assert_cmpint(n, >, 0);
        g_string_append_len(buf, chunk, n);
    }
}

static char *qmp_exec(int fd, GString *buf, const char *req)
{
    g_assert_cmpint(write(fd, req, strlen(req)), ==, strlen(req));
    g_assert_cmpint(write(fd, "\n", 1), ==, 1);
    return qmp_line(fd, buf);
}

static char *chardev_add(int fd, GString *buf, const char *id, const char *path,
                         const char *extra)
{
    g_autofree char *req = g_strdup_printf(
        "{\"execute\": \"chardev-add\", \"arguments\": {\"id\": \"%s\", \"backend\": "
        "{\"type\": \"socket\", \"data\": {\"addr\": {\"type\": \"unix\", \"data\": "
        "{\"path\": \"%s\"}}, \"server\": true, \"wait\": false%s}}}}", id, path, extra);

    return qmp_exec(fd, buf, req);
}

/* Check that reply is QMP's empty success, and free it. */
static void assert_qmp_ok(char *reply)
{
    g_assert_cmpstr(reply, ==, "{\"return\": {}}");
    g_free(reply);
}

static void test_qmp_chardev_add(void)
{
    static const char *const args[] = {
        "-qmp", "unix:@DIR@/qmp.sock,server=on,wait=off,group=" TEST_GROUP,
        "-device", "usb-ccid,id=ccid",
        NULL,
    };
    g_autoptr(GString) buf = g_string_new(NULL);
    uid_t uid;
    gid_t gid;
    VccidProcess *p;
    g_autofree char *qmp = NULL;
    g_autofree char *path = NULL;
    g_autofree char *line = NULL;
    int fd = -1;

    if (!need_root(&uid, &gid)) {
        return;
    }
    p = vccid_start(args);
    qmp = g_build_filename(p->tmpdir, "qmp.sock", NULL);
    path = g_build_filename(p->tmpdir, "added.sock", NULL);
    fd = qtest_unix_connect_within(qmp, VCCID_START_TIMEOUT_MS);
    g_assert_cmpint(fd, >=, 0);
    /* -qmp's chardev options include these too. */
    assert_socket_file(qmp, 0660, 0, gid);
    line = qmp_line(fd, buf);
    g_assert_true(g_str_has_prefix(line, "{\"QMP\""));
    g_clear_pointer(&line, g_free);
    assert_qmp_ok(qmp_exec(fd, buf, "{\"execute\": \"qmp_capabilities\"}"));

    assert_qmp_ok(chardev_add(fd, buf, "c1", path,
                              ", \"group\": \"" TEST_GROUP "\", \"mode\": \"0620\""));
    assert_socket_file(path, 0620, 0, gid);
    assert_qmp_ok(qmp_exec(fd, buf,
                           "{\"execute\": \"chardev-remove\", \"arguments\": {\"id\": \"c1\"}}"));
    /* Made again, under another owner: the new file has its own. */
    assert_qmp_ok(chardev_add(fd, buf, "c1", path, ", \"owner\": \"" TEST_USER "\""));
    assert_socket_file(path, 0600, uid, 0);

    line = chardev_add(fd, buf, "c2", path, ", \"group\": \"" NO_SUCH_GROUP "\"");
    g_assert_cmpstr(line, ==, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                    "\"chardev 'c2': group '" NO_SUCH_GROUP "' does not exist\"}}");
    g_clear_pointer(&line, g_free);
    line = chardev_add(fd, buf, "c3", path, ", \"mode\": \"0666\"");
    g_assert_nonnull(strstr(line, "\"desc\": \"chardev 'c3': mode=0666 is refused"));
    g_clear_pointer(&line, g_free);
    /* The refused ones left the existing socket alone. */
    assert_socket_file(path, 0600, uid, 0);
    close(fd);
    vccid_stop(p);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/socket-perms/default-mode", test_default_mode);
    g_test_add_func("/socket-perms/group-alone", test_group_alone);
    g_test_add_func("/socket-perms/owner-group-mode", test_owner_group_mode);
    g_test_add_func("/socket-perms/group-member-connects", test_group_member_connects);
    g_test_add_func("/socket-perms/refused/unknown-owner-group", test_unknown_owner_group);
    g_test_add_func("/socket-perms/refused/mode", test_mode_refused);
    g_test_add_func("/socket-perms/refused/not-unix-server", test_not_unix_server);
    g_test_add_func("/socket-perms/refused/chown-fails", test_chown_fails);
    g_test_add_func("/socket-perms/qmp-chardev-add", test_qmp_chardev_add);
    return g_test_run();
}
