#!/bin/sh
# Build (once) the small Linux guest that the guest tests and the benchmark
# boot: Debian's own kernel and an initramfs holding busybox, pcscd + libccid,
# OpenSC, pcsc_scan, lsusb, openssl, usbip and our APDU benchmark client.
#
# usage: build-guest.sh OUTDIR
#   OUTDIR/vmlinuz        the kernel
#   OUTDIR/initramfs.cpio the base initramfs (uncompressed newc: TCG boots
#                         faster without decompressing, and the runner
#                         appends a second archive with the scenario to it)
#
# Everything comes from Debian packages fetched with `apt-get download` and
# unpacked with `dpkg -x`, so the guest does not depend on what the host has
# installed. The host lends only its C library (ldd runs its loader, and the
# guest takes libc6's libraries from it) and its compiler (for the benchmark
# client); any other file that would come from outside the unpacked packages
# stops the build with its name. The result is cached: a second run with the
# same inputs returns at once. Safe to run concurrently (flock); a failed or
# interrupted run leaves nothing behind but the downloaded packages.
set -eu

out=${1:?usage: build-guest.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
srcroot=$(cd "$here/../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Parallel meson tests all call us; the first builds, the others wait.
exec 9>"$out/.lock"
flock 9

# Userland packages. Libraries are listed too so that the ldd pass below
# finds them in the unpacked tree even on a host that lacks them; libc6 is
# taken from the host (every Debian host has it, and ldd runs its loader).
USER_PKGS="busybox-static pcscd libccid libpcsclite1 opensc opensc-pkcs11
pcsc-tools usbutils openssl libssl3 libusb-1.0-0 libudev1 libsystemd0 zlib1g
libglib2.0-0 libffi8 libpcre2-8-0 libmount1 libblkid1 libselinux1 libgcrypt20
libgpg-error0 liblz4-1 liblzma5 libzstd1 libcap2 libgcc-s1 libpcsclite-dev
usbip libwrap0 usb.ids
yubico-piv-tool libykpiv2"

# Kernel modules in load order (each one's dependencies come before it; the
# build checks this against the modules' own depends= fields).
MODULES="drivers/usb/common/usb-common drivers/usb/core/usbcore
drivers/usb/host/xhci-hcd drivers/usb/host/xhci-pci
drivers/usb/host/ehci-hcd drivers/usb/host/ehci-pci
drivers/usb/host/uhci-hcd drivers/usb/host/ohci-hcd drivers/usb/host/ohci-pci
drivers/usb/mon/usbmon
drivers/usb/usbip/usbip-core drivers/usb/usbip/vhci-hcd
drivers/net/ethernet/intel/e1000/e1000"

inputs_hash() {
    {
        cat "$here/build-guest.sh" "$here/init" "$srcroot/bench/apdu-bench.c" \
            "$here/usbreset.c"
        echo "$USER_PKGS $MODULES"
    } | sha256sum | cut -d' ' -f1
}

hash=$(inputs_hash)
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$hash" ] &&
   [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.cpio" ]; then
    exit 0
fi
echo "build-guest: building the guest in $out" >&2

# --- fetch ---------------------------------------------------------------
kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
             sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
if [ -z "$kernel_pkg" ]; then
    # No package lists yet on a fresh machine.
    apt-get update >&2
    kernel_pkg=$(apt-cache depends linux-image-amd64 |
                 sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
fi
[ -n "$kernel_pkg" ] || { echo "build-guest: cannot resolve linux-image-amd64" >&2; exit 1; }

# Everything but the downloaded packages is built in a scratch directory
# that goes away however this script ends, so a failed or interrupted run
# leaves nothing that a later one could trip over. (pkgroot/ and root/ are
# where earlier versions of this script built.)
rm -rf "$out"/scratch.* "$out/pkgroot" "$out/root" "$out"/*.new "$out"/debs/partial.*
work=$(mktemp -d "$out/scratch.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM HUP

mkdir -p "$out/debs"
missing=""
for p in $kernel_pkg $USER_PKGS; do
    deb=$(ls "$out/debs/${p}_"*.deb 2>/dev/null | tail -n1)
    [ -n "$deb" ] && dpkg-deb --info "$deb" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    # Download next to debs/ and move the packages in only once they are all
    # whole. _apt cannot write into most build directories: download as
    # ourselves.
    partial=$(mktemp -d "$out/debs/partial.XXXXXX")
    (cd "$partial" && apt-get -q -o APT::Sandbox::User=root download $missing >&2)
    mv "$partial"/*.deb "$out/debs/"
    rmdir "$partial"
fi

# --- unpack --------------------------------------------------------------
pkgroot="$work/pkgroot"
root="$work/root"
mkdir -p "$pkgroot"
for p in $kernel_pkg $USER_PKGS; do
    dpkg -x "$(ls "$out/debs/${p}_"*.deb | tail -n1)" "$pkgroot"
done
kver=${kernel_pkg#linux-image-}

# A package's absolute symlink (libccid's Info.plist -> /etc/libccid_Info.plist)
# names a file of the system it is installed on: here, the unpacked tree, not
# the host. Re-point each one into pkgroot.
find "$pkgroot" -type l | while read -r link; do
    target=$(readlink "$link")
    case "$target" in
    /*) ln -sfn "$pkgroot$target" "$link" ;;
    esac
done

# Fail, naming the file, unless path resolves to a file inside pkgroot.
in_pkgroot() {
    real=$(realpath -e "$1" 2>/dev/null) || {
        echo "build-guest: $1 does not resolve to a file in the unpacked packages" >&2
        return 1; }
    case "$real" in
    "$pkgroot"/*) return 0 ;;
    esac
    echo "build-guest: $1 resolves to $real, outside the unpacked packages" >&2
    return 1
}

# The libraries of libc6 are the only ones the guest may take from the host.
host_libc_libs=" $(dpkg -L libc6 | sed -n 's|.*/\([^/]*\.so[.0-9]*\)$|\1|p' | tr '\n' ' ') "

# --- assemble the initramfs tree -----------------------------------------
mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib/x86_64-linux-gnu" \
         "$root/usr/lib64" "$root/etc" "$root/proc" "$root/sys" "$root/dev" \
         "$root/run" "$root/tmp" "$root/var/run" "$root/modules" "$root/scenario"
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"

# A package file may sit under /bin or /usr/bin depending on the package.
pkgfile() {
    for cand in "$pkgroot/$1" "$pkgroot/usr/$1" "$pkgroot/${1#/usr}"; do
        [ -e "$cand" ] && { in_pkgroot "$cand" && echo "$cand"; return; }
    done
    echo "build-guest: $1 not found in the unpacked packages" >&2
    return 1
}

libpath="$pkgroot/lib/x86_64-linux-gnu:$pkgroot/usr/lib/x86_64-linux-gnu"

# Copy an ELF file's shared libraries into the tree: each one from the
# unpacked packages, or libc6's from the host.
copy_libs() {
    deps=$(LD_LIBRARY_PATH="$libpath" ldd "$1" 2>&1) || {
        case "$deps" in
        *"not a dynamic executable"*) return 0 ;;  # busybox-static
        esac
        echo "build-guest: ldd failed on $1: $deps" >&2; return 1; }
    if echo "$deps" | grep -q 'not found'; then
        echo "build-guest: unresolved libraries for $1:" >&2
        echo "$deps" | grep 'not found' >&2
        return 1
    fi
    echo "$deps" | awk '/=> \//{print $3} /^\t\/.*ld-linux/{print $1}' |
    while read -r lib; do
        case "$host_libc_libs" in
        *" $(basename "$lib") "*) ;;
        *) in_pkgroot "$lib" || { echo "build-guest: (a library of $1)" >&2; return 1; } ;;
        esac
        case "$lib" in
        */ld-linux-x86-64.so.2) dst="$root/usr/lib64/ld-linux-x86-64.so.2" ;;
        *) dst="$root/usr/lib/x86_64-linux-gnu/$(basename "$lib")" ;;
        esac
        [ -e "$dst" ] || cp -L "$lib" "$dst"
    done
}

