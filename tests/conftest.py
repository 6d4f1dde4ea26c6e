import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import ray

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    """One environment store for the session, so instances of one dependency set share a build."""
    return tmp_path_factory.mktemp("store")


REPOFORGE = str(Path(sys.executable).parent / "repoforge")


# A test_patch adding a test that reaches a public service: offline it fails on name resolution.
ONLINE_TEST = """\
diff --git a/tests/test_online.py b/tests/test_online.py
new file mode 100644
--- /dev/null
+++ b/tests/test_online.py
@@ -0,0 +1,5 @@
+import urllib.request
+
+
+def test_reads_the_package_index():
+    urllib.request.urlopen("https://pypi.org/simple/", timeout=10)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_node_cluster():
    """A head and a second node on this machine (`repoforge node start`), stopped by their `ray start --block`."""
    ray.shutdown()
    temp = tempfile.mkdtemp(prefix="rf-ray-")  # short: Ray's unix socket paths under it must fit 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    port = _free_port()
    ray_args = ["--", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--block"]
    head = subprocess.Popen(
        [REPOFORGE, "node", "start", f"--port={port}", "--slots=1", *ray_args, f"--temp-dir={temp}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    procs = [head]
    try:
        address = f"127.0.0.1:{port}"
        wait_for(lambda: _answers(port), "head")
        procs.append(
            subprocess.Popen(
                [REPOFORGE, "node", "start", f"--address={address}", "--slots=1", *ray_args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        )
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


class _Up(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"up")

    def log_message(self, *args):
        pass


@contextmanager
def http_service(host: str):
    """A server on `host` that answers every GET with b"up"; yields its port."""
    server = ThreadingHTTPServer((host, 0), _Up)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def instance(tmp_path):
    """(row, places): a real mined change of a real repository, found through a mirror as every command finds them."""
    from repos import setup_py_only

    from repoforge.git.locate import RepoPlaces
    from repoforge.mine import mine
    from repoforge.schema import TaskInstance

    mirror = tmp_path / "mirror"
    setup_py_only(mirror / "example__greeter")
    [candidate], _ = mine(mirror / "example__greeter", "example/greeter")
    row = TaskInstance(
        **candidate.model_dump(exclude={"commit", "test_files"}),
        FAIL_TO_PASS=["test_greeter.py::test_greet_number"],
        PASS_TO_PASS=["test_greeter.py::test_greet"],
        environment_setup_commit=candidate.base_commit,
    )
    return row, RepoPlaces(store=tmp_path / "store", mirror=mirror)


@pytest.fixture(scope="session")
def model_store(tmp_path_factory) -> Path:
    """A store holding the embedded model, converted once for the session (about a minute)."""
    store = tmp_path_factory.mktemp("model-store")
    from repoforge.llm.embedded import model_folder

    folder = model_folder(store)
    assert (folder / "config.json").is_file() and model_folder(store) == folder  # the second call converts nothing
    assert json.loads((folder / "generation_config.json").read_text())["do_sample"] is True
    return store


@pytest.fixture(scope="session")
def served(model_store):
    """(base URL, model name) of `repoforge serve` with the embedded model, started as a user starts it; stopped at
    the end as by a user's Ctrl-C."""
    serve = subprocess.Popen(
        [REPOFORGE, "serve", "--store", str(model_store)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        lines = [serve.stdout.readline() for _ in range(2)]
        [base_url] = [line.split(": ", 1)[1].strip() for line in lines if line.startswith("base URL:")]
        [model] = [line.split(": ", 1)[1].strip() for line in lines if line.startswith("model:")]
        yield base_url, model
    finally:
        os.killpg(
            serve.pid, signal.SIGINT
        )  # the server goes with it, even where SIGINT came ignored (a background job)
        assert serve.wait(timeout=30) == 0


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer model and a tokenizer trained on the spot (repoforge.train.tiny)."""
    from repoforge.train.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def forged(tmp_path_factory, store):
    """(folder, store, {instance_id: row}) of the calcpkg example forged on the process backend; its repository
    under folder/mirror."""
    import calcpkg

    from repoforge.forge import ForgeOptions, forge
    from repoforge.harness.dataset import load_dataset

    tmp = tmp_path_factory.mktemp("forged")
    repo = calcpkg.build(tmp / "mirror" / "example__calcpkg")
    forge([str(repo.path)], ForgeOptions(out=tmp / "forged", store=store, timeout=15, sandbox="process"))
    rows, _ = load_dataset(tmp / "forged" / "instances.jsonl")
    return tmp, store, {row.instance_id: row for row in rows}
