#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# test_vm_vhost.sh BACKEND: a real guest on a vhost-user-blk disk (ctest vm_vhost_qsd,
# vm_vhost_remoca; label vm).  BACKEND = qsd (qemu-storage-daemon's export, the reference) or
# remoca (build/remoca-vhost with a remoca-memd as its remote cache: run a in exclusive mode,
# run b in inclusive mode; VM_VHOST_MODE=M for both).
#
#   guest (TCG, RAM a share=on memfd) --vhost-user-blk-pci--> BACKEND --> TAG.img
#                                                                          (a copy of a 128 MiB
#                                                                          pseudo-random image)
# Two QEMU runs of tests/vm/init's workload "vhost" (its header lists where each step writes):
#   run a: 1 queue, 1 vCPU, reboot allowed: thrash, data, discard, thrash, reboot
#     thrash    the whole disk read twice, buffered (more than the guest caches: with remoca,
#               through the remote cache), sha256 per 8 MiB: equal in both passes, and equal to
#               the image's (the first: the original image; the second, after the writes and
#               discards: the final image but for the chunks the reboot step writes); with
#               remoca, the memory server must have served hits
#     data      4 MiB written buffered, 4 MiB O_DIRECT; read back from the page cache, buffered
#               and O_DIRECT: all checksums equal in the guest, and equal to the image's
#     discard   BLKDISCARD, BLKZEROOUT (512-byte aligned, not 4 KiB aligned: the sectors just
#               outside must keep their bytes), fallocate PUNCH_HOLE and ZERO_RANGE: zeroes in the
#               guest (buffered and direct) and on the image; the device offers both operations
#     reboot    data written (O_DIRECT, and buffered + sync), `reboot -f`; the second boot (it
#               finds the marker sector) reads it back: equal, and equal on the image
#   run b: 2 queues, 2 vCPUs, chardev reconnect=1: mq, records
#     mq        two O_DIRECT writers and readers pinned to CPU 0 and 1 at once; both queues
#               interrupted; checksums as above
#     records   a numbered 4 KiB record writer per CPU (O_DIRECT + fdatasync each, reading back
#               an earlier record after each); 2 s in, the backend is killed (SIGKILL) and
#               restarted 1 s later; QEMU reconnects.  Every record up to the last one the guest
#               saw complete is on the image, the next ones are zero or the record (sector by
#               sector), no read returned a wrong byte, the writers stalled across the kill and
#               went on after it.  VHOST_KILL=0 leaves the kill out; REC_S (default 10, at
#               least 6) is how long the writers run.
#   Both runs: the image's bytes outside the written ranges equal the original's.
# Each check prints "ok: ..." or "FAIL: ..."; exit 1 if any failed, 77 (skipped) when the
# backend is not there.
set -euo pipefail
: "${REMOCA_BUILD:?}" "${REMOCA_SRC:?}"
source "$REMOCA_SRC/tests/vm/lib.sh"

backend=${1:?usage: test_vm_vhost.sh qsd|remoca}
case $backend in
qsd) command -v qemu-storage-daemon >/dev/null || { echo "SKIP: no qemu-storage-daemon"; exit 77; } ;;
remoca)
    if [ ! -x "$REMOCA_BUILD/remoca-vhost" ] || [ ! -x "$REMOCA_BUILD/remoca-memd" ]; then
        echo "SKIP: remoca-vhost or remoca-memd not built in $REMOCA_BUILD"
        exit 77
    fi ;;
*) echo "usage: test_vm_vhost.sh qsd|remoca" >&2; exit 2 ;;
esac
BLKIO=$REMOCA_BUILD/tests/vm/vm-blkio
[ -x "$BLKIO" ] || { echo "SKIP: $BLKIO not built"; exit 77; }

fails=0
work=$(mktemp -d /tmp/remoca-vhosttest.XXXXXX)
vm_init "$work"
# the work directory (consoles, backend output, images) is kept when a check failed
trap 'vm_cleanup; if [ "${fails:-0}" = 0 ] && [ "${VM_KEEP:-0}" != 1 ]; then rm -rf "$work"; else echo "kept $work"; fi' EXIT

