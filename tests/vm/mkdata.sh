#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# mkdata.sh raw  OUT SIZE_MB          a raw disk of deterministic pseudo-random bytes
# mkdata.sh apps OUT DB_MB TREE_MB     an ext4 disk for the application workloads:
#     /db/data.sqlite   table docs(id, tag, body) of about DB_MB MiB (rows of ~1 KiB)
#     /tree/dNN/fNNNN   text files of 64-512 KiB, about TREE_MB MiB in all; some lines say "remoca"
#
# Everything is generated from fixed seeds (Python's random.Random(seed), SQL over a counter),
# and the file system is made with `mke2fs -t ext4 -d DIR` with a fixed UUID, hash seed and
# clock, so the same arguments give the same files and bytes on any Debian 12 machine (the ext4
# image itself may differ in a few dozen bytes: inode change times copied from DIR).  Pseudo-random rather than zero
# bytes, so no layer can shortcut the reads (sparse files, zero detection).  The result is cached:
# OUT.stamp records the arguments and this script's hash; nothing is rebuilt while it matches.
set -euo pipefail
kind=${1:?usage: mkdata.sh raw|apps OUT ...}
out=${2:?OUT}
shift 2
stamp="$kind $* $(sha256sum "$0" | cut -c1-16)"
if [ -f "$out" ] && [ -f "$out.stamp" ] && [ "$(cat "$out.stamp")" = "$stamp" ]; then
    exit 0
fi
rm -f "$out" "$out.stamp"
mkdir -p "$(dirname "$out")"
tmp=$out.tmp.$$    # private names: concurrent builds of the same image do not collide
trap 'rm -rf "$tmp" "$tmp.d"' EXIT

case $kind in
raw)
    mb=${1:?SIZE_MB}
    python3 - "$tmp" "$mb" <<'PY'
import random, sys
rng = random.Random(20100)
with open(sys.argv[1], "wb") as f:
    for _ in range(int(sys.argv[2])):
        f.write(rng.randbytes(1 << 20))
PY
    ;;
apps)
    db_mb=${1:?DB_MB} tree_mb=${2:?TREE_MB}
    dir=$tmp.d
    rm -rf "$dir"
    mkdir -p "$dir/db" "$dir/tree"
    rows=$((db_mb * 1024 * 1024 / 1100))
    sqlite3 "$dir/db/data.sqlite" >/dev/null <<SQL
PRAGMA page_size = 4096;
PRAGMA journal_mode = OFF;
CREATE TABLE docs (id INTEGER PRIMARY KEY, tag INTEGER NOT NULL, body TEXT NOT NULL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $rows)
INSERT INTO docs
SELECT x, (x * 2654435761) % 1000,
       printf('%d:', x) || substr(replace(hex(zeroblob(8)), '0', char(97 + x % 26)), 1, 16) ||
       printf('%0990d', (x * 7919) % 1000000007)
FROM c;
SQL
    python3 - "$dir/tree" "$tree_mb" <<'PY'
import os, random, sys
root, mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(2010)
words = ("cache page block disk guest host memory server remote virtual machine balloon "
         "thrash evict ghost pool read write flush sector queue latency").split()
lines = []
for i in range(60000):
    n = rng.randrange(4, 14)
    w = [rng.choice(words) for _ in range(n)]
    if rng.random() < 0.01:
        w[rng.randrange(n)] = "remoca"
    lines.append(" ".join(w) + "\n")
text = "".join(lines).encode()          # ~4.8 MB of text to cut files from
total, i = mb << 20, 0
while total > 0:
    size = min(total, rng.randrange(64, 513) << 10)
    off = rng.randrange(0, len(text) - size)
    d = os.path.join(root, "d%02d" % (i // 50))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d" % i), "wb") as f:
        f.write(("file %d\n" % i).encode() + text[off:off + size])
    total -= size
    i += 1
PY
    # everything the files need plus room for the metadata, in MiB
    size_mb=$(( ($(du -sm "$dir" | cut -f1) * 115 / 100) + 32 ))
    find "$dir" -exec touch -h -d @1262304000 {} +
    E2FSPROGS_FAKE_TIME=1262304000 mke2fs -q -F -t ext4 -b 4096 -L remoca-data -U 6f0b1a2c-5e6d-4c3b-9a8f-7e6d5c4b3a21 \
        -E root_owner=0:0,hash_seed=2f8c3d4e-1a2b-4c5d-8e9f-0a1b2c3d4e5f,lazy_itable_init=0 \
        -d "$dir" "$tmp" "${size_mb}M" >/dev/null
    rm -rf "$dir"
    ;;
*)
    echo "mkdata.sh: unknown kind $kind" >&2
    exit 2
    ;;
esac
mv "$tmp" "$out"
echo "$stamp" > "$out.stamp"
