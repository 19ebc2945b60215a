# SPDX-License-Identifier: BSD-3-Clause
# bench/memd.sh [--quick]: remoca-memd against memcached 1.6, side by side.
#
# Both servers run at the same time with the same thread count (2) and the
# same memory; remoca-loadgen drives each in turn with the same 4 KiB values
# over the same key space, preloaded before any get is measured:
#
#   case=depth1       1 connection,  1 request in flight
#   case=pipelined16  1 connection, 16 requests in flight
#   case=conns16     16 connections, 1 request in flight each
#
# for op=get and op=put, ROUNDS rounds alternating which system goes first;
# the median of the rounds is quoted.  One more line gives the physical
# limit: a bare 4 KiB ping-pong over loopback TCP with an echo server.
#
# The machine has 2 cores shared by the server under test and the generator
# (one thread, epoll); nothing is pinned.  Because other work on the machine
# skews throughput, the server's CPU time per operation (from /proc/PID/stat,
# which contention does not inflate much) is also printed, on stderr.  Output:
#   RESULT name=memd case=CASE op=get|put remoca_ops=N memcached_ops=N ratio=R remoca_p50_us=X memcached_p50_us=Y
#   RESULT name=memd case=pingpong op=echo ops=N p50_us=X
set -eu
. "$REMOCA_SRC/bench/lib.sh"

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
LG="$REMOCA_BUILD/remoca-loadgen"
MEMD="$REMOCA_BUILD/remoca-memd"
THREADS=2
MEM_MB=${MEM_MB:-256}
KEYS=${KEYS:-16384} # 64 MiB of values: fits both servers' 256 MiB with room to spare
if [ $QUICK = 1 ]; then DUR=${DUR:-0.4}; WARM=0.1; ROUNDS=${ROUNDS:-5}
else DUR=${DUR:-2}; WARM=0.3; ROUNDS=${ROUNDS:-5}; fi

[ -x "$LG" ] || { echo "memd bench: $LG missing (build first)" >&2; exit 1; }
command -v memcached >/dev/null || { echo "memd bench: memcached not installed" >&2; exit 1; }
bench_init
failures=0

# run SYSTEM OP LOADGEN-ARGS...: one measurement; prints the loadgen's line.
run() {
    _sys=$1; _op=$2; shift 2
    if [ "$_sys" = remoca ]; then _tgt="--proto remoca --server 127.0.0.1:$REMOCA_PORT"; _pid=$REMOCA_PID
    else _tgt="--proto memcached --server 127.0.0.1:$MC_PORT"; _pid=$MC_PID; fi
    _cpu0=$(cpu_ticks "$_pid")
    # shellcheck disable=SC2086
    if ! _out=$("$LG" $_tgt --op "$_op" --keys "$KEYS" "$@" 2>"$T/lg.err"); then
        echo "memd bench: $_sys $_op $*: errors: $_out $(head -c 500 "$T/lg.err")" >&2
        failures=$((failures + 1))
    fi
    _cpu1=$(cpu_ticks "$_pid")
    printf '%s server_cpu_us_per_op=%s\n' "$_out" "$(awk -v d=$((_cpu1 - _cpu0)) -v hz="$HZ" \
        -v n="$(kv all_ops "$_out")" 'BEGIN { if (n > 0) printf "%.2f", d * 1e6 / hz / n; else print "NA" }')"
}

HZ=$(getconf CLK_TCK)

# --- the physical limit: 4 KiB ping-pong over loopback ---------------------
bench_bg echo "$LG" --serve-echo 127.0.0.1:0 --port-file "$T/echo.port"
ECHO_PID=$BG_PID
wait_file "$T/echo.port" 10 || { echo "memd bench: echo server did not start" >&2; exit 1; }
rm -f "$T/pp"
r=0
while [ $r -lt "$ROUNDS" ]; do
    "$LG" --proto echo --server "127.0.0.1:$(cat "$T/echo.port")" --duration "$DUR" \
        --warmup "$WARM" >>"$T/pp"
    r=$((r + 1))
