# SPDX-License-Identifier: BSD-3-Clause
# bench/nbd.sh [--quick]: 4 KiB random reads through nbdkit, with and without REMOCA.
#
# fio's nbd engine (one NBD connection, libnbd, iodepth 1 or 16) reads 4 KiB
# blocks at random over a unix socket from four exports, all in one run:
#
#   memory  nbdkit memory plugin: no disk at all, the upper bound
#   file    nbdkit file plugin over a disk image: no cache of ours
#   warm    remoca filter over the same file plugin, remote cache filled by a
#           first full sequential pass, so every random read hits remotely
#   cold    the same filter in a freshly started nbdkit (empty directory, and
#           the filter resets its remote pool when it starts): every read
#           misses, goes to the file and is inserted remotely
#
# The filter reaches remoca-memd as `remoca serve` does with its local memory
# server: over a unix socket, with one-sided reads from the server's shared
# page store (memd --shm; lib/wire/include/remoca/shm.h).  MEMD_TRANSPORT=unix: the
# socket alone, every hit a round trip (case names get a -unix suffix);
# MEMD_TRANSPORT=tcp: loopback TCP, as with a memory server on another
# machine (-tcp suffix).
# One remoca-memd (3x the disk + 64 MiB) holds the pools: `warm`, filled
# once and kept by one nbdkit that stays up all run, and `cold`, reset by each
# cold run's new nbdkit.  Before the rounds, one full pass through a cold
# export makes memd touch its arena, so cold runs measure steady-state puts,
# not first-touch page faults.  The filter's stats file is checked: warm runs
# must have no misses, cold runs no remote hits.
#
# Each fio run reads each block at most once (fio's random map, no time_based:
# it stops at the runtime or after one full pass), and the page cache is
# dropped before every file and cold run alike, so those two measure the disk
# path, not RAM.  Rounds repeat all cases; the median is quoted:
#   RESULT name=nbd case=CASE iops=N p50_us=X ratio_vs_memory=R nbdkit_cpu_us=C
#          nbdkit_cpu_vs_memory=Q
# CASE is one of memory-qd1 memory-qd16 file-qd1 file-qd16 warm-qd1 warm-qd16
# cold-qd1 cold-qd16; ratio_vs_memory is iops over the memory case's at the
# same queue depth; nbdkit_cpu_us is the nbdkit process's CPU per read alone
# (memd's excluded: on another machine in a real deployment), Q its ratio to
# the memory plugin's.  Odd rounds run the cases in reverse order.  On stderr:
# the CPU time nbdkit (+ remoca-memd) spent per read, which other load on the
# machine distorts less than IOPS, what the kernel read from disk per read
# (4 KiB plus readahead: file and cold should match), and whether the
# targets are met.
#
# The price of sealing (per-page AES-GCM on the client, docs/design.md "Sealed
# pages"), when the filter has it: a second warm export, `warmenc`, on a pool
# of its own with remoca-seal=on, beside `warm` with remoca-seal=off, both
# filled once and kept up all run, measured in the same rounds:
#   RESULT name=nbd case=warm-tcp-qd16-enc iops=N p50_us=X ratio_vs_plain=R
#          nbdkit_cpu_us=C cpu_vs_plain=Q
# R is the median over rounds of warmenc's IOPS over warm's in the same round;
# and the crypto alone, CPU per 4 KiB page (remoca-sealcost, bench/seal_cost.c):
#   RESULT name=nbd case=seal-cpu seal_ns_per_page=S open_ns_per_page=O
# SEAL=off skips them.
#
# DISK=ssd|hdd: the miss path over a disk with real latency, where it matters (a file in the
# host's page cache hides microseconds behind the kernel's readahead): the file plugin gets
# tests/vm's latency filter (150 us per read, VM_SSD_US) or nbdkit's delay filter (8 ms,
# VM_HDD_MS) under it, and only `file` and `cold` run, both over that disk:
#   RESULT name=nbd case=file-ssd-qd1 iops=N p50_us=X
#   RESULT name=nbd case=cold-ssd-qd1 iops=N p50_us=X cold_vs_file=R   (R >= 0.97: within 3%)
set -eu
. "$REMOCA_SRC/bench/lib.sh"

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
MEMD="$REMOCA_BUILD/remoca-memd"
FILTER="$REMOCA_BUILD/nbdkit-remoca-filter.so"
if [ $QUICK = 1 ]; then DISK_MB=${DISK_MB:-256}; DUR=${DUR:-1}; ROUNDS=${ROUNDS:-3}
else DISK_MB=${DISK_MB:-1024}; DUR=${DUR:-5}; ROUNDS=${ROUNDS:-3}; fi
MEMD_MB=$((3 * DISK_MB + 64))
MEMD_TRANSPORT=${MEMD_TRANSPORT:-shm}
DISK=${DISK:-}
LATENCY_FILTER="$REMOCA_BUILD/tests/vm/nbdkit-latency-filter.so"
case $DISK in
"") DISK_ARGS="" ;;
ssd) DISK_ARGS="--filter=$LATENCY_FILTER" DISK_PARAMS="latency-read=${VM_SSD_US:-150}" ;;
hdd) DISK_ARGS="--filter=delay" DISK_PARAMS="delay-read=${VM_HDD_MS:-8}ms" ;;
*) echo "nbd bench: DISK must be ssd or hdd" >&2; exit 2 ;;
esac
if [ "$DISK" = ssd ] && [ ! -f "$LATENCY_FILTER" ]; then
    echo "nbd bench: $LATENCY_FILTER not built" >&2; exit 1
