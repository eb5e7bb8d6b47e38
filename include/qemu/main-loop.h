/*
 * What GLib's main loop lacks for the sources a device, chardev or export
 * keeps while it waits on a socket.
 */
#ifndef QEMU_MAIN_LOOP_H
#define QEMU_MAIN_LOOP_H

#include <glib.h>

/*
 * Detach *src from its main context, drop our reference and forget it
 * (the GSource twin of g_clear_handle_id); nothing if *src is NULL.
 */
static inline void source_drop(GSource **src)
{
    if (*src) {
        g_source_destroy(*src);
        g_source_unref(*src);
        *src = NULL;
    }
}

#endif
