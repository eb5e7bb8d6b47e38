/*
 * CCID rev 1.1 message layer: constants with the spec's names, the 10-byte
 * header, the bulk-out message assembler and its mirror, the bulk-in
 * splitter. Pure: no I/O, no devices.
 */
#ifndef PROTO_CCID_H
#define PROTO_CCID_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CCID_HEADER_SIZE 10

/* Offsets of header fields; a parameter error's bError is one of these. */
#define CCID_OFFSET_MESSAGE_TYPE 0
#define CCID_OFFSET_LENGTH       1
#define CCID_OFFSET_SLOT         5
#define CCID_OFFSET_SEQ          6
#define CCID_OFFSET_SPECIFIC     7   /* three message-specific bytes */

/* PC_to_RDR (bulk-out), CCID 6.1 */
#define CCID_PC_TO_RDR_SET_PARAMETERS        0x61
#define CCID_PC_TO_RDR_ICC_POWER_ON          0x62
#define CCID_PC_TO_RDR_ICC_POWER_OFF         0x63
#define CCID_PC_TO_RDR_GET_SLOT_STATUS       0x65
#define CCID_PC_TO_RDR_SECURE                0x69
#define CCID_PC_TO_RDR_T0_APDU               0x6a
#define CCID_PC_TO_RDR_ESCAPE                0x6b
#define CCID_PC_TO_RDR_GET_PARAMETERS        0x6c
#define CCID_PC_TO_RDR_RESET_PARAMETERS      0x6d
#define CCID_PC_TO_RDR_ICC_CLOCK             0x6e
#define CCID_PC_TO_RDR_XFR_BLOCK             0x6f
#define CCID_PC_TO_RDR_MECHANICAL            0x71
#define CCID_PC_TO_RDR_ABORT                 0x72
#define CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK_FREQUENCY 0x73

/* RDR_to_PC (bulk-in), CCID 6.2 */
#define CCID_RDR_TO_PC_DATA_BLOCK            0x80
#define CCID_RDR_TO_PC_SLOT_STATUS           0x81
#define CCID_RDR_TO_PC_PARAMETERS            0x82
#define CCID_RDR_TO_PC_ESCAPE                0x83
#define CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK_FREQUENCY 0x84

/* RDR_to_PC (interrupt-in), CCID 6.3 */
#define CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE    0x50
#define CCID_RDR_TO_PC_HARDWARE_ERROR        0x51

/* Class-specific control requests, CCID 5.3 */
#define CCID_REQUEST_ABORT                   0x01
#define CCID_REQUEST_GET_CLOCK_FREQUENCIES   0x02
#define CCID_REQUEST_GET_DATA_RATES          0x03

/* bStatus, CCID 6.2.6: bmICCStatus (bits 0-1) and bmCommandStatus (6-7) */
#define CCID_ICC_PRESENT_ACTIVE    0x00
#define CCID_ICC_PRESENT_INACTIVE  0x01
#define CCID_ICC_ABSENT            0x02
#define CCID_COMMAND_OK            0x00
#define CCID_COMMAND_FAILED        0x40
#define CCID_TIME_EXTENSION        0x80

/* bError when bmCommandStatus = failed, CCID table 6.2-2 */
#define CCID_ERR_CMD_ABORTED                 0xff
#define CCID_ERR_ICC_MUTE                    0xfe
#define CCID_ERR_XFR_PARITY_ERROR            0xfd
#define CCID_ERR_XFR_OVERRUN                 0xfc
#define CCID_ERR_HW_ERROR                    0xfb
#define CCID_ERR_BAD_ATR_TS                  0xf8
#define CCID_ERR_BAD_ATR_TCK                 0xf7
#define CCID_ERR_ICC_PROTOCOL_NOT_SUPPORTED  0xf6
#define CCID_ERR_ICC_CLASS_NOT_SUPPORTED     0xf5
#define CCID_ERR_PROCEDURE_BYTE_CONFLICT     0xf4
#define CCID_ERR_DEACTIVATED_PROTOCOL        0xf3
#define CCID_ERR_BUSY_WITH_AUTO_SEQUENCE     0xf2
#define CCID_ERR_PIN_TIMEOUT                 0xf0
#define CCID_ERR_PIN_CANCELLED               0xef
#define CCID_ERR_CMD_SLOT_BUSY               0xe0
#define CCID_ERR_CMD_NOT_SUPPORTED           0x00

/* wLevelParameter (XfrBlock) and bChainParameter (DataBlock), CCID 6.1.4 / 6.2.1 */
#define CCID_CHAIN_NONE            0x00  /* the whole APDU / answer */
#define CCID_CHAIN_BEGIN           0x01  /* begins, continues in the next */
#define CCID_CHAIN_END             0x02  /* ends a chain */
#define CCID_CHAIN_MIDDLE          0x03  /* continues, more follows */
#define CCID_CHAIN_CONTINUE        0x10  /* empty: please send the next part */

