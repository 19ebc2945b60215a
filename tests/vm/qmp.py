#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""qmp.py SOCKET COMMAND [JSON-ARGUMENTS]: runs one QMP command on a QEMU monitor socket.

QMP (the QEMU Machine Protocol) is line-delimited JSON: the server greets, the client must
send qmp_capabilities, then each command gets one reply; asynchronous events (for example
BALLOON_CHANGE) may arrive in between and are skipped here.  Prints the command's "return"
value as JSON; exits 1 with the error's description if QEMU answers with an error.
Example: qmp.py vm.qmp balloon '{"value": 117440512}'
"""
import json
import socket
import sys


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    path, command = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3]) if len(sys.argv) == 4 else None
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(path)
    stream = sock.makefile("rw")

    def reply():
        while True:
            line = stream.readline()
            if not line:
                sys.exit("qmp: connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    reply()  # greeting
    for cmd, arguments in (("qmp_capabilities", None), (command, args)):
        req = {"execute": cmd}
        if arguments is not None:
            req["arguments"] = arguments
        stream.write(json.dumps(req) + "\n")
        stream.flush()
        msg = reply()
        if "error" in msg:
            sys.exit("qmp: %s: %s" % (cmd, msg["error"].get("desc", msg["error"])))
    print(json.dumps(msg.get("return")))


if __name__ == "__main__":
    main()
