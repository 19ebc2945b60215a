#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Memory-server membership at runtime through the whole NBD stack (issue 13):
# nbdkit + the filter with remoca-servers-file= over three remoca-memd
# servers (unix sockets), while nbd_checker runs (tests/integration/
# nbd_checker.c: random reads, writes, trims, zeroes on 4 connections, every
# read checked against a model):
#   1. a warm read pass (nbdcopy, twice: fill, then measure) gives the hit
#      ratio before;
#   2. mid-run, one server is SIGKILLed; later a fourth is written into the
#      servers file (the filter applies it within a second: POOL_KEEP on the
#      others, the newcomer reset); later the killed one is restarted (the
#      client reconnects and resets its pool); later still the fourth leaves
#      again, so its chunks return to their old owners, which must not serve
#      the copies they held before it joined (the checker would see stale
#      bytes: POOL_KEEP dropped them at the join);
#   3. the checker ends with zero errors and zero wrong bytes, the filter
#      returned no error, and the disk equals the checker's model;
#   4. the fourth server got keys while it was in (its own stats, and the
#      filter's per-server line), the restarted one serves again;
#   5. a warm read pass after the changes has a hit ratio within 5 points of
#      the one before;
#   6. a servers file that does not parse is logged and the list kept.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init nbd-membership
KILL_SIGNAL=KILL
SIZE=$((8 * 1048576 + 1000))
BLOCKS=$((SIZE / 4096)) # whole blocks a full read pass looks up
STATS=$T/nbd.stats
URI="nbd+unix:///?socket=$T/nbd.sock"

declare -a M
start_memd() { # start_memd I: remoca-memd on $T/mI.sock; sets M[I]
    rm -f "$T/m$1.sock"
    "$MEMD_BIN" --unix "$T/m$1.sock" --memory 64M --threads 1 2>>"$T/m$1.log" &
    M[$1]=$!; track "${M[$1]}"
    waitfor 10 test -S "$T/m$1.sock" || fail "remoca-memd $1 did not start"
}

write_servers() { # write_servers I...: the servers file, replaced atomically
    { echo "# memory servers of the membership test"; for i in "$@"; do echo "unix:$T/m$i.sock"; done; } >"$T/servers.tmp"
    mv "$T/servers.tmp" "$T/servers"
}

server_field() { # server_field I FIELD: a field of the filter's serverI= line
    sed -n "s/^server$1=.* $2=\([0-9]*\).*/\1/p" "$STATS"
}

stat_at_least() { local v; v=$(stat_of "$STATS" "$1"); [ "${v:-0}" -ge "$2" ]; }
server_up() { [ "$(server_field "$1" up)" = 1 ]; }
servers_listed() { [ "$(stat_of "$STATS" client_servers)" = "$1" ]; }

# warm_pass: reads the whole disk once; prints the pass's hit ratio in
# percent (remote hits per block looked up), from the filter's counters.
warm_pass() {
    local b0 h0 b1 h1
    waitfor 10 test -s "$STATS" || fail "no stats file"
    b0=$(stat_of "$STATS" read_blocks); h0=$(stat_of "$STATS" remote_hits)
    nbdcopy "$URI" null: 2>>"$T/nbdcopy.log" || fail "nbdcopy failed"
    waitfor 10 stat_at_least read_blocks $((b0 + BLOCKS)) || fail "stats did not count the pass"
    sleep 1.1 # one more rewrite: every read of the pass counted
    b1=$(stat_of "$STATS" read_blocks); h1=$(stat_of "$STATS" remote_hits)
    echo $(( (h1 - h0) * 100 / (b1 - b0) ))
}

head -c $SIZE /dev/urandom > "$T/disk.img"
for i in 0 1 2; do start_memd $i; done
write_servers 0 1 2
start_nbdkit_unix file "$T/disk.img" remoca-servers-file="$T/servers" \
    remoca-statsfile="$STATS" remoca-timeout=500
waitfor 10 server_up 2 || fail "servers not up"

