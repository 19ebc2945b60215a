# SPDX-License-Identifier: BSD-3-Clause
# bench/lib.sh: shell helpers shared by the benchmarks (POSIX sh; sourced).
#
#   bench_init            make $T (a mktemp -d directory) and a trap that kills
#                         every process started with bench_bg and removes $T
#   bench_bg NAME CMD...  start CMD in the background, logging to $T/NAME.log;
#                         its pid is remembered (and printed in $BG_PID)
#   bench_kill PID        stop one background process (TERM, then KILL)
#   wait_file FILE SECS   wait until FILE exists and is not empty
#   wait_tcp PORT SECS    wait until 127.0.0.1:PORT accepts connections
#   wait_sock PATH SECS   wait until the unix socket PATH exists
#   kv KEY LINE           the value of KEY=VALUE in LINE
#   median                the median of the numbers on stdin, one a line
#   ratio A B             A / B with 2 decimals (NA if either is missing)
#   cpu_ticks PID...      user + system CPU time of the PIDs so far, in clock ticks

bench_pids=""

bench_cleanup() {
    for p in $bench_pids; do kill "$p" 2>/dev/null || true; done
    for p in $bench_pids; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$p" 2>/dev/null || true
    done
    bench_pids=""
    [ -n "${T:-}" ] && [ -z "${BENCH_KEEP:-}" ] && rm -rf "$T"
}

bench_init() {
    T=$(mktemp -d "${TMPDIR:-/tmp}/remoca-bench.XXXXXX")
    trap 'bench_cleanup' EXIT
    trap 'exit 130' INT TERM
}

bench_bg() {
    _name=$1; shift
    "$@" >"$T/$_name.log" 2>&1 &
    BG_PID=$!
    bench_pids="$bench_pids $BG_PID"
}

bench_kill() {
    kill "$1" 2>/dev/null || true
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    _left=""
    for p in $bench_pids; do [ "$p" = "$1" ] || _left="$_left $p"; done
    bench_pids=$_left
}

wait_file() {
    i=0
    while [ ! -s "$1" ]; do
        [ $i -ge $(($2 * 10)) ] && return 1
        sleep 0.1; i=$((i + 1))
    done
}

wait_tcp() {
    i=0
    while ! socat -u OPEN:/dev/null "TCP:127.0.0.1:$1" 2>/dev/null; do
        [ $i -ge $(($2 * 10)) ] && return 1
        sleep 0.1; i=$((i + 1))
    done
}

kv() {
    printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1
}

median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "NA"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "NA" || b == "NA" || a == "" || b == "" || b + 0 == 0) print "NA";
        else printf "%.2f\n", a / b }'
}

# wait_sock PATH SECS: wait until the unix socket PATH exists.
wait_sock() {
    i=0
    while [ ! -S "$1" ]; do
        [ $i -ge $(($2 * 10)) ] && return 1
        sleep 0.1; i=$((i + 1))
    done
}

# cpu_ticks PID...: user + system CPU time of the PIDs so far, in clock ticks.
cpu_ticks() { for p in "$@"; do sed 's/^.*) //' "/proc/$p/stat"; done | awk '{ t += $12 + $13 } END { print t }'; }
