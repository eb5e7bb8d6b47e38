#!/bin/sh
# APDU benchmark in a real guest: QEMU's built-in reader (usb-ccid +
# ccid-card-emulated) against vccid over usbredir, same card, same guest.
#
# usage: bench/run-bench.sh [BUILDDIR]     (default: build-guest)
#   VCCID_BENCH_N=500      APDUs per run
#   BENCH_USB="xhci uhci"  controllers to measure on
#   BENCH_REPEAT=3         runs of each setup (interleaved); the median of
#                          each figure is reported (this machine is shared)
#   BENCH_TCP=0            1: also vccid with usbredir over loopback TCP
#   BENCH_USBIP=0          1: also vccid's USB/IP export, attached by the
#                          guest's usbip over QEMU user networking
#   BENCH_PASSTHRU=1       also the passthru card (vscclient over loopback
#                          TCP) in QEMU's ccid-card-passthru and in vccid's
#   BENCH_TLS=0            1: also vccid's passthru card with vscclient over
#                          TLS (client certificates, tls-authz), for the
#                          ratio TLS/plain
#   BENCH_TRACE=DIR        vccid with the emulated card writes the trace
#                          points of bench/trace-latency.py to
#                          DIR/vccid-USB-RUN.trace; the time spent inside
#                          vccid is printed at the end, per controller
#                          (tracing costs time: compare APDU/s without it)
#
# Prints each setup's figures (APDU/s, p50, p99 of a SELECT of the CAC PKI
# applet; time to read the whole first certificate with READ BUFFER) and the
# ratio vccid/QEMU of each figure on the same controller. Not a pass/fail
# test: it is kept out of `meson test`.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
srcroot=$(cd "$here/.." && pwd)
builddir=$(cd "${1:-$srcroot/build-guest}" && pwd)
vccid="$builddir/system/vccid"
vscclient="$builddir/contrib/vscclient/vscclient"
workdir="$builddir/tests/guest"
usbs=${BENCH_USB:-xhci uhci}
results=$(mktemp)
trap 'rm -f "$results"' EXIT
# What bench/trace-latency.py pairs: transfers on the socket, the card's worker.
trace_events=chardev_socket_read,chardev_socket_write,usbredir_bulk_*,ccid_card_emulated_*
tracedir=${BENCH_TRACE:-}
if [ -n "$tracedir" ]; then
    mkdir -p "$tracedir"
    tracedir=$(cd "$tracedir" && pwd)
fi

[ -x "$vccid" ] || { echo "run-bench: no vccid at $vccid (build it first)" >&2; exit 1; }

run() {  # run SCENARIO USB [OPTION...]
    scenario=$1 usb=$2
    shift 2
    out=$(python3 "$srcroot/tests/guest/scenarios.py" --workdir "$workdir" \
          --vccid "$vccid" --vscclient "$vscclient" "$scenario" --usb "$usb" "$@" 2>&1) || true
    line=$(echo "$out" | grep '^BENCH ' | tail -n1)
    if [ -n "$line" ]; then
        echo "$line" | tee -a "$results"
    else
        echo "run-bench: $scenario on $usb produced no figures:" >&2
        echo "$out" | grep -E '^[a-z_.]+: +(fail|XFAIL)|error=' | head -n 10 >&2
        opt=; [ -n "${1:-}" ] && opt=-${1#--}
        echo "BENCH setup=${scenario#bench-}$opt usb=$usb failed=1" >> "$results"
    fi
}

i=0
while [ $i -lt "${BENCH_REPEAT:-3}" ]; do
    for usb in $usbs; do
        run bench-reference "$usb"
        if [ -n "$tracedir" ]; then
            run bench-vccid "$usb" --vccid-arg=-trace \
                "--vccid-arg=$trace_events,file=$tracedir/vccid-$usb-$i.trace"
        else
            run bench-vccid "$usb"
        fi
        [ "${BENCH_TCP:-0}" = 1 ] && run bench-vccid "$usb" --tcp
        # USB/IP: the guest attaches the reader over its network (vhci-hcd),
        # not through the QEMU controller $usb (which is there all the same).
        [ "${BENCH_USBIP:-0}" = 1 ] && run bench-usbip "$usb"
        if [ "${BENCH_PASSTHRU:-1}" = 1 ]; then
            run bench-reference-passthru "$usb"
            run bench-passthru "$usb"
            [ "${BENCH_TLS:-0}" = 1 ] && run bench-passthru "$usb" --tls
        fi
    done
    i=$((i + 1))
done

echo
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(nproc) cpus," \
     "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1);" \
     "accel: $(cat "$workdir/image/accel" 2>/dev/null || echo '?')"
