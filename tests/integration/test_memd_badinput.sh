#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# remoca-memd under bad input: random bytes, bad magic, oversized lengths,
# unknown opcodes, invalid pool handles, errors that keep the stream in sync,
# clients that disconnect mid-frame, 2000 idle connections, connections that
# stall in the middle of 1 MiB frames beyond --max-buffers.  A well-behaved
# client (tests/integration/memd_client.c) checks its bytes after every
# scenario, over TCP and over the unix socket; the server must survive, log
# the dropped connections, count the errors, and exit 0 on SIGTERM.
set -eu
. "$(dirname "$0")/lib.sh"
itest_init memd-badinput
KILL_SIGNAL=KILL
B=$REMOCA_BUILD

"$B/remoca-memd" --listen 127.0.0.1:0 --port-file "$T/port" --unix "$T/memd.sock" \
    --memory 32M --threads 2 --max-conns 4096 --max-buffers 4M 2>"$T/memd.log" &
PID=$!; track "$PID"
wait_file "$T/port" 10 || fail "server did not start"
TCP=127.0.0.1:$(cat "$T/port")

"$B/tests/memd_client" "$TCP" badinput || fail "bad input over TCP"
"$B/tests/memd_client" "unix:$T/memd.sock" badinput || fail "bad input over the unix socket"
kill -0 "$PID" || fail "server died"
"$B/tests/memd_client" "$TCP" idle 2000 || fail "2000 idle connections"
"$B/tests/memd_client" "unix:$T/memd.sock" check || fail "good client after idle connections"
"$B/tests/memd_client" "$TCP" hog 8 || fail "connections stalled mid-frame beyond --max-buffers"
grep -q "would exceed --max-buffers" "$T/memd.log" || fail "buffer limit not logged"

# The dropped connections were logged, one line each, and errors counted.
grep -q "bad magic 0x00000000: stream out of sync, connection closed" "$T/memd.log" ||
    fail "bad magic not logged"
grep -q "exceeds 1056768: connection closed" "$T/memd.log" || fail "oversized length not logged"
grep -q "client disconnected in the middle of a frame" "$T/memd.log" ||
    fail "mid-frame disconnect not logged"
errors=$("$B/remoca" stats --server "$TCP" | sed -n 's/^server .* errors=\([0-9]*\).*/\1/p')
[ "${errors:-0}" -ge 30 ] || fail "server counted only ${errors:-?} errors"

kill -TERM "$PID"
for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PID" 2>/dev/null && fail "server did not exit within 10 s of SIGTERM"
rc=0; wait "$PID" || rc=$?
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
grep -q "shutting down" "$T/memd.log" || fail "shutdown not logged"
[ -e "$T/memd.sock" ] && fail "unix socket left behind"
echo "PASS: bad input answered or dropped, good client intact, $errors errors counted"
