#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# remoca_client_set_servers against four real remoca-memd servers
# (tests/integration/client_membership.c): a server joins and takes its share
# from the others, which drop it (POOL_KEEP); it leaves and the keys that
# return to their old owners are not served stale; a bad list is refused;
# reads and writes go on while the list changes 20 times; per-server stats.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dir=$(mktemp -d /tmp/remoca-client-membership.XXXXXX)
cleanup() {
    kill_memd_pidfiles "$dir"
    rm -rf "$dir"
}
trap cleanup EXIT
if ! timeout 120 "$REMOCA_BUILD/tests/client_membership" --memd "$REMOCA_BUILD/remoca-memd" \
        --dir "$dir"; then
    echo "client_membership failed; server logs:"
    tail -n 20 "$dir"/*.log || true
    exit 1
fi
echo "PASS"