fi
case $MEMD_TRANSPORT in
shm) SUFFIX="" ;;
unix) SUFFIX="-unix" ;;
tcp) SUFFIX="-tcp" ;;
*) echo "nbd bench: MEMD_TRANSPORT must be shm, unix or tcp" >&2; exit 2 ;;
esac
RUNTIME_MS=$(awk -v d="$DUR" 'BEGIN { printf "%d", d * 1000 }')

for c in nbdkit fio python3; do
    command -v $c >/dev/null || { echo "nbd bench: $c not installed" >&2; exit 1; }
done
bench_init

with_remoca=1
if [ ! -f "$FILTER" ] || [ ! -x "$MEMD" ]; then
    echo "nbd bench: $FILTER or $MEMD not built: no warm/cold cases" >&2
    with_remoca=0
fi
can_drop=1
if ! { sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
    echo "nbd bench: cannot drop the page cache (not root?): file and cold read RAM" >&2
    can_drop=0
fi
drop_caches() { [ $can_drop = 1 ] && sync && echo 3 >/proc/sys/vm/drop_caches || true; }

# A disk image of real (random) data, so that reads cost real disk I/O.
IMG="$T/disk.img"
dd if=/dev/urandom of="$IMG" bs=1M count="$DISK_MB" status=none
sync

cat >"$T/fio.py" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
try:
    job = json.loads(text[text.index('{'):])['jobs'][0]
except (ValueError, KeyError, IndexError) as e:
    sys.exit('nbd bench: unreadable fio output: %s' % e)
r = job['read']
if job.get('error'):
    sys.exit('nbd bench: fio error %s' % job['error'])
print('%.0f %.1f %d' % (r['iops'], r['clat_ns']['percentile']['50.000000'] / 1000.0,
                       r['total_ios']))
PY

# start_nbdkit NAME ARGS...: nbdkit on $T/NAME.sock; pid in NBDKIT_PID.
start_nbdkit() {
    _n=$1; shift
    rm -f "$T/$_n.sock"
    bench_bg "nbdkit-$_n" nbdkit -f -U "$T/$_n.sock" "$@"
    NBDKIT_PID=$BG_PID
    wait_sock "$T/$_n.sock" 10 || {
        echo "nbd bench: nbdkit ($_n) did not start: $(head -c 1000 "$T/nbdkit-$_n.log")" >&2
        exit 1
    }
}

# start_memd NAME: remoca-memd on an ephemeral port and a unix socket;
# MEMD_PID, MEMD_ADDR (the one MEMD_TRANSPORT chooses).
start_memd() {
    bench_bg "$1" "$MEMD" --listen 127.0.0.1:0 --port-file "$T/$1.port" \
        --unix "$T/$1.memd.sock" --memory "${MEMD_MB}M" --threads 2 $SHM_FLAG
    MEMD_PID=$BG_PID
    wait_file "$T/$1.port" 10 || {
        echo "nbd bench: remoca-memd did not start: $(head -c 1000 "$T/$1.log")" >&2
        exit 1
    }
    MEMD_ADDR=unix:$T/$1.memd.sock
    [ "$MEMD_TRANSPORT" = tcp ] && MEMD_ADDR=127.0.0.1:$(sed 's/.*://' "$T/$1.port" | tr -d ' \n')
    return 0
}

SHM_FLAG=""; SHM_PARAM=remoca-shm=off
[ "$MEMD_TRANSPORT" = shm ] && SHM_FLAG=--shm && SHM_PARAM=remoca-shm=on
HZ=$(getconf CLK_TCK)

# fio_randread SOCK QD PID...: prints "IOPS P50_US CPU_US_PER_IO DISK_KIB_PER_IO
# FIRST_CPU_US_PER_IO": the CPU time the server processes PID... spent per read,
# what the kernel read from block devices per read (/proc/vmstat pgpgin,
# machine-wide: readahead shows here; see docs/nbd-performance.md), and the
# CPU time of the first PID alone (nbdkit: what the VM host pays when memd
# runs on another machine).
pgpgin() { awk '$1 == "pgpgin" { print $2 }' /proc/vmstat; }
fio_randread() {
    _sock=$1; _qd=$2; shift 2
    _pg0=$(pgpgin)
    _c0=$(cpu_ticks "$@"); _f0=$(cpu_ticks "$1")
    fio --name=randread --ioengine=nbd --uri="nbd+unix:///?socket=$_sock" --rw=randread \
        --bs=4k --iodepth="$_qd" --runtime="${RUNTIME_MS}ms" --output-format=json >"$T/fio.json" \
        2>"$T/fio.err" || { echo "nbd bench: fio failed: $(cat "$T/fio.err")" >&2; exit 1; }
    _c1=$(cpu_ticks "$@"); _f1=$(cpu_ticks "$1")
    _pg1=$(pgpgin)
    python3 "$T/fio.py" "$T/fio.json" | awk -v d=$((_c1 - _c0)) -v hz="$HZ" -v pg=$((_pg1 - _pg0)) \
        -v f=$((_f1 - _f0)) '{ printf "%s %s %.1f %.1f %.1f\n", $1, $2, ($3 > 0 ? d * 1e6 / hz / $3 : 0),
        ($3 > 0 ? pg / $3 : 0), ($3 > 0 ? f * 1e6 / hz / $3 : 0) }'
}

