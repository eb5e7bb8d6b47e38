/*
 * The ccid-bus: how card devices (ccid-card-emulated, ccid-card-passthru)
 * plug into a usb-ccid reader. The reader knows nothing of how a card is
 * implemented; a card knows nothing of USB.
 *
 * Threading: everything here runs on the main loop. A card that computes
 * answers elsewhere hands them back to the main loop before calling in.
 */
#ifndef HW_USB_CCID_H
#define HW_USB_CCID_H

#include "hw/qdev.h"
#include "proto/iso7816.h"

#define TYPE_CCID_BUS "ccid-bus"
/* The abstract kind of every card device (DeviceClass.parent_type). */
#define TYPE_CCID_CARD "ccid-card"

typedef struct CCIDCardState CCIDCardState;

typedef struct CCIDCardClass {
    DeviceClass parent_class;
    /* The card's ATR, or NULL with *len = 0 if it has none yet. */
    const uint8_t *(*get_atr)(CCIDCardState *card, uint32_t *len);
    /*
     * The guest sends a command APDU. The card answers exactly once, later
     * or from within this call, with ccid_card_send_apdu_to_guest() or
     * ccid_card_apdu_failed().
     */
    void (*apdu_from_guest)(CCIDCardState *card, const uint8_t *apdu, uint32_t len);
    /* The guest powered the card off or reset the reader. Optional. */
    void (*power_off)(CCIDCardState *card);
} CCIDCardClass;

/*
 * The DeviceClass part every card class has alike: it is a ccid-card, plugs
 * into a ccid-bus and may be created with -device. A card names the rest.
 */
#define CCID_CARD_DEVICE_CLASS(_name, _desc, _state, _props, _realize, _unrealize) { \
        .name = (_name), .parent_type = TYPE_CCID_CARD, .desc = (_desc), \
        .instance_size = sizeof(_state), .bus_type = TYPE_CCID_BUS, .props = (_props), \
        .user_creatable = true, .realize = (_realize), .unrealize = (_unrealize), \
    }

#define CCID_CARD(obj) DEVICE_CHECK(CCIDCardState, (obj), TYPE_CCID_CARD)
#define CCID_CARD_GET_CLASS(c) ((const CCIDCardClass *)DEVICE_GET_CLASS(CCID_CARD(c)))

/*
 * The ccid-bus (the reader) does the slot bookkeeping: it checks the slot
 * property and takes the card in before the card's realize, and takes it
 * out (a card still in the slot is removed) after its unrealize.
 */
struct CCIDCardState {
    DeviceState qdev;
    uint32_t slot;           /* slot on the reader (only 0 exists) */
};

/* Every card device lists this first among its properties. */
#define DEFINE_CCID_CARD_PROPERTIES(_state, _field) \
    DEFINE_PROP_UINT32("slot", _state, _field.slot, "0", "reader slot (only 0 exists)")

/*
 * Cards call these; the reader implements them (dev-smartcard-reader.c).
 * Each records what happened and wakes the reader, which acts on it from
 * its own loop: none of them runs reader commands or calls the card back.
 */
/* The answer to the APDU the card was last given. */
void ccid_card_send_apdu_to_guest(CCIDCardState *card, const uint8_t *apdu, uint32_t len);
/* The card could not answer the last APDU (card gone, client gone, error). */
void ccid_card_apdu_failed(CCIDCardState *card);
/* A card is now in the slot (its ATR is available) / it left the slot. */
void ccid_card_card_inserted(CCIDCardState *card);
void ccid_card_card_removed(CCIDCardState *card);

#endif
