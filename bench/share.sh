# SPDX-License-Identifier: BSD-3-Clause
# bench/share.sh [--quick]: three pools sharing one remoca-memd, an equal
# static split against memd's utility-based sharing (issue 12), on a real
# server over TCP, measured in the same run on the same trace.
#
#   pool        working set                               why
#   share/loop  keys 0..LOOP-1 over and over              fits only in more than a third
#   share/zipf  Zipf(0.9) over ZIPF_KEYS keys             every page helps a little
#   share/scan  keys never seen before                    no page helps
#
# The server runs twice with --memory PAGES * 4 KiB: once with each pool at
# min = max = PAGES / 3 (static), once with min = PAGES / 30, max = the budget
# (shared: memd moves memory by marginal utility, memd/store.h).  A client
# (Python, speaking docs/protocol.md: loadgen cannot produce these key
# patterns) replays the same interleaved trace on each (deterministic seed):
# GET each key, PUT it on a miss, as a cache does, in batches of BATCH
# accesses (the GETs of a batch pipelined, then the PUTs of its misses; a key
# twice in one batch misses twice, which only the Zipf head could, and it is
# always cached).  Misses are counted by the client; every hit's page is
# checked for its key stamp.  Output:
#   RESULT name=share policy=static|shared misses=N hit_ratio=X per_pool_misses=a/b/c
#   RESULT name=share summary miss_reduction=R static_misses=N shared_misses=N
# and, on stderr, the server's pool lines (remoca stats) after each run.
# Environment knobs: PAGES (3000), ACCESSES (600000; 200000 with --quick),
# LOOP (PAGES * 14 / 30), ZIPF_KEYS (20000), BATCH (64), SEED.
set -eu
. "$REMOCA_SRC/bench/lib.sh"

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
MEMD="$REMOCA_BUILD/remoca-memd"
REMOCA="$REMOCA_BUILD/remoca"
PAGES=${PAGES:-3000}
if [ $QUICK = 1 ]; then ACCESSES=${ACCESSES:-200000}; else ACCESSES=${ACCESSES:-600000}; fi
LOOP=${LOOP:-$((PAGES * 14 / 30))}
ZIPF_KEYS=${ZIPF_KEYS:-20000}
BATCH=${BATCH:-64}
SEED=${SEED:-12}

[ -x "$MEMD" ] || { echo "share bench: $MEMD missing (build first)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "share bench: python3 missing" >&2; exit 1; }
bench_init

cat >"$T/drive.py" <<'PY'
# drive.py HOST PORT POLICY MIN MAX ACCESSES LOOP ZIPF_KEYS BATCH SEED
import bisect, random, socket, struct, sys

host, port, policy = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pmin, pmax, accesses, loop, zkeys, batch, seed = map(int, sys.argv[4:])
REQ, RESP, PAGE = 0x51434D52, 0x50434D52, 4096
HELLO, POOL_OPEN, GET, PUT = 1, 2, 3, 5
HDR = struct.Struct("<IBBHIIQII")  # magic version op flags id pool key count len

sock = socket.create_connection((host, port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rf = sock.makefile("rb")

def frame(op, rid, pool=0, key=0, count=0, body=b""):
    return HDR.pack(REQ, 1, op, 0, rid, pool, key, count, len(body)) + body

def reply():
    h = rf.read(HDR.size)
    if len(h) != HDR.size:
        sys.exit("share bench: connection closed")
    magic, _, op, status, rid, pool, key, count, n = HDR.unpack(h)
    body = rf.read(n)
    if magic != RESP or status != 0:
        sys.exit("share bench: op %d key %d: status %d %r" % (op, key, status, body[:100]))
    return rid, pool, body

def call(op, pool=0, key=0, count=0, body=b""):
    sock.sendall(frame(op, 0, pool, key, count, body))
    return reply()

name = b"share-bench"
call(HELLO, body=struct.pack("<H", len(name)) + name + struct.pack("<H", 0))
names = [b"share/loop", b"share/zipf", b"share/scan"]
handles = []
for n in names:
    body = struct.pack("<QQIH", pmin * PAGE, pmax * PAGE, 1, len(n)) + n
    handles.append(call(POOL_OPEN, body=body)[1])

rng = random.Random(seed)
cdf, acc = [], 0.0
weights = [1.0 / (i + 1) ** 0.9 for i in range(zkeys)]
total = sum(weights)
for w in weights:
    acc += w / total
    cdf.append(acc)
loop_pos = scan_pos = 0
gets, misses = [0, 0, 0], [0, 0, 0]
pad = bytes(PAGE - 8)
done = 0
while done < accesses:
    n = min(batch, accesses - done)
    trace = []
    for _ in range(n):
        k = rng.randrange(3)
        if k == 0:
            key = loop_pos % loop
            loop_pos += 1
        elif k == 1:
            key = min(bisect.bisect_left(cdf, rng.random()), zkeys - 1)
        else:
            key = 1000000 + scan_pos
            scan_pos += 1
        trace.append((k, key))
    sock.sendall(b"".join(frame(GET, i, handles[k], key, 1) for i, (k, key) in enumerate(trace)))
    put = []
    for i, (k, key) in enumerate(trace):
        rid, _, body = reply()
        assert rid == i
        gets[k] += 1
        if body[0] & 1:
            if struct.unpack_from("<Q", body, 8)[0] != key:
                sys.exit("share bench: pool %d key %d: wrong page" % (k, key))
        else:
            misses[k] += 1
            put.append(frame(PUT, i, handles[k], key, 1, struct.pack("<Q", key) + pad))
    if put:
        sock.sendall(b"".join(put))
        for _ in put:
            reply()
    done += n
print("RESULT name=share policy=%s misses=%d hit_ratio=%.3f per_pool_misses=%d/%d/%d" %
      (policy, sum(misses), 1 - sum(misses) / sum(gets), misses[0], misses[1], misses[2]))
PY

# run POLICY MIN MAX: one server, one replay; prints the RESULT line.
run() {
    rm -f "$T/memd.port"
    bench_bg memd "$MEMD" --listen 127.0.0.1:0 --port-file "$T/memd.port" \
        --memory "$((PAGES * 4))K" --threads 1
    pid=$BG_PID
    wait_file "$T/memd.port" 10 || { echo "share bench: remoca-memd did not start: $(head -c 1000 "$T/memd.log")" >&2; exit 1; }
    port=$(sed 's/.*://' "$T/memd.port" | tr -d ' \n')
    python3 "$T/drive.py" 127.0.0.1 "$port" "$1" "$2" "$3" "$ACCESSES" "$LOOP" "$ZIPF_KEYS" \
        "$BATCH" "$SEED" || { echo "share bench: $1 run failed" >&2; exit 1; }
    if [ -x "$REMOCA" ]; then
        "$REMOCA" stats --server "127.0.0.1:$port" | sed -n "s/^/  $1: /p" >&2 || true
    fi
    bench_kill "$pid"
}

third=$((PAGES / 3))
st=$(run static $third $third)
echo "$st"
sh=$(run shared $((PAGES / 30)) 0)
echo "$sh"
ms=$(kv misses "$st")
mh=$(kv misses "$sh")
echo "RESULT name=share summary miss_reduction=$(awk -v a="$ms" -v b="$mh" \
    'BEGIN { printf "%.3f", 1 - b / a }') static_misses=$ms shared_misses=$mh"
