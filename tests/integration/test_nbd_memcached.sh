#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# memcached as a backend through the whole NBD stack (issue 13; lib/client/
# client_mc.c, docs/memcached.md): the concurrency checker of
# test_nbd_checker.sh (random non-overlapping reads, writes, trims, zeroes on
# four connections, every read compared with a model) against
#   a. one memcached (remoca-servers=memcached:unix:SOCK), write-invalidate;
#   b. the same, write-update;
#   c. a mixed list, one remoca-memd and two memcached, write-invalidate,
#      one memcached SIGKILLed mid-run and restarted: the filter reconnects
#      (a new epoch) and uses it again;
#   d. one memcached, write-invalidate, memcached hangs (SIGSTOP) mid-run and
#      resumes (SIGCONT): requests time out (remoca-timeout=500), the
#      connection is closed rather than quarantined, and a new one (a new
#      epoch) is used once memcached answers again.
# Each run: zero errors returned to the NBD client, zero wrong bytes, the
# disk file equals the model, the filter counted no errors and remote hits;
# in c, hits on both kinds of server (the filter's per-server lines) and on
# the restarted memcached (its own stats).  memcached comes from
# scripts/deps.sh; this test installs nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init nbd-memcached
KILL_SIGNAL=KILL
MC=$(command -v memcached) ||
    fail "memcached is not installed: run scripts/deps.sh (Debian package memcached)"
RUN_AS=()
[ "$(id -u)" != 0 ] || RUN_AS=(-u root) # memcached refuses root without it
SIZE=$((4 * 1048576 + 1000))
STATS=$T/nbd.stats

declare -A MCPID
start_memcached() { # start_memcached NAME: memcached on $T/NAME.sock; sets MCPID[NAME]
    rm -f "$T/$1.sock"
    "$MC" -s "$T/$1.sock" -m 64 -t 2 "${RUN_AS[@]}" 2>>"$T/$1.log" &
    MCPID[$1]=$!; track "${MCPID[$1]}"
    waitfor 10 test -S "$T/$1.sock" || fail "memcached ($1) did not start"
}

mc_hits() { # mc_hits NAME: memcached's own get_hits
    command -v socat >/dev/null || { echo 1; return; } # cannot ask: do not fail on it
    printf 'stats\r\nquit\r\n' | socat -t 5 - "UNIX-CONNECT:$T/$1.sock" |
        tr -d '\r' | sed -n 's/^STAT get_hits //p'
}

server_hits() { # server_hits PATTERN: hits of the filter's server line whose address matches
    sed -n "s|^server[0-9]*=$1 .* hits=\([0-9]*\) .*|\1|p" "$STATS"
}

echo "memcached $("$MC" -V | sed 's/^memcached //')"
head -c $SIZE /dev/urandom > "$T/disk.img"

# a. one memcached, invalidate.
start_memcached mc1
checker_nbdkit remoca-write=invalidate remoca-servers="memcached:unix:$T/mc1.sock"
checker_start a 11
checker_finish a
[ "$(stat_of "$STATS" remote_hits)" -gt 0 ] || fail "a: no remote hits"
[ "$(server_hits "memcached:unix:$T/mc1.sock")" -gt 0 ] || fail "a: no hits on memcached"

# b. update.
checker_nbdkit remoca-write=update remoca-servers="memcached:unix:$T/mc1.sock"
checker_start b 12
checker_finish b
[ "$(stat_of "$STATS" updates)" -gt 0 ] || fail "b: no updates"
[ "$(stat_of "$STATS" remote_hits)" -gt 0 ] || fail "b: no remote hits"

# c. mixed: memd + two memcached; mc2 dies mid-run and comes back.
start_memd_unix 64M
start_memcached mc2
checker_nbdkit remoca-write=invalidate \
    remoca-servers="unix:$T/memd.sock,memcached:unix:$T/mc1.sock,memcached:unix:$T/mc2.sock"
checker_start c 13 --ops 2500
MEMD_SAVED=$MEMD # the helper kills $MEMD: here, memcached mc2 (it says "memd")
MEMD=${MCPID[mc2]} checker_kill_memd_midrun c
MEMD=$MEMD_SAVED
start_memcached mc2
echo "c: memcached mc2 restarted at $(cat "$T/progress") ops"
checker_finish c
[ "$(stat_of "$STATS" client_reconnects)" -ge 1 ] || fail "c: client did not reconnect"
grep '^server' "$STATS"
[ "$(server_hits "unix:$T/memd.sock")" -gt 0 ] || fail "c: no hits on remoca-memd"
[ "$(server_hits "memcached:unix:$T/mc1.sock")" -gt 0 ] || fail "c: no hits on memcached mc1"
[ "$(server_hits "memcached:unix:$T/mc2.sock")" -gt 0 ] || fail "c: no hits on memcached mc2"
h=$(mc_hits mc2)
echo "c: restarted memcached mc2: get_hits=$h"
[ "${h:-0}" -gt 0 ] || fail "c: the restarted memcached was never used again"
stop_pid "$MEMD"

# d. memcached hangs, then resumes.
checker_nbdkit remoca-write=invalidate remoca-servers="memcached:unix:$T/mc1.sock"
checker_start d 14 --ops 1500
waitfor 120 checker_progress_at_least 1500 || fail "d: checker made no progress"
kill -STOP "${MCPID[mc1]}"
p0=$(cat "$T/progress")
echo "d: memcached SIGSTOPped at $p0 ops"
waitfor 120 checker_progress_at_least $((p0 + 400)) ||
    { kill -CONT "${MCPID[mc1]}"; fail "d: checker stalled while memcached hung"; }
kill -CONT "${MCPID[mc1]}"
echo "d: memcached SIGCONTinued at $(cat "$T/progress") ops"
checker_finish d
[ "$(stat_of "$STATS" client_timeouts)" -ge 1 ] || fail "d: no timeouts counted"
[ "$(stat_of "$STATS" client_reconnects)" -ge 1 ] || fail "d: no reconnect after the hang"
[ "$(stat_of "$STATS" remote_hits)" -gt 0 ] || fail "d: no remote hits"
echo PASS
