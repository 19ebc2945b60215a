#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""layering.py BUILD_DIR: proves that the build enforces libremoca's layering
(lib/README.md): for a source file of each layer, its exact compile command
(from BUILD_DIR/compile_commands.json) compiles a file that includes a header
of its own layer or a lower one, and FAILS to compile a file that includes a
header of a layer above it.

    layer (a source file of it)   must see               must not see
    remoca_wire   lib/wire/wire.c  remoca/wire.h          remoca/client.h, remoca/cache.h
    remoca_client lib/client/...   remoca/wire.h, client  remoca/cache.h
    memd_core     memd/store.c     remoca/wire.h          remoca/client.h, remoca/cache.h
    remoca_cache  lib/cache/...    all three              remoca/seal.h
    remoca_seal   lib/seal/seal.c  all four               -
"""
import json, os, shlex, subprocess, sys, tempfile

build = sys.argv[1]
src = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
with open(os.path.join(build, 'compile_commands.json')) as f:
    commands = {os.path.realpath(e['file']): e for e in json.load(f)}

CASES = [
    ('lib/wire/wire.c', ['remoca/wire.h', 'remoca/shm.h'], ['remoca/client.h', 'remoca/cache.h']),
    ('lib/client/client.c', ['remoca/wire.h', 'remoca/client.h'], ['remoca/cache.h']),
    ('memd/store.c', ['remoca/wire.h', 'remoca/size.h'], ['remoca/client.h', 'remoca/cache.h']),
    ('lib/cache/cache.c', ['remoca/wire.h', 'remoca/client.h', 'remoca/cache.h'], ['remoca/seal.h']),
    ('lib/seal/seal.c', ['remoca/wire.h', 'remoca/client.h', 'remoca/cache.h', 'remoca/seal.h'], []),
]

def compiles(entry, header, tmpdir):
    probe = os.path.join(tmpdir, 'probe.c')
    with open(probe, 'w') as f:
        f.write('#include "%s"\nint layering_probe(void);\nint layering_probe(void) { return 0; }\n' % header)
    args = entry['arguments'] if 'arguments' in entry else shlex.split(entry['command'])
    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == '-o':
            skip = True
            continue
        if os.path.realpath(os.path.join(entry['directory'], a)) == os.path.realpath(entry['file']):
            continue
        if a in ('-c',) or a.startswith('-MF') or a in ('-MD', '-MMD', '-MT', '-MQ'):
            continue
        out.append(a)
    out += ['-fsyntax-only', probe]
    r = subprocess.run(out, cwd=entry['directory'], capture_output=True, text=True)
    return r.returncode == 0

failed = 0
with tempfile.TemporaryDirectory() as tmp:
    for rel, allowed, forbidden in CASES:
        entry = commands.get(os.path.realpath(os.path.join(src, rel)))
        if entry is None:
            print('FAIL: %s is not in compile_commands.json' % rel)
            failed += 1
            continue
        for h in allowed:
            ok = compiles(entry, h, tmp)
            print('%s: %-16s %s' % (rel, h, 'visible (ok)' if ok else 'NOT VISIBLE (fail)'))
            failed += not ok
        for h in forbidden:
            ok = compiles(entry, h, tmp)
            print('%s: %-16s %s' % (rel, h, 'VISIBLE (fail)' if ok else 'refused (ok)'))
            failed += ok
print('PASS' if not failed else 'FAIL: %d layering violations' % failed)
sys.exit(1 if failed else 0)
