/*
 * A chardev with no socket behind it, for fuzzing frontends: the harness
 * opens it, feeds bytes as if a peer had sent them, and reads back what the
 * frontend wrote. Implements include/chardev/char.h for one device.
 */
#include "chardev/char.h"
#include "qemu/error.h"
#include "fake-chardev.h"

#include <string.h>

struct Chardev {
    char *owner;
    bool connected;
    ChrReadHandler *fd_read;
    ChrEventHandler *fd_event;
    ChrCanReadHandler *fd_can_read;
    void *opaque;
    GByteArray *written;
};

static Chardev the_chardev;

Chardev *chardev_new_from_string(const char *optstr, GError **errp)
{
    g_set_error(errp, VCCID_ERROR, 0, "no chardevs in this build");
    return NULL;
}

Chardev *chardev_find(const char *id)
{
    if (!the_chardev.written) {
        the_chardev.written = g_byte_array_new();
    }
    return strcmp(id, "fake") == 0 ? &the_chardev : NULL;
}

const char *chardev_describe(Chardev *chr)
{
    return "fake";
}

void chardev_destroy_all(void)
{
}

const char *chardev_get_id(Chardev *chr)
{
    return "fake";
}

bool chardev_remove(const char *id, GError **errp)
{
    g_set_error(errp, VCCID_ERROR, 0, "Chardev '%s' is busy", id);
    return false;
}

bool chardev_uses_object(const char *id)
{
    return false;
}

void chardev_wait_for_clients(void)
{
}

bool chr_fe_claim(Chardev *chr, const char *owner, GError **errp)
{
    if (chr->owner) {
        g_set_error(errp, VCCID_ERROR, 0, "in use");
        return false;
    }
    chr->owner = g_strdup(owner);
    return true;
}

void chr_fe_release(Chardev *chr)
{
    chr_fe_set_handlers(chr, NULL, NULL, NULL);
    g_clear_pointer(&chr->owner, g_free);
}

void chr_fe_set_handlers(Chardev *chr, ChrReadHandler *fd_read, ChrEventHandler *fd_event,
                         void *opaque)
{
    chr->fd_read = fd_read;
    chr->fd_event = fd_event;
    chr->opaque = opaque;
    if (!fd_read) {
        chr->fd_can_read = NULL;
    }
}

void chr_fe_set_can_read(Chardev *chr, ChrCanReadHandler *can_read)
{
    chr->fd_can_read = can_read;
}

void chr_fe_accept_input(Chardev *chr)
{
}

/* A fake chardev has one peer and no listener: nobody is ever refused. */
void chr_fe_set_busy_reply(Chardev *chr, const void *buf, size_t len)
{
}

bool chr_fe_write(Chardev *chr, const void *buf, size_t len)
{
    if (!chr->connected) {
        return false;
    }
    /* Keep only a bounded tail: the fuzzer looks at behaviour, not at output. */
    if (chr->written->len > 1 << 20) {
        g_byte_array_set_size(chr->written, 0);
    }
    g_byte_array_append(chr->written, buf, len);
    return true;
}

bool chr_fe_is_connected(Chardev *chr)
{
    return chr->connected;
}

void chr_fe_hello_done(Chardev *chr)
{
}

void chr_fe_disconnect(Chardev *chr)
{
    fake_chardev_close(chr);
}

void fake_chardev_open(Chardev *chr)
{
    chr->connected = true;
    if (chr->fd_event) {
        chr->fd_event(chr->opaque, CHR_EVENT_OPENED);
    }
}

void fake_chardev_close(Chardev *chr)
{
    if (!chr->connected) {
        return;
    }
    chr->connected = false;
    if (chr->fd_event) {
        chr->fd_event(chr->opaque, CHR_EVENT_CLOSED);
    }
}

bool fake_chardev_feed(Chardev *chr, const uint8_t *buf, size_t len)
{
    if (!chr->connected || !chr->fd_read) {
        return false;
    }
    /*
     * As the socket would: the frontend gets what it has room for; the
     * rest, had there been a socket, would wait in it. Here it is dropped.
     */
    while (len && chr->connected && chr->fd_read) {
        size_t n = chr->fd_can_read ? MIN(chr->fd_can_read(chr->opaque), len) : len;

        if (n == 0) {
            return false;
        }
        chr->fd_read(chr->opaque, buf, n);
        buf += n;
        len -= n;
    }
    return true;
}

GByteArray *fake_chardev_written(Chardev *chr)
{
    return chr->written;
}