done
bench_kill "$ECHO_PID"
pp_ops=$(sed -n 's/.*ops_per_s=\([0-9.]*\).*/\1/p' "$T/pp" | median)
pp_p50=$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' "$T/pp" | median)

# --- the two servers ---------------------------------------------------------
MC_PORT=""
for try in 1 2 3; do
    port=$("$LG" --free-port)
    user=""; [ "$(id -u)" = 0 ] && user="-u root"
    # shellcheck disable=SC2086
    bench_bg memcached memcached -t $THREADS -m "$MEM_MB" -p "$port" -l 127.0.0.1 -U 0 -I 2m $user
    MC_PID=$BG_PID
    if wait_tcp "$port" 5; then MC_PORT=$port; break; fi
    bench_kill "$MC_PID"
done
[ -n "$MC_PORT" ] || { echo "memd bench: memcached did not start: $(cat "$T/memcached.log")" >&2; exit 1; }

REMOCA_PORT=""
if [ -x "$MEMD" ]; then
    bench_bg memd "$MEMD" --listen 127.0.0.1:0 --port-file "$T/memd.port" \
        --memory "${MEM_MB}M" --threads $THREADS
    if wait_file "$T/memd.port" 10; then
        REMOCA_PID=$BG_PID
    REMOCA_PORT=$(sed 's/.*://' "$T/memd.port" | tr -d ' \n')
    else
        echo "memd bench: remoca-memd did not start: $(head -c 1000 "$T/memd.log")" >&2
        exit 1
    fi
    systems="remoca memcached"
else
    echo "memd bench: $MEMD not built: measuring memcached only" >&2
    systems="memcached"
fi

for s in $systems; do
    out=$(run "$s" put --seq --depth 16)
    echo "preloaded $s: $out" >&2
done

# --- the cases ---------------------------------------------------------------
case_args() {
    case $1 in
    depth1) echo "--conns 1 --depth 1" ;;
    pipelined16) echo "--conns 1 --depth 16" ;;
    conns16) echo "--conns 16 --depth 1" ;;
    esac
}
CASES="depth1 pipelined16 conns16"
: >"$T/results"
r=0
while [ $r -lt "$ROUNDS" ]; do
    order=$systems
    [ $((r % 2)) = 1 ] && order=$(echo "$systems" | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }')
    for c in $CASES; do
        for op in get put; do
            for s in $order; do
                # shellcheck disable=SC2046
                out=$(run "$s" "$op" $(case_args "$c") --duration "$DUR" --warmup "$WARM")
                echo "$c $op $s $(kv ops_per_s "$out") $(kv p50_us "$out")" \
                    "$(kv server_cpu_us_per_op "$out")" >>"$T/results"
            done
        done
    done
    r=$((r + 1))
done

# --- report --------------------------------------------------------------------
col() { awk -v c="$1" -v o="$2" -v s="$3" -v f="$4" '$1 == c && $2 == o && $3 == s { print $f }' \
        "$T/results" | median; }
for c in $CASES; do
    for op in get put; do
        r_ops=$(col "$c" "$op" remoca 4); m_ops=$(col "$c" "$op" memcached 4)
        r_p50=$(col "$c" "$op" remoca 5); m_p50=$(col "$c" "$op" memcached 5)
        echo "RESULT name=memd case=$c op=$op remoca_ops=$r_ops memcached_ops=$m_ops" \
            "ratio=$(ratio "$r_ops" "$m_ops") remoca_p50_us=$r_p50 memcached_p50_us=$m_p50"
        echo "memd bench: case=$c op=$op server CPU per op (median): remoca $(col "$c" "$op" remoca 6) us," \
            "memcached $(col "$c" "$op" memcached 6) us" >&2
    done
done
echo "RESULT name=memd case=pingpong op=echo ops=$pp_ops p50_us=$pp_p50"
if [ $failures -gt 0 ]; then
    echo "memd bench: $failures runs saw errors or misses (see above)" >&2
    exit 1
fi
