#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Client core against a real remoca-memd: many threads, several pools, every
# byte checked against a model (tests/integration/client_stress.c), once with
# a budget far below the working set (evictions) and once with a budget that
# holds everything (exact model, no evictions, pool isolation).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dir=$(mktemp -d /tmp/remoca-client-stress.XXXXXX)
cleanup() {
    kill_memd_pidfiles "$dir"
    rm -rf "$dir"
}
trap cleanup EXIT
memd="$REMOCA_BUILD/remoca-memd"
stress="$REMOCA_BUILD/tests/client_stress"
for m in evict noevict; do
    if [ "$m" = evict ]; then mem=8M; else mem=128M; fi
    if ! timeout 120 "$stress" --memd "$memd" --dir "$dir" --memory "$mem" --mode "$m" \
            --threads 8 --pools 3 --ops 2500 --keys 1500; then
        echo "client_stress --mode $m failed; server log:"
        tail -20 "$dir/stress.log"
        exit 1
    fi
    rm -f "$dir/stress.log"
done
echo "PASS"
