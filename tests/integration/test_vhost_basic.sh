#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# remoca-vhost from the host side, without a VM: tests/integration/vhost_driver.c
# plays QEMU and the guest over the vhost-user socket (memfd guest RAM, the
# handshake, one queue; write, read back, flush, discard, write-zeroes,
# get-id, hostile chains and messages, disconnect and reconnect) and checks
# the bytes on the backing file.
#   1. options: bad ones are refused with a clear message, exclusive included;
#   2. --mode off over a file: ADD_MEM_REG (as QEMU 7.2), then SET_MEM_TABLE;
#   3. --mode off over NBD (nbdkit's file plugin, --disk nbd+unix://...);
#   4. --mode inclusive with a remoca-memd: the reads repeated by the driver
#      are remote hits (remoca-vhost's --stats and the server's own counters);
#   5. --mode exclusive, once it is built: the driver's checks of the bytes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init vhost-basic
VHOST=$REMOCA_BUILD/remoca-vhost
DRIVER=$REMOCA_BUILD/tests/vhost_driver
[ -x "$VHOST" ] && [ -x "$DRIVER" ] || { echo "SKIP: remoca-vhost not built"; exit 77; }

head -c $((32 * 1048576)) /dev/urandom > "$T/disk.img"

# --- 1. options -------------------------------------------------------------------------
expect_refused() { # expect_refused PATTERN ARGS...: exit 2 and PATTERN on stderr
    local pat=$1 rc=0; shift
    "$VHOST" "$@" 2>"$T/opt.err" >/dev/null || rc=$?
    [ "$rc" = 2 ] || fail "remoca-vhost $* exited $rc, expected 2"
    grep -q -- "$pat" "$T/opt.err" || fail "remoca-vhost $*: no '$pat' in: $(cat "$T/opt.err")"
}
# exclusive mode: refused while the engine's eviction inference is not wired in; once it is,
# the driver runs in it too (section 5)
EXCLUSIVE=1
if "$VHOST" --help | grep -q "not built yet"; then
    EXCLUSIVE=0
    expect_refused "exclusive mode is not built yet" --socket "$T/x.sock" --disk "$T/disk.img" \
        --mode exclusive --servers unix:/nonexistent
fi
expect_refused "are required" --socket "$T/x.sock"
expect_refused "expected a number from 1" --socket "$T/x.sock" --disk "$T/disk.img" --queues 0
expect_refused "needs --servers" --socket "$T/x.sock" --disk "$T/disk.img" --mode inclusive
expect_refused "does not use" --socket "$T/x.sock" --disk "$T/disk.img" --mode off --servers x:1
expect_refused "expected off, inclusive" --socket "$T/x.sock" --disk "$T/disk.img" --mode fast
"$VHOST" --help | grep -q -- "--socket PATH" || fail "--help"
rc=0; "$VHOST" --socket "$T/x.sock" --disk "$T/missing.img" 2>"$T/opt.err" || rc=$?
[ "$rc" = 1 ] && grep -q "No such file" "$T/opt.err" || fail "missing disk: rc $rc $(cat "$T/opt.err")"
echo "options: ok"

start_vhost() { # start_vhost NAME ARGS...: remoca-vhost on $T/NAME.sock; sets VPID
    local name=$1; shift
    "$VHOST" --socket "$T/$name.sock" "$@" 2>>"$T/$name.log" &
    VPID=$!; track "$VPID"
    waitfor 10 test -S "$T/$name.sock" || fail "remoca-vhost ($name) did not start"
}

# --- 2. mode off, file ------------------------------------------------------------------
start_vhost off --disk "$T/disk.img" --mode off --stats "$T/off.stats"
"$DRIVER" "$T/off.sock" "$T/disk.img" > "$T/driver-off.log" 2>&1 || fail "driver (off): $(cat "$T/driver-off.log")"
"$DRIVER" "$T/off.sock" "$T/disk.img" --memtable > "$T/driver-off2.log" 2>&1 ||
    fail "driver (off, SET_MEM_TABLE): $(cat "$T/driver-off2.log")"
stop_pid "$VPID"
grep -q "exiting" "$T/off.log" || fail "remoca-vhost did not exit cleanly on SIGTERM"
[ ! -e "$T/off.sock" ] || fail "socket left behind"
# no engine in mode off, but the reads' miss-ratio curve all the same (what a cache would save)
refs=$(sed -n 's/^mrc_refs=//p' "$T/off.stats")
[ "${refs:-0}" -gt 0 ] || fail "mode off: no mrc_refs in its stats: $(cat "$T/off.stats")"
"$REMOCA_BUILD/remoca" stats --mrc "$T/off.stats" --table > "$T/off.mrc" || fail "remoca stats --mrc on mode off's stats"
[ "$(grep -vc '^#' "$T/off.mrc")" -gt 1 ] || fail "mode off: empty curve: $(cat "$T/off.mrc")"
echo "mode off (file): ok (curve of $refs block reads)"

# --- 3. mode off, NBD -------------------------------------------------------------------
nbdkit -f -U "$T/nbd.sock" -P "$T/nbd.pid" file "$T/disk.img" 2>>"$T/nbdkit.log" &
track $!
waitfor 15 test -s "$T/nbd.pid" || fail "nbdkit did not start"
start_vhost vnbd --disk "nbd+unix:///?socket=$T/nbd.sock" --mode off
"$DRIVER" "$T/vnbd.sock" "$T/disk.img" > "$T/driver-nbd.log" 2>&1 || fail "driver (nbd): $(cat "$T/driver-nbd.log")"
stop_pid "$VPID"
echo "mode off (NBD): ok"

# --- 4. mode inclusive ------------------------------------------------------------------
start_memd_unix 64M
start_vhost inc --disk "$T/disk.img" --mode inclusive --servers "unix:$T/memd.sock" \
    --pool vhost-test --stats "$T/inc.stats"
"$DRIVER" "$T/inc.sock" "$T/disk.img" > "$T/driver-inc.log" 2>&1 || fail "driver (inclusive): $(cat "$T/driver-inc.log")"
stop_pid "$VPID"   # final stats written at exit
hits=$(stat_of "$T/inc.stats" remote_hits)
fills=$(stat_of "$T/inc.stats" fills)
echo "inclusive: $(tr '\n' ' ' < "$T/inc.stats")"
[ "${fills:-0}" -ge 16 ] || fail "inclusive: $fills fills, expected at least 16"
[ "${hits:-0}" -ge 32 ] || fail "inclusive: $hits remote hits, expected at least 32 (re-reads)"
"$REMOCA_BUILD/remoca" stats --server "unix:$T/memd.sock" > "$T/memd.stats"
mhits=$(sed -n 's/^server .* hits=\([0-9]*\) .*/\1/p' "$T/memd.stats" | head -1)
[ "${mhits:-0}" = "$hits" ] || fail "memd counted ${mhits:-no} hits, remoca-vhost $hits: $(cat "$T/memd.stats")"
echo "mode inclusive: ok (remote_hits=$hits, memd hits=$mhits)"

# --- 5. mode exclusive, when built: the same bytes (never stale, never lost) ----------------
if [ "$EXCLUSIVE" = 1 ]; then
    start_vhost exc --disk "$T/disk.img" --mode exclusive --servers "unix:$T/memd.sock" \
        --pool vhost-test-x --stats "$T/exc.stats"
    "$DRIVER" "$T/exc.sock" "$T/disk.img" > "$T/driver-exc.log" 2>&1 ||
        fail "driver (exclusive): $(cat "$T/driver-exc.log")"
    stop_pid "$VPID"
    echo "mode exclusive: ok"
fi
echo PASS
