/*
 * -object tls-creds-x509,id=ID,dir=DIR,endpoint=server|client[,verify-peer=on|off]
 */
#include "crypto/tlscreds.h"
#include "qemu/error.h"
#include "qom/object.h"

#include <string.h>

typedef struct QCryptoTLSCredsX509 {
    Object parent_obj;
    QCryptoTLSCreds *creds;
} QCryptoTLSCredsX509;

QCryptoTLSCreds *qcrypto_tls_creds_find(const char *id, GError **errp)
{
    Object *obj = object_find(id);

    if (!obj) {
        g_set_error(errp, VCCID_ERROR, 0, "No TLS credentials with id '%s'", id);
        return NULL;
    }
    if (!object_dynamic_cast(obj, TYPE_QCRYPTO_TLS_CREDS)) {
        g_set_error(errp, VCCID_ERROR, 0, "Object with id '%s' is not TLS credentials", id);
        return NULL;
    }
    return ((QCryptoTLSCredsX509 *)obj)->creds;
}

static Object *tls_creds_x509_create(const char *id, QemuOpts *opts, GError **errp)
{
    const char *dir = qemu_opt_take(opts, "dir");
    const char *endpoint = qemu_opt_take(opts, "endpoint");
    const char *verify = qemu_opt_take(opts, "verify-peer");
    QCryptoTLSCredsEndpoint ep = QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT;
    bool verify_peer = true;
    QCryptoTLSCredsX509 *x509;
    QCryptoTLSCreds *creds;

    if (!dir) {
        g_set_error(errp, VCCID_ERROR, 0, "Parameter 'dir' is missing");
        return NULL;
    }
    /* QEMU's default endpoint is client. */
    if (endpoint && strcmp(endpoint, "server") == 0) {
        ep = QCRYPTO_TLS_CREDS_ENDPOINT_SERVER;
    } else if (endpoint && strcmp(endpoint, "client") != 0) {
        g_set_error(errp, VCCID_ERROR, 0,
                    "Parameter 'endpoint' does not accept value '%s' (server or client)", endpoint);
        return NULL;
    }
    if (verify && !qemu_opt_parse_bool(verify, &verify_peer)) {
        g_set_error(errp, VCCID_ERROR, 0, "Parameter 'verify-peer' expects on or off, not '%s'",
                    verify);
        return NULL;
    }
    creds = qcrypto_tls_creds_load(dir, ep, verify_peer, errp);
    if (!creds) {
        return NULL;
    }
    x509 = g_new0(QCryptoTLSCredsX509, 1);
    x509->creds = creds;
    return &x509->parent_obj;
}

static void tls_creds_x509_finalize(Object *obj)
{
    QCryptoTLSCredsX509 *x509 = (QCryptoTLSCredsX509 *)obj;

    qcrypto_tls_creds_free(x509->creds);
    g_free(x509);
}

static const ObjectClass tls_creds_x509_class = {
    .name = "tls-creds-x509",
    .parent = TYPE_QCRYPTO_TLS_CREDS,
    .usage = "tls-creds-x509,id=ID,dir=DIR[,endpoint=server|client][,verify-peer=on|off]\n"
             "                       X.509 credentials: DIR/ca-cert.pem, [ca-crl.pem,]\n"
             "                       server-cert.pem + server-key.pem or client-cert.pem +\n"
             "                       client-key.pem",
    .create = tls_creds_x509_create,
    .finalize = tls_creds_x509_finalize,
};

static void tls_creds_register_types(void)
{
    object_class_register(&tls_creds_x509_class);
}
object_type_init(tls_creds_register_types)
