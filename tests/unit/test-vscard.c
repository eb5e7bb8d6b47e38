/*
 * Unit tests of the VSCard stream parser and builders (proto/vscard-stream.c).
 */
#include <string.h>

#include "proto/vscard.h"
#include "../support/test-cases.h"

typedef struct Event {
    bool is_error;
    VSCardStreamError err;
    uint32_t type;
    uint32_t reader_id;
    uint32_t length;
    GBytes *payload;          /* NULL when the callback had none */
    uint32_t init_version;
    uint32_t init_caps;
    uint32_t error_code;
} Event;

typedef struct Recorder {
    GArray *events;
    VSCardStream *stream;
    int reset_after;          /* reset the stream from the n-th callback (1-based), 0: never */
} Recorder;

static void record(Recorder *r, bool is_error, VSCardStreamError err, const VSCardMsg *msg)
{
    Event ev = {
        .is_error = is_error, .err = err, .type = msg->type,
        .reader_id = msg->reader_id, .length = msg->length,
        .payload = msg->payload ? g_bytes_new(msg->payload, msg->length) : NULL,
        .init_version = msg->u.init.version, .init_caps = msg->u.init.capabilities,
        .error_code = msg->u.error.code,
    };

    if (msg->type != VSC_Init) {
        ev.init_version = ev.init_caps = 0;
    }
    g_array_append_val(r->events, ev);
    if (r->reset_after && (int)r->events->len == r->reset_after) {
        vscard_stream_reset(r->stream);
    }
}

static void on_message(void *opaque, const VSCardMsg *msg)
{
    record(opaque, false, 0, msg);
}

static void on_error(void *opaque, VSCardStreamError err, const VSCardMsg *msg)
{
    record(opaque, true, err, msg);
}

static const VSCardStreamOps recorder_ops = {
    .message = on_message,
    .error = on_error,
};

static void event_clear(gpointer p)
{
    Event *ev = p;

    g_clear_pointer(&ev->payload, g_bytes_unref);
}

static Recorder *recorder_new(VSCardRole role)
{
    Recorder *r = g_new0(Recorder, 1);

    r->events = g_array_new(FALSE, TRUE, sizeof(Event));
    g_array_set_clear_func(r->events, event_clear);
    r->stream = vscard_stream_new(role, &recorder_ops, r);
    return r;
}

static void recorder_free(Recorder *r)
{
    vscard_stream_free(r->stream);
    g_array_unref(r->events);
    g_free(r);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Recorder, recorder_free)

static Event *ev_at(Recorder *r, guint i)
{
    g_assert_cmpuint(i, <, r->events->len);
    return &g_array_index(r->events, Event, i);
}

static void assert_payload(Event *ev, const void *data, size_t len)
{
    gsize got_len = 0;
    const void *got;

    g_assert_nonnull(ev->payload);
    got = g_bytes_get_data(ev->payload, &got_len);
    g_assert_cmpmem(got, got_len, data, len);
}

static const uint8_t apdu_answer[] = { 0x61, 0x10, 0x90, 0x00 };
static const uint8_t atr[] = { 0x3b, 0x8b, 0x80, 0x01, 0x00, 0x31, 0xc1, 0x64,
                               0x08, 0x60, 0x32, 0x00, 0x00, 0x90, 0x00 };

/* A client's usual opening: Init, ReaderAdd, ATR, an APDU answer. */
static GByteArray *client_opening(void)
{
    GByteArray *b = g_byte_array_new();

    vscard_build_init(b, 0, 0);
    vscard_build(b, VSC_ReaderAdd, VSCARD_UNDEFINED_READER_ID, "Test", 4);
    vscard_build(b, VSC_ATR, 0, atr, sizeof(atr));
    vscard_build(b, VSC_APDU, 0, apdu_answer, sizeof(apdu_answer));
    return b;
}

