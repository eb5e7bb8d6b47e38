/*
 * The PIV card application (NIST SP 800-73-4 part 2), as a pure function of
 * command APDUs to response APDUs.
 *
 * The applet owns the card's state (PIN retries, security status, pending
 * response and command chain) and its data objects; what a card keeps
 * secret stays with a backend behind PIVBackendOps: the PIN check and the
 * private-key operations. Nothing here does I/O, so the applet is unit
 * tested with a fake backend and fuzzed (tests/unit/test-piv.c,
 * tests/fuzz/fuzz-piv.c); hw/usb/ccid-card-piv.c puts it on NSS.
 *
 * Everything a command carries comes from the guest and is checked here,
 * once: APDU lengths, TLV lengths, the size of a command chain.
 */
#ifndef PROTO_PIV_H
#define PROTO_PIV_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SP 800-73-4 part 1 table 4: key references of the four certificate slots. */
#define PIV_KEY_AUTHENTICATION      0x9a   /* PIV Authentication, PIN */
#define PIV_KEY_SIGNATURE           0x9c   /* Digital Signature, PIN always */
#define PIV_KEY_MANAGEMENT          0x9d   /* Key Management, PIN */
#define PIV_KEY_CARD_AUTHENTICATION 0x9e   /* Card Authentication, no PIN */
#define PIV_KEY_PIN                 0x80   /* PIV Card Application PIN */

/* SP 800-78-4 table 6-2: cryptographic mechanism identifiers. */
#define PIV_ALG_RSA_2048  0x07
#define PIV_ALG_ECC_P256  0x11

#define PIV_SLOT_COUNT 4          /* 9A, 9C, 9D, 9E */
#define PIV_PIN_MAX_LEN 8         /* SP 800-73-4 part 2 3.2.1: padded with FF to 8 */
#define PIV_RSA_2048_BYTES 256
#define PIV_P256_BYTES 32
#define PIV_GUID_LEN 16

/* The application identifier: NIST RID A0 00 00 03 08, PIX 00 00 10 00 01 00. */
#define PIV_AID_LEN 11
extern const uint8_t piv_aid[PIV_AID_LEN];

/* ISO 7816-4 status words the applet answers with. */
#define PIV_SW_OK                    0x9000
#define PIV_SW_BYTES_REMAINING       0x6100   /* | count, 00 = 256 or more */
#define PIV_SW_VERIFY_FAILED         0x63c0   /* | retries left */
#define PIV_SW_MEMORY_FAILURE        0x6581
#define PIV_SW_WRONG_LENGTH          0x6700
#define PIV_SW_LAST_COMMAND_EXPECTED 0x6883
#define PIV_SW_SECURITY_STATUS       0x6982
#define PIV_SW_AUTH_BLOCKED          0x6983
#define PIV_SW_CONDITIONS_OF_USE     0x6985
#define PIV_SW_WRONG_DATA            0x6a80
#define PIV_SW_FUNC_NOT_SUPPORTED    0x6a81
#define PIV_SW_FILE_NOT_FOUND        0x6a82
#define PIV_SW_INCORRECT_P1P2        0x6a86
#define PIV_SW_REF_NOT_FOUND         0x6a88
#define PIV_SW_INS_NOT_SUPPORTED     0x6d00
#define PIV_SW_CLA_NOT_SUPPORTED     0x6e00

/*
 * A command chain (CLA bit 0x10) is gathered up to this many data bytes;
 * the largest command the applet takes whole is a GENERAL AUTHENTICATE
 * with an RSA 2048 block, some 270 bytes.
 */
#define PIV_CHAIN_MAX 2048

/* Results of a backend operation. */
typedef enum PIVBackendResult {
    PIV_BACKEND_OK,
    PIV_BACKEND_FAILED,        /* the key refused (bad input, key error) */
    PIV_BACKEND_UNSUPPORTED,   /* the backend cannot do this with this key */
} PIVBackendResult;

typedef struct PIVBackendOps {
    /* Is this the PIN (digits without the FF padding)? */
    bool (*verify_pin)(void *opaque, const uint8_t *pin, size_t len);
    /*
     * The private-key operation of a slot: for RSA, the raw RSA private
     * operation on one modulus-sized block (signing and decryption alike;
     * the client does the padding); for ECC, an ECDSA signature of the
     * (truncated) hash, DER-encoded as Ecdsa-Sig-Value. out is empty.
     */
    PIVBackendResult (*private_op)(void *opaque, uint8_t key_ref, uint8_t alg,
                                   const uint8_t *in, size_t len, GByteArray *out);
    /* ECC key agreement: the x coordinate of key * the peer's point. Optional. */
    PIVBackendResult (*key_agreement)(void *opaque, uint8_t key_ref, uint8_t alg,
                                      const uint8_t *point, size_t len, GByteArray *out);
} PIVBackendOps;

/* What the card holds in one key slot. */
typedef struct PIVSlotConfig {
    uint8_t alg;               /* PIV_ALG_*; 0: the slot is empty */
    GBytes *cert;              /* DER certificate (the applet takes a reference) */
} PIVSlotConfig;

typedef struct PIVCardConfig {
    PIVSlotConfig slots[PIV_SLOT_COUNT];   /* in order 9A, 9C, 9D, 9E */
    uint8_t guid[PIV_GUID_LEN];            /* the CHUID's GUID: the card's identity */
    uint8_t pin_retries;                   /* tries before the PIN blocks (1..15) */
} PIVCardConfig;

typedef struct PIVApplet PIVApplet;

PIVApplet *piv_applet_new(const PIVCardConfig *config, const PIVBackendOps *ops,
                          void *opaque);
void piv_applet_free(PIVApplet *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PIVApplet, piv_applet_free)

/*
 * One command APDU in, its response APDU (data, SW1, SW2) appended to
 * resp. Any bytes are accepted; malformed ones get the status a card gives.
 */
void piv_applet_process(PIVApplet *a, const uint8_t *apdu, size_t len, GByteArray *resp);

/*
 * The card is reset (power off): the PIN is no longer verified and chained
 * or pending data is dropped. The retry counter survives, as on a card.
 */
void piv_applet_reset(PIVApplet *a);

/* Retries left before the PIN blocks (0: blocked). */
unsigned piv_applet_pin_retries(const PIVApplet *a);

/* The slot index (0..3) of a key reference, or -1. */
int piv_slot_index(uint8_t key_ref);

/*
 * The card's ATR: contact, T=1, historical bytes naming a PIV card. See
 * docs/ccid.txt for why these bytes.
 */
extern const uint8_t piv_atr[];
extern const size_t piv_atr_len;

/*
 * Append a BER-TLV length (ISO 7816-4 5.2.2.1): one byte below 0x80, else
 * 81 or 82 and the value; len is at most 0xffff.
 */
void piv_put_ber_length(GByteArray *out, size_t len);

#endif
