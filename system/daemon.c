/*
 * -daemonize, -pidfile and systemd notification.
 *
 * The notification is one datagram on the unix socket named by
 * $NOTIFY_SOCKET ('@' for the abstract namespace), as sd_notify(3)
 * documents it; no libsystemd is needed for that.
 */
#include "sysemu/daemon.h"
#include "qemu/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int daemon_ready_fd = -1;
static int pidfile_fd = -1;

void os_daemonize(void)
{
    int fds[2];
    pid_t pid;

    if (pipe(fds) < 0) {
        fprintf(stderr, "vccid: -daemonize: pipe: %s\n", g_strerror(errno));
        exit(1);
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "vccid: -daemonize: fork: %s\n", g_strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        char status;
        ssize_t n;
        int wstatus;

        close(fds[1]);
        do {
            n = read(fds[0], &status, 1);
        } while (n < 0 && errno == EINTR);
        if (n == 1) {
            exit(0);
        }
        /* The child died before it was ready; it has said why on stderr. */
        if (waitpid(pid, &wstatus, 0) == pid && WIFEXITED(wstatus)) {
            exit(WEXITSTATUS(wstatus) ? WEXITSTATUS(wstatus) : 1);
        }
        exit(1);
    }
    close(fds[0]);
    daemon_ready_fd = fds[1];
    fcntl(daemon_ready_fd, F_SETFD, FD_CLOEXEC);
    setsid();
}

void os_daemonize_done(void)
{
    char ok = 0;
    int null = open("/dev/null", O_RDWR);

    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO) {
            close(null);
        }
    }
    if (daemon_ready_fd >= 0) {
        if (write(daemon_ready_fd, &ok, 1) != 1) {
            /* The parent is gone; nobody waits for the answer. */
        }
        close(daemon_ready_fd);
        daemon_ready_fd = -1;
    }
}

bool os_pidfile_create(const char *path, GError **errp)
{
    g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0) {
        g_set_error(errp, VCCID_ERROR, 0, "cannot open: %s", g_strerror(errno));
        return false;
    }
    if (lockf(fd, F_TLOCK, 0) < 0) {
        g_set_error(errp, VCCID_ERROR, 0, "cannot lock (is another vccid using it?): %s",
                    g_strerror(errno));
        close(fd);
        return false;
    }
    if (ftruncate(fd, 0) < 0 || write(fd, pid, strlen(pid)) != (ssize_t)strlen(pid)) {
        g_set_error(errp, VCCID_ERROR, 0, "cannot write: %s", g_strerror(errno));
        close(fd);
        return false;
    }
    pidfile_fd = fd;   /* kept open: the lock lasts as long as we do */
    return true;
}

void os_pidfile_remove(const char *path)
{
    if (pidfile_fd >= 0) {
        unlink(path);
        close(pidfile_fd);
        pidfile_fd = -1;
    }
}

static void os_notify(const char *state)
{
    const char *path = g_getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    socklen_t salen;
    size_t len;
    int fd;

    if (!path || (path[0] != '/' && path[0] != '@')) {
        return;
    }
    len = strlen(path);
    if (len >= sizeof(sa.sun_path)) {
        g_warning("NOTIFY_SOCKET is too long; systemd is not told '%s'", state);
        return;
    }
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@') {
        sa.sun_path[0] = '\0';
    }
    salen = offsetof(struct sockaddr_un, sun_path) + len;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return;
    }
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0) {
        g_warning("cannot notify systemd (%s): %s", path, g_strerror(errno));
    }
    close(fd);
}

void os_notify_ready(void)
{
    os_notify("READY=1");
}

void os_notify_stopping(void)
{
    os_notify("STOPPING=1");
}
