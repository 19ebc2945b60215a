#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# remoca-memd's limits in time and in number (tests/integration/harden_client.c):
# connections stalled in the handshake are closed after --handshake-timeout
# while a good client keeps being answered; slow senders (half a frame, a
# trickle) are closed after --frame-timeout while an idle connection is left
# alone; the connection beyond --max-conns-per-addr is refused, over TCP (per
# address) and over the unix socket (per uid); each is counted in STATS (text
# and JSON).  Then --user nobody: the server runs as nobody (uid, gid, groups,
# no capabilities, from /proc/PID/status), still serves, and exits 0 on SIGTERM.
set -eu
. "$(dirname "$0")/lib.sh"
itest_init memd-harden
KILL_SIGNAL=KILL
B=$REMOCA_BUILD
M="$MEMD_BIN" # REMOCA_MEMD: another build's server (a sanitizer build)
H="$B/tests/harden_client"

# --- command line -------------------------------------------------------------
"$M" --help >"$T/help" || fail "--help exit status"
for f in --max-conns-per-addr --handshake-timeout --frame-timeout --user; do
    grep -q -- "$f" "$T/help" || fail "--help does not document $f"
done
for bad in "--handshake-timeout x" "--frame-timeout -1" "--max-conns-per-addr 1e3"; do
    rc=0; "$M" --memory 8M $bad >/dev/null 2>&1 || rc=$?   # word splitting wanted
    [ "$rc" = 2 ] || fail "remoca-memd $bad exited $rc, expected 2"
done
rc=0; timeout 5 "$M" --memory 8M --listen 127.0.0.1:0 --user no-such-user-here 2>"$T/err" || rc=$?
[ "$rc" = 1 ] || fail "--user no-such-user-here exited $rc, expected 1"
grep -q "no-such-user-here" "$T/err" || fail "unknown --user not reported"

# --- timeouts and caps --------------------------------------------------------
CAP=8
"$M" --listen 127.0.0.1:0 --port-file "$T/port" --unix "$T/memd.sock" --memory 16M \
    --threads 2 --handshake-timeout 1 --frame-timeout 2 --max-conns-per-addr $CAP --max-buffers 4M \
    2>"$T/memd.log" &
PID=$!; track "$PID"
wait_file "$T/port" 10 || fail "server did not start"
TCP=127.0.0.1:$(cat "$T/port")
stat_line() { "$B/remoca" stats --server "$TCP" | sed -n 's/^server //p' | tr ' ' '\n'; }
count() { stat_line | sed -n "s/^$1=//p"; }

# (1) handshake stalls: 6 each over TCP and unix (with the good client: within the cap)
"$H" "$TCP" stall 6 1 || fail "stalled handshakes over TCP"
"$H" "unix:$T/memd.sock" stall 6 1 || fail "stalled handshakes over the unix socket"
[ "$(count handshake_timeouts)" = 12 ] || fail "handshake_timeouts=$(count handshake_timeouts), expected 12"
grep -q "no complete HELLO within --handshake-timeout" "$T/memd.log" || fail "handshake timeout not logged"

# (2) slow senders; an idle connection stays
"$H" "$TCP" slow 2 || fail "slow senders"
[ "$(count frame_timeouts)" = 3 ] || fail "frame_timeouts=$(count frame_timeouts), expected 3"
grep -q "frame incomplete after --frame-timeout" "$T/memd.log" || fail "frame timeout not logged"

# (2b) slow readers are not timed out (their frames wait for their output to
# drain), but --max-buffers bounds what they hold: readers that never read,
# each with up to 2 MiB of answers pending, cost the server at most the 4 MiB of
# --max-buffers (+ 1 MiB of pages cached for them, + allocator slack)
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$PID/status"; }
rss0=$(rss)
"$H" "$TCP" slowread 7 2 >"$T/slowread.out" & SR=$!; track "$SR"
peak=$rss0
while kill -0 "$SR" 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.2; done
wait "$SR" || fail "slow readers"
cat "$T/slowread.out"
grep -q "would exceed --max-buffers" "$T/memd.log" || fail "slow readers not bounded by --max-buffers"
[ "$(count buffer_closes)" -ge 1 ] || fail "buffer_closes=$(count buffer_closes)"
echo "slow readers: RSS $rss0 kB before, $peak kB at most while they held their answers"
if [ -z "${REMOCA_SANITIZE:-}${REMOCA_MEMD:-}" ]; then # a sanitizer's shadow memory counts in RSS
    [ $((peak - rss0)) -lt $((10 * 1024)) ] || fail "slow readers grew RSS by $((peak - rss0)) kB"
