/*
 * Test side of the socketless chardev in fake-chardev.c: the chardev named
 * "fake" is the only one there is.
 */
#ifndef TESTS_FAKE_CHARDEV_H
#define TESTS_FAKE_CHARDEV_H

#include "chardev/char.h"

void fake_chardev_open(Chardev *chr);
void fake_chardev_close(Chardev *chr);
/* Deliver bytes from the "peer"; false if nobody listens, it is closed or it has no room. */
bool fake_chardev_feed(Chardev *chr, const uint8_t *buf, size_t len);
GByteArray *fake_chardev_written(Chardev *chr);

#endif
