#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `remoca serve DISK` end to end:
#  1. the embedded default: it starts a local remoca-memd and nbdkit with the
#     filter, prints the NBD URI and a QEMU command line, serves real clients
#     from remote memory, and on SIGTERM stops both children and removes its
#     run directory;
#  2. --servers with an external remoca-memd and a TCP export on --port 0 (any
#     free port: the one serve binds is read from the URI it prints; no guessed
#     ports), stopped by SIGINT; the memd is over TCP, so the pages are sealed
#     (with --key-file): the pool is sealed on the server, the filter seals;
#  3. errors: a missing disk; bad --port and --memory values and a busy port
#     are refused with a message naming the value, exit status != 0, and start
#     nothing.  "Nothing started" is seen through a copy of remoca next to a
#     fake remoca-memd and a fake nbdkit ($NBDKIT) that record being run; a
#     control run shows that they do record it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init nbd-serve
children_of() { pgrep -P "$1" || true; }
serve_ready() { waitfor 30 grep -qs "remoca serve: ready" "$1"; } # serve_ready LOG

head -c $((2 * 1048576 + 1000)) /dev/urandom > "$T/disk.img"

# 1. Embedded default: local memd, unix socket chosen by serve.
"$REMOCA_BUILD/remoca" serve "$T/disk.img" --memory 16M --stats "$T/stats.txt" \
    > "$T/serve.log" 2>&1 &
SERVE=$!; track "$SERVE"
serve_ready "$T/serve.log" || fail "serve not ready"
uri=$(sed -n 's/^NBD URI: //p' "$T/serve.log")
grep -q "^qemu: *qemu-system-x86_64 .*-drive file=nbd:unix:.*,format=raw,if=virtio" "$T/serve.log" \
    || fail "no qemu command line"
kids=$(children_of "$SERVE")
[ "$(echo "$kids" | wc -w)" = 2 ] || fail "expected 2 children (memd, nbdkit), got: $kids"
run=$(dirname "${uri#*socket=}")
nbdcopy "$uri" "$T/out.img"
nbdcopy "$uri" "$T/out2.img"
cmp "$T/disk.img" "$T/out.img" && cmp "$T/disk.img" "$T/out2.img" || fail "copy differs"
qemu-io -f raw "$uri" -c 'write -P 0x3c 4k 8k' -c 'read -P 0x3c 4k 8k' > "$T/qio.log" || fail "qemu-io"
waitfor 5 grep -q "^remote_hits=[1-9]" "$T/stats.txt" || fail "no remote hits in $T/stats.txt"
# The embedded memd runs with --shm: the second copy's hits were one-sided reads.
grep -q "^client_servers_shm=1" "$T/stats.txt" || fail "embedded memd not mapped (client_servers_shm): $(cat "$T/stats.txt")"
grep -q "^one_sided_hits=[1-9]" "$T/stats.txt" || fail "no one-sided hits: $(cat "$T/stats.txt")"
kill -TERM "$SERVE"
wait "$SERVE" || fail "serve exited non-zero after SIGTERM"
for k in $kids; do kill -0 "$k" 2>/dev/null && fail "child $k still running after serve stopped"; done
[ ! -e "$run" ] || fail "run directory $run left behind"
echo "1. embedded default: ok ($(grep -E '^(remote|one_sided)_hits=' "$T/stats.txt" | tr '\n' ' '))"

# 2. External memd, TCP export on a port serve chooses and reports.
"$REMOCA_BUILD/remoca-memd" --listen 127.0.0.1:0 --port-file "$T/memd.port" --memory 16M \
    --threads 1 2>>"$T/memd.log" &
MEMD=$!; track "$MEMD"
wait_file "$T/memd.port" 10 || fail "memd did not start"
memd_port=$(cat "$T/memd.port")
head -c 32 /dev/urandom > "$T/key"; chmod 600 "$T/key"
"$REMOCA_BUILD/remoca" serve "$T/disk.img" --servers "127.0.0.1:$memd_port" \
    --port 0 --pool test/vda --key-file "$T/key" --stats "$T/stats2.txt" > "$T/serve2.log" 2>&1 &
