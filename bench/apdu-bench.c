/*
 * apdu-bench: a small PC/SC client that runs inside the test guest.
 *
 *   apdu-bench list [-w SECONDS]   print "READER <name>" per reader; with -w
 *                                  wait up to SECONDS for a first reader
 *   apdu-bench atr                 print "ATR <hex>" of the card in the first
 *                                  reader and "PROTOCOL T0|T1"
 *   apdu-bench bench [-n N]        N SELECTs of the CAC PKI applet: APDU/s,
 *                                  p50, p99; then the time to read the whole
 *                                  first certificate with READ BUFFER
 *   apdu-bench wait present|absent [-w SECONDS]
 *                                  wait (SCardGetStatusChange) until the
 *                                  first reader has a card / has none
 *   apdu-bench sweep               READ BUFFER of every length 1..255 and
 *                                  compare each answer with the certificate
 *                                  read whole: catches readers that lose or
 *                                  repeat answers of particular lengths
 *
 * The card is the CAC card that libcacard emulates (QEMU's or vccid's
 * ccid-card-emulated): PKI applets A0 00 00 00 79 01 0n, READ BUFFER
 * (CLA 80, INS 52) with P1P2 = offset and data = { buffer type, length }.
 * Output lines are "key=value" so the harness can parse them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <PCSC/winscard.h>

#define MAX_APDU 261
#define MAX_RESP 258
#define MAX_CERT 8192
#define CAC_FILE_VALUE 0x02
#define SWEEP_MAX_FAILURES 8

typedef struct Card {
    SCARDCONTEXT ctx;
    SCARDHANDLE handle;
    const SCARD_IO_REQUEST *pci;
    char reader[4096];
} Card;

/* SELECT of the first CAC PKI applet, case 3 as a CAC middleware sends it. */
static const uint8_t select_pki0[] = {
    0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00
};

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void print_hex(const char *key, const uint8_t *buf, size_t len)
{
    printf("%s ", key);
    for (size_t i = 0; i < len; i++) {
        printf("%02X", buf[i]);
    }
    printf("\n");
}

static bool first_reader(SCARDCONTEXT ctx, char *name, size_t size)
{
    char buf[4096];
    DWORD len = sizeof(buf);

    if (SCardListReaders(ctx, NULL, buf, &len) != SCARD_S_SUCCESS || len < 2) {
        return false;
    }
    snprintf(name, size, "%s", buf);
    return true;
}

static int cmd_list(int wait_s)
{
    SCARDCONTEXT ctx;
    char buf[4096];
    DWORD len;
    LONG rv;
    double deadline = now_ms() + wait_s * 1e3;

    rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
    if (rv != SCARD_S_SUCCESS) {
        printf("error=SCardEstablishContext:%s\n", pcsc_stringify_error(rv));
        return 1;
    }
    for (;;) {
        len = sizeof(buf);
        rv = SCardListReaders(ctx, NULL, buf, &len);
        if (rv == SCARD_S_SUCCESS || now_ms() >= deadline) {
            break;
        }
        usleep(200 * 1000);
    }
    if (rv != SCARD_S_SUCCESS) {
        printf("error=SCardListReaders:%s\n", pcsc_stringify_error(rv));
        SCardReleaseContext(ctx);
        return 1;
    }
    for (const char *p = buf; *p; p += strlen(p) + 1) {
        printf("READER %s\n", p);
    }
    SCardReleaseContext(ctx);
    return 0;
}

static bool card_connect(Card *card)
{
    DWORD proto;
    LONG rv;

    rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &card->ctx);
    if (rv != SCARD_S_SUCCESS) {
        printf("error=SCardEstablishContext:%s\n", pcsc_stringify_error(rv));
        return false;
    }
    if (!first_reader(card->ctx, card->reader, sizeof(card->reader))) {
        printf("error=no-reader\n");
        return false;
    }
    rv = SCardConnect(card->ctx, card->reader, SCARD_SHARE_SHARED,
                      SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                      &card->handle, &proto);
    if (rv != SCARD_S_SUCCESS) {
        printf("error=SCardConnect:%s\n", pcsc_stringify_error(rv));
        return false;
    }
    card->pci = proto == SCARD_PROTOCOL_T1 ? SCARD_PCI_T1 : SCARD_PCI_T0;
    return true;
}

static void card_disconnect(Card *card)
{
    SCardDisconnect(card->handle, SCARD_LEAVE_CARD);
    SCardReleaseContext(card->ctx);
}

/* One exchange; returns the answer length (data + SW) or -1. */
static long transmit(Card *card, const uint8_t *apdu, size_t len,
                     uint8_t *resp, size_t size)
{
    DWORD rlen = size;
    LONG rv = SCardTransmit(card->handle, card->pci, apdu, len, NULL,
                            resp, &rlen);

    if (rv != SCARD_S_SUCCESS) {
        printf("error=SCardTransmit:%s\n", pcsc_stringify_error(rv));
        return -1;
    }
    if (rlen < 2) {
        printf("error=short-answer len=%lu\n", (unsigned long)rlen);
        return -1;
    }
    return rlen;
}

