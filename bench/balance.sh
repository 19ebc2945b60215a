#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# bench/run balance [--quick]: three VMs on one host, one memory server, a host RAM budget that
# cannot hold every working set, workloads that change phase; four policies in one run.
#
#   VM a: read its 256 MiB disk in random order (P passes), then idle (IDLE s)
#   VM b: idle first (WAIT s), then the same on its own 256 MiB disk (a and b swap needs)
#   VM c: a 96 MiB working set read all along (it fits in what it has)
#
#   each guest (QEMU -m 320, virtio-balloon, QMP) -vhost-user-> remoca-vhost --stats (the curve)
#        -> nbdkit [latency 150 us] [log] file           (the disk; its reads are counted)
#   remoca-memd R = 96 MiB shared by the three pools (exclusive mode)
#
# The guests' RAM together may not exceed H = 640 MiB = a's ceiling 320 + b's and c's floors
# 160 (213 MiB each when split evenly).  The guest's root fs is an initramfs: it keeps ~90 MiB
# of its RAM for itself (ballooned to 213 MiB it boots with memtotal_kb 164276, avail_kb ~125500:
# ~123 MiB of page cache), so ~230 MiB at 320 and ~70 at 160.  The set of the VM that reads,
# 256 MiB, fits in neither mechanism alone but in both together:
#   remote-only   RAM pinned at 213: page cache ~123 + all of R 96    = ~219 < 256
#   balloon-only  at most 320 (the others at their floors): ~230      < 256
#   combined      ~195-230 (c may keep more than its floor) + R 96    = ~290-326 >= 256
# c's 96 MiB fit in its page cache at 213 but not at its floor (~70): shrinking it costs reads
# the front end cannot foresee (c sends it none while its set fits: docs/balancer.md, watch).
#   static        each guest 213 MiB (balloon), remote pools min = max = R / 3 (the balancer
#                 with floor = ceiling and remote-min = remote-max: it only enforces the split)
#   balloon-only  no remote cache (remoca-vhost --mode off, which still writes the curve);
#                 remoca-balancer moves guest RAM within H (floors 160 MiB, ceilings 320 MiB)
#   remote-only   each guest 213 MiB; remoca-balancer moves the remote shares (RAM pinned)
#   combined      remoca-balancer moves both
# Per policy:
#   RESULT name=balance policy=P backing_reads=N total_s=S guest_oom=K reads_a=.. reads_b=.. reads_c=..
#          cold_reads=N
# backing_reads = read requests that reached the three disks during the passes after the first
# of each read phase, and during the idle phases (the first pass is the same cold read under
# every policy: cold_reads); total_s = guest seconds of all read passes of the three;
# guest_oom = guests whose console shows the OOM killer.
# Plus `RESULT name=balance summary combined_vs_best_single=R` (backing reads of combined over the
# lower of balloon-only and remote-only), and per policy a time series of each guest's RAM and
# remote share (sampled every 3 s from QMP and the server) drawn in one plot,
# docs/img/balance.png (--quick: $REMOCA_BUILD/vm/balancebench/img/).
# Under TCG on a busy 2-core host a pass of a takes 13-30 s: WAIT keeps b's phase after a's,
# IDLE keeps a alive (idle, its RAM to give) until b is done, and c's PC passes (~1.6-2.5 s
# each from its page cache, 1.2 s of them the guest's pause between steps) last about as long.
# The balancer loops every 2 s and moves at most 128 MiB per loop.
# --quick: fewer passes.  BALANCE_POLICIES selects policies.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
: "${REMOCA_BUILD:?}" "${REMOCA_SRC:?}"
source "$REMOCA_SRC/tests/vm/lib.sh"
source "$REMOCA_SRC/bench/lib.sh" # ratio

QUICK=0
[ "${1:-}" = --quick ] && QUICK=1
for b in remoca-vhost remoca-memd remoca-balancer remoca; do
    [ -x "$REMOCA_BUILD/$b" ] || { echo "balance bench: $REMOCA_BUILD/$b not built" >&2; exit 1; }
done
MAXMEM=320 FLOOR=160 H=640 EACH=213 R=96 WA=256 WC=96 P=4 PC=90 WAIT=100 IDLE=130
[ $QUICK = 1 ] && P=3 PC=50 WAIT=70 IDLE=90
POLICIES=${BALANCE_POLICIES:-static balloon-only remote-only combined}