static void assert_client_opening(Recorder *r)
{
    g_assert_cmpuint(r->events->len, ==, 4);
    g_assert_false(ev_at(r, 0)->is_error);
    g_assert_cmpuint(ev_at(r, 0)->type, ==, VSC_Init);
    g_assert_cmpuint(ev_at(r, 0)->init_version, ==, VSCARD_VERSION);
    g_assert_cmpuint(ev_at(r, 1)->type, ==, VSC_ReaderAdd);
    g_assert_cmpuint(ev_at(r, 1)->reader_id, ==, VSCARD_UNDEFINED_READER_ID);
    assert_payload(ev_at(r, 1), "Test", 4);
    g_assert_cmpuint(ev_at(r, 2)->type, ==, VSC_ATR);
    assert_payload(ev_at(r, 2), atr, sizeof(atr));
    g_assert_cmpuint(ev_at(r, 3)->type, ==, VSC_APDU);
    assert_payload(ev_at(r, 3), apdu_answer, sizeof(apdu_answer));
    for (guint i = 0; i < 4; i++) {
        g_assert_false(ev_at(r, i)->is_error);
    }
}

static void test_build_wire_format(void)
{
    GByteArray *b = g_byte_array_new();
    static const uint8_t want_error[] = {
        0, 0, 0, 2,  0, 0, 0, 7,  0, 0, 0, 4,  0, 0, 0, 1 };
    static const uint8_t want_init[] = {
        0, 0, 0, 1,  0xff, 0xff, 0xff, 0xff,  0, 0, 0, 12,
        'V', 'S', 'C', 'D',  0, 0, 0, 2,  0x12, 0x34, 0x56, 0x78 };
    static const uint8_t want_apdu[] = {
        0, 0, 0, 7,  0, 0, 0, 0,  0, 0, 0, 2,  0x90, 0x00 };

    vscard_build_error(b, 7, VSC_GENERAL_ERROR);
    g_assert_cmpmem(b->data, b->len, want_error, sizeof(want_error));
    g_byte_array_set_size(b, 0);
    vscard_build_init(b, VSCARD_UNDEFINED_READER_ID, 0x12345678);
    g_assert_cmpmem(b->data, b->len, want_init, sizeof(want_init));
    g_byte_array_set_size(b, 0);
    vscard_build(b, VSC_APDU, 0, "\x90\x00", 2);
    g_assert_cmpmem(b->data, b->len, want_apdu, sizeof(want_apdu));
    g_byte_array_set_size(b, 0);
    vscard_build(b, VSC_CardRemove, 0, NULL, 0);
    g_assert_cmpuint(b->len, ==, VSCARD_HEADER_SIZE);
    g_byte_array_unref(b);
}

/* QEMU and libcacard's vscclient put the magic as raw bytes, the version big-endian. */
static void test_qemu_init_bytes(void)
{
    static const uint8_t qemu_init[] = {
        0, 0, 0, 1,  0xff, 0xff, 0xff, 0xff,  0, 0, 0, 12,
        'V', 'S', 'C', 'D',  0, 0, 0, 2,  0, 0, 0, 0 };
    g_autoptr(Recorder) r = recorder_new(VSCARD_ROLE_CLIENT);

    g_assert_true(vscard_stream_feed(r->stream, qemu_init, sizeof(qemu_init)));
    g_assert_cmpuint(r->events->len, ==, 1);
    g_assert_false(ev_at(r, 0)->is_error);
    g_assert_cmpuint(ev_at(r, 0)->reader_id, ==, VSCARD_UNDEFINED_READER_ID);
    g_assert_cmpuint(ev_at(r, 0)->init_version, ==, MAKE_VERSION(0, 0, 2));
}

static void test_many_in_one_read(void)
{
    g_autoptr(Recorder) r = recorder_new(VSCARD_ROLE_HOST);
    GByteArray *b = client_opening();

    g_assert_true(vscard_stream_feed(r->stream, b->data, b->len));
    assert_client_opening(r);
    g_assert_cmpuint(vscard_stream_pending(r->stream), ==, 0);
    g_byte_array_unref(b);
}

/* Every split point, and byte by byte: partial headers and split payloads. */
static void test_split_everywhere(void)
{
    GByteArray *b = client_opening();

    for (guint cut = 0; cut <= b->len; cut++) {
        g_autoptr(Recorder) r = recorder_new(VSCARD_ROLE_HOST);

        g_assert_true(vscard_stream_feed(r->stream, b->data, cut));
        g_assert_true(vscard_stream_feed(r->stream, b->data + cut, b->len - cut));
        assert_client_opening(r);
    }

    Recorder *r = recorder_new(VSCARD_ROLE_HOST);
    for (guint i = 0; i < b->len; i++) {
        g_assert_true(vscard_stream_feed(r->stream, b->data + i, 1));
    }
    assert_client_opening(r);
    recorder_free(r);
    g_byte_array_unref(b);
}

