#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# bench/run vm [--quick]: the paper's experiments with real virtual machines (QEMU TCG).
#
# Every experiment boots the same guest (tests/vm) three times, one after the other, in this run:
#   baseline  guest -> nbdkit [slow disk] file                          (no REMOCA)
#   remoca    guest -> nbdkit [remoca filter -> remoca-memd] [slow disk] file
#             (memd reached over loopback TCP, as a memory server on another machine would be;
#             thrash runs it a second time over memd's unix socket: transport=unix)
#   bound     baseline with enough guest RAM that nothing thrashes (upper bound)
# and the slow disk is emulated under the cache: hdd = nbdkit's delay filter, 8 ms per request
# (a 7200-rpm disk: ~4 ms rotation + ~4-8 ms seek per random access), ssd = tests/vm/latency.c,
# 150 us per request (a SATA/NVMe flash device's 4 KiB random read is ~100-200 us; nbdkit's
# delay filter cannot go below 1 ms).  nbdkit's stats and log filters below count what reaches
# the backing file.  Experiments:
#   thrash   guest RAM M reads a raw data set of ~2x M sequentially (dd through the page cache),
#            P passes, each in a new random order of 256 KiB chunks (tests/vm/rread.c, buffered
#            pread; exp=thrash), and again in 64 KiB chunks (exp=thrash-64k; VM_CHUNKS_KB sets
#            the sizes); pass 1 is the warm-up, passes 2..P are measured.  A fourth run, the floor,
#            uses a disk with no latency at all: under TCG a page-cache miss costs the emulated
#            guest kernel milliseconds per request whatever serves it, and no cache below the
#            guest can beat that floor.
#   apps     on an ext4 file system whose data is larger than guest RAM, in turn: a sqlite3
#            full-table query (128 MiB table), 4000 random primary-key lookups in it (one sqlite3
#            query), grep -r over a 128 MiB tree; pass 1 warms up, pass 2 is measured (per
#            application).  (tar and find+sha256sum exist in tests/vm/init but are CPU-bound
#            under TCG; VM_APPS=sqlite,lookup,grep,tar adds tar.)
#   balloon  a 128 MiB working set (random 256 KiB chunks) fits in a 256 MiB guest; after loop
#            K the host shrinks the balloon to 112 MiB over QMP; the loops after that are
#            measured.  The bound keeps its memory (no balloon).
# Output: one `RESULT name=vm exp=... disk=...` line per experiment and disk (times in guest
# seconds summed over the measured steps; backing_reads = NBD read requests reaching the backing
# file during those steps; remote_hit_ratio = blocks served by remote memory / blocks the guest
# asked of the VMM during those steps), a PNG plot per experiment in docs/img/ (gnuplot; with
# --quick in $REMOCA_BUILD/vm/bench/img/), and the raw step files in $REMOCA_BUILD/vm/bench/.
# --quick: smaller thrash and balloon on hdd only.
# bench/run starts benchmarks with sh; this one needs bash (arrays, [[ ]], the shared lib.sh)
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
: "${REMOCA_BUILD:?}" "${REMOCA_SRC:?}"
source "$REMOCA_SRC/tests/vm/lib.sh"

QUICK=0
[ "${1:-}" = --quick ] && QUICK=1
EXPS=${VM_EXPS:-thrash apps balloon}

work=$(mktemp -d /tmp/remoca-vmbench.XXXXXX)
vm_init "$work"
trap 'vm_cleanup; rm -rf "$work"' EXIT
out=$REMOCA_BUILD/vm/bench
data=$REMOCA_BUILD/vm/data
# full runs draw the plots docs/results.md shows; --quick ones stay in the build dir
img=${VM_IMG:-$REMOCA_SRC/docs/img}
[ $QUICK = 1 ] && img=${VM_IMG:-$out/img}
mkdir -p "$out" "$data" "$img"
steps=$REMOCA_SRC/tests/vm/steps.py
REMOCA=1
vm_have_remoca || { REMOCA=0; echo "vm bench: REMOCA filter or memd not built: remoca runs skipped" >&2; }

if [ $QUICK = 1 ]; then
    T_MEM=128 T_MB=192 T_PASSES=3 T_DISKS=hdd T_CHUNKS=256
    A_DISKS="" B_DISKS=hdd B_LOOPS=5 B_AT=2
else
    T_MEM=160 T_MB=320 T_PASSES=3 T_DISKS="hdd ssd" T_CHUNKS="256 64"
    A_DISKS=hdd B_DISKS="hdd ssd" B_LOOPS=6 B_AT=3
