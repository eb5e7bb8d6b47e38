#!/usr/bin/env python3
"""QMP conformance: one session against QEMU and against vccid, shapes compared.

The same script of requests (negotiation, queries, a command before
negotiation, an unknown command, bad arguments, malformed JSON, a
ccid-card-passthru added on a chardev made over QMP and deleted again,
quit) runs against Debian's qemu-system-x86_64 (paused with -S, no guest
runs) and against vccid. Every reply and event is reduced to its shape:
member names and JSON types, the error class, the event name; not the
values. The two lists of shapes must be the same.

Python 3 standard library only. Exit 77 (skip) if QEMU is not installed.
usage: conformance.py --vccid PATH [--qemu PATH] [--verbose]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

# No __pycache__ in the source tree (qmpsock is imported from beside this file).
sys.dont_write_bytecode = True
from qmpsock import connect_unix  # noqa: E402

TIMEOUT = 20.0


class QMPClient:
    """A line-oriented QMP client: one JSON message per line."""

    def __init__(self, path):
        self.sock = connect_unix(path, TIMEOUT, 0.05)
        self.sock.settimeout(TIMEOUT)
        self.buf = b""

    def read(self, timeout=TIMEOUT):
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""     # the process exited (after quit)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send_raw(self, text):
        self.sock.sendall(text.encode() + b"\n")

    def transact(self, text):
        """Send one request; return every message up to and including its reply."""
        self.send_raw(text)
        msgs = []
        while True:
            msg = self.read()
            if msg is None:
                raise RuntimeError("connection closed waiting for a reply to %s" % text)
            msgs.append(msg)
            if "return" in msg or "error" in msg:
                return msgs

    def drain(self, wait):
        """Messages that arrive within wait seconds (events after a reply)."""
        msgs = []
        try:
            while True:
                msg = self.read(timeout=wait)
                if msg is None:
                    break
                msgs.append(msg)
        except socket.timeout:
            pass
        return msgs


def shape(value):
    """The type structure of a JSON value: what must agree, not what may differ."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        # Lists vary in length; their elements must all look alike.
        shapes = []
        for v in value:
            s = shape(v)
            if s not in shapes:
                shapes.append(s)
        return ["list-of", shapes[:1]]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "str"
    return "null"


def compatible(a, b):
    """Equal shapes, except that an empty list fits a list of anything.

    vccid advertises no capabilities where QEMU advertises "oob"."""
    if isinstance(a, list) and isinstance(b, list) and a and a[0] == "list-of":
        return b and b[0] == "list-of" and (not a[1] or not b[1] or
                                            compatible(a[1][0], b[1][0]))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(compatible(a[k], b[k]) for k in a)
    return a == b


def message_shape(msg):
    if "event" in msg:
        return {"event": msg["event"], "timestamp": shape(msg["timestamp"]),
                "data": shape(msg.get("data")),
                "members": sorted(msg.keys())}
    if "error" in msg:
        return {"error-class": msg["error"]["class"],
                "error": sorted(msg["error"].keys()),
                "members": sorted(msg.keys()),
                "id": shape(msg.get("id"))}
    if "return" in msg:
        return {"return": shape(msg["return"]), "members": sorted(msg.keys()),
                "id": shape(msg.get("id"))}
    if "QMP" in msg:
        return {"greeting": shape(msg)}
    return {"unknown": shape(msg)}


