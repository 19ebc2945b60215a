#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# remoca-memd --shm: SHM_MAP hands a client on this host the page store
# read-only (plus the touch map) over the unix socket, and nowhere else.
#   - `--shm` without --unix is refused (exit 2, a message naming --unix);
#   - memd --shm --unix (and --listen): tests/integration/shm_client.c maps
#     the store through SHM_MAP (2 fds, data fd read-only even when reopened
#     through /proc), reads what it put, sees overwrites, deletes, resets;
#   - SHM_MAP over TCP, and to a server without --shm: E_STATE with the
#     reason, no fds, the connection goes on;
#   - the stats count the maps (text and JSON); SIGTERM: exit 0.
set -eu
. "$(dirname "$0")/lib.sh"
itest_init memd-shm
B=$REMOCA_BUILD
C="$B/tests/shm_client"

# --- --shm needs --unix --------------------------------------------------------
rc=0; "$B/remoca-memd" --memory 8M --shm --listen 127.0.0.1:0 >"$T/out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--shm without --unix: exit $rc, expected 2"
grep -q -- "--shm needs --unix" "$T/out" || fail "--shm without --unix: message: $(cat "$T/out")"
"$B/remoca-memd" --help | grep -q -- "--shm" || fail "--help does not mention --shm"

# --- a --shm server: the mapping over the unix socket ------------------------------
start_memd_unix 8M --shm --listen 127.0.0.1:0 --port-file "$T/port"
wait_file "$T/port" 10 || fail "no port file"
PORT=$(cat "$T/port")
grep -q "shm on" "$T/memd.log" || fail "the ready line does not say shm on"
"$C" "unix:$T/memd.sock" map || fail "shm_client map"
"$C" "127.0.0.1:$PORT" refuse "shm only over a unix socket" || fail "SHM_MAP over TCP"

"$B/remoca" stats --server "unix:$T/memd.sock" >"$T/stats.txt" || fail "remoca stats"
server=$(grep '^server ' "$T/stats.txt")
for kv in shm=1 shm_maps=2; do
    case " $server " in *" $kv "*) ;; *) fail "server line lacks $kv: $server" ;; esac
done
"$B/remoca" stats --server "unix:$T/memd.sock" --json >"$T/stats.json" || fail "remoca stats --json"
python3 - "$T/stats.json" <<'PY' || fail "JSON: $(cat "$T/stats.json")"
import json, sys
s = json.load(open(sys.argv[1]))["server"]
assert s["shm"] == 1 and s["shm_maps"] == 2, s
PY
kill -TERM "$MEMD"
rc=0; wait "$MEMD" || rc=$?
[ "$rc" = 0 ] || fail "--shm server: exit status $rc after SIGTERM"

# --- a server without --shm ------------------------------------------------------
start_memd_unix 4M
"$C" "unix:$T/memd.sock" refuse "shm not enabled (start remoca-memd with --shm)" ||
    fail "SHM_MAP without --shm"
grep -q "shm_maps=0" <("$B/remoca" stats --server "unix:$T/memd.sock") || fail "shm_maps not 0"
echo "PASS: memd --shm"
