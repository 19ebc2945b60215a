#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `remoca serve` supervises its memory server: a remoca-memd that dies costs hits, never data
# and never an error the guest sees (docs/design.md, contract 2).
#  1. NBD: fio (its nbd engine) writes every block of a 64 MiB disk in random order with
#     crc32c headers, verifying as it goes, while a second job reads at random; meanwhile the
#     test SIGKILLs serve's remoca-memd twice.  Then: fio exit 0 and no errors; serve logged
#     two deaths (signal 9) and two restarts; serve and nbdkit are the same processes; a
#     separate fio --verify_only pass checks every block through the filter; a second pass
#     is served from the restarted memory server (the filter's remote hits grow, the server
#     holds the pool's pages, the client reconnected twice); SIGTERM stops everything.
#  2. --vhost: remoca-vhost (driven by tests/vhost_driver, no guest) keeps running across two
#     memory-server deaths, reconnects, serves the driver's checked I/O and fills the
#     restarted server.
# The memory server's pid is taken from serve's log ("started (pid N)", "restarted (pid N,
# ...)") and checked to be serve's child named remoca-memd before it is killed: other tests
# may run memory servers at the same time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init serve-supervise
NBDKIT_PID='' RUN=''
stop_hung_nbdkit() { # the real nbdkit: in ASan builds behind lib.sh's wrapper, which serve
    [ -n "$NBDKIT_PID" ] || return 0 # SIGKILLs after 5 s while nbdkit may hang at exit (lib.sh)
    { tr "\0" " " < "/proc/$NBDKIT_PID/cmdline"; } 2>/dev/null | grep -qF "$RUN/" || return 0
    kill -9 "$NBDKIT_PID" 2>/dev/null || true
}
trap 'stop_hung_nbdkit; itest_cleanup' EXIT
fio --enghelp=nbd 2>/dev/null | grep -q '^uri' || { echo "SKIP: fio has no nbd engine"; exit 77; }

BLOCKS=16384 # 64 MiB of 4 KiB blocks
head -c $((BLOCKS * 4096)) /dev/urandom > "$T/disk.img"

serve_ready() { waitfor 30 grep -qs "remoca serve: ready" "$1"; } # serve_ready LOG
memd_pid() { # memd_pid LOG: the remoca-memd serve started last
    sed -n 's/^remoca serve: remoca-memd \(started\|restarted\) (pid \([0-9]*\).*/\2/p' "$1" | tail -1
}
count() { grep -c "$1" "$2" || true; } # count PATTERN FILE
up_again_at_least() { [ "$(count "remoca-memd (pid [0-9]*) accepts on .* again" "$1")" -ge "$2" ]; }
kill_memd() { # kill_memd SERVE-PID LOG N: SIGKILL serve's memory server, wait for restart N to accept
    local pid
    pid=$(memd_pid "$2")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = remoca-memd ] &&
        [ "$(ps -o ppid= -p "$pid" | tr -d ' ')" = "$1" ] || fail "'$pid' is not serve's remoca-memd"
    kill -9 "$pid"
    waitfor 20 up_again_at_least "$2" "$3" || fail "memory server not back after kill $3"
    echo "killed remoca-memd $pid; restarted as $(memd_pid "$2")"
}
stats_fresh() { # stats_fresh FILE: wait until FILE holds counters sampled after now
    local _ # (two rewrites: the first may have sampled just before the mark)
    for _ in 1 2; do
        touch "$T/mark"
        waitfor 10 test "$1" -nt "$T/mark" || fail "$1 not rewritten"
    done
}
stat_at_least() { local v; v=$(stat_of "$1" "$2" 2>/dev/null); [ "${v:-0}" -ge "$3" ]; } # stat_at_least FILE KEY N
no_fio_errors() { # no_fio_errors LOG: fio's summary says err= 0 and nothing reports a problem
    grep -q "err= 0" "$1" || fail "no fio summary in $1"
    ! grep -E "err= *[1-9]|verify:|error|bad|mismatch" "$1" || fail "fio reported errors ($1)"
}
kvm_usable() { [ -c /dev/kvm ] && (exec 9<>/dev/kvm) 2>/dev/null; } # what serve tries: open O_RDWR

# --- 1. NBD ----------------------------------------------------------------------------------
"$REMOCA_BUILD/remoca" serve "$T/disk.img" --memory 128M --stats "$T/stats.txt" \
    > "$T/serve.log" 2>&1 &
