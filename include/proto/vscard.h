/*
 * The VSCard protocol (libcacard's cacard/vscard_common.h): a stream of
 * messages between a host that lends a virtual reader to a guest
 * (ccid-card-passthru) and a client that owns the card (vscclient).
 *
 * Every message is a 12-byte header (type, reader_id, length, each a
 * big-endian uint32) followed by `length` payload bytes. Multi-byte payload
 * fields (Init version and capabilities, Error code) are big-endian too; the
 * Init magic is the four bytes "VSCD" as they stand, which is what both
 * QEMU and libcacard put on the wire.
 *
 * This file is pure: the stream parser takes bytes and calls back with
 * whole, checked messages; the builders append messages to a GByteArray the
 * caller writes out. Neither owns a socket.
 */
#ifndef PROTO_VSCARD_H
#define PROTO_VSCARD_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include <cacard/vscard_common.h>

#include "proto/iso7816.h"

#define VSCARD_HEADER_SIZE 12u
#define VSCARD_INIT_MIN_SIZE 8u       /* magic + version; capabilities may follow */
#define VSCARD_ERROR_SIZE 4u
/*
 * The largest payload any legitimate message carries (an extended command
 * APDU). A header announcing more is a lie the stream cannot recover from:
 * skipping it would mean trusting the same length.
 */
#define VSCARD_MAX_PAYLOAD ISO7816_MAX_APDU_COMMAND

/* The magic as it appears on the wire. */
#define VSCARD_MAGIC_BYTES "VSCD"
#define VSCARD_VERSION_MAJOR(v) ((v) >> (VERSION_MINOR_BITS + VERSION_MIDDLE_BITS))

/* Which end of the connection we are: decides which messages may arrive. */
typedef enum VSCardRole {
    VSCARD_ROLE_HOST,     /* ccid-card-passthru: receives from a client */
    VSCARD_ROLE_CLIENT,   /* vscclient: receives from a host */
} VSCardRole;

/* A received message. Payload points into parser or caller memory: copy it to keep it. */
typedef struct VSCardMsg {
    uint32_t type;                /* VSCMsgType, or anything for errors */
    uint32_t reader_id;
    uint32_t length;
    const uint8_t *payload;       /* NULL when length is 0 or the payload was not read */
    union {
        struct {
            uint32_t version;
            uint32_t capabilities;   /* first word; later words are ignored */
        } init;
        struct {
            uint32_t code;           /* VSCErrorCode */
        } error;
    } u;
} VSCardMsg;

typedef enum VSCardStreamError {
    /* In sync: the message was skipped whole; answer VSC_Error and go on. */
    VSCARD_ERR_UNKNOWN_TYPE,      /* not a VSCMsgType */
    VSCARD_ERR_UNEXPECTED_TYPE,   /* a known type that never travels this way */
    VSCARD_ERR_BAD_LENGTH,        /* payload size wrong for the type */
    /* Fatal: the parser stops; answer VSC_Error and disconnect. */
    VSCARD_ERR_TOO_LONG,          /* length > VSCARD_MAX_PAYLOAD */
    VSCARD_ERR_BAD_MAGIC,         /* Init without "VSCD": not a VSCard peer */
    VSCARD_ERR_BAD_VERSION,       /* Init with another major version */
} VSCardStreamError;

typedef struct VSCardStreamOps {
    void (*message)(void *opaque, const VSCardMsg *msg);
    /* msg holds the header; payload only for the in-sync errors. */
    void (*error)(void *opaque, VSCardStreamError err, const VSCardMsg *msg);
} VSCardStreamOps;

typedef struct VSCardStream VSCardStream;

VSCardStream *vscard_stream_new(VSCardRole role, const VSCardStreamOps *ops, void *opaque);
void vscard_stream_free(VSCardStream *s);
/*
 * Feed bytes as they arrive, in pieces of any size. Callbacks run from
 * within this call. Returns false once the stream hit a fatal error; later
 * bytes are ignored until vscard_stream_reset(). A callback may call
 * vscard_stream_reset() (e.g. because it dropped the peer): the rest of the
 * current buffer is then discarded.
 */
bool vscard_stream_feed(VSCardStream *s, const uint8_t *buf, size_t len);
/* Forget any partial message and a fatal state: a new peer starts clean. */
void vscard_stream_reset(VSCardStream *s);
bool vscard_stream_is_dead(const VSCardStream *s);
/* Bytes of an incomplete message held so far (for tests and debugging). */
size_t vscard_stream_pending(const VSCardStream *s);

bool vscard_error_is_fatal(VSCardStreamError err);
const char *vscard_error_str(VSCardStreamError err);
const char *vscard_type_name(uint32_t type);

/* Builders: append one whole message, header and payload, in wire order. */
void vscard_build(GByteArray *out, VSCMsgType type, uint32_t reader_id,
                  const void *payload, uint32_t len);
void vscard_build_init(GByteArray *out, uint32_t reader_id, uint32_t capabilities);
void vscard_build_error(GByteArray *out, uint32_t reader_id, VSCErrorCode code);

#endif
