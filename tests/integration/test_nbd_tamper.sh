#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A hostile memory server: the concurrency checker (nbd_checker) runs through
# tamper_proxy, a man in the middle between the filter and remoca-memd over
# TCP that replaces every N-th page a GET answer carries (a flipped bit,
# another block's page, another pool's page, a page from before a write).
#   a. plain pages (remoca-seal=off): the negative control.  The checker must
#      see wrong bytes: this proves that the proxy really tampers and that
#      the checker would notice.
#   b. sealed pages (the default over TCP), 4 connections: zero wrong bytes,
#      zero errors, disk = model; every forged page (flip, swap, pool) counted
#      as an integrity failure, replays as integrity failures or (a write to
#      the unit in flight) stale, no honest page refused as forged.
#      b2, one connection: every tampering counted exactly, nothing stale.
#   c. a wrong key: a second filter, with another key file, on the same pool
#      behind a key-file filter that filled it: all its remote answers fail
#      to open (misses), no data.
#   d. the memory server's memory holds none of the plaintext: a marker the
#      checker's disk is full of is searched in remoca-memd's whole address
#      space (/proc/PID/mem) after a sealed run, and found after a plain one.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init nbd-tamper
SIZE=$((4 * 1048576))
PROXY=$REMOCA_BUILD/tests/tamper_proxy

# sealing built in?  (the filter says so in its --help)
if ! nbdkit --filter="$FILTER" null --help 2>/dev/null | grep -q remoca-seal; then
    echo "the filter has no remoca-seal: skipped"; exit 77
fi

