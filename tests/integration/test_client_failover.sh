#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Client core with real remoca-memd servers that hang (SIGSTOP/SIGCONT), die
# and restart on the same port (SIGKILL), and one of two that dies
# (tests/integration/client_failover.c): misses meanwhile, never a hang or an
# error, reconnect with a pool reset, the surviving server's keys still hit;
# and a server with --secret (HMAC challenge-response in HELLO).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dir=$(mktemp -d /tmp/remoca-client-failover.XXXXXX)
cleanup() {
    kill_memd_pidfiles "$dir"
    rm -rf "$dir"
}
trap cleanup EXIT
for c in hang kill two auth; do
    if ! timeout 120 "$REMOCA_BUILD/tests/client_failover" --memd "$REMOCA_BUILD/remoca-memd" \
            --dir "$dir" --case "$c"; then
        echo "client_failover --case $c failed; server logs:"
        tail -n 20 "$dir"/*.log || true
        exit 1
    fi
done
echo "PASS"
