/*
 * libFuzzer target for the USB/IP stream parser (proto/usbip.c).
 *
 * Input layout: byte 0 picks the role, whether an import switches the
 * server to URBs, and which seqnums a client claims as IN; byte 1 seeds the
 * split of the rest into reads, so partial headers and payloads are cut at
 * every point. The callbacks check what the parser promises its owner and
 * touch every byte it hands out, so ASan sees a wrong length.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/usbip.h"
#include "fuzz-input.h"

typedef struct FuzzState {
    UsbipStream *stream;
    UsbipRole role;
    bool start_urbs;
    uint8_t in_mask;
    volatile uint8_t sink;
} FuzzState;

static void touch(FuzzState *fs, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        fs->sink ^= p[i];
    }
}

static void on_req_devlist(void *o)
{
}

static void on_req_import(void *o, const char *busid)
{
    FuzzState *fs = o;

    if (strlen(busid) >= USBIP_BUSID_SIZE) {
        abort();
    }
    if (fs->start_urbs) {
        usbip_stream_start_urbs(fs->stream);
    }
}

static void on_cmd_submit(void *o, const UsbipSubmit *cmd, const uint8_t *data)
{
    FuzzState *fs = o;

    if (cmd->transfer_buffer_length > USBIP_MAX_TRANSFER_LENGTH || cmd->h.ep > 15 ||
        cmd->h.direction > USBIP_DIR_IN || (cmd->h.direction == USBIP_DIR_OUT) != !!data) {
        abort();
    }
    if (data) {
        touch(fs, data, cmd->transfer_buffer_length);
    }
}

static void on_cmd_unlink(void *o, const UsbipHeader *h, uint32_t unlink_seqnum)
{
}

static void on_rep_devlist(void *o, uint32_t status, const UsbipDevice *devs, uint32_t ndev)
{
    FuzzState *fs = o;

    if (ndev > USBIP_MAX_DEVICES) {
        abort();
    }
    for (uint32_t i = 0; i < ndev; i++) {
        if (strlen(devs[i].busid) >= USBIP_BUSID_SIZE || strlen(devs[i].path) >= USBIP_PATH_SIZE) {
            abort();
        }
        touch(fs, (const uint8_t *)devs[i].interfaces,
              devs[i].bNumInterfaces * sizeof(UsbipInterface));
    }
}

static void on_rep_import(void *o, uint32_t status, const UsbipDevice *dev)
{
    if ((status == USBIP_ST_OK) != (dev != NULL)) {
        abort();
    }
}

static int on_submit_direction(void *o, uint32_t seqnum)
{
    FuzzState *fs = o;

    if (seqnum >= 8) {
        return -1;
    }
    return (fs->in_mask >> seqnum) & 1 ? USBIP_DIR_IN : USBIP_DIR_OUT;
}

static void on_ret_submit(void *o, const UsbipRetSubmit *ret, const uint8_t *data)
{
    FuzzState *fs = o;

    if (ret->actual_length > USBIP_MAX_TRANSFER_LENGTH) {
        abort();
    }
    if (data) {
        touch(fs, data, ret->actual_length);
    }
}

static void on_ret_unlink(void *o, const UsbipHeader *h, int32_t status)
{
}

static void on_error(void *o, UsbipError err, const char *detail)
{
    if (!detail || !usbip_error_str(err)) {
        abort();
    }
}

static const UsbipServerOps fuzz_server_ops = {
    .req_devlist = on_req_devlist,
    .req_import = on_req_import,
    .cmd_submit = on_cmd_submit,
    .cmd_unlink = on_cmd_unlink,
};

static const UsbipClientOps fuzz_client_ops = {
    .rep_devlist = on_rep_devlist,
    .rep_import = on_rep_import,
    .submit_direction = on_submit_direction,
    .ret_submit = on_ret_submit,
    .ret_unlink = on_ret_unlink,
};

static void feed(void *opaque, const uint8_t *buf, size_t len)
{
    FuzzState *fs = opaque;

    usbip_stream_feed(fs->stream, buf, len);
    /* A message is never held beyond its largest legal size. */
    if (usbip_stream_pending(fs->stream) >
        USBIP_OP_HEADER_SIZE + 4 + USBIP_MAX_DEVICES * (USBIP_DEVICE_SIZE + 255 * 4) +
        USBIP_MAX_TRANSFER_LENGTH) {
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
    fs.role = (data[0] & 1) ? USBIP_ROLE_CLIENT : USBIP_ROLE_SERVER;
    fs.start_urbs = !(data[0] & 2);
    fs.in_mask = data[0] >> 2 | 1;
    fs.stream = fs.role == USBIP_ROLE_SERVER ?
                usbip_server_stream_new(&fuzz_server_ops, on_error, &fs) :
                usbip_client_stream_new(&fuzz_client_ops, on_error, &fs);
    fuzz_feed_in_chunks(data[1], data + 2, size - 2, feed, &fs);
    usbip_stream_free(fs.stream);
    return 0;
}
