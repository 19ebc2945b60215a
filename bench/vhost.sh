#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# bench/run vhost [--quick]: remoca-vhost's cache modes with real virtual machines (QEMU TCG).
#
# The question: does exclusive caching (eviction inference, docs/vhost.md) make guest RAM and
# remote memory add up, where inclusive caching keeps a second copy of what the guest holds?
# Every run boots the same guest (tests/vm) on remoca-vhost; only the mode and the RAM change:
#
#   guest G MiB RAM --vhost-user-blk--> remoca-vhost --mode M --+--> remoca-memd (R MiB)
#                                                              `--> nbdkit [delay] [stats] [log]
#                                                                   file (an emulated slow disk)
#   mode=off        no remote cache: every guest miss reaches the disk
#   mode=inclusive  the NBD filter's cache: every block read is filled into remote memory
#   mode=exclusive  a block goes to remote memory when the guest evicts it; a hit takes it back
#   mode=ideal      mode off with G + R MiB of guest RAM: an exclusive cache of that size at best
#
# Experiments (the guest's page cache holds about 105 MiB with G = 192):
#   thrash  W = 256 MiB raw data read P times, each pass in a new random order of 256 KiB chunks
#           (R < W < G + R: exclusive fits it, inclusive does not)
#   fits    W = 128 MiB, the same reads (W < R: both modes should hold all of it)
#   apps    the ext4 applications of bench/run vm (sqlite full scan, 4000 lookups, grep -r) on
#           128 + 128 MiB of data, two passes
# The disk is tests/vm/latency.c at 150 us a request (a flash disk; VM_SSD_US; VHOST_DISK=hdd: the
# delay filter's 8 ms, but remoca-vhost serves one request at a time per queue, so a run then
# takes many minutes) under the file plugin; its log filter counts the reads that reach it.  Pass 1 is the same cold read in every
# mode; the passes after it are measured:
#   RESULT name=vhost exp=E mode=M run_s=S backing_reads=N remote_hit_ratio=H
#          evictions_inferred=I evictions_verified=V evictions_mismatched=X eviction_puts=P takes=T
#   RESULT name=vhost exp=E summary excl_vs_incl_reads=... excl_vs_ideal_reads=... verified_ratio=...
# run_s = guest seconds summed over the measured steps, backing_reads = read requests reaching
# the disk during them, remote_hit_ratio = blocks served by remote memory / blocks read.
#
#   fio     fio in the guest (512 MiB RAM), 4 KiB random O_DIRECT reads of a 64 MiB region, QD1
#           and QD16, after one O_DIRECT read of the region (the remote cache warm); against
#           qemu-storage-daemon exporting the same file through the host page cache
#           (cache.direct=off: both serve from host memory).  Backends in turn, ROUNDS rounds:
#   RESULT name=vhost exp=fio case=qdN backend=B iops=MEDIAN ratio_vs_qsd=R cpu_us_per_req=C
#   with B = qsd, off, inclusive, exclusive, and CPU per request of the backend process (its
#   user + system time over the fio runs / the requests fio completed).  Also printed: the bytes
#   of inference metadata per guest page (exclusive mode's evict_map_bytes / guest pages).
#
# --quick: thrash and fio only, fewer passes and rounds.  VHOST_EXPS selects experiments.
# Raw outputs: $REMOCA_BUILD/vm/vhostbench/ (steps files, stats, results.txt).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
: "${REMOCA_BUILD:?}" "${REMOCA_SRC:?}"
source "$REMOCA_SRC/tests/vm/lib.sh"
source "$REMOCA_SRC/bench/lib.sh" # median, ratio, cpu_ticks

QUICK=0
[ "${1:-}" = --quick ] && QUICK=1
for b in remoca-vhost remoca-memd; do
    [ -x "$REMOCA_BUILD/$b" ] || { echo "vhost bench: $REMOCA_BUILD/$b not built" >&2; exit 1; }
done

G=192 R=192 W=256 W_FITS=128 PASSES=3 DISK=${VHOST_DISK:-ssd}
FIO_MEM=512 FIO_MB=64 FIO_S=6 FIO_PASSES=2 ROUNDS=2
EXPS=${VHOST_EXPS:-thrash fits apps fio}
if [ $QUICK = 1 ]; then
    FIO_S=3 FIO_PASSES=1 ROUNDS=1 PASSES=2
    EXPS=${VHOST_EXPS:-thrash fio}
fi
# the memory server as `remoca serve` runs a local one: its store shared read-only with the
# clients on this host, which read hits one-sided (docs/design.md)
export VM_MEMD_ARGS=${VM_MEMD_ARGS---shm}
KEYS="evictions_inferred evictions_verified evictions_mismatched evictions_stale eviction_puts takes"