SERVE=$!; track "$SERVE"
serve_ready "$T/serve.log" || fail "serve not ready"
uri=$(sed -n 's/^NBD URI: //p' "$T/serve.log")
RUN=$(dirname "${uri#*socket=}")
NBDKIT_PID=$(cat "$RUN/nbdkit.pid")
front_child() { pgrep -P "$SERVE" | grep -vx "$(memd_pid "$T/serve.log")"; } # nbdkit (or its ASan wrapper)
front=$(front_child) || fail "no nbdkit child"
if kvm_usable; then
    grep -q "^qemu: .* -enable-kvm " "$T/serve.log" || fail "KVM usable, no -enable-kvm offered"
else
    grep -q "^qemu: .*-enable-kvm" "$T/serve.log" && fail "-enable-kvm offered without a usable /dev/kvm"
    grep -q "^note: .*/dev/kvm" "$T/serve.log" || fail "no note on the missing /dev/kvm"
fi

# The writer's rate (4000 KiB/s) makes the run last ~16 s, so the kills land mid-run.
job() { # job NAME [ARGS...]: a fio job file section over the export
    printf '[%s]\nioengine=nbd\nuri=%s\nbs=4k\nsize=%s\n' "$1" "$uri" $((BLOCKS * 4096))
    shift
    printf '%s\n' "$@"
}
WRITER=(rw=randwrite verify=crc32c verify_fatal=1 iodepth=8 "rate_iops=,1000")
{ job writer "${WRITER[@]}" verify_backlog=256
  job reader rw=randread iodepth=4 rate_iops=1500 time_based=1 runtime=15; } > "$T/run.fio"
# fio 3.33 checks nothing with --verify_only when verify_backlog is set: the pass omits it
job writer "${WRITER[@]}" > "$T/verify.fio"

fio "$T/run.fio" > "$T/fio.log" 2>&1 &
FIO=$!; track "$FIO"
for n in 1 2; do
    waitfor 30 stat_at_least "$T/stats.txt" writes $((n * 4000)) || fail "fio made no progress"
    kill -0 "$FIO" 2>/dev/null || fail "fio ended before kill $n: make it run longer"
    kill_memd "$SERVE" "$T/serve.log" "$n"
    # the filter reconnects by itself (lib/client), before the next kill
    waitfor 20 stat_at_least "$T/stats.txt" client_reconnects "$n" || fail "filter did not reconnect ($n)"
done
rc=0; wait "$FIO" || rc=$?
[ "$rc" = 0 ] || fail "fio exited $rc while the memory server was killed"
no_fio_errors "$T/fio.log"
[ "$(count "^remoca serve: remoca-memd (pid [0-9]*) killed by signal 9" "$T/serve.log")" = 2 ] ||
    fail "serve did not log two deaths by signal 9"
