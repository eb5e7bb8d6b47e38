/*
 * usb-ccid qtests: bulk and interrupt transfers: messages split into
 * packets, commands pipelined or flooding the reader, bulk-in requests
 * pending, cancelled or cut by a bus reset, and NotifySlotChange.
 */
#include "usb-ccid-common.h"

/* A message sent in 64-byte packets, as UHCI and EHCI hosts send. */
static void test_packetwise_bulk_out(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint16_t mps = c->bulk_out_mps;
    g_byte_array_unref(ccid_power_on(c));
    /* 128 bytes exactly (ends on a full packet) and 150 (ends short). */
    static const size_t totals[] = { 128, 150, 64 };

    select_pki(c, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(totals); i++) {
        g_autoptr(GByteArray) apdu = sign_piece_apdu(totals[i] - CCID_HDR);
        g_autofree uint8_t *msg = g_malloc(totals[i]);
        uint8_t seq = ccid_build(c, msg, PC_to_RDR_XfrBlock, 0, apdu->len, 0, 0, 0);
        g_autoptr(CcidAnswer) a = NULL;

        memcpy(msg + CCID_HDR, apdu->data, apdu->len);
        for (size_t off = 0; off < totals[i]; off += mps) {
            ccid_send_raw(c, msg + off, MIN(mps, totals[i] - off));
        }
        /* Hosts may end a transfer that fills its last packet with a ZLP. */
        if (totals[i] % mps == 0 && i == 0) {
            ccid_send_raw(c, NULL, 0);
        }
        a = ccid_read_answer(c, URH_TIMEOUT_MS);
        ccid_check_answer(a, RDR_to_PC_DataBlock, 0, seq);
        assert_ok(a);
        g_assert_cmpuint(a->dwLength, ==, 2);
        g_assert_cmphex(a->data[0] << 8 | a->data[1], ==, 0x9000);
    }
    assert_no_more_answers(c);
}
USB_CCID_TEST("bulk/packetwise-out", test_packetwise_bulk_out)

static void test_pipelined_commands(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t seqs[8], types[8];
    g_byte_array_unref(ccid_power_on(c));

    /* Eight commands sent back to back, then eight answers read, in order. */
    for (int i = 0; i < 8; i++) {
        uint8_t msg[CCID_HDR + sizeof(select_pki0)];
        bool xfr = i % 2;

        types[i] = xfr ? PC_to_RDR_XfrBlock : PC_to_RDR_GetSlotStatus;
        seqs[i] = ccid_build(c, msg, types[i], 0, xfr ? sizeof(select_pki0) : 0, 0, 0, 0);
        memcpy(msg + CCID_HDR, select_pki0, sizeof(select_pki0));
        ccid_send_raw(c, msg, CCID_HDR + (xfr ? sizeof(select_pki0) : 0));
    }
    for (int i = 0; i < 8; i++) {
        g_autoptr(CcidAnswer) a = ccid_read_answer(c, URH_TIMEOUT_MS);

        ccid_check_answer(a, types[i] == PC_to_RDR_XfrBlock ? RDR_to_PC_DataBlock :
                          RDR_to_PC_SlotStatus, 0, seqs[i]);
        assert_ok(a);
    }
    assert_no_more_answers(c);
}
USB_CCID_TEST("bulk/pipelined", test_pipelined_commands)

/* Each of the n transfers completed exactly once; release them. */
static void release_completed_once(CcidHost *c, UrhTransfer **t, int n)
{
    for (int i = 0; i < n; i++) {
        g_assert_cmpuint(t[i]->completions, ==, 1);
        urh_transfer_release(c->usb, t[i]);
    }
}

static void test_pending_bulk_in(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    UrhTransfer *t[3];
    uint8_t seqs[3];
    g_byte_array_unref(ccid_power_on(c));

    /* Bulk-in requests posted before any command stay pending, not failed. */
    for (int i = 0; i < 3; i++) {
        t[i] = urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size);
    }
    urh_idle(c->usb, 100);
    for (int i = 0; i < 3; i++) {
        g_assert_false(t[i]->done);
    }
    /* Each command completes the oldest request with its own answer. */
    for (int i = 0; i < 3; i++) {
        seqs[i] = ccid_send_xfr_block(c, select_pki0, sizeof(select_pki0));
        g_assert_true(urh_wait(c->usb, t[i], URH_TIMEOUT_MS));
        g_assert_cmpuint(t[i]->status, ==, usb_redir_success);
        g_assert_cmpuint(t[i]->data->len, >=, CCID_HDR);
        g_assert_cmphex(t[i]->data->data[0], ==, RDR_to_PC_DataBlock);
        g_assert_cmpuint(t[i]->data->data[6], ==, seqs[i]);
        g_assert_cmpuint(t[i]->data->len, ==, CCID_HDR + le32(t[i]->data->data + 1));
        for (int j = i + 1; j < 3; j++) {
            g_assert_false(t[j]->done);
        }
    }
    release_completed_once(c, t, 3);
    assert_no_more_answers(c);
}
USB_CCID_TEST("bulk/pending-in", test_pending_bulk_in)

