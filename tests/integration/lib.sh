# Shared by the integration test scripts (bash): a private temp dir, the
# processes a test starts killed by pid at exit, failure reports that show the
# logs, polling with a timeout, and reading key=value stats files.
#
#   . "$(dirname "$0")/lib.sh"
#   itest_init NAME              # T=/tmp/remoca-NAME.XXXXXX, cleaned at exit
#   some-daemon ... 2>>"$T/daemon.log" &  track $!
#   waitfor 10 test -S "$T/sock" || fail "daemon did not start"
: "${REMOCA_BUILD:?REMOCA_BUILD must be set}"
FILTER=$REMOCA_BUILD/nbdkit-remoca-filter.so
MEMD_BIN=${REMOCA_MEMD:-$REMOCA_BUILD/remoca-memd} # REMOCA_MEMD: another build's server
PIDS=()
KILL_SIGNAL=TERM # what the cleanup sends; a test may set KILL
FAIL_TAIL=20     # log lines fail shows per log

itest_init() {
    T=$(mktemp -d "/tmp/remoca-$1.XXXXXX")
    trap itest_cleanup EXIT
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