[ "$(count "^remoca serve: remoca-memd restarted (pid" "$T/serve.log")" = 2 ] ||
    fail "serve did not log two restarts"
kill -0 "$SERVE" 2>/dev/null || fail "serve exited"
[ "$(front_child)" = "$front" ] || fail "serve's nbdkit child $front is gone"
kill -0 "$NBDKIT_PID" 2>/dev/null && [ "$(cat "$RUN/nbdkit.pid")" = "$NBDKIT_PID" ] ||
    fail "nbdkit $NBDKIT_PID is gone"
echo "1. fio: ok, through two memory-server deaths"

# Every block, through the filter: once filling the restarted server, once from it.
stats_fresh "$T/stats.txt"
for pass in 1 2; do
    blocks0=$(stat_of "$T/stats.txt" read_blocks)
    hits0=$(stat_of "$T/stats.txt" remote_hits)
    fio "$T/verify.fio" --verify_only > "$T/verify$pass.log" 2>&1 || fail "verify pass $pass failed"
    no_fio_errors "$T/verify$pass.log"
    stats_fresh "$T/stats.txt"
    read=$(($(stat_of "$T/stats.txt" read_blocks) - blocks0))
    hits=$(($(stat_of "$T/stats.txt" remote_hits) - hits0))
    [ "$read" -ge "$BLOCKS" ] || fail "verify pass $pass read $read blocks, expected $BLOCKS"
    echo "1. verify pass $pass: ok ($read blocks read, $hits remote hits)"
done
[ "$hits" -ge $((BLOCKS / 2)) ] || fail "second pass: $hits remote hits, expected >= $((BLOCKS / 2))"
stat_at_least "$T/stats.txt" client_reconnects 2 || fail "client did not reconnect twice"
grep -q "^client_servers_up=1$" "$T/stats.txt" || fail "server not up for the client"
grep -q "^errors=0$" "$T/stats.txt" || fail "the filter returned errors"
"$REMOCA_BUILD/remoca" stats --server "unix:$RUN/memd.sock" > "$T/memd.stats"
pages=$(sed -n 's/^pool name=.* pages=\([0-9]*\) .*/\1/p' "$T/memd.stats")
[ "${pages:-0}" -ge $((BLOCKS / 2)) ] || fail "restarted server holds ${pages:-no} pages: $(cat "$T/memd.stats")"
echo "1. restarted server: $pages pages, second pass $hits hits"

kids=$(pgrep -P "$SERVE")
kill -TERM "$SERVE"
wait "$SERVE" || fail "serve exited non-zero after SIGTERM"
for k in $kids; do kill -0 "$k" 2>/dev/null && fail "child $k still running after serve stopped"; done
[ ! -e "$RUN" ] || fail "run directory $RUN left behind"
[ -n "${REMOCA_PRELOAD:-}" ] || ! kill -0 "$NBDKIT_PID" 2>/dev/null || fail "nbdkit still running"
stop_hung_nbdkit
echo "1. NBD: ok"

# --- 2. --vhost ------------------------------------------------------------------------------
DRIVER=$REMOCA_BUILD/tests/vhost_driver
if [ ! -x "$REMOCA_BUILD/remoca-vhost" ] || [ ! -x "$DRIVER" ]; then
    echo "2. --vhost: skipped (remoca-vhost not built)"
    echo PASS
    exit 0
fi
head -c $((32 * 1048576)) /dev/urandom > "$T/vdisk.img"
"$REMOCA_BUILD/remoca" serve "$T/vdisk.img" --vhost --mode inclusive --memory 32M \
    --stats "$T/vstats.txt" > "$T/vserve.log" 2>&1 &
SERVE=$!; track "$SERVE"
serve_ready "$T/vserve.log" || fail "serve --vhost not ready"
vsock=$(sed -n 's/^vhost-user socket: //p' "$T/vserve.log")
vhost=$(pgrep -P "$SERVE" -x remoca-vhost) || fail "no remoca-vhost child"
"$DRIVER" "$vsock" "$T/vdisk.img" > "$T/driver1.log" 2>&1 || fail "driver before the kills"
for n in 1 2; do
    kill_memd "$SERVE" "$T/vserve.log" "$n"
    # reconnected before the next kill (an idle connection notices the death within ~250 ms;
    # a second kill before that would leave one reconnect to count, not two)
    waitfor 20 stat_at_least "$T/vstats.txt" client_reconnects "$n" ||
        fail "remoca-vhost did not reconnect ($n)"
done
"$DRIVER" "$vsock" "$T/vdisk.img" > "$T/driver2.log" 2>&1 || fail "driver after the kills"
kill -0 "$vhost" 2>/dev/null && [ "$(pgrep -P "$SERVE" -x remoca-vhost)" = "$vhost" ] ||
    fail "remoca-vhost $vhost did not survive"
# The driver's reads fill the restarted server.  (Its hits are not counted on: it re-reads a
# block right after the miss that filled it, and a fill through the ring may land later.)
pool_pages() { # pool_pages ADDR: pages of the server's one pool
    "$REMOCA_BUILD/remoca" stats --server "$1" | sed -n 's/^pool name=.* pages=\([0-9]*\) .*/\1/p'
}
pages_at_least() { local v; v=$(pool_pages "$1"); [ "${v:-0}" -ge "$2" ]; }
vrun=$(dirname "$vsock")
waitfor 10 pages_at_least "unix:$vrun/memd.sock" 16 ||
    fail "restarted server got no pages from remoca-vhost: $(pool_pages "unix:$vrun/memd.sock")"
stat_at_least "$T/vstats.txt" client_servers_up 1 || fail "remoca-vhost: server not up"
vpages=$(pool_pages "unix:$vrun/memd.sock")
kill -TERM "$SERVE"
wait "$SERVE" || fail "serve --vhost exited non-zero after SIGTERM"
kill -0 "$vhost" 2>/dev/null && fail "remoca-vhost still running"
echo "2. --vhost: ok (remoca-vhost $vhost kept, the restarted server holds $vpages pages)"
echo PASS
