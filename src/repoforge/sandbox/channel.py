"""A reused container's commands over one long-lived `docker exec`, which channel_server.py serves in the container.

A command then costs a round trip on its pipes (under a millisecond) instead of a `docker exec` of its own (0.1 s
here). Written here, not found: Docker's API offers no persistent exec session, only one process per exec.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import struct
import subprocess
import time
from pathlib import Path

from repoforge.sandbox.base import DRAIN_SECONDS, TESTBED, Captured, HeadAndTail

SERVER = (Path(__file__).parent / "channel_server.py").read_text()
# For the server to say it is ready, and to take a command: one that an instance stopped or killed never does.
ANSWER_SECONDS = 30.0


class ChannelBroken(Exception):
    """The server is gone or does not answer: the container is no longer trusted. `partial` is what the command
    printed before, when it had started."""

    def __init__(self, reason: str, partial: Captured | None = None):
        super().__init__(reason)
        self.partial = partial


def server_argv(python: str) -> list[str]:
    """The server on `python`, ignoring the environment's PYTHON* variables and site-packages."""
    return [python, "-E", "-s", "-S", "-c", SERVER]


class Channel:
    """The client of a server started by `argv` (`docker exec -i ...` and server_argv), whose commands run in `cwd`."""

    def __init__(self, argv: list[str], cwd: str = TESTBED):
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
        )
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.reader, self.writer = selectors.DefaultSelector(), selectors.DefaultSelector()
        self.reader.register(self.proc.stdout, selectors.EVENT_READ)
        self.writer.register(self.proc.stdin, selectors.EVENT_WRITE)
        self.buffer, self.cwd = bytearray(), cwd
        self.pending: tuple[float | None, int] | None = None  # a submitted command's timeout and max_output
        try:
            if self._frame(time.monotonic() + ANSWER_SECONDS)[0] != b"r":
                raise ChannelBroken("the server did not start")
        except ChannelBroken:
            self.close()
            raise

    def run(self, *request, **options) -> Captured:
        """submit(), then collect() its result."""
        self.submit(*request, **options)
        return self.collect()

    def submit(
        self,
        command: str,
        input: bytes | None,
        reset: bool,
        timeout: float | None,
        max_output: int,
        drop_net_admin: bool = True,
    ) -> None:
        """Send `command` (bash, run in /testbed) without waiting for it; collect() waits for its result. It is killed
        with what it started after `timeout` seconds; `reset` kills every other process of the container first. The
        server keeps CAP_NET_ADMIN only until a command that does not ask to keep it (the container's set-up does)."""
        header = {"cwd": self.cwd, "reset": reset, "drain": DRAIN_SECONDS, "timeout": timeout}
        request = json.dumps({**header, "drop_net_admin": drop_net_admin}).encode()
        frames = [(b"h", request), (b"c", command.encode()), (b"i", input or b"")]
        self._send(b"".join(kind + struct.pack(">I", len(data)) + data for kind, data in frames))
        self.pending = (timeout, max_output)

    def collect(self) -> Captured:
        """The result of the command submitted last."""
        timeout, max_output = self.pending
        self.pending = None
        if self._frame(time.monotonic() + ANSWER_SECONDS)[0] != b"a":
            raise ChannelBroken("the server did not take the command")
        # The client's minute more than the command, as for a `docker exec` of its own.
        deadline = time.monotonic() + timeout + 60 if timeout else None
        output = HeadAndTail(max_output)
        while True:
            try:
                kind, data = self._frame(deadline)
            except ChannelBroken as broken:
                late = deadline is not None and time.monotonic() >= deadline
                raise ChannelBroken(str(broken), Captured(-signal.SIGKILL, output.text(), late)) from broken
            if kind == b"x":
                return Captured(struct.unpack(">i", data)[0], output.text(), False)
            output.add(data)

    def _send(self, data: bytes) -> None:
        pending, deadline = memoryview(data), time.monotonic() + ANSWER_SECONDS
        while pending:
            if not self.writer.select(deadline - time.monotonic()):
                raise ChannelBroken("the server did not read the command")
            try:
                pending = pending[os.write(self.proc.stdin.fileno(), pending[: 1 << 16]) :]
            except BlockingIOError:
                continue
            except BrokenPipeError as gone:
                raise ChannelBroken("the server is gone") from gone

    def _frame(self, deadline: float | None) -> tuple[bytes, bytes]:
        """The next frame the server sends, by `deadline`."""
        while len(self.buffer) < 5 or len(self.buffer) < 5 + struct.unpack(">I", self.buffer[1:5])[0]:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise ChannelBroken("the server did not answer in time")
            if not self.reader.select(wait):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                raise ChannelBroken("the server is gone")
            self.buffer += chunk
        size = struct.unpack(">I", self.buffer[1:5])[0]
        kind, data = bytes(self.buffer[:1]), bytes(self.buffer[5 : 5 + size])
        del self.buffer[: 5 + size]
        return kind, data

    def close(self) -> None:
        """End the client; the server ends with the container, or on its closed stdin."""
        self.reader.close()
        self.writer.close()
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()
