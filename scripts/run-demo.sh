#!/bin/sh
# Build vccid and serve a self-made certificate card (usb-ccid +
# ccid-card-emulated,backend=certificates) over usbredir, printing the QEMU
# options that attach it. Ctrl-C stops it.
#
# usage: run-demo.sh [--tcp PORT] [--check]
#   (default: a unix socket in build/)
#   --check   serve until a usbredir host (tests/demo/demo-check, the role
#             QEMU's usb-redir plays) has seen the reader and its card
#             answer, then stop; exit 0 only if it did. scripts/run-tests.sh
#             runs this.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

port=""
check=""
while [ $# -gt 0 ]; do
    case "$1" in
    --tcp) port=${2:?usage: run-demo.sh [--tcp PORT] [--check]}; shift 2 ;;
    --check) check=1; shift ;;
    *) echo "usage: run-demo.sh [--tcp PORT] [--check]" >&2; exit 2 ;;
    esac
done

"$top/scripts/install-deps.sh"
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build system/vccid ${check:+tests/demo/demo-check} >/dev/null

db="$top/build/demo-cert-db"
"$top/scripts/make-cert-db.sh" "$db"

if [ -n "$port" ]; then
    chardev="socket,id=redir,host=127.0.0.1,port=$port,server=on,wait=off"
    qemu_chardev="socket,id=vccid,host=127.0.0.1,port=$port"
else
    sock="$top/build/vccid.sock"
    chardev="socket,id=redir,path=$sock,server=on,wait=off"
    qemu_chardev="socket,id=vccid,path=$sock"
fi

cat <<MSG
vccid: serving a CAC card made of the certificates in $db
Attach it to a QEMU guest with:
  qemu-system-x86_64 ... -device qemu-xhci,id=xhci \\
      -chardev $qemu_chardev -device usb-redir,chardev=vccid,bus=xhci.0
In the guest, pcscd + libccid list the reader (libccid names 08e6:4433 "Gemalto Gemplus
USB SmartCard Reader 433-Swap") and OpenSC reads the card:
  pkcs11-tool -O     (the CA certificate is $db/fake-smartcard-ca.cer)
MSG

set -- "$top/build/system/vccid" \
    -chardev "$chardev" \
    -device usb-ccid,id=ccid \
    -device "ccid-card-emulated,backend=certificates,db=sql:$db,cert1=id-cert,cert2=signing-cert,cert3=encryption-cert" \
    -export usbredir,chardev=redir,device=ccid

[ -n "$check" ] || exec "$@"

# --check: the same vccid in the background, and a host in the foreground.
[ -z "$port" ] || { echo "run-demo.sh: --check serves on the unix socket only" >&2; exit 2; }
rm -f "$sock"
"$@" &
vccid=$!
trap 'kill $vccid 2>/dev/null; wait $vccid 2>/dev/null' EXIT
waited=0
until [ -S "$sock" ]; do
    kill -0 $vccid 2>/dev/null || { echo "run-demo.sh: vccid exited before serving" >&2; exit 1; }
    [ $waited -lt 100 ] || { echo "run-demo.sh: no socket at $sock after 10 s" >&2; exit 1; }
    sleep 0.1
    waited=$((waited + 1))
done
"$top/build/tests/demo/demo-check" "$sock"
