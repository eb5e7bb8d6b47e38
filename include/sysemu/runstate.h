/*
 * Shutting vccid down from wherever it is asked for (a signal, QMP quit):
 * the SHUTDOWN event goes out, then the main loop ends and main() takes
 * everything down in order.
 */
#ifndef SYSEMU_RUNSTATE_H
#define SYSEMU_RUNSTATE_H

#include <glib.h>
#include <stdbool.h>

/* The loop main() runs; a request before it is set is remembered. */
void runstate_set_main_loop(GMainLoop *loop);
/* reason is QEMU's ShutdownCause name: "host-signal", "host-qmp-quit". */
void qemu_system_shutdown_request(const char *reason);
bool runstate_shutdown_requested(void);

#endif
