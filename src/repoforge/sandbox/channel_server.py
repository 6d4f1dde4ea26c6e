"""Runs a reused container's commands one after another, as the host sends them over the pipes of one `docker exec`.

It runs in the container on the environment's own interpreter (any CPython the builder may choose, 3.6 on). It makes
itself non-dumpable first: the code it runs (root, but without CAP_SYS_PTRACE) then cannot open its /proc files,
so it cannot reach these pipes to forge a reply. Frames both ways: a kind byte, a 4-byte length, the payload.
From the host, per command: "h" a JSON header {cwd, reset, drain, timeout, drop_net_admin}, "c" the command, "i" its
stdin. To the host: "r" once ready, then per command "a" (accepted), "o" output chunks, and "x" the exit code (128 +
signal when killed). The server keeps each command's time itself, and drops CAP_NET_ADMIN for good when a command
asks it to (every command after the container's set-up), so a command costs no `timeout` or `setpriv` of its own.
"""

import ctypes
import errno
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
CAP_NET_ADMIN = 12
CAPS_V3 = 0x20080522
CHUNK = 1 << 16
LIBC = ctypes.CDLL(None, use_errno=True)


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_net_admin():
    """Out of the bounding, ambient, inheritable, permitted and effective sets: no command started later has it."""
    header, data = CapHeader(CAPS_V3, 0), (CapData * 2)()
    bit = ~(1 << CAP_NET_ADMIN) & 0xFFFFFFFF
    failed = LIBC.prctl(PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0) != 0
    failed = failed or LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0
    failed = failed or LIBC.capget(ctypes.byref(header), data) != 0
    data[0].effective &= bit
    data[0].permitted &= bit
    data[0].inheritable &= bit
    if failed or LIBC.capset(ctypes.byref(header), data) != 0:
        sys.exit("dropping CAP_NET_ADMIN failed: " + os.strerror(ctypes.get_errno()))


def send(kind, payload):
    data = kind + struct.pack(">I", len(payload)) + payload
    while data:
        data = data[os.write(1, data) :]


def read_exactly(size):
    chunks, left = [], size
    while left:
        chunk = os.read(0, min(left, CHUNK))
        if not chunk:
            sys.exit(0)  # the host closed the channel
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive():
    kind, size = struct.unpack(">cI", read_exactly(5))
    return kind, read_exactly(size)


def run(request, command, stdin):
    if request["drop_net_admin"]:
        drop_net_admin()
    if request["reset"]:
        try:  # every process but this one and pid 1: what an earlier instance left running
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    child = subprocess.Popen(
        [b"bash", b"-c", command],
        cwd=request["cwd"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its `kill 0` reaches the command's processes, not this server
    )
    send(b"a", b"")
    deadline = time.monotonic() + request["timeout"] if request["timeout"] else None
    out, into = child.stdout.fileno(), child.stdin.fileno()
    fcntl.fcntl(into, fcntl.F_SETFL, fcntl.fcntl(into, fcntl.F_GETFL) | os.O_NONBLOCK)
    pending, ended = stdin, None
    while True:
        if not pending and into is not None:
            child.stdin.close()
            into = None
        now = time.monotonic()
        if ended is None and child.poll() is not None:
            ended = now
        if ended is None and deadline is not None and now >= deadline:
            kill_group(child.pid)  # as `timeout -s KILL` would: the command and what it started
            deadline = None
        if ended is not None:  # a process the command left holding the pipe is read for `drain` seconds at most
            wait = ended + request["drain"] - now
            if wait <= 0:
                break
        else:
            wait = 0.5 if deadline is None else min(0.5, deadline - now)
        readable, writable, _ = select.select([out], [into] if into is not None else [], [], wait)
        if writable:
            try:
                pending = pending[os.write(into, pending[:CHUNK]) :]
            except OSError as error:
                if error.errno != errno.EAGAIN:
                    pending = b""  # the command stopped reading its stdin
        if readable:
            chunk = os.read(out, CHUNK)
            if not chunk:
                break
            send(b"o", chunk)
    child.stdout.close()
    if into is not None:
        child.stdin.close()
    code = child.wait()
    send(b"x", struct.pack(">i", 128 - code if code < 0 else code))


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass  # gone already


def main():
    if LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_DUMPABLE) failed")
    send(b"r", b"")
    while True:
        request, command, stdin = [receive()[1] for _ in range(3)]
        run(json.loads(request.decode("utf-8")), command, stdin)


main()
