/*
 * Character devices on GIO sockets: unix and TCP, server or client, with
 * reconnect for clients. A frontend (device or export) sees a byte stream:
 * opened/closed events and read callbacks on the main loop, and writes that
 * are queued and never block.
 */
#ifndef CHARDEV_CHAR_H
#define CHARDEV_CHAR_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Chardev Chardev;

typedef enum ChrEvent {
    CHR_EVENT_OPENED,   /* a peer connected */
    CHR_EVENT_CLOSED,   /* the peer went away (or was disconnected) */
} ChrEvent;

typedef void ChrReadHandler(void *opaque, const uint8_t *buf, size_t len);
typedef void ChrEventHandler(void *opaque, ChrEvent event);
/*
 * How many bytes the frontend can take now. 0 stops reading from the peer:
 * what it sends waits in the kernel's socket buffers (and then in the
 * peer's own) until the frontend calls chr_fe_accept_input().
 */
typedef size_t ChrCanReadHandler(void *opaque);

/*
 * Largest amount of unsent output kept for a peer before it is dropped:
 * far above what a peer that reads has outstanding (a few 64 KiB bulk-in
 * answers), far below what would matter to the daemon's memory.
 */
#define CHR_MAX_OUTPUT_QUEUE (4 * 1024 * 1024)
/*
 * Backpressure on a peer that sends faster than it reads: while more than
 * the high-water mark of output waits for it, nothing more is read from it
 * (what it sends would mostly be answered, and the answers would only pile
 * up); reading resumes once the output is down to the low-water mark. The
 * cap above then bounds only output made without reading (a card's events,
 * answers to what was read before the pause).
 */
#define CHR_OUTPUT_HIGH_WATER (1024 * 1024)
#define CHR_OUTPUT_LOW_WATER (256 * 1024)

/* Create from "-chardev socket,id=...,..." options. */
Chardev *chardev_new_from_string(const char *optstr, GError **errp);
Chardev *chardev_find(const char *id);
/* A one-line description for logs: "unix:/path (server)". */
const char *chardev_describe(Chardev *chr);
void chardev_destroy_all(void);
const char *chardev_get_id(Chardev *chr);
/* Close and forget a chardev no frontend uses (QMP chardev-remove). */
bool chardev_remove(const char *id, GError **errp);
/* True if a chardev uses the -object with this id (its tls-creds= or tls-authz=). */
bool chardev_uses_object(const char *id);

/*
 * Servers with wait=on: run the main loop until each has a peer.
 * Called once, after all devices are realized.
 */
void chardev_wait_for_clients(void);

/*
 * A chardev has at most one frontend. Setting handlers to NULL detaches.
 * If a peer is already connected, an OPENED event is delivered from an idle
 * callback so the frontend sees the same sequence either way.
 */
bool chr_fe_claim(Chardev *chr, const char *owner, GError **errp);
void chr_fe_release(Chardev *chr);
void chr_fe_set_handlers(Chardev *chr, ChrReadHandler *fd_read,
                         ChrEventHandler *fd_event, void *opaque);
/*
 * What a client that connects while the peer is served hears before it is
 * closed: a refusal in the frontend's protocol (copied; len 0 for none).
 * Written once, best effort and without waiting, on plain sockets only: on
 * TLS it would take a handshake, and such a client is closed unheard.
 * chr_fe_release() forgets it.
 */
void chr_fe_set_busy_reply(Chardev *chr, const void *buf, size_t len);
/*
 * A frontend that can run out of room says so: can_read is asked before
 * each read (NULL: the frontend takes whatever comes). When it answered 0
 * and has room again, it calls chr_fe_accept_input(); reading resumes from
 * the main loop, never inside the caller. Detaching (NULL handlers) forgets it.
 */
void chr_fe_set_can_read(Chardev *chr, ChrCanReadHandler *can_read);
void chr_fe_accept_input(Chardev *chr);
/* Queue bytes for the peer. Returns false if no peer is connected. */
bool chr_fe_write(Chardev *chr, const void *buf, size_t len);
bool chr_fe_is_connected(Chardev *chr);
/*
 * The peer finished its protocol's hello: its deadline (handshake-timeout,
 * counted from the connection, TLS handshake included) no longer runs. A
 * peer that sends part of a hello and goes quiet is dropped at the deadline.
 */
void chr_fe_hello_done(Chardev *chr);
/* Drop the current peer (a server then accepts a new one). */
void chr_fe_disconnect(Chardev *chr);

#endif
