#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Concurrency checker against the real stack: remoca-memd + nbdkit + the filter
# over the file plugin.  nbd_checker (tests/integration/nbd_checker.c) runs
# several libnbd connections issuing random non-overlapping reads, writes,
# trims and zeroes, aligned and unaligned, and compares every read with a
# model: zero wrong or stale bytes, zero errors.  Runs:
#   a. write-invalidate, a small memd (evictions happen all the time);
#   b. write-update;
#   c. write-invalidate while memd is SIGKILLed mid-run and restarted later:
#      the client sees no error and no wrong byte, and the filter reconnects
#      and serves from remote memory again;
#   d. two memory servers (blocks spread over both), write-update, one of them
#      SIGKILLed mid-run and never restarted: the other keeps serving its share;
#   e. write-invalidate while memd hangs (SIGSTOP) mid-run, then resumes
#      (SIGCONT): requests time out (remoca-timeout=500) and become misses.
# After each run the disk file must equal the checker's model (write-through).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init nbd-checker
KILL_SIGNAL=KILL
SIZE=$((4 * 1048576 + 1000))

# a. invalidate, memd of 1 MiB for a 4 MiB disk: constant evictions.
head -c $SIZE /dev/urandom > "$T/disk.img"
start_memd_unix 1M
checker_nbdkit remoca-write=invalidate
checker_start a 1
checker_finish a
[ "$(stat_of "$T/nbd.stats" remote_hits)" -gt 0 ] || fail "a: no remote hits"

# b. update.
checker_nbdkit remoca-write=update
checker_start b 2
checker_finish b
[ "$(stat_of "$T/nbd.stats" updates)" -gt 0 ] || fail "b: no updates"
stop_pid "$MEMD"

# c. the memory server dies mid-run and comes back.
start_memd_unix 64M
checker_nbdkit remoca-write=invalidate
checker_start c 3 --ops 2500
checker_kill_memd_midrun c
start_memd_unix 64M
echo "c: memd restarted at $(cat "$T/progress") ops"
checker_finish c
[ "$(stat_of "$T/nbd.stats" client_reconnects)" -ge 1 ] || fail "c: client did not reconnect"
"$REMOCA_BUILD/remoca" stats --server "unix:$T/memd.sock" > "$T/memd.txt" 2>&1 || true
echo "c: restarted memd: $(head -1 "$T/memd.txt")"
hits=$(sed -n 's/^server .* hits=\([0-9]*\) .*/\1/p' "$T/memd.txt")
[ "${hits:-0}" -gt 0 ] || fail "c: the restarted server was never used again"
stop_pid "$MEMD"

# d. two servers, one dies for good.
rm -f "$T/memd2.sock"
"$REMOCA_BUILD/remoca-memd" --unix "$T/memd2.sock" --memory 64M --threads 1 2>>"$T/memd2.log" &
MEMD2=$!; track "$MEMD2"
waitfor 10 test -S "$T/memd2.sock" || fail "second remoca-memd did not start"
start_memd_unix 64M
checker_nbdkit remoca-write=update remoca-servers="unix:$T/memd.sock,unix:$T/memd2.sock"
checker_start d 4 --ops 2000
waitfor 120 checker_progress_at_least 3000 || fail "d: checker made no progress"
kill -9 "$MEMD2"; wait "$MEMD2" 2>/dev/null || true
echo "d: second memd SIGKILLed at $(cat "$T/progress") ops"
checker_finish d
"$REMOCA_BUILD/remoca" stats --server "unix:$T/memd.sock" > "$T/memd.txt" 2>&1 || true
echo "d: surviving memd: $(head -1 "$T/memd.txt")"
hits=$(sed -n 's/^server .* hits=\([0-9]*\) .*/\1/p' "$T/memd.txt")
[ "${hits:-0}" -gt 0 ] || fail "d: the surviving server served nothing"
stop_pid "$MEMD"

# e. the memory server hangs, then resumes.
start_memd_unix 64M
checker_nbdkit remoca-write=invalidate
checker_start e 5 --ops 1500
waitfor 120 checker_progress_at_least 1500 || fail "e: checker made no progress"
kill -STOP "$MEMD"
p0=$(cat "$T/progress")
echo "e: memd SIGSTOPped at $p0 ops"
sleep 1.5 # hung for at least 3x remoca-timeout, however fast the checker goes on
waitfor 120 checker_progress_at_least $((p0 + 400)) || { kill -CONT "$MEMD"; fail "e: checker stalled while memd hung"; }
kill -CONT "$MEMD"
echo "e: memd SIGCONTinued at $(cat "$T/progress") ops"
checker_finish e
[ "$(stat_of "$T/nbd.stats" client_timeouts)" -ge 1 ] || fail "e: no timeouts counted"
echo PASS
