#!/bin/sh
# Build and run bench/host-passthru.c (the passthru card without a guest,
# plain TCP against TLS) against a meson build of this tree.
#
# usage: bench/host-bench.sh [BUILDDIR] [host-passthru options...]
#        (default BUILDDIR: build; options: see bench/host-passthru.c)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
srcroot=$(cd "$here/.." && pwd)
builddir=$(cd "${1:-$srcroot/build}" && pwd)
[ $# -gt 0 ] && shift
exe="$builddir/bench/host-passthru"

mkdir -p "$builddir/bench"
# The qtest harness is a static library of the build (tests/qtest/meson.build).
cc -O2 -g -Wall -o "$exe" "$here/host-passthru.c" -I"$srcroot/tests/qtest" \
    "$builddir/tests/qtest/libqtest-vccid.a" \
    $(pkg-config --cflags --libs glib-2.0 libusbredirparser-0.5)

VCCID_BINARY="$builddir/system/vccid" \
VSCCLIENT_BINARY="$builddir/contrib/vscclient/vscclient" \
VCCID_SOURCE_ROOT="$srcroot" \
    exec "$exe" "$@"
