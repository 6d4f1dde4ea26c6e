"""The docker backend with a real engine: same instances as the process backend, no future history,
no network, leftovers of crashed runs removed. Skipped where no engine answers (.ci/run starts one)."""

from __future__ import annotations

import json
import socket
import subprocess

import calcpkg
import pytest
import repos
from conftest import http_service

from repoforge.forge import ForgeOptions, forge
from repoforge.harness.dataset import load_dataset, load_predictions
from repoforge.harness.evaluate import EvalOptions, evaluate
from repoforge.sandbox.docker import DockerBackend, DockerSandbox, base_ref, docker, engine_answers, instance_ref
from repoforge.store import disk_usage

FIX_ID = "example__calcpkg-12"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers here (.ci/run starts one)")]


def forged(out, store, sources, sandbox):
    report = forge([str(s) for s in sources], ForgeOptions(out=out, store=store, timeout=15, sandbox=sandbox))
    rows = [json.loads(line) for line in (out / "instances.jsonl").read_text().splitlines()]
    return {r["instance_id"]: (r["FAIL_TO_PASS"], r["PASS_TO_PASS"]) for r in rows}, report


@pytest.fixture(scope="module")
def runs(tmp_path_factory, store):
    tmp = tmp_path_factory.mktemp("docker")
    calc = calcpkg.build(tmp / "calcpkg")
    greeter = repos.setup_py_only(tmp / "greeter")
    by_process = forged(tmp / "process", store, [calc.path, greeter.path], "process")
    by_docker = forged(tmp / "docker", store, [calc.path, greeter.path], "docker")
    return calc, by_process, by_docker, tmp


def test_evaluation_in_docker_sandboxes_grades_as_swebench(runs, store):
    """Gold patches resolve, a wrong fix fails exactly its FAIL_TO_PASS tests; every run in a container."""
    tmp = runs[3]
    rows, _ = load_dataset(tmp / "docker" / "instances.jsonl")
    mirror = tmp / "mirror"  # where eval finds each row's repository, by owner__name
    mirror.mkdir()
    for name in {r.repo for r in rows}:
        (mirror / name.replace("/", "__")).symlink_to(tmp / name.split("/")[1])
    predictions = load_predictions("gold", rows)
    wrong = predictions[FIX_ID].model_patch.replace("+    return a + b", "+    return a * b")
    predictions[FIX_ID] = predictions[FIX_ID].model_copy(update={"model_patch": wrong})
    opts = EvalOptions(run_id="docker-run", store=store, log_dir=tmp / "logs", report_dir=tmp, repo_mirror=mirror,
                       sandbox="docker", timeout=60)
    report, _ = evaluate(rows, predictions, opts, workers=2)
    assert report["resolved_ids"] == sorted(r.instance_id for r in rows if r.instance_id != FIX_ID)
    assert report["unresolved_ids"] == [FIX_ID] and report["error_ids"] == []
    graded = json.loads((tmp / "logs" / "docker-run" / "gold" / FIX_ID / "report.json").read_text())[FIX_ID]
    assert graded["tests_status"]["FAIL_TO_PASS"]["failure"] == ["tests/test_calc.py::test_add",
                                                                 "tests/test_calc.py::test_add_negative"]
    assert graded["tests_status"]["PASS_TO_PASS"]["success"] == ["tests/test_calc.py::test_mul"]


def test_docker_yields_the_instances_the_process_backend_yields(runs):
    _, (process_rows, process_report), (docker_rows, docker_report), _ = runs
    assert len(docker_rows) == 4
    assert docker_rows == process_rows
    assert docker_report["counts"]["rejected"] == process_report["counts"]["rejected"]


def test_instance_container_holds_no_commit_newer_than_its_base(runs):
    calc = runs[0]
    base, fix = calc._git("rev-list", "--reverse", "HEAD").split()[:2]
    box = DockerSandbox(instance_ref(FIX_ID))
    try:
        assert box.exec("git rev-list --all").output.split() == [base]
        assert box.exec(f"git cat-file -e {fix}").exit_code != 0
        assert box.exec("git for-each-ref").output.strip() == ""
        assert box.exec("git reflog").output.strip() == ""
        assert box.exec("git status --porcelain").output.strip() == ""
    finally:
        box.close()


def test_tests_cannot_reach_the_network_and_connects_time_out(runs):
    box = DockerSandbox(instance_ref(FIX_ID))
    probe = ("python -c \"import socket\ns = socket.socket(); s.settimeout(1)\n"
             "try:\n    s.connect(('192.0.2.1', 80))\nexcept Exception as e:\n    print(type(e).__name__)\"")
    try:
        assert box.exec(probe).output.strip() in {"timeout", "TimeoutError"}
        assert box.exec("grep nameserver /etc/resolv.conf").output.split() == ["nameserver", "127.0.0.1"]
        lookup = box.exec("python -c \"import socket; socket.getaddrinfo('pypi.org', 443)\"")
        assert lookup.exit_code != 0 and "gaierror" in lookup.output
    finally:
        box.close()


def test_network_on_request_puts_the_container_on_dockers_bridge(runs, tmp_path):
    """`eval --network`: the instance's container reaches a server on the host's bridge address; offline, it cannot."""
    bridge = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True)
    bridge = bridge.stdout.split()
    if "inet" not in bridge:
        pytest.skip("the Docker engine's bridge is not on this host")
    host = bridge[bridge.index("inet") + 1].split("/")[0]
    calc = runs[0]
    base = calc._git("rev-list", "--reverse", "HEAD").split()[0]
    env_ref = docker("image", "inspect", "--format", '{{index .Config.Labels "repoforge.parent"}}',
                     instance_ref(FIX_ID)).stdout.decode().strip()
    with http_service(host) as port:
        probe = f"python -c \"import urllib.request; urllib.request.urlopen('http://{host}:{port}/', timeout=5)\""
        for network in (True, False):
            box = DockerBackend().instance_sandbox(calc.path, base, env_ref, FIX_ID, tmp_path, network=network)
            try:
                assert (box.exec(probe, timeout=60).exit_code == 0) is network
            finally:
                box.close()


def test_crashed_runs_containers_are_removed_by_the_next(runs):
    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: its pid names no live process
    dead_pid = finished.pid
    labels = ["--label", "repoforge.kind=sandbox", "--label", f"repoforge.pid={dead_pid}",
              "--label", f"repoforge.host={socket.gethostname()}"]
    leftover = docker("run", "-d", *labels, base_ref("3.11"), "sleep", "infinity").stdout.decode().strip()
    DockerBackend()
    assert docker("ps", "-aq", "--filter", f"id={leftover}").stdout.decode().strip() == ""


def test_store_counts_shared_layers_once(runs):
    usage = disk_usage()
    ours = [i for i in usage.images if i.ref.startswith("repoforge-instance:example__")]
    assert len(ours) >= 4
    for image in ours:
        assert image.own_bytes < 5_000_000  # the repository alone; the environment is shared
        assert image.apparent_bytes > 50_000_000  # what a full image per instance would carry
    assert usage.unique_bytes < usage.full_image_per_instance_bytes
