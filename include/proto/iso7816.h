/*
 * Sizes ISO/IEC 7816 fixes for what a card exchanges, whichever layer
 * carries it: the CCID reader (hw/usb), the VSCard protocol (proto) and the
 * cards. Defined here once; every layer includes this.
 */
#ifndef PROTO_ISO7816_H
#define PROTO_ISO7816_H

/* ISO 7816-3: an ATR is TS and T0 at least, 33 bytes at most. */
#define ISO7816_MIN_ATR 2u
#define ISO7816_MAX_ATR 33u

/* ISO 7816-4: a command has CLA INS P1 P2; an answer at least SW1 SW2. */
#define ISO7816_MIN_APDU_COMMAND 4u
#define ISO7816_MIN_APDU_RESPONSE 2u
/* Largest command APDU: extended Lc, 65,535 data bytes, extended Le. */
#define ISO7816_MAX_APDU_COMMAND (4u + 3u + 65535u + 3u)
/* Largest answer: 65,536 data bytes plus SW1 SW2. */
#define ISO7816_MAX_APDU_RESPONSE (65536u + 2u)

#endif
