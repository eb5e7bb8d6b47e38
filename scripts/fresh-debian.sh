#!/bin/bash
# Run a command in a clean clone of this tree inside a fresh, minimal Debian 12
# root filesystem: what a new user's machine has before README's commands run.
# The host's own packages (libccid, pcscd, OpenSC, ...) are not visible there,
# so a test that passes only because the host has them fails here.
#
# usage (as root): scripts/fresh-debian.sh [COMMAND]   (default: scripts/run-tests.sh)
#   FRESH_CACHE=DIR   where the root filesystem tarball and the downloaded
#                     .debs are kept between runs (default /var/cache/vccid-fresh-debian)
#   FRESH_KEEP=1      keep the root filesystem afterwards (its path is printed)
#
# The first run builds a minbase Debian 12 root with debootstrap (about a
# minute) and keeps it as a tarball; every run unpacks a new copy, clones the
# committed tree into /src (uncommitted changes are not included), mounts
# /proc, /sys and /dev and runs COMMAND there. Packages that apt downloads in
# the root are kept in the cache (only the .deb files, never an installed
# system), so later runs install them without fetching them again.
# The test logs are copied back to ./fresh-debian-logs/. Exit status: COMMAND's.
set -euo pipefail

die() { echo "fresh-debian: $*" >&2; exit 2; }

cache=${FRESH_CACHE:-/var/cache/vccid-fresh-debian}
top=$(git rev-parse --show-toplevel 2>/dev/null) || die "not inside a git checkout"
cmd=${1:-scripts/run-tests.sh}

[ "$(id -u)" = 0 ] || die "must run as root (it needs chroot and mounts); a test run on this host instead would not prove a fresh machine"
if ! command -v debootstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
        die "cannot install debootstrap, so there is no way to make a fresh root"
fi

mkdir -p "$cache/archives/partial"
tarball="$cache/bookworm-minbase.tar"
if [ ! -f "$tarball" ]; then
    mirror=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/ | awk '{print $2}' | grep -m1 '/debian/*$' || true)
    [ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -m1 '/debian/*$' || true)
    [ -n "$mirror" ] || die "no Debian mirror in this host's apt sources"
    tmp=$(mktemp -d /var/tmp/fresh-debian-bootstrap.XXXXXX)
    echo "fresh-debian: debootstrap --variant=minbase bookworm from $mirror" >&2
    if ! debootstrap --variant=minbase bookworm "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
        tail -20 "$cache/debootstrap.log" >&2
        rm -rf --one-file-system "$tmp"
        die "debootstrap failed (log: $cache/debootstrap.log)"
    fi
    tar -C "$tmp" -cf "$tarball.new" . && mv "$tarball.new" "$tarball"
    rm -rf --one-file-system "$tmp"
fi

root=$(mktemp -d /var/tmp/fresh-debian.XXXXXX)
mounts="proc sys dev var/cache/apt/archives"
cleanup() {
    for m in $mounts; do
        umount -R "$root/$m" 2>/dev/null || umount -l "$root/$m" 2>/dev/null || true
    done
    if [ -d "$root/src" ]; then
        rm -rf "$top/fresh-debian-logs"
        mkdir -p "$top/fresh-debian-logs"
        for d in "$root"/src/build*/meson-logs "$root"/src/build/tests/guest; do
            [ -d "$d" ] || continue
            dest="$top/fresh-debian-logs/${d#"$root"/src/}"
            mkdir -p "$dest"
            find "$d" -maxdepth 1 -type f \( -name '*.txt' -o -name '*.json' -o -name '*.log' \) \
                -exec cp {} "$dest/" \; 2>/dev/null || true
        done
    fi
    if [ -n "${FRESH_KEEP:-}" ]; then
        echo "fresh-debian: kept $root" >&2
    else
        rm -rf --one-file-system "$root"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

tar -C "$root" -xf "$tarball"
# mktemp made both the root and the tarball's "./" 0700; a real / is 0755, and
# services that drop root (libvirt's QEMU as libvirt-qemu) need to pass it.
chmod 0755 "$root"
git clone -q "$top" "$root/src"
[ -f /etc/resolv.conf ] && cp /etc/resolv.conf "$root/etc/resolv.conf" || true
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"; mount --make-rslave "$root/sys"
mount --rbind /dev "$root/dev"; mount --make-rslave "$root/dev"
mount --bind "$cache/archives" "$root/var/cache/apt/archives"
# minbase apt deletes what it downloaded after installing; keep it for the next run.
echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > "$root/etc/apt/apt.conf.d/01keep-debs"

echo "fresh-debian: running '$cmd' in a fresh Debian 12 root ($root, commit $(git -C "$top" rev-parse --short HEAD))" >&2
set +e
chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 VCCID_FRESH_ROOT=1 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd /src && $cmd"
rc=$?
set -e
echo "fresh-debian: exit status $rc" >&2
exit $rc
