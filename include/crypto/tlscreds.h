/*
 * TLS credentials, QEMU's way: a directory with fixed file names,
 *   ca-cert.pem                     the CA(s) that sign peers (required)
 *   ca-crl.pem                      revoked certificates (optional)
 *   server-cert.pem, server-key.pem this side's identity, endpoint=server
 *   client-cert.pem, client-key.pem this side's identity, endpoint=client
 *                                   (optional for a client)
 * and "-object tls-creds-x509,id=ID,dir=DIR,endpoint=server|client
 * [,verify-peer=on|off]". GIO (glib-networking) runs the TLS session; the
 * peer's certificate is then checked here, with GnuTLS, against this
 * directory's CA and CRL only: glib-networking's own verdict is not relied
 * on (a server connection hands it to an accept-certificate signal, a
 * client one consults the system's CAs).
 */
#ifndef CRYPTO_TLSCREDS_H
#define CRYPTO_TLSCREDS_H

#include <gio/gio.h>
#include <stdbool.h>

#define TYPE_QCRYPTO_TLS_CREDS "tls-creds"

typedef enum QCryptoTLSCredsEndpoint {
    QCRYPTO_TLS_CREDS_ENDPOINT_SERVER,
    QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
} QCryptoTLSCredsEndpoint;

typedef struct QCryptoTLSCreds QCryptoTLSCreds;

/* Load dir's files for endpoint. verify_peer: the peer must present a valid certificate. */
QCryptoTLSCreds *qcrypto_tls_creds_load(const char *dir, QCryptoTLSCredsEndpoint endpoint,
                                        bool verify_peer, GError **errp);
void qcrypto_tls_creds_free(QCryptoTLSCreds *creds);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QCryptoTLSCreds, qcrypto_tls_creds_free)

/* The -object tls-creds-x509 with this id, or NULL and errp set. */
QCryptoTLSCreds *qcrypto_tls_creds_find(const char *id, GError **errp);
bool qcrypto_tls_creds_check_endpoint(QCryptoTLSCreds *creds, QCryptoTLSCredsEndpoint endpoint,
                                      GError **errp);

/*
 * Wrap base (a connected stream) in a TLS connection for the creds'
 * endpoint; the caller runs the handshake. hostname (client only, may be
 * NULL) is sent as SNI and later checked by qcrypto_tls_session_check_peer.
 */
GTlsConnection *qcrypto_tls_session_new(QCryptoTLSCreds *creds, GIOStream *base,
                                        const char *hostname, GError **errp);
/*
 * After a successful handshake: check the peer's certificate chain against
 * the CA and CRL (validity dates included) and, for a client, against
 * hostname. On success *dname is the peer's distinguished name as GnuTLS
 * prints it (NULL if verify-peer=off and the peer sent no certificate).
 */
bool qcrypto_tls_session_check_peer(QCryptoTLSCreds *creds, GTlsConnection *conn,
                                    const char *hostname, char **dname, GError **errp);

#endif