/* dwFeatures, CCID table 5.1-1 */
#define CCID_FEATURE_AUTO_CONF_ATR          0x00000002
#define CCID_FEATURE_AUTO_ACTIVATION        0x00000004
#define CCID_FEATURE_AUTO_VOLTAGE           0x00000008
#define CCID_FEATURE_AUTO_CLOCK             0x00000010
#define CCID_FEATURE_AUTO_BAUD              0x00000020
#define CCID_FEATURE_AUTO_PARAM_NEGOTIATION 0x00000040
#define CCID_FEATURE_AUTO_PPS_CUR           0x00000080
#define CCID_FEATURE_AUTO_IFSD              0x00000400
#define CCID_FEATURE_TPDU                   0x00010000
#define CCID_FEATURE_SHORT_APDU             0x00020000
#define CCID_FEATURE_EXTENDED_APDU          0x00040000

typedef struct CCIDHeader {
    uint8_t bMessageType;
    uint32_t dwLength;
    uint8_t bSlot;
    uint8_t bSeq;
    uint8_t specific[3];   /* bBWI/wLevelParameter, bPowerSelect, ... */
} CCIDHeader;

void ccid_header_parse(const uint8_t buf[CCID_HEADER_SIZE], CCIDHeader *h);
void ccid_header_write(uint8_t buf[CCID_HEADER_SIZE], const CCIDHeader *h);
/* The RDR_to_PC bulk-in message type that answers a PC_to_RDR type. */
uint8_t ccid_answer_type(uint8_t pc_to_rdr_type);
const char *ccid_message_name(uint8_t type);
static inline uint16_t ccid_le16(const uint8_t *p) { return p[0] | (p[1] << 8); }

/*
 * Bulk-out assembly. The host sends one message per bulk-out transfer; a
 * transfer may arrive in several packets, and one that is a multiple of the
 * endpoint's packet size is ended by a zero-length packet or by reaching
 * 10 + dwLength bytes. Anything else is a malformed message.
 */
typedef enum CCIDAssemblyResult {
    CCID_ASM_NEED_MORE,    /* nothing to do yet */
    CCID_ASM_MESSAGE,      /* a whole message: header + payload */
    CCID_ASM_ERROR,        /* a malformed message: answer with bError */
    CCID_ASM_DROPPED,      /* too little arrived to even answer */
} CCIDAssemblyResult;

typedef struct CCIDAssembler {
    GByteArray *buf;
    size_t max_message;    /* dwMaxCCIDMessageLength */
    size_t max_packet;     /* bulk-out wMaxPacketSize */
    bool discarding;       /* skipping the rest of an oversized transfer */
    CCIDHeader discard_hdr;
} CCIDAssembler;

typedef struct CCIDAssembled {
    CCIDHeader hdr;
    const uint8_t *payload; /* valid until the next push */
    uint32_t len;
    uint8_t bError;         /* for CCID_ASM_ERROR: offset of the bad field */
} CCIDAssembled;

void ccid_assembler_init(CCIDAssembler *a, size_t max_message, size_t max_packet);
void ccid_assembler_reset(CCIDAssembler *a);
void ccid_assembler_destroy(CCIDAssembler *a);
/* Feed one bulk-out packet (one usbredir transfer). */
CCIDAssemblyResult ccid_assembler_push(CCIDAssembler *a, const uint8_t *data, size_t len,
                                       CCIDAssembled *out);

/*
 * Bulk-in splitting, the assembler's mirror. Whole RDR_to_PC messages go in
 * in order; bulk-in packets come out. One message per transfer: a packet
 * never holds the end of one message and the start of the next, so a
 * packet smaller than the rest of a message gets its next part and the
 * following packet the part after that.
 *
 * A host that reads packet by packet (UHCI) cannot tell that a message
 * ending on a full packet is over; USB ends such a transfer with a
 * zero-length packet. A host that asks for whole transfers (xHCI, EHCI)
 * got a short transfer already and must not see a stray one, so the ZLP
 * follows only a packet of exactly max_packet bytes that ended a message.
 */
typedef struct CCIDSplitter {
    GQueue messages;       /* GByteArray *, whole messages, oldest first */
    size_t offset;         /* bytes of the head message already handed out */
    size_t max_packet;     /* bulk-in wMaxPacketSize */
    bool zlp_pending;      /* the next packet is a zero-length one */
} CCIDSplitter;

void ccid_splitter_init(CCIDSplitter *sp, size_t max_packet);
/* Drop every message and a pending ZLP; max_packet may change (a new speed). */
void ccid_splitter_reset(CCIDSplitter *sp, size_t max_packet);
void ccid_splitter_destroy(CCIDSplitter *sp);
/* Queue a message: h (its dwLength says how many payload bytes follow). */
void ccid_splitter_push(CCIDSplitter *sp, const CCIDHeader *h, const uint8_t *payload);
/* Messages not yet handed out whole (the head may be partly sent). */
unsigned ccid_splitter_queued(const CCIDSplitter *sp);
/* A packet is ready: data, or the ZLP that ends the last message. */
bool ccid_splitter_ready(const CCIDSplitter *sp);
/*
 * Fill one bulk-in packet of room bytes. Returns the bytes written, 0 for a
 * ZLP (or when nothing is ready: check ccid_splitter_ready() first).
 */
size_t ccid_splitter_pull(CCIDSplitter *sp, uint8_t *buf, size_t room);

#endif