# the backing disk: the file plugin, under the DISK latency if any
disk_args() { echo "$DISK_ARGS file $IMG ${DISK_PARAMS:-}"; }
remoca_args() { # remoca_args POOL [FILTER-ARGS...]
    _p=$1; shift
    echo "--filter=$FILTER $(disk_args) remoca-servers=$MEMD_ADDR remoca-pool=$_p" \
        "remoca-timeout=1000 remoca-statsfile=$T/$_p.stats $SHM_PARAM $SEAL_OFF $*"
}
# Sealing: off in every case but warmenc (when the filter has it).
SEAL=${SEAL:-on}; SEAL_OFF=""
if nbdkit --filter="$FILTER" null --help 2>/dev/null | grep -q remoca-seal; then
    SEAL_OFF=remoca-seal=off
else
    SEAL=off
fi

# counter FILE NAME: a counter from a filter stats file (0 if absent).
counter() { v=$(sed -n "s/^$2=//p" "$1" 2>/dev/null); echo "${v:-0}"; }

# fill_pass SOCK: reads the whole export once, sequentially.
fill_pass() {
    fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$1" --rw=read \
        --bs=256k --iodepth=4 --output-format=json >"$T/fill.json" 2>"$T/fio.err" ||
        { echo "nbd bench: fill pass failed: $(cat "$T/fio.err")" >&2; exit 1; }
}

