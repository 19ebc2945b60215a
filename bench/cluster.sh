# SPDX-License-Identifier: BSD-3-Clause
# bench/cluster.sh [--quick]: one disk cached on 1 vs 3 memory servers of the
# same total memory, and the keys that move when a server joins (issue 13).
#
# A disk image of random data (512 MiB; 128 MiB with --quick) is exported by
# nbdkit's file plugin under the remoca filter; fio's nbd engine (one NBD
# connection over a unix socket) reads it.  The memory servers are
# remoca-memd processes on loopback TCP (--listen 127.0.0.1:0, --threads 1
# each: one server, one machine's worth of work), named in the filter's
# remoca-servers-file=, so a server can join at runtime.  Total remote memory
# M is 2/3 of the disk, so a uniform random read hits about 2/3 of the time,
# not always.  Cases, each in fresh processes (new servers, new nbdkit):
#
#   memd-1     one remoca-memd of M
#   memd-3     three of M/3 each: the same memory, spread by the filter's
#              weighted rendezvous placement (64-block chunks)
#   memd-join  three of M/3, warm; then a fourth of M/3 is added to the
#              servers file, and once the filter has applied it (its stats
#              file lists 4 servers, all up) the pages each server holds
#              are read again
#
# Every case: one sequential fill pass (256 KiB reads, every miss inserted),
# then 4 KiB randread for DUR seconds at QD16, then QD1 (memd-1, memd-3).
# memd-join: fill, one QD16 pass before the join, the join, one QD16 pass
# right after it and one more (recovery: the new server fills from misses;
# with 4/3 M, 8/9 of the disk, the steady state is above the one before,
# reached as far as DUR allows).  The reads are uniform over the
# disk and independent (fio time_based, norandommap, a new seed every run):
# under such reads a full cache of C blocks hits C/disk of the time whatever
# it evicts, so memd-1 should hit M/disk = 2/3.  memd-3 loses only where a
# server's memory exceeds its share of the disk (the placement's imbalance
# leaves part of it idle): at 2/3 every server's share is larger than its
# memory, so the same 2/3 is expected; what differs is the cost per read.
# Measured per run:
#   iops           fio's
#   hit_ratio      blocks served by the memory servers / blocks read, from
#                  the filter's stats file (remote_hits / read_blocks, deltas
#                  over the run; the file is rewritten every second, so the
#                  bench waits for two rewrites after each run)
#   client_cpu_us  the nbdkit process's user + system CPU time over the run
#                  (/proc/PID/stat) per read; the memory servers' CPU per read
#                  goes to stderr apart: in a real deployment they run elsewhere
#   moved_fraction memd-join only: of the pages the three servers held before
#                  the join, the fraction they no longer hold after it (each
#                  drops the chunks it lost, POOL_KEEP), from `remoca stats
#                  --server ADDR` (the pool's pages on each server);
#                  no traffic runs between the two readings.  On stderr, a
#                  second measure: the share of remote lookups of the first
#                  pass after the join that went to the new server (the
#                  filter's per-server keys= counters).  Weighted rendezvous
#                  predicts 1/4 for both.
# Rounds repeat all cases (odd rounds in reverse order); medians are quoted:
#   RESULT name=cluster case=CASE iops=N hit_ratio=H client_cpu_us=C moved_fraction=F|NA
# CASE: memd-1-qd16 memd-1-qd1 memd-3-qd16 memd-3-qd1 memd-join-before-qd16
# memd-join-after-qd16 (moved_fraction) memd-join-later-qd16.
#
# memcached as the backend (memcached-1, memcached-3, memcached-join): the same
# cases over memcached 1.6 servers (-m MB, one thread, loopback TCP), named
# memcached:tcp:127.0.0.1:PORT in the servers file.  memcached cannot count
# one pool's pages, and a membership change starts a new epoch on every
# memcached that stays (docs/memcached.md: it cannot drop only the chunks it
# lost), so the old servers' whole cache becomes unreachable at a join: for
# memcached-join moved_fraction is the share of the first pass's lookups that
# went to the new server (the placement's move), and the hit ratio after the
# join shows the cache lost with the epoch.
#
# Fairness: the same image, total memory, filter options (remoca-shm=off:
# TCP, as with servers on other machines) and fio jobs in every case; the
# page cache is not dropped (the miss path reads the image from RAM in every
# case alike: this bench is about the remote tier).  Knobs: DISK_MB, MEM_MB
# (total remote memory), DUR, ROUNDS, CASES.
set -eu
. "$REMOCA_SRC/bench/lib.sh"

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
MEMD="$REMOCA_BUILD/remoca-memd"
FILTER="$REMOCA_BUILD/nbdkit-remoca-filter.so"
REMOCA="$REMOCA_BUILD/remoca"
if [ $QUICK = 1 ]; then DISK_MB=${DISK_MB:-128}; DUR=${DUR:-1}; ROUNDS=${ROUNDS:-3}
else DISK_MB=${DISK_MB:-512}; DUR=${DUR:-5}; ROUNDS=${ROUNDS:-3}; fi
MEM_MB=${MEM_MB:-$((DISK_MB * 2 / 3))}
PER_MB=$((MEM_MB / 3)) # memory of each server of three (and of the joining fourth)
MEM_MB=$((PER_MB * 3)) # the same total in every case
CASES=${CASES:-"memd-1 memd-3 memd-join memcached-1 memcached-3 memcached-join"}
RUNTIME_MS=$(awk -v d="$DUR" 'BEGIN { printf "%d", d * 1000 }')
POOL=cluster

