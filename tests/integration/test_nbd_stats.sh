#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Stats that prove the cache works.  remoca-memd + nbdkit with our filter on
# top and nbdkit's log filter BELOW it, over the file plugin:
#
#   clients ─▶ remoca filter ─▶ log filter (every request that reaches the
#                                           disk is a line) ─▶ file plugin
#
# A 32 MiB + 1000 byte disk.  Warm-up: nbdcopy reads it all (misses, fills).
# Then the working set is re-read (nbdcopy over 4 connections, then qemu-io
# random 4 KiB and 64 KiB reads: NBD clients keep no cache, and the working set
# is larger than any): every whole block comes from remote memory, so
#  - the backing plugin sees no read at all except the partial last block
#    (1000 bytes at 32 MiB, never cached), counted in the log filter's lines;
#  - the filter counts remote hits for every block re-read, and memd's own
#    stats count as many hits for the pool.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init nbd-stats
memd_hits() { "$REMOCA_BUILD/remoca" stats --server "unix:$T/memd.sock" | sed -n 's/^pool .* hits=\([0-9]*\) .*/\1/p' | head -1; }
disk_reads() { grep -c " Read id=" "$T/req.log" || true; }

SIZE=$((32 * 1048576 + 1000))
head -c $SIZE /dev/urandom > "$T/disk.img"
start_memd_unix 64M
nbdkit -f -U "$T/nbd.sock" -P "$T/nbd.pid" --filter="$FILTER" --filter=log file "$T/disk.img" \
    logfile="$T/req.log" remoca-servers="unix:$T/memd.sock" remoca-statsfile="$T/nbd.stats" \
    2>>"$T/nbd.log" &
NBDKIT=$!; track "$NBDKIT"
waitfor 15 test -s "$T/nbd.pid" || fail "nbdkit did not start"
URI="nbd+unix:///?socket=$T/nbd.sock"

# Warm-up.
nbdcopy "$URI" "$T/out1.img"
cmp "$T/disk.img" "$T/out1.img" || fail "warm-up copy differs"
sleep 1.2
warm_disk=$(disk_reads)
warm_fills=$(stat_of "$T/nbd.stats" fills)
hits0=$(stat_of "$T/nbd.stats" remote_hits)
mhits0=$(memd_hits)
echo "warm-up: backing reads=$warm_disk fills=$warm_fills"
[ "$warm_fills" = 8192 ] || fail "warm-up filled $warm_fills blocks, expected 8192"
lines0=$(wc -l < "$T/req.log")

# Re-read the working set.
nbdcopy --connections=4 "$URI" "$T/out2.img"
cmp "$T/disk.img" "$T/out2.img" || fail "re-read copy differs"
cmds=()
for i in $(seq 1 200); do cmds+=(-c "read $(( (RANDOM * 32768 + RANDOM) % 8192 * 4096 )) 4k"); done
for i in $(seq 1 50); do cmds+=(-c "read $(( (RANDOM % 512) * 65536 )) 64k"); done
qemu-io -f raw "$URI" "${cmds[@]}" > "$T/qio.out" || fail "qemu-io random reads"
kill "$NBDKIT"; wait "$NBDKIT" || true   # final stats written at close

tail -n +$((lines0 + 1)) "$T/req.log" | grep " Read id=" > "$T/reread.log" || true
echo "re-read: backing read lines: $(wc -l < "$T/reread.log")"
if grep -v "offset=0x2000000 count=0x3e8 " "$T/reread.log"; then
    fail "the backing plugin was read for cached blocks during the re-read"
fi
hits=$(( $(stat_of "$T/nbd.stats" remote_hits) - hits0 ))
mhits=$(( $(memd_hits) - mhits0 ))
expect=$(( 8192 + 200 + 50 * 16 ))
echo "re-read: filter remote_hits=+$hits memd pool hits=+$mhits (expected $expect)"
echo "filter: $(tr '\n' ' ' < "$T/nbd.stats")"
[ "$hits" = "$expect" ] || fail "filter counted $hits remote hits, expected $expect"
[ "$mhits" = "$expect" ] || fail "memd counted $mhits hits, expected $expect"
[ "$(stat_of "$T/nbd.stats" remote_misses)" = 0 ] || fail "remote misses"
echo PASS