static void test_partial_header_pending(void)
{
    g_autoptr(Recorder) r = recorder_new(VSCARD_ROLE_HOST);
    GByteArray *b = g_byte_array_new();

    vscard_build(b, VSC_APDU, 0, apdu_answer, sizeof(apdu_answer));
    g_assert_true(vscard_stream_feed(r->stream, b->data, 5));
    g_assert_cmpuint(r->events->len, ==, 0);
    g_assert_cmpuint(vscard_stream_pending(r->stream), ==, 5);
    g_assert_true(vscard_stream_feed(r->stream, b->data + 5, 9));
    g_assert_cmpuint(r->events->len, ==, 0);
    g_assert_cmpuint(vscard_stream_pending(r->stream), ==, 14);
    g_assert_true(vscard_stream_feed(r->stream, b->data + 14, b->len - 14));
    g_assert_cmpuint(r->events->len, ==, 1);
    assert_payload(ev_at(r, 0), apdu_answer, sizeof(apdu_answer));
    g_assert_cmpuint(vscard_stream_pending(r->stream), ==, 0);
    g_byte_array_unref(b);
}

/* The largest legitimate messages both ways, split across reads. */
static void test_largest_apdus(void)
{
    struct { VSCardRole role; uint32_t len; } cases[] = {
        { VSCARD_ROLE_HOST, ISO7816_MAX_APDU_RESPONSE },
        { VSCARD_ROLE_CLIENT, ISO7816_MAX_APDU_COMMAND },
    };

    for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
        g_autoptr(Recorder) r = recorder_new(cases[c].role);
        g_autofree uint8_t *apdu = g_malloc(cases[c].len);
        GByteArray *b = g_byte_array_new();

        for (uint32_t i = 0; i < cases[c].len; i++) {
            apdu[i] = i * 7;
        }
        vscard_build(b, VSC_APDU, 0, apdu, cases[c].len);
        for (guint off = 0; off < b->len; off += 4096) {
            g_assert_true(vscard_stream_feed(r->stream, b->data + off, MIN(4096, b->len - off)));
        }
        g_assert_cmpuint(r->events->len, ==, 1);
        g_assert_false(ev_at(r, 0)->is_error);
        assert_payload(ev_at(r, 0), apdu, cases[c].len);
        g_byte_array_unref(b);
    }
}

/* A length beyond any real message: fatal at once, nothing allocated or read. */
static void test_length_lies_fatal(void)
{
    static const uint8_t huge[] = { 0, 0, 0, 7,  0, 0, 0, 0,  0xff, 0xff, 0xff, 0xf0 };
    g_autoptr(Recorder) r = recorder_new(VSCARD_ROLE_HOST);
    GByteArray *b = client_opening();

    g_assert_false(vscard_stream_feed(r->stream, huge, sizeof(huge)));
    g_assert_true(vscard_stream_is_dead(r->stream));
    g_assert_cmpuint(r->events->len, ==, 1);
    g_assert_true(ev_at(r, 0)->is_error);
    g_assert_cmpint(ev_at(r, 0)->err, ==, VSCARD_ERR_TOO_LONG);
    g_assert_true(vscard_error_is_fatal(ev_at(r, 0)->err));
    g_assert_cmpuint(ev_at(r, 0)->length, ==, 0xfffffff0);
    g_assert_null(ev_at(r, 0)->payload);
    g_assert_cmpuint(vscard_stream_pending(r->stream), ==, 0);

    /* Later bytes are ignored until a reset, then parsed afresh. */
    g_assert_false(vscard_stream_feed(r->stream, b->data, b->len));
    g_assert_cmpuint(r->events->len, ==, 1);
    vscard_stream_reset(r->stream);
    g_array_set_size(r->events, 0);
    g_assert_true(vscard_stream_feed(r->stream, b->data, b->len));
    assert_client_opening(r);
    g_byte_array_unref(b);
}