fi
T_CHUNKS=${VM_CHUNKS_KB:-$T_CHUNKS} # KiB per random read of thrash, one round each
A_MEM=128 A_DB=128 A_TREE=128 A_PASSES=2 A_APPS=${VM_APPS:-sqlite,lookup,grep}
B_MEM=256 B_MB=128 B_TARGET=112
BOUND_MEM=1024
MEMD_SIZE=512M

# run TAG MODE DISK IMAGE MEM APPEND [BALLOON_TARGET_MB]: one VM run; steps file in $out/TAG.steps
# MODE remoca: memd over TCP; remoca-unix: over its unix socket
run() {
    local tag=$1 mode=$2 disk=$3 image=$4 mem=$5 append=$6 balloon=${7:-}
    local t0=$SECONDS
    export VM_MEMD_TRANSPORT=tcp
    [ "$mode" = remoca-unix ] && mode=remoca VM_MEMD_TRANSPORT=unix
    rm -f "$out/$tag.steps"
    if [ "$mode" = remoca ]; then
        [ $REMOCA = 1 ] || return 0
        vm_memd_start "memd-$tag" $MEMD_SIZE
    fi
    vm_export_start "$tag" "$image" "$mode" "$disk" "memd-$tag"
    if vm_boot "$tag" "$mem" 900 "$append" "$balloon"; then
        cp "$work/$tag.steps" "$out/$tag.steps"
    else
        echo "vm bench: run $tag failed" >&2
    fi
    [ "$mode" = remoca ] && sleep 1.2   # the filter's last stats rewrite
    vm_export_stop "$tag"
    cp "$work/$tag.stats" "$out/$tag.nbdstats" 2>/dev/null || true   # nbdkit stats filter
    if [ "$mode" = remoca ]; then
        vm_memd_stats "memd-$tag" > "$out/$tag.memd" || true
        vm_stop "$work/memd-$tag.pid"
        cp "$work/$tag.rstats" "$out/$tag.rstats" 2>/dev/null || true
    fi
    rm -f "$work/$tag.img"
    echo "vm bench: $tag done in $((SECONDS - t0)) s" >&2
}

# sum TAG REGEX FIELD: FIELD of steps.py's summary (NA when the run is missing)
sum() {
    [ -f "$out/$1.steps" ] || { echo NA; return; }
    python3 "$steps" "$out/$1.steps" "$2" | tr ' ' '\n' | awk -F= -v k="$3" '$1 == k { print $2 }'
}

# report EXP DISK PREFIX REGEX [TRANSPORT]: prints the RESULT line for runs
# PREFIX-{base,remoca,bound} (TRANSPORT unix: PREFIX-remoca-unix instead of PREFIX-remoca)
report() {
    local exp=$1 disk=$2 p=$3 re=$4 tr=${5:-tcp}
    local b r u rb rr ub blocks hits rt=$p-remoca
    [ "$tr" = unix ] && rt=$p-remoca-unix
    b=$(sum "$p-base" "$re" s) r=$(sum "$rt" "$re" s) u=$(sum "$p-bound" "$re" s)
    rb=$(sum "$p-base" "$re" reads) rr=$(sum "$rt" "$re" reads) ub=$(sum "$p-bound" "$re" reads)
    blocks=$(sum "$rt" "$re" blocks) hits=$(sum "$rt" "$re" hits)
    python3 - "$exp" "$disk" "$b" "$r" "$u" "$rb" "$rr" "$ub" "$blocks" "$hits" "$tr" <<'PY'
import sys
exp, disk, b, r, u, rb, rr, ub, blocks, hits, tr = sys.argv[1:]
def f(x):
    try: return float(x)
    except ValueError: return None
B, R, U = f(b), f(r), f(u)
speed = "%.2f" % (B / R) if B and R else "NA"
gap = "%.2f" % ((B - R) / (B - U)) if None not in (B, R, U) and B - U > 0.05 else "NA"
drop = "%.3f" % (1 - f(rr) / f(rb)) if f(rb) and f(rr) is not None else "NA"
ratio = "%.3f" % (f(hits) / f(blocks)) if f(blocks) else "NA"
print("RESULT name=vm exp=%s disk=%s transport=%s baseline_s=%s remoca_s=%s bound_s=%s speedup=%s "
      "gap_closed=%s backing_reads_baseline=%s backing_reads_remoca=%s backing_reads_bound=%s "
      "backing_reads_drop=%s remote_hit_ratio=%s" % (exp, disk, tr, b, r, u, speed, gap, rb, rr, ub,
                                                     drop, ratio))
PY
}

