# SPDX-License-Identifier: BSD-3-Clause
# tests/vm/lib.sh: the host side of REMOCA's VM runs, sourced by tests/vm/test_vm.sh,
# tests/vm/test_vm_vhost.sh, bench/vm.sh and tools/demo.sh (bash).
#
# One run is a stack of real processes, each started here, recorded by its pid file and
# stopped by pid (vm_cleanup, installed as an EXIT trap by vm_init).  The guest's disk is
# TAG's, attached one of two ways (VM_DISK, see vm_boot):
#
#     QEMU (TCG) guest: tests/vm/init runs the workload named on the kernel command line
#        |                                                  QMP: TAG.qmp (balloon)
#        |-- VM_DISK=nbd (default): virtio-blk, -drive nbd:unix:TAG.nbd.sock
#        |   v
#        |   nbdkit -U TAG.nbd.sock                            (vm_export_start)
#        |      [remoca filter]  --- unix socket --->  remoca-memd (MEMD.sock)   only in mode remoca
#        |      [delay/latency]  emulated slow disk: hdd = nbdkit delay 8ms, ssd = latency 150us
#        |      [stats] [log]    count what reaches the backing store (TAG.stats at exit, TAG.nbdlog)
#        |      file plugin      TAG.img (a sparse copy of the data image, so runs never share state)
#        |
#        `-- VM_DISK=vhost: vhost-user-blk-pci, VM_QUEUES queues (and as many vCPUs), guest RAM a
#            |  shared memfd the backend maps; -chardev socket TAG.vhost.sock[,reconnect=1]
#            v
#            vhost-user-blk backend on TAG.vhost.sock, pid TAG.vhost.pid   (vm_vhost_start)
#               qsd:    qemu-storage-daemon, the reference: file (O_DIRECT, discard=unmap) TAG.img
#               remoca: remoca-vhost --disk TAG.img, --servers unix:MEMD.sock --mode exclusive
#                       (VM_VHOST_MODE) or, without a memory server, --mode off; --stats TAG.rstats
#            (vm_vhost_kill: SIGKILL, a crash; vm_vhost_start TAG - BACKEND: restart on TAG.img)
#
# While the guest runs, vm_boot copies every `RESULT-GUEST` line of the serial console into
# TAG.steps and appends how many reads (and bytes) had reached the backing store at that
# moment (from the log filter) and the REMOCA filter's read_blocks and remote_hits (from its
# stats file, rewritten every second), so a caller can split the counts by workload step
# (warm-up pass vs. later passes).  The guest idles 1.2 s after each step so the attribution is
# clean.  A caller can also act while the guest runs (VM_HOOK).  Every wait has a timeout;
# QEMU runs under `timeout`.
#
# Environment: REMOCA_BUILD (build dir: remoca-memd, nbdkit-remoca-filter.so, remoca,
# remoca-vhost), REMOCA_SRC (repo).  VM_ACCEL=tcg|kvm overrides the accelerator probe.

VM_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_PIDFILES=()

vm_log() { echo "vm: $*" >&2; }
vm_die() { echo "vm: error: $*" >&2; exit 1; }

# vm_init WORKDIR: checks tools, builds (or reuses) the guest, arms the cleanup trap.
vm_init() {
    VM_WORK=$1
    mkdir -p "$VM_WORK"
    : "${REMOCA_BUILD:?REMOCA_BUILD must name the build directory}"
    for t in qemu-system-x86_64 nbdkit timeout python3 mke2fs; do
        command -v "$t" >/dev/null || vm_die "$t not found (run scripts/deps.sh)"
    done
    VM_GUEST=$REMOCA_BUILD/vm/guest
    "$VM_HERE/mkguest.sh" "$VM_GUEST" || vm_die "building the guest failed"
    VM_FILTER=$REMOCA_BUILD/nbdkit-remoca-filter.so
    VM_MEMD=$REMOCA_BUILD/remoca-memd
    VM_LATENCY=$REMOCA_BUILD/tests/vm/nbdkit-latency-filter.so
    trap vm_cleanup EXIT
    trap 'exit 130' INT TERM
    vm_accel_probe
}

