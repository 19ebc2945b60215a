# SPDX-License-Identifier: BSD-3-Clause
# Shared by the integration test scripts (bash): a private temp dir, the
# processes a test starts killed by pid at exit, failure reports that show the
# logs, polling with a timeout, and reading key=value stats files.
#
#   . "$(dirname "$0")/lib.sh"
#   itest_init NAME              # T=/tmp/remoca-NAME.XXXXXX, cleaned at exit
#   some-daemon ... 2>>"$T/daemon.log" &  track $!
#   waitfor 10 test -S "$T/sock" || fail "daemon did not start"
# and the nbdkit + nbd_checker harness of the nbd tests (start_nbdkit_unix, checker_*).
: "${REMOCA_BUILD:?REMOCA_BUILD must be set}"
FILTER=$REMOCA_BUILD/nbdkit-remoca-filter.so
MEMD_BIN=${REMOCA_MEMD:-$REMOCA_BUILD/remoca-memd} # REMOCA_MEMD: another build's server
PIDS=()
KILL_SIGNAL=TERM # what the cleanup sends; a test may set KILL
FAIL_TAIL=20     # log lines fail shows per log

itest_init() {
    T=$(mktemp -d "/tmp/remoca-$1.XXXXXX")
    trap itest_cleanup EXIT
    sanitizer_preload
}

# In an ASan build (REMOCA_PRELOAD: the sanitizer's shared runtime, from ctest)
# the filter is instrumented but nbdkit is not: nbdkit, whether a test starts
# it or remoca serve does, is found first in $T/preload, a wrapper that runs
# the real one with the runtime preloaded.  With the runtime in it, nbdkit
# now and then hangs at exit in libp11-kit's destructor (freelocale waits on
# glibc's locale lock; seen only under ASan, after the filter's unload has
# run and written its final stats), so the wrapper passes SIGTERM on and
# SIGKILLs an nbdkit still there 4 s later (before remoca serve, which waits 5 s for its
# child, gives up on the wrapper and leaves nbdkit behind), saying so on stderr.
sanitizer_preload() {
    [ -n "${REMOCA_PRELOAD:-}" ] || return 0
    local real
    real=$(command -v nbdkit) || return 0
    mkdir -p "$T/preload"
    cat >"$T/preload/nbdkit" <<WRAPPER
#!/bin/bash
# (socket activation names the process that gets the socket: nbdkit's pid)
( [ -n "\${LISTEN_PID:-}" ] && export LISTEN_PID=\$BASHPID
  LD_PRELOAD=$REMOCA_PRELOAD exec $real "\$@" ) &
child=\$!
stop() {
    kill -TERM \$child 2>/dev/null
    for _ in \$(seq 40); do kill -0 \$child 2>/dev/null || exit 0; sleep 0.1; done
    echo "nbdkit (ASan preload): still running 4 s after SIGTERM: SIGKILL" >&2
    kill -KILL \$child
    exit 0
}
trap stop TERM INT
wait \$child
WRAPPER
    chmod +x "$T/preload/nbdkit"
    PATH=$T/preload:$PATH
}

itest_cleanup() {
    local p live
    live=" $(jobs -p | tr '\n' ' ') " # still running: a pid already waited for may be reused
    for p in "${PIDS[@]}"; do
        case $live in *" $p "*) ;; *) continue ;; esac
        kill -CONT "$p" 2>/dev/null || true # a stopped process cannot act on TERM
        kill -"$KILL_SIGNAL" "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        case $live in *" $p "*) wait "$p" 2>/dev/null || true ;; esac
    done
    rm -rf "$T"
}

track() { PIDS+=("$@"); } # track PID...: killed at exit

