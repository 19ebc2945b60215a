#!/bin/bash
# `remoca serve DISK` end to end: it starts a local remoca-memd and nbdkit with
# the filter, prints the NBD URI and a QEMU command line, serves real clients,
# and on SIGTERM stops both children (by pid) and removes its run directory.
# Also: --port N with an external server list, and a clear error for a
# missing disk.
set -euo pipefail
: "${REMOCA_BUILD:?REMOCA_BUILD must be set}"
T=$(mktemp -d /tmp/remoca-nbd-serve.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; cat "$T"/*.out >&2 || true; exit 1; }
waitfor() { local end=$((SECONDS + $1)); shift; until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.05; done; }
children_of() { pgrep -P "$1" || true; }

head -c $((2 * 1048576 + 1000)) /dev/urandom > "$T/disk.img"

# 1. Embedded default: local memd, unix socket chosen by serve.
"$REMOCA_BUILD/remoca" serve "$T/disk.img" --memory 16M --stats "$T/stats.txt" > "$T/serve.out" 2>&1 &
SERVE=$!; PIDS+=("$SERVE")
waitfor 30 grep -qs "remoca serve: ready" "$T/serve.out" || fail "serve not ready"
uri=$(sed -n 's/^NBD URI: //p' "$T/serve.out")
grep -q "^qemu: *qemu-system-x86_64 .*-drive file=nbd:unix:.*,format=raw,if=virtio" "$T/serve.out" \
    || fail "no qemu command line"
kids=$(children_of "$SERVE")
[ "$(echo "$kids" | wc -w)" = 2 ] || fail "expected 2 children (memd, nbdkit), got: $kids"
run=$(dirname "$(echo "$uri" | sed 's/.*socket=//')")
nbdcopy "$uri" "$T/out.img"
nbdcopy "$uri" "$T/out2.img"
cmp "$T/disk.img" "$T/out.img" && cmp "$T/disk.img" "$T/out2.img" || fail "copy differs"
qemu-io -f raw "$uri" -c 'write -P 0x3c 4k 8k' -c 'read -P 0x3c 4k 8k' > "$T/qio.out" || fail "qemu-io"
waitfor 5 grep -q "^remote_hits=[1-9]" "$T/stats.txt" || fail "no remote hits in $T/stats.txt"
kill -TERM "$SERVE"
wait "$SERVE" || fail "serve exited non-zero after SIGTERM"
for k in $kids; do kill -0 "$k" 2>/dev/null && fail "child $k still running after serve stopped"; done
[ ! -e "$run" ] || fail "run directory $run left behind"
echo "1. embedded default: ok ($(grep -E '^remote_hits=' "$T/stats.txt"))"

# 2. External memd, TCP port for the export.
"$REMOCA_BUILD/remoca-memd" --listen 127.0.0.1:0 --port-file "$T/memd.port" --memory 16M \
    --threads 1 2>"$T/memd.out" &
MEMD=$!; PIDS+=("$MEMD")
waitfor 10 test -s "$T/memd.port" || fail "memd did not start"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$REMOCA_BUILD/remoca" serve "$T/disk.img" --servers "127.0.0.1:$(cat "$T/memd.port")" \
    --port "$port" --pool test/vda > "$T/serve2.out" 2>&1 &
SERVE=$!; PIDS+=("$SERVE")
waitfor 30 grep -qs "remoca serve: ready" "$T/serve2.out" || fail "serve --port not ready"
grep -q "^NBD URI: nbd://127.0.0.1:$port" "$T/serve2.out" || fail "wrong URI"
nbdcopy "nbd://127.0.0.1:$port" "$T/out3.img"
cmp "$T/disk.img" "$T/out3.img" || fail "copy over TCP differs"
"$REMOCA_BUILD/remoca" stats --server "127.0.0.1:$(cat "$T/memd.port")" | grep -q "pool name=test/vda" \
    || fail "pool test/vda not on the server"
kill -INT "$SERVE"
wait "$SERVE" || fail "serve exited non-zero after SIGINT"
echo "2. external server, TCP export: ok"

# 3. Errors.
if "$REMOCA_BUILD/remoca" serve "$T/nonexistent.img" > "$T/err.out" 2>&1; then fail "missing disk accepted"; fi
grep -q "nonexistent.img" "$T/err.out" || fail "no clear error for a missing disk"
echo PASS
