/*
 * The CCID class driver side of the tests: finds the reader's endpoints
 * and class descriptor over a UsbredirHost, and exchanges PC_to_RDR /
 * RDR_to_PC messages the way a host driver (libccid) does. (The unit tests
 * and the fuzzer attach to the device model in-process instead, with
 * tests/support/ccid-inproc-host.h.)
 *
 * Constants are spelled as in the CCID rev 1.1 specification and kept here,
 * apart from the daemon's own headers, so that the tests check the device
 * against the spec and not against itself.
 */
#ifndef CCID_HOST_H
#define CCID_HOST_H

#include "usbredir-host.h"

#define CCID_HDR 10

/* PC_to_RDR (CCID 6.1) */
#define PC_to_RDR_SetParameters     0x61
#define PC_to_RDR_IccPowerOn        0x62
#define PC_to_RDR_IccPowerOff       0x63
#define PC_to_RDR_GetSlotStatus     0x65
#define PC_to_RDR_Secure            0x69
#define PC_to_RDR_T0APDU            0x6a
#define PC_to_RDR_Escape            0x6b
#define PC_to_RDR_GetParameters     0x6c
#define PC_to_RDR_ResetParameters   0x6d
#define PC_to_RDR_IccClock          0x6e
#define PC_to_RDR_XfrBlock          0x6f
#define PC_to_RDR_Mechanical        0x71
#define PC_to_RDR_Abort             0x72
#define PC_to_RDR_SetDataRateAndClockFrequency 0x73

/* RDR_to_PC (CCID 6.2, 6.3) */
#define RDR_to_PC_DataBlock         0x80
#define RDR_to_PC_SlotStatus        0x81
#define RDR_to_PC_Parameters        0x82
#define RDR_to_PC_Escape            0x83
#define RDR_to_PC_DataRateAndClockFrequency 0x84
#define RDR_to_PC_NotifySlotChange  0x50
#define RDR_to_PC_HardwareError     0x51

/* Class requests (CCID 5.3) */
#define CCID_REQ_ABORT                 0x01
#define CCID_REQ_GET_CLOCK_FREQUENCIES 0x02
#define CCID_REQ_GET_DATA_RATES        0x03

/* bStatus (CCID 6.2.6) */
#define ICC_STATUS(b)      ((b) & 0x03)
#define ICC_ACTIVE         0
#define ICC_INACTIVE       1
#define ICC_ABSENT         2
#define CMD_STATUS(b)      (((b) >> 6) & 0x03)
#define CMD_OK             0
#define CMD_FAILED         1
#define CMD_TIME_EXTENSION 2

/* bError (CCID table 6.2-2) */
#define CCID_ERR_CMD_NOT_SUPPORTED 0x00
#define CCID_ERR_BAD_LENGTH        0x01   /* offset of dwLength */
#define CCID_ERR_BAD_SLOT          0x05   /* offset of bSlot */
#define CCID_ERR_BAD_PROTOCOL      0x07   /* offset of bProtocolNum */
#define CCID_ERR_CMD_SLOT_BUSY     0xe0
#define CCID_ERR_HW_ERROR          0xfb
#define CCID_ERR_ICC_MUTE          0xfe
#define CCID_ERR_CMD_ABORTED       0xff

/* dwFeatures (CCID table 5.1-1) */
#define CCID_FEAT_AUTO_VOLTAGE     0x00000008
#define CCID_FEAT_CLOCK_STOP       0x00000100
#define CCID_FEAT_TPDU             0x00010000
#define CCID_FEAT_SHORT_APDU       0x00020000
#define CCID_FEAT_EXTENDED_APDU    0x00040000
#define CCID_FEAT_LEVEL_MASK       0x00070000

/* wLevelParameter / bChainParameter (CCID 6.1.4, 6.2.1) */
#define CCID_CHAIN_NONE     0x00
#define CCID_CHAIN_BEGIN    0x01
#define CCID_CHAIN_END      0x02
#define CCID_CHAIN_MIDDLE   0x03
#define CCID_CHAIN_CONTINUE 0x10

/* The CCID class descriptor (CCID 5.1), decoded. */
typedef struct CcidClassDesc {
    uint8_t bLength;
    uint8_t bDescriptorType;
    uint16_t bcdCCID;
    uint8_t bMaxSlotIndex;
    uint8_t bVoltageSupport;
    uint32_t dwProtocols;
    uint32_t dwDefaultClock;
    uint32_t dwMaximumClock;
    uint8_t bNumClockSupported;
    uint32_t dwDataRate;
    uint32_t dwMaxDataRate;
    uint8_t bNumDataRatesSupported;
    uint32_t dwMaxIFSD;
    uint32_t dwSynchProtocols;
    uint32_t dwMechanical;
    uint32_t dwFeatures;
    uint32_t dwMaxCCIDMessageLength;
    uint8_t bClassGetResponse;
    uint8_t bClassEnvelope;
    uint16_t wLcdLayout;
    uint8_t bPINSupport;
    uint8_t bMaxCCIDBusySlots;
} CcidClassDesc;

void ccid_class_desc_parse(const uint8_t d[0x36], CcidClassDesc *out);

