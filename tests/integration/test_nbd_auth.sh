#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The filter against a memory server that requires authentication
# (remoca-memd --secret-file): with the right secret, read from a file
# (remoca-secret=+FILE, nbdkit's password convention), re-reads are served from
# remote memory; with a wrong secret the server keeps the filter out, and the
# NBD client still reads every byte correctly, from the disk (a remote tier it
# cannot use costs speed, never data or errors), and the refusal is logged.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init nbd-auth

echo "s3cret-$$" > "$T/secret"
echo "not-it" > "$T/wrong"
head -c $((4 * 1048576)) /dev/urandom > "$T/disk.img"
start_memd_unix 16M --secret-file "$T/secret"

run_export() { # run_export NAME SECRETFILE: two full reads through a fresh nbdkit
    local name=$1
    rm -f "$T/$name.pid" "$T/$name.sock"
    nbdkit -f -U "$T/$name.sock" -P "$T/$name.pid" --filter="$FILTER" file "$T/disk.img" \
        remoca-servers="unix:$T/memd.sock" remoca-secret="+$2" remoca-timeout=500 \
        remoca-statsfile="$T/$name.stats" 2>>"$T/$name.log" &
    local pid=$!; track "$pid"
    waitfor 15 test -s "$T/$name.pid" || fail "$name: nbdkit did not start"
    local uri="nbd+unix:///?socket=$T/$name.sock"
    nbdcopy "$uri" "$T/$name.1" && nbdcopy "$uri" "$T/$name.2" || fail "$name: nbdcopy failed"
    cmp "$T/disk.img" "$T/$name.1" && cmp "$T/disk.img" "$T/$name.2" || fail "$name: wrong bytes"
    kill "$pid"; wait "$pid" || true # final stats written at exit
    [ "$(stat_of "$T/$name.stats" errors)" = 0 ] || fail "$name: filter errors"
}

run_export good "$T/secret"
[ "$(stat_of "$T/good.stats" remote_hits)" -ge 1024 ] || fail "right secret: no remote hits"
"$REMOCA_BUILD/remoca" stats --server "unix:$T/memd.sock" --secret-file "$T/secret" > "$T/memd.stats"
grep -q "hits=[1-9]" "$T/memd.stats" || fail "memd counted no hits: $(cat "$T/memd.stats")"

run_export bad "$T/wrong"
[ "$(stat_of "$T/bad.stats" remote_hits)" = 0 ] || fail "wrong secret: served from remote memory"
grep -qi "auth" "$T/memd.log" || fail "memd did not log the refused credential"
echo PASS
