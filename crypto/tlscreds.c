/*
 * TLS credentials and sessions (see include/crypto/tlscreds.h). Nothing
 * here knows about objects or chardevs, so vscclient links it alone.
 */
#include "crypto/tlscreds.h"
#include "qemu/error.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>
#include <time.h>

/* Longest certificate chain a peer may present. */
#define QCRYPTO_TLS_MAX_CHAIN 16

struct QCryptoTLSCreds {
    QCryptoTLSCredsEndpoint endpoint;
    bool verify_peer;
    GTlsCertificate *identity;          /* this side's certificate and key, or NULL */
    gnutls_x509_trust_list_t trust;     /* ca-cert.pem and ca-crl.pem */
};

static char *creds_file(const char *dir, const char *name, bool required, GError **errp)
{
    char *path = g_build_filename(dir, name, NULL);

    if (g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
        return path;
    }
    if (required) {
        g_set_error(errp, VCCID_ERROR, 0, "Unable to access credentials %s: %s", path,
                    g_file_test(path, G_FILE_TEST_EXISTS) ? "not a regular file"
                                                          : g_strerror(ENOENT));
    }
    g_free(path);
    return NULL;
}

static bool creds_load_trust(QCryptoTLSCreds *creds, const char *dir, GError **errp)
{
    g_autofree char *ca = creds_file(dir, "ca-cert.pem", true, errp);
    g_autofree char *crl = NULL;
    int rc;

    if (!ca) {
        return false;
    }
    crl = creds_file(dir, "ca-crl.pem", false, NULL);
    rc = gnutls_x509_trust_list_init(&creds->trust, 0);
    if (rc < 0) {
        g_set_error(errp, VCCID_ERROR, 0, "Cannot create a trust list: %s", gnutls_strerror(rc));
        return false;
    }
    rc = gnutls_x509_trust_list_add_trust_file(creds->trust, ca, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    if (rc <= 0) {
        g_set_error(errp, VCCID_ERROR, 0, "Unable to load CA certificate %s: %s", ca,
                    rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
        return false;
    }
    if (crl) {
        /*
         * Only a CRL the CA signed (with its cRLSign usage) is taken, and
         * GnuTLS skips any other without an error: a revocation list that
         * silently does not apply is worse than none, so say so.
         */
        rc = gnutls_x509_trust_list_add_trust_file(creds->trust, NULL, crl, GNUTLS_X509_FMT_PEM,
                                                   GNUTLS_TL_VERIFY_CRL, 0);
        if (rc <= 0) {
            g_set_error(errp, VCCID_ERROR, 0, "Unable to load CA revocation list %s: %s", crl,
                        rc < 0 ? gnutls_strerror(rc)
                               : "no revocation list in it that ca-cert.pem signed");
            return false;
        }
    }
    return true;
}

QCryptoTLSCreds *qcrypto_tls_creds_load(const char *dir, QCryptoTLSCredsEndpoint endpoint,
                                        bool verify_peer, GError **errp)
{
    g_autoptr(QCryptoTLSCreds) creds = g_new0(QCryptoTLSCreds, 1);
    bool server = endpoint == QCRYPTO_TLS_CREDS_ENDPOINT_SERVER;
    g_autofree char *cert = NULL;
    g_autofree char *key = NULL;

    if (!g_tls_backend_supports_tls(g_tls_backend_get_default())) {
        g_set_error(errp, VCCID_ERROR, 0,
                    "TLS is not available: GIO has no TLS backend (install glib-networking)");
        return NULL;
    }
    creds->endpoint = endpoint;
    creds->verify_peer = verify_peer;
    if (!creds_load_trust(creds, dir, errp)) {
        return NULL;
    }
    /* A server always shows a certificate; a client only if it has one. */
    cert = creds_file(dir, server ? "server-cert.pem" : "client-cert.pem", server, errp);
    if (server && !cert) {
        return NULL;
    }
    key = creds_file(dir, server ? "server-key.pem" : "client-key.pem", server || cert, errp);
    if ((server || cert) && !key) {
        return NULL;
    }
    if (cert) {
        creds->identity = g_tls_certificate_new_from_files(cert, key, errp);
        if (!creds->identity) {
            g_prefix_error(errp, "Unable to load certificate %s with key %s: ", cert, key);
            return NULL;
        }
    }
    return g_steal_pointer(&creds);
}

void qcrypto_tls_creds_free(QCryptoTLSCreds *creds)
{
    if (!creds) {
        return;
    }
    g_clear_object(&creds->identity);
    if (creds->trust) {
        gnutls_x509_trust_list_deinit(creds->trust, 1);
    }
    g_free(creds);
}

bool qcrypto_tls_creds_check_endpoint(QCryptoTLSCreds *creds, QCryptoTLSCredsEndpoint endpoint,
                                      GError **errp)
{
    if (creds->endpoint != endpoint) {
        g_set_error(errp, VCCID_ERROR, 0, "Expected TLS credentials for a %s endpoint",
                    endpoint == QCRYPTO_TLS_CREDS_ENDPOINT_SERVER ? "server" : "client");
        return false;
    }
    return true;
}

/*
 * The peer is judged after the handshake, against our CA alone: accept
 * whatever glib-networking would have refused or asked about.
 */
static gboolean session_accept_certificate(GTlsConnection *conn, GTlsCertificate *peer,
                                           GTlsCertificateFlags errors, gpointer opaque)
{
    return TRUE;
}

GTlsConnection *qcrypto_tls_session_new(QCryptoTLSCreds *creds, GIOStream *base,
                                        const char *hostname, GError **errp)
{
    GIOStream *conn;

    if (creds->endpoint == QCRYPTO_TLS_CREDS_ENDPOINT_SERVER) {
        conn = g_tls_server_connection_new(base, creds->identity, errp);
        if (!conn) {
            return NULL;
        }
        g_object_set(conn, "authentication-mode",
                     creds->verify_peer ? G_TLS_AUTHENTICATION_REQUIRED
                                        : G_TLS_AUTHENTICATION_NONE, NULL);
    } else {
        g_autoptr(GSocketConnectable) identity =
            hostname ? g_network_address_new(hostname, 0) : NULL;

        conn = g_tls_client_connection_new(base, identity, errp);
        if (!conn) {
            return NULL;
        }
        if (creds->identity) {
            g_tls_connection_set_certificate(G_TLS_CONNECTION(conn), creds->identity);
        }
    }
    /* Peers (QEMU among them) may close without a close_notify: that is an end of stream. */
    g_tls_connection_set_require_close_notify(G_TLS_CONNECTION(conn), FALSE);
    g_signal_connect(conn, "accept-certificate", G_CALLBACK(session_accept_certificate), NULL);
    return G_TLS_CONNECTION(conn);
}

static bool session_import_chain(GTlsCertificate *peer, gnutls_x509_crt_t *crts, unsigned *n,
                                 GError **errp)
{
    *n = 0;
    for (GTlsCertificate *c = peer; c && *n < QCRYPTO_TLS_MAX_CHAIN;
         c = g_tls_certificate_get_issuer(c)) {
        g_autoptr(GByteArray) der = NULL;
        gnutls_datum_t datum;
        int rc;

        g_object_get(c, "certificate", &der, NULL);
        if (!der) {
            break;
        }
        datum.data = der->data;
        datum.size = der->len;
        rc = gnutls_x509_crt_init(&crts[*n]);
        if (rc == 0) {
            rc = gnutls_x509_crt_import(crts[*n], &datum, GNUTLS_X509_FMT_DER);
            if (rc < 0) {
                gnutls_x509_crt_deinit(crts[*n]);
            }
        }
        if (rc < 0) {
            g_set_error(errp, VCCID_ERROR, 0, "Unable to read the peer's certificate: %s",
                        gnutls_strerror(rc));
            return false;
        }
        (*n)++;
    }
    return true;
}

static bool session_verify_chain(QCryptoTLSCreds *creds, gnutls_x509_crt_t *crts, unsigned n,
                                 const char *hostname, GError **errp)
{
    unsigned status = 0;
    time_t now = time(NULL);
    int rc;

    for (unsigned i = 0; i < n; i++) {
        if (gnutls_x509_crt_get_expiration_time(crts[i]) < now) {
            g_set_error(errp, VCCID_ERROR, 0, "The %s certificate has expired",
                        i == 0 ? "peer's" : "peer's issuer");
            return false;
        }
        if (gnutls_x509_crt_get_activation_time(crts[i]) > now) {
            g_set_error(errp, VCCID_ERROR, 0, "The %s certificate is not yet active",
                        i == 0 ? "peer's" : "peer's issuer");
            return false;
        }
    }
    rc = gnutls_x509_trust_list_verify_crt(creds->trust, crts, n, 0, &status, NULL);
    if (rc < 0) {
        g_set_error(errp, VCCID_ERROR, 0, "Unable to verify the peer's certificate: %s",
                    gnutls_strerror(rc));
        return false;
    }
    if (status) {
        gnutls_datum_t text = { NULL, 0 };

        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
        g_set_error(errp, VCCID_ERROR, 0, "The peer's certificate is not trusted: %s",
                    text.data ? (const char *)text.data : "unknown reason");
        gnutls_free(text.data);
        return false;
    }
    if (hostname && !gnutls_x509_crt_check_hostname(crts[0], hostname)) {
        g_set_error(errp, VCCID_ERROR, 0, "Certificate does not match the hostname %s", hostname);
        return false;
    }
    return true;
}

static char *session_peer_dname(gnutls_x509_crt_t crt, GError **errp)
{
    size_t size = 0;
    char *dname;
    int rc = gnutls_x509_crt_get_dn(crt, NULL, &size);

    if (rc != GNUTLS_E_SHORT_MEMORY_BUFFER) {
        g_set_error(errp, VCCID_ERROR, 0, "Cannot read the peer's distinguished name: %s",
                    gnutls_strerror(rc));
        return NULL;
    }
    dname = g_malloc0(size + 1);
    rc = gnutls_x509_crt_get_dn(crt, dname, &size);
    if (rc < 0) {
        g_set_error(errp, VCCID_ERROR, 0, "Cannot read the peer's distinguished name: %s",
                    gnutls_strerror(rc));
        g_free(dname);
        return NULL;
    }
    return dname;
}

bool qcrypto_tls_session_check_peer(QCryptoTLSCreds *creds, GTlsConnection *conn,
                                    const char *hostname, char **dname, GError **errp)
{
    GTlsCertificate *peer = g_tls_connection_get_peer_certificate(conn);
    gnutls_x509_crt_t crts[QCRYPTO_TLS_MAX_CHAIN];
    unsigned n = 0;
    bool ok;

    *dname = NULL;
    if (!peer) {
        if (creds->verify_peer) {
            g_set_error(errp, VCCID_ERROR, 0, "The peer presented no certificate");
            return false;
        }
        return true;
    }
    ok = session_import_chain(peer, crts, &n, errp);
    if (ok && n == 0) {
        g_set_error(errp, VCCID_ERROR, 0, "The peer's certificate is empty");
        ok = false;
    }
    if (ok && creds->verify_peer) {
        ok = session_verify_chain(creds, crts, n, hostname, errp);
    }
    if (ok) {
        *dname = session_peer_dname(crts[0], errp);
        ok = *dname != NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        gnutls_x509_crt_deinit(crts[i]);
    }
    return ok;
}
