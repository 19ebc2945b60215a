#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""steps.py STEPS_FILE REGEX: sums what the steps matching REGEX cost.

A steps file (written by vm_boot in tests/vm/lib.sh) has one line per guest measurement:
  RESULT-GUEST wl=thrash step=pass2 memtotal_kb=... s=2.31 backing_reads=812 backing_bytes=...
      [r_read_blocks=... r_remote_hits=... r_KEY=...]
where the counters are running totals taken when the host saw the line.  A step's own share of
a counter is its total minus the previous line's.  Prints, for the steps whose name matches
REGEX (a Python regular expression, matched in full):
  n=<steps> s=<summed guest seconds> reads=<backing reads> bytes=<backing bytes>
  blocks=<blocks the guest asked of the VMM> hits=<of them, served from remote memory>
  KEY=<share of r_KEY> for every other r_KEY counter on the lines (VM_RSTATS_KEYS)
"""
import re
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    pattern = re.compile(sys.argv[2])
    prev = {}
    tot = {"n": 0, "s": 0.0, "reads": 0, "bytes": 0, "blocks": 0, "hits": 0}
    names = {"reads": "backing_reads", "bytes": "backing_bytes",
             "blocks": "r_read_blocks", "hits": "r_remote_hits"}
    with open(sys.argv[1]) as f:
        for line in f:
            kv = dict(w.split("=", 1) for w in line.split() if "=" in w)
            if "step" not in kv:
                continue
            for key in kv:  # the other counters, by their own names
                if key.startswith("r_") and key not in names.values():
                    names.setdefault(key[2:], key)
                    tot.setdefault(key[2:], 0)
            if pattern.fullmatch(kv["step"]):
                tot["n"] += 1
                tot["s"] += float(kv.get("s", 0))
                for k, key in names.items():
                    if key in kv and kv[key] != "":
                        tot[k] += int(kv[key]) - int(prev.get(key) or 0)
            for key in names.values():
                if kv.get(key):
                    prev[key] = kv[key]
    print(" ".join("%s=%s" % (k, "%.2f" % v if k == "s" else v) for k, v in tot.items()))


if __name__ == "__main__":
    main()