# VM_PLOTS_ONLY=1: redraw the plots from the last run's results.txt and steps, run nothing
if [ -n "${VM_PLOTS_ONLY:-}" ]; then
    EXPS=""
else
    : > "$out/results.txt"
fi
emit() { tee -a "$out/results.txt"; }

# --- 1. thrashing ------------------------------------------------------------------------------
# One round per chunk size in T_CHUNKS: exp=thrash for 256 KiB reads, exp=thrash-64k etc. for the
# others (smaller random reads: more disk requests per MiB, as a database's page reads).
if [[ " $EXPS " == *" thrash "* ]]; then
    raw=$data/raw$T_MB.img
    "$REMOCA_SRC/tests/vm/mkdata.sh" raw "$raw" $T_MB
    for ck in $T_CHUNKS; do
        x=thrash; [ "$ck" = 256 ] || x=thrash-${ck}k
        app="vm.wl=thrash vm.order=rand vm.chunk_kb=$ck vm.passes=$T_PASSES"
        for d in $T_DISKS; do
            run "$x-$d-base" base "$d" "$raw" $T_MEM "$app"
            run "$x-$d-remoca" remoca "$d" "$raw" $T_MEM "$app"
            run "$x-$d-remoca-unix" remoca-unix "$d" "$raw" $T_MEM "$app"
            run "$x-$d-bound" base "$d" "$raw" $BOUND_MEM "$app"
            report "$x" "$d" "$x-$d" 'pass([2-9]|[1-9][0-9])' | emit
            report "$x" "$d" "$x-$d" 'pass([2-9]|[1-9][0-9])' unix | emit
        done
        # the floor: same small guest, disk with no latency at all (image in the host's page
        # cache): what a page-cache miss costs the emulated guest itself, whatever serves it
        run "$x-floor" base none "$raw" $T_MEM "$app"
        f=$(sum "$x-floor" 'pass([2-9]|[1-9][0-9])' s)
        echo "RESULT name=vm exp=$x-floor disk=none floor_s=$f backing_reads=$(sum "$x-floor" 'pass([2-9]|[1-9][0-9])' reads)" | emit
    done
fi

# --- 2. applications on ext4 ---------------------------------------------------------------------
if [[ " $EXPS " == *" apps "* ]] && [ -n "$A_DISKS" ]; then
    aimg=$data/apps-$A_DB-$A_TREE.img
    "$REMOCA_SRC/tests/vm/mkdata.sh" apps "$aimg" $A_DB $A_TREE
    app="vm.wl=apps vm.passes=$A_PASSES vm.apps=$A_APPS"
    for d in $A_DISKS; do
        run "apps-$d-base" base "$d" "$aimg" $A_MEM "$app"
        run "apps-$d-remoca" remoca "$d" "$aimg" $A_MEM "$app"
        run "apps-$d-bound" base "$d" "$aimg" $BOUND_MEM "$app"
        for a in $(echo $A_APPS | tr , ' '); do
            report "apps-$a" "$d" "apps-$d" "$a\\.pass([2-9])" | emit
        done
        report apps-all "$d" "apps-$d" '[a-z]+\.pass([2-9])' | emit
        # the applications' outputs must be the same in all three runs
        for t in base remoca bound; do
            grep -a 'step=digest' "$work/apps-$d-$t.console" 2>/dev/null | tr -d '\r' | awk '{ print $4, $5 }' > "$work/dig-$t"
        done
        if [ $REMOCA = 1 ] && ! { cmp -s "$work/dig-base" "$work/dig-remoca" && cmp -s "$work/dig-base" "$work/dig-bound"; }; then
            echo "vm bench: WARNING: application outputs differ between runs" >&2
        fi
    done
fi

# --- 3. ballooning -------------------------------------------------------------------------------
if [[ " $EXPS " == *" balloon "* ]]; then
    raw=$data/raw160.img
    "$REMOCA_SRC/tests/vm/mkdata.sh" raw "$raw" 160
    app="vm.wl=balloon vm.mb=$B_MB vm.passes=$B_LOOPS vm.balloon_mb=$((B_MEM - B_TARGET))"
    after=$(seq $((B_AT + 1)) $B_LOOPS | tr '\n' '|' | sed 's/|$//')
    for d in $B_DISKS; do
        run "balloon-$d-base" base "$d" "$raw" $B_MEM "$app vm.balloon_at=$B_AT" $B_TARGET
        run "balloon-$d-remoca" remoca "$d" "$raw" $B_MEM "$app vm.balloon_at=$B_AT" $B_TARGET
        run "balloon-$d-bound" base "$d" "$raw" $B_MEM "$app vm.balloon_at=0"
        report balloon "$d" "balloon-$d" "loop($after)" | emit
    done