for c in nbdkit fio; do
    command -v $c >/dev/null || { echo "cluster bench: $c not installed" >&2; exit 1; }
done
for f in "$FILTER" "$MEMD" "$REMOCA"; do
    [ -e "$f" ] || { echo "cluster bench: $f not built" >&2; exit 1; }
done
bench_init
HZ=$(getconf CLK_TCK)

# backend_ready BACKEND: whether the filter can use BACKEND's servers; says
# why not on stderr.
backend_ready() {
    case $1 in
    memd) return 0 ;;
    memcached)
        command -v memcached >/dev/null && return 0
        echo "cluster bench: memcached not installed (scripts/deps.sh): no memcached cases" >&2
        return 1 ;;
    esac
    echo "cluster bench: unknown backend $1" >&2
    return 1
}

# A disk image of real (random) data.
IMG="$T/disk.img"
dd if=/dev/urandom of="$IMG" bs=1M count="$DISK_MB" status=none

# start_server BACKEND NAME MB: one memory server of MB MiB on loopback TCP;
# appends its pid to SERVER_PIDS and its address to SERVER_ADDRS.
start_server() {
    case $1 in
    memd)
        rm -f "$T/$2.port"
        bench_bg "$2" "$MEMD" --listen 127.0.0.1:0 --port-file "$T/$2.port" --memory "${3}M" \
            --threads 1
        wait_file "$T/$2.port" 10 || {
            echo "cluster bench: remoca-memd did not start: $(head -c 1000 "$T/$2.log")" >&2
            exit 1
        }
        SERVER_PIDS="$SERVER_PIDS $BG_PID"
        SERVER_ADDRS="$SERVER_ADDRS 127.0.0.1:$(sed 's/.*://' "$T/$2.port" | tr -d ' \n')" ;;
    memcached)
        _port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        _user=""; [ "$(id -u)" = 0 ] && _user="-u root"
        # shellcheck disable=SC2086
        bench_bg "$2" memcached -l 127.0.0.1 -p "$_port" -U 0 -m "$3" -t 1 $_user
        python3 - "$_port" <<'PY' || { echo "cluster bench: memcached did not start: $(head -c 1000 "$T/$2.log")" >&2; exit 1; }
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close(); sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
        SERVER_PIDS="$SERVER_PIDS $BG_PID"
        SERVER_ADDRS="$SERVER_ADDRS memcached:tcp:127.0.0.1:$_port" ;;
    *) echo "cluster bench: no $1 server" >&2; exit 1 ;;
    esac
}

# server_pages ADDR: the pages of our pool on one memory server (its
# `pool name=POOL pages=N ...` line in `remoca stats --server ADDR`).
server_pages() {
    case $1 in
    memcached:*) # every item it holds (live and dead epochs alike): `stats` curr_items
        python3 - "${1##*:}" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.sendall(b"stats\r\n"); buf = b""
