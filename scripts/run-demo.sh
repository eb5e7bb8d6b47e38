#!/bin/sh
# Build vccid and serve a self-made certificate card (usb-ccid +
# ccid-card-emulated,backend=certificates) over usbredir, printing the QEMU
# options that attach it. Ctrl-C stops it.
#
# usage: run-demo.sh [--tcp PORT]     (default: a unix socket in build/)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/scripts/install-deps.sh"
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build system/vccid >/dev/null

db="$top/build/demo-cert-db"
"$top/scripts/make-cert-db.sh" "$db"

if [ "${1:-}" = "--tcp" ]; then
    port=${2:?usage: run-demo.sh --tcp PORT}
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

exec "$top/build/system/vccid" \
    -chardev "$chardev" \
    -device usb-ccid,id=ccid \
    -device "ccid-card-emulated,backend=certificates,db=sql:$db,cert1=id-cert,cert2=signing-cert,cert3=encryption-cert" \
    -export usbredir,chardev=redir,device=ccid
