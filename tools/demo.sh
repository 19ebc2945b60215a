#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# tools/demo.sh (what `make demo` runs after building into build/): REMOCA in a few minutes.
#
# A small virtual machine (QEMU; software emulation unless KVM works) whose disk is an emulated
# hard disk (nbdkit's delay filter: 8 ms per request) re-reads a data set larger than its RAM.
# Its page cache cannot hold the data, so every pass goes back to the disk ("thrashing").  The
# same VM runs twice on the same disk:
#
#   1. without REMOCA:  VM -> nbdkit -> [slow disk] -> disk image
#   2. with REMOCA:     VM -> nbdkit -> [remoca filter] -> [slow disk] -> disk image
#                                             `-> remoca-memd (a local memory server, 512 MiB)
#
# and the demo prints the time of the re-read passes and the number of reads that reached the
# disk for both, and the speed-up.  Every process it starts (memory server, nbdkit, QEMU) is
# stopped by pid when it ends, also on Ctrl-C.  Environment: REMOCA_BUILD (default build/),
# DEMO_MEM (guest MiB, default 128), DEMO_DATA (MiB, default 192), DEMO_PASSES (default 3).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export REMOCA_SRC=$top
export REMOCA_BUILD=${REMOCA_BUILD:-$top/build}
source "$top/tests/vm/lib.sh"

MEM=${DEMO_MEM:-128} DATA=${DEMO_DATA:-192} PASSES=${DEMO_PASSES:-3}

say() { echo "$*"; }
[ -f "$REMOCA_BUILD/nbdkit-remoca-filter.so" ] && [ -x "$REMOCA_BUILD/remoca-memd" ] ||
    vm_die "build REMOCA first (make demo does): $REMOCA_BUILD/nbdkit-remoca-filter.so or remoca-memd missing"

work=$(mktemp -d /tmp/remoca-demo.XXXXXX)
say "REMOCA demo: remote memory as a disk cache for a virtual machine"
say ""
say "Preparing the guest (Debian kernel + busybox) and a ${DATA} MiB data disk (cached in $REMOCA_BUILD/vm)..."
vm_init "$work"
trap 'vm_cleanup; rm -rf "$work"' EXIT
image=$REMOCA_BUILD/vm/data/raw$DATA.img
"$top/tests/vm/mkdata.sh" raw "$image" "$DATA"

say ""
say "The VM has ${MEM} MiB of RAM and reads its ${DATA} MiB disk ${PASSES} times. The disk is an emulated"
say "hard disk: every request waits 8 ms. The VM cannot keep the data in its own RAM, so without"
say "help every pass goes back to the disk. (Emulator: $VM_ACCEL; each run takes a minute or two.)"
say ""

app="vm.wl=thrash vm.passes=$PASSES"
say "Run 1 of 2: without REMOCA ..."
vm_export_start base "$image" base hdd
vm_boot base "$MEM" 900 "$app" || vm_die "the VM run without REMOCA failed (see $work/base.console)"
vm_export_stop base

say "Run 2 of 2: with REMOCA (a memory server with 512 MiB on this machine) ..."
vm_memd_start memd 512M
vm_export_start remoca "$image" remoca hdd memd
vm_boot remoca "$MEM" 900 "$app" || vm_die "the VM run with REMOCA failed (see $work/remoca.console)"
sleep 1.2
vm_export_stop remoca
vm_memd_stats memd > "$work/memd.kv" || true
vm_stop "$work/memd.pid"

steps=$top/tests/vm/steps.py
sumf() { python3 "$steps" "$work/$1.steps" "$2" | tr ' ' '\n' | awk -F= -v k="$3" '$1 == k { print $2 }'; }
later='pass([2-9]|[1-9][0-9])'
b1=$(sumf base pass1 s) r1=$(sumf remoca pass1 s)
bs=$(sumf base "$later" s) rs=$(sumf remoca "$later" s)
br=$(sumf base "$later" reads) rr=$(sumf remoca "$later" reads)
bb=$(sumf base "$later" bytes) rbb=$(sumf remoca "$later" bytes)
blocks=$(sumf remoca "$later" blocks) hits=$(sumf remoca "$later" hits)
memd_hits=$(vm_kv "$work/memd.kv" server.hits)

python3 - "$PASSES" "$b1" "$r1" "$bs" "$rs" "$br" "$rr" "$bb" "$rbb" "$blocks" "$hits" "${memd_hits:-?}" <<'PY'
import sys
passes = int(sys.argv[1])
b1, r1, bs, rs = map(float, sys.argv[2:6])
br, rr, bb, rbb, blocks, hits = map(int, sys.argv[6:12])
memd_hits = sys.argv[12]
later = "pass 2" if passes == 2 else "passes 2-%d" % passes
print()
print("Results (times measured inside the VM)")
print("                                       without REMOCA   with REMOCA")
print("  first pass (cold, fills the cache)   %8.1f s       %8.1f s" % (b1, r1))
print("  %-36s %8.1f s       %8.1f s" % ("re-reads (" + later + ")", bs, rs))
print("  disk reads during the re-reads       %8d         %8d" % (br, rr))
print("  MiB read from the disk (re-reads)    %8d         %8d" % (bb >> 20, rbb >> 20))
print()
if rs > 0:
    print("With REMOCA the VM re-read its data %.1fx faster (%.1f s instead of %.1f s)." % (bs / rs, rs, bs))
if br > 0:
    if rr == 0:
        print("It sent no reads at all to the slow disk during the re-reads (instead of %d): the blocks"
              % br)
    else:
        print("It sent %.1f%% fewer reads to the slow disk (%d instead of %d): the blocks"
              % (100.0 * (1 - rr / br), rr, br))
    print("its own RAM could not hold came from the memory server's RAM instead.")
if blocks > 0:
    print("Remote memory served %.1f%% of the 4 KiB blocks the VM asked for during the re-reads"
          % (100.0 * hits / blocks))
    print("(memory server: %s hits in all)." % memd_hits)
PY
say ""
say "Reproduce the full experiments: bench/run vm (docs/results.md)."
