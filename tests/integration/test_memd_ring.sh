#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# remoca-memd's fill ring (FILL_RING, lib/wire/include/remoca/fill_ring.h): puts through
# a memfd ring shared with a client on the unix socket, executed in the
# connection's request order.  tests/integration/ring_client.c does the checks
# (see its top comment); here, against a server without and with --shm:
#   - ring_client ring: the memfd and its seals, puts read back by the next
#     request, order around DELETEs and future entries, a bad handle counted in
#     errors, refusals (behind a PING, twice, a bad slot count);
#   - ring_client badhead: a head out of range closes that connection (logged),
#     the server goes on;
#   - FILL_RING over TCP: E_STATE; a ring beyond --max-buffers: E_LIMIT;
#   - `remoca stats` (text and JSON): ring_puts = the entries the client had
#     executed, fill_rings back to 0 once the clients are gone; SIGTERM: exit 0.
set -eu
. "$(dirname "$0")/lib.sh"
itest_init memd-ring
B=$REMOCA_BUILD
C="$B/tests/ring_client"

server_kv() { grep '^server ' "$T/stats.txt" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

for mode in plain shm; do
    shm=(); [ "$mode" = shm ] && shm=(--shm)
    rm -f "$T/port"
    start_memd_unix 8M "${shm[@]}" --listen 127.0.0.1:0 --port-file "$T/port"
    wait_file "$T/port" 10 || fail "$mode: no port file"
    PORT=$(cat "$T/port")
    "$C" "unix:$T/memd.sock" ring >"$T/ring.out" || fail "$mode: ring_client ring"
    cat "$T/ring.out"
    puts=$(sed -n 's/^ring: ok ring_puts=//p' "$T/ring.out")
    [ -n "$puts" ] || fail "$mode: ring_client printed no count"
    "$C" "unix:$T/memd.sock" badhead || fail "$mode: ring_client badhead"
    waitfor 5 grep -q "fill ring head out of range" "$T/memd.log" ||
        fail "$mode: no log line for the head out of range"
    "$C" "127.0.0.1:$PORT" refuse E_STATE "fill ring only over a unix socket" ||
        fail "$mode: FILL_RING over TCP"

    # The clients are gone: no ring attached; every entry counted once.
    "$B/remoca" stats --server "unix:$T/memd.sock" >"$T/stats.txt" || fail "remoca stats"
    [ "$(server_kv ring_puts)" = "$puts" ] ||
        fail "$mode: ring_puts=$(server_kv ring_puts), the client had $puts executed"
    waitfor 5 sh -c "'$B/remoca' stats --server 'unix:$T/memd.sock' | grep -q '^server .* fill_rings=0 '" ||
        fail "$mode: fill_rings not back to 0: $(grep '^server ' "$T/stats.txt")"
    "$B/remoca" stats --server "unix:$T/memd.sock" --json >"$T/stats.json" || fail "remoca stats --json"
    python3 - "$T/stats.json" "$puts" <<'PY' || fail "JSON: $(cat "$T/stats.json")"
import json, sys
s = json.load(open(sys.argv[1]))["server"]
assert s["ring_puts"] == int(sys.argv[2]) and s["fill_rings"] == 0, s
PY
    kill -TERM "$MEMD"
    rc=0; wait "$MEMD" || rc=$?
    [ "$rc" = 0 ] || fail "$mode: exit status $rc after SIGTERM"
    echo "$mode: ok"
done

# --- the ring's memory counts toward --max-buffers ----------------------------------
start_memd_unix 8M --max-buffers 4M
"$C" "unix:$T/memd.sock" refuse E_LIMIT "would exceed --max-buffers" 1024 ||
    fail "a 4 MiB ring under --max-buffers 4M"
"$C" "unix:$T/memd.sock" ring >/dev/null || fail "a small ring under --max-buffers 4M"
echo "PASS: memd fill ring"
