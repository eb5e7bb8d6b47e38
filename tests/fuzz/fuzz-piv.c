/*
 * libFuzzer target: the PIV applet (proto/piv-applet.c) fed a script of
 * command APDUs: each takes a 16-bit length and that many bytes (an op of
 * length 0 resets the card). Every answer must end in a status word and be
 * no longer than the largest response APDU; sanitizers catch the rest.
 * Certificates of 1000 and 300 bytes make long answers and GET RESPONSE
 * reachable; the PIN is 123456 so that the private-key paths are too.
 */
#include "proto/piv.h"
#include "fuzz-input.h"

#include <string.h>

static bool fuzz_verify_pin(void *opaque, const uint8_t *pin, size_t len)
{
    return len == 6 && memcmp(pin, "123456", 6) == 0;
}

static PIVBackendResult fuzz_private_op(void *opaque, uint8_t key_ref, uint8_t alg,
                                        const uint8_t *in, size_t len, GByteArray *out)
{
    if (in[0] == 0xee) {
        return PIV_BACKEND_FAILED;
    }
    g_byte_array_append(out, in, len);
    return PIV_BACKEND_OK;
}

static const PIVBackendOps fuzz_ops = {
    .verify_pin = fuzz_verify_pin,
    .private_op = fuzz_private_op,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzInput in = { data, size };
    g_autoptr(GBytes) cert1 = g_bytes_new_take(g_malloc0(1000), 1000);
    g_autoptr(GBytes) cert2 = g_bytes_new_take(g_malloc0(300), 300);
    PIVCardConfig cfg = {
        .slots = {
            { PIV_ALG_RSA_2048, cert1 }, { PIV_ALG_RSA_2048, cert2 },
            { PIV_ALG_ECC_P256, cert2 }, { 0, NULL },
        },
        .pin_retries = 3,
    };
    g_autoptr(PIVApplet) a = piv_applet_new(&cfg, &fuzz_ops, NULL);
    g_autoptr(GByteArray) resp = g_byte_array_new();

    while (in.len) {
        size_t len;
        const uint8_t *apdu = fuzz_take_bytes(&in, fuzz_take_u16(&in), &len);

        if (len == 0) {
            piv_applet_reset(a);
            continue;
        }
        g_byte_array_set_size(resp, 0);
        piv_applet_process(a, apdu, len, resp);
        g_assert(resp->len >= 2 && resp->len <= 65536 + 2);
    }
    return 0;
}
