#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# tools/demo.sh (what `make demo` runs after building into build/): REMOCA in a few minutes.
#
# A small virtual machine (QEMU; software emulation unless KVM works) whose disk is an emulated
# hard disk (nbdkit's delay filter: 8 ms per request) re-reads a data set larger than its RAM.
# Its page cache cannot hold the data, so every pass goes back to the disk ("thrashing").  The
# same VM runs three times on the same disk, served by remoca-vhost (vhost-user-blk):
#
#   1. without REMOCA:   VM -> remoca-vhost --mode off -------------------> [slow disk] -> image
#   2. REMOCA inclusive: VM -> remoca-vhost --mode inclusive --+----------> [slow disk] -> image
#   3. REMOCA exclusive: VM -> remoca-vhost --mode exclusive --+
#                                                  remoca-memd (a local memory server) <-'
#
# The memory server is smaller than the data: an inclusive cache (a copy of every block read,
# the NBD filter's way) cannot hold it all, an exclusive one (the blocks the guest dropped:
# guest RAM + server RAM add up, docs/vhost.md) can.  The demo prints the time of the re-read
# passes and the reads that reached the disk for the three, and names the mode that needed the
# fewest disk reads: the one to use.  Every process it starts (memory server, nbdkit,
# remoca-vhost, QEMU) is stopped by pid when it ends, also on Ctrl-C.  Environment:
# REMOCA_BUILD (default build/), DEMO_MEM (guest MiB, default 160), DEMO_DATA (MiB, default 192),
# DEMO_REMOTE (memory server MiB, default 160), DEMO_PASSES (default 3).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export REMOCA_SRC=$top
export REMOCA_BUILD=${REMOCA_BUILD:-$top/build}
source "$top/tests/vm/lib.sh"

MEM=${DEMO_MEM:-160} DATA=${DEMO_DATA:-192} REMOTE=${DEMO_REMOTE:-160} PASSES=${DEMO_PASSES:-3}

say() { echo "$*"; }
[ -x "$REMOCA_BUILD/remoca-vhost" ] && [ -x "$REMOCA_BUILD/remoca-memd" ] ||
    vm_die "build REMOCA first (make demo does): $REMOCA_BUILD/remoca-vhost or remoca-memd missing"

work=$(mktemp -d /tmp/remoca-demo.XXXXXX)
say "REMOCA demo: remote memory as a disk cache for a virtual machine"
say ""
say "Preparing the guest (Debian kernel + busybox) and a ${DATA} MiB data disk (cached in $REMOCA_BUILD/vm)..."
vm_init "$work"
trap 'vm_cleanup; rm -rf "$work"' EXIT
image=$REMOCA_BUILD/vm/data/raw$DATA.img
"$top/tests/vm/mkdata.sh" raw "$image" "$DATA"

say ""
say "The VM has ${MEM} MiB of RAM and reads its ${DATA} MiB disk ${PASSES} times, in random order. The disk"
say "is an emulated hard disk: every request waits 8 ms. The VM cannot keep the data in its own RAM,"
say "so without help every pass goes back to the disk. REMOCA's memory server gets ${REMOTE} MiB, less"
say "than the data too. (Emulator: $VM_ACCEL; the run without REMOCA takes a few minutes, it waits for the disk.)"
say ""

app="vm.wl=thrash vm.order=rand vm.passes=$PASSES"
# run TAG MODE: one VM run on remoca-vhost in MODE over the slow disk
run() {
    local tag=$1 mode=$2 memd=""
    vm_export_start "$tag" "$image" base hdd
    if [ "$mode" != off ]; then
        vm_memd_start "memd-$tag" "${REMOTE}M"
        memd=memd-$tag
    fi
    VM_VHOST_MODE=$mode VM_VHOST_DISK="nbd+unix:///?socket=$work/$tag.nbd.sock" \
        vm_vhost_start "$tag" - remoca 1 $memd
    VM_DISK=vhost vm_boot "$tag" "$MEM" 1200 "$app" ||
        vm_die "the VM run ($tag) failed (see $work/$tag.console)"
    vm_vhost_stop "$tag"
    vm_export_stop "$tag"
    if [ -n "$memd" ]; then
        vm_memd_stats "$memd" > "$work/$tag.memd" || true
        vm_stop "$work/$memd.pid"
    fi
}
say "Run 1 of 3: without REMOCA ..."
run off off
say "Run 2 of 3: REMOCA, inclusive (a copy of every block read goes to the memory server) ..."
run inclusive inclusive
say "Run 3 of 3: REMOCA, exclusive (the blocks the VM drops go to the memory server) ..."
run exclusive exclusive

steps=$top/tests/vm/steps.py
# sumf TAG REGEX KEY: KEY of the steps matching REGEX, summed (tests/vm/steps.py)
sumf() { python3 "$steps" "$work/$1.steps" "$2" | tr ' ' '\n' | awk -F= -v k="$3" '$1 == k { print $2 }'; }
later='pass([2-9]|[1-9][0-9])'
args=()
for t in off inclusive exclusive; do
    args+=("$(sumf $t pass1 s)" "$(sumf $t "$later" s)" "$(sumf $t "$later" reads)"
           "$(sumf $t "$later" bytes)" "$(sumf $t "$later" blocks)" "$(sumf $t "$later" hits)")
done

python3 - "$PASSES" "${args[@]}" <<'PY'
import sys
passes = int(sys.argv[1])
v = sys.argv[2:]
runs = {}
for i, t in enumerate(["off", "inclusive", "exclusive"]):
    p1, s, reads, nbytes, blocks, hits = v[6 * i:6 * i + 6]
    runs[t] = dict(p1=float(p1), s=float(s), reads=int(reads), mib=int(nbytes) >> 20,
                   blocks=int(blocks), hits=int(hits))
later = "pass 2" if passes == 2 else "passes 2-%d" % passes
o, i_, e = runs["off"], runs["inclusive"], runs["exclusive"]
print()
print("Results (times measured inside the VM)")
print("                                     without REMOCA   REMOCA inclusive   REMOCA exclusive")
print("  first pass (cold)                   %8.1f s        %8.1f s          %8.1f s" % (o["p1"], i_["p1"], e["p1"]))
print("  %-35s %8.1f s        %8.1f s          %8.1f s" % ("re-reads (" + later + ")", o["s"], i_["s"], e["s"]))
print("  disk reads during the re-reads      %8d          %8d            %8d" % (o["reads"], i_["reads"], e["reads"]))
print("  MiB read from the disk (re-reads)   %8d          %8d            %8d" % (o["mib"], i_["mib"], e["mib"]))
print("  blocks served by remote memory      %8s          %7.1f%%            %7.1f%%" % (
    "-", 100.0 * i_["hits"] / max(i_["blocks"], 1), 100.0 * e["hits"] / max(e["blocks"], 1)))
print()
best = min(["inclusive", "exclusive"], key=lambda t: (runs[t]["reads"], runs[t]["s"]))
b = runs[best]
print("Best mode here: %s (fewest disk reads during the re-reads: %d, against %d without REMOCA)."
      % (best, b["reads"], o["reads"]))
if b["s"] > 0:
    print("With it the VM re-read its data %.1fx faster than without REMOCA (%.1f s instead of %.1f s)."
          % (o["s"] / b["s"], b["s"], o["s"]))
if best == "exclusive":
    print("The memory server holds only what the VM dropped, so the VM's RAM and the server's add up;")
    print("inclusive keeps a second copy of what the VM still caches and runs out of room.")
PY
say ""
say "Reproduce the measurements: bench/run vhost (modes) and bench/run vm (docs/results.md)."
