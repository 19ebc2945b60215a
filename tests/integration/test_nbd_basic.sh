#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The NBD front end end to end: remoca-memd + nbdkit + nbdkit-remoca-filter over
# the file plugin, on unix sockets in a mktemp dir.  A disk of 1 MiB + 1000
# bytes (not a multiple of 4 KiB).  Checks, with real clients:
#  - parameter errors (exclusive mode, missing servers) are clear and fatal;
#  - qemu-io write/read patterns: aligned, unaligned, over the partial tail;
#  - write-through: the disk file itself holds every write;
#  - a cached block overwritten from another connection is never read stale;
#  - nbdcopy of a random image out of the export, twice (cold then warm):
#    identical checksums, the second copy served from remote memory (filter
#    and memd both count hits), and in again (nbdcopy into the export);
#  - the same with remoca-write=update.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init nbd-basic

start_nbdkit() { # start_nbdkit NAME [params...]
    local name=$1; shift
    rm -f "$T/$name.pid" "$T/$name.sock"
    nbdkit -f -U "$T/$name.sock" -P "$T/$name.pid" --filter="$FILTER" file "$T/disk.img" \
        remoca-servers="unix:$T/memd.sock" remoca-statsfile="$T/$name.stats" "$@" \
        2>>"$T/$name.log" &
    NBDKIT=$!; track "$NBDKIT"
    waitfor 15 test -s "$T/$name.pid" || fail "nbdkit did not start"
}
stop_nbdkit() { kill "$NBDKIT"; wait "$NBDKIT" || true; }
qio() { qemu-io -f raw "nbd+unix:///?socket=$T/$1.sock" "${@:2}"; }

SIZE=$((1048576 + 1000))

# 1. Parameter errors.
head -c $SIZE /dev/zero > "$T/disk.img"
if nbdkit -f -U "$T/x.sock" --filter="$FILTER" file "$T/disk.img" remoca-servers=unix:/nonexistent \
      remoca-mode=exclusive 2>"$T/err.txt"; then fail "exclusive mode accepted"; fi
grep -q "remoca-mode=exclusive is not possible" "$T/err.txt" || fail "no clear exclusive message"
if nbdkit -f -U "$T/x.sock" --filter="$FILTER" file "$T/disk.img" 2>"$T/err.txt"; then
    fail "missing remoca-servers accepted"; fi
grep -q "remoca-servers= is required" "$T/err.txt" || fail "no clear message for missing servers"
if nbdkit -f -U "$T/x.sock" --filter="$FILTER" file "$T/disk.img" remoca-servers=unix:/x \
      remoca-write=sometimes 2>"$T/err.txt"; then fail "bad remoca-write accepted"; fi

start_memd_unix 64M
for mode in invalidate update; do
    echo "--- remoca-write=$mode"
    head -c $SIZE /dev/urandom > "$T/disk.img"
    cp "$T/disk.img" "$T/model.img"
    start_nbdkit nbd remoca-write=$mode

    # 2. qemu-io patterns.
    qio nbd -c 'write -P 0xab 0 64k' -c 'read -P 0xab 0 64k' -c 'read -P 0xab 0 64k' \
        > "$T/qio.txt" || fail "qemu-io aligned"
    qio nbd -c 'write -P 0xcd 1000 5000' -c 'read -P 0xab 0 1000' -c 'read -P 0xcd 1000 5000' \
        -c 'read -P 0xab 6000 59536' -c 'read -P 0xcd 1000 5000' > "$T/qio.txt" || fail "qemu-io unaligned"
    qio nbd -c "write -P 0xef $((1048576 - 500)) 1500" -c "read -P 0xef $((1048576 - 500)) 1500" \
        -c "read -P 0xef $((1048576 - 500)) 1500" > "$T/qio.txt" || fail "qemu-io tail"
    grep -q "Pattern verification failed" "$T/qio.txt" && fail "pattern verification"
    printf '\xab%.0s' $(seq 65536) | dd of="$T/model.img" conv=notrunc status=none
    printf '\xcd%.0s' $(seq 5000) | dd of="$T/model.img" bs=1 seek=1000 conv=notrunc status=none
    printf '\xef%.0s' $(seq 1500) | dd of="$T/model.img" bs=1 seek=$((1048576 - 500)) conv=notrunc status=none
    cmp "$T/disk.img" "$T/model.img" || fail "write-through: disk file differs from the model"

    # 3. Cached block rewritten by another connection: never stale.
    qio nbd -c 'read -P 0xab 8k 4k' -c 'read -P 0xab 8k 4k' >/dev/null || fail "warm 8k"
    qio nbd -c 'write -P 0x11 8k 4k' >/dev/null || fail "rewrite 8k"
    qio nbd -c 'read -P 0x11 8k 4k' > "$T/qio.txt" || fail "stale read after rewrite"
    qio nbd -c 'write -z 12k 4k' -c 'read -P 0 12k 4k' > "$T/qio.txt" || fail "zero"
    qio nbd -c 'read -P 0 12k 4k' > "$T/qio.txt" || fail "stale read after zero"
    grep -q "Pattern verification failed" "$T/qio.txt" && fail "pattern verification"

    # 4. nbdcopy out twice: cold then warm, both identical to the disk.
    sleep 1.2
    h0=$(stat_of "$T/nbd.stats" remote_hits)
    nbdcopy "nbd+unix:///?socket=$T/nbd.sock" "$T/out1.img"
    nbdcopy "nbd+unix:///?socket=$T/nbd.sock" "$T/out2.img"
    cmp "$T/disk.img" "$T/out1.img" || fail "nbdcopy out (cold) differs"
    cmp "$T/disk.img" "$T/out2.img" || fail "nbdcopy out (warm) differs"
    sleep 1.2
    h1=$(stat_of "$T/nbd.stats" remote_hits)
    [ $((h1 - h0)) -ge 200 ] || fail "warm copy not served remotely: hits $h0 -> $h1"
    # 5. nbdcopy a new random image in, then out through a fresh connection.
    head -c $SIZE /dev/urandom > "$T/new.img"
    nbdcopy "$T/new.img" "nbd+unix:///?socket=$T/nbd.sock"
    nbdcopy "nbd+unix:///?socket=$T/nbd.sock" "$T/out3.img"
    cmp "$T/new.img" "$T/out3.img" || fail "nbdcopy in/out differs"
    cmp "$T/new.img" "$T/disk.img" || fail "nbdcopy in: disk file differs"
    [ "$(md5sum < "$T/new.img")" = "$(md5sum < "$T/out3.img")" ] || fail "checksums"
    stop_nbdkit
    st="$T/nbd.stats"
    echo "filter: $(tr '\n' ' ' < "$st")"
    [ "$(stat_of "$st" errors)" = 0 ] || fail "filter errors"
    [ "$(stat_of "$st" disk_size)" = $SIZE ] || fail "disk size"
    [ "$(stat_of "$st" client_servers_up)" = 1 ] || fail "server not up at exit"
done
"$REMOCA_BUILD/remoca" stats --server "unix:$T/memd.sock" > "$T/memd.stats" 2>/dev/null || true
echo "memd: $(head -1 "$T/memd.stats")"
if [ -s "$T/memd.stats" ]; then
    hits=$(sed -n 's/^server .* hits=\([0-9]*\) .*/\1/p' "$T/memd.stats")
    [ "${hits:-0}" -ge 400 ] || fail "memd counted only ${hits:-0} hits"
fi
echo PASS