DISK_MB=128 MEM=128 M=1048576
data=$REMOCA_BUILD/vm/data/raw$DISK_MB.img
"$REMOCA_SRC/tests/vm/mkdata.sh" raw "$data" $DISK_MB
memd= MODE_A= MODE_B=
if [ "$backend" = remoca ]; then
    vm_memd_start memd 256M
    memd=memd
    # run a (the thrash reads) in exclusive mode, run b (the kill) in inclusive mode, unless
    # VM_VHOST_MODE says; exclusive only once remoca-vhost has it
    MODE_A=${VM_VHOST_MODE:-exclusive} MODE_B=${VM_VHOST_MODE:-inclusive}
    if [ "$MODE_A" = exclusive ] && "$REMOCA_BUILD/remoca-vhost" --help 2>&1 | grep -q 'exclusive.*not built'; then
        echo "note: remoca-vhost says its exclusive mode is not built yet: run a uses inclusive"
        MODE_A=inclusive
    fi
fi

ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
# val TAG STEP KEY [MATCH]: KEY of the first RESULT-GUEST line of STEP (containing MATCH)
val() {
    grep -a "^RESULT-GUEST wl=vhost step=$2 " "$work/$1.console" | tr -d '\r' | grep -a -- "${4:-}" |
        head -1 | tr ' ' '\n' | sed -n "s/^$3=//p"
}
# guest_ok TAG STEP [MATCH]: the guest's own verdict on STEP
guest_ok() {
    local line
    line=$(grep -a "^RESULT-GUEST wl=vhost step=$2 " "$work/$1.console" | tr -d '\r' | grep -a -- "${3:-}" | head -1)
    if [ -z "$line" ]; then bad "$1: guest printed no $2 ${3:-}"; return; fi
    case " $line " in
        *" ok=1 "*) line=${line#*step=$2 }; ok "$1: guest $2 ${3:-}: ${line:0:100}" ;;
        *) bad "$1: guest $2 ${3:-}: ${line#*step=$2 }" ;;
    esac
}
# isum TAG OFF LEN [IMAGE]: sha256 of bytes [OFF, OFF+LEN) of TAG.img (or IMAGE); 512-byte units
isum() {
    dd if="${4:-$work/$1.img}" bs=512 skip=$(($2 / 512)) count=$(($3 / 512)) 2>/dev/null | sha256sum | cut -d' ' -f1
}
zsum() { head -c "$1" /dev/zero | sha256sum | cut -d' ' -f1; }
# img_eq TAG WHAT OFF LEN SHA: the image's range has checksum SHA
img_eq() {
    local h
    h=$(isum "$1" "$3" "$4")
    if [ -n "$5" ] && [ "$h" = "$5" ]; then ok "$1: image $2 (MiB $(($3 / M))+$(($4 / M))) = guest's ${5:0:16}"
    else bad "$1: image $2 (bytes $3+$4) is $h, guest said '${5:-}'"; fi
}
img_zero() {
    if [ "$(isum "$1" "$3" "$4")" = "$(zsum "$4")" ]; then ok "$1: image $2 reads as zeroes (bytes $3+$4)"
    else bad "$1: image $2 (bytes $3+$4) is not zeroes"; fi
}
# img_untouched TAG "MIB+MIB ...": the ranges equal the original image
img_untouched() {
    local r a b s n list=""
    for r in $2; do
        s=${r%+*} n=${r#*+}
        a=$(isum "$1" $((s * M)) $((n * M))) b=$(isum "$1" $((s * M)) $((n * M)) "$data")
        [ "$a" = "$b" ] || { bad "$1: image MiB $s+$n changed, nothing wrote there"; return; }
        list+=" $s+$n"
    done
    ok "$1: image unchanged where nothing wrote (MiB$list)"
}
# boot TAG QUEUES STEPS: one QEMU run of workload vhost on a fresh backend with QUEUES queues;
# vm_boot's other settings (VM_REBOOT, VM_RECONNECT, VM_HOOK) come from the caller's
# environment: `VM_REBOOT=1 boot a 1 data,reboot`
boot() {
    local tag=$1 q=$2 steps=$3 t0 rc=0
    vm_vhost_start "$tag" "$data" "$backend" "$q" "$memd"
    t0=$(date +%s)
    [ "$backend" = remoca ] && echo "run $tag: remoca-vhost --mode $VM_VHOST_MODE"
    VM_DISK=vhost VM_QUEUES=$q vm_boot "$tag" "$MEM" 150 \
        "vm.wl=vhost vm.steps=$steps vm.rec_s=${REC_S:-10}" || rc=$?
    echo "run $tag ($steps): $(($(date +%s) - t0)) s, QEMU start to power-off"
    grep -a '^RESULT-GUEST\|^GUEST-ERROR\|^guest:' "$work/$tag.console" | tr -d '\r' | cut -c1-200 | sed 's/^/  /'
    vm_vhost_stop "$tag"
    if [ $rc != 0 ]; then
        bad "$tag: the guest run failed; console and backend output:"
        tail -15 "$work/$tag.console" | tr -d '\r' | sed 's/^/  console: /'
        tail -15 "$work/$tag.vhost.out" | sed 's/^/  backend: /'
    fi
    return $rc
}

echo "backend $backend, accelerator $VM_ACCEL, $(nproc) host CPUs"
T0=$(date +%s)

# --- run a: data, discard, reboot ----------------------------------------------------------
if VM_VHOST_MODE=$MODE_A VM_REBOOT=1 boot a 1 thrash,data,discard,thrash,reboot; then
    boots=$(grep -ac 'step=boot ' "$work/a.console" || true)
    [ "$boots" = 2 ] && ok "a: the guest booted twice (reboot -f, same QEMU)" || bad "a: $boots boots, expected 2"
    for st in data-buffered data-direct limits; do guest_ok a $st; done
    for st in discard zeroout punch zerorange; do
        guest_ok a $st read=buffered
        guest_ok a $st read=direct
    done
    guest_ok a rebooted
    img_eq a "data written buffered" $((1 * M)) $((4 * M)) "$(val a data-buffered written)"
    img_eq a "data written O_DIRECT" $((5 * M)) $((4 * M)) "$(val a data-direct written)"
    img_zero a "after BLKDISCARD" $((10 * M)) $M
    img_zero a "after BLKZEROOUT" $((11 * M + 512)) $((M - 1024))
    o1=$(isum a $((11 * M)) 512 "$data") o2=$(isum a $((12 * M - 512)) 512 "$data")
    if [ "$(isum a $((11 * M)) 512)" = "$o1" ] && [ "$(isum a $((12 * M - 512)) 512)" = "$o2" ]; then
        ok "a: image sectors just outside the BLKZEROOUT range kept their bytes"
    else bad "a: the BLKZEROOUT spilled onto a neighbouring sector"; fi
    img_zero a "after fallocate PUNCH_HOLE" $((12 * M)) $M
    img_zero a "after fallocate ZERO_RANGE" $((13 * M)) $M
    img_eq a "written before the reboot, O_DIRECT" $((24 * M)) $((2 * M)) "$(val a reboot written1)"
    img_eq a "written before the reboot, buffered" $((26 * M)) $((2 * M)) "$(val a reboot written2)"
    head -c 9 "$work/a.img" | grep -q '^RMCMARK1 ' && ok "a: image has the reboot marker" || bad "a: no reboot marker on the image"
    img_untouched a "9+1 14+10 28+100"
    for n in 1 2; do
        guest_ok a thrash "n=$n "
        gs=$(val a thrash sums "n=$n ") is=
        [ $n = 1 ] && img=$data || img=$work/a.img
        for i in $(seq 0 $((DISK_MB / 8 - 1))); do is+=$(isum a $((i * 8 * M)) $((8 * M)) "$img" | cut -c1-16),; done
        if [ $n = 2 ]; then   # chunks 0 and 3 were written after it (marker, reboot data)
            gs=$(echo "$gs" | awk -F, -v OFS=, '{ $1 = "x"; $4 = "x"; print }')
            is=$(echo "$is" | awk -F, -v OFS=, '{ $1 = "x"; $4 = "x"; print }')
        fi
        [ "$gs" = "$is" ] && ok "a: thrash $n: the guest read the image's bytes ($((DISK_MB / 8)) chunks of 8 MiB)" ||
            bad "a: thrash $n: guest chunk sums $gs, image $is"
    done
    if [ -n "$memd" ]; then
        vm_memd_stats "$memd" > "$work/memd.kv"
        puts=$(vm_kv "$work/memd.kv" server.puts) hits=$(vm_kv "$work/memd.kv" server.hits)
        [ "${puts:-0}" -gt 0 ] && [ "${hits:-0}" -gt 0 ] &&
            ok "a: the remote cache was in the path: memd puts=$puts hits=$hits" ||
            bad "a: the remote cache was not used: memd puts=${puts:-?} hits=${hits:-?}"
    fi
fi

# --- run b: multiqueue, records across a backend kill ----------------------------------------
KILLED=0
kill_restart() { # VM_HOOK: kills the backend 2 s into the record writers, restarts it 1 s later
    case $1 in *step=records-start*) ;; *) return 0 ;; esac
    sleep 2
    vm_vhost_kill b
    echo "  host: backend killed (SIGKILL) at $(date +%T.%N | cut -c1-12)"
    sleep 1
    vm_vhost_start b - "$backend" 2 "$memd"
    echo "  host: backend restarted at $(date +%T.%N | cut -c1-12)"
    KILLED=1
}
hook=kill_restart
[ "${VHOST_KILL:-1}" = 1 ] || hook=
if VM_VHOST_MODE=$MODE_B VM_RECONNECT=1 VM_HOOK=$hook boot b 2 mq,records; then
    guest_ok b mq
    img_eq b "written from CPU 0" $((16 * M)) $((4 * M)) "$(val b mq written0)"
    img_eq b "written from CPU 1" $((20 * M)) $((4 * M)) "$(val b mq written1)"
    writers=$(val b records-start writers)
    [ "${writers:-0}" = 2 ] && ok "b: 2 record writers" || bad "b: ${writers:-no} record writers"
    stalled=0
    for c in $(seq 0 $((${writers:-1} - 1))); do
        guest_ok b records "writer=$c "
        guest_ok b records-verify "writer=$c "
        last=$(val b records last "writer=$c ")
        r=$("$BLKIO" verify "$work/b.img" $(((32 + 32 * c) * M)) "${last:--1}" $((c + 1)) 8192 || true)
        case $r in
            ok=1*) ok "b: image: writer $c's records 0..$last all there, the rest zero or whole ($r)" ;;
            *) bad "b: image: writer $c's records: $r" ;;
        esac
        [ "${last:--1}" -ge 100 ] || bad "b: writer $c completed only $((last + 1)) records"
        st=$(val b records max_stall_ms "writer=$c ") af=$(val b records after_stall "writer=$c ")
        [ "${st:-0}" -ge 800 ] && [ "${af:-0}" -ge 50 ] && stalled=$((stalled + 1))
        echo "  writer $c: longest stall ${st:-?} ms, then ${af:-?} more records"
    done
    if [ "$hook" = kill_restart ]; then
        if [ $KILLED = 1 ] && [ $stalled -ge 1 ]; then
            ok "b: the kill hit the writers mid-I/O (stall >= 0.8 s) and they went on after the restart"
        else bad "b: killed=$KILLED, writers stalled across the kill and resumed: $stalled"; fi
    fi
    img_untouched b "0+16 24+8 96+32"
fi

echo "backend $backend: $(($(date +%s) - T0)) s in all"
[ $fails = 0 ] || { echo "FAILED: $fails checks"; exit 1; }
echo "PASS"