static int cmd_atr(void)
{
    Card card;
    uint8_t atr[MAX_ATR_SIZE];
    DWORD atr_len = sizeof(atr), state, proto, name_len = 0;
    LONG rv;

    if (!card_connect(&card)) {
        return 1;
    }
    rv = SCardStatus(card.handle, NULL, &name_len, &state, &proto,
                     atr, &atr_len);
    if (rv != SCARD_S_SUCCESS) {
        printf("error=SCardStatus:%s\n", pcsc_stringify_error(rv));
        return 1;
    }
    printf("READER %s\n", card.reader);
    print_hex("ATR", atr, atr_len);
    printf("PROTOCOL %s\n", proto == SCARD_PROTOCOL_T1 ? "T1" : "T0");
    card_disconnect(&card);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (n - 1) + 0.5);

    return sorted[i < n ? i : n - 1];
}

static bool select_applet(Card *card, long *answer_len)
{
    uint8_t resp[MAX_RESP];
    long r = transmit(card, select_pki0, sizeof(select_pki0),
                      resp, sizeof(resp));

    if (r < 0) {
        return false;
    }
    /* 90 00 with the FCI, or 61 xx announcing it: both select the applet. */
    if (!(resp[r - 2] == 0x90 && resp[r - 1] == 0x00) && resp[r - 2] != 0x61) {
        printf("error=select-sw %02X%02X\n", resp[r - 2], resp[r - 1]);
        return false;
    }
    *answer_len = r;
    return true;
}

/*
 * READ BUFFER of @want bytes of the value buffer at @offset; returns the
 * number of data bytes received or -1.
 */
static long read_buffer(Card *card, unsigned offset, unsigned want,
                        uint8_t *out)
{
    uint8_t apdu[] = { 0x80, 0x52, offset >> 8, offset & 0xff, 0x02,
                       CAC_FILE_VALUE, want, 0x00 };
    uint8_t resp[MAX_RESP];
    long r = transmit(card, apdu, sizeof(apdu), resp, sizeof(resp));

    if (r < 0) {
        return -1;
    }
    if (resp[r - 2] != 0x90 || resp[r - 1] != 0x00) {
        printf("error=read-buffer-sw %02X%02X offset=%u want=%u len=%ld\n",
               resp[r - 2], resp[r - 1], offset, want, r);
        return -1;
    }
    memcpy(out, resp, r - 2);
    return r - 2;
}

/* The whole value buffer of the selected PKI applet; returns its length. */
static long read_certificate(Card *card, uint8_t *cert, size_t size,
                             unsigned *apdus)
{
    size_t total = 0;
    long got;

    *apdus = 0;
    do {
        unsigned want = size - total > 255 ? 255 : size - total;

        got = read_buffer(card, total, want, cert + total);
        if (got < 0) {
            return -1;
        }
        (*apdus)++;
        total += got;
        if (got < (long)want || total == size) {
            break;
        }
    } while (true);
    return total;
}

static int bench_select(Card *card, int n)
{
    double *lat = calloc(n, sizeof(*lat));
    double t0, elapsed;
    long answer_len = 0;

    if (!lat) {
        return 1;
    }
    t0 = now_ms();
    for (int i = 0; i < n; i++) {
        double t = now_ms();

        if (!select_applet(card, &answer_len)) {
            printf("error=select-failed at=%d\n", i);
            free(lat);
            return 1;
        }
        lat[i] = now_ms() - t;
    }
    elapsed = now_ms() - t0;
    qsort(lat, n, sizeof(*lat), cmp_double);
    printf("apdus=%d answer_len=%ld apdu_per_s=%.1f p50_ms=%.3f p99_ms=%.3f\n",
           n, answer_len, n / (elapsed / 1e3), percentile(lat, n, 0.50),
           percentile(lat, n, 0.99));
    free(lat);
    return 0;
}

/* Median of a few whole-certificate reads (the first one warms caches). */
static int bench_certificate(Card *card, int rounds)
{
    static uint8_t cert[MAX_CERT];
    double times[16];
    unsigned apdus = 0;
    long len = 0, answer_len;

    if (rounds > 16) {
        rounds = 16;
    }
    for (int i = 0; i < rounds; i++) {
        double t = now_ms();

        if (!select_applet(card, &answer_len)) {
            return 1;
        }
        len = read_certificate(card, cert, sizeof(cert), &apdus);
        if (len <= 0) {
            printf("error=certificate-read-failed\n");
            return 1;
        }
        times[i] = now_ms() - t;
    }
    qsort(times, rounds, sizeof(times[0]), cmp_double);
    printf("cert_bytes=%ld cert_apdus=%u cert_read_ms=%.3f\n",
           len, apdus + 1, percentile(times, rounds, 0.5));
    return 0;
}