typedef struct CcidHost {
    UsbredirHost *usb;
    GByteArray *config;          /* the whole configuration descriptor */
    uint8_t ifnum;
    uint8_t ep_bulk_out;
    uint8_t ep_bulk_in;
    uint8_t ep_int_in;
    uint16_t bulk_out_mps;
    uint16_t bulk_in_mps;
    uint16_t int_in_mps;
    CcidClassDesc desc;
    uint8_t seq;                 /* next bSeq */
    unsigned time_extensions;    /* time extensions skipped by ccid_read_answer */
    uint32_t bulk_in_size;       /* size of each bulk-in request */
} CcidHost;

/* A decoded RDR_to_PC bulk-in message. */
typedef struct CcidAnswer {
    GByteArray *raw;             /* the whole transfer as received */
    uint8_t type;
    uint32_t dwLength;
    uint8_t slot;
    uint8_t seq;
    uint8_t status;
    uint8_t error;
    uint8_t specific;            /* bChainParameter, bClockStatus, ... */
    const uint8_t *data;         /* raw->data + 10 */
} CcidAnswer;

/*
 * Take over a connected UsbredirHost: read the configuration descriptor,
 * find the CCID interface and its endpoints, and set configuration 1.
 */
CcidHost *ccid_host_new(UsbredirHost *usb);
/* Connect to a vccid socket and do the above. */
CcidHost *ccid_host_open(const char *sock_path);
/* Free the CCID state and the connection. */
void ccid_host_free(CcidHost *c);

/*
 * Send one message (any bytes: may be malformed) as one bulk-out transfer
 * and fail the test if the device does not accept it.
 */
void ccid_send_raw(CcidHost *c, const uint8_t *msg, size_t len);
/*
 * Read one RDR_to_PC message: bulk-in requests of c->bulk_in_size until a
 * short packet ends the transfer (a whole message that ends on a full
 * packet is followed by a zero-length packet, USB 2.0 5.8.3).
 */
CcidAnswer *ccid_read_answer(CcidHost *c, int timeout_ms);
/* The same, failing the test after max_extensions time extensions: an answer that never comes. */
CcidAnswer *ccid_read_answer_bounded(CcidHost *c, int timeout_ms, unsigned max_extensions);
void ccid_answer_free(CcidAnswer *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CcidAnswer, ccid_answer_free)

/* Send msg, read the answer into answer (up to size); returns its length. */
size_t ccid_transact(CcidHost *c, const uint8_t *msg, size_t len, uint8_t *answer,
                     size_t size);

/* Build a PC_to_RDR header with the next bSeq; returns the bSeq used. */
uint8_t ccid_build(CcidHost *c, uint8_t *buf, uint8_t type, uint8_t slot, uint32_t dwLength,
                   uint8_t p1, uint8_t p2, uint8_t p3);
/* Send apdu in a PC_to_RDR_XfrBlock to slot 0 (its answer is not read); returns its bSeq. */
uint8_t ccid_send_xfr_block(CcidHost *c, const uint8_t *apdu, size_t len);
/*
 * ABORT of slot 0 (CCID 5.3.1): the class request with the next bSeq, then
 * PC_to_RDR_Abort with it (its answers are not read); returns that bSeq.
 */
uint8_t ccid_send_abort(CcidHost *c);
/*
 * Send a well-formed command (slot 0 unless given) and read its answer;
 * checks that the answer is a whole message (10 + dwLength bytes) that
 * echoes bSeq and bSlot.
 */
CcidAnswer *ccid_command(CcidHost *c, uint8_t type, uint8_t p1, uint8_t p2, uint8_t p3,
                         const uint8_t *data, uint32_t len);
CcidAnswer *ccid_command_slot(CcidHost *c, uint8_t type, uint8_t slot, uint8_t p1,
                              uint8_t p2, uint8_t p3, const uint8_t *data, uint32_t len);
/* Check the framing of an answer to the command with bSeq seq. */
void ccid_check_answer(const CcidAnswer *a, uint8_t type, uint8_t slot, uint8_t seq);

/* Wait until the slot holds a card (GetSlotStatus), then IccPowerOn; returns the ATR. */
GByteArray *ccid_power_on(CcidHost *c);
/*
 * Exchange one APDU with XfrBlock, chaining the command and the response
 * as the CCID spec's extended APDU level prescribes when they do not fit in
 * dwMaxCCIDMessageLength. Returns the response APDU (data + SW1 SW2).
 */
GByteArray *ccid_xfr_apdu(CcidHost *c, const uint8_t *apdu, size_t len);
/* As above, plus ISO 7816-4 GET RESPONSE for 61xx and Le retry for 6Cxx. */
GByteArray *ccid_transmit(CcidHost *c, const uint8_t *apdu, size_t len);
static inline uint16_t apdu_sw(const GByteArray *r)
{
    g_assert_cmpuint(r->len, >=, 2);
    return r->data[r->len - 2] << 8 | r->data[r->len - 1];
}

static inline uint32_t le32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = v;
    p[1] = v >> 8;
    p[2] = v >> 16;
    p[3] = v >> 24;
}

static inline uint16_t le16(const uint8_t *p)
{
    return p[0] | p[1] << 8;
}

#endif
