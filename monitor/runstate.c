/*
 * Shutdown requests: from a signal or QMP quit. The SHUTDOWN event goes
 * out at once (QEMU sends it before quit's return), and the main loop ends
 * from the loop, once the command that asked has been answered.
 */
#include "sysemu/runstate.h"
#include "monitor/monitor.h"

static GMainLoop *main_loop;
static bool shutdown_requested;

void runstate_set_main_loop(GMainLoop *loop)
{
    main_loop = loop;
}

bool runstate_shutdown_requested(void)
{
    return shutdown_requested;
}

static gboolean runstate_do_shutdown(gpointer opaque)
{
    if (main_loop) {
        g_main_loop_quit(main_loop);
    }
    return G_SOURCE_REMOVE;
}

void qemu_system_shutdown_request(const char *reason)
{
    QObject *data;

    if (shutdown_requested) {
        return;
    }
    data = qdict_new();
    shutdown_requested = true;
    qdict_put(data, "guest", qbool_new(false));
    qdict_put(data, "reason", qstring_new(reason));
    qmp_event_send("SHUTDOWN", data);
    g_idle_add(runstate_do_shutdown, NULL);
}
