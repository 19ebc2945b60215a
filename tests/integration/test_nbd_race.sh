#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The fill race with real processes (docs/design.md, contract 3).
#
# 1. A write completes between a miss's disk read and its insert.
#
#   qemu-io A ──read block 5──▶ remoca filter ─▶ sh plugin: dd the block out of
#                                                 disk.img, THEN sleep 3 s
#   qemu-io B ──write block 5─▶ (another connection, completes during A's sleep)
#
#   A's disk read got the old bytes; B's write was acknowledged before A's
#   insert.  A may return the old data (it raced with an unacknowledged
#   write), but its fill must be skipped: afterwards the old page is never
#   served (C reads B's pattern, twice, the second time through the cache).
#   (nbdkit's delay filter sleeps *before* reading, so below our filter it
#   cannot hold old bytes across a write; a tiny sh plugin can.)
#
# 2. A read starts while a write to its block is in progress: nbdkit's delay
#    filter BELOW ours (delay-write=3) keeps the write in progress; the read
#    gets the old bytes from disk and must not insert them for good.
#
# Both write policies; fills go through memd's fill ring (shared memory,
# ordered like the socket's frames: lib/wire/include/remoca/fill_ring.h).  The log filter between ours and the disk records the
# order in which things really happened; the test concludes only when the
# interleaving it wants did happen.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init nbd-race
qio() { qemu-io -f raw "nbd+unix:///?socket=$T/nbd.sock" "$@"; }
line_of() { grep -n -- "$1" "$T/req.log" | head -1 | cut -d: -f1; }

start_memd_unix 16M

start_nbdkit() {
    rm -f "$T/req.log"
    start_nbdkit_unix --filter=log --filter=delay file "$T/disk.img" logfile="$T/req.log" \
        remoca-servers="unix:$T/memd.sock" remoca-statsfile="$T/nbd.stats" "$@"
}
stop_nbdkit() { kill "$NBDKIT"; wait "$NBDKIT" || true; }

for mode in invalidate update; do
    # 1. Write completes between a miss's disk read and its insert.
    head -c $((1048576 + 1000)) /dev/zero | tr '\0' '\1' > "$T/disk.img"
    cat > "$T/disk.sh" <<SH
#!/bin/bash
unset LD_PRELOAD # an ASan build preloads its runtime into nbdkit (lib.sh), not into dd
case "\$1" in
  thread_model) echo parallel ;;
  get_size) stat -L -c %s "$T/disk.img" ;;
  can_write|can_flush) exit 0 ;;
  flush) ;;
  pread) dd if="$T/disk.img" skip=\$4 count=\$3 iflag=skip_bytes,count_bytes status=none
         if [ -e "$T/slow" ] && [ "\$4" = 20480 ]; then rm -f "$T/slow"; touch "$T/read_done"; sleep 3; fi ;;
  pwrite) dd of="$T/disk.img" seek=\$4 oflag=seek_bytes conv=notrunc status=none ;;
  *) exit 2 ;;
esac
SH
    chmod +x "$T/disk.sh"
    rm -f "$T/nbd.pid" "$T/nbd.sock" "$T/read_done"
    touch "$T/slow"
    nbdkit -f -U "$T/nbd.sock" -P "$T/nbd.pid" --filter="$FILTER" sh "$T/disk.sh" \
        remoca-servers="unix:$T/memd.sock" remoca-pool=race-$mode \
        remoca-statsfile="$T/nbd.stats" remoca-write=$mode 2>>"$T/nbd.log" &
    NBDKIT=$!; track "$NBDKIT"
    waitfor 15 test -s "$T/nbd.pid" || fail "nbdkit (sh plugin) did not start"
    qio -c 'read 20k 4k' > "$T/a.out" 2>&1 &   # A: miss; old bytes, then 3 s
    A=$!; track "$A"
    waitfor 20 test -e "$T/read_done" || fail "A's read never reached the disk"
    qio -c 'write -P 0x5a 20k 4k' > "$T/b.out" || fail "B's write failed"
    kill -0 "$A" 2>/dev/null || fail "inconclusive: A finished before B's write completed"
    wait "$A" || fail "A's read failed"
    # C: must see B's data, from disk and then from the cache.
    qio -c 'read -P 0x5a 20k 4k' -c 'read -P 0x5a 20k 4k' > "$T/c.out" || fail "C read failed"
    grep -q "Pattern verification failed" "$T/c.out" && fail "$mode: STALE block served after the race"
    qio -c 'read -P 0x5a 20k 4k' > "$T/c.out" || fail "C2 read failed"
    grep -q "Pattern verification failed" "$T/c.out" && fail "$mode: STALE block served after the race"
    stop_nbdkit
    echo "$mode write-between-read-and-insert: $(grep -E '^(fills|fills_skipped|remote_hits)=' "$T/nbd.stats" | tr '\n' ' ')"
    [ "$(stat_of "$T/nbd.stats" fills_skipped)" -ge 1 ] || fail "$mode: the racing fill was not skipped"
    [ "$(stat_of "$T/nbd.stats" remote_hits)" -ge 1 ] || fail "$mode: C2 was not served remotely"
    [ "$(stat_of "$T/nbd.stats" ring_puts)" -ge 1 ] || fail "$mode: fills did not use the fill ring"

    # 2. A read starts while a write to its block is in progress (delayed).
    head -c $((1048576 + 1000)) /dev/zero | tr '\0' '\2' > "$T/disk.img"
    start_nbdkit delay-write=3 remoca-write=$mode
    qio -c 'write -P 0x6b 36k 4k' > "$T/b.out" 2>&1 &  # B: 3 s in progress
    B=$!; track "$B"
    waitfor 20 grep -q "Write id=[0-9]* offset=0x9000" "$T/req.log" || fail "B's write never started"
    qio -c 'read 36k 4k' > "$T/a.out" || fail "A's read failed"
    wait "$B" || fail "B's write failed"
    rl=$(line_of "\.\.\.Read id=[0-9]* return"); wl=$(line_of "\.\.\.Write id=[0-9]* return")
    [ "$rl" -lt "$wl" ] || fail "inconclusive: the read did not complete inside the write's window"
    qio -c 'read -P 0x6b 36k 4k' -c 'read -P 0x6b 36k 4k' > "$T/c.out" || fail "C read failed"
    grep -q "Pattern verification failed" "$T/c.out" && fail "$mode: STALE block served after a read during a write"
    stop_nbdkit
    echo "$mode read-during-write: $(grep -E '^(fills|fills_skipped|remote_hits)=' "$T/nbd.stats" | tr '\n' ' ')"
done
echo PASS
