#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# remoca-memd --secret-file: HMAC-SHA256 challenge-response in HELLO.  A client
# that knows the secret gets in (and its bytes round-trip); wrong answers,
# replayed answers and clients without the secret do not; three failures close
# the connection; `remoca stats --secret-file` authenticates too.
set -eu
. "$(dirname "$0")/lib.sh"
itest_init memd-auth
KILL_SIGNAL=KILL
B=$REMOCA_BUILD

echo "s3cret-$$" >"$T/secret"
"$B/remoca-memd" --unix "$T/memd.sock" --memory 8M --threads 1 --secret-file "$T/secret" \
    --pid-file "$T/pid" 2>"$T/memd.log" &
PID=$!; track "$PID"
wait_file "$T/pid" 10 && waitfor 5 test -S "$T/memd.sock"
[ -S "$T/memd.sock" ] || fail "server did not start"
A="unix:$T/memd.sock"

"$B/tests/memd_client" "$A" auth "s3cret-$$" || fail "challenge-response"
if "$B/tests/memd_client" "$A" check 2>"$T/err"; then fail "a client without the secret got in"; fi
grep -q "not authorised" "$T/err" || fail "no E_AUTH for a client without the secret: $(cat "$T/err")"
grep -q "authentication failed 3 times: connection closed" "$T/memd.log" || fail "not logged"

"$B/remoca" stats --server "$A" --secret-file "$T/secret" >"$T/stats" || fail "stats with the secret"
grep -q "^pool name=auth/pool pages=1 " "$T/stats" || fail "stats: $(cat "$T/stats")"
echo wrong >"$T/wrong"
rc=0; "$B/remoca" stats --server "$A" --secret-file "$T/wrong" 2>"$T/err" || rc=$?
[ "$rc" = 1 ] || fail "stats with a wrong secret exited $rc"
rc=0; "$B/remoca" stats --server "$A" 2>"$T/err" || rc=$?
[ "$rc" = 1 ] && grep -q "needs a secret" "$T/err" || fail "stats without a secret: $rc $(cat "$T/err")"

kill -TERM "$PID"
rc=0; for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
wait "$PID" || rc=$?
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
echo "PASS: authentication"
