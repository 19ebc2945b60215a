#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# test_vm.sh: a real guest on a REMOCA disk (ctest vm_check, label vm; about a minute on TCG).
#
#   guest (-m 128, ~80 MiB MemTotal) --virtio/NBD--> nbdkit [remoca filter] [stats] [log] file
#                                                            `--> remoca-memd (unix socket)
#
# The guest (tests/vm/init, workload "check") reads its whole 160 MiB disk, writes 16 MiB of
# random data with O_DIRECT, drops its page cache, reads the disk twice more and reads the
# written region back buffered and direct.  Asserted:
#   1. inside the guest, the written, buffered and direct checksums agree (never stale: the
#      first pass put the old blocks into remote memory; the write must have invalidated them);
#   2. on the host, the image holds exactly the guest's data in the written region and the
#      original bytes everywhere else;
#   3. the re-reads beyond the guest's page cache were served by the memory server: memd counts
#      hits, the filter counts remote hits for most of the blocks of the third pass, and far
#      fewer bytes reached the backing file in the re-read passes than the guest read.
# Exit 77 (ctest: skipped) only when remoca-memd or the filter is not built.
set -euo pipefail
: "${REMOCA_BUILD:?}" "${REMOCA_SRC:?}"
source "$REMOCA_SRC/tests/vm/lib.sh"

if [ ! -f "$REMOCA_BUILD/nbdkit-remoca-filter.so" ] || [ ! -x "$REMOCA_BUILD/remoca-memd" ]; then
    echo "SKIP: nbdkit-remoca-filter.so or remoca-memd not built in $REMOCA_BUILD"
    exit 77
fi

work=$(mktemp -d /tmp/remoca-vmtest.XXXXXX)
vm_init "$work"
trap 'vm_cleanup; rm -rf "$work"' EXIT

DISK_MB=160 WOFF=16 WMB=16
data=$REMOCA_BUILD/vm/data/raw$DISK_MB.img
"$REMOCA_SRC/tests/vm/mkdata.sh" raw "$data" $DISK_MB

fail() { echo "FAIL: $*" >&2; exit 1; }

vm_memd_start memd 256M
vm_export_start t "$data" remoca none memd
echo "booting the guest (accelerator $VM_ACCEL)"
vm_boot t 128 180 "vm.wl=check vm.woff=$WOFF vm.wmb=$WMB" || fail "guest run failed"
grep -a '^RESULT-GUEST' "$work/t.console" | tr -d '\r'

# 1. guest-side checksums
verify=$(grep -a 'step=verify' "$work/t.console" | tr -d '\r')
[ -n "$verify" ] || fail "no verify line from the guest"
written=$(echo "$verify" | sed -n 's/.* written=\([0-9a-f]*\).*/\1/p')
grep -aq 'step=verdict ok=1' "$work/t.console" || fail "guest checksums differ: $verify"

# 2. host image: written region = guest data, the rest unchanged
sleep 1.5   # let the filter write its stats file a last time before nbdkit stops
cp "$work/t.rstats" "$work/t.rstats.final" 2>/dev/null || true
vm_export_stop t
host=$(dd if="$work/t.img" bs=1M skip=$WOFF count=$WMB 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$host" = "$written" ] || fail "host image region $host != guest's written data $written"
for range in "0 $WOFF" "$((WOFF + WMB)) $((DISK_MB - WOFF - WMB))"; do
    set -- $range
    a=$(dd if="$work/t.img" bs=1M skip="$1" count="$2" 2>/dev/null | sha256sum | cut -d' ' -f1)
    b=$(dd if="$data" bs=1M skip="$1" count="$2" 2>/dev/null | sha256sum | cut -d' ' -f1)
    [ "$a" = "$b" ] || fail "host image changed outside the written region (MiB $1+$2)"
done
echo "ok: checksums agree in the guest and on the host ($written)"

# 3. remote hits
vm_memd_stats memd > "$work/memd.kv"
memd_hits=$(vm_kv "$work/memd.kv" server.hits)
memd_puts=$(vm_kv "$work/memd.kv" server.puts)
echo "memd: puts=$memd_puts hits=$memd_hits gets=$(vm_kv "$work/memd.kv" server.gets)"
[ "${memd_hits:-0}" -gt 0 ] || fail "memory server counted no hits"
# the third pass: blocks the guest asked of the VMM, and how many came from remote memory
rb2=$(vm_step t pass2 r_read_blocks) rh2=$(vm_step t pass2 r_remote_hits)
rb3=$(vm_step t pass3 r_read_blocks) rh3=$(vm_step t pass3 r_remote_hits)
asked=$((rb3 - rb2)) hits=$((rh3 - rh2))
echo "pass3: the guest read $asked blocks from the VMM, $hits from remote memory"
[ "$asked" -gt $((32 * 256)) ] || fail "pass3 reached the VMM for only $asked blocks: the guest page cache was not exceeded"
[ $((hits * 100)) -ge $((asked * 80)) ] || fail "pass3: only $hits of $asked blocks were remote hits (< 80%)"
# backing bytes in the re-read passes (2 and 3) vs the first pass
b1=$(vm_step t pass1 backing_bytes) bw=$(vm_step t write backing_bytes) b3=$(vm_step t pass3 backing_bytes)
echo "backing store: pass1 read $((b1 >> 20)) MiB, passes 2+3 read $(((b3 - bw) >> 20)) MiB"
[ $(((b3 - bw) * 2)) -lt "$b1" ] || fail "re-read passes still read $(((b3 - bw) >> 20)) MiB from the backing file"
echo "PASS"
