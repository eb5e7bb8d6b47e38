/*
 * libFuzzer target for the VSCard stream parser (proto/vscard-stream.c).
 *
 * Input layout: byte 0 picks the role and whether callbacks reset the
 * stream; byte 1 seeds the split of the rest into reads, so the fuzzer
 * explores partial headers and payloads split at every point.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/vscard.h"
#include "fuzz-input.h"

typedef struct FuzzState {
    VSCardStream *stream;
    VSCardRole role;
    bool reset_on_error;
    unsigned messages;
} FuzzState;

/* What the parser promises its owners; a broken promise is a crash. */
static void check_message(const VSCardMsg *msg, VSCardRole role)
{
    if (msg->length > VSCARD_MAX_PAYLOAD || (msg->length && !msg->payload)) {
        abort();
    }
    if (msg->type == VSC_ATR && (msg->length < ISO7816_MIN_ATR || msg->length > ISO7816_MAX_ATR)) {
        abort();
    }
    if (msg->type == VSC_APDU && role == VSCARD_ROLE_HOST &&
        msg->length > ISO7816_MAX_APDU_RESPONSE) {
        abort();
    }
    if (msg->type == VSC_Init && memcmp(msg->payload, VSCARD_MAGIC_BYTES, 4) != 0) {
        abort();
    }
}

static void on_message(void *opaque, const VSCardMsg *msg)
{
    FuzzState *fs = opaque;
    volatile uint8_t sink = 0;

    check_message(msg, fs->role);
    /* Touch every payload byte so ASan sees any out-of-bounds pointer. */
    for (uint32_t i = 0; i < msg->length; i++) {
        sink ^= msg->payload[i];
    }
    (void)sink;
    fs->messages++;
}

static void on_error(void *opaque, VSCardStreamError err, const VSCardMsg *msg)
{
    FuzzState *fs = opaque;

    if (!vscard_error_is_fatal(err) && msg->length && !msg->payload) {
        abort();
    }
    if (fs->reset_on_error) {
        vscard_stream_reset(fs->stream);
    }
}

static const VSCardStreamOps fuzz_ops = {
    .message = on_message,
    .error = on_error,
};

static void feed(void *opaque, const uint8_t *buf, size_t len)
{
    FuzzState *fs = opaque;

    vscard_stream_feed(fs->stream, buf, len);
    if (vscard_stream_is_dead(fs->stream) && vscard_stream_pending(fs->stream) != 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzState fs = { 0 };

    if (size < 2) {
        return 0;
    }
    fs.role = (data[0] & 1) ? VSCARD_ROLE_CLIENT : VSCARD_ROLE_HOST;
    fs.reset_on_error = data[0] & 2;
    fs.stream = vscard_stream_new(fs.role, &fuzz_ops, &fs);
    fuzz_feed_in_chunks(data[1], data + 2, size - 2, feed, &fs);
    vscard_stream_free(fs.stream);
    return 0;
}
