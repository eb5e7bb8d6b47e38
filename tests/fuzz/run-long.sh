#!/bin/sh
# Long fuzzing runs, outside CI: each target runs until it has executed RUNS
# inputs (default 10 million) or for MAX_SECONDS (default: no limit), from
# the committed seeds plus a working corpus kept in the build directory, so a
# second run continues where the first stopped.
#
# usage: tests/fuzz/run-long.sh BUILD_DIR [TARGET...]
#   BUILD_DIR  a build configured with CC=clang -Dfuzzing=true -Dsanitize=true
#   TARGET     vscard ccid-msg piv ccid usbredir usbip usbip-export passthru qmp
#              (default: all)
#   RUNS=N MAX_SECONDS=S JOBS=N   environment: executions per target, a time
#              bound per target, and libFuzzer worker processes (-fork=N)
#
# Prints one line per target, "TARGET executions=N cov=N ft=N corpus=N
# seconds=N result=ok|crash (artifact)", and exits non-zero if any target
# found a crash. The full libFuzzer output is in BUILD_DIR/fuzz-long/TARGET.log.
set -u

[ $# -ge 1 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
build=$(cd "$1" && pwd) || exit 2
shift
src=$(cd "$(dirname "$0")" && pwd)
runs=${RUNS:-10000000}
jobs=${JOBS:-1}
targets=${*:-vscard ccid-msg piv ccid usbredir usbip usbip-export passthru qmp}
out="$build/fuzz-long"
mkdir -p "$out"

# libFuzzer's last "#N DONE cov: C ft: F corp: K/..." line, or the last
# status line before it stopped on a crash.
last_status() {
    grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$1" | tail -1
}

field() {  # field LINE NAME: the number after "NAME: " in a libFuzzer status line
    echo "$1" | sed -n "s/.* $2: \([0-9]*\).*/\1/p"
}

status=0
for t in $targets; do
    exe="$build/tests/fuzz/fuzz-$t"
    [ -x "$exe" ] || { echo "$t: no $exe (configure with -Dfuzzing=true)" >&2; status=2; continue; }
    corpus="$out/corpus-$t"
    mkdir -p "$corpus" "$out/artifacts-$t"
    limit=""
    [ -n "${MAX_SECONDS:-}" ] && limit="-max_total_time=$MAX_SECONDS"
    start=$(date +%s)
    # -runs counts inputs executed by this process; with -fork each worker
    # counts its own, so the total is read from the merged status lines.
    "$exe" -runs="$runs" $limit -rss_limit_mb=2048 -print_final_stats=1 \
        $( [ "$jobs" -gt 1 ] && echo "-fork=$jobs" ) \
        -artifact_prefix="$out/artifacts-$t/" "$corpus" "$src/corpus-$t" \
        >"$out/$t.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    line=$(last_status "$out/$t.log")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -1)
    [ -n "$execs" ] || execs=$(echo "$line" | sed -n 's/^#\([0-9]*\).*/\1/p')
    result=ok
    if [ $rc -ne 0 ]; then
        result="crash ($(ls "$out/artifacts-$t" | head -1))"
        status=1
    fi
    echo "$t executions=$execs cov=$(field "$line" cov) ft=$(field "$line" ft)" \
         "corpus=$(ls "$corpus" | wc -l) seconds=$secs result=$result"
done
exit $status