fail() {
    echo "FAIL: $*" >&2
    local f
    for f in "$T"/*.log; do
        [ -f "$f" ] && { echo "== $f"; tail -"$FAIL_TAIL" "$f"; }
    done >&2
    exit 1
}

waitfor() { # waitfor SECONDS COMMAND...: poll until COMMAND succeeds
    local end=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.05; done
}

wait_file() { waitfor "$2" test -s "$1"; } # wait_file FILE SECONDS: until FILE is non-empty

stat_of() { sed -n "s/^$2=//p" "$1"; } # stat_of FILE KEY: a key=value stats file

start_memd_unix() { # start_memd_unix SIZE [ARGS...]: remoca-memd on $T/memd.sock; sets MEMD
    local size=$1; shift
    rm -f "$T/memd.sock"
    "$MEMD_BIN" --unix "$T/memd.sock" --memory "$size" --threads 1 "$@" \
        2>>"$T/memd.log" &
    MEMD=$!; track "$MEMD"
    waitfor 10 test -S "$T/memd.sock" || fail "remoca-memd did not start"
}

kill_memd_pidfiles() { # kill_memd_pidfiles DIR: the remoca-memd servers a C helper started,
    local f pid        # by their DIR/*.pid files; a stale file's pid may belong to another process now
    for f in "$1"/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = remoca-memd ] || continue
        kill -CONT "$pid" 2>/dev/null || true
        kill -9 "$pid" 2>/dev/null || true
    done
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; } # stop_pid PID: TERM and reap

start_nbdkit_unix() { # start_nbdkit_unix ARGS...: nbdkit -f with our filter first on $T/nbd.sock; sets NBDKIT
    rm -f "$T/nbd.pid" "$T/nbd.sock"
    nbdkit -f -U "$T/nbd.sock" -P "$T/nbd.pid" --filter="$FILTER" "$@" 2>>"$T/nbd.log" &
    NBDKIT=$!; track "$NBDKIT"
    waitfor 15 test -s "$T/nbd.pid" || fail "nbdkit did not start"
}

# nbd_checker (tests/integration/nbd_checker.c) against the file plugin on
# $T/disk.img behind the filter: the checker's model goes to $T/model.img, its
# op count to $T/progress.
checker_nbdkit() { # checker_nbdkit FILTER-ARGS...: start_nbdkit_unix over $T/disk.img, memd on $T/memd.sock, 500 ms timeout
    start_nbdkit_unix file "$T/disk.img" remoca-servers="unix:$T/memd.sock" \
        remoca-statsfile="$T/nbd.stats" remoca-timeout=500 "$@"
}

checker_trim_flag() { # prints --trim-unknown unless $T's file system punches holes (trimmed bytes then read back as zeroes)
    fallocate -p -o 0 -l 4096 "$(mktemp -p "$T")" 2>/dev/null || echo --trim-unknown
}

checker_start() { # checker_start NAME SEED [ARGS...]: nbd_checker in the background (4 conns, 1500 ops), output $T/NAME.out; sets CHK
    local name=$1 seed=$2; shift 2
    rm -f "$T/progress" # no count from an earlier run
    # shellcheck disable=SC2046 # the trim flag is one word or none
    "$REMOCA_BUILD/tests/nbd_checker" --uri "nbd+unix:///?socket=$T/nbd.sock" --init "$T/disk.img" \
        --conns 4 --ops 1500 --seed "$seed" $(checker_trim_flag) \
        --progress "$T/progress" --model-out "$T/model.img" "$@" > "$T/$name.out" 2>&1 &
    CHK=$!; track "$CHK"
}

checker_progress_at_least() { local v; v=$(cat "$T/progress" 2>/dev/null || true); [ "${v:-0}" -ge "$1" ]; } # checker_progress_at_least OPS

checker_kill_memd_midrun() { # checker_kill_memd_midrun NAME: SIGKILL $MEMD after 2500 checker ops; the checker must reach 5000 without it
    waitfor 120 checker_progress_at_least 2500 || fail "$1: checker made no progress"
    kill -9 "$MEMD"; wait "$MEMD" 2>/dev/null || true
    echo "$1: memd SIGKILLed at $(cat "$T/progress") ops"
    waitfor 120 checker_progress_at_least 5000 || fail "$1: checker stalled after the kill"
}

checker_finish() { # checker_finish NAME: checker verdict, nbdkit stopped, disk = model, no filter errors
    local name=$1 rc=0
    wait "$CHK" || rc=$?
    cat "$T/$name.out"
    [ $rc = 0 ] || fail "$name: checker failed (wrong bytes or errors)"
    grep -q "wrong_bytes=0 errors=0" "$T/$name.out" || fail "$name: checker summary"
    stop_pid "$NBDKIT"
    cmp "$T/disk.img" "$T/model.img" || fail "$name: disk file differs from the model"
    echo "$name filter: $(tr '\n' ' ' < "$T/nbd.stats")"
    [ "$(stat_of "$T/nbd.stats" errors)" = 0 ] || fail "$name: filter returned errors"
}