while not buf.endswith(b"END\r\n"):
    d = s.recv(65536)
    if not d: break
    buf += d
for line in buf.decode().split("\r\n"):
    if line.startswith("STAT curr_items "): print(line.split()[2])
PY
        return ;;
    esac
    "$REMOCA" stats --server "$1" >"$T/srv.txt" 2>"$T/srv.err" ||
        { echo "cluster bench: remoca stats $1: $(cat "$T/srv.err")" >&2; exit 1; }
    _p=$(kv pages "$(grep "^pool name=$POOL " "$T/srv.txt")")
    echo "${_p:-0}"
}

# pages_sum ADDR...: the pages of our pool on these servers together.
pages_sum() { for a in "$@"; do server_pages "$a"; done | awk '{ s += $1 } END { print s + 0 }'; }

# settle ADDR...: waits until the servers' pages stop changing (the filter's
# puts do not wait for answers), up to 10 s; prints the total.
settle() {
    _prev=-1; _i=0
    _now=$(pages_sum "$@")
    while [ "$_now" != "$_prev" ] && [ $_i -lt 30 ]; do
        sleep 0.3; _prev=$_now; _now=$(pages_sum "$@"); _i=$((_i + 1))
    done
    echo "$_now"
}

# write_servers ADDR...: the filter's servers file, replaced atomically.
write_servers() {
    printf '%s\n' "$@" >"$T/servers.tmp"
    mv "$T/servers.tmp" "$T/servers"
}

# counter NAME: a counter from the filter's stats file (0 if absent).
counter() { v=$(sed -n "s/^$1=//p" "$T/nbd.stats" 2>/dev/null); echo "${v:-0}"; }

# lookups ADDR: the keys the filter looked up on the server ADDR so far (keys=
# of its `serverI=tcp:ADDR ...` line in the stats file; 0 if absent).
lookups() {
    v=$(grep -E "^server[0-9]+=(tcp:)?$1 " "$T/nbd.stats" 2>/dev/null | tr ' ' '\n' | sed -n 's/^keys=//p')
    echo "${v:-0}"
}

# total_lookups: the keys looked up on all the servers of the list so far.
total_lookups() {
    grep -E '^server[0-9]+=' "$T/nbd.stats" 2>/dev/null | tr ' ' '\n' |
        awk -F= '$1 == "keys" { s += $2 } END { print s + 0 }'
}

# stats_fresh: waits until the filter's stats file has been rewritten twice
# (the second rewrite began after this call, so it counts everything before).
stats_fresh() {
    for _n in 1 2; do
        _ino=$(stat -c %i "$T/nbd.stats" 2>/dev/null || echo 0); _i=0
        while [ "$(stat -c %i "$T/nbd.stats" 2>/dev/null || echo 0)" = "$_ino" ] && [ $_i -lt 50 ]; do
            sleep 0.1; _i=$((_i + 1))
        done
    done
}

# wait_servers N: waits until the filter lists N servers, all up (20 s).
wait_servers() {
    _i=0
    stats_fresh
    while [ "$(counter client_servers)" != "$1" ] || [ "$(counter client_servers_up)" != "$1" ]; do
        [ $_i -ge 200 ] && {
            echo "cluster bench: the filter did not reach $1 servers up:" \
                "$(grep '^client_servers' "$T/nbd.stats" | tr '\n' ' ')" >&2
            exit 1
        }
        sleep 0.1; _i=$((_i + 1))
    done
}

# start_case BACKEND N: N servers of PER_MB (MEM_MB if N = 1), the servers
# file naming them, nbdkit with the filter on $T/nbd.sock; NBDKIT_PID.
start_case() {
    SERVER_PIDS=""; SERVER_ADDRS=""
    _mb=$PER_MB; [ "$2" = 1 ] && _mb=$MEM_MB
    _k=0
    while [ $_k -lt "$2" ]; do start_server "$1" "srv$_k" "$_mb"; _k=$((_k + 1)); done
    # shellcheck disable=SC2086
    write_servers $SERVER_ADDRS
    rm -f "$T/nbd.sock" "$T/nbd.stats"
    bench_bg nbdkit nbdkit -f -U "$T/nbd.sock" --filter="$FILTER" file "$IMG" \
        remoca-servers-file="$T/servers" remoca-pool=$POOL remoca-timeout=1000 \
        remoca-shm=off remoca-statsfile="$T/nbd.stats"
    NBDKIT_PID=$BG_PID
    wait_sock "$T/nbd.sock" 10 || {
        echo "cluster bench: nbdkit did not start: $(tail -c 1000 "$T/nbdkit.log")" >&2
        exit 1
    }
    wait_servers "$2"
}