CASES="memory file"
if [ $with_remoca = 1 ]; then
    CASES="memory file warm cold"
    [ -n "$DISK" ] && CASES="file cold"
    # The warm export stays up all run: its cache (and the filter's knowledge
    # of what is remote) must survive between rounds.
    start_memd memd
    # shellcheck disable=SC2046
    start_nbdkit cold $(remoca_args cold)
    fill_pass "$T/cold.sock"
    bench_kill "$NBDKIT_PID"
    # The warm export stays up all run: its cache (and the filter's knowledge
    # of what is remote) must survive between rounds.
    [ -n "$DISK" ] || {
    # shellcheck disable=SC2046
    start_nbdkit warm $(remoca_args warm)
    WARM_PID=$NBDKIT_PID
    fill_pass "$T/warm.sock"
    blocks=$((DISK_MB * 256)); i=0
    while [ "$(counter "$T/warm.stats" fills)" -lt $blocks ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    warm_misses0=$(counter "$T/warm.stats" misses); warm_hits0=$(counter "$T/warm.stats" remote_hits)
    warm_one0=$(counter "$T/warm.stats" one_sided_hits)
    echo "nbd bench: warm cache filled ($DISK_MB MiB, $(counter "$T/warm.stats" fills) blocks put)" >&2
    if [ "$SEAL" = on ]; then
        CASES="$CASES warmenc"
        head -c 64 /dev/urandom >"$T/seal.key"; chmod 600 "$T/seal.key"
        # shellcheck disable=SC2046
        start_nbdkit warmenc $(remoca_args warmenc remoca-seal=on remoca-key=+"$T/seal.key")
        WARMENC_PID=$NBDKIT_PID
        fill_pass "$T/warmenc.sock"
        i=0
        while [ "$(counter "$T/warmenc.stats" fills)" -lt $blocks ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        enc_misses0=$(counter "$T/warmenc.stats" misses); enc_hits0=$(counter "$T/warmenc.stats" remote_hits)
    fi
    }
fi
cold_reads=0; cold_hits=0

# Over a socket (unix, tcp), the floor of a warm read at queue depth 1: a
# memory-plugin read plus one round trip to memd.  remoca-loadgen (one connection, depth 1, validated
# 4 KiB gets, no client library) measures that round trip on the same memd,
# over the same transport, in every round, on a pool of its own.
LOADGEN="$REMOCA_BUILD/remoca-loadgen"
with_floor=0
if [ $with_remoca = 1 ] && [ -x "$LOADGEN" ] && [ "$MEMD_TRANSPORT" != shm ] && [ -z "$DISK" ]; then
    case $MEMD_ADDR in
    unix:*) LG_TARGET="--unix ${MEMD_ADDR#unix:}" ;;
    *) LG_TARGET="--server $MEMD_ADDR" ;;
    esac
    # shellcheck disable=SC2086
    "$LOADGEN" --proto remoca $LG_TARGET --pool floor --op put --seq --depth 16 --keys 4096 \
        >"$T/floor.out" 2>&1 || { echo "nbd bench: loadgen preload failed: $(cat "$T/floor.out")" >&2; exit 1; }
    with_floor=1
fi
# floor_get: prints "OPS_PER_S P50_US 0" for depth-1 gets on the floor pool.
floor_get() {
    # shellcheck disable=SC2086
    "$LOADGEN" --proto remoca $LG_TARGET --pool floor --op get --depth 1 --keys 4096 \
        --duration "$DUR" >"$T/floor.out" 2>&1 ||
        { echo "nbd bench: loadgen failed: $(cat "$T/floor.out")" >&2; exit 1; }
    sed -n 's/.*ops_per_s=\([0-9.]*\) p50_us=\([0-9.]*\).*/\1 \2 0/p' "$T/floor.out"
}

