/*
 * ccid-card-emulated: a CAC card emulated by libcacard on NSS.
 *
 * backend=certificates: a soft card made of three certificates (and their
 * keys) in an NSS database. backend=nss-emulated: the tokens NSS sees in its
 * database (hardware through PKCS#11 modules) are emulated as cards.
 *
 * libcacard blocks: its event queue is a blocking wait and an APDU may take a
 * private-key operation. Both run on threads of their own; results come back
 * to the main loop through one eventfd, in order.
 */
#include "hw/usb/ccid.h"

#include <cacard/libcacard.h>
#include <cert.h>
#include <glib-unix.h>
#include <keyhi.h>
#include <pk11pub.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "qemu/cacard-nss.h"
#include "trace/control.h"
#include "trace.h"

#define TYPE_EMULATED_CCID "ccid-card-emulated"
#define EMULATED_READER_NAME "vccid"
#define BACKEND_NSS_EMULATED "nss-emulated"
#define BACKEND_CERTIFICATES "certificates"
#define DEFAULT_CERT_DB "/etc/pki/nssdb"
/*
 * Which NSS slots backend=nss-emulated mirrors. libcacard only looks at
 * removable slots; QEMU (use_hw=yes) also wants PK11_IsHW, which software
 * tokens such as SoftHSM2 never claim.
 */
#define SLOTS_REMOVABLE_HW "removable-hw"
#define SLOTS_REMOVABLE "removable"

typedef enum EmulMsgType {
    EMUL_MSG_CARD_INSERT,
    EMUL_MSG_CARD_REMOVE,
    EMUL_MSG_APDU_ANSWER,
    EMUL_MSG_APDU_FAILED,
} EmulMsgType;

/* A message from a libcacard thread to the main loop. */
typedef struct EmulMsg {
    EmulMsgType type;
    uint8_t *data;           /* ATR or answer APDU */
    uint32_t len;
} EmulMsg;

/* Work for the APDU thread. */
typedef struct EmulJob {
    uint8_t *apdu;           /* NULL: a power cycle */
    uint32_t len;
} EmulJob;

typedef struct EmulatedState {
    CCIDCardState base;

    /* properties */
    char *backend;
    char *db;
    char *cert1;
    char *cert2;
    char *cert3;
    char *slots;
    char *token;
    uint8_t debug;

    /* NSS slot name of token=, which libcacard gives its reader */
    char *token_slot_name;

    VReader *reader;         /* owned by the event thread until it quits */
    uint8_t atr[ISO7816_MAX_ATR];
    uint32_t atr_len;        /* main loop's view; 0 = no card */

    GThread *event_thread;
    GThreadPool *apdu_pool;  /* one thread: APDUs run in order */
    GAsyncQueue *to_main;    /* EmulMsg * */
    int notify_fd;           /* eventfd the threads write after a push */
    guint notify_watch;
} EmulatedState;

#define EMULATED_CCID(obj) DEVICE_CHECK(EmulatedState, (obj), TYPE_EMULATED_CCID)

/*
 * libcacard (and NSS under it) can be set up once per process: the first
 * card's options stay. A card added later (device_del, then device_add)
 * takes libcacard over if it asks for the same options, and is refused
 * with the reason if it asks for others. One card uses it at a time.
 */
static EmulatedState *cacard_owner;
static char *cacard_options;

/* ---- thread -> main loop ---- */

static void emul_post(EmulatedState *s, EmulMsgType type, const uint8_t *data, uint32_t len)
{
    EmulMsg *msg = g_new0(EmulMsg, 1);
    uint64_t one = 1;

    msg->type = type;
    msg->data = len ? g_memdup2(data, len) : NULL;
    msg->len = len;
    g_async_queue_push(s->to_main, msg);
    if (write(s->notify_fd, &one, sizeof(one)) != sizeof(one)) {
        g_warning("ccid-card-emulated: cannot wake the main loop");
    }
}

static void emul_msg_free(gpointer p)
{
    EmulMsg *msg = p;

    g_free(msg->data);
    g_free(msg);
}