# True when the REMOCA stack (filter + memory server) is built.
vm_have_remoca() { [ -f "$VM_FILTER" ] && [ -x "$VM_MEMD" ]; }

# Stops every process started here, by pid, newest first; waits up to 5 s each, then SIGKILL.
vm_cleanup() {
    local i pf pid n
    for ((i = ${#VM_PIDFILES[@]} - 1; i >= 0; i--)); do
        pf=${VM_PIDFILES[$i]}
        [ -f "$pf" ] || continue
        pid=$(cat "$pf" 2>/dev/null)
        [ -n "$pid" ] || continue
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null
            n=0
            while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
        fi
        rm -f "$pf"
    done
    VM_PIDFILES=()
}

# vm_stop PIDFILE: stops one process (same rules as vm_cleanup).
vm_stop() {
    local pf=$1 pid n
    [ -f "$pf" ] || return 0
    pid=$(cat "$pf")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        n=0
        while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
        kill -0 "$pid" 2>/dev/null && { vm_log "pid $pid did not stop, killing"; kill -9 "$pid"; }
    fi
    rm -f "$pf"
}

# vm_wait_for PATH SECONDS: waits until PATH exists (socket, file).
vm_wait_for() {
    local n=0 max=$(($2 * 10))
    while [ ! -e "$1" ] && [ $n -lt $max ]; do sleep 0.1; n=$((n + 1)); done
    [ -e "$1" ]
}

# KVM where it works, else TCG.  /dev/kvm may exist and still not run a guest (nested
# virtualisation without VMX: QEMU hangs in the firmware), so the first time a short boot is
# tried; the verdict is cached next to the guest.
vm_accel_probe() {
    if [ -n "${VM_ACCEL:-}" ]; then return; fi
    if [ -f "$VM_GUEST/accel" ]; then VM_ACCEL=$(cat "$VM_GUEST/accel"); return; fi
    VM_ACCEL=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        local log=$VM_WORK/kvm-probe.log
        timeout 10 qemu-system-x86_64 -accel kvm -m 128 -nodefaults -display none -no-reboot \
            -serial "file:$log" -kernel "$VM_GUEST/vmlinuz" -initrd "$VM_GUEST/initrd.gz" \
            -append "console=ttyS0 quiet vm.wl=none" >/dev/null 2>&1 || true
        grep -aq 'step=boot' "$log" 2>/dev/null && VM_ACCEL=kvm
    fi
    echo "$VM_ACCEL" > "$VM_GUEST/accel"
    vm_log "accelerator: $VM_ACCEL"
}

# vm_memd_start NAME MEMORY: starts remoca-memd on unix socket $VM_WORK/NAME.sock
# (VM_MEMD_ARGS: more options, e.g. --shm as `remoca serve` runs its local server).
# VM_MEMD_TRANSPORT=tcp: it also listens on a loopback port (NAME.port), and the front ends
# reach it there, as they would a memory server on another machine (vm_memd_addr).
vm_memd_start() {
    local name=$1 mem=$2
    local sock=$VM_WORK/$name.sock pf=$VM_WORK/$name.pid tcp=()
    rm -f "$sock" "$pf" "$VM_WORK/$name.port"
    [ "${VM_MEMD_TRANSPORT:-unix}" = tcp ] && tcp=(--listen 127.0.0.1:0 --port-file "$VM_WORK/$name.port")
    # shellcheck disable=SC2086 # VM_MEMD_ARGS is a list of options
    "$VM_MEMD" --unix "$sock" "${tcp[@]}" --memory "$mem" --threads 1 --pid-file "$pf" \
        ${VM_MEMD_ARGS:-} >"$VM_WORK/$name.out" 2>&1 &
    echo $! > "$pf"
    VM_PIDFILES+=("$pf")
    vm_wait_for "$sock" 10 || vm_die "remoca-memd did not start: $(tail -3 "$VM_WORK/$name.out")"
    if [ ${#tcp[@]} -gt 0 ]; then
        local n=0
        while [ ! -s "$VM_WORK/$name.port" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
        [ -s "$VM_WORK/$name.port" ] || vm_die "remoca-memd wrote no port file"
    fi
}

# vm_memd_addr NAME: the address the front ends use for memory server NAME (its unix socket,
# or with VM_MEMD_TRANSPORT=tcp its loopback port).
vm_memd_addr() {
    if [ -s "$VM_WORK/$1.port" ]; then
        echo "127.0.0.1:$(sed 's/.*://' "$VM_WORK/$1.port" | tr -d ' \n')"
    else
        echo "unix:$VM_WORK/$1.sock"
    fi
}

# vm_memd_stats NAME: memory server's counters as key=value lines (from `remoca stats --json`).
vm_memd_stats() {
    timeout 10 "$REMOCA_BUILD/remoca" stats --server "unix:$VM_WORK/$1.sock" --json 2>/dev/null |
        python3 "$VM_HERE/flatjson.py"
}

# vm_export_start TAG IMAGE MODE DISK [MEMD]
#   MODE: base (no REMOCA filter) | remoca (filter -> memd MEMD)
#   DISK: none | hdd (nbdkit delay filter, 8 ms per read/write) | ssd (latency filter, 150 us)
#   (VM_HDD_MS, VM_SSD_US override the latencies)
vm_export_start() {
    local tag=$1 image=$2 mode=$3 disk=$4 memd=${5:-memd}
    local sock=$VM_WORK/$tag.nbd.sock pf=$VM_WORK/$tag.nbdkit.pid
    local args=()
    rm -f "$sock" "$pf" "$VM_WORK/$tag.stats" "$VM_WORK/$tag.nbdlog" "$VM_WORK/$tag.rstats"
    cp --sparse=always "$image" "$VM_WORK/$tag.img"
    if [ "$mode" = remoca ]; then
        args+=(--filter="$VM_FILTER")
    fi
    case $disk in
        none) ;;
        hdd) args+=(--filter=delay) ;;
        ssd) args+=(--filter="$VM_LATENCY") ;;
        *) vm_die "unknown disk kind $disk" ;;
    esac
    args+=(--filter=stats --filter=log file "$VM_WORK/$tag.img"
           statsfile="$VM_WORK/$tag.stats" logfile="$VM_WORK/$tag.nbdlog")
    case $disk in
        hdd) args+=(delay-read=${VM_HDD_MS:-8}ms delay-write=${VM_HDD_MS:-8}ms) ;;
        ssd) args+=(latency-read=${VM_SSD_US:-150} latency-write=${VM_SSD_US:-150}) ;;
    esac
    if [ "$mode" = remoca ]; then
        args+=(remoca-servers="$(vm_memd_addr "$memd")" remoca-pool="vm-$tag/vda"
               remoca-statsfile="$VM_WORK/$tag.rstats")
    fi
    nbdkit -f -U "$sock" -P "$pf" "${args[@]}" >"$VM_WORK/$tag.nbdkit.out" 2>&1 &
    echo $! > "$pf"
    VM_PIDFILES+=("$pf")
    vm_wait_for "$sock" 10 || vm_die "nbdkit ($tag) did not start: $(tail -3 "$VM_WORK/$tag.nbdkit.out")"
}

