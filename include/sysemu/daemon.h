/*
 * Daemon life (system/daemon.c): -daemonize, -pidfile and systemd's
 * readiness notification, the way QEMU does the first two.
 */
#ifndef SYSEMU_DAEMON_H
#define SYSEMU_DAEMON_H

#include <glib.h>
#include <stdbool.h>

/*
 * Fork. The parent waits until the child calls os_daemonize_done() and
 * exits 0, or exits with the child's status if the child dies first.
 */
void os_daemonize(void);
/* Ready: release the parent, leave the session's terminal behind. */
void os_daemonize_done(void);
/* Create FILE, lock it, write our pid. Fails if another process holds it. */
bool os_pidfile_create(const char *path, GError **errp);
void os_pidfile_remove(const char *path);
/* "READY=1" / "STOPPING=1" to $NOTIFY_SOCKET, if set (sd_notify(3)'s protocol). */
void os_notify_ready(void);
void os_notify_stopping(void);

#endif