static void emul_handle_msg(EmulatedState *s, EmulMsg *msg)
{
    CCIDCardState *card = &s->base;

    switch (msg->type) {
    case EMUL_MSG_CARD_INSERT:
        memcpy(s->atr, msg->data, msg->len);
        s->atr_len = msg->len;
        ccid_card_card_inserted(card);
        break;
    case EMUL_MSG_CARD_REMOVE:
        s->atr_len = 0;
        ccid_card_card_removed(card);
        break;
    case EMUL_MSG_APDU_ANSWER:
        ccid_card_send_apdu_to_guest(card, msg->data, msg->len);
        break;
    case EMUL_MSG_APDU_FAILED:
        ccid_card_apdu_failed(card);
        break;
    }
}

static gboolean emul_notified(gint fd, GIOCondition cond, gpointer opaque)
{
    EmulatedState *s = opaque;
    uint64_t count;
    EmulMsg *msg;

    if (read(fd, &count, sizeof(count)) < 0) {
        /* EAGAIN: another wakeup already drained it. */
    }
    while ((msg = g_async_queue_try_pop(s->to_main))) {
        trace_ccid_card_emulated_msg(DEVICE(s)->id, msg->type, msg->len);
        emul_handle_msg(s, msg);
        emul_msg_free(msg);
    }
    return G_SOURCE_CONTINUE;
}

/* ---- libcacard event thread ---- */

static void emul_card_inserted(EmulatedState *s, VReader *reader)
{
    unsigned char atr[64];
    int atr_len = sizeof(atr);

    if (vreader_power_on(reader, atr, &atr_len) != VREADER_OK || atr_len <= 0) {
        g_warning("ccid-card-emulated: card in '%s' gives no ATR", vreader_get_name(reader));
        return;
    }
    emul_post(s, EMUL_MSG_CARD_INSERT, atr, MIN((uint32_t)atr_len, ISO7816_MAX_ATR));
}

static bool emul_slots_removable(EmulatedState *s)
{
    return strcmp(s->slots, SLOTS_REMOVABLE) == 0;
}

/*
 * Is the reader libcacard announces one that may become ours? The soft card
 * of backend=certificates always is. For NSS tokens, slots= applies again
 * (a SoftHSM2 slot under use_hw=yes gets a reader that never gets a card),
 * and token= picks one slot by its token's label.
 */
static bool emul_reader_wanted(EmulatedState *s, VReader *reader)
{
    return strcmp(s->backend, BACKEND_CERTIFICATES) == 0 ||
           cacard_nss_reader_wanted(vreader_get_name(reader), s->token_slot_name,
                                    emul_slots_removable(s));
}

/* Returns false when asked to quit. */
static bool emul_handle_event(EmulatedState *s, VEvent *ev)
{
    switch (ev->type) {
    case VEVENT_READER_INSERT:
        /* The first reader libcacard announces that slots= and token= accept is ours. */
        if (!g_atomic_pointer_get(&s->reader) && emul_reader_wanted(s, ev->reader)) {
            g_atomic_pointer_set(&s->reader, vreader_reference(ev->reader));
            g_message("ccid-card-emulated: using reader '%s'", vreader_get_name(ev->reader));
        } else {
            trace_ccid_card_emulated_reader_ignored(DEVICE(s)->id, vreader_get_name(ev->reader));
        }
        return true;
    case VEVENT_LAST:
        return false;
    default:
        break;
    }
    if (!g_atomic_pointer_get(&s->reader) && ev->reader) {
        /*
         * A card added again after device_del: libcacard replays card events
         * only, its readers were announced to the card before.
         */
        g_atomic_pointer_set(&s->reader, vreader_reference(ev->reader));
    }
    if (ev->reader != s->reader) {
        return true;   /* another reader's event */
    }
    if (ev->type == VEVENT_CARD_INSERT) {
        emul_card_inserted(s, ev->reader);
    } else {
        /* VEVENT_CARD_REMOVE, or VEVENT_READER_REMOVE: our card goes with it. */
        emul_post(s, EMUL_MSG_CARD_REMOVE, NULL, 0);
    }
    return true;
}

static gpointer emul_event_thread(gpointer opaque)
{
    EmulatedState *s = opaque;
    bool more = true;

    while (more) {
        VEvent *ev = vevent_wait_next_vevent();

        if (!ev) {
            break;
        }
        more = emul_handle_event(s, ev);
        vevent_delete(ev);
    }
    return NULL;
}

/* ---- APDU thread ---- */

