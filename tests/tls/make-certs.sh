#!/bin/sh
# Make the TLS test credentials in OUTDIR, one directory per role, with
# QEMU's file names (-object tls-creds-x509,dir=OUTDIR/ROLE):
#   server/          ca-cert.pem server-cert.pem server-key.pem
#                    (CN=localhost, DNS localhost, IP 127.0.0.1)
#   client/          ca-cert.pem client-cert.pem client-key.pem
#                    (DN "CN=client,O=vccid test,C=GB")
#   client-mallory/  the same CA, DN "CN=mallory,O=vccid test,C=GB"
#   client-other-ca/ a client certificate from another CA (which it trusts)
#   client-expired/  the right CA, but a certificate that expired yesterday
#   client-revoked/  the right CA, but a certificate server/ca-crl.pem revokes
#   client-nocert/   ca-cert.pem alone
# usage: make-certs.sh OUTDIR     (needs certtool, from gnutls-bin)
set -eu

out=$1
mkdir -p "$out"
cd "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vccid-certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

key() {
    certtool --generate-privkey --key-type=ecdsa --outfile "$1" 2>/dev/null
}

ca() {   # ca NAME CN
    key "$tmp/$1-key.pem"
    cat > "$tmp/$1.info" <<EOT
cn = $2
ca
cert_signing_key
crl_signing_key
expiration_days = 30
EOT
    certtool --generate-self-signed --load-privkey "$tmp/$1-key.pem" \
        --template "$tmp/$1.info" --outfile "$tmp/$1-cert.pem" 2>/dev/null
}

leaf() {   # leaf CA DIR ROLE TEMPLATE-LINES...
    ca_name=$1 dir=$2 role=$3
    shift 3
    mkdir -p "$dir"
    key "$dir/$role-key.pem"
    printf '%s\n' "$@" > "$tmp/leaf.info"
    certtool --generate-certificate --load-privkey "$dir/$role-key.pem" \
        --load-ca-certificate "$tmp/$ca_name-cert.pem" --load-ca-privkey "$tmp/$ca_name-key.pem" \
        --template "$tmp/leaf.info" --outfile "$dir/$role-cert.pem" 2>/dev/null
    cp "$tmp/$ca_name-cert.pem" "$dir/ca-cert.pem"
}

ca ca "vccid test CA"
ca other "another CA"

leaf ca server server "cn = localhost" "dns_name = localhost" "ip_address = 127.0.0.1" \
    tls_www_server encryption_key signing_key "expiration_days = 30"
leaf ca client client "cn = client" "organization = vccid test" "country = GB" \
    tls_www_client encryption_key signing_key "expiration_days = 30"
leaf ca client-mallory client "cn = mallory" "organization = vccid test" "country = GB" \
    tls_www_client encryption_key signing_key "expiration_days = 30"
leaf other client-other-ca client "cn = client" "organization = vccid test" "country = GB" \
    tls_www_client encryption_key signing_key "expiration_days = 30"
leaf ca client-expired client "cn = client" "organization = vccid test" "country = GB" \
    tls_www_client encryption_key signing_key \
    "activation_date = \"$(date -u -d '-3 days' '+%Y-%m-%d %H:%M:%S')\"" \
    "expiration_date = \"$(date -u -d '-1 day' '+%Y-%m-%d %H:%M:%S')\""
leaf ca client-revoked client "cn = revoked" "organization = vccid test" "country = GB" \
    tls_www_client encryption_key signing_key "expiration_days = 30"
printf 'crl_next_update = 30\ncrl_number = 1\n' > "$tmp/crl.info"
certtool --generate-crl --load-ca-privkey "$tmp/ca-key.pem" --load-ca-certificate "$tmp/ca-cert.pem" \
    --load-certificate client-revoked/client-cert.pem --template "$tmp/crl.info" \
    --outfile server/ca-crl.pem 2>/dev/null
mkdir -p client-nocert
cp "$tmp/ca-cert.pem" client-nocert/ca-cert.pem