start_memd_tcp() { # start_memd_tcp SIZE: remoca-memd on an ephemeral TCP port; MEMD, MEMD_ADDR
    rm -f "$T/memd.port"
    "$MEMD_BIN" --listen 127.0.0.1:0 --port-file "$T/memd.port" --memory "$1" --threads 1 \
        2>>"$T/memd.log" &
    MEMD=$!; track "$MEMD"
    wait_file "$T/memd.port" 10 || fail "remoca-memd did not start"
    MEMD_ADDR=127.0.0.1:$(sed 's/.*://' "$T/memd.port" | tr -d ' \n')
}
start_proxy() { # start_proxy UNIT ARGS...: tamper_proxy in front of MEMD_ADDR; PROXY_PID, PROXY_ADDR
    local unit=$1; shift
    rm -f "$T/proxy.port" "$T/proxy.stats"
    "$PROXY" --upstream "$MEMD_ADDR" --port-file "$T/proxy.port" --unit "$unit" \
        --stats "$T/proxy.stats" "$@" 2>>"$T/proxy.log" &
    PROXY_PID=$!; track "$PROXY_PID"
    wait_file "$T/proxy.port" 10 || fail "tamper_proxy did not start"
    PROXY_ADDR=$(tr -d ' \n' < "$T/proxy.port")
}
stat_at_least() { local v; v=$(stat_of "$1" "$2" 2>/dev/null); [ "${v:-0}" -ge "$3" ]; } # FILE KEY N
proxy_stat() { tr ' ' '\n' < "$T/proxy.stats" | sed -n "s/^$1=//p"; }
# A disk full of a marker, so that the plaintext can be searched for later.
make_disk() {
    python3 -c "
import sys
m = b'REMOCA-PLAINTEXT-MARKER-%08d-'
with open(sys.argv[1], 'wb') as f:
    for i in range($SIZE // 4096):
        blk = (m % i) * (4096 // len(m % i) + 1)
        f.write(blk[:4096])" "$T/disk.img"
}
# memd_holds_marker: whether remoca-memd's memory contains the marker.
memd_holds_marker() {
    python3 - "$MEMD" <<'PY'
import sys
pid = sys.argv[1]
marker = b'REMOCA-PLAINTEXT-MARKER-'
CHUNK = 16 << 20
found = 0
with open('/proc/%s/maps' % pid) as maps, open('/proc/%s/mem' % pid, 'rb', 0) as mem:
    for line in maps:
        a, perms = line.split()[:2]
        lo, hi = (int(x, 16) for x in a.split('-'))
        # unreadable, or a sanitizer's shadow (terabytes reserved): not the store
        if 'r' not in perms or hi - lo > (8 << 30):
            continue
        tail = b''
        for off in range(lo, hi, CHUNK):
            try:
                mem.seek(off)
                data = tail + mem.read(min(CHUNK, hi - off))
            except (OSError, ValueError, OverflowError):
                break
            found += data.count(marker)
            tail = data[-(len(marker) - 1):]
print(found)
sys.exit(0 if found else 1)
PY
}

# a. plain pages: tampering shows as wrong bytes.
make_disk
start_memd_tcp 64M
start_proxy 4096 --every 7 --seed 1
checker_nbdkit remoca-servers="$PROXY_ADDR" remoca-seal=off
rc=0
"$REMOCA_BUILD/tests/nbd_checker" --uri "nbd+unix:///?socket=$T/nbd.sock" --init "$T/disk.img" \
    --conns 4 --ops 1500 --seed 11 $(checker_trim_flag) > "$T/a.out" 2>&1 || rc=$?
tail -3 "$T/a.out"
echo "a proxy: $(cat "$T/proxy.stats")"
[ "$(proxy_stat tampered)" -gt 0 ] || fail "a: the proxy tampered with nothing"
[ $rc != 0 ] && ! grep -q "wrong_bytes=0 " "$T/a.out" || fail "a: plain pages tampered with, yet no wrong byte seen"
n=$(memd_holds_marker) || fail "a: the plaintext marker is not in memd's memory (the dump search is blind)"
echo "a: memd holds the plaintext marker $n times (plain pages)"
stop_pid "$NBDKIT"; stop_pid "$PROXY_PID"; stop_pid "$MEMD"

# b. sealed pages through the same proxy: every tampering is a miss.
make_disk
start_memd_tcp 64M
start_proxy 4128 --every 7 --seed 2
# another pool through the proxy first: its pages are what "pool" substitutes
rm -f "$T/o.sock"
nbdkit -f -U "$T/o.sock" --filter="$FILTER" file "$T/disk.img" remoca-servers="$PROXY_ADDR" \
    remoca-pool=other 2>>"$T/nbd.log" &
NBDKIT_O=$!; track "$NBDKIT_O"
waitfor 15 test -S "$T/o.sock" || fail "b: nbdkit (pool other) did not start"
nbdcopy "nbd+unix:///?socket=$T/o.sock" null: || fail "b: read of pool other failed"
stop_pid "$NBDKIT_O"
checker_nbdkit remoca-servers="$PROXY_ADDR"
checker_start b 12 --ops 3000
checker_finish b
echo "b proxy: $(cat "$T/proxy.stats")"
tampered=$(proxy_stat tampered)
failures=$(stat_of "$T/nbd.stats" seal_integrity_failures)
stale=$(stat_of "$T/nbd.stats" seal_stale)
[ "$tampered" -gt 0 ] || fail "b: the proxy tampered with nothing"
for m in flip swap pool replay; do
    [ "$(proxy_stat $m)" -gt 0 ] || fail "b: no $m tampering happened"
done
# A flipped bit, another block's or another pool's page always fails its
# tag.  A replay is an integrity failure too, unless a write to its unit was
# in flight when it came back: then it cannot be told from an honest older
# copy and counts as stale (a miss either way).  An honest page is never an
# integrity failure.
forged=$(( $(proxy_stat flip) + $(proxy_stat swap) + $(proxy_stat pool) ))
[ "$failures" -ge "$forged" ] || fail "b: $forged forged pages, only $failures integrity failures"
[ "$failures" -le "$tampered" ] || fail "b: $failures integrity failures for $tampered tamperings (honest pages refused)"
[ $((failures + stale)) -ge "$tampered" ] || fail "b: $tampered tamperings, $failures + $stale refused"
[ "$(stat_of "$T/nbd.stats" remote_hits)" -gt 0 ] || fail "b: no remote hits at all"

# b2. one connection: no write is ever in flight during a read, so every
# tampering, replays included, is counted exactly, and nothing is stale.
stop_pid "$PROXY_PID"
start_proxy 4128 --every 5 --seed 3
checker_nbdkit remoca-servers="$PROXY_ADDR" remoca-pool=b2
rm -f "$T/progress"
"$REMOCA_BUILD/tests/nbd_checker" --uri "nbd+unix:///?socket=$T/nbd.sock" --init "$T/disk.img" \
    --conns 1 --ops 3000 --seed 13 $(checker_trim_flag) --model-out "$T/model.img" > "$T/b2.out" 2>&1 &
CHK=$!; track "$CHK"
checker_finish b2
echo "b2 proxy: $(cat "$T/proxy.stats")"
tampered=$(proxy_stat tampered)
failures=$(stat_of "$T/nbd.stats" seal_integrity_failures)
[ "$(proxy_stat replay)" -gt 0 ] || fail "b2: no replay happened"
[ "$failures" = "$tampered" ] || fail "b2: $tampered pages tampered with, $failures integrity failures counted"
[ "$(stat_of "$T/nbd.stats" seal_stale)" = 0 ] || fail "b2: stale pages with one connection"

# d. (sealed) the server's memory never held the plaintext.
if n=$(memd_holds_marker); then fail "d: memd's memory holds the plaintext marker $n times"; fi
echo "d: no plaintext in memd's memory after the sealed run"
stop_pid "$PROXY_PID"; stop_pid "$MEMD"

# c. a wrong key.  Filter A (key 1) fills the pool; filter B (key 2, same
# pool name: it resets the pool when it connects) fills it again under its
# key; then A reads everything again: its directory says "remote" for every
# block, and every page it gets is B's, which does not open under A's key.
start_memd_tcp 64M
head -c 64 /dev/urandom > "$T/key1"; head -c 64 /dev/urandom > "$T/key2"
chmod 600 "$T/key1" "$T/key2"
checker_nbdkit remoca-servers="$MEMD_ADDR" remoca-pool=shared remoca-key=+"$T/key1"
NBDKIT_A=$NBDKIT
nbdcopy "nbd+unix:///?socket=$T/nbd.sock" null: || fail "c: A's first read failed"
waitfor 10 stat_at_least "$T/nbd.stats" fills $((SIZE / 4096)) || fail "c: A filled too little"
rm -f "$T/b.sock"
nbdkit -f -U "$T/b.sock" --filter="$FILTER" file "$T/disk.img" remoca-servers="$MEMD_ADDR" \
    remoca-pool=shared remoca-key=+"$T/key2" remoca-statsfile="$T/b.stats" 2>>"$T/nbd.log" &
NBDKIT_B=$!; track "$NBDKIT_B"
waitfor 15 test -S "$T/b.sock" || fail "c: nbdkit B did not start"
nbdcopy "nbd+unix:///?socket=$T/b.sock" null: || fail "c: B's read failed"
waitfor 10 stat_at_least "$T/b.stats" fills $((SIZE / 4096)) || fail "c: B filled too little"
hits0=$(stat_of "$T/nbd.stats" remote_hits)
nbdcopy "nbd+unix:///?socket=$T/nbd.sock" "$T/c.img" || fail "c: A's second read failed"
sleep 1.5 # the stats file is rewritten every second
stop_pid "$NBDKIT_A"; stop_pid "$NBDKIT_B"
cmp "$T/c.img" "$T/disk.img" || fail "c: bytes read under the wrong key differ from the disk"
echo "c filter A: $(tr '\n' ' ' < "$T/nbd.stats")"
[ "$(stat_of "$T/nbd.stats" remote_hits)" = "$hits0" ] || fail "c: A got remote hits from pages sealed under another key"
[ "$(stat_of "$T/nbd.stats" seal_integrity_failures)" -ge $((SIZE / 4096 / 2)) ] ||
    fail "c: too few integrity failures under the wrong key"
[ "$(stat_of "$T/nbd.stats" errors)" = 0 ] || fail "c: A returned errors"
echo "PASS"
