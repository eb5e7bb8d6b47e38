#!/bin/sh
# Install what building and testing vccid needs on Debian 12, if missing.
# usage: install-deps.sh [--test]   (--test adds what the tests need)
set -eu

# glib-networking is GIO's TLS backend (loaded at run time); GnuTLS checks peers.
build_pkgs="gcc meson ninja-build pkg-config python3 libglib2.0-dev libcacard-dev libnss3-dev
libnss3-tools libusbredirparser-dev systemtap-sdt-dev libgnutls28-dev glib-networking"
# clang + its runtime for the fuzzers; QEMU to boot test guests; python3 for
# the guest runner; certtool makes the TLS tests' certificates; openssl checks
# the PIV card's signatures and decryptions (tests/qtest/test-piv.c); softhsm2
# is the PKCS#11 token the nss-emulated and vscclient tests lend
# (tests/softhsm/make-token.sh); libvirt's daemons and virsh start the
# libvirt guest tests' domains (tests/guest/libvirt.py); the guest's own
# packages are fetched by tests/guest.
test_pkgs="clang libclang-rt-14-dev qemu-system-x86 python3 cpio busybox-static gnutls-bin
openssl softhsm2 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients adduser"

pkgs=$build_pkgs
[ "${1:-}" = "--test" ] && pkgs="$pkgs $test_pkgs"

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
# libvirt runs QEMU as libvirt-qemu (group libvirt-qemu, also in kvm).
# libvirt-daemon-system makes that user, but it also brings polkitd, D-Bus
# and systemd-sysv or sysv init scripts, none of which the tests use: make
# the user as its postinst does.
libvirt_user() {
    command -v libvirtd >/dev/null || return 0
    getent group kvm >/dev/null || addgroup --quiet --system kvm
    getent passwd libvirt-qemu >/dev/null ||
        adduser --quiet --system --ingroup kvm --disabled-login --disabled-password \
            --home /var/lib/libvirt --no-create-home --gecos "Libvirt Qemu" libvirt-qemu
    getent group libvirt-qemu >/dev/null || {
        addgroup --quiet --system libvirt-qemu
        adduser --quiet libvirt-qemu libvirt-qemu
    }
}

if [ -z "$missing" ]; then
    [ "${1:-}" = "--test" ] && [ "$(id -u)" -eq 0 ] && libvirt_user
    exit 0
fi

echo "install-deps: installing$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
[ "${1:-}" = "--test" ] && [ "$(id -u)" -eq 0 ] && libvirt_user
exit 0
