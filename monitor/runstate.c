/*
 * Shutdown requests: from a signal or QMP quit, the SHUTDOWN event, then
 * the main loop ends (from the loop, so that the command that asked has
 * been answered first, as QEMU does).
 */
#include "sysemu/runstate.h"
#include "monitor/monitor.h"

static GMainLoop *main_loop;
static bool shutdown_requested;
static char *shutdown_reason;

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
    QObject *data = qdict_new();

    qdict_put(data, "guest", qbool_new(false));
    qdict_put(data, "reason", qstring_new(shutdown_reason));
    qmp_event_send("SHUTDOWN", data);
    if (main_loop) {
        g_main_loop_quit(main_loop);
    }
    return G_SOURCE_REMOVE;
}

void qemu_system_shutdown_request(const char *reason)
{
    if (shutdown_requested) {
        return;
    }
    shutdown_requested = true;
    g_free(shutdown_reason);
    shutdown_reason = g_strdup(reason);
    g_idle_add(runstate_do_shutdown, NULL);
}
