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
#   BENCH_SLOWLINK=0       1: also the passthru card across a slow link:
#                          vscclient reaches the card's host through
#                          bench/delay-proxy.py (BENCH_DELAY_MS each way,
#                          default 5), to vccid's passthru in plain TCP and
#                          TLS and to QEMU's (setups slow-*); prints whether
#                          p50 <= RTT + 1 ms
#   BENCH_SETUPS="..."     run only these setups, in this order, in every
#                          round: reference vccid vccid-tcp usbip
#                          reference-passthru passthru passthru-tls
#                          slow-reference-passthru slow-passthru
#                          slow-passthru-tls (default: from the switches
#                          above)
#   BENCH_LOCK=FILE        each round takes this flock (on a machine whose
#                          guests take it too: no two guests at once, the
#                          setups of one round run back to back, and
#                          others' guests run between rounds)
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

run() {  # run SCENARIO USB [OPTION...]; $label: the setup's name if not the scenario's
    scenario=$1 usb=$2
    shift 2
    script=$srcroot/tests/guest/scenarios.py
    case $label in slow-*) script=$here/slowlink.py; set -- --delay "$delay_ms" "$@" ;; esac
    out=$(python3 "$script" --workdir "$workdir" \
          --vccid "$vccid" --vscclient "$vscclient" "$scenario" --usb "$usb" "$@" 2>&1) || true
    line=$(echo "$out" | grep '^BENCH ' | tail -n1)
    if [ -n "$line" ]; then
        echo "$line" | sed "s/ setup=[^ ]*/ setup=$label round=$i/" | tee -a "$results"
    else
        echo "run-bench: $label on $usb produced no figures:" >&2
        echo "$out" | grep -E '^[a-z_.]+: +(fail|XFAIL)|error=' | head -n 10 >&2
        echo "BENCH setup=$label usb=$usb failed=1" >> "$results"
    fi
}

run_setup() {  # run_setup SETUP USB
    label=$1
    case $1 in
    reference) run bench-reference "$2" ;;
    vccid)
        if [ -n "$tracedir" ]; then
            run bench-vccid "$2" --vccid-arg=-trace \
                "--vccid-arg=$trace_events,file=$tracedir/vccid-$2-$i.trace"
        else
            run bench-vccid "$2"
        fi ;;
    vccid-tcp) run bench-vccid "$2" --tcp ;;
    # USB/IP: the guest attaches the reader over its network (vhci-hcd),
    # not through the QEMU controller $usb (which is there all the same).
    usbip) run bench-usbip "$2" ;;
    reference-passthru|slow-reference-passthru) run bench-reference-passthru "$2" ;;
    passthru|slow-passthru) run bench-passthru "$2" ;;
    passthru-tls|slow-passthru-tls) run bench-passthru "$2" --tls ;;
    *) echo "run-bench: unknown setup $1" >&2; exit 2 ;;
    esac
}

lock=${BENCH_LOCK:-}
delay_ms=${BENCH_DELAY_MS:-5}
setups=${BENCH_SETUPS:-}
if [ -z "$setups" ]; then
    setups="reference vccid"
    [ "${BENCH_TCP:-0}" = 1 ] && setups="$setups vccid-tcp"
    [ "${BENCH_USBIP:-0}" = 1 ] && setups="$setups usbip"
    [ "${BENCH_PASSTHRU:-1}" = 1 ] && setups="$setups reference-passthru passthru"
    [ "${BENCH_TLS:-0}" = 1 ] && setups="$setups passthru-tls"
    [ "${BENCH_SLOWLINK:-0}" = 1 ] &&
        setups="$setups slow-reference-passthru slow-passthru slow-passthru-tls"
fi

[ -n "$lock" ] && exec 9>>"$lock"
i=0
while [ $i -lt "${BENCH_REPEAT:-3}" ]; do
    [ -n "$lock" ] && flock 9
    for usb in $usbs; do
        for setup in $setups; do
            run_setup "$setup" "$usb"
        done
    done
    [ -n "$lock" ] && flock -u 9
    i=$((i + 1))
done

echo
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(nproc) cpus," \
     "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1);" \
     "accel: $(cat "$workdir/image/accel" 2>/dev/null || echo '?')"
