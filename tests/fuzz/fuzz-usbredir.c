/*
 * libFuzzer target: the usbredir export with a usb-ccid reader and a test
 * card behind it, fed the byte stream a hostile usbredir peer could send.
 *
 * The chardev is fake-chardev.c (no socket). The input is a list of
 * records: an op byte, then for op 0 a 16-bit big-endian length and that
 * many stream bytes; other ops hold or release the card's answers, take the
 * card out or put it back, or drop the peer and let it come back.
 * gen-usbredir-seeds.c writes seeds in this format.
 */
#include "export/export.h"
#include "hw/qdev.h"
#include "fake-chardev.h"
#include "../support/ccid-test-card.h"

static void discard_log(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                        gpointer opaque)
{
}

static void setup_once(void)
{
    static bool done;

    if (!done) {
        /* Hostile input is expected to be logged; the logs are not the point here. */
        g_log_set_default_handler(discard_log, NULL);
        test_card_register();
        done = true;
    }
}

static void create_devices(void)
{
    GError *err = NULL;

    if (!device_create_from_string("usb-ccid,id=reader", &err) ||
        !device_create_from_string("ccid-card-test", &err) ||
        !export_create_from_string("usbredir,chardev=fake", &err)) {
        g_error("fuzz-usbredir setup: %s", err->message);
    }
}

static size_t run_op(Chardev *chr, const uint8_t *data, size_t size)
{
    TestCard *card = test_card_find();
    size_t len;

    switch (data[0] % 6) {
    case 0:
        len = size >= 3 ? MIN((size_t)(data[1] << 8 | data[2]), size - 3) : 0;
        fake_chardev_feed(chr, data + 3, len);
        return 3 + len;
    case 1:
        test_card_release_one(card);
        break;
    case 2:
        test_card_set_hold(card, true);
        break;
    case 3:
        /* The peer leaves and a new one comes. */
        fake_chardev_close(chr);
        fake_chardev_open(chr);
        break;
    case 4:
        test_card_remove(card);
        break;
    case 5:
        test_card_insert(card);
        break;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Chardev *chr;

    setup_once();
    create_devices();
    chr = chardev_find("fake");
    fake_chardev_open(chr);
    while (size) {
        size_t used = run_op(chr, data, size);

        data += MIN(used, size);
        size -= MIN(used, size);
    }
    /* A slow card answers at last, to whoever is there. */
    test_card_set_hold(test_card_find(), false);
    while (test_card_release_one(test_card_find())) {
    }
    fake_chardev_close(chr);
    export_destroy_all();
    device_destroy_all();
    g_byte_array_set_size(fake_chardev_written(chr), 0);
    return 0;
}
