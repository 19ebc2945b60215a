#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The client core against a real memcached (tests/integration/client_memcached.c,
# lib/client/client_mc.c): puts and gets byte-exact, deletes, take (exclusive
# mode: the hits are deleted with their CAS before the call returns), pool
# reset and a big DELETE_RANGE as new epochs, STATS refused, a second client
# of the same pool in its own epoch, four threads sharing the client, a delete
# lost while memcached hangs (SIGSTOP) not read back after the reconnect; on a unix
# socket, then over TCP (127.0.0.1, a free port found by trying).  memcached
# comes from scripts/deps.sh.
set -eu
. "$(dirname "$0")/lib.sh"
itest_init client-memcached
MC=$(command -v memcached) ||
    fail "memcached is not installed: run scripts/deps.sh (Debian package memcached)"
RUN_AS=()
[ "$(id -u)" != 0 ] || RUN_AS=(-u root) # memcached refuses root without it
"$MC" -s "$T/mc.sock" -m 64 -t 2 "${RUN_AS[@]}" 2>>"$T/mc.log" &
MCPID=$!; track "$MCPID"
waitfor 10 test -S "$T/mc.sock" || fail "memcached did not start"
timeout 120 "$REMOCA_BUILD/tests/client_memcached" "$T/mc.sock" "$MCPID" 2>>"$T/client.log" ||
    fail "client_memcached"

tcp_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=
for _ in 1 2 3 4 5; do
    p=$((20000 + RANDOM % 40000))
    tcp_up "$p" && continue # taken
    "$MC" -l 127.0.0.1 -p "$p" -U 0 -m 64 -t 2 "${RUN_AS[@]}" 2>>"$T/mctcp.log" &
    pid=$!; track "$pid"
    if waitfor 5 tcp_up "$p" && kill -0 "$pid" 2>/dev/null; then port=$p; break; fi
    kill "$pid" 2>/dev/null || true
done
[ -n "$port" ] || fail "no TCP port for memcached"
timeout 120 "$REMOCA_BUILD/tests/client_memcached" "memcached:127.0.0.1:$port" \
    2>>"$T/client.log" || fail "client_memcached over TCP"
echo PASS
