import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import ray

from repoforge.runner import SLOT

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    """One environment store for the session, so instances of one dependency set share a build."""
    return tmp_path_factory.mktemp("store")


RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_node_cluster():
    """A head and a second raylet on this machine, stopped by their own `ray start --block` processes."""
    ray.shutdown()
    temp = tempfile.mkdtemp(prefix="rf-ray-")  # short: Ray's unix socket paths under it must fit 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    port = _free_port()
    slot = ["--resources", json.dumps({SLOT: 1}), "--num-cpus=1", "--block"]
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--include-dashboard=false", f"--temp-dir={temp}", *slot],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    procs = [head]
    try:
        address = f"127.0.0.1:{port}"
        wait_for(lambda: _answers(port), "head")
        procs.append(subprocess.Popen([RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1", *slot],
                                      env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.STDOUT))
        yield address
    finally:
        ray.shutdown()
        for proc in reversed(procs):  # SIGTERM makes `ray start --block` stop the node's own processes
            proc.terminate()
            proc.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_for(check, what: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, f"{what} did not come up"
        time.sleep(0.5)
