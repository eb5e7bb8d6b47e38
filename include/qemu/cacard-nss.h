/*
 * libcacard's emulation on NSS, as both of its users start and filter it:
 * the emulated card (hw/usb/ccid-card-emulated.c) and vscclient
 * (contrib/vscclient). It knows libcacard, NSS and GLib, nothing of either
 * user: each words its own options and its own advice.
 */
#ifndef QEMU_CACARD_NSS_H
#define QEMU_CACARD_NSS_H

#include <stdbool.h>

#include <glib.h>
#include <pk11pub.h>

/*
 * Start libcacard (and NSS under it) with these emulator options, NULL for
 * libcacard's defaults. It can be done once per process. On failure errp
 * says whether libcacard refused the options or could not start with them;
 * hint (NULL: none) follows the latter in parentheses, for what to check.
 */
bool cacard_nss_start(const char *options, const char *hint, GError **errp);

/*
 * Would libcacard mirror this slot at start-up? It takes removable slots
 * only; under use_hw=yes (removable false) also only hardware ones, which
 * software tokens such as SoftHSM2 never claim to be.
 */
bool cacard_nss_slot_eligible(PK11SlotInfo *slot, bool removable);

/*
 * Call fn for every slot outside NSS's own module, under the module list's
 * read lock, until it returns false.
 */
void cacard_nss_foreach_slot(bool (*fn)(PK11SlotInfo *slot, void *opaque), void *opaque);

/*
 * Is the reader libcacard announced (it names readers after the slot,
 * PK11_GetSlotName) one of the slots asked for? libcacard's event thread
 * makes a reader for any slot that has an event, whatever use_hw says, so
 * the use_hw rule applies again here. token_slot_name, when set, is the
 * only slot wanted.
 */
bool cacard_nss_reader_wanted(const char *reader_name, const char *token_slot_name,
                              bool removable);

#endif
