/* libcacard's emulation on NSS. See include/qemu/cacard-nss.h. */
#include <string.h>

#include <libcacard.h>
#include <secmod.h>

#include "qemu/cacard-nss.h"
#include "qemu/error.h"

bool cacard_nss_start(const char *options, const char *hint, GError **errp)
{
    VCardEmulOptions *opts = NULL;

    if (options) {
        opts = vcard_emul_options(options);
        if (!opts) {
            g_set_error(errp, VCCID_ERROR, 0, "libcacard rejected the options '%s'", options);
            return false;
        }
    }
    if (vcard_emul_init(opts) != VCARD_EMUL_OK) {
        g_autofree char *with = options ? g_strdup_printf(" with '%s'", options) : NULL;
        g_autofree char *why = hint ? g_strdup_printf(" (%s)", hint) : NULL;

        g_set_error(errp, VCCID_ERROR, 0, "libcacard could not start%s%s",
                    with ? with : "", why ? why : "");
        return false;
    }
    return true;
}

bool cacard_nss_slot_eligible(PK11SlotInfo *slot, bool removable)
{
    return PK11_IsRemovable(slot) && (removable || PK11_IsHW(slot));
}

void cacard_nss_foreach_slot(bool (*fn)(PK11SlotInfo *slot, void *opaque), void *opaque)
{
    SECMODListLock *lock = SECMOD_GetDefaultModuleListLock();
    bool more = true;

    SECMOD_GetReadLock(lock);
    for (SECMODModuleList *m = SECMOD_GetDefaultModuleList(); m && more; m = m->next) {
        if (!m->module || m->module == SECMOD_GetInternalModule()) {
            continue;
        }
        for (int i = 0; i < m->module->slotCount && more; i++) {
            if (m->module->slots[i]) {
                more = fn(m->module->slots[i], opaque);
            }
        }
    }
    SECMOD_ReleaseReadLock(lock);
}

typedef struct SlotSearch {
    const char *name;
    PK11SlotInfo *found;
} SlotSearch;

static bool slot_search_step(PK11SlotInfo *slot, void *opaque)
{
    SlotSearch *search = opaque;

    if (strcmp(PK11_GetSlotName(slot), search->name) == 0) {
        search->found = PK11_ReferenceSlot(slot);
        return false;
    }
    return true;
}

bool cacard_nss_reader_wanted(const char *reader_name, const char *token_slot_name,
                              bool removable)
{
    SlotSearch search = { .name = reader_name };
    bool wanted;

    if (token_slot_name) {
        return strcmp(reader_name, token_slot_name) == 0;
    }
    cacard_nss_foreach_slot(slot_search_step, &search);
    wanted = search.found && cacard_nss_slot_eligible(search.found, removable);
    if (search.found) {
        PK11_FreeSlot(search.found);
    }
    return wanted;
}
