"""An OpenAI-compatible server for a local model folder on loopback: `transformers serve`, an existing server,
started as a process of its own and awaited until it answers."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


class ServeError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`transformers serve FOLDER` on 127.0.0.1:port; `with Server(...) as server:` stops it at the end."""

    def __init__(self, folder: Path, port: int | None = None, log: Path | None = None, host: str = "127.0.0.1"):
        self.folder = folder
        self.host = host
        self.port = port or free_port()
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def model(self) -> str:
        """The name requests give: the folder the server was started with."""
        return str(self.folder)

    def start(self, timeout: float = 180) -> Server:
        command = [_transformers_command(), "serve", str(self.folder), "--host", self.host, "--port", str(self.port)]
        if self.log:
            self.log.parent.mkdir(parents=True, exist_ok=True)
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL
        # Offline: the folder is all the server needs, and a hub lookup would only wait on the network.
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self._await(timeout)
        return self

    def _await(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServeError(
                    f"transformers serve exited with {self.process.returncode}; see {self.log or 'its output'}"
                )
            if self.answering(self.base_url):
                return
            time.sleep(0.5)
        self.stop()
        raise ServeError(f"transformers serve did not answer at {self.base_url} within {timeout:.0f} s")

    @staticmethod
    def answering(base_url: str) -> bool:
        """Whether an OpenAI-compatible server at base_url lists its models."""
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                return "data" in json.load(response)
        except (OSError, ValueError):
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the server and what it started
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> Server:
        return self if self.process else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _die_with_parent() -> None:
    """The server ends with the process that started it, however that ends: killed, or by Ray's SIGTERM handler,
    which exits at once and runs no `finally`. SIGKILL: on SIGTERM the server would first finish the generations in
    flight (minutes on a CPU) for a client that is gone."""
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _transformers_command() -> str:
    beside = Path(sys.executable).parent / "transformers"
    found = str(beside) if beside.exists() else shutil.which("transformers")
    if not found:
        raise ServeError("`transformers` is not installed: install repoforge's models extra (pip install -e .[models])")
    return found
