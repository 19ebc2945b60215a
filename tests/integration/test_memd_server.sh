#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# remoca-memd as an operator meets it: the command line (--help, bad flags
# exit 2), `remoca stats` in text and JSON showing exactly the operations a
# client made, the memory budget (RSS after filling twice the budget stays
# within budget + the overhead documented in docs/protocol.md), evictions and
# ghost hits, and a clean exit 0 on SIGTERM.
set -eu
. "$(dirname "$0")/lib.sh"
itest_init memd-server
KILL_SIGNAL=KILL
B=$REMOCA_BUILD
M="$B/remoca-memd"

# --- command line -------------------------------------------------------------
"$M" --help >"$T/help" || fail "--help exit status"
for f in --memory --listen --unix --port-file --pid-file --threads --max-conns --max-pools \
         --max-buffers --policy --log-level --secret --secret-file; do
    grep -q -- "$f" "$T/help" || fail "--help does not document $f"
done
expect_2() { # ARGS...: must exit 2 with a message
    rc=0; "$M" "$@" >/dev/null 2>"$T/err" || rc=$?
    [ "$rc" = 2 ] || fail "remoca-memd $* exited $rc, expected 2"
    [ -s "$T/err" ] || fail "remoca-memd $* printed no error"
}
expect_2 --listen 127.0.0.1:0                      # no --memory
expect_2 --memory lots
expect_2 --memory 12Q
expect_2 --memory 100                              # below 1M
expect_2 --memory 64M --threads 0
expect_2 --memory 64M --bogus
expect_2 --memory 64M --policy mru
expect_2 --memory 64M --log-level loud
expect_2 --memory 64M --max-buffers 1M
expect_2 --memory 64M stray-argument
grep -q "unexpected argument 'stray-argument'" "$T/err" || fail "stray argument message"
# A bad --listen is refused with its reason when binding (exit 1), never bound
# to some other port ("127.0.0.1:" and ":65536" used to take a free port).
expect_listen_error() { # SPEC REASON
    rc=0; timeout 5 "$M" --memory 1M --threads 1 --listen "$1" >/dev/null 2>"$T/err" || rc=$?
    [ "$rc" = 1 ] || fail "remoca-memd --listen $1 exited $rc, expected 1"
    grep -qF -- "--listen $1: $2" "$T/err" || fail "--listen $1: no '$2' in: $(cat "$T/err")"
}
expect_listen_error bad "expected host:port"
expect_listen_error 127.0.0.1: "missing port"
expect_listen_error 127.0.0.1:65536 "port out of range"
expect_listen_error ::1:0 "bad character ':' in host name (IPv6 needs [brackets])"
expect_listen_error "unix:$T/sock" "TCP only"

# --- a server --------------------------------------------------------------------
BUDGET_MB=64
"$M" --listen 127.0.0.1:0 --port-file "$T/port" --pid-file "$T/pid" --memory ${BUDGET_MB}M \
    --threads 2 --policy s3fifo 2>"$T/memd.log" &
PID=$!; track "$PID"
wait_file "$T/port" 10 || fail "server did not start"
[ "$(cat "$T/pid")" = "$PID" ] || fail "--pid-file holds $(cat "$T/pid"), not $PID"
ADDR=127.0.0.1:$(cat "$T/port")

# --- stats: exactly the counts one client caused ------------------------------
"$B/tests/memd_client" "$ADDR" ops || fail "ops client"
"$B/remoca" stats --server "$ADDR" >"$T/stats.txt" || fail "remoca stats"
pool=$(grep '^pool name=stats/p ' "$T/stats.txt") || fail "no stats/p line: $(cat "$T/stats.txt")"
for kv in pages=5 bytes=20480 gets=17 hits=12 misses=5 puts=10 takes=2 deletes=3 evictions=0 \
          connections=0 weight=1; do
    case " $pool " in *" $kv "*) ;; *) fail "stats/p line lacks $kv: $pool" ;; esac
done
server=$(grep '^server ' "$T/stats.txt")
case " $server " in *" errors=1 "*) ;; *) fail "server line should count 1 error: $server" ;; esac
case " $server " in *" budget_bytes=67108864 "*) ;; *) fail "budget not shown: $server" ;; esac

