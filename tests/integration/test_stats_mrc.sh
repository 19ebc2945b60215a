#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The miss-ratio curve end to end: remoca-memd + nbdkit with the filter
# (remoca-statsfile=FILE) over the file plugin, read twice by nbdcopy, then
# `remoca stats --mrc FILE` in text, --json and --table:
#
#   nbdcopy ×2 ─▶ remoca filter ─▶ file plugin (8 MiB + 1000 bytes: 2049 blocks)
#                    │    └─▶ stats file: mrc_* counters, mrc=SIZE:RATIO,...
#                    └─▶ remoca-memd            │
#                                               ▼
#                              remoca stats --mrc FILE [--json | --table]
#
# One connection, one request at a time: the reads are a loop over the disk,
# twice, so an LRU cache smaller than the disk misses everything (ratio 1)
# and one of the disk's 2049 blocks only the first pass (0.5), whatever the
# remote tier served.  Also: the stats file's other keys are still there, and
# the command's errors (no file, no curve, a bad curve, bad option combos).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init stats-mrc
R=$REMOCA_BUILD/remoca

SIZE=$((8 * 1048576 + 1000))
BLOCKS=2049
head -c $SIZE /dev/urandom > "$T/disk.img"
start_memd_unix 64M
start_nbdkit_unix file "$T/disk.img" remoca-servers="unix:$T/memd.sock" \
    remoca-statsfile="$T/nbd.stats"
URI="nbd+unix:///?socket=$T/nbd.sock"
for pass in 1 2; do
    nbdcopy --connections=1 --requests=1 "$URI" "$T/out.img"
    cmp "$T/disk.img" "$T/out.img" || fail "pass $pass: copy differs"
done
stop_pid "$NBDKIT" # final stats written at exit
ST=$T/nbd.stats

# The stats file: new keys, old keys unchanged.
for k in mrc_refs mrc_sampled mrc_rate mrc_samples mrc_bytes mrc reads remote_hits fills \
    client_requests ring_puts; do
    grep -q "^$k=" "$ST" || fail "stats file has no $k= line"
done
refs=$(stat_of "$ST" mrc_refs)
echo "stats file: $(grep '^mrc_' "$ST" | tr '\n' ' ')remote_hits=$(stat_of "$ST" remote_hits)"
[ "$refs" -ge $((2 * BLOCKS)) ] || fail "mrc_refs=$refs, expected at least $((2 * BLOCKS))"

# Text.
"$R" stats --mrc "$ST" > "$T/text.out" || fail "remoca stats --mrc failed"
head -4 "$T/text.out"
grep -q "cache MiB" "$T/text.out" || fail "text: no table header"
[ "$(grep -cE '^ +[0-9.]+ +[0-9]+ +[0-9.]+ +[0-9]+$' "$T/text.out")" = 64 ] ||
    fail "text: expected 64 rows: $(cat "$T/text.out")"

# JSON: counters and the curve, checked with python3.
"$R" stats --mrc "$ST" --json > "$T/mrc.json" || fail "remoca stats --mrc --json failed"
python3 - "$T/mrc.json" "$refs" "$BLOCKS" <<'EOF' || fail "json: $(head -c 600 "$T/mrc.json")"
import json, sys
j = json.load(open(sys.argv[1]))
refs, blocks = int(sys.argv[2]), int(sys.argv[3])
c = j["curve"]
assert j["refs"] == refs and j["sampled"] > 0 and 0 < j["rate"] <= 1, j
assert j["samples"] > 0 and j["bytes"] > 0, j
assert len(c) == 64, len(c)
r = [p["miss_ratio"] for p in c]
assert all(0 <= x <= 1 for x in r), r
assert all(a >= b for a, b in zip(r, r[1:])), "ratios increase: %s" % r
assert all(a["blocks"] < b["blocks"] for a, b in zip(c, c[1:]))
assert all(abs(p["mib"] - p["blocks"] / 256) < 1e-4 for p in c)
assert c[-1]["blocks"] == blocks, c[-1]
# a loop over the disk, twice: ~1 below its size, ~0.5 at it
assert r[0] > 0.95 and r[-2] > 0.9, r
assert abs(r[-1] - 0.5) < 0.05, r[-1]
print("json: refs=%d points=%d ratio %.4f at %d blocks, %.4f at %d" %
      (j["refs"], len(c), r[0], c[0]["blocks"], r[-1], c[-1]["blocks"]))
EOF

# Table: "# mib miss_ratio", then the same points in two columns.
"$R" stats --mrc "$ST" --table > "$T/mrc.dat" || fail "remoca stats --mrc --table failed"
[ "$(head -1 "$T/mrc.dat")" = "# mib miss_ratio" ] || fail "table header: $(head -1 "$T/mrc.dat")"
python3 - "$T/mrc.dat" "$T/mrc.json" <<'EOF' || fail "table: $(head -5 "$T/mrc.dat")"
import json, sys
rows = [l.split() for l in open(sys.argv[1]) if not l.startswith("#")]
c = json.load(open(sys.argv[2]))["curve"]
assert len(rows) == len(c) and all(len(r) == 2 for r in rows), rows
for r, p in zip(rows, c):
    assert abs(float(r[0]) - p["mib"]) < 1e-3 and abs(float(r[1]) - p["miss_ratio"]) < 1e-9, (r, p)
EOF
if command -v gnuplot >/dev/null; then
    gnuplot -e "set terminal dumb; plot '$T/mrc.dat' using 1:2 with lines" > "$T/plot.txt" 2>&1 ||
        fail "gnuplot could not plot the table: $(cat "$T/plot.txt")"
fi

# Errors: exit 1 for files, 2 for usage, and a message that says why.
expect_err() { # expect_err STATUS PATTERN ARGS...: remoca stats ARGS fails so
    local want=$1 pat=$2 rc=0; shift 2
    "$R" stats "$@" > "$T/err.out" 2>&1 || rc=$?
    [ $rc = "$want" ] || fail "remoca stats $*: exit $rc, expected $want: $(cat "$T/err.out")"
    grep -q -- "$pat" "$T/err.out" || fail "remoca stats $*: no '$pat' in: $(cat "$T/err.out")"
}
grep -v '^mrc' "$ST" > "$T/nocurve.stats"
expect_err 1 "has no miss-ratio curve" --mrc "$T/nocurve.stats"
head -1 "$T/err.out"
expect_err 1 "No such file" --mrc "$T/missing.stats"
{ cat "$T/nocurve.stats"; echo "mrc=32:0.9,16:0.5"; } > "$T/bad.stats"
expect_err 1 "malformed mrc= line" --mrc "$T/bad.stats"
expect_err 2 "--table needs --mrc" --table
expect_err 2 "exclude each other" --mrc "$ST" --json --table
expect_err 2 "exclude each other" --mrc "$ST" --server "unix:$T/memd.sock"
expect_err 2 "unexpected argument" --mrc "$ST" extra
"$R" stats --help | grep -q -- "--mrc STATSFILE" || fail "--help does not mention --mrc"
echo PASS