static void emul_apdu_job(gpointer data, gpointer opaque)
{
    EmulJob *job = data;
    EmulatedState *s = opaque;
    /* libcacard truncates silently to the buffer: size it for the largest answer. */
    g_autofree uint8_t *answer = g_malloc(ISO7816_MAX_APDU_RESPONSE);
    int answer_len = ISO7816_MAX_APDU_RESPONSE;
    VReader *reader = g_atomic_pointer_get(&s->reader);

    if (!job->apdu) {
        if (reader) {
            vreader_power_off(reader);
        }
    } else {
        bool ok;

        trace_ccid_card_emulated_worker_start(DEVICE(s)->id, job->len);
        ok = reader && vreader_xfr_bytes(reader, job->apdu, job->len, answer,
                                         &answer_len) == VREADER_OK;
        trace_ccid_card_emulated_worker_done(DEVICE(s)->id, ok ? answer_len : 0, ok);
        if (ok) {
            emul_post(s, EMUL_MSG_APDU_ANSWER, answer, answer_len);
        } else {
            emul_post(s, EMUL_MSG_APDU_FAILED, NULL, 0);
        }
    }
    g_free(job->apdu);
    g_free(job);
}

/* ---- CCIDCardClass ---- */

static const uint8_t *emul_get_atr(CCIDCardState *card, uint32_t *len)
{
    EmulatedState *s = EMULATED_CCID(card);

    *len = s->atr_len;
    return s->atr_len ? s->atr : NULL;
}

static void emul_apdu_from_guest(CCIDCardState *card, const uint8_t *apdu, uint32_t len)
{
    EmulatedState *s = EMULATED_CCID(card);
    EmulJob *job = g_new0(EmulJob, 1);

    job->apdu = g_memdup2(apdu, len);
    job->len = len;
    trace_ccid_card_emulated_apdu(DEVICE(s)->id, len, len > 1 ? apdu[1] : 0);
    g_thread_pool_push(s->apdu_pool, job, NULL);
}

static void emul_power_off(CCIDCardState *card)
{
    EmulatedState *s = EMULATED_CCID(card);

    /* Queued behind any APDU in flight, so it cannot overtake one. */
    g_thread_pool_push(s->apdu_pool, g_new0(EmulJob, 1), NULL);
}

/* ---- realize ---- */

/* Characters that would end a field of libcacard's soft=(...) syntax. */
static bool emul_value_ok(const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '(' || *p == ')' || *p == ',' || *p == '"' || g_ascii_iscntrl(*p)) {
            return false;
        }
    }
    return *v != '\0';
}

static char *emul_build_options(EmulatedState *s, GError **errp)
{
    const char *db = s->db ? s->db : DEFAULT_CERT_DB;
    const char *certs[3] = { s->cert1, s->cert2, s->cert3 };
    static const char *const names[3] = { "cert1", "cert2", "cert3" };

    if (strchr(db, '"') || g_utf8_strlen(db, -1) == 0) {
        g_set_error(errp, VCCID_ERROR, 0, "Property '%s.db' doesn't take value '%s'",
                    TYPE_EMULATED_CCID, db);
        return NULL;
    }
    if (strcmp(s->backend, BACKEND_NSS_EMULATED) == 0 || strcmp(s->backend, "nss") == 0) {
        for (int i = 0; i < 3; i++) {
            if (certs[i]) {
                g_set_error(errp, VCCID_ERROR, 0, "Property '%s.%s' is for backend=%s only",
                            TYPE_EMULATED_CCID, names[i], BACKEND_CERTIFICATES);
                return NULL;
            }
        }
        if (strcmp(s->slots, SLOTS_REMOVABLE_HW) != 0 && !emul_slots_removable(s)) {
            g_set_error(errp, VCCID_ERROR, 0,
                        "Property '%s.slots' doesn't take value '%s' (expects %s or %s)",
                        TYPE_EMULATED_CCID, s->slots, SLOTS_REMOVABLE_HW, SLOTS_REMOVABLE);
            return NULL;
        }
        if (s->token && !*s->token) {
            g_set_error(errp, VCCID_ERROR, 0, "Property '%s.token' needs a token label",
                        TYPE_EMULATED_CCID);
            return NULL;
        }
        return g_strdup_printf("db=\"%s\" use_hw=%s", db,
                               emul_slots_removable(s) ? "removable" : "yes");
    }
    if (s->token || strcmp(s->slots, SLOTS_REMOVABLE_HW) != 0) {
        g_set_error(errp, VCCID_ERROR, 0, "Property '%s.%s' is for backend=%s only",
                    TYPE_EMULATED_CCID, s->token ? "token" : "slots", BACKEND_NSS_EMULATED);
        return NULL;
    }
    if (strcmp(s->backend, BACKEND_CERTIFICATES) != 0) {
        g_set_error(errp, VCCID_ERROR, 0,
                    "Property '%s.backend' doesn't take value '%s' (expects %s or %s)",
                    TYPE_EMULATED_CCID, s->backend, BACKEND_NSS_EMULATED, BACKEND_CERTIFICATES);
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        if (!certs[i]) {
            g_set_error(errp, VCCID_ERROR, 0, "backend=%s needs exactly three certificates: "
                        "%s is missing", BACKEND_CERTIFICATES, names[i]);
            return NULL;
        }
        if (!emul_value_ok(certs[i])) {
            g_set_error(errp, VCCID_ERROR, 0, "Property '%s.%s' doesn't take value '%s' "
                        "(no parentheses, commas or quotes in a nickname)",
                        TYPE_EMULATED_CCID, names[i], certs[i]);
            return NULL;
        }
    }
    return g_strdup_printf("db=\"%s\" use_hw=no soft=(,%s,CAC,,%s,%s,%s)", db,
                           EMULATED_READER_NAME, certs[0], certs[1], certs[2]);
}