static int cmd_bench(int n)
{
    Card card;
    int rc;

    if (!card_connect(&card)) {
        return 1;
    }
    rc = bench_select(&card, n);
    if (rc == 0) {
        rc = bench_certificate(&card, 5);
    }
    card_disconnect(&card);
    return rc;
}

/* Compare a READ BUFFER of each length with the certificate read whole. */
static int sweep_lengths(Card *card, const uint8_t *ref, long ref_len)
{
    uint8_t buf[MAX_RESP];
    int ok = 0, failed = 0;
    long max = ref_len < 255 ? ref_len : 255;

    for (long want = 1; want <= max && failed < SWEEP_MAX_FAILURES; want++) {
        long got = read_buffer(card, 0, want, buf);

        if (got == want && memcmp(buf, ref, want) == 0) {
            ok++;
        } else {
            /* got == want with other bytes: a stale or misplaced answer */
            failed++;
            printf("SWEEP-FAILED len=%ld got=%ld%s\n", want, got,
                   got == want ? " (wrong bytes)" : "");
        }
    }
    printf("sweep_ok=%d sweep_failed=%d sweep_max=%ld\n", ok, failed, max);
    return failed ? 1 : 0;
}

static int cmd_sweep(void)
{
    static uint8_t cert[MAX_CERT];
    Card card;
    unsigned apdus;
    long len, answer_len;
    int rc;

    if (!card_connect(&card)) {
        return 1;
    }
    if (!select_applet(&card, &answer_len)) {
        return 1;
    }
    len = read_certificate(&card, cert, sizeof(cert), &apdus);
    if (len <= 0) {
        printf("error=certificate-read-failed\n");
        return 1;
    }
    rc = sweep_lengths(&card, cert, len);
    card_disconnect(&card);
    return rc;
}

/*
 * Wait until the first reader's card is present (or absent): the reader
 * tells pcscd through its interrupt endpoint (RDR_to_PC_NotifySlotChange),
 * so this checks that path end to end.
 */
static int cmd_wait(const char *what, int wait_s)
{
    SCARDCONTEXT ctx;
    SCARD_READERSTATE rs;
    char reader[4096];
    bool want_present = strcmp(what, "present") == 0;
    double t0 = now_ms(), deadline = t0 + wait_s * 1e3;
    LONG rv;

    if (!want_present && strcmp(what, "absent") != 0) {
        return 2;
    }
    rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
    if (rv != SCARD_S_SUCCESS || !first_reader(ctx, reader, sizeof(reader))) {
        printf("error=no-reader\n");
        return 1;
    }
    memset(&rs, 0, sizeof(rs));
    rs.szReader = reader;
    rs.dwCurrentState = SCARD_STATE_UNAWARE;
    for (;;) {
        double left = deadline - now_ms();
        bool present;

        rv = SCardGetStatusChange(ctx, left > 0 ? (DWORD)left : 0, &rs, 1);
        if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT) {
            printf("error=SCardGetStatusChange:%s\n", pcsc_stringify_error(rv));
            break;
        }
        present = rs.dwEventState & SCARD_STATE_PRESENT;
        if (present == want_present) {
            printf("state=%s after_ms=%.0f\n", what, now_ms() - t0);
            SCardReleaseContext(ctx);
            return 0;
        }
        if (rv == SCARD_E_TIMEOUT || now_ms() >= deadline) {
            printf("error=timeout state=0x%lx\n", (unsigned long)rs.dwEventState);
            break;
        }
        rs.dwCurrentState = rs.dwEventState;
    }
    SCardReleaseContext(ctx);
    return 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: apdu-bench list [-w SECONDS] | atr | "
            "bench [-n N] | sweep | wait present|absent [-w SECONDS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *cmd;
    int opt, count = 500, wait_s = 0;

    if (argc < 2) {
        return usage();
    }
    cmd = argv[1];
    optind = 2;
    if (strcmp(cmd, "wait") == 0) {
        if (argc < 3) {
            return usage();
        }
        optind = 3;
    }
    while ((opt = getopt(argc, argv, "n:w:")) != -1) {
        switch (opt) {
        case 'n':
            count = atoi(optarg);
            break;
        case 'w':
            wait_s = atoi(optarg);
            break;
        default:
            return usage();
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (count < 1) {
        return usage();
    }
    if (strcmp(cmd, "list") == 0) {
        return cmd_list(wait_s);
    } else if (strcmp(cmd, "atr") == 0) {
        return cmd_atr();
    } else if (strcmp(cmd, "bench") == 0) {
        return cmd_bench(count);
    } else if (strcmp(cmd, "sweep") == 0) {
        return cmd_sweep();
    } else if (strcmp(cmd, "wait") == 0) {
        return cmd_wait(argv[2], wait_s ? wait_s : 10);
    }
    return usage();
}
