/*
 * libFuzzer target: the usbredir export with a usb-ccid reader and a test
 * card behind it, fed the byte stream a hostile usbredir peer could send.
 *
 * The chardev is fake-chardev.c (no socket). The input is the script of
 * fuzz-export-script.h, the peer's bytes fed to the chardev.
 */
#include "export/export.h"
#include "hw/qdev.h"
#include "fake-chardev.h"
#include "fuzz-export-script.h"

static void create_devices(void)
{
    GError *err = NULL;

    if (!device_create_from_string("usb-ccid,id=reader", &err) ||
        !device_create_from_string("ccid-card-test", &err) ||
        !export_create_from_string("usbredir,chardev=fake", &err)) {
        g_error("fuzz-usbredir setup: %s", err->message);
    }
}

static void peer_send(void *chr, const uint8_t *data, size_t len)
{
    fake_chardev_feed(chr, data, len);
}

static void peer_replace(void *chr)
{
    fake_chardev_close(chr);
    fake_chardev_open(chr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzExportPeer peer = { .send = peer_send, .replace = peer_replace };
    Chardev *chr;

    fuzz_export_setup_once();
    create_devices();
    chr = chardev_find("fake");
    peer.opaque = chr;
    fake_chardev_open(chr);
    fuzz_export_play(&peer, data, size);
    fake_chardev_close(chr);
    export_destroy_all();
    device_destroy_all();
    g_byte_array_set_size(fake_chardev_written(chr), 0);
    return 0;
}
