/*
 * The script the export fuzzers (fuzz-usbredir.c, fuzz-usbip-export.c) play
 * against an export with a usb-ccid reader and the test card behind it: a
 * list of records, an op byte, then for op 0 a 16-bit big-endian length and
 * that many bytes the peer sends; the other ops release one held answer,
 * hold the card's answers, drop the peer for a new one, take the card out
 * or put it back. gen-usbredir-seeds.c writes seeds in this format.
 */
#ifndef TESTS_FUZZ_EXPORT_SCRIPT_H
#define TESTS_FUZZ_EXPORT_SCRIPT_H

#include "../support/ccid-test-card.h"

/* How a fuzzer's peer reaches its export. */
typedef struct FuzzExportPeer {
    void (*send)(void *opaque, const uint8_t *data, size_t len);
    /* The peer leaves and a new one comes. */
    void (*replace)(void *opaque);
    /* After each op but a send: let the export act on it (may be NULL). */
    void (*settle)(void *opaque);
    void *opaque;
} FuzzExportPeer;

static void fuzz_export_discard_log(const gchar *domain, GLogLevelFlags level,
                                    const gchar *msg, gpointer opaque)
{
}

/*
 * What every run needs but a process does only once: the test card's type,
 * and quiet logs (hostile input is expected to be logged; the logs are not
 * the point here). True the first time it is called.
 */
static inline bool fuzz_export_setup_once(void)
{
    static bool done;

    if (done) {
        return false;
    }
    g_log_set_default_handler(fuzz_export_discard_log, NULL);
    test_card_register();
    done = true;
    return true;
}

/* Play the record at data; returns the bytes it took. */
static inline size_t fuzz_export_op(const FuzzExportPeer *peer, const uint8_t *data, size_t size)
{
    TestCard *card = test_card_find();
    size_t len;

    switch (data[0] % 6) {
    case 0:
        len = size >= 3 ? MIN((size_t)(data[1] << 8 | data[2]), size - 3) : 0;
        peer->send(peer->opaque, data + 3, len);
        return 3 + len;
    case 1:
        test_card_release_one(card);
        break;
    case 2:
        test_card_set_hold(card, true);
        break;
    case 3:
        peer->replace(peer->opaque);
        break;
    case 4:
        test_card_remove(card);
        break;
    case 5:
        test_card_insert(card);
        break;
    }
    if (peer->settle) {
        peer->settle(peer->opaque);
    }
    return 1;
}

/* Play the whole script; then a slow card answers at last, to whoever is there. */
static inline void fuzz_export_play(const FuzzExportPeer *peer, const uint8_t *data, size_t size)
{
    while (size) {
        size_t used = fuzz_export_op(peer, data, size);

        data += MIN(used, size);
        size -= MIN(used, size);
    }
    test_card_set_hold(test_card_find(), false);
    while (test_card_release_one(test_card_find())) {
    }
    if (peer->settle) {
        peer->settle(peer->opaque);
    }
}

#endif
