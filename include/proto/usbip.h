/*
 * The USB/IP protocol, version 1.1.1 (0x0111), as Linux speaks it
 * (Documentation/usb/usbip_protocol.rst; drivers/usb/usbip, tools/usb/usbip).
 *
 * A connection starts in the operation phase: the client asks for the list
 * of exported devices (OP_REQ_DEVLIST, answered, then the connection ends)
 * or imports one by bus id (OP_REQ_IMPORT). After a successful import the
 * same connection carries URBs: CMD_SUBMIT/RET_SUBMIT and CMD_UNLINK/
 * RET_UNLINK, each a 48-byte header and, for OUT submits and IN answers, the
 * transfer buffer. Every integer on the wire is big-endian; the 8-byte setup
 * packet is carried as USB has it (little-endian fields).
 *
 * This file is pure: the stream parser takes bytes and calls back with whole,
 * checked messages; the encoders append messages to a GByteArray the caller
 * writes out. Neither owns a socket. Every error is fatal to the connection:
 * a USB/IP stream has no resynchronisation point.
 */
#ifndef PROTO_USBIP_H
#define PROTO_USBIP_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define USBIP_VERSION 0x0111u

/* Operation codes (the request bit 0x8000 set in requests). */
#define USBIP_OP_REQ_DEVLIST 0x8005u
#define USBIP_OP_REP_DEVLIST 0x0005u
#define USBIP_OP_REQ_IMPORT  0x8003u
#define USBIP_OP_REP_IMPORT  0x0003u
/* Operation reply status: 0 OK, anything else a failure (Linux sends 1). */
#define USBIP_ST_OK    0u
#define USBIP_ST_NA    1u

/* URB phase commands. */
#define USBIP_CMD_SUBMIT 1u
#define USBIP_CMD_UNLINK 2u
#define USBIP_RET_SUBMIT 3u
#define USBIP_RET_UNLINK 4u
#define USBIP_DIR_OUT 0u
#define USBIP_DIR_IN  1u

/* Linux's enum usb_device_speed, used as it is in the device record. */
#define USBIP_SPEED_LOW  1u
#define USBIP_SPEED_FULL 2u
#define USBIP_SPEED_HIGH 3u

/* Non-iso submits carry 0 (Linux vhci) or 0xffffffff (usbip-win2). */
#define USBIP_NO_ISO_PACKETS 0xffffffffu

#define USBIP_OP_HEADER_SIZE   8u     /* version, code, status */
#define USBIP_BUSID_SIZE       32u
#define USBIP_PATH_SIZE        256u
#define USBIP_DEVICE_SIZE      312u   /* the device record of DEVLIST and IMPORT */
#define USBIP_INTERFACE_SIZE   4u     /* class, subclass, protocol, padding */
#define USBIP_URB_HEADER_SIZE  48u

/*
 * Largest transfer_buffer_length accepted (and actual_length, for a client).
 * The biggest CCID message is an extended APDU of some 64 KiB; Linux hosts
 * split nothing below 1 MiB for a device like ours. A header announcing more
 * drops the peer: skipping the payload would mean trusting the same length.
 */
#define USBIP_MAX_TRANSFER_LENGTH (1024u * 1024u)
/* A DEVLIST reply is held whole by a client; a longer one is refused. */
#define USBIP_MAX_DEVICES 1024u

typedef enum UsbipRole {
    USBIP_ROLE_SERVER,   /* the exporting side: receives requests and CMD_* */
    USBIP_ROLE_CLIENT,   /* the importing side (vhci): receives replies and RET_* */
} UsbipRole;

typedef struct UsbipInterface {
    uint8_t bInterfaceClass;
    uint8_t bInterfaceSubClass;
    uint8_t bInterfaceProtocol;
} UsbipInterface;

/* The device record (struct usbip_usb_device on the wire). */
typedef struct UsbipDevice {
    char path[USBIP_PATH_SIZE];       /* NUL-terminated (the wire's may not be) */
    char busid[USBIP_BUSID_SIZE];     /* NUL-terminated, at most 31 characters */
    uint32_t busnum;
    uint32_t devnum;
    uint32_t speed;                   /* USBIP_SPEED_* */
    uint16_t idVendor;
    uint16_t idProduct;
    uint16_t bcdDevice;
    uint8_t bDeviceClass;
    uint8_t bDeviceSubClass;
    uint8_t bDeviceProtocol;
    uint8_t bConfigurationValue;
    uint8_t bNumConfigurations;
    uint8_t bNumInterfaces;
    /* DEVLIST only: bNumInterfaces entries (NULL for IMPORT). */
    const UsbipInterface *interfaces;
} UsbipDevice;

/* The header fields shared by the four URB-phase messages. */
typedef struct UsbipHeader {
    uint32_t command;
    uint32_t seqnum;
    uint32_t devid;                   /* busnum << 16 | devnum */
    uint32_t direction;               /* USBIP_DIR_*, 0 in RET_* */
    uint32_t ep;                      /* endpoint number 0..15, 0 in RET_* */
} UsbipHeader;

typedef struct UsbipSubmit {
    UsbipHeader h;
    uint32_t transfer_flags;
    uint32_t transfer_buffer_length;
    uint32_t start_frame;
    uint32_t number_of_packets;
    uint32_t interval;
    uint8_t setup[8];
} UsbipSubmit;

typedef struct UsbipRetSubmit {
    UsbipHeader h;
    int32_t status;                   /* 0 or a negative errno */
    uint32_t actual_length;
    uint32_t start_frame;
    uint32_t number_of_packets;
    uint32_t error_count;
} UsbipRetSubmit;