# stop_case: kills nbdkit, then the servers.
stop_case() {
    bench_kill "$NBDKIT_PID"
    for p in $SERVER_PIDS; do bench_kill "$p"; done
}

# fill_pass: reads the whole export once, sequentially; waits for the puts.
fill_pass() {
    fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$T/nbd.sock" --rw=read \
        --bs=256k --iodepth=4 >"$T/fill.out" 2>"$T/fio.err" ||
        { echo "cluster bench: fill pass failed: $(cat "$T/fio.err")" >&2; exit 1; }
    # shellcheck disable=SC2086
    settle $SERVER_ADDRS >/dev/null
}

# measure QD: one randread run; prints "IOPS HIT_RATIO CLIENT_CPU_US SERVER_CPU_US".
# The stats file must be fresh when it starts (stats_fresh); it is again after.
measure() {
    _r0=$(counter read_blocks); _h0=$(counter remote_hits)
    # shellcheck disable=SC2086
    _s0=$(cpu_ticks $SERVER_PIDS); _c0=$(cpu_ticks "$NBDKIT_PID")
    fio --name=randread --ioengine=nbd --uri="nbd+unix:///?socket=$T/nbd.sock" --rw=randread \
        --bs=4k --iodepth="$1" --norandommap --randrepeat=0 --time_based \
        --runtime="${RUNTIME_MS}ms" --output-format=terse >"$T/fio.out" \
        2>"$T/fio.err" || { echo "cluster bench: fio failed: $(cat "$T/fio.err")" >&2; exit 1; }
    # shellcheck disable=SC2086
    _c1=$(cpu_ticks "$NBDKIT_PID"); _s1=$(cpu_ticks $SERVER_PIDS)
    stats_fresh
    _r1=$(counter read_blocks); _h1=$(counter remote_hits)
    # terse output, version 3: field 5 the error, 6 KiB read, 8 read IOPS
    _f=$(awk -F';' '$1 == 3 && $5 == 0 { printf "%.0f %d", $8, $6 / 4 }' "$T/fio.out")
    [ -n "$_f" ] || { echo "cluster bench: fio failed: $(head -c 1000 "$T/fio.out")" >&2; exit 1; }
    echo "$_f" | awk -v c=$((_c1 - _c0)) -v s=$((_s1 - _s0)) -v hz="$HZ" \
        -v r=$((_r1 - _r0)) -v h=$((_h1 - _h0)) '{
        if (r != $2) printf "cluster bench: fio read %d blocks, the filter counted %d\n", $2, r > "/dev/stderr"
        printf "%s %.4f %.1f %.1f\n", $1, (r > 0 ? h / r : 0), ($2 > 0 ? c * 1e6 / hz / $2 : 0),
            ($2 > 0 ? s * 1e6 / hz / $2 : 0) }'
}

# record CASE ROUND MOVED MEASUREMENT: one line of $T/results.
record() { echo "$1 $4 $3 $2" >>"$T/results"; }

