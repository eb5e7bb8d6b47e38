#!/bin/sh
# Make a SoftHSM2 token that NSS sees as a removable PKCS#11 slot, with an RSA
# key generated inside the token and a self-signed certificate on it.
#
# usage: make-token.sh DIR
#   DIR/softhsm2.conf  SoftHSM2's configuration (tokens in DIR/tokens); export
#                      SOFTHSM2_CONF=DIR/softhsm2.conf wherever NSS loads it
#   DIR/cert9.db ...   an NSS database (sql:DIR) with the module registered
#   DIR/cert.der       the token's certificate, as certutil exports it
#   DIR/pin.txt        the user PIN (an NSS password file: certutil -f)
# The environment may change the token: TOKEN_LABEL (default "vccid-token"),
# TOKEN_PIN (user PIN, default 648219), TOKEN_SO_PIN (default 38416592),
# TOKEN_CERT (certificate nickname, default "vccid-hsm").
# Running it again on the same DIR changes nothing.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
label=${TOKEN_LABEL:-vccid-token}
pin=${TOKEN_PIN:-648219}
so_pin=${TOKEN_SO_PIN:-38416592}
nick=${TOKEN_CERT:-vccid-hsm}
module=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

for tool in softhsm2-util modutil certutil; do
    command -v $tool >/dev/null ||
        { echo "make-token: $tool missing (scripts/install-deps.sh --test)" >&2; exit 1; }
done
[ -r "$module" ] || { echo "make-token: no PKCS#11 module $module" >&2; exit 1; }

mkdir -p "$1"
dir=$(cd "$1" && pwd)
mkdir -p "$dir/tokens"
chmod 700 "$dir" "$dir/tokens"

# libcacard only mirrors removable slots; SoftHSM2's are fixed unless told.
cat > "$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = true
CONF
SOFTHSM2_CONF=$dir/softhsm2.conf
export SOFTHSM2_CONF

(umask 077 && printf '%s\n' "$pin" > "$dir/pin.txt")

if ! softhsm2-util --show-slots | grep -q "Label: *$label *\$"; then
    softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$pin" >/dev/null
fi

if [ ! -f "$dir/cert9.db" ]; then
    certutil -N -d "sql:$dir" --empty-password
fi
if ! modutil -dbdir "sql:$dir" -list softhsm2 >/dev/null 2>&1; then
    modutil -dbdir "sql:$dir" -add softhsm2 -libfile "$module" -force >/dev/null
fi

if ! certutil -L -d "sql:$dir" -h "$label" -f "$dir/pin.txt" -n "$label:$nick" >/dev/null 2>&1; then
    # certutil wants entropy from a file rather than the keyboard.
    head -c 64 /dev/urandom > "$dir/noise"
    certutil -S -d "sql:$dir" -h "$label" -f "$dir/pin.txt" -z "$dir/noise" \
        -n "$nick" -s "CN=vccid SoftHSM2 test,O=vccid" -x -t "CT,C,C" \
        -k rsa -g 2048 -Z SHA256 -v 120 --keyUsage digitalSignature,keyEncipherment \
        >/dev/null
    rm -f "$dir/noise"
fi
certutil -L -d "sql:$dir" -h "$label" -f "$dir/pin.txt" -n "$label:$nick" -r > "$dir/cert.der"