fi

# --- plots (from this run's output) ------------------------------------------------------------
command -v gnuplot >/dev/null || { echo "vm bench: gnuplot missing, no plots" >&2; exit 0; }
bars() { # bars EXP-REGEX PNG TITLE: grouped bars baseline/remoca/bound (+floor) per RESULT line
    awk -v re="$1" 'BEGIN { n = 0 } /^RESULT/ { delete v; for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        if (v["exp"] ~ /-floor$/) { e = v["exp"]; sub(/-floor$/, "", e); floor[e] = v["floor_s"] }
        else if (v["exp"] ~ re && v["transport"] != "unix") { ex[n] = v["exp"]; line[n++] = v["exp"] "/" v["disk"] " " v["baseline_s"] " " v["remoca_s"] " " v["bound_s"] } }
        END { for (i = 0; i < n; i++) print line[i], (floor[ex[i]] == "" ? "NA" : floor[ex[i]]) }' \
        "$out/results.txt" | sed 's/NA/0/g' > "$out/$2.dat"
    [ -s "$out/$2.dat" ] || return 0
    local floor=""
    [ "$2" = vm-thrash ] && grep -q 'exp=thrash.*-floor' "$out/results.txt" &&
        floor=', "" using 5 title "floor: disk with no latency (TCG guest cost)" lc rgb "#7f7f7f"'
    gnuplot <<GP
set terminal pngcairo size 800,420 font ",10" noenhanced
set output "$img/$2.png"
set title "$3"
set ylabel "guest time, seconds (lower is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set grid ytics
set key below
plot "$out/$2.dat" using 2:xtic(1) title "baseline (no REMOCA)" lc rgb "#c0504d", \
     "" using 3 title "REMOCA" lc rgb "#4f81bd", \
     "" using 4 title "upper bound (enough RAM)" lc rgb "#9bbb59"$floor
GP
}
bars '^thrash(-[0-9]+k)?$' vm-thrash "Thrashing: guest ${T_MEM} MiB reads ${T_MB} MiB in random 256 KiB (thrash) or 64 KiB chunks, passes 2-${T_PASSES} (TCG)"
bars '^apps-' vm-apps "Applications on ext4, guest ${A_MEM} MiB, data ${A_DB}+${A_TREE} MiB, pass 2"
bars '^balloon$' vm-balloon "Ballooning ${B_MEM} -> ${B_TARGET} MiB with a ${B_MB} MiB working set, loops after the balloon"
# per-loop times of the balloon runs on the first disk kind: the balloon's effect over time
d=${B_DISKS%% *}
if [ -f "$out/balloon-$d-base.steps" ] && grep -q "exp=balloon " "$out/results.txt"; then # this run's balloon only
    for t in base remoca bound; do
        grep -o 'step=loop[0-9]* .* s=[0-9.]*' "$out/balloon-$d-$t.steps" 2>/dev/null |
            sed 's/step=loop\([0-9]*\).* s=\([0-9.]*\)/\1 \2/' > "$out/balloon-$t.loops" || true
    done
    gnuplot <<GP
set terminal pngcairo size 800,420 font ",10" noenhanced
set output "$img/vm-balloon-loops.png"
set title "Balloon ${B_MEM} -> ${B_TARGET} MiB after loop ${B_AT} ($d disk): time per ${B_MB} MiB loop"
set xlabel "loop"
set ylabel "seconds (lower is better)"
set yrange [0:*]
set grid
set xtics 1
set key below
set arrow from ${B_AT}.5, graph 0 to ${B_AT}.5, graph 1 nohead dt 2
plot "$out/balloon-base.loops" using 1:2 with linespoints title "baseline" lc rgb "#c0504d", \
     "$out/balloon-remoca.loops" using 1:2 with linespoints title "REMOCA" lc rgb "#4f81bd", \
     "$out/balloon-bound.loops" using 1:2 with linespoints title "no balloon" lc rgb "#9bbb59"
GP
fi
echo "vm bench: plots in $img, raw steps in $out" >&2