"$B/remoca" stats --server "$ADDR" --json >"$T/stats.json" || fail "remoca stats --json"
python3 -m json.tool "$T/stats.json" >/dev/null || fail "invalid JSON: $(cat "$T/stats.json")"
python3 - "$T/stats.json" <<'PY' || fail "JSON counts"
import json, sys
d = json.load(open(sys.argv[1]))
p = [p for p in d["pools"] if p["name"] == "stats/p"][0]
want = dict(pages=5, gets=17, hits=12, misses=5, ghost_hits=0, puts=10, takes=2, deletes=3)
bad = {k: (p[k], v) for k, v in want.items() if p[k] != v}
assert not bad, bad
assert d["server"]["errors"] == 1 and d["server"]["connections"] == 1, d["server"]
PY

# --- the budget: fill twice over; RSS stays within budget + documented overhead -
"$B/tests/memd_client" "$ADDR" fill $((BUDGET_MB * 2)) || fail "fill"
"$B/tests/memd_client" "$ADDR" fill $((BUDGET_MB * 2)) || fail "fill again"
rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
# docs/protocol.md: budget + budget/64 (metadata) + 16 MiB (process, threads'
# buffers, the largest frames in flight).
limit_kb=$(( (BUDGET_MB * 1024) + (BUDGET_MB * 1024 / 64) + 16 * 1024 ))
echo "RSS ${rss_kb} KiB after filling ${BUDGET_MB} MiB twice over (limit ${limit_kb} KiB)"
# (A sanitizer build's server also holds shadow memory and freed blocks in
# quarantine: its RSS says nothing about the budget.)
[ -n "${REMOCA_SANITIZE:-}" ] || [ "$rss_kb" -le "$limit_kb" ] || fail "RSS ${rss_kb} KiB exceeds ${limit_kb} KiB"
[ "$rss_kb" -ge $((BUDGET_MB * 1024 * 9 / 10)) ] || fail "RSS ${rss_kb} KiB: the budget was not used?"
"$B/remoca" stats --server "$ADDR" --json >"$T/stats.json"
python3 - "$T/stats.json" $((BUDGET_MB * 256)) <<'PY' || fail "fill counts"
import json, sys
d = json.load(open(sys.argv[1])); total = int(sys.argv[2])
s = d["server"]; p = [p for p in d["pools"] if p["name"] == "fill"][0]
assert s["pages_total"] == total and s["pages"] <= total, s
assert p["pages"] > total * 0.9, p                       # the filler got nearly everything
assert p["evictions"] >= 3 * total - total, p            # 4x budget put, budget kept
assert p["ghost_hits"] > 0, p                            # old keys asked for again
print("fill: pages=%d evictions=%d misses=%d ghost_hits=%d" %
      (p["pages"], p["evictions"], p["misses"], p["ghost_hits"]))
PY

# --- concurrency: 8 connections on the same keys under eviction, whole pages --------
for pol in s3fifo 2q clock lru; do
    rm -f "$T/small.sock"
    "$M" --unix "$T/small.sock" --memory 8M --threads 2 --policy $pol 2>"$T/small.log" &
    SMALL=$!; track "$SMALL"
    waitfor 5 test -S "$T/small.sock" || fail "small server ($pol) did not start"
    "$B/tests/memd_client" "unix:$T/small.sock" stress 8 || { kill "$SMALL"; fail "stress ($pol)"; }
    "$B/remoca" stats --server "unix:$T/small.sock" >"$T/small.stats"
    kill -TERM "$SMALL"; wait "$SMALL" || fail "small server exit status ($pol)"
    grep -q "^pool name=stress/pool .* evictions=[1-9]" "$T/small.stats" || fail "stress: no evictions ($pol)"
done

# --- unreachable server: clear error, exit 1 -------------------------------------
rc=0; "$B/remoca" stats --server 127.0.0.1:1 2>"$T/err" || rc=$?
[ "$rc" = 1 ] && grep -q "cannot connect" "$T/err" || fail "stats of a dead server: rc=$rc $(cat "$T/err")"

# --- SIGTERM: exit 0, pid file removed -------------------------------------------
kill -TERM "$PID"
for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PID" 2>/dev/null && fail "no exit within 10 s of SIGTERM"
rc=0; wait "$PID" || rc=$?
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
[ -e "$T/pid" ] && fail "pid file left behind"
grep -q "remoca-memd stopped" "$T/memd.log" || fail "no shutdown line in the log"
echo "PASS: command line, stats text+JSON, budget, SIGTERM"
