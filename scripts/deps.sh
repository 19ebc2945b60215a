#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Installs every Debian package that REMOCA's build, tests, demo and benchmarks need.
# Idempotent: when everything is present it only runs dpkg-query and returns.
set -eu

PACKAGES="
build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
libcmocka-dev libxxhash-dev libssl-dev libjson-c-dev
nbdkit nbdkit-plugin-dev libnbd-dev libnbd-bin python3-libnbd
memcached fio qemu-utils qemu-system-x86 linux-image-amd64 busybox-static
cpio kmod socat xz-utils gnuplot-nox e2fsprogs procps sqlite3
"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi

echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Refresh the index only when an install fails for want of it.
apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends $missing >/dev/null
}