/* One byte over the cap is fatal; the cap itself is only wrong for the type. */
static void test_length_at_cap(void)
{
    g_autoptr(Recorder) r = recorder_new(VSCARD_ROLE_HOST);
    uint8_t hdr[VSCARD_HEADER_SIZE] = { 0, 0, 0, 7 };
    uint32_t too_long;
    g_autofree uint8_t *big = g_malloc0(VSCARD_MAX_PAYLOAD);
    GByteArray *b = g_byte_array_new();

    vscard_build(b, VSC_APDU, 0, big, VSCARD_MAX_PAYLOAD);
    vscard_build(b, VSC_CardRemove, 0, NULL, 0);
    g_assert_true(vscard_stream_feed(r->stream, b->data, b->len));
    g_assert_cmpuint(r->events->len, ==, 2);
    g_assert_true(ev_at(r, 0)->is_error);
    g_assert_cmpint(ev_at(r, 0)->err, ==, VSCARD_ERR_BAD_LENGTH);
    g_assert_false(ev_at(r, 1)->is_error);
    g_assert_cmpuint(ev_at(r, 1)->type, ==, VSC_CardRemove);

    too_long = GUINT32_TO_BE(VSCARD_MAX_PAYLOAD + 1);
    memcpy(hdr + 8, &too_long, 4);                  /* the length field */
    g_assert_false(vscard_stream_feed(r->stream, hdr, sizeof(hdr)));
    g_assert_cmpint(ev_at(r, 2)->err, ==, VSCARD_ERR_TOO_LONG);
    g_byte_array_unref(b);
}

/* Unknown types are skipped with their payload; the next message is intact. */
static void test_unknown_type(void)
{
    g_autoptr(Recorder) r = recorder_new(VSCARD_ROLE_HOST);
    GByteArray *b = g_byte_array_new();

    vscard_build(b, 0, 3, "abc", 3);
    vscard_build(b, 99, 4, NULL, 0);
    vscard_build(b, 0x7fffffff, 5, "0123456789", 10);
    vscard_build(b, VSC_APDU, 0, apdu_answer, sizeof(apdu_answer));
    g_assert_true(vscard_stream_feed(r->stream, b->data, b->len));
    g_assert_cmpuint(r->events->len, ==, 4);
    for (guint i = 0; i < 3; i++) {
        g_assert_true(ev_at(r, i)->is_error);
        g_assert_cmpint(ev_at(r, i)->err, ==, VSCARD_ERR_UNKNOWN_TYPE);
        g_assert_false(vscard_error_is_fatal(ev_at(r, i)->err));
        g_assert_cmpuint(ev_at(r, i)->reader_id, ==, 3 + i);
    }
    assert_payload(ev_at(r, 0), "abc", 3);
    g_assert_false(ev_at(r, 3)->is_error);
    assert_payload(ev_at(r, 3), apdu_answer, sizeof(apdu_answer));
    g_assert_false(vscard_stream_is_dead(r->stream));
    g_byte_array_unref(b);
}

static void test_unexpected_direction(void)
{
    g_autoptr(Recorder) host = recorder_new(VSCARD_ROLE_HOST);
    g_autoptr(Recorder) client = recorder_new(VSCARD_ROLE_CLIENT);
    GByteArray *b = g_byte_array_new();

    vscard_build(b, VSC_Flush, 0, NULL, 0);
    vscard_build(b, VSC_ATR, 0, atr, sizeof(atr));
    g_assert_true(vscard_stream_feed(host->stream, b->data, b->len));
    g_assert_true(vscard_stream_feed(client->stream, b->data, b->len));
    g_assert_cmpint(ev_at(host, 0)->err, ==, VSCARD_ERR_UNEXPECTED_TYPE);
    g_assert_true(ev_at(host, 0)->is_error);
    g_assert_false(ev_at(host, 1)->is_error);
    g_assert_false(ev_at(client, 0)->is_error);
    g_assert_cmpuint(ev_at(client, 0)->type, ==, VSC_Flush);
    g_assert_true(ev_at(client, 1)->is_error);
    g_assert_cmpint(ev_at(client, 1)->err, ==, VSCARD_ERR_UNEXPECTED_TYPE);
    g_byte_array_unref(b);
}

