#!/bin/sh
# Install what is missing, build, and run every test:
#   build/        gcc: unit, qtest and guest tests (a real Linux guest under QEMU)
#   build-asan/   gcc with ASan+UBSan: unit and qtest
#   build-fuzz/   clang libFuzzer targets, each for a bounded time
# Prints "tests: N passed, N failed" last; exits non-zero if anything failed.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/scripts/install-deps.sh" --test || exit 1

failed_setup=0
setup() {
    dir=$1; shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || {
            cat "$dir.setup.log"; failed_setup=1; return 1; }
    fi
    ninja -C "$dir" || { failed_setup=1; return 1; }
}

run() {
    dir=$1; shift
    echo "=== meson test -C $dir $*"
    meson test -C "$dir" --print-errorlogs "$@"
}

# Tests that are scripts, not meson tests, record "OK name" or "FAIL name"
# here; the count at the end reads them.
results="$top/build/scripted-tests.results"
mkdir -p build && rm -f "$results"
record() {  # record NAME COMMAND...: run it, and record whether it passed
    name=$1; shift
    if "$@"; then echo "OK $name" >>"$results"; else echo "FAIL $name" >>"$results"; fi
}

setup build && run build --suite unit --suite qtest --suite guest

# README's first command: builds, makes the card, serves it, and a usbredir
# host sees the reader with its card.
echo "=== scripts/run-demo.sh --check"
record run-demo "$top/scripts/run-demo.sh" --check
setup build-asan -Dsanitize=true -Dguest_tests=disabled && run build-asan --suite unit --suite qtest

# The sanitizer builds of vccid and vscclient under a real guest: any ASan
# or UBSan report (written to a log_path file only when there is one) or a
# failed check fails the scenario.
guest_asan_run() {
    logs=$1; shift
    rm -f "$logs".*
    if ASAN_OPTIONS="log_path=$logs" UBSAN_OPTIONS="log_path=$logs:print_stacktrace=1" \
        python3 "$top/tests/guest/scenarios.py" --workdir "$top/build/tests/guest" \
            --vccid "$top/build-asan/system/vccid" "$@" &&
        ! ls "$logs".* >/dev/null 2>&1; then
        return 0
    fi
    cat "$logs".* 2>/dev/null
    return 1
}
guest_asan() {
    name=$1; shift
    echo "=== guest scenario under ASan+UBSan: $name"
    record "asan-$name" guest_asan_run "$top/build-asan/sanitizer-$name" "$@"
}
if [ -x build-asan/system/vccid ] && command -v qemu-system-x86_64 >/dev/null; then
    guest_asan listen-xhci vccid-listen --usb xhci
    guest_asan passthru-xhci --vscclient "$top/build-asan/contrib/vscclient/vscclient" \
        passthru --usb xhci
    # The PIV applet parses every APDU the guest's OpenSC and yubico-piv-tool send.
    guest_asan piv-xhci piv --usb xhci
    # A SoftHSM2 token: in the emulated card, and lent by vscclient.
    guest_asan token-xhci token --usb xhci
    guest_asan token-passthru-xhci --vscclient "$top/build-asan/contrib/vscclient/vscclient" \
        token-passthru --usb xhci
    # Cards and readers deleted and added over QMP while a guest uses them.
    guest_asan qmp-card-events-xhci qmp-card-events --usb xhci
    guest_asan qmp-reader-del-xhci qmp-reader-del --usb xhci
fi
CC=clang setup build-fuzz -Dfuzzing=true -Dsanitize=true -Dguest_tests=disabled &&
    run build-fuzz --suite fuzz

# Count results from each build's machine-readable log.
python3 - "$failed_setup" "$results" build build-asan build-fuzz <<'PY'
import json, os, sys
failed_setup = int(sys.argv[1])
passed = failed = skipped = 0
if os.path.exists(sys.argv[2]):
    for line in open(sys.argv[2]):
        if line.startswith('OK'):
            passed += 1
        else:
            failed += 1
for d in sys.argv[3:]:
    log = os.path.join(d, 'meson-logs', 'testlog.json')
    if not os.path.exists(log):
        continue
    for line in open(log):
        r = json.loads(line)['result']
        if r in ('OK', 'EXPECTEDFAIL'):
            passed += 1
        elif r == 'SKIP':
            skipped += 1
        else:
            failed += 1
failed += failed_setup
print(f"tests: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or passed == 0 else 0)
PY