install_elf() {  # install_elf SRC DEST-in-root
    case "$1" in
    "$out"/*) ;;  # built here
    *) in_pkgroot "$1" ;;
    esac
    mkdir -p "$(dirname "$root/$2")"
    cp -L "$1" "$root/$2"
    copy_libs "$1"
}

install_elf "$(pkgfile /bin/busybox)" /usr/bin/busybox
install_elf "$(pkgfile /usr/sbin/pcscd)" /usr/sbin/pcscd
install_elf "$(pkgfile /usr/bin/opensc-tool)" /usr/bin/opensc-tool
install_elf "$(pkgfile /usr/bin/pkcs11-tool)" /usr/bin/pkcs11-tool
install_elf "$(pkgfile /usr/bin/pcsc_scan)" /usr/bin/pcsc_scan
install_elf "$(pkgfile /usr/bin/lsusb)" /usr/bin/lsusb
install_elf "$(pkgfile /usr/bin/openssl)" /usr/bin/openssl
# The USB/IP client (usbip list -r, usbip attach) and the names it prints.
install_elf "$(pkgfile /usr/sbin/usbip)" /usr/sbin/usbip
mkdir -p "$root/usr/share/misc"
cp -L "$(pkgfile /usr/share/misc/usb.ids)" "$root/usr/share/misc/usb.ids"
install_elf "$(pkgfile /usr/bin/piv-tool)" /usr/bin/piv-tool
install_elf "$(pkgfile /usr/bin/yubico-piv-tool)" /usr/bin/yubico-piv-tool
# dlopen()ed, so ldd of the programs does not see them.
install_elf "$(pkgfile /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so)" \
    /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
install_elf "$(pkgfile /usr/lib/x86_64-linux-gnu/libpcsclite.so.1)" \
    /usr/lib/x86_64-linux-gnu/libpcsclite.so.1
# glibc dlopen()s it for pthread_exit(), which pcscd calls.
install_elf "$(pkgfile /lib/x86_64-linux-gnu/libgcc_s.so.1)" \
    /usr/lib/x86_64-linux-gnu/libgcc_s.so.1

# The CCID driver bundle: pcscd matches readers against its Info.plist.
bundle=usr/lib/pcsc/drivers/ifd-ccid.bundle
mkdir -p "$root/$(dirname $bundle)"
# (Info.plist is a symlink to /etc/libccid_Info.plist: copy the file.)
find "$pkgroot/$bundle" | while read -r f; do in_pkgroot "$f"; done
cp -RL "$pkgroot/$bundle" "$root/$bundle"
copy_libs "$root/$bundle/Contents/Linux/libccid.so"

mkdir -p "$root/etc/opensc" "$root/usr/lib/ssl"
for f in etc/opensc/opensc.conf etc/ssl/openssl.cnf; do in_pkgroot "$pkgroot/$f"; done
cp "$pkgroot/etc/opensc/opensc.conf" "$root/etc/opensc/opensc.conf"
cp "$pkgroot/etc/ssl/openssl.cnf" "$root/usr/lib/ssl/openssl.cnf"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"

# The benchmark client, built on the host against the unpacked
# libpcsclite-dev (so the host needs no PC/SC development package).
cc -O2 -Wall -Wextra -Werror -std=gnu11 -o "$out/apdu-bench" \
    "$srcroot/bench/apdu-bench.c" -I"$pkgroot/usr/include" -I"$pkgroot/usr/include/PCSC" \
    -L"$pkgroot/usr/lib/x86_64-linux-gnu" -lpcsclite
install_elf "$out/apdu-bench" /usr/bin/apdu-bench
cc -O2 -Wall -Wextra -Werror -std=gnu11 -o "$out/usbreset" "$here/usbreset.c"
install_elf "$out/usbreset" /usr/bin/usbreset

# Kernel modules, flat, with the load order for /init.
moddir="$pkgroot/lib/modules/$kver/kernel"
loaded=""
for m in $MODULES; do
    name=$(basename "$m")
    ko="$moddir/$m.ko"
    [ -f "$ko" ] || ko="$moddir/$m.ko.xz"
    [ -f "$ko" ] || { echo "build-guest: module $m missing" >&2; exit 1; }
    case "$ko" in
    *.xz) xz -dc "$ko" > "$root/modules/$name.ko" ;;
    *) cp "$ko" "$root/modules/$name.ko" ;;
    esac
    deps=$(strings "$root/modules/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' ')
    for d in $deps; do
        case " $loaded " in
        *" $d "*) ;;
        *) echo "build-guest: module $name needs $d before it" >&2; exit 1 ;;
        esac
    done
    loaded="$loaded $name"
    echo "$name" >> "$root/modules/order"
done

cp "$here/init" "$root/init"
chmod 755 "$root/init"

cp "$pkgroot/boot/vmlinuz-$kver" "$out/vmlinuz.new"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
    > "$out/initramfs.cpio.new"
mv "$out/vmlinuz.new" "$out/vmlinuz"
mv "$out/initramfs.cpio.new" "$out/initramfs.cpio"
echo "$kver" > "$out/kernel-version"
echo "$hash" > "$out/stamp"
echo "build-guest: kernel $kver, initramfs $(du -h "$out/initramfs.cpio" | cut -f1)" >&2
