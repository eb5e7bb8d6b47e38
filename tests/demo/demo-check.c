/*
 * demo-check: the usbredir host that proves README's first command works.
 * It connects to the socket scripts/run-demo.sh serves, as QEMU's usb-redir
 * would, and checks that the device is a CCID reader holding a card that
 * answers: the ids, the CCID interface, an ATR, and the CAC applet's SELECT.
 *
 * usage: demo-check SOCKET     (exit 0 and one line of what it saw)
 * Any failed check aborts with the assertion that failed.
 */
#include "ccid-host.h"

#include <stdio.h>

static const uint8_t select_cac_pki0[] = {
    0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00,
};

int main(int argc, char **argv)
{
    g_autoptr(GByteArray) atr = NULL;
    g_autoptr(GByteArray) answer = NULL;
    g_autoptr(GString) atr_hex = g_string_new(NULL);
    const struct usb_redir_device_connect_header *dev;
    CcidHost *c;
    uint16_t sw;

    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
        return 2;
    }
    c = ccid_host_open(argv[1]);
    dev = urh_device_info(c->usb);
    g_assert_nonnull(dev);
    g_assert_cmphex(dev->vendor_id, ==, 0x08e6);
    g_assert_cmphex(dev->product_id, ==, 0x4433);
    g_assert_cmpuint(urh_interface_info(c->usb)->interface_count, ==, 1);
    g_assert_cmphex(urh_interface_info(c->usb)->interface_class[0], ==, 0x0b);

    atr = ccid_power_on(c);
    g_assert_cmpuint(atr->len, >=, 2);
    g_assert_cmphex(atr->data[0], ==, 0x3b);   /* direct convention TS */
    answer = ccid_transmit(c, select_cac_pki0, sizeof(select_cac_pki0));
    sw = apdu_sw(answer);
    /* The CAC PKI applet is there: 9000, or 61xx with its FCI to fetch. */
    g_assert_true(sw == 0x9000 || (sw >> 8) == 0x61);

    for (guint i = 0; i < atr->len; i++) {
        g_string_append_printf(atr_hex, "%02X", atr->data[i]);
    }
    printf("demo-check: reader %04x:%04x with a CCID interface; card ATR %s; "
           "CAC applet SELECT answered %04X\n", dev->vendor_id, dev->product_id,
           atr_hex->str, sw);
    ccid_host_free(c);
    return 0;
}
