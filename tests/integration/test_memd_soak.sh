#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Soak (label "soak", about 3 minutes; run alone with `ctest -L soak`):
# remoca-memd under mixed load for SOAK_SECS (default 150 s) -- two clients
# that check their bytes and open and close connections in a loop (TCP and
# unix), remoca-loadgen runs of PUTs and GETs in bursts, and an abusive client
# (bad magic, random bytes, stalled handshakes, half frames held past the
# timeouts) -- with the server restarted once in the middle (SIGTERM, then a
# new one on the same port and socket).  Each server's RSS and open fds are
# sampled every 5 s: after a warm-up (the store filled, 20 s of load), RSS
# must stay within 4 MiB of its first sample and the fds within the clients'
# connections; once the clients are gone, the fds are back to the idle
# server's.  Prints the samples and the figures.
set -eu
. "$(dirname "$0")/lib.sh"
itest_init memd-soak
KILL_SIGNAL=KILL
B=$REMOCA_BUILD
H="$B/tests/harden_client"
SECS=${SOAK_SECS:-150}
WARMUP=20       # seconds after a server's start before its samples count
RSS_SLACK=4096  # kB an instance's RSS may grow after its warm-up
# A sanitizer's quarantine and shadow memory grow RSS by design: there the RSS
# figures are printed, not checked (the fds are).
[ -n "${REMOCA_SANITIZE:-}${REMOCA_MEMD:-}" ] && RSS_SLACK=$((1 << 30))
PORT=$("$B/remoca-loadgen" --free-port)
TCP=127.0.0.1:$PORT
UNIX=unix:$T/memd.sock

start_memd() { # sets PID, STARTED
    rm -f "$T/memd.sock"
    "$MEMD_BIN" --listen "$TCP" --unix "$T/memd.sock" --memory 32M --threads 2 \
        --handshake-timeout 2 --frame-timeout 2 --max-conns-per-addr 64 --max-buffers 8M \
        2>>"$T/memd.log" &
    PID=$!; track "$PID"
    STARTED=$SECONDS
    waitfor 10 test -S "$T/memd.sock" || fail "remoca-memd did not start"
    waitfor 10 "$B/remoca" stats --server "$TCP" >/dev/null 2>&1 || fail "no TCP listener"
}
nfds() { ls "/proc/$PID/fd" 2>/dev/null | wc -l; }
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$PID/status"; }
# The store filled beyond its budget, so that its pages are all in RSS.
fill() { "$B/tests/memd_client" "$TCP" fill 48 >/dev/null || fail "fill"; }

start_memd
BASE_FDS=$(nfds)
fill
T0=$SECONDS
"$H" "$TCP" good "$SECS" 1 >"$T/good1.out" 2>&1 & G1=$!; track "$G1"
"$H" "$UNIX" good "$SECS" 2 >"$T/good2.out" 2>&1 & G2=$!; track "$G2"
"$H" "$TCP" abuse "$SECS" >"$T/abuse.out" 2>&1 & AB=$!; track "$AB"
( ok=0 bad=0 rc=0 end=$((SECONDS + SECS))
  while [ $SECONDS -lt $end ]; do
      for op in put get; do
          rc=0 # 3: misses (evicted keys) or errors, counted apart
          timeout 20 "$B/remoca-loadgen" --proto remoca --server "$TCP" --op $op --conns 2 \
              --depth 2 --ops 20000 --keys 30000 --pool soak/lg >/dev/null 2>&1 || rc=$?
          case $rc in 0|3) ok=$((ok + 1)) ;; *) bad=$((bad + 1)) ;; esac
          sleep 0.5
      done
  done
  echo "loadgen: $ok runs completed, $bad cut short (the restart)" ) >"$T/loadgen.out" 2>&1 &
LG=$!; track "$LG"

echo "# t(s) instance rss_kB fds" >"$T/samples"
inst=1 restarted=0
while [ $((SECONDS - T0)) -lt "$SECS" ]; do
    sleep 5
    t=$((SECONDS - T0))
    if [ $restarted = 0 ] && [ $t -ge $((SECS / 2)) ]; then
        kill -TERM "$PID"; rc=0; wait "$PID" || rc=$?
        [ "$rc" = 0 ] || fail "server 1: exit status $rc after SIGTERM under load"
        start_memd
        fill
        inst=2 restarted=1
        echo "restart at ${t}s" >>"$T/samples"
        continue
    fi
    kill -0 "$PID" 2>/dev/null || fail "server $inst died"
    [ $((SECONDS - STARTED)) -ge $WARMUP ] || continue
    echo "$t $inst $(rss) $(nfds)" >>"$T/samples"
done
for p in $G1 $G2 $AB $LG; do wait "$p" || fail "a soak client failed: $(cat "$T"/*.out)"; done
cat "$T"/good1.out "$T"/good2.out "$T"/abuse.out "$T"/loadgen.out
cat "$T/samples"

# Once the clients are gone (stalled ones closed by the timeouts), the fds
# are the idle server's again.
waitfor 10 test "$(nfds)" -eq "$BASE_FDS" || fail "server 2: $(nfds) fds open after the clients left, $BASE_FDS when idle"
for i in 1 2; do
    awk -v i=$i -v slack=$RSS_SLACK '
        $2 == i { n++; if (n == 1) first = $3; if ($3 > max) max = $3; if ($4 > fmax) fmax = $4 }
        END {
            if (n < 3) { printf "server %d: only %d samples\n", i, n; exit 1 }
            printf "server %d: %d samples, RSS first %d kB, max %d kB (+%d kB), fds max %d\n",
                   i, n, first, max, max - first, fmax
            if (max - first > slack) { printf "server %d: RSS grew by %d kB\n", i, max - first; exit 1 }
            if (fmax > 120) { printf "server %d: %d fds open\n", i, fmax; exit 1 }
        }' "$T/samples" || fail "server $i not flat"
done
line=$("$B/remoca" stats --server "$TCP" | sed -n 's/^server //p' | tr ' ' '\n')
for k in handshake_timeouts frame_timeouts connections_total errors; do
    echo "server 2: $k=$(echo "$line" | sed -n "s/^$k=//p")"
done
[ "$(echo "$line" | sed -n 's/^handshake_timeouts=//p')" -gt 0 ] || fail "no handshake timeout counted"
[ "$(echo "$line" | sed -n 's/^frame_timeouts=//p')" -gt 0 ] || fail "no frame timeout counted"
kill -TERM "$PID"; rc=0; wait "$PID" || rc=$?
[ "$rc" = 0 ] || fail "server 2: exit status $rc after SIGTERM"
echo "PASS: ${SECS} s soak with a restart: RSS and fds flat, fds back to $BASE_FDS when idle"