work=$(mktemp -d /tmp/remoca-vhostbench.XXXXXX)
vm_init "$work"
trap 'vm_cleanup; rm -rf "$work"' EXIT
out=$REMOCA_BUILD/vm/vhostbench
data=$REMOCA_BUILD/vm/data
mkdir -p "$out" "$data"
rm -f "$out"/*.cpu "$out"/*.steps "$out"/*.rstats*
: > "$out/results.txt"
emit() { tee -a "$out/results.txt"; }
steps=$REMOCA_SRC/tests/vm/steps.py

# run TAG MODE IMAGE APPEND: one guest on remoca-vhost in MODE over the slow disk; the steps
# file (with the engine's counters per step) is kept as $out/TAG.steps
run() {
    local tag=$1 mode=$2 image=$3 append=$4 mem=$G memd="" t0=$SECONDS
    rm -f "$out/$tag.steps"
    vm_export_start "$tag" "$image" base "$DISK"
    case $mode in
    ideal) mem=$((G + R)) ;;
    inclusive | exclusive) vm_memd_start "memd-$tag" "${R}M"; memd=memd-$tag ;;
    esac
    local vmode=$mode
    [ "$mode" = ideal ] && vmode=off
    VM_VHOST_MODE=$vmode VM_VHOST_DISK="nbd+unix:///?socket=$VM_WORK/$tag.nbd.sock" \
        vm_vhost_start "$tag" - remoca 1 $memd
    if VM_DISK=vhost VM_RSTATS_KEYS=$KEYS vm_boot "$tag" "$mem" 1200 "$append"; then
        cp "$VM_WORK/$tag.steps" "$out/$tag.steps"
    else
        echo "vhost bench: run $tag failed" >&2
    fi
    vm_vhost_stop "$tag"
    cp "$VM_WORK/$tag.rstats" "$out/$tag.rstats" 2>/dev/null || true
    vm_export_stop "$tag"
    [ -n "$memd" ] && vm_stop "$VM_WORK/$memd.pid"
    rm -f "$VM_WORK/$tag.img"
    echo "vhost bench: $tag ($mode, ${mem} MiB) done in $((SECONDS - t0)) s" >&2
}

# field TAG REGEX KEY: KEY of steps.py's sum over the steps matching REGEX (NA: no run)
field() {
    [ -f "$out/$1.steps" ] || { echo NA; return; }
    python3 "$steps" "$out/$1.steps" "$2" | tr ' ' '\n' | awk -F= -v k="$3" '$1 == k { print $2 }'
}

# report EXP REGEX: one RESULT line per mode of EXP's runs, then the summary line
report() {
    local exp=$1 re=$2 m blocks hits hr line
    for m in off inclusive exclusive ideal; do
        local t=$exp-$m
        blocks=$(field "$t" "$re" blocks) hits=$(field "$t" "$re" hits)
        hr=NA
        [ "$m" = inclusive ] || [ "$m" = exclusive ] && hr=$(ratio "$hits" "$blocks")
        line="RESULT name=vhost exp=$exp mode=$m run_s=$(field "$t" "$re" s) backing_reads=$(field "$t" "$re" reads) remote_hit_ratio=$hr"
        if [ "$m" = exclusive ] || [ "$m" = inclusive ]; then
            for k in $KEYS; do line+=" $k=$(field "$t" "$re" "$k")"; done
        fi
        echo "$line" | emit
    done
    local ri re_ rd iv ii
    ri=$(field "$exp-inclusive" "$re" reads) re_=$(field "$exp-exclusive" "$re" reads)
    rd=$(field "$exp-ideal" "$re" reads)
    iv=$(field "$exp-exclusive" "$re" evictions_verified) ii=$(field "$exp-exclusive" "$re" evictions_inferred)
    echo "RESULT name=vhost exp=$exp summary excl_vs_incl_reads=$(ratio "$re_" "$ri") excl_minus_ideal_reads=$(awk -v a="$re_" -v b="$rd" 'BEGIN { if (a == "NA" || b == "NA") print "NA"; else print a - b }') excl_vs_ideal_s=$(ratio "$(field "$exp-exclusive" "$re" s)" "$(field "$exp-ideal" "$re" s)") verified_ratio=$(ratio "$iv" "$ii")" | emit
}

measured='pass([2-9]|[1-9][0-9])'

# --- thrash and fits: random-order passes over raw data ----------------------------------------
for exp in thrash fits; do
    [[ " $EXPS " == *" $exp "* ]] || continue
    mb=$W
    [ $exp = fits ] && mb=$W_FITS
    raw=$data/raw$mb.img
    "$REMOCA_SRC/tests/vm/mkdata.sh" raw "$raw" "$mb"
    app="vm.wl=thrash vm.order=rand vm.chunk_kb=256 vm.passes=$PASSES"
    for m in off inclusive exclusive ideal; do run "$exp-$m" $m "$raw" "$app"; done
    report $exp "$measured"
done

# --- apps: real applications on ext4 -------------------------------------------------------------
if [[ " $EXPS " == *" apps "* ]]; then
    aimg=$data/apps-128-128.img
    "$REMOCA_SRC/tests/vm/mkdata.sh" apps "$aimg" 128 128
    app="vm.wl=apps vm.passes=2 vm.apps=sqlite,lookup,grep"
    for m in off inclusive exclusive ideal; do run "apps-$m" $m "$aimg" "$app"; done
    report apps '[a-z]+\.pass([2-9])'
    for m in inclusive exclusive ideal; do # the applications' outputs must not depend on the mode
        a=$(grep -a 'step=digest' "$VM_WORK/apps-off.console" | tr -d '\r' | awk '{ print $4, $5 }')
        b=$(grep -a 'step=digest' "$VM_WORK/apps-$m.console" | tr -d '\r' | awk '{ print $4, $5 }')
        [ -n "$a" ] && [ "$a" = "$b" ] || echo "vhost bench: WARNING: apps outputs differ, off vs $m" >&2
    done
fi

# --- fio against qemu-storage-daemon -------------------------------------------------------------
if [[ " $EXPS " == *" fio "* ]]; then
    "$REMOCA_SRC/tests/vm/mkguest.sh" "$VM_GUEST" --fio
    raw=$data/raw128.img
    "$REMOCA_SRC/tests/vm/mkdata.sh" raw "$raw" 128
    app="vm.wl=fio vm.mb=$FIO_MB vm.fio_qd=1,16 vm.fio_s=$FIO_S vm.passes=$FIO_PASSES"
    FIO_PID="" FIO_TAG=""
    # fio_hook LINE: the backend's CPU ticks when each fio line (and the warm-up) is seen
    fio_hook() {
        case $1 in *step=warm* | *step=fio.*)
            echo "$1 cpu_ticks=$(cpu_ticks "$FIO_PID")" >> "$VM_WORK/$FIO_TAG.cpu" ;;
        esac
        # the engine's counters while the guest is connected (its maps are dropped at the end)
        local copy=$out/$FIO_TAG.rstats
        case $1 in *step=warm*) copy=$out/$FIO_TAG.rstats-warm ;; esac
        cp "$VM_WORK/$FIO_TAG.rstats" "$copy" 2>/dev/null || true
    }
    for round in $(seq "$ROUNDS"); do
        for b in ${VHOST_FIO_BACKENDS:-qsd off inclusive exclusive}; do
            tag=fio-$b-$round memd=""
            case $b in
            qsd) VM_QSD_DIRECT=off vm_vhost_start "$tag" "$raw" qsd 1 ;;
            off) vm_vhost_start "$tag" "$raw" remoca 1 ;;
            *) vm_memd_start "memd-$tag" "${R}M"; memd=memd-$tag
               VM_VHOST_MODE=$b vm_vhost_start "$tag" "$raw" remoca 1 "$memd" ;;
            esac
            FIO_PID=$(cat "$VM_WORK/$tag.vhost.pid") FIO_TAG=$tag
            : > "$VM_WORK/$tag.cpu"
            VM_DISK=vhost VM_INITRD_EXTRA=$VM_GUEST/fio.cpio.gz VM_HOOK=fio_hook \
                vm_boot "$tag" $FIO_MEM 600 "$app" || echo "vhost bench: run $tag failed" >&2
            cp "$VM_WORK/$tag.cpu" "$out/$tag.cpu"
            vm_vhost_stop "$tag"
            [ -n "$memd" ] && vm_stop "$VM_WORK/$memd.pid"
            rm -f "$VM_WORK/$tag.img" "$VM_WORK/$tag.initrd"
        done
    done
    # per line of a .cpu file: iops, and CPU us per request from the ticks since the line before
    hz=$(getconf CLK_TCK)
    cpu_lines() { # cpu_lines FILE QD: "iops us_per_req" per fio run at depth QD
        awk -v qd="$2" -v hz="$hz" -v s="$FIO_S" '{ kv = ""; for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
            if (prev != "" && v["qd"] == qd && v["iops"] > 0)
                printf "%s %.1f\n", v["iops"], (v["cpu_ticks"] - prev) / hz * 1e6 / (v["iops"] * s)
            prev = v["cpu_ticks"] }' "$1"
    }
    for qd in 1 16; do
        q_iops=NA
        for b in qsd off inclusive exclusive; do
            : > "$work/vals"
            for f in "$out"/fio-$b-*.cpu; do [ -f "$f" ] && cpu_lines "$f" $qd >> "$work/vals"; done
            iops=$(awk '{ print $1 }' "$work/vals" | median)
            cpu=$(awk '{ print $2 }' "$work/vals" | median)
            [ $b = qsd ] && q_iops=$iops
            echo "RESULT name=vhost exp=fio case=qd$qd backend=$b iops=$iops ratio_vs_qsd=$(ratio "$iops" "$q_iops") cpu_us_per_req=$cpu runs=$(wc -l < "$work/vals")" | emit
        done
    done
    st=$(ls "$out"/fio-exclusive-*.rstats-warm 2>/dev/null | head -1)
    if [ -n "$st" ]; then
        mb=$(vm_kv "$st" evict_map_bytes)
        echo "RESULT name=vhost exp=metadata guest_mb=$FIO_MEM evict_map_bytes=$mb bytes_per_guest_page=$(awk -v b="$mb" -v m="$FIO_MEM" 'BEGIN { if (b == "") print "NA"; else printf "%.1f\n", b / (m * 256) }')" | emit
    fi
fi
echo "vhost bench: raw outputs in $out" >&2
