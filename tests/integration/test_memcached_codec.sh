#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# memcached as a backend, below the client: the meta protocol codec
# (lib/wire/mc.c, docs/memcached.md) against a real memcached on a unix
# socket, through tests/integration/mc_codec.c: pipelined gets with quiet
# misses, put/get, delete ordering, take with CAS and its race with a put,
# epochs, ma; then a memcached with little memory (-m 8) filled with four
# times as much: its evictions (counted in its own stats) only cause misses.
# memcached comes from scripts/deps.sh; this test installs nothing.
set -eu
. "$(dirname "$0")/lib.sh"
itest_init memcached-codec
MC=$(command -v memcached) ||
    fail "memcached is not installed: run scripts/deps.sh (Debian package memcached)"
command -v socat >/dev/null || fail "socat is not installed: run scripts/deps.sh"
CLIENT=$REMOCA_BUILD/tests/mc_codec
RUN_AS=()
[ "$(id -u)" != 0 ] || RUN_AS=(-u root) # memcached refuses root without it

start_memcached() { # start_memcached NAME MB: memcached on $T/NAME.sock; sets MCPID
    rm -f "$T/$1.sock"
    "$MC" -s "$T/$1.sock" -m "$2" -t 2 "${RUN_AS[@]}" -v 2>>"$T/$1.log" &
    MCPID=$!; track "$MCPID"
    waitfor 10 test -S "$T/$1.sock" || fail "memcached ($1) did not start"
}

mc_stat() { # mc_stat NAME KEY: one value of memcached's "stats"
    printf 'stats\r\nquit\r\n' | socat -t 5 - "UNIX-CONNECT:$T/$1.sock" |
        tr -d '\r' | sed -n "s/^STAT $2 //p"
}

echo "memcached $("$MC" -V | sed 's/^memcached //')"

# --- the semantics the client relies on ----------------------------------------
start_memcached sem 64
"$CLIENT" "$T/sem.sock" semantics || fail "semantics"
[ "$(mc_stat sem evictions)" = 0 ] || fail "evictions in a 64 MiB memcached holding a few pages"
kill -0 "$MCPID" || fail "memcached (sem) died"

# --- eviction: only misses ------------------------------------------------------
start_memcached evict 8
"$CLIENT" "$T/evict.sock" evict 8192 || fail "eviction"
ev=$(mc_stat evict evictions)
echo "memcached -m 8: evictions=$ev"
[ "${ev:-0}" -gt 0 ] || fail "memcached -m 8 evicted nothing after 32 MiB of puts"
echo "PASS memcached codec"