typedef enum UsbipError {
    USBIP_ERR_BAD_VERSION,      /* operation header of another version */
    USBIP_ERR_BAD_OPCODE,       /* unknown or unexpected operation code */
    USBIP_ERR_BAD_COMMAND,      /* URB command not 1..4 or not for this role */
    USBIP_ERR_BAD_DIRECTION,    /* direction not 0 or 1 */
    USBIP_ERR_BAD_ENDPOINT,     /* endpoint above 15 */
    USBIP_ERR_TOO_LONG,         /* a length beyond USBIP_MAX_TRANSFER_LENGTH */
    USBIP_ERR_ISO,              /* number_of_packets other than 0 or 0xffffffff */
    USBIP_ERR_TOO_MANY_DEVICES, /* DEVLIST reply beyond USBIP_MAX_DEVICES */
    USBIP_ERR_UNKNOWN_SEQNUM,   /* RET_SUBMIT for a seqnum the client did not send */
} UsbipError;

/* What a server (the exporting side) is told. */
typedef struct UsbipServerOps {
    void (*req_devlist)(void *opaque);
    /* busid compared up to its NUL; always NUL-terminated here. */
    void (*req_import)(void *opaque, const char *busid);
    /* data: transfer_buffer_length bytes for OUT, NULL for IN. */
    void (*cmd_submit)(void *opaque, const UsbipSubmit *cmd, const uint8_t *data);
    void (*cmd_unlink)(void *opaque, const UsbipHeader *h, uint32_t unlink_seqnum);
} UsbipServerOps;

/* What a client (the importing side, vhci) is told. */
typedef struct UsbipClientOps {
    void (*rep_devlist)(void *opaque, uint32_t status, const UsbipDevice *devs, uint32_t ndev);
    /* dev is NULL when status is not USBIP_ST_OK (the reply is the header alone). */
    void (*rep_import)(void *opaque, uint32_t status, const UsbipDevice *dev);
    /*
     * A RET_SUBMIT carries data when its URB was IN, which only the
     * submitter knows: return USBIP_DIR_IN or USBIP_DIR_OUT for seqnum,
     * or -1 if it was never submitted (a fatal error).
     */
    int (*submit_direction)(void *opaque, uint32_t seqnum);
    /* data: actual_length bytes for an IN URB, else NULL. */
    void (*ret_submit)(void *opaque, const UsbipRetSubmit *ret, const uint8_t *data);
    void (*ret_unlink)(void *opaque, const UsbipHeader *h, int32_t status);
} UsbipClientOps;

/* Either role: the stream is dead from here on. */
typedef void UsbipErrorFunc(void *opaque, UsbipError err, const char *detail);

typedef struct UsbipStream UsbipStream;

/* A parser for one end of a connection; every callback may be NULL. */
UsbipStream *usbip_server_stream_new(const UsbipServerOps *ops, UsbipErrorFunc *error,
                                     void *opaque);
UsbipStream *usbip_client_stream_new(const UsbipClientOps *ops, UsbipErrorFunc *error,
                                     void *opaque);
void usbip_stream_free(UsbipStream *s);
/*
 * Feed bytes as they arrive, in pieces of any size. Callbacks run from
 * within this call; a callback may call usbip_stream_stop() (because it
 * dropped the peer) and the rest of the buffer is then ignored. Returns
 * false once the stream is dead or stopped.
 */
bool usbip_stream_feed(UsbipStream *s, const uint8_t *buf, size_t len);
/*
 * Server role: the import succeeded; what follows are URBs. Call it from
 * req_import (or before feeding more). A client switches by itself on an
 * OP_REP_IMPORT with status 0.
 */
void usbip_stream_start_urbs(UsbipStream *s);
/* Ignore everything from now on (the owner is closing the connection). */
void usbip_stream_stop(UsbipStream *s);
bool usbip_stream_is_dead(const UsbipStream *s);
bool usbip_stream_in_urb_phase(const UsbipStream *s);
/* Bytes of an incomplete message held so far (for tests). */
size_t usbip_stream_pending(const UsbipStream *s);

const char *usbip_error_str(UsbipError err);
/* "Success", "-EPIPE" ...: a negative errno's name for logs. */
const char *usbip_status_name(int32_t status);

/* Encoders: append one whole message in wire order. */
void usbip_encode_op_request(GByteArray *out, uint16_t code, const char *busid);
void usbip_encode_op_header(GByteArray *out, uint16_t code, uint32_t status);
/* The device record; with_interfaces for DEVLIST (dev->interfaces used). */
void usbip_encode_device(GByteArray *out, const UsbipDevice *dev, bool with_interfaces);
void usbip_encode_rep_devlist(GByteArray *out, const UsbipDevice *devs, uint32_t ndev);
/* dev NULL: a failure reply, the header alone. */
void usbip_encode_rep_import(GByteArray *out, uint32_t status, const UsbipDevice *dev);
/* data: transfer_buffer_length bytes for OUT, ignored for IN. */
void usbip_encode_cmd_submit(GByteArray *out, const UsbipSubmit *cmd, const uint8_t *data);
void usbip_encode_cmd_unlink(GByteArray *out, const UsbipHeader *h, uint32_t unlink_seqnum);
/* data: actual_length bytes for an IN URB; NULL sends none. */
void usbip_encode_ret_submit(GByteArray *out, const UsbipRetSubmit *ret, const uint8_t *data);
void usbip_encode_ret_unlink(GByteArray *out, uint32_t seqnum, int32_t status);

#endif
