#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""flatjson.py < JSON: prints a JSON document as flat key=value lines, one per scalar.

Nested keys are joined with dots and list items by index (pools.0.hits=12), so shell scripts
can pick counters out of `remoca stats --json` with grep or awk without a JSON parser.
"""
import json
import sys


def walk(prefix, value):
    if isinstance(value, dict):
        for k, v in value.items():
            walk(prefix + "." + str(k) if prefix else str(k), v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            walk(prefix + "." + str(i) if prefix else str(i), v)
    else:
        if isinstance(value, bool):
            value = int(value)
        print("%s=%s" % (prefix, value))


text = sys.stdin.read()
if text.strip():
    walk("", json.loads(text))