python3 - "$results" <<'EOF'
import statistics
import sys

FIGURES = [('apdu_per_s', 'APDU/s', 'higher'), ('p50_ms', 'p50 ms', 'lower'),
           ('p99_ms', 'p99 ms', 'lower'), ('cert_read_ms', 'cert read ms', 'lower')]
runs = {}
for line in open(sys.argv[1]):
    kv = dict(f.split('=', 1) for f in line.split()[1:] if '=' in f)
    runs.setdefault((kv['setup'], kv['usb']), []).append(kv)

# The median of each figure over the runs that produced figures; a setup
# that never did is "failed".
rows = {}
for key, kvs in runs.items():
    good = [kv for kv in kvs if 'failed' not in kv]
    if not good:
        rows[key] = {'failed': '1'}
        continue
    row = dict(good[0])
    for fig, _, _ in FIGURES:
        if all(fig in kv for kv in good):
            row[fig] = '%.3f' % statistics.median(float(kv[fig]) for kv in good)
    row['runs'] = '%d/%d' % (len(good), len(kvs))
    rows[key] = row

FMT = '%-18s %-5s %9s %8s %8s %13s %10s %5s'
print(FMT % ('setup', 'usb', 'APDU/s', 'p50 ms', 'p99 ms', 'cert read ms',
             'cert bytes', 'runs'))
for (setup, usb), kv in sorted(rows.items(), key=lambda r: (r[0][1], r[0][0])):
    if 'failed' in kv:
        print('%-18s %-5s %s' % (setup, usb, 'failed (see above)'))
        continue
    print(FMT % (setup, usb, '%.0f' % float(kv['apdu_per_s']), kv['p50_ms'],
                 kv['p99_ms'], kv.get('cert_read_ms', '-'),
                 kv.get('cert_bytes', '-'), kv['runs']))
print()
PAIRS = [('reference', 'vccid', 'emulated card'),
         ('reference-passthru', 'passthru', 'passthru card')]
for usb in sorted({u for _, u in rows}):
    for qemu, ours, card in PAIRS:
        q, v = rows.get((qemu, usb)), rows.get((ours, usb))
        if not q and not v:
            continue
        if not q or not v or 'failed' in q or 'failed' in v:
            print('ratio vccid/QEMU, %s on %s: n/a (a run failed)' % (card, usb))
            continue
        parts = []
        for key, label, better in FIGURES:
            if key in q and key in v and float(q[key]) > 0:
                parts.append('%s %.2f' % (label, float(v[key]) / float(q[key])))
        print('ratio vccid/QEMU, %s on %s: %s' % (card, usb, ', '.join(parts)))
    plain, tls = rows.get(('passthru', usb)), rows.get(('passthru-tls', usb))
    if plain and tls and 'failed' not in plain and 'failed' not in tls:
        print('ratio TLS/plain, vccid passthru card on %s: %s' % (usb, ', '.join(
            '%s %.2f' % (label, float(tls[key]) / float(plain[key]))
            for key, label, _ in FIGURES
            if key in plain and key in tls and float(plain[key]) > 0)))
print('(APDU/s: higher is better; times: lower is better)')
EOF

if [ -n "$tracedir" ]; then
    for usb in $usbs; do
        echo
        echo "inside vccid on $usb (bench/trace-latency.py $tracedir/vccid-$usb-*.trace):"
        python3 "$here/trace-latency.py" "$tracedir/vccid-$usb-"*.trace || true
    done
fi
