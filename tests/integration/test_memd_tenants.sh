#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# remoca-memd --tenants: start-up refusals (file readable by others, bad line
# with FILE:LINE, --secret, --shm with two tenants), then tenants A and B on one
# server: B fills its pool through libremoca and measures its hits and bytes;
# A, on the raw wire, tries everything against B (tenant_client.c has the
# list) and overruns its own caps; B's pages are all still there, byte for
# byte, its hits at the server unchanged.
set -eu
. "$(dirname "$0")/lib.sh"
itest_init memd-tenants
B=$REMOCA_BUILD

# --- start-up refusals: exit 2 and a message that says what and where ---
refused() { # refused WHAT PATTERN ARGS...: remoca-memd ARGS exits 2 saying PATTERN
    local what=$1 pat=$2 rc=0
    shift 2
    "$MEMD_BIN" --memory 8M --unix "$T/x.sock" "$@" 2>"$T/err" || rc=$?
    [ "$rc" = 2 ] || fail "$what: exit $rc, expected 2"
    grep -q -- "$pat" "$T/err" || fail "$what: message '$(cat "$T/err")' lacks '$pat'"
}
cat >"$T/tenants" <<EOF
# two tenants on one server
tenant A secret=alpha-$$ pools=a/ memory=64K conns=2
tenant B secret=bravo-$$ pools=b/,bb memory=4M min=2M conns=4   # B's floor: 2M
tenant C secret=charlie-$$ pools=c/ memory=8M conns=1 stats=all # no floor; sees everyone
EOF
chmod 644 "$T/tenants"
refused "world-readable file" "readable or writable by others (mode 644)" --tenants "$T/tenants"
chmod 600 "$T/tenants"
printf 'tenant A secret=x pools=a/ memory=1M conns=1\n\ntenant C secret=y pools=c/ memory=1M conns=1 min=2M\n' >"$T/bad"
chmod 600 "$T/bad"
refused "bad line" "$T/bad:3: tenant C: min= is above memory=" --tenants "$T/bad"
printf 'tenant A secret=x pools=a/ memory=1M conns=1\ntenant B secret=y pools=a/b memory=1M conns=1\n' >"$T/bad"
refused "overlapping prefixes" "$T/bad:2: pools=: prefix 'a/b' of tenant B overlaps 'a/' of tenant A" --tenants "$T/bad"
refused "--secret too" "exclude each other" --tenants "$T/tenants" --secret s
refused "--shm with 3 tenants" "serves one tenant at most" --tenants "$T/tenants" --shm
printf 'tenant A secret=x pools=a/ memory=5M min=5M conns=1\ntenant B secret=y pools=b/ memory=5M min=5M conns=1\n' >"$T/bad"
refused "floors above --memory" "floors (min=) add up to more than --memory" --tenants "$T/bad"

# --- A and B on one server ---
"$MEMD_BIN" --unix "$T/memd.sock" --memory 8M --threads 2 --tenants "$T/tenants" \
    --pid-file "$T/pid" 2>"$T/memd.log" &
PID=$!
track "$PID"
wait_file "$T/pid" 10 && waitfor 5 test -S "$T/memd.sock" || fail "server did not start"
waitfor 10 grep -q "3 tenants" "$T/memd.log" || fail "start line: $(cat "$T/memd.log")"
ADDR="unix:$T/memd.sock"

"$B/tests/tenant_client" victim "$ADDR" "bravo-$$" "$T" >"$T/victim.out" 2>&1 &
VICTIM=$!
track "$VICTIM"
waitfor 20 test -e "$T/ready" || { cat "$T/victim.out" >&2; fail "B did not fill its pool"; }
"$B/tests/tenant_client" attacker "$ADDR" "alpha-$$" >"$T/attacker.out" 2>&1 ||
    { cat "$T/attacker.out" >&2; fail "tenant A's checks"; }
# C fills the 2048-page store 3 times with a pool of weight 100: B, below its
# floor (256 pages of 512), must keep every page (without the floor its fair
# share would be about 20 pages).
"$B/tests/tenant_client" flood "$ADDR" "charlie-$$" 6144 >"$T/flood.out" 2>&1 ||
    { cat "$T/flood.out" >&2; fail "tenant C's flood"; }
touch "$T/go"
rc=0
wait "$VICTIM" || rc=$?
cat "$T/victim.out" "$T/attacker.out" "$T/flood.out"
[ "$rc" = 0 ] || fail "tenant B's checks (exit $rc)"
grep -q "B: 256 of 256 hits (ratio 1.000), 1048576 bytes verified" "$T/victim.out" ||
    fail "B's first read"