# vm_export_stop TAG: stops nbdkit; the stats filter writes TAG.stats as it exits.
vm_export_stop() {
    vm_stop "$VM_WORK/$1.nbdkit.pid"
}

# vm_backing TAG: "READS BYTES" that reached the backing store so far (from the log filter).
vm_backing() {
    awk 'function hex(s,   v, i) { v = 0; s = tolower(substr(s, 3))
             for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
             return v }
         / Read id=[0-9]+ offset=/ { n++; for (i = 1; i <= NF; i++) if ($i ~ /^count=/) b += hex(substr($i, 7)) }
         END { printf "%d %.0f\n", n, b }' "$VM_WORK/$1.nbdlog" 2>/dev/null || echo "0 0"
}

# vm_disk_args TAG MEM_MB: fills vm_boot's arrays `machine` and `disk` for VM_DISK.
vm_disk_args() {
    local tag=$1 mem=$2 q=${VM_QUEUES:-1}
    case ${VM_DISK:-nbd} in
    nbd)
        machine+=(-smp 1)
        disk=(-drive "file=nbd:unix:$VM_WORK/$tag.nbd.sock,format=raw,if=virtio,cache=none") ;;
    vhost)
        # the backend reads and writes guest RAM itself: it must be memory it can map
        machine+=(-smp "$q" -object "memory-backend-memfd,id=mem,size=${mem}M,share=on"
                  -machine memory-backend=mem)
        local chr="socket,id=vub0,path=$VM_WORK/$tag.vhost.sock"
        [ "${VM_RECONNECT:-0}" = 1 ] && chr+=",reconnect=1"
        disk=(-chardev "$chr" -device "vhost-user-blk-pci,chardev=vub0,num-queues=$q") ;;
    *) vm_die "unknown VM_DISK ${VM_DISK}" ;;
    esac
}