fi

# (3) per-address cap, TCP then unix (per uid)
"$H" "$TCP" cap $CAP || fail "per-address cap over TCP"
"$H" "unix:$T/memd.sock" cap $CAP || fail "per-uid cap over the unix socket"
[ "$(count connections_refused_addr)" = 2 ] ||
    fail "connections_refused_addr=$(count connections_refused_addr), expected 2"
grep -q "connection from 127.0.0.1 refused: --max-conns-per-addr $CAP" "$T/memd.log" ||
    fail "TCP refusal not logged"
grep -q "connection from uid $(id -u) refused" "$T/memd.log" || fail "unix refusal not logged"
json=$("$B/remoca" stats --json --server "$TCP")
for k in handshake_timeouts frame_timeouts connections_refused_addr buffer_closes; do
    echo "$json" | grep -q "\"$k\": [1-9]" || fail "$k missing from the JSON stats"
done
# the slots were all given back: CAP new connections are served again
"$H" "$TCP" cap $CAP || fail "cap slots not given back"
summary="$(count handshake_timeouts) handshake and $(count frame_timeouts) frame timeouts, $(count connections_refused_addr) refused"
kill -TERM "$PID"; rc=0; wait "$PID" || rc=$?
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"

# --- (4) --user nobody ------------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
    echo "PASS: $summary (--user part skipped: not root)"
    exit 0
fi
NOBODY_UID=$(id -u nobody); NOBODY_GID=$(id -g nobody)
chmod 711 "$T"; mkdir "$T/run"; chown nobody "$T/run" # the user removes its socket at exit
"$M" --listen 127.0.0.1:0 --port-file "$T/port2" --pid-file "$T/pid2" --unix "$T/run/memd.sock" \
    --memory 16M --threads 2 --user nobody 2>"$T/memd-user.log" &
PID=$!; track "$PID"
wait_file "$T/port2" 10 || fail "server with --user did not start"
TCP=127.0.0.1:$(cat "$T/port2")
waitfor 5 grep -q "running as user nobody" "$T/memd-user.log" || fail "privileges not dropped"
st=/proc/$PID/status
ids() { sed -n "s/^$1:[[:space:]]*//p" "$st" | tr -s '\t ' ' ' | sed 's/ $//'; }
[ "$(ids Uid)" = "$NOBODY_UID $NOBODY_UID $NOBODY_UID $NOBODY_UID" ] || fail "Uid: $(ids Uid)"
[ "$(ids Gid)" = "$NOBODY_GID $NOBODY_GID $NOBODY_GID $NOBODY_GID" ] || fail "Gid: $(ids Gid)"
for g in $(ids Groups); do
    [ "$g" = 0 ] && fail "still in group 0: Groups: $(ids Groups)"
done
groups=$(ids Groups)
[ "$(ids CapEff)" = 0000000000000000 ] || fail "CapEff: $(ids CapEff)"
[ "$(ids CapPrm)" = 0000000000000000 ] || fail "CapPrm: $(ids CapPrm)"
for task in /proc/$PID/task/*; do # every thread, not only the main one
    grep -q "^Uid:[[:space:]]*$NOBODY_UID[[:space:]]" "$task/status" || fail "thread $task not nobody"
done
"$B/tests/memd_client" "$TCP" check || fail "server as nobody: TCP client"
"$B/tests/memd_client" "unix:$T/run/memd.sock" check || fail "server as nobody: unix client"
kill -TERM "$PID"; rc=0; wait "$PID" || rc=$?
[ "$rc" = 0 ] || fail "--user: exit status $rc after SIGTERM"
[ -e "$T/run/memd.sock" ] && fail "--user: unix socket left behind"
echo "PASS: $summary; --user nobody: uid $NOBODY_UID gid $NOBODY_GID groups '$groups', no capabilities, served, exit 0"
