#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# mkguest.sh OUTDIR: builds the REMOCA test guest, reproducibly, from this host's Debian packages.
#
#   OUTDIR/vmlinuz    the host's Debian kernel (package linux-image-amd64), copied
#   OUTDIR/initrd.gz  a busybox-static root filesystem:
#                       /init                 tests/vm/init (runs the workload named on the cmdline)
#                       /bin/*                busybox applets
#                       /usr/bin/rread        tests/vm/rread.c, built static (random-order reads)
#                       /usr/bin/blkio        tests/vm/blkio.c, built static (discard, write-zeroes,
#                                             numbered O_DIRECT records for the vhost tests)
#                       /usr/bin/*            real host programs the application workloads use
#                                             (sqlite3, GNU grep/find/sha256sum/tar), with every
#                                             shared library ldd names copied under /lib*, /usr/lib*
#                       /lib/modules/*.ko     virtio (pci, blk, balloon) and ext4 with their
#                                             dependencies; /lib/modules/order = insmod order
#
# mkguest.sh OUTDIR --fio: builds only OUTDIR/fio.cpio.gz, a second archive with /usr/bin/fio
# and its libraries (~85 MB unpacked: only the guests that run fio carry it, appended by vm_boot's
# VM_INITRD_EXTRA).
#
# The kernel has no initramfs-time modprobe, so module dependencies are resolved here from
# modules.dep (depth first: a module's dependencies come before it) and /init insmods them in
# that order.  Building takes a few seconds; the result is cached: OUTDIR/stamp holds a hash of
# every input (this script, init, kernel version, program paths and versions) and nothing is
# rebuilt while it matches.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: mkguest.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)   # absolute: the initramfs is packed from inside another directory

# copy_prog ROOT PROGRAM: PROGRAM into ROOT/usr/bin with every shared library ldd names
copy_prog() {
    [ -x "$2" ] || { echo "mkguest: $2 missing (scripts/deps.sh installs it)" >&2; exit 1; }
    mkdir -p "$1/usr/bin"
    cp "$2" "$1/usr/bin/"
    for lib in $(ldd "$2" | awk '/=>/ { print $3 } /^\t\// { print $1 }'); do
        [ -f "$lib" ] || continue
        mkdir -p "$1$(dirname "$lib")"
        cp -L "$lib" "$1$lib"
    done
}

if [ "${2:-}" = --fio ]; then
    stamp=$( { cat "$0"; ls -lL /usr/bin/fio; } | sha256sum | cut -c1-16)
    [ -f "$out/fio.stamp" ] && [ "$(cat "$out/fio.stamp")" = "$stamp" ] && [ -f "$out/fio.cpio.gz" ] && exit 0
    root=$(mktemp -d "$out/fio.XXXXXX")
    copy_prog "$root" /usr/bin/fio
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1 > "$root.cpio.gz")
    mv "$root.cpio.gz" "$out/fio.cpio.gz"
    rm -rf "$root"
    echo "$stamp" > "$out/fio.stamp"
    exit 0
fi

kver=$(ls /lib/modules | sort -V | tail -1)
kernel=/boot/vmlinuz-$kver
[ -r "$kernel" ] || { echo "mkguest: no kernel $kernel (install linux-image-amd64)" >&2; exit 1; }
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "mkguest: no $busybox (install busybox-static)" >&2; exit 1; }

# Modules the guest needs; their dependencies are added automatically.
MODULES="virtio_pci virtio_blk virtio_balloon crc32c_generic ext4"
# Host programs copied with their libraries (busybox has applets of the same names, but the
# workloads should run the real, optimised tools an operator would run).
PROGRAMS="/usr/bin/sqlite3 /bin/grep /usr/bin/find /usr/bin/sha256sum /bin/tar /usr/bin/xargs"

stamp=$( { cat "$0" "$here/init" "$here/rread.c" "$here/blkio.c"; echo "$kver"; ls -l "$kernel" "$busybox";
           for p in $PROGRAMS; do ls -lL "$p" 2>/dev/null || echo "missing $p"; done; } | sha256sum | cut -c1-16)
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] && [ -f "$out/initrd.gz" ] && [ -f "$out/vmlinuz" ]; then
    exit 0
fi

# built in a private directory and moved into place, so concurrent builds never see half a guest
root=$(mktemp -d "$out/root.XXXXXX")
chmod 755 "$root"
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/proc" "$root/sys" "$root/dev" \
         "$root/tmp" "$root/mnt" "$root/lib/modules" "$root/etc"
cp "$busybox" "$root/bin/busybox"
for a in $("$busybox" --list); do
    [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
done

# --- kernel modules, dependency order ------------------------------------------------------
moddir=/lib/modules/$kver
dep() { # prints the dependency paths of module path $1 (relative to $moddir)
    awk -v m="$1:" '$1 == m { for (i = 2; i <= NF; i++) print $i }' "$moddir/modules.dep"
}
modpath() { # name -> path relative to $moddir (matches foo.ko and foo.ko.xz, - or _)
    n=$(echo "$1" | tr - _)
    awk -F: -v n="$n" '{ p = $1; b = p; sub(/.*\//, "", b); sub(/\.ko(\.xz|\.zst)?$/, "", b);
                          gsub(/-/, "_", b); if (b == n) { print p; exit } }' "$moddir/modules.dep"
}
: > "$root/order.tmp"
add() { # depth-first: dependencies first, each module once
    grep -qx "$1" "$root/order.tmp" && return 0
    for d in $(dep "$1"); do add "$d"; done
    grep -qx "$1" "$root/order.tmp" || echo "$1" >> "$root/order.tmp"
}
for m in $MODULES; do
    p=$(modpath "$m")
    [ -n "$p" ] || { echo "mkguest: module $m not found in $moddir" >&2; exit 1; }
    add "$p"
done
: > "$root/lib/modules/order"
while read -r p; do
    b=$(basename "$p"); b=${b%.xz}; b=${b%.zst}
    case "$p" in
        *.xz) xz -dc "$moddir/$p" > "$root/lib/modules/$b" ;;
        *.zst) zstd -qdc "$moddir/$p" > "$root/lib/modules/$b" ;;
        *) cp "$moddir/$p" "$root/lib/modules/$b" ;;
    esac
    echo "$b" >> "$root/lib/modules/order"
done < "$root/order.tmp"
rm -f "$root/order.tmp"

# --- host programs and their shared libraries -----------------------------------------------
for p in $PROGRAMS; do copy_prog "$root" "$p"; done
# /lib64 -> the dynamic loader path ldd printed is kept as is (copied above)

# the guest's random-order reader, static so it needs nothing from the initramfs
${CC:-cc} -static -O2 -Wall -Wextra -o "$root/usr/bin/rread" "$here/rread.c" ||
    { echo "mkguest: building rread failed (needs gcc and libc6-dev)" >&2; exit 1; }
${CC:-cc} -static -O2 -Wall -Wextra -o "$root/usr/bin/blkio" "$here/blkio.c" ||
    { echo "mkguest: building blkio failed (needs gcc and libc6-dev)" >&2; exit 1; }

cp "$here/init" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1 > "$root.initrd")
cp "$kernel" "$root.vmlinuz"
mv "$root.initrd" "$out/initrd.gz"
mv "$root.vmlinuz" "$out/vmlinuz"
rm -rf "$root"
echo "$stamp" > "$out/stamp"
echo "mkguest: built $out/initrd.gz ($(du -k "$out/initrd.gz" | cut -f1) KiB) for kernel $kver" >&2