/*
 * libcacard builds a card even when a nickname names nothing; a user who
 * asked for three certificates should hear which one is missing.
 */
static bool emul_check_certificates(EmulatedState *s, GError **errp)
{
    const char *certs[3] = { s->cert1, s->cert2, s->cert3 };
    static const char *const names[3] = { "cert1", "cert2", "cert3" };

    for (int i = 0; i < 3; i++) {
        CERTCertificate *cert = CERT_FindCertByNickname(CERT_GetDefaultCertDB(), certs[i]);
        SECKEYPrivateKey *key = cert ? PK11_FindKeyByAnyCert(cert, NULL) : NULL;

        if (cert) {
            CERT_DestroyCertificate(cert);
        }
        if (!key) {
            g_set_error(errp, VCCID_ERROR, 0, "Property '%s.%s': %s '%s' in %s",
                        TYPE_EMULATED_CCID, names[i],
                        cert ? "no private key for certificate" : "no certificate named",
                        certs[i], s->db ? s->db : DEFAULT_CERT_DB);
            return false;
        }
        SECKEY_DestroyPrivateKey(key);
    }
    return true;
}

/*
 * token=LABEL: the slot that holds the token (PK11_FindSlotByName matches
 * token labels), which must be one that slots= lets libcacard mirror.
 */
static bool emul_find_token(EmulatedState *s, GError **errp)
{
    PK11SlotInfo *slot = PK11_FindSlotByName(s->token);
    bool ok;

    if (!slot) {
        g_set_error(errp, VCCID_ERROR, 0, "Property '%s.token': no token labelled '%s' in %s "
                    "(list them with: modutil -list -dbdir %s)", TYPE_EMULATED_CCID, s->token,
                    s->db ? s->db : DEFAULT_CERT_DB, s->db ? s->db : DEFAULT_CERT_DB);
        return false;
    }
    ok = cacard_nss_slot_eligible(slot, emul_slots_removable(s));
    if (!ok) {
        g_set_error(errp, VCCID_ERROR, 0, "Property '%s.token': token '%s' is in slot '%s', "
                    "which is not a removable%s slot%s", TYPE_EMULATED_CCID, s->token,
                    PK11_GetSlotName(slot), emul_slots_removable(s) ? "" : " hardware",
                    emul_slots_removable(s) || !PK11_IsRemovable(slot) ? "" :
                    " (slots=" SLOTS_REMOVABLE " takes software tokens too)");
    } else {
        s->token_slot_name = g_strdup(PK11_GetSlotName(slot));
    }
    PK11_FreeSlot(slot);
    return ok;
}

