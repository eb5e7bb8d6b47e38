/*
 * usbreset: reset a USB device the way a driver recovering from an error
 * does (USBDEVFS_RESET: a port reset, then the kernel re-reads the
 * descriptors and restores the configuration), so the guest tests can check
 * that a reader survives it. Busybox has no such applet.
 *
 * usage: usbreset /dev/bus/usb/BBB/DDD
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/usbdevice_fs.h>

int main(int argc, char **argv)
{
    int fd;

    if (argc != 2) {
        fprintf(stderr, "usage: usbreset /dev/bus/usb/BBB/DDD\n");
        return 2;
    }
    fd = open(argv[1], O_WRONLY);
    if (fd < 0) {
        fprintf(stderr, "usbreset: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    if (ioctl(fd, USBDEVFS_RESET, 0) < 0) {
        fprintf(stderr, "usbreset: reset failed: %s\n", strerror(errno));
        close(fd);
        return 1;
    }
    close(fd);
    return 0;
}