/* Sizes that cannot be right for the type: skipped in sync, never delivered. */
static void test_bad_lengths(void)
{
    static const uint8_t long_atr[ISO7816_MAX_ATR + 1] = { 0x3b };
    g_autoptr(Recorder) r = recorder_new(VSCARD_ROLE_HOST);
    GByteArray *b = g_byte_array_new();

    vscard_build(b, VSC_ATR, 0, long_atr, sizeof(long_atr));
    vscard_build(b, VSC_ATR, 0, "\x3b", 1);
    vscard_build(b, VSC_CardRemove, 0, "x", 1);
    vscard_build(b, VSC_ReaderRemove, 0, "xyz", 3);
    vscard_build(b, VSC_FlushComplete, 0, "x", 1);
    vscard_build(b, VSC_Error, 0, "\0\0\0", 3);
    vscard_build(b, VSC_Init, 0, "VSCD\0\0\0\2\0\0", 10);
    vscard_build(b, VSC_Init, 0, "VSCD", 4);
    vscard_build(b, VSC_APDU, 0, "\x90", 1);
    vscard_build(b, VSC_APDU, 0, NULL, 0);
    vscard_build(b, VSC_ATR, 0, long_atr, ISO7816_MAX_ATR);
    g_assert_true(vscard_stream_feed(r->stream, b->data, b->len));
    g_assert_cmpuint(r->events->len, ==, 11);
    for (guint i = 0; i < 10; i++) {
        g_assert_true(ev_at(r, i)->is_error);
        g_assert_cmpint(ev_at(r, i)->err, ==, VSCARD_ERR_BAD_LENGTH);
    }
    g_assert_false(ev_at(r, 10)->is_error);
    g_assert_cmpuint(ev_at(r, 10)->length, ==, ISO7816_MAX_ATR);
    g_byte_array_unref(b);

    /* A client must not be handed a command shorter than CLA INS P1 P2. */
    recorder_free(r);
    r = recorder_new(VSCARD_ROLE_CLIENT);
    b = g_byte_array_new();
    vscard_build(b, VSC_APDU, 0, "\x00\xa4\x04", 3);
    vscard_build(b, VSC_APDU, 0, "\x00\xa4\x04\x00", 4);
    g_assert_true(vscard_stream_feed(r->stream, b->data, b->len));
    g_assert_cmpint(ev_at(r, 0)->err, ==, VSCARD_ERR_BAD_LENGTH);
    g_assert_false(ev_at(r, 1)->is_error);
    g_byte_array_unref(b);
}

static void test_init_magic_and_version(void)
{
    struct {
        const char *payload;
        guint len;
        int err;              /* -1: accepted */
        uint32_t caps;
    } cases[] = {
        { "VSCD\x00\x00\x00\x02\x00\x00\x00\x05", 12, -1, 5 },
        { "VSCD\x00\x00\x00\x02", 8, -1, 0 },                        /* no capabilities */
        { "VSCD\x00\x00\x04\x00\x00\x00\x00\x01\x00\x00\x00\x02", 16, -1, 1 }, /* 0.1.0, two words */
        { "DCSV\x00\x00\x00\x02\x00\x00\x00\x00", 12, VSCARD_ERR_BAD_MAGIC, 0 }, /* byte-swapped */
        { "XXXX\x00\x00\x00\x02\x00\x00\x00\x00", 12, VSCARD_ERR_BAD_MAGIC, 0 },
        { "VSCD\x00\x40\x00\x00\x00\x00\x00\x00", 12, VSCARD_ERR_BAD_VERSION, 0 }, /* 1.0.0 */
        { "VSCD\x02\x00\x00\x00\x00\x00\x00\x00", 12, VSCARD_ERR_BAD_VERSION, 0 }, /* LE 2 */
    };

    for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
        g_autoptr(Recorder) r = recorder_new(VSCARD_ROLE_HOST);
        GByteArray *b = g_byte_array_new();
        bool ok;

        vscard_build(b, VSC_Init, 0, cases[c].payload, cases[c].len);
        vscard_build(b, VSC_ReaderAdd, 0, NULL, 0);
        ok = vscard_stream_feed(r->stream, b->data, b->len);
        if (cases[c].err < 0) {
            g_assert_true(ok);
            g_assert_cmpuint(r->events->len, ==, 2);
            g_assert_false(ev_at(r, 0)->is_error);
            g_assert_cmpuint(ev_at(r, 0)->init_caps, ==, cases[c].caps);
            g_assert_cmpuint(ev_at(r, 1)->type, ==, VSC_ReaderAdd);
        } else {
            /* Fatal: the ReaderAdd behind it is never parsed. */
            g_assert_false(ok);
            g_assert_cmpuint(r->events->len, ==, 1);
            g_assert_true(ev_at(r, 0)->is_error);
            g_assert_cmpint(ev_at(r, 0)->err, ==, cases[c].err);
            g_assert_true(vscard_error_is_fatal(ev_at(r, 0)->err));
            g_assert_true(vscard_stream_is_dead(r->stream));
        }
        g_byte_array_unref(b);
    }
}

