#!/bin/sh
# Create the three-certificate NSS database that ccid-card-emulated's
# "certificates" backend and vscclient's certificate cards read: a self-signed
# CA and three user certificates (id-cert, signing-cert, encryption-cert).
#
# usage: make-cert-db.sh DIR
# Idempotent: an existing complete database in DIR is left alone.
# The database has an empty password, so no PIN is needed to open it.
set -eu

dir=${1:?usage: make-cert-db.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
db="sql:$dir"

command -v certutil >/dev/null 2>&1 || {
    echo "make-cert-db.sh: certutil not found (apt-get install libnss3-tools)" >&2
    exit 1
}

if [ -f "$dir/cert9.db" ] && certutil -L -d "$db" -n encryption-cert >/dev/null 2>&1; then
    exit 0
fi
rm -f "$dir/cert9.db" "$dir/key4.db" "$dir/pkcs11.txt"

noise="$dir/.noise"
head -c 2048 /dev/urandom > "$noise"
log="$dir/.certutil.log"
trap 'rm -f "$noise" "$log"' EXIT

# certutil chatters on stderr; show its output only when it fails.
quiet() {
    "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
}

quiet certutil -N -d "$db" --empty-password
# Serial numbers are fixed so two runs of this script describe the same
# certificates to a reader (but keys are always fresh). The CA is marked a CA
# (basic constraints, answered on stdin) so that verifiers accept its chain.
printf 'y\n0\ny\n' | quiet certutil -S -d "$db" -z "$noise" -s "CN=Fake Smart Card CA" -x \
    -t TC,TC,TC -n fake-smartcard-ca -m 1 -v 120 -2
quiet certutil -S -d "$db" -z "$noise" -t ,, -s "CN=John Doe" -n id-cert \
    -c fake-smartcard-ca -m 2 -v 120
quiet certutil -S -d "$db" -z "$noise" -t ,, -s "CN=John Doe (signing)" --nsCertType smime \
    -n signing-cert -c fake-smartcard-ca -m 3 -v 120
quiet certutil -S -d "$db" -z "$noise" -t ,, -s "CN=John Doe (encryption)" --nsCertType sslClient \
    -n encryption-cert -c fake-smartcard-ca -m 4 -v 120
quiet certutil -L -r -d "$db" -n fake-smartcard-ca -o "$dir/fake-smartcard-ca.cer"