# vm_vhost_start TAG IMAGE BACKEND [QUEUES] [MEMD]
#   Starts a vhost-user-blk server on TAG.vhost.sock for TAG.img, a sparse copy of IMAGE
#   (IMAGE "-": TAG.img as it is, to restart a backend after vm_vhost_kill), with QUEUES queues.
#   BACKEND: qsd    qemu-storage-daemon (the reference): O_DIRECT file, discards punch holes
#            remoca remoca-vhost; with MEMD, the memory server of vm_memd_start MEMD as its
#                   remote cache (mode VM_VHOST_MODE, default exclusive), stats in TAG.rstats
#   VM_QSD_DIRECT=off: qemu-storage-daemon reads through the host's page cache (default O_DIRECT).
#   VM_VHOST_DISK=URI: remoca-vhost's --disk instead of TAG.img (e.g. the NBD export of
#   vm_export_start, whose filters emulate a slow disk and count what reaches it).
#   Output TAG.vhost.out (appended to across restarts), pid file TAG.vhost.pid.
vm_vhost_start() {
    local tag=$1 image=$2 backend=$3 q=${4:-1} memd=${5:-}
    local sock=$VM_WORK/$tag.vhost.sock pf=$VM_WORK/$tag.vhost.pid img=$VM_WORK/$tag.img
    rm -f "$sock" "$pf"
    [ "$image" = - ] || cp --sparse=always "$image" "$img"
    case $backend in
    qsd)
        command -v qemu-storage-daemon >/dev/null || vm_die "qemu-storage-daemon not found (scripts/deps.sh)"
        qemu-storage-daemon \
            --blockdev "driver=file,node-name=file0,filename=$img,cache.direct=${VM_QSD_DIRECT:-on},discard=unmap" \
            --blockdev "driver=raw,node-name=disk,file=file0,discard=unmap" \
            --export "type=vhost-user-blk,id=exp0,node-name=disk,addr.type=unix,addr.path=$sock,writable=on,num-queues=$q" \
            >>"$VM_WORK/$tag.vhost.out" 2>&1 & ;;
    remoca)
        local args=(--socket "$sock" --disk "${VM_VHOST_DISK:-$img}" --queues "$q" --stats "$VM_WORK/$tag.rstats")
        if [ -n "$memd" ]; then
            args+=(--servers "$(vm_memd_addr "$memd")" --pool "vm-$tag/vda" --mode "${VM_VHOST_MODE:-exclusive}")
        else
            args+=(--mode off)
        fi
        "$REMOCA_BUILD/remoca-vhost" "${args[@]}" >>"$VM_WORK/$tag.vhost.out" 2>&1 & ;;
    *) vm_die "unknown vhost backend $backend" ;;
    esac
    echo $! > "$pf"
    VM_PIDFILES+=("$pf")
    vm_wait_for "$sock" 10 || vm_die "$backend ($tag) did not start: $(tail -3 "$VM_WORK/$tag.vhost.out")"
}

