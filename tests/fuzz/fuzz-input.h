/*
 * A fuzzer's input read as a script: bytes taken one at a time, zero once
 * the input is used up, so a script cut short still runs to its end.
 */
#ifndef TESTS_FUZZ_INPUT_H
#define TESTS_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct FuzzInput {
    const uint8_t *data;
    size_t len;
} FuzzInput;

static inline uint8_t fuzz_take_byte(FuzzInput *in)
{
    uint8_t b = 0;

    if (in->len) {
        b = in->data[0];
        in->data++;
        in->len--;
    }
    return b;
}

static inline uint16_t fuzz_take_u16(FuzzInput *in)
{
    uint16_t hi = fuzz_take_byte(in);

    return hi << 8 | fuzz_take_byte(in);
}

/* The next want bytes, or what is left if fewer: their start, and their number in *n. */
static inline const uint8_t *fuzz_take_bytes(FuzzInput *in, size_t want, size_t *n)
{
    const uint8_t *p = in->data;

    *n = want < in->len ? want : in->len;
    in->data += *n;
    in->len -= *n;
    return p;
}

/*
 * Hand data to feed() in reads as a socket might deliver them to a stream
 * parser: 1 to 64 bytes, or often all the rest at once, lengths drawn from
 * a generator seeded by seed (an input byte).
 */
static inline void fuzz_feed_in_chunks(uint8_t seed, const uint8_t *data, size_t size,
                                       void (*feed)(void *opaque, const uint8_t *buf,
                                                    size_t len),
                                       void *opaque)
{
    uint32_t rng = seed | 1u;

    while (size > 0) {
        size_t chunk;

        rng = rng * 1103515245u + 12345u;
        chunk = 1 + (rng >> 16) % 64;
        if ((rng >> 8) & 1) {
            chunk = size;
        }
        chunk = chunk < size ? chunk : size;
        feed(opaque, data, chunk);
        data += chunk;
        size -= chunk;
    }
}

#endif
