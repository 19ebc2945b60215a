#!/bin/sh
# run_tsan.sh BIN...: runs each ThreadSanitizer build of a unit test (see
# tests/unit/CMakeLists.txt); fails on a failed test or any race report.
# setarch -R: no address randomisation, which clang 14's TSan cannot always map.
set -u
rc=0
for bin in "$@"; do
    name=$(basename "$bin")
    out=$(TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1" \
          setarch "$(uname -m)" -R "$bin" 2>&1)
    st=$?
    if [ $st -ne 0 ] || printf '%s\n' "$out" | grep -q "WARNING: ThreadSanitizer"; then
        printf '%s\n' "$out" | tail -80
        echo "FAIL: $name (exit $st)"
        rc=1
    else
        echo "ok: $name ($(printf '%s\n' "$out" | grep -c '\[       OK \]') tests, no race reported)"
    fi
done
exit $rc
