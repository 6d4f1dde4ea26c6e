"""The docker backend with a real engine: same Pythons and instances as the process backend, no future
history, no network, leftovers of crashed runs removed. Skipped where no engine answers (.ci/run starts one)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import calcpkg
import pytest
import repos
from conftest import http_service

from repoforge.env.python import available_pythons, inspect_interpreter
from repoforge.forge import ForgeOptions, forge
from repoforge.harness.dataset import load_dataset, load_predictions
from repoforge.harness.evaluate import EvalOptions, evaluate
from repoforge.sandbox import SandboxError, channel
from repoforge.sandbox.docker import (
    DockerBackend,
    DockerSandbox,
    docker,
    engine_answers,
    ensure_python,
    image_exists,
    instance_ref,
    python_ref,
    removals_done,
    system_base_ref,
)
from repoforge.sandbox.interpreters import host_source, python_source
from repoforge.sandbox.process import ProcessBackend
from repoforge.store import disk_usage

FIX_ID = "example__calcpkg-12"
# A folder name Docker refuses in a tag, holding a project that wants Python 3.8, which no Debian suite ships.
PINNED_FOLDER = "a+b"
PINNED_ID = "local__a-b-300273da-5"  # the folder's name made valid, with a hash of the original
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers here (.ci/run starts one)"),
]


def labels(ref: str) -> dict[str, str]:
    return json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", ref).stdout)


def forged(out, store, sources, sandbox):
    report = forge([str(s) for s in sources], ForgeOptions(out=out, store=store, timeout=15, sandbox=sandbox))
    rows = [json.loads(line) for line in (out / "instances.jsonl").read_text().splitlines()]
    return {r["instance_id"]: r for r in rows}, report


@pytest.fixture(scope="module")
def runs(tmp_path_factory, store):
    tmp = tmp_path_factory.mktemp("docker")
    calc = calcpkg.build(tmp / "calcpkg")
    greeter = repos.setup_py_only(tmp / "greeter")
    pinned = repos.pinned_python(tmp / PINNED_FOLDER)
    stamped = repos.git_versioned(tmp / "stamped")
    sources = [calc.path, greeter.path, pinned.path, stamped.path]
    by_process = forged(tmp / "process", store, sources, "process")
    by_docker = forged(tmp / "docker", store, sources, "docker")
    return calc, by_process, by_docker, tmp


def test_evaluation_in_docker_sandboxes_grades_as_swebench(runs, store):
    """Gold patches resolve, a wrong fix fails exactly its FAIL_TO_PASS tests; every run in a container."""
    tmp = runs[3]
    rows, _ = load_dataset(tmp / "docker" / "instances.jsonl")
    mirror = tmp / "mirror"  # where eval finds each row's repository, by owner__name
    mirror.mkdir()
    for name, path in json.loads((tmp / "docker" / "sources.json").read_text()).items():
        (mirror / name.replace("/", "__")).symlink_to(path)
    predictions = load_predictions("gold", rows)
    wrong = predictions[FIX_ID].model_patch.replace("+    return a + b", "+    return a * b")
    predictions[FIX_ID] = predictions[FIX_ID].model_copy(update={"model_patch": wrong})
    opts = EvalOptions(
        run_id="docker-run",
        store=store,
        log_dir=tmp / "logs",
        report_dir=tmp,
        repo_mirror=mirror,
        sandbox="docker",
        timeout=60,
    )
    report, _ = evaluate(rows, predictions, opts, workers=2)
    assert report["resolved_ids"] == sorted(r.instance_id for r in rows if r.instance_id != FIX_ID)
    assert report["unresolved_ids"] == [FIX_ID] and report["error_ids"] == []
    graded = json.loads((tmp / "logs" / "docker-run" / "gold" / FIX_ID / "report.json").read_text())[FIX_ID]
    assert graded["tests_status"]["FAIL_TO_PASS"]["failure"] == [
        "tests/test_calc.py::test_add",
        "tests/test_calc.py::test_add_negative",
    ]
    assert graded["tests_status"]["PASS_TO_PASS"]["success"] == ["tests/test_calc.py::test_mul"]


def test_docker_yields_the_instances_the_process_backend_yields(runs):
    _, (process_rows, process_report), (docker_rows, docker_report), _ = runs
    outcome = lambda rows: {i: (r["FAIL_TO_PASS"], r["PASS_TO_PASS"], r["env"]["python"]) for i, r in rows.items()}
    assert len(docker_rows) == 6
    assert outcome(docker_rows) == outcome(process_rows)  # the same Python chosen for every instance
    # git works where the project is built: a version it computes from git is the checkout's, in both backends
    assert docker_rows["example__stamped-4"]["PASS_TO_PASS"] == ["tests/test_stamped.py::test_version"]
    assert docker_report["counts"]["rejected"] == process_report["counts"]["rejected"]
    assert list(DockerBackend().pythons()) == list(ProcessBackend().pythons())  # every one has a source here
    for row in process_rows.values():
        assert row["env"]["python_source"] == inspect_interpreter(available_pythons()[row["env"]["python"]]).origin


def test_a_python_no_debian_suite_ships_comes_from_uv_or_the_host(runs):
    """The project allows 3.8 only: its image holds uv's or the host's 3.8 over the shared system base."""
    _, (process_rows, _), (docker_rows, _), _ = runs
    source = python_source("3.8")
    assert source.kind in ("uv", "host")
    env = docker_rows[PINNED_ID]["env"]
    assert (env["python"], env["python_source"]) == ("3.8", source.label)
    assert docker_rows[PINNED_ID]["FAIL_TO_PASS"] == ["tests/test_middle.py::test_even"]
    assert docker_rows[PINNED_ID]["PASS_TO_PASS"] == ["tests/test_middle.py::test_odd"]
    python_labels = labels(python_ref(source))
    assert {key: python_labels[key] for key in ("repoforge.kind", "repoforge.parent", "repoforge.python_source")} == {
        "repoforge.kind": "python",
        "repoforge.parent": system_base_ref(),
        "repoforge.python_source": source.label,
    }
    probe = "import ssl, sqlite3, ctypes, lzma, bz2, zlib, readline, sys; print(sys.version_info[:2])"
    ran = docker("run", "--rm", "--network", "none", python_ref(source), "python3.8", "-c", probe)
    assert ran.stdout.decode().strip() == "(3, 8)"


def test_an_interpreter_that_cannot_run_in_its_image_is_a_clear_error(runs):
    """A host build is linked against its own prefix: moved elsewhere, it misses its libpython."""
    moved = host_source("3.8").model_copy(update={"prefix": "/opt/moved"})
    with pytest.raises(SandboxError) as failed:
        ensure_python(moved)
    assert str(failed.value) == (
        "Python 3.8 from host:/opt/moved does not run on Debian bookworm: missing libpython3.8.so.1.0 (for python3.8)"
    )
    assert not image_exists(python_ref(moved))


def test_a_folder_named_a_plus_b_forges_in_docker(runs):
    _, _, (docker_rows, _), _ = runs
    assert [i for i in docker_rows if i.startswith("local__")] == [PINNED_ID]
    assert docker_rows[PINNED_ID]["repo"] == "local/a-b-300273da"
    assert instance_ref(PINNED_ID) == f"repoforge-instance:{PINNED_ID}" and image_exists(instance_ref(PINNED_ID))


def test_an_environment_image_holds_no_path_of_this_host(runs, store):
    """The build borrows the repository's objects at fixed paths: the mount points the image keeps are the same
    wherever the repository is, so an environment does not depend on the host, and relatives differ by packages."""
    env_ref = labels(instance_ref(FIX_ID))["repoforge.parent"]
    probe = f"ls -d {store} {runs[3]} /repoforge-objects/* 2>&1; true"
    found = docker("run", "--rm", "--network", "none", env_ref, "bash", "-c", probe).stdout.decode().splitlines()
    assert found == [
        f"ls: cannot access '{store}': No such file or directory",
        f"ls: cannot access '{runs[3]}': No such file or directory",
        "/repoforge-objects/0",
    ]


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


def test_a_sandbox_sets_itself_up_in_its_first_command_and_says_when_it_cannot(runs):
    """The offline routes and the setup run in the first command (each docker exec costs about 0.1 s); a setup
    that fails is the sandbox's error, never the command's result. Closing removes the container."""
    box = DockerSandbox(instance_ref(FIX_ID), setup="echo ready > /tmp/setup-ran")
    try:
        first = box.exec("cat /tmp/setup-ran; ip route show default")
        assert first.output.split()[0] == "ready" and "dev lo" in first.output
        assert box.exec("cat > /tmp/in; wc -c < /tmp/in", input="x" * 200_000).output.split() == ["200000"]
    finally:
        box.close()
    broken = DockerSandbox(instance_ref(FIX_ID), setup="echo no disk left; false")
    try:
        with pytest.raises(SandboxError, match="could not be set up: no disk left"):
            broken.exec("echo the command ran")
    finally:
        broken.close()
    removals_done()
    for container in (box.container, broken.container):
        assert docker("ps", "-aq", "--filter", f"id={container}").stdout.decode().strip() == ""


def test_a_reused_container_shows_an_instance_nothing_of_the_one_before(runs, tmp_path):
    """Eval's instances of one environment take turns in one container: the next sees none of the files, processes
    or history the one before had or made, and a container it could not clean is replaced."""
    calc = runs[0]
    base, fix = calc._git("rev-list", "--reverse", "HEAD").split()[:2]
    env_ref = labels(instance_ref(FIX_ID))["repoforge.parent"]
    backend = DockerBackend()
    sandbox = lambda commit: backend.instance_sandbox(calc.path, commit, env_ref, "any", tmp_path, reuse=True)
    first = sandbox(fix)
    plant = (
        "for d in /testbed /tmp /var/tmp ~ /dev/shm; do echo planted > $d/planted; done; "
        "setsid bash -c 'sleep 3; echo late > /tmp/late' > /dev/null 2>&1 & setsid sleep 300 > /dev/null 2>&1 & "
        'echo planted 2>/dev/null > "$VIRTUAL_ENV/planted" || echo venv read-only; '
        "ip route del default 2>/dev/null || echo routes kept"
    )
    try:
        assert first.exec("git rev-list --all").output.split() == [fix]
        assert first.exec(plant).output.splitlines()[-2:] == ["venv read-only", "routes kept"]
    finally:
        first.close()
    # Emptied as the instance closes, not when the next one starts: its processes are gone at once.
    processes = lambda: docker("exec", first.container, "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    deadline = time.monotonic() + 5
    while "sleep 300" in processes().stdout.decode() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "sleep 300" not in processes().stdout.decode()
    sandbox(base).close()  # an instance that ran nothing: the cleanup still pending stands for the next
    second = sandbox(base)
    try:
        assert second.container == first.container
        assert second.exec("git rev-list --all").output.split() == [base]  # the earlier instance's fix is gone
        found = second.exec("sleep 4; ls -A /testbed /tmp /var/tmp ~ /dev/shm | grep -c planted; ls /tmp").output
        assert found.split() == ["0"]  # nothing planted, and the process that would have written /tmp/late is dead
        second.exec("echo planted > /dev/planted")  # /dev cannot be emptied as the scratch folders are
    finally:
        second.close()
    third = sandbox(base)
    try:
        assert (
            third.exec("ls /dev/planted; git status --porcelain").output.strip().endswith("No such file or directory")
        )
        assert third.container != first.container  # the spoiled container was dropped
        assert third.exec("python -m pytest -q tests", timeout=60).exit_code == 0
    finally:
        third.close()


def test_an_instance_cannot_reach_the_channel_and_one_that_stops_or_kills_it_gets_no_verdict_from_it(
    runs, tmp_path, monkeypatch
):
    """A reused container's commands go over one long-lived exec, whose server the code under test (root) can
    neither read nor write through /proc. An instance that stops or kills it spoils only its own container: the
    next instance runs in a new one."""
    monkeypatch.setattr(channel, "ANSWER_SECONDS", 3.0)
    calc = runs[0]
    base = calc._git("rev-list", "--reverse", "HEAD").split()[0]
    env_ref = labels(instance_ref(FIX_ID))["repoforge.parent"]
    backend = DockerBackend()
    sandbox = lambda: backend.instance_sandbox(calc.path, base, env_ref, "any", tmp_path, reuse=True)
    server = "$(grep -ls PR_SET_DUMP[A]BLE /proc/[0-9]*/cmdline | cut -d/ -f3)"  # [A]: not this command's own
    first = sandbox()
    try:
        assert first.reused.channel is not None
        reach = f"s={server}; cat /proc/$s/fd/0 < /dev/null; echo forged > /proc/$s/fd/1; cat /proc/$s/mem"
        assert [line.split(": ")[-1] for line in first.exec(reach).output.splitlines()] == ["Permission denied"] * 3
        # a process left behind stops the server once this command has ended, before the instance is closed
        first.exec(f's={server}; setsid sh -c "sleep 1; kill -STOP $s" > /dev/null 2>&1 &')
        time.sleep(2)
    finally:
        first.close()
    second = sandbox()
    try:
        assert second.exec("git rev-list --all").output.split() == [base]
        assert second.container != first.container
        killed = second.exec(f"echo before; kill -9 {server}; sleep 1; echo after")
        assert (killed.exit_code, killed.output) == (-9, "before\n")
    finally:
        second.close()
    third = sandbox()
    try:
        assert third.exec("echo fine").output == "fine\n"
        assert third.container not in (first.container, second.container)
    finally:
        third.close()


def eventually(condition) -> bool:
    deadline = time.monotonic() + 60
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


def test_a_reused_container_goes_with_its_process_even_killed(runs, tmp_path):
    """Ray ends its workers without their exit handlers: the container a killed process used is removed anyway."""
    calc = runs[0]
    base = calc._git("rev-list", "--reverse", "HEAD").split()[0]
    env_ref = labels(instance_ref(FIX_ID))["repoforge.parent"]
    worker = (
        "import sys, time\nfrom pathlib import Path\nfrom repoforge.sandbox.docker import DockerBackend\n"
        f"box = DockerBackend().instance_sandbox(Path({str(calc.path)!r}), {base!r}, {env_ref!r}, 'any', "
        f"Path({str(tmp_path)!r}), reuse=True)\n"
        "box.exec('true')\nprint(box.container, flush=True)\ntime.sleep(600)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", worker], stdout=subprocess.PIPE, text=True)
    container = process.stdout.readline().strip()
    exists = lambda: docker("ps", "-aq", "--no-trunc", "--filter", f"id={container}").stdout.decode().strip() != ""
    assert container and exists()
    process.kill()
    process.wait()
    assert eventually(lambda: not exists())


def test_the_next_environments_container_is_started_ahead(runs, tmp_path):
    """While an instance runs, a container of the environment named ahead starts: the next instance of that
    environment runs in it, and a container started for a wrong guess is removed."""
    calc = runs[0]
    base = calc._git("rev-list", "--reverse", "HEAD").split()[0]
    env_ref = labels(instance_ref(FIX_ID))["repoforge.parent"]
    other_ref = labels(env_ref)["repoforge.parent"]  # the Python image: another environment, as far as reuse goes
    backend = DockerBackend()
    sandbox = lambda ref, ahead: backend.instance_sandbox(
        calc.path, base, ref, "any", tmp_path, reuse=True, ahead=ahead
    )
    mine = f"label=repoforge.pid={os.getpid()}"
    running = lambda: set(docker("ps", "-q", "--no-trunc", "--filter", mine).stdout.decode().split())
    earlier = running()
    first = sandbox(env_ref, other_ref)
    try:
        assert first.exec("git rev-list --all").output.split() == [base]
    finally:
        first.close()
    assert eventually(lambda: running() - earlier - {first.container})
    [started] = running() - earlier - {first.container}  # while the first instance ran
    second = sandbox(other_ref, env_ref)
    try:
        assert second.container == started
        assert second.exec("git rev-list --all").output.split() == [base]
    finally:
        second.close()
    third = sandbox(env_ref, None)
    try:
        assert third.container == first.container  # kept while the second ran: its environment came next
    finally:
        third.close()
    sandbox(env_ref, other_ref).close()  # a wrong guess: the next instance needs env_ref again
    sandbox(env_ref, env_ref).close()
    assert eventually(lambda: running() - earlier <= {first.container})  # the second's, and the guess's, are gone


def test_tests_cannot_reach_the_network_and_connects_time_out(runs):
    box = DockerSandbox(instance_ref(FIX_ID))
    probe = (
        'python -c "import socket\ns = socket.socket(); s.settimeout(1)\n'
        "try:\n    s.connect(('192.0.2.1', 80))\nexcept Exception as e:\n    print(type(e).__name__)\""
    )
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
    env_ref = labels(instance_ref(FIX_ID))["repoforge.parent"]
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
    owner = [
        "--label",
        "repoforge.kind=sandbox",
        "--label",
        f"repoforge.pid={dead_pid}",
        "--label",
        f"repoforge.host={socket.gethostname()}",
    ]
    leftover = docker("run", "-d", *owner, system_base_ref(), "sleep", "infinity").stdout.decode().strip()
    DockerBackend()
    assert docker("ps", "-aq", "--filter", f"id={leftover}").stdout.decode().strip() == ""


def test_store_counts_shared_layers_once(runs):
    usage = disk_usage()
    ours = [i for i in usage.images if i.ref.startswith("repoforge-instance:example__")]
    assert len(ours) >= 4
    for image in ours:
        assert image.own_bytes < 5_000_000  # the repository alone; the environment is shared
        assert image.apparent_bytes > 50_000_000  # what a full image per instance would carry
    # Other images on the engine do not count: our instances plus one stack under them cost less than a
    # full image each (the store's own totals are checked exactly in tests/test_store.py).
    assert sum(i.own_bytes for i in ours) + max(i.apparent_bytes for i in ours) < sum(i.apparent_bytes for i in ours)


def test_an_environment_stored_over_its_nearest_relative_gives_the_same_instances(tmp_path):
    """The two fixes' environments differ by one dependency: the later-built one is a layer over the other, at
    less than half the bytes of the other's own layer, and both backends give the same instances, which resolve."""
    repo = repos.growing_dependencies(tmp_path / "growing")
    store = tmp_path / "store"
    rows = {}
    for sandbox in ("process", "docker"):  # one at a time: each build sees the other's environment finished
        options = ForgeOptions(out=tmp_path / sandbox, store=store, timeout=30, sandbox=sandbox, workers=1)
        forge([str(repo.path)], options)
        rows[sandbox] = {r.instance_id: r for r in load_dataset(tmp_path / sandbox / "instances.jsonl")[0]}
    outcome = {i: (r.FAIL_TO_PASS, r.PASS_TO_PASS) for i, r in rows["docker"].items()}
    assert outcome == {i: (r.FAIL_TO_PASS, r.PASS_TO_PASS) for i, r in rows["process"].items()}
    assert outcome == {
        "example__growing-1": (["tests/test_growing.py::test_add"], ["tests/test_growing.py::test_mul"]),
        "example__growing-2": (
            ["tests/test_growing.py::test_mul", "tests/test_growing.py::test_mul_many"],
            ["tests/test_growing.py::test_add"],
        ),
    }
    size = lambda ref: int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout)
    envs = [labels(instance_ref(i))["repoforge.parent"] for i in sorted(outcome)]
    assert envs[0] != envs[1]
    first, later = sorted(envs, key=lambda ref: labels(ref)["repoforge.parent"] in envs)
    assert labels(later)["repoforge.parent"] == first  # the later one stands on the first
    python = labels(first)["repoforge.parent"]
    assert size(later) - size(first) < (size(first) - size(python)) / 2
    opts = EvalOptions(run_id="lineage", store=store, log_dir=tmp_path / "logs", report_dir=tmp_path, sandbox="docker")
    docker_rows = list(rows["docker"].values())
    report, _ = evaluate(docker_rows, load_predictions("gold", docker_rows), opts, workers=1)
    assert report["resolved_ids"] == sorted(outcome)