# vm_vhost_stop TAG: stops TAG's backend (SIGTERM, as vm_stop).
vm_vhost_stop() {
    vm_stop "$VM_WORK/$1.vhost.pid"
}

# vm_vhost_kill TAG: kills TAG's backend with SIGKILL (a crash) and waits until it is gone.
vm_vhost_kill() {
    local pf=$VM_WORK/$1.vhost.pid pid n=0
    pid=$(cat "$pf")
    {   # quietly: bash reports a killed job ("Killed ...") on stderr when it notices
        kill -9 "$pid"
        while kill -0 "$pid" && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
        wait "$pid" || true
    } 2>/dev/null
    rm -f "$pf"
}

# vm_boot TAG MEM_MB TIMEOUT_S APPEND [BALLOON_MB]
#   Boots the guest on TAG's disk with MEM_MB of RAM and kernel parameters APPEND; waits for
#   it to power off (at most TIMEOUT_S).  If the guest prints BALLOON-REQUEST, the balloon is
#   set to BALLOON_MB over QMP.  Output: TAG.console, TAG.steps.  Fails on GUEST-ERROR.
#   Optional settings, as environment of the call (`VM_DISK=vhost VM_QUEUES=2 vm_boot ...`):
#     VM_DISK=nbd|vhost  the disk: TAG's NBD export (default) or the vhost-user-blk backend on
#                        TAG.vhost.sock (guest RAM then a share=on memfd, as vhost-user needs)
#     VM_QUEUES=N        vhost: the device's queues, and the guest's vCPUs (default 1)
#     VM_RECONNECT=1     vhost: QEMU reconnects to a backend that went away (each second)
#     VM_REBOOT=1        a guest reboot restarts the guest (default: it ends the run)
#     VM_HOOK=FUNC       FUNC LINE is called for each new RESULT-GUEST line while the guest runs
#     VM_RSTATS_KEYS="K.." more counters of TAG.rstats appended to each steps line (as r_K=)
#     VM_INITRD_EXTRA=F  a second cpio archive appended to the guest's initramfs (mkguest.sh --fio)
vm_boot() {
    local tag=$1 mem=$2 tmo=$3 append=$4 balloon=${5:-}
    local con=$VM_WORK/$tag.console steps=$VM_WORK/$tag.steps qmp=$VM_WORK/$tag.qmp
    local pf=$VM_WORK/$tag.qemu.pid seen=0 ballooned=0 n line
    local machine=(-m "$mem") disk=()
    vm_disk_args "$tag" "$mem"
    # A vhost-user disk may run in exclusive mode, which infers an eviction when a read reuses a
    # guest page and saves the page's old block first.  Debian's kernel zeroes every page it
    # allocates (init_on_alloc=1), which wipes the old block before the read is even sent:
    # every eviction would be a mismatch.  Such guests need init_on_alloc=0 (docs/vhost.md).
    [ "${VM_DISK:-nbd}" = vhost ] && append="init_on_alloc=0 $append"
    [ "${VM_REBOOT:-0}" = 1 ] || machine+=(-no-reboot)
    rm -f "$con" "$steps" "$qmp"
    : > "$steps"
    local initrd=$VM_GUEST/initrd.gz
    if [ -n "${VM_INITRD_EXTRA:-}" ]; then # concatenated archives: the kernel unpacks both
        initrd=$VM_WORK/$tag.initrd
        cat "$VM_GUEST/initrd.gz" "$VM_INITRD_EXTRA" > "$initrd"
    fi
    timeout "$tmo" qemu-system-x86_64 -accel "$VM_ACCEL" "${machine[@]}" \
        -nodefaults -display none -serial "file:$con" \
        -kernel "$VM_GUEST/vmlinuz" -initrd "$initrd" \
        -append "console=ttyS0 quiet $append" \
        "${disk[@]}" \
        -device virtio-balloon-pci -qmp "unix:$qmp,server=on,wait=off" \
        >"$VM_WORK/$tag.qemu.out" 2>&1 &
    echo $! > "$pf"
    VM_PIDFILES+=("$pf")
    local qpid
    qpid=$(cat "$pf")
    while :; do
        local alive=0
        kill -0 "$qpid" 2>/dev/null && alive=1
        if [ -f "$con" ]; then
            # complete lines only: a snapshot of the console without its unfinished last line
            cp "$con" "$VM_WORK/$tag.snap"
            if [ -n "$(tail -c1 "$VM_WORK/$tag.snap")" ]; then
                head -n -1 "$VM_WORK/$tag.snap"
            else
                cat "$VM_WORK/$tag.snap"
            fi | grep -a '^RESULT-GUEST' | tr -d '\r' > "$VM_WORK/$tag.lines" || true
            n=$(wc -l < "$VM_WORK/$tag.lines")
            if [ "$n" -gt "$seen" ]; then
                local b r="" ino w=0
                if [ -f "$VM_WORK/$tag.rstats" ]; then
                    # wait for the filter's next rewrite (a rename: new inode) to count this step
                    ino=$(stat -c %i "$VM_WORK/$tag.rstats")
                    while [ "$(stat -c %i "$VM_WORK/$tag.rstats")" = "$ino" ] && [ $w -lt 15 ]; do
                        sleep 0.1; w=$((w + 1))
                    done
                fi
                b=$(vm_backing "$tag")
                if [ -f "$VM_WORK/$tag.rstats" ]; then
                    local key
                    for key in read_blocks remote_hits ${VM_RSTATS_KEYS:-}; do
                        r+=" r_$key=$(vm_kv "$VM_WORK/$tag.rstats" "$key")"
                    done
                fi
                tail -n +$((seen + 1)) "$VM_WORK/$tag.lines" |
                    while read -r line; do
                        echo "$line backing_reads=${b% *} backing_bytes=${b#* }$r"
                    done >> "$steps"
                if [ -n "${VM_HOOK:-}" ]; then
                    while read -r line; do "$VM_HOOK" "$line"; done \
                        < <(tail -n +$((seen + 1)) "$VM_WORK/$tag.lines")
                fi
                seen=$n
            fi
            if [ -n "$balloon" ] && [ $ballooned = 0 ] && grep -aq '^BALLOON-REQUEST' "$con"; then
                python3 "$VM_HERE/qmp.py" "$qmp" balloon "{\"value\": $((balloon * 1024 * 1024))}" >/dev/null ||
                    vm_log "QMP balloon failed"
                ballooned=1
            fi
        fi
        [ $alive = 1 ] || break
        sleep 0.1
    done
    wait "$qpid" 2>/dev/null
    local rc=$?
    rm -f "$pf"
    if grep -aq '^GUEST-ERROR' "$con"; then
        vm_log "guest $tag failed: $(grep -a '^GUEST-ERROR' "$con" | head -1)"
        return 1
    fi
    grep -aq '^GUEST-DONE' "$con" || { vm_log "guest $tag did not finish (qemu rc=$rc); console tail:"; tail -5 "$con" >&2; return 1; }
    return 0
}

# vm_step TAG STEP KEY: value of KEY on the steps line of STEP (e.g. vm_step t1 pass2 s).
vm_step() {
    awk -v st="step=$2" -v k="$3=" '{ f = 0; for (i = 1; i <= NF; i++) if ($i == st) f = 1
        if (f) for (i = 1; i <= NF; i++) if (index($i, k) == 1) { print substr($i, length(k) + 1); exit } }' \
        "$VM_WORK/$1.steps"
}

# vm_kv FILE KEY: value of KEY in a key=value file (remoca statsfile, flattened memd stats).
vm_kv() {
    awk -F= -v k="$2" '$1 == k { print $2; exit }' "$1" 2>/dev/null
}