python3 - "$results" "$delay_ms" <<'EOF'
import statistics
import sys

FIGURES = [('apdu_per_s', 'APDU/s', 'higher'), ('p50_ms', 'p50 ms', 'lower'),
           ('p99_ms', 'p99 ms', 'lower'), ('cert_read_ms', 'cert read ms', 'lower')]


def ratios(num, den):
    """Each figure both rows have, as num/den, e.g. 'APDU/s 1.02, p50 ms 0.97'."""
    return ', '.join('%s %.2f' % (label, float(num[key]) / float(den[key]))
                     for key, label, _ in FIGURES
                     if key in num and key in den and float(den[key]) > 0)

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
    for fig in [f for f, _, _ in FIGURES] + ['up_hold_p50_ms', 'down_hold_p50_ms', 'link_rtt_p50_ms']:
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
        if not q or not v:
            continue
        if 'failed' in q or 'failed' in v:
            print('ratio vccid/QEMU, %s on %s: n/a (a run failed)' % (card, usb))
            continue
        print('ratio vccid/QEMU, %s on %s: %s' % (card, usb, ratios(v, q)))
    plain, tls = rows.get(('passthru', usb)), rows.get(('passthru-tls', usb))
    if plain and tls and 'failed' not in plain and 'failed' not in tls:
        print('ratio TLS/plain, vccid passthru card on %s: %s' % (usb, ratios(tls, plain)))
        # The same ratio taken within each round (plain and TLS ran minutes
        # apart at most), then the median and range over the rounds.
        # (A setup may be listed twice in BENCH_SETUPS, e.g. "passthru
        # passthru-tls passthru-tls passthru": its runs of a round are averaged.)
        by_round = {}
        for setup in ('passthru', 'passthru-tls'):
            for kv in runs[(setup, usb)]:
                if 'failed' not in kv and 'round' in kv:
                    by_round.setdefault(kv['round'], {}).setdefault(setup, []).append(
                        float(kv['apdu_per_s']))
        paired = sorted(statistics.mean(r['passthru-tls']) / statistics.mean(r['passthru'])
                        for r in by_round.values() if len(r) == 2)
        if paired:
            print('ratio TLS/plain APDU/s per round on %s: median %.2f over %d rounds (%s)'
                  % (usb, statistics.median(paired), len(paired),
                     ' '.join('%.2f' % r for r in paired)))
    slow_plain, slow_tls = rows.get(('slow-passthru', usb)), rows.get(('slow-passthru-tls', usb))
    if slow_plain and slow_tls and 'failed' not in slow_plain and 'failed' not in slow_tls:
        print('ratio TLS/plain across the slow link on %s: %s'
              % (usb, ratios(slow_tls, slow_plain)))
    # The slow link's budget: one round trip of the link plus 1 ms. The link
    # as measured (an echo through the same proxy, just before each guest)
    # and the same card without the link tell the link's share from the rest.
    rtt = 2 * float(sys.argv[2])
    for setup in ('slow-reference-passthru', 'slow-passthru', 'slow-passthru-tls'):
        kv = rows.get((setup, usb))
        if not kv or 'failed' in kv:
            continue
        p50 = float(kv['p50_ms'])
        print('slow link (RTT %g ms) %s on %s: p50 %.2f ms, p99 %.2f ms; p50 <= RTT + 1 ms: %s'
              % (rtt, setup, usb, p50, float(kv['p99_ms']), 'yes' if p50 <= rtt + 1 else 'NO'))
        if 'link_rtt_p50_ms' in kv:
            near = rows.get((setup[len('slow-'):], usb))
            print('    the link measured %.2f ms p50; p50 beyond it %.2f ms%s' % (
                float(kv['link_rtt_p50_ms']), p50 - float(kv['link_rtt_p50_ms']),
                ' (the same card without the link: p50 %.2f ms)' % float(near['p50_ms'])
                if near and 'failed' not in near else ''))
print('(APDU/s: higher is better; times: lower is better)')
EOF

if [ -n "$tracedir" ]; then
    for usb in $usbs; do
        echo
        echo "inside vccid on $usb (bench/trace-latency.py $tracedir/vccid-$usb-*.trace):"
        python3 "$here/trace-latency.py" "$tracedir/vccid-$usb-"*.trace || true
    done
fi
