/*
 * main() of each test-usb-ccid-*.c binary: the file's tests register
 * themselves where they are written (USB_CCID_TEST, usb-ccid-common.h).
 */
#include "usb-ccid-common.h"

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    usb_ccid_add_queued_tests();
    return g_test_run();
}