: >"$T/results"
r=0
while [ $r -lt "$ROUNDS" ]; do
    order=$CASES # odd rounds run the cases in reverse order
    [ $((r % 2)) = 1 ] && order=$(echo "$CASES" | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }')
    for qd in 1 16; do
        for c in $order; do
            case $c in
            memory)
                start_nbdkit memory memory "${DISK_MB}M"
                res=$(fio_randread "$T/memory.sock" $qd "$NBDKIT_PID")
                bench_kill "$NBDKIT_PID" ;;
            file)
                # shellcheck disable=SC2046
                start_nbdkit file $(disk_args)
                drop_caches
                res=$(fio_randread "$T/file.sock" $qd "$NBDKIT_PID")
                bench_kill "$NBDKIT_PID" ;;
            warm)
                res=$(fio_randread "$T/warm.sock" $qd "$WARM_PID" "$MEMD_PID") ;;
            warmenc)
                res=$(fio_randread "$T/warmenc.sock" $qd "$WARMENC_PID" "$MEMD_PID") ;;
            cold)
                rm -f "$T/cold.stats"
                # shellcheck disable=SC2046
                start_nbdkit cold $(remoca_args cold)
                drop_caches
                res=$(fio_randread "$T/cold.sock" $qd "$NBDKIT_PID" "$MEMD_PID")
                bench_kill "$NBDKIT_PID"
                cold_reads=$((cold_reads + $(counter "$T/cold.stats" reads)))
                cold_hits=$((cold_hits + $(counter "$T/cold.stats" remote_hits))) ;;
            esac
            echo "$c-qd$qd $res $r" >>"$T/results" # field 7: the round
        done
    done
    [ $with_floor = 1 ] && echo "floor-qd1 $(floor_get)" >>"$T/results"
    r=$((r + 1))
done

col() { awk -v c="$1" -v f="$2" '$1 == c { print $f }' "$T/results" | median; }
# paired C D QD: the median over rounds of C's IOPS over D's in the same round
paired() {
    awk -v a="$1-qd$3" -v b="$2-qd$3" '$1 == a { x[$7] = $2 } $1 == b { y[$7] = $2 }
        END { for (r in x) if ((r in y) && y[r] > 0) print x[r] / y[r] }' "$T/results" | median
}
if [ -n "$DISK" ]; then
    for qd in 1 16; do
        for c in $CASES; do
            name=$c-$DISK-qd$qd extra=""
            [ "$c" = cold ] && name=$c$SUFFIX-$DISK-qd$qd extra=" cold_vs_file=$(paired cold file $qd)"
            echo "RESULT name=nbd case=$name iops=$(col "$c-qd$qd" 2) p50_us=$(col "$c-qd$qd" 3)$extra"
            echo "nbd bench: case=$c-$DISK-qd$qd server CPU per read (nbdkit + memd, median):" \
                "$(col "$c-qd$qd" 4) us" >&2
        done
    done
    echo "nbd bench: cold runs: $cold_reads reads, $cold_hits remote hits (must be 0)" >&2
    for qd in 1 16; do
        awk -v r="$(paired cold file $qd)" -v qd=$qd -v d="$DISK" 'BEGIN { printf "nbd bench: target cold-%s-qd%s at most 3%% slower than file: %s (%.3fx, median of rounds)\n", d, qd, (r >= 0.97 ? "yes" : "no"), r }' >&2
    done
    exit 0
fi
for c in $CASES; do
    for qd in 1 16; do
        mem=$(col "memory-qd$qd" 2)
        iops=$(col "$c-qd$qd" 2)
        name=$c-qd$qd
        case $c in warm | cold) name=$c$SUFFIX-qd$qd ;; esac
        ncpu=$(col "$c-qd$qd" 6)
        if [ "$c" = warmenc ]; then
            echo "RESULT name=nbd case=warm$SUFFIX-qd$qd-enc iops=$iops p50_us=$(col "$c-qd$qd" 3)" \
                "ratio_vs_plain=$(paired warmenc warm $qd) nbdkit_cpu_us=$ncpu" \
                "cpu_vs_plain=$(ratio "$ncpu" "$(col "warm-qd$qd" 6)")"
        else
            echo "RESULT name=nbd case=$name iops=$iops p50_us=$(col "$c-qd$qd" 3)" \
                "ratio_vs_memory=$(ratio "$iops" "$mem") nbdkit_cpu_us=$ncpu" \
                "nbdkit_cpu_vs_memory=$(ratio "$ncpu" "$(col "memory-qd$qd" 6)")"
        fi
        echo "nbd bench: case=$c-qd$qd server CPU per read (nbdkit + memd, median): $(col "$c-qd$qd" 4) us" \
            "(nbdkit alone $ncpu us); disk read per read: $(col "$c-qd$qd" 5) KiB" >&2
    done
done