/*
 * libcacard polls every PKCS#11 module for token events on a thread of its
 * own that nothing can stop (SECMOD_CancelWait only makes it poll again),
 * and NSS offers no lock that keeps it out of the module. At exit the
 * module's destructors (SoftHSM2's are C++ statics) would run under its
 * feet, and the process crashes on its way out. So once those threads
 * exist, the process ends at the exit handlers: stdio flushed, no library
 * destructors (and no leak check of a sanitizer build).
 */
static void emul_exit_before_destructors(int status, void *opaque)
{
    fflush(NULL);
    _exit(status);
}

/* What emul_hint_left_out_tokens() learns of each slot under slots=removable-hw. */
typedef struct LeftOutTokens {
    bool eligible;           /* some slot is mirrored */
    GString *labels;         /* the tokens of the removable slots that are not */
} LeftOutTokens;

static bool emul_note_left_out_token(PK11SlotInfo *slot, void *opaque)
{
    LeftOutTokens *t = opaque;

    if (!PK11_IsRemovable(slot)) {
        return true;
    }
    if (cacard_nss_slot_eligible(slot, false)) {
        t->eligible = true;
    } else if (PK11_IsPresent(slot) && *PK11_GetTokenName(slot)) {
        g_string_append_printf(t->labels, "%s'%s'", t->labels->len ? ", " : "",
                               PK11_GetTokenName(slot));
    }
    return true;
}

/*
 * With the default slots=, a software token (SoftHSM2) is left out and the
 * reader stays empty, which looks like a fault: say which tokens were left
 * out and how to take them.
 */
static void emul_hint_left_out_tokens(EmulatedState *s)
{
    LeftOutTokens t = { .labels = g_string_new(NULL) };

    cacard_nss_foreach_slot(emul_note_left_out_token, &t);
    if (!t.eligible && t.labels->len) {
        g_message("%s: no removable hardware slot; software token(s) %s left out "
                  "(slots=%s takes them)", DEVICE(s)->id, t.labels->str, SLOTS_REMOVABLE);
    }
    g_string_free(t.labels, TRUE);
}

static bool emul_card_setup(EmulatedState *s, GError **errp);

static bool emul_init_cacard(EmulatedState *s, GError **errp)
{
    g_autofree char *args = emul_build_options(s, errp);
    g_autofree char *hint = NULL;

    if (!args) {
        return false;
    }
    if (cacard_options) {
        if (strcmp(args, cacard_options) != 0) {
            g_set_error(errp, VCCID_ERROR, 0, "libcacard is already set up in this process "
                        "with '%s' and cannot be set up again; a %s added later must use the "
                        "same backend, db and certificates (restart vccid for others)",
                        cacard_options, TYPE_EMULATED_CCID);
            return false;
        }
        /* The same card again: libcacard's readers are still there, replayed at realize. */
        return emul_card_setup(s, errp);
    }
    hint = g_strdup_printf("is db= an NSS database with those certificate nicknames? "
                           "check with: certutil -L -d %s", s->db ? s->db : DEFAULT_CERT_DB);
    if (!cacard_nss_start(args, hint, errp)) {
        return false;
    }
    if (strcmp(s->backend, BACKEND_CERTIFICATES) == 0 && !emul_check_certificates(s, errp)) {
        return false;
    }
    if (strcmp(s->backend, BACKEND_CERTIFICATES) != 0) {
        /*
         * Exit handlers run last registered first: after init, the modules are
         * loaded and their destructors registered, so this runs before them.
         * Even a realize that fails from here on exits through it.
         */
        on_exit(emul_exit_before_destructors, NULL);
    }
    cacard_options = g_steal_pointer(&args);
    return emul_card_setup(s, errp);
}

/* What each card (the first, or one added again) finds in libcacard's setup. */
static bool emul_card_setup(EmulatedState *s, GError **errp)
{
    if (strcmp(s->backend, BACKEND_CERTIFICATES) == 0) {
        return true;
    }
    if (s->token) {
        return emul_find_token(s, errp);
    }
    if (!emul_slots_removable(s)) {
        emul_hint_left_out_tokens(s);
    }
    return true;
}