work=$(mktemp -d /tmp/remoca-balancebench.XXXXXX)
vm_init "$work"
out=$REMOCA_BUILD/vm/balancebench
img=${VM_IMG:-$REMOCA_SRC/docs/img}
[ $QUICK = 1 ] && img=${VM_IMG:-$out/img}
mkdir -p "$out" "$img"
rm -f "$out"/*.series "$out"/*.steps "$out"/*.balancer "$out"/*.console
: > "$out/results.txt"
emit() { tee -a "$out/results.txt"; }
data=$REMOCA_BUILD/vm/data
"$REMOCA_SRC/tests/vm/mkdata.sh" raw "$data/raw$WA.img" $WA
"$REMOCA_SRC/tests/vm/mkdata.sh" raw "$data/raw$WC.img" $WC

BAL_PID="" SAMPLER_PID=""
stop_extra() {
    for p in $BAL_PID $SAMPLER_PID; do kill "$p" 2>/dev/null || true; done
    for f in "$work"/*.qemu.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
    true
}
trap 'stop_extra; vm_cleanup; rm -rf "$work"' EXIT

plan_of() { # the guest's phases
    case $1 in
    a) echo "idle:2,read:$WA:$P,idle:$IDLE" ;; # idle:2: boot's counters stay apart
    b) echo "idle:2,idle:$WAIT,read:$WA:$P" ;;
    c) echo "idle:2,read:$WC:$PC" ;;
    esac
}
image_of() { [ "$1" = c ] && echo "$data/raw$WC.img" || echo "$data/raw$WA.img"; }

# settled TAG MB: asks for MB MiB until the guest's balloon driver got it there (180 s at
# most; a guest that is still booting has no driver yet), so the balancer's first decision
# starts from the even split, not from -m (over the budget: straight to a blind goal)
settled() {
    local i ram=0
    for i in $(seq 180); do
        python3 "$VM_HERE/qmp.py" "$VM_WORK/$1.qmp" balloon "{\"value\": $(($2 * 1048576))}" >/dev/null 2>&1
        ram=$(python3 "$VM_HERE/qmp.py" "$VM_WORK/$1.qmp" query-balloon 2>/dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["actual"] >> 20)' 2>/dev/null || echo 0)
        [ "$ram" -gt 0 ] && [ "$ram" -le $(($2 + 1)) ] && return 0
        sleep 1
    done
    echo "balance bench: $1 still has ${ram}M, not ${2}M" >&2
}

# sampler POLICY: every 2 s, each guest's RAM (query-balloon) and remote pool bytes
sampler() {
    local pol=$1 t0=$SECONDS v ram pages
    while :; do
        for v in a b c; do
            ram=$(python3 "$VM_HERE/qmp.py" "$VM_WORK/$pol-$v.qmp" query-balloon 2>/dev/null |
                python3 -c 'import json,sys; print(json.load(sys.stdin)["actual"] >> 20)' 2>/dev/null || echo NA)
            pages=NA
            if [ -S "$VM_WORK/memd-$pol.sock" ]; then
                pages=$("$REMOCA_BUILD/remoca" stats --server "unix:$VM_WORK/memd-$pol.sock" --json 2>/dev/null |
                    python3 -c 'import json,sys
d = json.load(sys.stdin)
for p in d.get("pools", []):
    if p.get("name") == sys.argv[1]: print(p.get("bytes", 0) >> 20)' "vm-$pol-$v/vda" 2>/dev/null || echo NA)
            fi
            echo "$((SECONDS - t0)) ${ram:-NA} ${pages:-NA}" >> "$out/$pol-$v.series"
        done
        sleep 3
    done
}

# run POLICY: the three guests at once, under POLICY
run() {
    local pol=$1 t0=$SECONDS v tag mode=exclusive memd="" bal_args
    [ "$pol" = balloon-only ] && mode=off
    if [ $mode = exclusive ]; then
        memd=memd-$pol
        vm_memd_start "$memd" "${R}M"
    fi
    for v in a b c; do
        tag=$pol-$v
        vm_export_start "$tag" "$(image_of $v)" base ssd
        # the static split pins each pool: min = max = R / 3 (the pool is opened by remoca-vhost)
        VM_VHOST_MODE=$mode VM_VHOST_DISK="nbd+unix:///?socket=$VM_WORK/$tag.nbd.sock" \
            vm_vhost_start "$tag" - remoca 1 $memd
    done
    local pids=()
    for v in a b c; do
        tag=$pol-$v
        # no_timer_check: on a loaded host a TCG guest can fail the IO-APIC timer check (panic)
        ( VM_DISK=vhost vm_boot "$tag" $MAXMEM 1500 "no_timer_check vm.wl=plan vm.plan=$(plan_of $v)" ) &
        pids+=($!)
    done
    sampler "$pol" & SAMPLER_PID=$!
    # what each policy lets move: static and remote-only pin RAM (floor = ceiling), static also
    # pins the pools (remote-min = remote-max): the balancer then only enforces the split
    local vmspec=() third=$((R / 3))
    for v in a b c; do
        # (without servers the balancer only moves RAM, which adds to the curve in either mode)
        local spec="$v,qmp=$VM_WORK/$pol-$v.qmp,stats=$VM_WORK/$pol-$v.rstats,mode=exclusive"
        [ -n "$memd" ] && spec+=",pool=vm-$pol-$v/vda"
        case $pol in
        static) spec+=",floor=${EACH}M,ceil=${EACH}M,remote-min=${third}M,remote-max=${third}M" ;;
        remote-only) spec+=",floor=${EACH}M,ceil=${EACH}M" ;;
        *) spec+=",floor=${FLOOR}M,ceil=${MAXMEM}M" ;;
        esac
        vmspec+=(--vm "$spec")
    done
    bal_args=(--host-budget ${H}M "${vmspec[@]}")
    [ -n "$memd" ] && bal_args+=(--servers "unix:$VM_WORK/$memd.sock" --remote-budget ${R}M)
    for v in a b c; do settled "$pol-$v" $EACH; done
    sleep 2 # the first curves
    "$REMOCA_BUILD/remoca-balancer" "${bal_args[@]}" --interval 2 --step 128M --verbose \
        > "$out/$pol.balancer" 2>&1 &
    BAL_PID=$!
    for p in "${pids[@]}"; do wait "$p" || echo "balance bench: a guest of $pol failed" >&2; done
    [ -n "$BAL_PID" ] && { kill "$BAL_PID" 2>/dev/null; wait "$BAL_PID" 2>/dev/null || true; BAL_PID=""; }
    kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
    for v in a b c; do
        tag=$pol-$v
        cp "$VM_WORK/$tag.steps" "$out/$tag.steps" 2>/dev/null || true
        cp "$VM_WORK/$tag.console" "$out/$tag.console" 2>/dev/null || true
        vm_vhost_stop "$tag"
        vm_export_stop "$tag"
        rm -f "$VM_WORK/$tag.img"
    done
    [ -n "$memd" ] && vm_stop "$VM_WORK/$memd.pid"
    echo "balance bench: $pol done in $((SECONDS - t0)) s" >&2
}

steps=$REMOCA_SRC/tests/vm/steps.py
field() { # field TAG REGEX KEY
    [ -f "$out/$1.steps" ] || { echo NA; return; }
    python3 "$steps" "$out/$1.steps" "$2" | tr ' ' '\n' | awk -F= -v k="$3" '$1 == k { print $2 }'
}
for pol in $POLICIES; do
    run "$pol"
    tot=0 cold=0 s=0 oom=0 per=""
    add() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "NA" || a == "NA" || b == "") ? "NA" : a + b }'; }
    for v in a b c; do
        # the first pass of a read phase is the same cold read under every policy: measured are
        # the passes after it, and the idle phases (a guest that keeps its cache reads nothing)
        r=$(field "$pol-$v" 'p[0-9]+\.(pass([2-9]|[1-9][0-9])|idle)' reads)
        c=$(field "$pol-$v" 'p[0-9]+\.pass1' reads) t=$(field "$pol-$v" 'p[0-9]+\.pass[0-9]+' s)
        per+=" reads_$v=$r"
        tot=$(add "$tot" "$r") cold=$(add "$cold" "$c") s=$(add "$s" "$t")
        grep -aqE 'Out of memory|oom-kill' "$out/$pol-$v.console" 2>/dev/null && oom=$((oom + 1))
    done
    echo "RESULT name=balance policy=$pol backing_reads=$tot total_s=$s guest_oom=$oom$per cold_reads=$cold" | emit
done
best=$(awk '/policy=(balloon-only|remote-only) / { for (i = 1; i <= NF; i++) if ($i ~ /^backing_reads=/) { split($i, kv, "="); if (b == "" || kv[2] + 0 < b) b = kv[2] } }
            END { print (b == "" ? "NA" : b) }' "$out/results.txt")
comb=$(awk '/policy=combined / { for (i = 1; i <= NF; i++) if ($i ~ /^backing_reads=/) { split($i, kv, "="); print kv[2] } }' "$out/results.txt")
echo "RESULT name=balance summary combined_vs_best_single=$(ratio "${comb:-NA}" "$best")" | emit

# --- the plot: RAM and remote share per guest over time, one panel per policy ----------------
command -v gnuplot >/dev/null || { echo "balance bench: gnuplot missing, no plot" >&2; exit 0; }
n=0
for pol in $POLICIES; do [ -s "$out/$pol-a.series" ] && n=$((n + 1)); done
[ $n -gt 0 ] || exit 0
{
    echo "set terminal pngcairo size 900,$((240 * n)) font ',9' noenhanced"
    echo "set output '$img/balance.png'"
    echo "set multiplot layout $n,1"
    echo "set ylabel 'MiB'; set xlabel 'seconds'; set grid; set key outside right; set datafile missing 'NA'"
    for pol in $POLICIES; do
        [ -s "$out/$pol-a.series" ] || continue
        echo "set title '$pol: guest RAM (solid) and remote share (dashed)'"
        plot="plot"
        for v in a b c; do
            case $v in a) col='#c0504d' ;; b) col='#4f81bd' ;; c) col='#9bbb59' ;; esac
            f=$out/$pol-$v.series
            plot+=" '$f' using 1:2 with lines lw 2 lc rgb '$col' title '$v RAM',"
            plot+=" '$f' using 1:3 with lines dt 2 lw 2 lc rgb '$col' title '$v remote',"
        done
        echo "${plot%,}"
    done
    echo "unset multiplot"
} | gnuplot 2>/dev/null || echo "balance bench: gnuplot failed" >&2
echo "balance bench: plot $img/balance.png, raw outputs in $out" >&2