static void test_cancel_bulk_in(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    UrhTransfer *t = urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size);

    urh_idle(c->usb, 50);
    g_assert_false(t->done);
    urh_cancel(c->usb, t);
    g_assert_true(urh_wait(c->usb, t, URH_TIMEOUT_MS));
    g_assert_cmpuint(t->status, ==, usb_redir_cancelled);
    urh_transfer_release(c->usb, t);
    /* The next answer goes to the next request, not to the cancelled one. */
    assert_slot_works(c);
    assert_no_more_answers(c);
}
USB_CCID_TEST("bulk/cancel-in", test_cancel_bulk_in)

/*
 * A host that sends far more commands than the reader queues before reading
 * any answer: the reader may hold bulk-out packets (flow control) but must
 * answer every command, once, in order.
 */
static void test_flood(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    enum { N = 100 };
    UrhTransfer *outs[N];
    uint8_t seqs[N];
    g_byte_array_unref(ccid_power_on(c));

    for (int i = 0; i < N; i++) {
        uint8_t msg[CCID_HDR + sizeof(select_pki0)];
        bool xfr = i % 3 != 0;

        seqs[i] = ccid_build(c, msg, xfr ? PC_to_RDR_XfrBlock : PC_to_RDR_GetSlotStatus, 0,
                             xfr ? sizeof(select_pki0) : 0, 0, 0, 0);
        memcpy(msg + CCID_HDR, select_pki0, sizeof(select_pki0));
        outs[i] = urh_bulk_submit(c->usb, c->ep_bulk_out, msg,
                                  xfr ? sizeof(msg) : CCID_HDR);
    }
    for (int i = 0; i < N; i++) {
        g_autoptr(CcidAnswer) a = ccid_read_answer(c, URH_TIMEOUT_MS);

        ccid_check_answer(a, i % 3 ? RDR_to_PC_DataBlock : RDR_to_PC_SlotStatus, 0, seqs[i]);
        assert_ok(a);
    }
    for (int i = 0; i < N; i++) {
        g_assert_true(urh_wait(c->usb, outs[i], URH_TIMEOUT_MS));
        g_assert_cmpuint(outs[i]->status, ==, usb_redir_success);
    }
    release_completed_once(c, outs, N);
    assert_no_more_answers(c);
}
USB_CCID_TEST("bulk/flood", test_flood)

/* A bus reset while a bulk-in waits for the answer to an APDU. */
static void test_reset_pending_bulk_in(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    uint8_t msg[CCID_HDR + sizeof(select_pki0)];
    UrhTransfer *t;
    uint8_t cfg;
    g_byte_array_unref(ccid_power_on(c));

    /* Three APDUs and a GetSlotStatus queued, the first answer awaited. */
    for (int i = 0; i < 4; i++) {
        bool xfr = i < 3;

        ccid_build(c, msg, xfr ? PC_to_RDR_XfrBlock : PC_to_RDR_GetSlotStatus, 0,
                   xfr ? sizeof(select_pki0) : 0, 0, 0, 0);
        memcpy(msg + CCID_HDR, select_pki0, sizeof(select_pki0));
        ccid_send_raw(c, msg, xfr ? sizeof(msg) : CCID_HDR);
    }
    t = urh_bulk_submit(c->usb, c->ep_bulk_in, NULL, c->bulk_in_size);
    urh_reset(c->usb);
    /* As QEMU does on reset: cancel what is in flight. */
    urh_cancel(c->usb, t);
    g_assert_true(urh_wait(c->usb, t, URH_TIMEOUT_MS));
    g_assert_cmpuint(t->completions, ==, 1);
    urh_transfer_release(c->usb, t);

    /* After a reset the host configures the device again. */
    g_assert_true(urh_device_connected(c->usb));
    g_assert_cmpint(urh_set_configuration(c->usb, 1, &cfg), ==, usb_redir_success);
    c->seq = 0x40;
    /* Nothing from before the reset may come out now. */
    g_autoptr(GByteArray) atr2 = ccid_power_on(c);
    check_atr(atr2);
    assert_apdus_work(c);
    assert_no_more_answers(c);
}
USB_CCID_TEST("bulk/reset-pending-in", test_reset_pending_bulk_in)

static void test_notify_slot_change(Fixture *f, gconstpointer data)
{
    CcidHost *c = f->c;
    g_autoptr(GByteArray) n = NULL;

    g_assert_cmpint(urh_start_interrupt_receiving(c->usb, c->ep_int_in), ==,
                    usb_redir_success);
    /* The card is in the slot: the reader reports it. */
    n = urh_wait_interrupt(c->usb, c->ep_int_in, URH_TIMEOUT_MS);
    if (!n) {
        g_error("no NotifySlotChange within %d ms of starting interrupt-in", URH_TIMEOUT_MS);
    }
    check_notify(c, n, true);
    /* Powering the card does not change the slot. */
    g_byte_array_unref(ccid_power_on(c));
    urh_idle(c->usb, 200);
    g_assert_cmpuint(urh_interrupt_pending(c->usb), ==, 0);
    g_assert_cmpint(urh_stop_interrupt_receiving(c->usb, c->ep_int_in), ==,
                    usb_redir_success);
}
USB_CCID_TEST("interrupt/notify-slot-change", test_notify_slot_change)