def session(path, workdir, name):
    """Run the script; return [(step, shape)] and the raw messages for the log."""
    c = QMPClient(path)
    out = []
    raw = []

    def record(step, msgs):
        for m in msgs:
            out.append((step, message_shape(m)))
            raw.append((step, m))

    record("greeting", [c.read()])
    # Each step: the request as sent (some are malformed on purpose).
    for step, request in [
        ("before-negotiation", '{"execute": "query-version", "id": "pre"}'),
        ("qmp_capabilities", '{"execute": "qmp_capabilities", "id": 1}'),
        ("query-version", '{"execute": "query-version"}'),
        ("query-commands", '{"execute": "query-commands"}'),
        ("query-status", '{"execute": "query-status"}'),
        ("unknown-command", '{"execute": "no-such-command", "id": [1, 2]}'),
        ("unexpected-argument", '{"execute": "query-status", "arguments": {"bogus": 1}}'),
        ("missing-argument", '{"execute": "device_del"}'),
        ("wrong-type", '{"execute": "device_del", "arguments": {"id": 1}}'),
        ("malformed-json", '{"execute": }'),
        ("not-an-object", '[1, 2]'),
        ("lacks-execute", '{"id": 5}'),
    ]:
        record(step, c.transact(request))
    sock = os.path.join(workdir, name + "-pt.sock")
    record("chardev-add", c.transact(json.dumps({
        "execute": "chardev-add",
        "arguments": {"id": "pt", "backend": {"type": "socket", "data": {
            "addr": {"type": "unix", "data": {"path": sock}},
            "server": True, "wait": False}}}})))
    record("device_add", c.transact(
        '{"execute": "device_add", "arguments": {"driver": "ccid-card-passthru", '
        '"id": "pt0", "chardev": "pt"}}'))
    record("device_add-duplicate", c.transact(
        '{"execute": "device_add", "arguments": {"driver": "ccid-card-passthru", '
        '"id": "pt0", "chardev": "pt"}}'))
    record("device_add-bad-driver", c.transact(
        '{"execute": "device_add", "arguments": {"driver": "no-such-device"}}'))
    record("qom-get", c.transact(
        '{"execute": "qom-get", "arguments": {"path": "/machine/peripheral/pt0", '
        '"property": "chardev"}}'))
    msgs = c.transact('{"execute": "device_del", "arguments": {"id": "pt0"}}')
    # DEVICE_DELETED may come before or after the return; wait for it.
    if not any(m.get("event") == "DEVICE_DELETED" for m in msgs):
        msgs += c.drain(2.0)
    record("device_del", [m for m in msgs if "event" not in m or m["event"] == "DEVICE_DELETED"])
    record("device_del-missing",
           c.transact('{"execute": "device_del", "arguments": {"id": "pt0"}}'))
    record("chardev-remove", c.transact('{"execute": "chardev-remove", "arguments": {"id": "pt"}}'))
    record("chardev-remove-missing",
           c.transact('{"execute": "chardev-remove", "arguments": {"id": "pt"}}'))
    msgs = c.transact('{"execute": "quit"}')
    msgs += c.drain(5.0)
    record("quit", [m for m in msgs if "event" not in m or m["event"] == "SHUTDOWN"])
    return out, raw


def run(cmd, path, workdir, name, verbose):
    log = open(os.path.join(workdir, name + ".log"), "w")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        shapes, raw = session(path, workdir, name)
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    if verbose:
        for step, m in raw:
            print("%s %-24s %s" % (name, step, json.dumps(m)))
    return shapes, proc.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vccid", required=True)
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"))
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if not args.qemu or not os.path.exists(args.qemu):
        print("SKIP: qemu-system-x86_64 not found")
        return 77

    workdir = tempfile.mkdtemp(prefix="vccid-qmp-conf-")
    try:
        qemu_sock = os.path.join(workdir, "qemu.sock")
        vccid_sock = os.path.join(workdir, "vccid.sock")
        # -S: nothing runs in the guest; QMP answers all the same.
        qemu_cmd = [args.qemu, "-S", "-M", "q35", "-accel", "tcg", "-nodefaults",
                    "-display", "none", "-device", "qemu-xhci",
                    "-device", "usb-ccid,id=ccid",
                    "-qmp", "unix:%s,server=on,wait=off" % qemu_sock]
        vccid_cmd = [args.vccid, "-device", "usb-ccid,id=ccid",
                     "-qmp", "unix:%s,server=on,wait=off" % vccid_sock]
        qemu_shapes, qemu_rc = run(qemu_cmd, qemu_sock, workdir, "qemu", args.verbose)
        vccid_shapes, vccid_rc = run(vccid_cmd, vccid_sock, workdir, "vccid", args.verbose)

        failures = 0
        if vccid_rc != 0:
            print("FAIL: vccid exited with %d after quit" % vccid_rc)
            failures += 1
        steps = [s for s, _ in qemu_shapes]
        if steps != [s for s, _ in vccid_shapes]:
            print("FAIL: message sequence differs:\n  qemu:  %s\n  vccid: %s"
                  % (steps, [s for s, _ in vccid_shapes]))
            failures += 1
        for (step, q), (_, v) in zip(qemu_shapes, vccid_shapes):
            if not compatible(q, v):
                print("FAIL: %s:\n  qemu:  %s\n  vccid: %s"
                      % (step, json.dumps(q, sort_keys=True), json.dumps(v, sort_keys=True)))
                failures += 1
        if failures:
            print("logs in %s" % workdir)
            return 1
        print("ok: %d messages, same shapes from QEMU (%s) and vccid" % (len(qemu_shapes),
                                                                         args.qemu))
        shutil.rmtree(workdir)
        return 0
    except Exception:
        print("logs in %s" % workdir)
        raise


if __name__ == "__main__":
    sys.exit(main())
