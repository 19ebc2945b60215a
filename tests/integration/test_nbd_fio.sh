#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# fio's nbd engine against remoca-memd + nbdkit + the filter (file plugin),
# with verification: random writes of 512 B..64 KiB (so many are unaligned),
# read back and checked (crc32c), then a second, verify-only pass that must
# be served largely from remote memory and still verify.  Both write policies.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init nbd-fio
cd "$T" # fio writes its verify state files into the working directory

start_memd_unix 64M

for mode in invalidate update; do
    head -c $((8 * 1048576 + 1000)) /dev/urandom > "$T/disk.img"
    rm -f "$T/nbd.pid" "$T/nbd.sock"
    nbdkit -f -U "$T/nbd.sock" -P "$T/nbd.pid" --filter="$FILTER" file "$T/disk.img" \
        remoca-servers="unix:$T/memd.sock" remoca-statsfile="$T/nbd.stats" remoca-write=$mode \
        2>>"$T/nbd.log" &
    NBDKIT=$!; track "$NBDKIT"
    waitfor 15 test -s "$T/nbd.pid" || fail "nbdkit did not start"
    common=(--name=verify --ioengine=nbd --uri="nbd+unix:///?socket=$T/nbd.sock" --rw=randwrite
            --bsrange=512-64k --size=8m --verify=crc32c --iodepth=4 --randseed=42)
    fio "${common[@]}" --do_verify=1 > "$T/fio1.out" 2>&1 || { cat "$T/fio1.out"; fail "$mode: fio write+verify"; }
    grep -q "err= 0" "$T/fio1.out" || fail "$mode: fio reported errors"
    fio "${common[@]}" --verify_only=1 > "$T/fio2.out" 2>&1 || { cat "$T/fio2.out"; fail "$mode: fio verify-only"; }
    grep -q "err= 0" "$T/fio2.out" || fail "$mode: fio verify-only reported errors"
    kill "$NBDKIT"; wait "$NBDKIT" || true
    echo "$mode: $(tr '\n' ' ' < "$T/nbd.stats")"
    [ "$(stat_of "$T/nbd.stats" errors)" = 0 ] || fail "$mode: filter errors"
    [ "$(stat_of "$T/nbd.stats" remote_hits)" -gt 1000 ] || fail "$mode: verify pass not served remotely"
done
echo PASS