if [ $with_floor = 1 ]; then
    # Latencies add up only roughly (medians of separate runs): a lower bound
    # of the order of what any design with one round trip per read pays.
    rtt=$(col floor-qd1 3); m1=$(col memory-qd1 3)
    bound=$(awk -v a="$m1" -v b="$rtt" 'BEGIN { printf "%.1f", a + b }')
    echo "RESULT name=nbd case=floor$SUFFIX-qd1 memd_get_p50_us=$rtt bound_p50_us=$bound" \
        "bound_vs_memory_p50=$(ratio "$bound" "$m1")"
    echo "nbd bench: floor: memory-qd1 p50 + one memd get round trip (loadgen, depth 1) =" \
        "$m1 + $rtt = $bound us, $(ratio "$bound" "$m1")x memory's: what any design" \
        "with one round trip per read pays at least" >&2
fi

if [ $with_remoca = 1 ]; then
    bench_kill "$WARM_PID" # its stats file is written a last time at exit
    echo "nbd bench: warm runs: $(($(counter "$T/warm.stats" remote_hits) - warm_hits0)) remote hits" \
        "($(($(counter "$T/warm.stats" one_sided_hits) - warm_one0)) of them one-sided)," \
        "$(($(counter "$T/warm.stats" misses) - warm_misses0)) misses (must be 0)" >&2
    echo "nbd bench: cold runs: $cold_reads reads, $cold_hits remote hits (must be 0)" >&2
    if [ "$SEAL" = on ]; then
        bench_kill "$WARMENC_PID"
        echo "nbd bench: warmenc runs: $(($(counter "$T/warmenc.stats" remote_hits) - enc_hits0)) remote hits," \
            "$(($(counter "$T/warmenc.stats" misses) - enc_misses0)) misses (must be 0)," \
            "$(counter "$T/warmenc.stats" integrity_failures) integrity failures (must be 0)" >&2
        awk -v r="$(paired warmenc warm 16)" 'BEGIN { printf "nbd bench: target warm-qd16-enc at most 10%% fewer IOPS than plain: %s (%.3fx, median of rounds)\n", (r >= 0.9 ? "yes" : "no"), r }' >&2
        if [ -x "$REMOCA_BUILD/remoca-sealcost" ]; then
            echo "RESULT name=nbd case=seal-cpu $("$REMOCA_BUILD/remoca-sealcost" | tr -d '\n')"
        fi
    fi
    awk -v w16="$(col warm-qd16 2)" -v m16="$(col memory-qd16 2)" \
        -v w1="$(col warm-qd1 3)" -v m1="$(col memory-qd1 3)" \
        -v wc="$(col warm-qd16 6)" -v mc="$(col memory-qd16 6)" -v fl="${bound:-0}" \
        -v c1="$(col cold-qd1 2)" -v f1="$(col file-qd1 2)" \
        -v c16="$(col cold-qd16 2)" -v f16="$(col file-qd16 2)" 'BEGIN {
        yn = "no"; if (w16 >= 0.7 * m16) yn = "yes"
        printf "nbd bench: target warm-qd16 >= 0.7x memory iops: %s (%.2fx)\n", yn, w16 / m16
        yn = "no"; if (wc <= 1.5 * mc) yn = "yes"
        printf "nbd bench: target nbdkit CPU per warm-qd16 read <= 1.5x the memory plugin: %s (%.1f vs %.1f us, %.2fx)\n",
            yn, wc, mc, wc / mc
        if (fl > 0) {
            yn = "no"; if (w1 <= 1.1 * fl) yn = "yes"
            printf "nbd bench: target warm-qd1 p50 <= 1.1x the floor: %s (%.1f vs %.1f us, %.2fx)\n",
                yn, w1, fl, w1 / fl
        } else {
            yn = "no"; if (w1 <= 1.5 * m1) yn = "yes"
            printf "nbd bench: target warm-qd1 p50 <= 1.5x memory: %s (%.2fx)\n", yn, w1 / m1
        }
        yn = "no"; if (c1 >= 0.95 * f1 && c16 >= 0.95 * f16) yn = "yes"
        printf "nbd bench: target cold <= 5%% slower than file: %s (qd1 %.2fx, qd16 %.2fx)\n",
            yn, c1 / f1, c16 / f16 }' >&2
fi
