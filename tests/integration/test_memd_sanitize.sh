#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# In a sanitizer build (make check-asan: AddressSanitizer+UBSan; make
# check-tsan: ThreadSanitizer), the build's remoca-memd under the
# 8-connection stress, the bad-input barrage, buffer hogs and idle
# connections, and the fill ring (ring_client ring and badhead); then
# SIGTERM.  Then again with --shm (the store in memfds): SHM_MAP and
# one-sided reads (shm_client map), the fill ring and the stress.  Any
# sanitizer report, or an exit status other than 0, fails the test (with
# ASan, leaks are checked at the server's exit).  Skipped in a plain build.
set -eu
. "$(dirname "$0")/lib.sh"
[ -n "${REMOCA_SANITIZE:-}" ] || { echo "skip: not a sanitizer build (make check-asan, check-tsan)"; exit 77; }
itest_init memd-sanitize
KILL_SIGNAL=KILL
B=$REMOCA_BUILD
fail() { echo "FAIL: $*"; echo "--- server log (head)"; head -60 "$T/memd.log" 2>/dev/null || true; exit 1; }
C="$B/tests/memd_client"
M="$B/remoca-memd"
case $REMOCA_SANITIZE in *thread*) san=tsan ;; *) san=asan ;; esac
# This test reads the server's reports from its log, not from the build's
# report files, and checks its leaks.
unset ASAN_OPTIONS TSAN_OPTIONS UBSAN_OPTIONS
{
    for mode in plain shm; do
        rm -f "$T/s.sock"
        shm=(); [ "$mode" = shm ] && shm=(--shm)
        TSAN_OPTIONS="halt_on_error=1 exitcode=66" ASAN_OPTIONS="detect_leaks=1 exitcode=66" \
            setarch "$(uname -m)" -R "$M" --unix "$T/s.sock" --memory 8M --threads 2 --max-buffers 4M --log-level warn \
            "${shm[@]}" 2>"$T/memd.log" &
        PID=$!; track "$PID"
        waitfor 10 test -S "$T/s.sock" || fail "$san server did not start"
        A="unix:$T/s.sock"
        "$B/tests/ring_client" "$A" ring >/dev/null || fail "$san $mode: ring_client ring"
        "$B/tests/ring_client" "$A" badhead >/dev/null || fail "$san $mode: ring_client badhead"
        if [ "$mode" = shm ]; then
            "$B/tests/shm_client" "$A" map >/dev/null || fail "$san --shm: shm_client map"
            "$C" "$A" stress 4 || fail "$san --shm: stress"
        else
            "$C" "$A" stress 8 || fail "$san: stress"
            "$C" "$A" badinput >/dev/null || fail "$san: bad input"
            "$C" "$A" hog 8 >/dev/null || fail "$san: hogs"
            "$C" "$A" idle 200 >/dev/null || fail "$san: idle connections"
        fi
        kill -TERM "$PID"
        rc=0; wait "$PID" || rc=$?
        [ "$rc" = 0 ] || fail "$san $mode: exit status $rc"
        if grep -qE "ThreadSanitizer|AddressSanitizer|LeakSanitizer|runtime error" "$T/memd.log"; then
            fail "$san $mode: sanitizer report"
        fi
    done
    echo "$san: clean"
}
echo "PASS: remoca-memd under $san clean"