grep -q "B: after A: 256 of 256 hits, every byte as written" "$T/victim.out" || fail "B after A"
grep -q "pool b/vda not allowed for tenant A" "$T/memd.log" || fail "refusal not logged"

# --- remoca stats --tenant: each tenant sees itself only ---
echo "alpha-$$" >"$T/secret.a"
"$B/remoca" stats --server "$ADDR" --tenant A --secret-file "$T/secret.a" >"$T/a.cli" ||
    fail "remoca stats --tenant A"
grep -q "^tenant name=A pages=" "$T/a.cli" && grep -q "^pool name=a/1 " "$T/a.cli" ||
    fail "remoca stats --tenant A: $(cat "$T/a.cli")"
grep -q "b/vda\|name=B" "$T/a.cli" && fail "remoca stats --tenant A shows B: $(cat "$T/a.cli")"
"$B/remoca" stats --server "$ADDR" --tenant B --secret-file "$T/secret.a" --json 2>"$T/err" &&
    fail "remoca stats as B with A's secret"
grep -q "HELLO refused: E_AUTH\|HELLO refused" "$T/err" || fail "as B with A's secret: $(cat "$T/err")"
"$B/remoca" stats --server "$ADDR" --secret-file "$T/secret.a" 2>"$T/err" &&
    fail "remoca stats without --tenant got in"

# --- the NBD filter as tenant B (remoca-tenant=B): its pool, not A's ---
# (Not in a ThreadSanitizer build: nbdkit, uninstrumented, cannot load a TSan filter.)
if [ "${REMOCA_SANITIZE:-}" = thread ]; then
    echo "ThreadSanitizer build: the filter's remoca-tenant= not tested (nbdkit cannot load it)"
elif command -v nbdkit >/dev/null && command -v nbdcopy >/dev/null; then
    head -c 1048576 /dev/urandom >"$T/disk.img"
    echo "bravo-$$" >"$T/secret.b"
    run_export() { # run_export NAME POOL: two full reads through nbdkit as tenant B
        rm -f "$T/$1.pid"
        nbdkit -f -U "$T/$1.sock" -P "$T/$1.pid" --filter="$FILTER" file "$T/disk.img" \
            remoca-servers="$ADDR" remoca-tenant=B remoca-secret="+$T/secret.b" \
            remoca-pool="$2" remoca-timeout=2000 remoca-statsfile="$T/$1.stats" 2>>"$T/$1.log" &
        local pid=$!
        track "$pid"
        waitfor 15 test -s "$T/$1.pid" || fail "$1: nbdkit did not start"
        local uri="nbd+unix:///?socket=$T/$1.sock"
        nbdcopy "$uri" "$T/$1.1" && nbdcopy "$uri" "$T/$1.2" || fail "$1: nbdcopy failed"
        cmp "$T/disk.img" "$T/$1.1" && cmp "$T/disk.img" "$T/$1.2" || fail "$1: wrong bytes"
        kill "$pid"
        wait "$pid" || true
    }
    run_export own b/nbd
    [ "$(stat_of "$T/own.stats" remote_hits)" -ge 256 ] || fail "remoca-tenant=B: no remote hits"
    run_export foreign a/nbd
    [ "$(stat_of "$T/foreign.stats" remote_hits)" = 0 ] || fail "B served from A's pool"
    grep -q "pool a/nbd not allowed for tenant B" "$T/memd.log" || fail "a/nbd: not refused"
    "$B/tests/tenant_client" stats "$ADDR" B "bravo-$$" >"$T/b.stats"
    grep -q "^pool name=b/nbd pages=256 " "$T/b.stats" || fail "B's stats: $(cat "$T/b.stats")"
    grep -q "a/" "$T/b.stats" && fail "B sees A's pools: $(cat "$T/b.stats")"
    "$B/tests/tenant_client" stats "$ADDR" A "alpha-$$" >"$T/a.stats"
    grep -q "b/\|name=B" "$T/a.stats" && fail "A sees B: $(cat "$T/a.stats")"
    grep -q "^tenant name=A pages=" "$T/a.stats" || fail "A's stats: $(cat "$T/a.stats")"
else
    echo "nbdkit or nbdcopy missing: the filter's remoca-tenant= not tested"
fi

kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
echo "PASS: tenants"
