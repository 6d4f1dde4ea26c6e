"""Datasets by Hugging Face name, from a hub speaking the hub's parquet-listing protocol on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow
import pyarrow.parquet as parquet
import pytest

from repoforge.harness import hub
from repoforge.harness.dataset import DatasetError, load_dataset

NAME = "example-org/SWE-bench_Tiny"


def swebench_row(number: int) -> dict:
    """A row as SWE-bench publishes it: FAIL_TO_PASS / PASS_TO_PASS as JSON-encoded strings."""
    return {
        "repo": "example/calcpkg",
        "instance_id": f"example__calcpkg-{number}",
        "base_commit": "a" * 40,
        "patch": "diff --git a/x.py b/x.py\n",
        "test_patch": "diff --git a/test_x.py b/test_x.py\n",
        "problem_statement": "add() is wrong",
        "hints_text": "",
        "created_at": "2023-03-05T10:00:00Z",
        "version": "0.1",
        "FAIL_TO_PASS": json.dumps([f"test_x.py::test_{number}"]),
        "PASS_TO_PASS": "[]",
        "environment_setup_commit": "b" * 40,
    }


class FakeHub(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    requests: list[str] = []

    def do_GET(self):
        self.requests.append(self.path)
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b'{"error": "not found"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    base = f"http://127.0.0.1:{server.server_port}"
    shards = []
    for number, rows in enumerate([[swebench_row(1), swebench_row(2)], [swebench_row(3)]]):
        parquet.write_table(pyarrow.Table.from_pylist(rows), tmp_path / f"{number}.parquet")
        shards.append(
            (
                f"/api/datasets/{NAME}/parquet/default/test/{number}.parquet",
                (tmp_path / f"{number}.parquet").read_bytes(),
            )
        )
    listing = {"default": {"test": [base + path for path, _ in shards], "dev": []}}
    FakeHub.files = {f"/api/datasets/{NAME}/parquet": json.dumps(listing).encode(), **dict(shards)}
    FakeHub.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", base)
    yield server
    server.shutdown()


def test_a_hub_name_is_downloaded_once_and_read_like_a_file(fake_hub, tmp_path):
    cache = tmp_path / "cache"
    assert hub.is_hub_name(NAME) and hub.is_hub_name(f"{NAME}:test") and not hub.is_hub_name("data/rows.jsonl")
    rows, skipped = load_dataset(hub.download(NAME, cache))
    assert skipped == {}
    assert [r.instance_id for r in rows] == ["example__calcpkg-1", "example__calcpkg-2", "example__calcpkg-3"]
    assert rows[1].FAIL_TO_PASS == ["test_x.py::test_2"]
    assert len(FakeHub.requests) == 3
    fake_hub.shutdown()  # the hub goes away: the cached split still reads
    again, _ = load_dataset(hub.download(f"{NAME}:test", cache))
    assert again == rows


def test_unknown_split_and_dataset_say_what_exists(fake_hub, tmp_path):
    with pytest.raises(DatasetError, match=r"has no split 'train' \(it has: dev, test\)"):
        hub.download(f"{NAME}:train", tmp_path)
    with pytest.raises(DatasetError, match="answered 404 for nobody/nothing: no such dataset"):
        hub.download("nobody/nothing", tmp_path)


def test_unreachable_hub_is_a_clear_cli_error(tmp_path):
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "PATH": str(Path(sys.executable).parent), "COLUMNS": "300"}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "repoforge"),
            "eval",
            "--dataset",
            NAME,
            "--predictions",
            "gold",
            "--run-id",
            "r",
            "--store",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "cannot read example-org/SWE-bench_Tiny from the hub at http://127.0.0.1:9" in output
    assert "Traceback" not in output
    assert not (tmp_path / "datasets" / "example-org__SWE-bench_Tiny" / "test").exists()