static void test_error_code(void)
{
    g_autoptr(Recorder) r = recorder_new(VSCARD_ROLE_CLIENT);
    GByteArray *b = g_byte_array_new();

    vscard_build_error(b, 0, VSC_SUCCESS);
    vscard_build_error(b, VSCARD_UNDEFINED_READER_ID, VSC_CANNOT_ADD_MORE_READERS);
    g_assert_true(vscard_stream_feed(r->stream, b->data, b->len));
    g_assert_cmpuint(r->events->len, ==, 2);
    g_assert_cmpuint(ev_at(r, 0)->error_code, ==, VSC_SUCCESS);
    g_assert_cmpuint(ev_at(r, 0)->reader_id, ==, 0);
    g_assert_cmpuint(ev_at(r, 1)->error_code, ==, VSC_CANNOT_ADD_MORE_READERS);
    g_assert_cmpuint(ev_at(r, 1)->reader_id, ==, VSCARD_UNDEFINED_READER_ID);
    g_byte_array_unref(b);
}

/* A callback that drops the peer resets the stream: the rest of the read is discarded. */
static void test_reset_from_callback(void)
{
    g_autoptr(Recorder) r = recorder_new(VSCARD_ROLE_HOST);
    GByteArray *b = client_opening();

    r->reset_after = 2;
    g_assert_true(vscard_stream_feed(r->stream, b->data, b->len));
    g_assert_cmpuint(r->events->len, ==, 2);
    g_assert_cmpuint(vscard_stream_pending(r->stream), ==, 0);
    r->reset_after = 0;
    g_array_set_size(r->events, 0);
    g_assert_true(vscard_stream_feed(r->stream, b->data, b->len));
    assert_client_opening(r);

    /* A reset in the middle of a partial message forgets it. */
    g_array_set_size(r->events, 0);
    g_assert_true(vscard_stream_feed(r->stream, b->data, 30));
    g_assert_cmpuint(r->events->len, ==, 1);
    g_assert_cmpuint(vscard_stream_pending(r->stream), ==, 30 - 24);
    vscard_stream_reset(r->stream);
    g_assert_cmpuint(vscard_stream_pending(r->stream), ==, 0);
    g_array_set_size(r->events, 0);
    g_assert_true(vscard_stream_feed(r->stream, b->data, b->len));
    assert_client_opening(r);
    g_byte_array_unref(b);
}

static void test_names(void)
{
    g_assert_cmpstr(vscard_type_name(VSC_FlushComplete), ==, "FlushComplete");
    g_assert_cmpstr(vscard_type_name(42), ==, "unknown");
    g_assert_nonnull(strstr(vscard_error_str(VSCARD_ERR_BAD_MAGIC), "magic"));
}

static const TestCase cases[] = {
    { "/vscard/build/wire-format", test_build_wire_format },
    { "/vscard/stream/qemu-init", test_qemu_init_bytes },
    { "/vscard/stream/many-in-one-read", test_many_in_one_read },
    { "/vscard/stream/split-everywhere", test_split_everywhere },
    { "/vscard/stream/partial-header", test_partial_header_pending },
    { "/vscard/stream/largest-apdus", test_largest_apdus },
    { "/vscard/stream/length-lies", test_length_lies_fatal },
    { "/vscard/stream/length-at-cap", test_length_at_cap },
    { "/vscard/stream/unknown-type", test_unknown_type },
    { "/vscard/stream/unexpected-direction", test_unexpected_direction },
    { "/vscard/stream/bad-lengths", test_bad_lengths },
    { "/vscard/stream/init-magic-version", test_init_magic_and_version },
    { "/vscard/stream/error-code", test_error_code },
    { "/vscard/stream/reset-from-callback", test_reset_from_callback },
    { "/vscard/names", test_names },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_add_cases(cases);
    return g_test_run();
}
