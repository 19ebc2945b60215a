#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# One-sided reads end to end: remoca-memd --shm and nbdkit with the filter
# (remoca-shm=on) on one host, over a unix socket.  The filter maps memd's
# page store at connect time and serves cached blocks by copying from it
# (lib/client/client_shm.c); writes invalidate over the socket and wait until memd
# has executed the deletes.
#   a. nbd_checker (tests/integration/nbd_checker.c: several connections,
#      random aligned and unaligned reads, writes, trims, zeroes, every read
#      compared with a model) on a 4 MiB disk with a 1 MiB memd: evictions all
#      the time, slots reused under the readers: zero wrong bytes, zero errors;
#      write-invalidate, then write-update;
#   b. the same while memd is SIGKILLed mid-run and restarted: the filter
#      unmaps the dead server's store, reconnects, maps the new one (memd's
#      shm_maps) and serves one-sided hits from it, without a wrong byte;
#   c. proof: a 32 MiB disk read once (fills), then re-read: every whole block
#      is a one-sided hit: the filter's one_sided_hits grows by 8192 while
#      memd's GET hits for the pool do not grow at all (no GET reached it), and
#      the backing plugin (nbdkit's log filter below ours) sees no read but
#      the partial last block.  The warm-up's fills went through memd's fill
#      ring (shared memory), and memd executed every entry the filter wrote.
# After each checker run the disk file must equal the checker's model.
# Exit 77 (skipped) when remoca-memd has no --shm.  REMOCA_MEMD=PATH runs the
# test against another build's remoca-memd.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
"$MEMD_BIN" --help 2>&1 | grep -q -- "--shm" || { echo "SKIP: $MEMD_BIN has no --shm"; exit 77; }
itest_init nbd-shm
KILL_SIGNAL=KILL
server_stat() { # server_stat LINE KEY: from `remoca stats --server` (LINE: server or pool)
    "$REMOCA_BUILD/remoca" stats --server "unix:$T/memd.sock" |
        sed -n "s/^$1 .* $2=\([0-9]*\).*/\1/p" | head -1
}

SIZE=$((4 * 1048576 + 1000))
URI="nbd+unix:///?socket=$T/nbd.sock"
finish() { # finish NAME: checker_finish, and one-sided hits served
    checker_finish "$1"
    [ "$(stat_of "$T/nbd.stats" one_sided_hits)" -gt 0 ] || fail "$1: no one-sided hits"
}

# a. a 1 MiB memd for a 4 MiB disk: constant evictions.
head -c $SIZE /dev/urandom > "$T/disk.img"
start_memd_unix 1M --shm
checker_nbdkit remoca-shm=on remoca-write=invalidate
checker_start a 1
finish a
checker_nbdkit remoca-shm=on remoca-write=update
checker_start a-update 2
finish a-update
[ "$(stat_of "$T/nbd.stats" updates)" -gt 0 ] || fail "a-update: no updates"
stop_pid "$MEMD"

# b. memd dies mid-run and comes back (a new store, mapped again).
start_memd_unix 64M --shm
checker_nbdkit remoca-shm=on remoca-write=invalidate
checker_start b 3 --ops 4000
checker_kill_memd_midrun b
start_memd_unix 64M --shm
echo "b: memd restarted at $(cat "$T/progress") ops"
mapped() { local m; m=$(server_stat server shm_maps); [ "${m:-0}" -ge 1 ]; }
waitfor 30 mapped || fail "b: the restarted memd's store was never mapped"
echo "b: new store mapped at $(cat "$T/progress") ops"
sleep 1.2 # the stats file: a value from after the remap
osh_restart=$(stat_of "$T/nbd.stats" one_sided_hits)
finish b
[ "$(stat_of "$T/nbd.stats" client_reconnects)" -ge 1 ] || fail "b: client did not reconnect"
echo "b: one_sided_hits $osh_restart at the remap, $(stat_of "$T/nbd.stats" one_sided_hits) at the end"
[ "$(stat_of "$T/nbd.stats" one_sided_hits)" -gt "$osh_restart" ] ||
    fail "b: no one-sided hit from the restarted server's store"
stop_pid "$MEMD"

# c. proof: re-reads are served from memd's memory without asking memd.
SIZE=$((32 * 1048576 + 1000))
head -c $SIZE /dev/urandom > "$T/disk.img"
start_memd_unix 64M --shm
start_nbdkit_unix --filter=log file "$T/disk.img" logfile="$T/req.log" \
    remoca-servers="unix:$T/memd.sock" remoca-shm=on remoca-statsfile="$T/nbd.stats"
nbdcopy "$URI" "$T/out1.img"
cmp "$T/disk.img" "$T/out1.img" || fail "c: warm-up copy differs"
sleep 1.2
[ "$(stat_of "$T/nbd.stats" fills)" = 8192 ] || fail "c: warm-up filled $(stat_of "$T/nbd.stats" fills) blocks, expected 8192"
[ "$(stat_of "$T/nbd.stats" client_servers_shm)" = 1 ] || fail "c: memd's store is not mapped"
osh0=$(stat_of "$T/nbd.stats" one_sided_hits)
rh0=$(stat_of "$T/nbd.stats" remote_hits)
mhits0=$(server_stat pool hits)
mgets0=$(server_stat pool gets)
lines0=$(wc -l < "$T/req.log")

nbdcopy --connections=4 "$URI" "$T/out2.img"
cmp "$T/disk.img" "$T/out2.img" || fail "c: re-read copy differs"
mhits=$(( $(server_stat pool hits) - mhits0 ))
mgets=$(( $(server_stat pool gets) - mgets0 ))
stop_pid "$NBDKIT" # final stats written at close
osh=$(( $(stat_of "$T/nbd.stats" one_sided_hits) - osh0 ))
rh=$(( $(stat_of "$T/nbd.stats" remote_hits) - rh0 ))
tail -n +$((lines0 + 1)) "$T/req.log" | grep " Read id=" > "$T/reread.log" || true
echo "c: re-read of 8192 blocks: filter one_sided_hits=+$osh remote_hits=+$rh;" \
     "memd pool gets=+$mgets hits=+$mhits; backing read lines: $(wc -l < "$T/reread.log")"
echo "c filter: $(tr '\n' ' ' < "$T/nbd.stats")"
if grep -v "offset=0x2000000 count=0x3e8 " "$T/reread.log"; then
    fail "c: the backing plugin was read for cached blocks during the re-read"
fi
[ "$osh" = 8192 ] || fail "c: $osh one-sided hits, expected 8192"
[ "$rh" = 8192 ] || fail "c: $rh remote hits, expected 8192"
[ "$mhits" = 0 ] || fail "c: memd served $mhits GET hits: the re-read went over the socket"
[ "$mgets" = 0 ] || fail "c: memd received $mgets GET lookups"
[ "$(stat_of "$T/nbd.stats" remote_misses)" = 0 ] || fail "c: remote misses"
rp=$(stat_of "$T/nbd.stats" ring_puts)
[ "$rp" -gt 0 ] || fail "c: no fill went through the fill ring"
[ "$(server_stat server ring_puts)" = "$rp" ] ||
    fail "c: memd executed $(server_stat server ring_puts) ring entries, the filter wrote $rp"
echo "c: $rp of 8192 fills through the fill ring, all executed by memd"
echo PASS