# 1. hit ratio before
warm_pass >/dev/null
before=$(warm_pass)
echo "warm pass before the changes: hit ratio ${before}%"
[ "$before" -ge 90 ] || fail "warm hit ratio before is only ${before}%"

# 2. the checker runs while the membership changes
OPS=12000 # per connection: 48000 in all, still running when the fourth server leaves
checker_start memb 7 --ops $OPS
waitfor 120 checker_progress_at_least 2000 || fail "checker made no progress"
kill -9 "${M[1]}"; wait "${M[1]}" 2>/dev/null || true
echo "memd 1 SIGKILLed at $(cat "$T/progress") ops"
waitfor 120 checker_progress_at_least 4000 || fail "checker stalled after the kill"
start_memd 3
write_servers 0 1 2 3
waitfor 10 stat_at_least client_servers 4 || fail "the fourth server was not added"
waitfor 10 server_up 3 || fail "the fourth server did not come up"
echo "memd 3 added at $(cat "$T/progress") ops"
p=$(cat "$T/progress")
waitfor 120 checker_progress_at_least $((p + 2000)) || fail "checker stalled after the add"
start_memd 1
waitfor 10 server_up 1 || fail "the killed server did not come back"
p=$(cat "$T/progress")
echo "memd 1 back at $p ops"
[ "$p" -lt $((4 * OPS)) ] || fail "the checker ended before the killed server returned (raise OPS)"
waitfor 120 checker_progress_at_least $((p + 3000)) || fail "checker stalled after the return"
m3_pages=$("$REMOCA_BUILD/remoca" stats --server "unix:$T/m3.sock" | sed -n 's/^pool name=.* pages=\([0-9]*\).*/\1/p' | head -1)
m3_line=$(grep '^server3=' "$STATS")
write_servers 0 1 2
waitfor 10 servers_listed 3 || fail "the fourth server did not leave"
p=$(cat "$T/progress")
echo "memd 3 removed at $p ops"
[ "$p" -lt $((4 * OPS)) ] || fail "the checker ended before the fourth server left (raise OPS)"

# 3. no error, no wrong byte
rc=0; wait "$CHK" || rc=$?
cat "$T/memb.out"
[ $rc = 0 ] || fail "checker failed (wrong bytes or errors)"
grep -q "wrong_bytes=0 errors=0" "$T/memb.out" || fail "checker summary"

# 4. the fourth server held keys while it was in; the restarted one serves again
echo "memd 3 held ${m3_pages:-0} pages; filter: $m3_line"
[ "${m3_pages:-0}" -gt 0 ] || fail "the fourth server held no pages"
m3_hits=$(echo "$m3_line" | sed -n 's/.* hits=\([0-9]*\).*/\1/p')
[ "${m3_hits:-0}" -gt 0 ] || fail "the fourth server served nothing"

# 5. hit ratio after: a fill pass (the moved and reset chunks), then warm
recovering=$(warm_pass)
after=$(warm_pass)
echo "read passes after the changes: ${recovering}% (refill), ${after}% (warm); before ${before}%"
[ $((before - after)) -le 5 ] || fail "warm hit ratio ${after}% is more than 5 points below ${before}%"
[ "$(server_field 1 hits)" -gt 0 ] || fail "the restarted server served nothing"
"$REMOCA_BUILD/remoca" stats --servers "$STATS"

# 6. a bad file is logged, the list kept
echo "unix:$T/m0.sock, h:" > "$T/servers.tmp"; mv "$T/servers.tmp" "$T/servers"
waitfor 10 grep -q "keeping the current servers" "$T/nbd.log" || fail "bad servers file not logged"
[ "$(stat_of "$STATS" client_servers)" = 3 ] || fail "a bad servers file changed the list"

stop_pid "$NBDKIT"
cmp "$T/disk.img" "$T/model.img" || fail "disk file differs from the model"
[ "$(stat_of "$STATS" errors)" = 0 ] || fail "filter returned errors"
echo "filter: $(tr '\n' ' ' < "$STATS" | head -c 2000)"
echo PASS
