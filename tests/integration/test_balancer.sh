#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# remoca-balancer against real QEMUs and a real remoca-memd, with stats files
# written here (the front ends' format, nbd/statsfile.c):
#
#   QEMU loopy  (-S, -m 256, virtio-balloon)  stats: a loop that fits with 48 MiB more
#   QEMU flat   (-S, -m 256, virtio-balloon)  stats: no reuse (0.99 everywhere)
#   QEMU newvm  (-S, -m 256, virtio-balloon)  stats: no mrc lines yet
#   remoca-memd --memory 64M                  pools vm-loopy/vda, vm-flat/vda
#   host budget 640M < 3 x 256M
#
#   1. --dry-run --once: the decision and its numbers are printed: flat goes to
#      its floor (the host budget), loopy gets 48M of remote memory (exclusive),
#      newvm is kept ("no curve yet"); nothing reaches QEMU or the server;
#   2. --once: the balloon command is accepted by QEMU (a paused guest has no
#      balloon driver running: query-balloon still says 256M, the target waits
#      in the device) and vm-loopy/vda's min = max = 48M on the server;
#   3. the loop: the same inputs hold (no change, no command); when newvm's
#      curve appears (a loop that fits with 8 MiB more), it gets the 16M of
#      remote memory left, after a loop of measuring its rate; SIGTERM ends
#      the loop with status 0;
#   4. errors: a missing QMP socket or stats file (exit 1), a QEMU without a
#      balloon device (exit 1), bad config files (exit 2), each with a clear message.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init balancer
BAL=$REMOCA_BUILD/remoca-balancer
QMP="python3 $REMOCA_SRC/tests/vm/qmp.py"
[ -x "$BAL" ] || { echo "SKIP: remoca-balancer not built"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 not found"; exit 77; }

start_qemu() { # start_qemu NAME [DEVICE...]: a paused QEMU with QMP on $T/NAME.qmp
    local name=$1; shift
    qemu-system-x86_64 -machine q35 -accel tcg -m 256 -nodefaults -display none -S "$@" \
        -qmp "unix:$T/$name.qmp,server=on,wait=off" 2>>"$T/qemu-$name.log" &
    track $!
    waitfor 30 test -S "$T/$name.qmp" || fail "QEMU $name did not start"
}
for vm in loopy flat newvm; do start_qemu $vm -device virtio-balloon-pci; done
start_qemu noballoon
start_memd_unix 64M
MEMD_JSON() { "$REMOCA_BUILD/remoca" stats --server "unix:$T/memd.sock" --json; }
pool_field() { # pool_field POOL FIELD: a pool's number in the server's stats, or "none"
    MEMD_JSON | python3 -c 'import json, sys
d = json.load(sys.stdin)
print(next((str(p[sys.argv[2]]) for p in d["pools"] if p["name"] == sys.argv[1]), "none"))' "$1" "$2"
}

# Curves: 64 points, 1 MiB (256 blocks) apart.
curve() { # curve CLIFF_BLOCKS RATIO_AFTER: ratio 1 before the cliff
    local i s out=""
    for i in $(seq 1 64); do
        s=$((i * 256))
        if [ $s -lt "$1" ]; then out+="${out:+,}$s:1.0000"; else out+="${out:+,}$s:$2"; fi
    done
    echo "$out"
}
curve 12288 0.0500 > "$T/loopy.curve"  # fits with 48 MiB more
curve 1 0.9900 > "$T/flat.curve"       # no reuse
write_stats() { # write_stats NAME REFS [CURVE-FILE]: one rewrite, by rename as a front end does
    local f=$T/$1.stats
    {
        echo "disk_size=1073741824"; echo "dir_blocks=0"; echo "reads=$2"; echo "read_blocks=$2"
        echo "remote_hits=0"
        if [ -n "${3:-}" ]; then
            echo "mrc_refs=$2"; echo "mrc_sampled=$2"; echo "mrc_rate=1"; echo "mrc_samples=100"
            echo "mrc_bytes=65536"; echo "mrc=$(cat "$3")"
        fi
        echo "client_requests=0"
    } > "$f.tmp"
    mv "$f.tmp" "$f"
}
writer() { # about 2000, 1000 and 500 reads/s
    local t=0
    while :; do
        write_stats loopy $((t * 400)) "$T/loopy.curve"
        write_stats flat $((t * 200)) "$T/flat.curve"
        if [ -f "$T/newvm.curve" ]; then
            write_stats newvm $((t * 100)) "$T/newvm.curve"
        else
            write_stats newvm $((t * 100))
        fi
        t=$((t + 1))
        sleep 0.2
    done
}
writer & track $!
waitfor 5 test -s "$T/newvm.stats" || fail "stats writer"

cat > "$T/bal.conf" <<CONF
# three VMs of a host that can give them 640M
host-budget 640M
servers unix:$T/memd.sock
interval 1
vm loopy qmp=$T/loopy.qmp stats=$T/loopy.stats floor=128M pool=vm-loopy/vda mode=exclusive
vm flat  qmp=$T/flat.qmp  stats=$T/flat.stats  floor=128M pool=vm-flat/vda
vm newvm qmp=$T/newvm.qmp stats=$T/newvm.stats floor=128M pool=vm-new/vda mode=exclusive
CONF

# --- 1. dry run ---------------------------------------------------------------------------
"$BAL" --config "$T/bal.conf" --dry-run --once > "$T/dry.out" 2> "$T/dry.log" ||
    fail "dry run exited $?: $(cat "$T/dry.log")"
cat "$T/dry.out"
expect() { grep -q -- "$2" "$1" || fail "no '$2' in $1: $(cat "$1")"; }
expect "$T/dry.out" "decision 1: guest RAM 768 MiB is above the host budget 640 MiB"
expect "$T/dry.out" "dry run: nothing applied"
expect "$T/dry.out" "vm flat: rate [0-9.]*/s, ram 256M -> 128M (floor 128M, ceil 256M)"
expect "$T/dry.out" "vm loopy: rate [0-9.]*/s, ram 256M -> 256M .*remote 0M -> 48M"
expect "$T/dry.out" "vm newvm: .*ram 256M -> 256M.*kept: no mrc= line (no curve yet)"
expect "$T/dry.out" "total: disk reads [0-9.]*/s -> [0-9.]*/s"
grep -q "balloon\|pool vm-" "$T/dry.out" && fail "the dry run applied something"
[ "$(pool_field vm-loopy/vda min_bytes)" = none ] || fail "the dry run opened a pool"

# --- 2. once, for real ----------------------------------------------------------------------
"$BAL" --config "$T/bal.conf" --once > "$T/once.out" 2> "$T/once.log" ||
    fail "--once exited $?: $(cat "$T/once.log")"
cat "$T/once.out"
expect "$T/once.out" "vm flat: balloon 128M: accepted"
expect "$T/once.out" "vm loopy: pool vm-loopy/vda on unix:$T/memd.sock: min = max = 49152K"
grep -q "vm newvm: balloon\|vm loopy: balloon" "$T/once.out" && fail "balloon for a VM that keeps its RAM"
actual=$($QMP "$T/flat.qmp" query-balloon)
echo "flat after the balloon command: $actual (paused guest: no driver to inflate the balloon)"
[ "$actual" = '{"actual": 268435456}' ] || fail "query-balloon: $actual"
[ "$(pool_field vm-loopy/vda min_bytes)" = 50331648 ] || fail "vm-loopy/vda min_bytes"
[ "$(pool_field vm-loopy/vda max_bytes)" = 50331648 ] || fail "vm-loopy/vda max_bytes"
[ "$(pool_field vm-flat/vda min_bytes)" = none ] || fail "vm-flat/vda opened for no change"

# --- 3. the loop: hold, then a phase change -----------------------------------------------
"$BAL" --config "$T/bal.conf" --verbose > "$T/loop.out" 2> "$T/loop.log" &
BALPID=$!; track $BALPID
waitfor 20 grep -q "^decision 3:" "$T/loop.out" || fail "the loop made no third decision"
sed -n '/^decision 2:/,/^decision 3:/p' "$T/loop.out"
expect "$T/loop.out" "^decision 2: hold: already at the goal"
expect "$T/loop.out" "^decision 3: hold"
[ "$(grep -c "balloon\|: pool vm-" "$T/loop.out")" = 1 ] || fail "commands while holding"
curve 2048 0.0000 > "$T/newvm.curve.new"   # newvm now loops over 8 MiB more
mv "$T/newvm.curve.new" "$T/newvm.curve"
waitfor 20 grep -q "vm newvm: pool vm-new/vda .*min = max = 16384K" "$T/loop.out" ||
    fail "no move after newvm's curve appeared"
grep -B6 "vm newvm: pool vm-new/vda" "$T/loop.out"
expect "$T/loop.out" "^decision [0-9]*: move: the goal saves"
[ "$(pool_field vm-new/vda min_bytes)" = 16777216 ] || fail "vm-new/vda min_bytes"
[ "$(pool_field vm-loopy/vda min_bytes)" = 50331648 ] || fail "vm-loopy/vda changed"
kill -TERM $BALPID
rc=0; wait $BALPID || rc=$?
[ $rc = 0 ] || fail "SIGTERM: exit $rc"

# --- 4. errors ------------------------------------------------------------------------------
refused() { # refused STATUS PATTERN ARGS...: that exit status and PATTERN on stderr
    local want=$1 pat=$2 rc=0; shift 2
    "$BAL" "$@" > /dev/null 2> "$T/err.out" || rc=$?
    [ $rc = "$want" ] || fail "remoca-balancer $*: exit $rc, expected $want: $(cat "$T/err.out")"
    grep -q -- "$pat" "$T/err.out" || fail "remoca-balancer $*: no '$pat' in: $(cat "$T/err.out")"
    echo "refused ($rc): $(head -1 "$T/err.out")"
}
vm1="loopy,stats=$T/loopy.stats,floor=128M"
refused 1 "vm loopy: QMP socket $T/gone.qmp: No such file or directory" \
    --host-budget 1G --once --vm "$vm1,qmp=$T/gone.qmp"
refused 1 "vm flat: stats file $T/gone.stats: No such file or directory" \
    --host-budget 1G --once --vm "flat,qmp=$T/flat.qmp,stats=$T/gone.stats,floor=128M"
refused 1 "DeviceNotActive.*virtio-balloon-pci" \
    --host-budget 1G --once --vm "nob,qmp=$T/noballoon.qmp,stats=$T/loopy.stats,floor=128M"
refused 1 "cannot connect to unix:$T/nomemd.sock" --host-budget 1G --once \
    --servers "unix:$T/nomemd.sock" --vm "$vm1,qmp=$T/loopy.qmp,pool=p"
printf 'host-budget 1G\nvm a qmp=%s stats=%s floor=128M colour=blue\n' "$T/loopy.qmp" \
    "$T/loopy.stats" > "$T/bad1.conf"
refused 2 "bad1.conf:2: vm a: colour: unknown key" --config "$T/bad1.conf"
printf 'host-budget 200M\nvm a qmp=%s stats=%s floor=128M\nvm b qmp=%s stats=%s floor=128M\n' \
    "$T/loopy.qmp" "$T/loopy.stats" "$T/flat.qmp" "$T/flat.stats" > "$T/bad2.conf"
refused 2 "200M is less than the VMs' floors together (256M)" --config "$T/bad2.conf"
refused 2 "bad3.conf: No such file" --config "$T/bad3.conf"
refused 2 "floor=512M is above the guest's -m 256M" --host-budget 1G \
    --vm "loopy,qmp=$T/loopy.qmp,stats=$T/loopy.stats,floor=512M"
refused 2 "floor=SIZE is required" --host-budget 1G --vm "loopy,qmp=$T/loopy.qmp,stats=$T/loopy.stats"
refused 2 "pool=NAME is required with --servers" --host-budget 1G --servers "unix:$T/memd.sock" \
    --vm "$vm1,qmp=$T/loopy.qmp"
refused 2 "'12Q' is not a size" --host-budget 12Q --vm "$vm1,qmp=$T/loopy.qmp"
echo PASS
