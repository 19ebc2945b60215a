#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Sealed pools end to end (tests/integration/client_sealed.c; docs/protocol.md,
# Sealed pools): pages and their 32-byte sidecars put and got back byte for
# byte, take, delete, reset, the plain calls refused on a sealed client and
# the sealed ones on a plain client, a sealed/plain mismatch refused by
# remoca-memd with its reason, one-sided reads of pages and sidecars from a
# --shm server and no-wait puts through its fill ring, sidecars included.  Against remoca-memd over TCP, over a unix socket with --shm,
# both in one server list, and a real memcached on a unix socket.
set -eu
. "$(dirname "$0")/lib.sh"
itest_init client-sealed
B=$REMOCA_BUILD
C="$B/tests/client_sealed"

start_memd_unix 16M --shm
"$MEMD_BIN" --listen 127.0.0.1:0 --port-file "$T/port" --memory 16M --threads 1 \
    2>>"$T/memd-tcp.log" &
track $!
wait_file "$T/port" 10 || fail "no port file"
PORT=$(cat "$T/port")

timeout 60 "$C" "127.0.0.1:$PORT" memd 2>>"$T/client.log" || fail "client_sealed over TCP"
timeout 60 "$C" "unix:$T/memd.sock" memd-shm 2>>"$T/client.log" ||
    fail "client_sealed over a unix socket (--shm)"
timeout 60 "$C" "127.0.0.1:$PORT,unix:$T/memd.sock" memd-shm 2>>"$T/client.log" ||
    fail "client_sealed on two servers"
grep -q "cannot open pool: pool is sealed" "$T/memd.log" || fail "memd did not log the refusal"

"$B/remoca" stats --server "unix:$T/memd.sock" >"$T/stats.txt" || fail "remoca stats"
grep -q "^pool name=sealed/vda .*sealed=1" "$T/stats.txt" || fail "stats: sealed pool: $(cat "$T/stats.txt")"
grep -q "^pool name=plain/vda .*sealed=0" "$T/stats.txt" || fail "stats: plain pool"

MC=$(command -v memcached) ||
    fail "memcached is not installed: run scripts/deps.sh (Debian package memcached)"
RUN_AS=()
[ "$(id -u)" != 0 ] || RUN_AS=(-u root) # memcached refuses root without it
"$MC" -s "$T/mc.sock" -m 64 -t 2 "${RUN_AS[@]}" 2>>"$T/mc.log" &
track $!
waitfor 10 test -S "$T/mc.sock" || fail "memcached did not start"
timeout 60 "$C" "memcached:unix:$T/mc.sock" mc 2>>"$T/client.log" || fail "client_sealed on memcached"
echo PASS