SERVE=$!; track "$SERVE"
serve_ready "$T/serve2.log" || fail "serve --port not ready"
port=$(sed -n 's|^NBD URI: nbd://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$T/serve2.log")
[ -n "$port" ] && [ "$port" != 0 ] || fail "wrong URI: $(grep '^NBD URI' "$T/serve2.log")"
grep -q "^qemu: .*-drive file=nbd:127\.0\.0\.1:$port,format=raw" "$T/serve2.log" \
    || fail "qemu command line does not name port $port"
nbdcopy "nbd://127.0.0.1:$port" "$T/out3.img"
cmp "$T/disk.img" "$T/out3.img" || fail "copy over TCP differs"
"$REMOCA_BUILD/remoca" stats --server "127.0.0.1:$memd_port" > "$T/memd2.txt"
grep -q "pool name=test/vda .*sealed=1" "$T/memd2.txt" || fail "pool test/vda not sealed on the server: $(cat "$T/memd2.txt")"
waitfor 5 grep -q "^seal_seals=[1-9]" "$T/stats2.txt" || fail "nothing sealed: $(cat "$T/stats2.txt")"
grep -q "^seal_integrity_failures=0" "$T/stats2.txt" || fail "integrity failures on an honest server"
kill -INT "$SERVE"
wait "$SERVE" || fail "serve exited non-zero after SIGINT"
echo "2. external server, TCP export on port $port, sealed: ok ($(grep -E '^seal_(seals|opens)=' "$T/stats2.txt" | tr '\n' ' '))"

# 2b. --vhost: a local memd and remoca-vhost; the QEMU line names the vhost-user socket
# (the VM tests drive remoca-vhost with a real guest; here: starting, printing, stopping).
if [ -x "$REMOCA_BUILD/remoca-vhost" ]; then
    "$REMOCA_BUILD/remoca" serve "$T/disk.img" --vhost --memory 16M --queues 2 \
        > "$T/serve3.log" 2>&1 &
    SERVE=$!; track "$SERVE"
    serve_ready "$T/serve3.log" || fail "serve --vhost not ready"
    vsock=$(sed -n 's/^vhost-user socket: //p' "$T/serve3.log")
    [ -S "$vsock" ] || fail "no vhost-user socket at '$vsock'"
    grep -q "^qemu: .*memory-backend-memfd.*share=on.*path=$vsock,reconnect=1 .*vhost-user-blk-pci,chardev=vub0,num-queues=2" \
        "$T/serve3.log" || fail "qemu line: $(grep '^qemu' "$T/serve3.log")"
    kids=$(children_of "$SERVE")
    [ "$(echo "$kids" | wc -w)" = 2 ] || fail "expected 2 children (memd, remoca-vhost), got: $kids"
    kill -TERM "$SERVE"
    wait "$SERVE" || fail "serve --vhost exited non-zero after SIGTERM"
    for k in $kids; do kill -0 "$k" 2>/dev/null && fail "child $k still running after serve stopped"; done
    echo "2b. --vhost: ok"
fi

# 3. Errors.
if "$REMOCA_BUILD/remoca" serve "$T/nonexistent.img" > "$T/err.log" 2>&1; then
    fail "missing disk accepted"; fi
grep -q "nonexistent.img" "$T/err.log" || fail "no clear error for a missing disk"

mkdir "$T/bin"
cp "$REMOCA_BUILD/remoca" "$T/bin/remoca"
touch "$T/bin/nbdkit-remoca-filter.so"
cat > "$T/bin/remoca-memd" <<EOF
#!/bin/sh
echo "\$(basename "\$0") pid=\$\$ LISTEN_PID=\${LISTEN_PID-} LISTEN_FDS=\${LISTEN_FDS-}" >> "$T/started"
exit 1
EOF
chmod +x "$T/bin/remoca-memd"
cp "$T/bin/remoca-memd" "$T/bin/nbdkit"
fake_serve() { NBDKIT="$T/bin/nbdkit" "$T/bin/remoca" serve "$T/disk.img" "$@"; }

# Control: the fakes record their start, and nbdkit gets its TCP socket by
# socket activation (LISTEN_PID is its own pid).
rm -f "$T/started"
if fake_serve --memory 16M > "$T/fake.log" 2>&1; then fail "serve with a failing memd succeeded"; fi
grep -q "^remoca-memd " "$T/started" || fail "the fake remoca-memd did not record its start"
rm -f "$T/started"
if fake_serve --servers "127.0.0.1:$memd_port" --port 0 > "$T/fake.log" 2>&1; then
    fail "serve with a failing nbdkit succeeded"; fi
grep -q "^nbdkit pid=\([0-9]*\) LISTEN_PID=\1 LISTEN_FDS=1$" "$T/started" \
    || fail "nbdkit not started by socket activation: $(cat "$T/started")"

refused() { # refused TEXT ARGS...: remoca serve DISK ARGS fails, says TEXT, starts nothing
    local text=$1; shift
    rm -f "$T/started"
    if fake_serve "$@" > "$T/refused.log" 2>&1; then fail "serve $* accepted"; fi
    grep -qF -- "$text" "$T/refused.log" || fail "serve $*: no message with \"$text\""
    [ ! -e "$T/started" ] || fail "serve $* started: $(cat "$T/started")"
}
for bad in 12abc 65536 -1 99999999999999999999 0x50 1.5 " 80" ""; do
    refused "--port '$bad'" --port "$bad"
done
for bad in 12abc 512K 1023K 16T 99999999999T 1.5G -1G 64MX ""; do
    refused "--memory '$bad'" --memory "$bad"
done
refused "127.0.0.1:$memd_port: Address already in use" --servers "127.0.0.1:$memd_port" \
    --port "$memd_port"
echo "3. errors: ok"
echo PASS