static void emul_stop_threads(EmulatedState *s)
{
    if (s->event_thread) {
        /* The event thread blocks in libcacard; a VEVENT_LAST wakes it to quit. */
        vevent_queue_vevent(vevent_new(VEVENT_LAST, NULL, NULL));
        g_thread_join(s->event_thread);
        s->event_thread = NULL;
    }
    if (s->apdu_pool) {
        g_thread_pool_free(s->apdu_pool, FALSE, TRUE);
        s->apdu_pool = NULL;
    }
}

static bool emul_realize(DeviceState *d, GError **errp)
{
    EmulatedState *s = EMULATED_CCID(d);

    if (s->debug) {
        trace_enable_pattern("ccid_card_emulated_*");
    }

    if (cacard_owner) {
        g_set_error(errp, VCCID_ERROR, 0, "only one %s at a time: libcacard serves one "
                    "(use ccid-card-passthru for more cards)",
                    TYPE_EMULATED_CCID);
        return false;
    }
    if (!emul_init_cacard(s, errp)) {
        return false;
    }
    cacard_owner = s;
    s->to_main = g_async_queue_new_full(emul_msg_free);
    s->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->notify_fd < 0) {
        g_set_error(errp, VCCID_ERROR, 0, "eventfd: %s", g_strerror(errno));
        return false;
    }
    s->notify_watch = g_unix_fd_add(s->notify_fd, G_IO_IN, emul_notified, s);
    s->apdu_pool = g_thread_pool_new(emul_apdu_job, s, 1, TRUE, NULL);
    /*
     * Replay the readers and cards libcacard found during init so that the
     * event thread sees them; it starts before the replay so none is lost.
     */
    s->event_thread = g_thread_new("cacard-events", emul_event_thread, s);
    vcard_emul_replay_insertion_events();
    g_message("%s: backend %s, db %s", d->id, s->backend, s->db ? s->db : DEFAULT_CERT_DB);
    return true;
}

static void emul_unrealize(DeviceState *d)
{
    EmulatedState *s = EMULATED_CCID(d);

    emul_stop_threads(s);
    if (cacard_owner == s) {
        cacard_owner = NULL;
    }
    if (s->notify_watch) {
        g_source_remove(s->notify_watch);
    }
    if (s->notify_fd > 0) {
        close(s->notify_fd);
    }
    if (s->to_main) {
        g_async_queue_unref(s->to_main);
    }
    if (s->reader) {
        vreader_free(s->reader);
    }
    g_free(s->token_slot_name);
}

static const Property emulated_properties[] = {
    DEFINE_CCID_CARD_PROPERTIES(EmulatedState, base),
    DEFINE_PROP_STRING("backend", EmulatedState, backend, BACKEND_NSS_EMULATED,
                       "nss-emulated (NSS tokens) or certificates (cert1..3 from db)"),
    DEFINE_PROP_STRING("db", EmulatedState, db, NULL,
                       "NSS database, e.g. sql:/path (default " DEFAULT_CERT_DB ")"),
    DEFINE_PROP_STRING("cert1", EmulatedState, cert1, NULL, "first certificate nickname"),
    DEFINE_PROP_STRING("cert2", EmulatedState, cert2, NULL, "second certificate nickname"),
    DEFINE_PROP_STRING("cert3", EmulatedState, cert3, NULL, "third certificate nickname"),
    DEFINE_PROP_STRING("slots", EmulatedState, slots, SLOTS_REMOVABLE_HW,
                       "nss-emulated: which NSS slots are cards: removable-hw (removable "
                       "hardware, as QEMU) or removable (software tokens too)"),
    DEFINE_PROP_STRING("token", EmulatedState, token, NULL,
                       "nss-emulated: the card is the token with this label (default: "
                       "the first slot libcacard announces)"),
    DEFINE_PROP_UINT8("debug", EmulatedState, debug, "0", "non-zero: trace APDUs (alias of -trace ccid_card_emulated_*)"),
    DEFINE_PROP_END_OF_LIST(),
};

static const CCIDCardClass emulated_card_class = {
    .parent_class = CCID_CARD_DEVICE_CLASS(TYPE_EMULATED_CCID, "emulated smartcard (libcacard)",
                                           EmulatedState, emulated_properties,
                                           emul_realize, emul_unrealize),
    .get_atr = emul_get_atr,
    .apdu_from_guest = emul_apdu_from_guest,
    .power_off = emul_power_off,
};

device_class_init(emulated_card_class)