# run_case CASE ROUND: starts CASE's servers and nbdkit, measures, stops them.
run_case() {
    _be=${1%-*}; _top=${1##*-}
    case " $SKIP " in *" $1 "*) return 0 ;; esac
    case $_top in
    1 | 3)
        start_case "$_be" "$_top"
        fill_pass
        stats_fresh
        for qd in 16 1; do m=$(measure $qd); record "$1-qd$qd" "$2" NA "$m"; done
        # how the placement spread the reads, and what each server holds
        # shellcheck disable=SC2086
        echo "cluster bench: $1 round $2: share of lookups per server: $(for a in $SERVER_ADDRS; do
            echo "$(lookups "$a") $(total_lookups)"; done | awk '{ printf "%s%.3f", (NR > 1 ? " " : ""), ($2 > 0 ? $1 / $2 : 0) }');" \
            "pages per server: $(for a in $SERVER_ADDRS; do server_pages "$a"; done | tr '\n' ' ')(of $((_top == 1 ? MEM_MB * 256 : PER_MB * 256)) each)" >&2
        stop_case ;;
    join)
        start_case "$_be" 3
        fill_pass
        stats_fresh
        m=$(measure 16); record "$1-before-qd16" "$2" NA "$m"
        old=$SERVER_ADDRS
        # shellcheck disable=SC2086
        before=$(settle $old)
        start_server "$_be" srv3 "$PER_MB"
        # shellcheck disable=SC2086
        write_servers $SERVER_ADDRS
        wait_servers 4
        # shellcheck disable=SC2086
        kept=$(settle $old)
        new=$(server_pages "${SERVER_ADDRS##* }")
        moved=$(awk -v b="$before" -v k="$kept" 'BEGIN { printf "%.4f", (b > 0 ? (b - k) / b : 0) }')
        echo "cluster bench: $1 round $2: the 3 servers held $before pages, $kept after the join" \
            "($new on the new one): moved_fraction $moved" >&2
        # memcached: those are items of every epoch, live or not: the lookup share below instead
        [ "$_be" = memcached ] && moved=LOOKUPS
        stats_fresh
        joined=${SERVER_ADDRS##* }
        _n0=$(lookups "$joined"); _t0=$(total_lookups)
        m=$(measure 16)
        _n1=$(lookups "$joined"); _t1=$(total_lookups)
        [ "$moved" = LOOKUPS ] && moved=$(awk -v n=$((_n1 - _n0)) -v t=$((_t1 - _t0)) 'BEGIN { printf "%.4f", (t > 0 ? n / t : 0) }')
        record "$1-after-qd16" "$2" "$moved" "$m"
        awk -v c="$1" -v r="$2" -v n=$((_n1 - _n0)) -v t=$((_t1 - _t0)) 'BEGIN {
            printf "cluster bench: %s round %s: lookups of the first pass after the join: %d, %d on the new server (%.4f)\n",
                c, r, t, n, (t > 0 ? n / t : 0) }' >&2
        m=$(measure 16); record "$1-later-qd16" "$2" NA "$m"
        stop_case ;;
    esac
}

SKIP="" # the cases whose backend the filter cannot use yet
for b in $(for c in $CASES; do echo "${c%-*}"; done | awk '!seen[$1]++'); do
    backend_ready "$b" && continue
    SKIP="$SKIP $(for c in $CASES; do [ "${c%-*}" = "$b" ] && printf '%s ' "$c"; done)"
done
[ -z "$SKIP" ] || echo "cluster bench: skipped:$SKIP" >&2
echo "cluster bench: disk $DISK_MB MiB, remote memory $MEM_MB MiB in total ($PER_MB MiB per" \
    "server of three), $ROUNDS rounds of ${DUR} s runs" >&2

: >"$T/results"
r=0
while [ $r -lt "$ROUNDS" ]; do
    order=$CASES # odd rounds run the cases in reverse order
    [ $((r % 2)) = 1 ] && order=$(echo "$CASES" | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }')
    for c in $order; do run_case "$c" $r; done
    r=$((r + 1))
done

# col CASE FIELD: the median over rounds of a field of $T/results
# (2 iops, 3 hit_ratio, 4 client_cpu_us, 5 server_cpu_us, 6 moved_fraction).
col() { awk -v c="$1" -v f="$2" '$1 == c && $f != "NA" { print $f }' "$T/results" | median; }
for c in $(awk '!seen[$1]++ { print $1 }' "$T/results"); do
    moved=NA
    case $c in *-after-*) moved=$(col "$c" 6) ;; esac
    echo "RESULT name=cluster case=$c iops=$(col "$c" 2) hit_ratio=$(col "$c" 3)" \
        "client_cpu_us=$(col "$c" 4) moved_fraction=$moved"
    echo "cluster bench: case=$c memory servers' CPU per read (all of them, median): $(col "$c" 5) us" >&2
done
