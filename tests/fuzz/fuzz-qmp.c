/*
 * libFuzzer target: a QMP monitor fed the bytes a hostile client could
 * send, with a usb-ccid reader and a test card to act on. The monitor sits
 * on fake-chardev.c; its first input byte picks where the stream is cut
 * into reads, the rest is the stream. Each run starts from the same state:
 * the client connects (greeting), negotiates when the stream does, and
 * whatever its commands created is taken down afterwards.
 */
#include "export/export.h"
#include "hw/qdev.h"
#include "monitor/monitor.h"
#include "qom/object.h"
#include "fake-chardev.h"
#include "../support/ccid-test-card.h"

static void discard_log(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                        gpointer opaque)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool registered;
    GError *err = NULL;
    Chardev *chr;
    size_t chunk;

    if (!registered) {
        g_log_set_default_handler(discard_log, NULL);
        test_card_register();
        registered = true;
    }
    if (size == 0) {
        return 0;
    }
    chunk = 1 + data[0] % 64;
    data++;
    size--;
    chr = chardev_find("fake");
    if (!device_create_from_string("usb-ccid,id=reader", &err) ||
        !device_create_from_string("ccid-card-test,id=card", &err) ||
        !monitor_new(chr, &err)) {
        g_error("fuzz-qmp setup: %s", err->message);
    }
    fake_chardev_open(chr);
    while (size) {
        size_t n = MIN(chunk, size);

        fake_chardev_feed(chr, data, n);
        data += n;
        size -= n;
    }
    fake_chardev_close(chr);
    monitor_destroy_all();
    export_destroy_all();
    device_destroy_all();
    object_destroy_all();
    /* quit schedules the shutdown from the main loop: let it run, then forget it. */
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    g_byte_array_set_size(fake_chardev_written(chr), 0);
    return 0;
}
