"""repoforge eval on forged instances: SWE-bench's grading, its log layout, and the attacks it misses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import calcpkg
import pytest
import ray
from conftest import ONLINE_TEST, http_service, wait_for

from repoforge.forge import ForgeOptions, forge
from repoforge.harness.dataset import load_dataset, load_predictions
from repoforge.harness.evaluate import EvalOptions, evaluate
from repoforge.runner import SLOT, start_ray
from repoforge.schema import Prediction, TaskInstance
from repoforge.schema import TestStatus as Status  # a Test* name would be collected
from repoforge.testrun.logparsers import parse_log

pytestmark = pytest.mark.slow
FIX_ID = "example__calcpkg-12"
LOGS = "logs/run_evaluation"  # SWE-bench's log root, relative to where its tools run


@pytest.fixture(scope="module")
def forged(tmp_path_factory, store):
    tmp = tmp_path_factory.mktemp("eval")
    repo = calcpkg.build(tmp / "mirror" / "example__calcpkg")  # found by --repo-mirror as owner__name
    forge([str(repo.path)], ForgeOptions(out=tmp / "forged", store=store, timeout=15, sandbox="process"))
    return tmp, store


def run(forged, predictions: str | dict, run_id: str, rows: list[TaskInstance] | None = None) -> tuple[dict, dict]:
    """Evaluate the forged instances (or `rows`): the run report and each instance's report.json body."""
    tmp, store = forged
    skipped = {}
    if rows is None:
        rows, skipped = load_dataset(tmp / "forged" / "instances.jsonl")
    chosen = load_predictions(predictions, rows) if isinstance(predictions, str) else predictions
    opts = EvalOptions(
        run_id=run_id,
        store=store,
        log_dir=tmp / LOGS,
        report_dir=tmp,
        repo_mirror=tmp / "mirror",
        sandbox="process",
        timeout=30,
    )
    report, path = evaluate(rows, chosen, opts, workers=2, skipped=skipped)
    assert json.loads(path.read_text()) == report
    model = next(iter(chosen.values())).model_name_or_path
    reports = {
        i: json.loads(path.read_text())[i]
        for i in chosen
        if (path := tmp / LOGS / run_id / model / i / "report.json").exists()
    }
    return report, reports


def one(patch: str) -> dict:
    return {FIX_ID: Prediction(instance_id=FIX_ID, model_name_or_path="attacker", model_patch=patch)}


def forged_row(forged) -> TaskInstance:
    rows, _ = load_dataset(forged[0] / "forged" / "instances.jsonl")
    return next(r for r in rows if r.instance_id == FIX_ID)


def wrong_patch(patch: str) -> str:
    """A gold patch of calcpkg made wrong: it still applies, and the FAIL_TO_PASS tests fail."""
    for right, wrong in (("return a + b", "return a * b"), ("return base ** exp", "return base * exp")):
        patch = patch.replace(f"+    {right}", f"+    {wrong}")
    return patch


def rewritten(row: TaskInstance, **fields) -> TaskInstance:
    """The row as SWE-bench might carry it: other test ids, a log_parser."""
    return TaskInstance.model_validate(row.model_dump() | fields)


def with_test_file(row: TaskInstance, diff: str, *pass_to_pass: str, **fields) -> TaskInstance:
    """The row with one more test file in its test_patch, and more PASS_TO_PASS tests."""
    return rewritten(
        row, test_patch=row.test_patch + diff, PASS_TO_PASS=row.PASS_TO_PASS + list(pass_to_pass), **fields
    )


def test_gold_resolves_every_instance_with_swebench_logs(forged):
    report, reports = run(forged, "gold", "gold-run")
    assert report["resolved_instances"] == report["total_instances"] == report["completed_instances"] == 3
    assert report["error_instances"] == report["empty_patch_instances"] == 0
    assert report["schema_version"] == 2
    assert reports[FIX_ID]["tests_status"]["FAIL_TO_PASS"] == {
        "success": ["tests/test_calc.py::test_add", "tests/test_calc.py::test_add_negative"],
        "failure": [],
    }
    folder = forged[0] / LOGS / "gold-run" / "gold" / FIX_ID
    assert sorted(p.name for p in folder.iterdir()) == [
        "eval.sh",
        "patch.diff",
        "report.json",
        "run_instance.log",
        "test_output.txt",
    ]


def test_empty_resolves_none(forged):
    report, reports = run(forged, "empty", "empty-run")
    assert report["resolved_instances"] == 0
    assert report["empty_patch_instances"] == 3
    assert all(not r["patch_exists"] and not r["resolved"] for r in reports.values())


def test_wrong_patch_lists_its_failing_tests(forged):
    wrong = wrong_patch(forged_row(forged).patch)
    report, reports = run(forged, one(wrong), "wrong-run")
    status = reports[FIX_ID]["tests_status"]
    assert reports[FIX_ID]["patch_successfully_applied"] and not reports[FIX_ID]["resolved"]
    assert status["FAIL_TO_PASS"]["failure"] == [
        "tests/test_calc.py::test_add",
        "tests/test_calc.py::test_add_negative",
    ]
    assert status["PASS_TO_PASS"]["success"] == ["tests/test_calc.py::test_mul"]
    assert report["unresolved_ids"] == [FIX_ID]


FAKE_RESULTS = """\
diff --git a/src/calcpkg/__init__.py b/src/calcpkg/__init__.py
--- a/src/calcpkg/__init__.py
+++ b/src/calcpkg/__init__.py
@@ -0,0 +1,9 @@
+import atexit, pathlib
+
+FAKE = ('<testsuite><testcase classname="tests.test_calc" name="test_add"/>'
+        '<testcase classname="tests.test_calc" name="test_add_negative"/>'
+        '<testcase classname="tests.test_calc" name="test_mul"/></testsuite>')
+print("PASSED tests/test_calc.py::test_add")
+print("PASSED tests/test_calc.py::test_add_negative")
+atexit.register(lambda: [p.write_text(FAKE) for p in pathlib.Path("/testbed").glob(".repoforge-junit.xml")])
+atexit.register(lambda: [p.write_text(FAKE) for p in pathlib.Path(".").glob(".repoforge-junit.xml")])
"""

EDITED_TEST = """\
diff --git a/tests/test_calc.py b/tests/test_calc.py
--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -3,3 +3,11 @@ from calcpkg.calc import add, mul
 
 def test_mul():
     assert mul(3, 4) == 12
+
+
+def test_add():
+    pass
+
+
+def test_add_negative():
+    pass
"""

CONFTEST = """\
diff --git a/conftest.py b/conftest.py
new file mode 100644
--- /dev/null
+++ b/conftest.py
@@ -0,0 +1,8 @@
+import pytest
+
+
+@pytest.hookimpl(hookwrapper=True)
+def pytest_runtest_makereport(item, call):
+    outcome = yield
+    report = outcome.get_result()
+    report.outcome = "passed"
"""


@pytest.mark.parametrize(
    "name,patch", [("forged-output", FAKE_RESULTS), ("test-editing", EDITED_TEST), ("conftest", CONFTEST)]
)
def test_attacks_are_not_resolved(forged, name, patch):
    report, reports = run(forged, one(patch), f"attack-{name}")
    assert reports[FIX_ID]["patch_successfully_applied"]
    assert not reports[FIX_ID]["resolved"]
    assert report["resolved_ids"] == []


def test_a_test_that_needs_the_network_is_an_infrastructure_error(forged):
    """A row graded with the network on (as SWE-bench's are) lists a test the offline sandbox cannot pass."""
    row = with_test_file(forged_row(forged), ONLINE_TEST, "tests/test_online.py::test_reads_the_package_index")
    report, _ = run(forged, "gold", "online-run", [row])
    assert report["error_ids"] == report["infra_failure_ids"] == [FIX_ID]
    assert report["resolved_ids"] == report["unresolved_ids"] == []
    assert report["failure_reasons"][FIX_ID] == (
        "NeedsNetwork: 1 test(s) need a live network service and the sandbox is offline: "
        "tests/test_online.py::test_reads_the_package_index; every other required test passed"
    )
    assert not (forged[0] / LOGS / "online-run" / "gold" / FIX_ID / "report.json").exists()


SERVICE_TEST = """\
diff --git a/tests/test_service.py b/tests/test_service.py
new file mode 100644
--- /dev/null
+++ b/tests/test_service.py
@@ -0,0 +1,5 @@
+import urllib.request
+
+
+def test_reads_the_service():
+    assert urllib.request.urlopen("http://127.0.0.1:{port}/", timeout=10).read() == b"up"
"""


def test_network_on_request_shares_the_hosts_network(forged, tmp_path):
    """`eval --network` lets the tests reach a server on the host's loopback; by default they cannot."""
    tmp, store = forged
    needed = "tests/test_service.py::test_reads_the_service"
    with http_service("127.0.0.1") as port:
        row = with_test_file(forged_row(forged), SERVICE_TEST.format(port=port), needed)
        _, reports = run(forged, "gold", "service-offline", [row])
        dataset = tmp_path / "service.jsonl"
        dataset.write_text(row.model_dump_json() + "\n")
        online = subprocess.run(
            [
                str(Path(sys.executable).parent / "repoforge"),
                "eval",
                "--dataset",
                str(dataset),
                "--predictions",
                "gold",
                "--run-id",
                "service-online",
                "--network",
                "--max-workers",
                "1",
                "--sandbox",
                "process",
                "--store",
                str(store),
                "--repo-mirror",
                str(tmp / "mirror"),
                "--log-dir",
                str(tmp / LOGS),
                "--report-dir",
                str(tmp),
            ],
            capture_output=True,
            text=True,
        )
    assert online.returncode == 0, online.stderr
    assert reports[FIX_ID]["tests_status"]["PASS_TO_PASS"]["failure"] == [needed]
    for run_id, network in (("service-offline", "off"), ("service-online", "on")):
        folder = tmp / LOGS / run_id / "gold" / FIX_ID
        assert json.loads((folder / "report.json").read_text())[FIX_ID]["resolved"] is (network == "on")
        assert f"network: {network}" in (folder / "run_instance.log").read_text().splitlines()
        assert f"# network: {network}" in (folder / "eval.sh").read_text()


PROGRESS_TEST = """\
diff --git a/tests/test_progress.py b/tests/test_progress.py
new file mode 100644
--- /dev/null
+++ b/tests/test_progress.py
@@ -0,0 +1,3 @@
+def test_prints_a_progress_line():
+    # What a wrapped progress line leaves in pytest's output; SWE-bench's parser reads it as a test "[100%]".
+    print("PASSED [100%]")
"""


def test_a_log_parser_artifact_is_graded_as_swebench_grades_it(forged):
    """Rows of pytest-dev__pytest-5262 and -7521 list "[100%]" in PASS_TO_PASS: no test, a line their parser read."""
    progress = "tests/test_progress.py::test_prints_a_progress_line"
    row = with_test_file(forged_row(forged), PROGRESS_TEST, progress, "[100%]", log_parser="parse_log_pytest")
    _, reports = run(forged, "gold", "artifact-run", [row])
    assert reports[FIX_ID]["resolved"]
    assert reports[FIX_ID]["decided_by"] == {
        "junit": row.FAIL_TO_PASS + row.PASS_TO_PASS[:-1],
        "parse_log_pytest": ["[100%]"],
    }
    _, reports = run(forged, "gold", "artifact-without-parser", [rewritten(row, log_parser=None)])
    assert not reports[FIX_ID]["resolved"]
    assert reports[FIX_ID]["tests_status"]["PASS_TO_PASS"]["failure"] == ["[100%]"]
    assert reports[FIX_ID]["decided_by"] == {"junit": row.FAIL_TO_PASS + row.PASS_TO_PASS}


def test_rows_naming_tests_without_their_files_are_graded_by_those_names(forged):
    """sympy's bare function names, unittest's and Django's "name (module.Class)" (3.11+: "...Class.name")."""
    power = next(
        r
        for r in load_dataset(forged[0] / "forged" / "instances.jsonl")[0]
        if r.FAIL_TO_PASS[0].startswith("tests/test_power.py")
    )
    rows = [
        rewritten(
            forged_row(forged),
            FAIL_TO_PASS=["test_add", "test_add_negative"],
            PASS_TO_PASS=["test_mul"],
            log_parser="parse_log_sympy",
        ),
        rewritten(
            power,
            FAIL_TO_PASS=[
                "test_square (tests.test_power.TestPower)",
                "test_square (test_power.TestPower.test_square)",
                "test_power[2-3-8]",
                "test_power[5-0-1]",
            ],
            log_parser="parse_log_django",
        ),
    ]
    ids = sorted(r.instance_id for r in rows)
    report, reports = run(forged, "gold", "short-names-gold", rows)
    assert report["resolved_ids"] == ids
    assert [reports[r.instance_id]["decided_by"] for r in rows] == [
        {"junit": r.FAIL_TO_PASS + r.PASS_TO_PASS} for r in rows
    ]
    wrong = {
        r.instance_id: Prediction(
            instance_id=r.instance_id, model_name_or_path="wrong", model_patch=wrong_patch(r.patch)
        )
        for r in rows
    }
    report, reports = run(forged, wrong, "short-names-wrong", rows)
    assert report["unresolved_ids"] == ids
    assert [reports[r.instance_id]["tests_status"]["FAIL_TO_PASS"]["failure"] for r in rows] == [
        r.FAIL_TO_PASS for r in rows
    ]


OWN_RUNNER_TEST = """\
diff --git a/tests/test_own_runner.py b/tests/test_own_runner.py
new file mode 100644
--- /dev/null
+++ b/tests/test_own_runner.py
@@ -0,0 +1,13 @@
+import sys
+
+if "_pytest" in sys.modules:  # written for the project's own runner: its helpers exist there only
+    raise ImportError("cannot import name 'raises'")
+
+from calcpkg.calc import add
+
+
+def test_add_plain():
+    assert add(2, 3) == 5
+
+def test_add_zero_plain():
+    assert add(0, 0) == 0
"""


def test_a_module_pytest_cannot_import_runs_its_functions_when_the_row_names_functions_alone(forged):
    """As sympy's test modules before 1.2 under pytest: bare function names, made by the project's own runner."""
    row = rewritten(
        with_test_file(forged_row(forged), OWN_RUNNER_TEST, "test_add_zero_plain"),
        FAIL_TO_PASS=["test_add", "test_add_negative", "test_add_plain"],
        PASS_TO_PASS=["test_mul", "test_add_zero_plain"],
        log_parser="parse_log_sympy",
    )
    _, reports = run(forged, "gold", "own-runner-gold", [row])
    assert reports[FIX_ID]["resolved"]
    assert reports[FIX_ID]["decided_by"] == {"junit": row.FAIL_TO_PASS + row.PASS_TO_PASS}
    wrong = {FIX_ID: Prediction(instance_id=FIX_ID, model_name_or_path="wrong", model_patch=wrong_patch(row.patch))}
    _, reports = run(forged, wrong, "own-runner-wrong", [row])
    assert reports[FIX_ID]["tests_status"]["FAIL_TO_PASS"] == {"success": [], "failure": row.FAIL_TO_PASS}
    assert reports[FIX_ID]["tests_status"]["PASS_TO_PASS"] == {"success": row.PASS_TO_PASS, "failure": []}
    # Rows naming tests by file keep pytest's verdict: the module pytest cannot import fails them.
    by_file = rewritten(row, FAIL_TO_PASS=["tests/test_own_runner.py::test_add_plain"], PASS_TO_PASS=[])
    _, reports = run(forged, "gold", "own-runner-by-file", [by_file])
    assert reports[FIX_ID]["tests_status"]["FAIL_TO_PASS"]["failure"] == by_file.FAIL_TO_PASS


FAKE_LOG_LINES = """\
diff --git a/src/calcpkg/__init__.py b/src/calcpkg/__init__.py
--- a/src/calcpkg/__init__.py
+++ b/src/calcpkg/__init__.py
@@ -0,0 +1,5 @@
+import atexit
+
+# Printed once pytest has stopped capturing: the last lines of the run's console output.
+for name in ("test_add", "test_add_negative"):
+    atexit.register(print, f"PASSED tests/test_calc.py::{name}\\nPASSED {name}\\n{name} ok")
"""


@pytest.mark.parametrize(
    "parser,fail_to_pass",
    [
        ("parse_log_pytest", ["tests/test_calc.py::test_add", "tests/test_calc.py::test_add_negative"]),
        ("parse_log_sympy", ["test_add", "test_add_negative"]),
    ],
)
def test_printed_results_do_not_pass_the_tests_of_the_run(forged, parser, fail_to_pass):
    """The row's log parser reads the fake lines as passes; the tests ran, so their JUnit results decide."""
    row = rewritten(forged_row(forged), FAIL_TO_PASS=fail_to_pass, log_parser=parser)
    _, reports = run(forged, one(FAKE_LOG_LINES), f"fake-lines-{parser}", [row])
    output = (forged[0] / LOGS / f"fake-lines-{parser}" / "attacker" / FIX_ID / "test_output.txt").read_text()
    assert [parse_log(parser, output)[test] for test in fail_to_pass] == [Status.PASSED] * 2
    assert reports[FIX_ID]["patch_successfully_applied"] and not reports[FIX_ID]["resolved"]
    assert reports[FIX_ID]["tests_status"]["FAIL_TO_PASS"]["failure"] == fail_to_pass
    assert reports[FIX_ID]["decided_by"] == {"junit": fail_to_pass + row.PASS_TO_PASS}


def test_an_unknown_log_parser_is_the_rows_error(forged):
    row = rewritten(forged_row(forged), log_parser="parse_log_nonesuch")
    report, _ = run(forged, "gold", "unknown-parser", [row])
    assert report["error_ids"] == [FIX_ID]
    assert report["failure_reasons"][FIX_ID].startswith(
        "UnknownLogParser: the row's log_parser 'parse_log_nonesuch' is not one of swebench's Python log parsers"
    )


def test_a_row_without_its_env_is_planned_once_and_later_runs_read_the_plan(forged):
    """A SWE-bench row carries no env: eval plans one from the repository at its setup commit, keeps the plan's
    fingerprint and log in the store, and a later run reads them instead of planning again."""
    tmp, store = forged
    row = rewritten(forged_row(forged), env=None)
    report, _ = run(forged, "gold", "planned-first", [row])
    assert report["resolved_ids"] == [FIX_ID]
    [record] = (store / "planned" / "process").glob("*.json")
    planned = json.loads(record.read_text())
    assert (store / "envs" / "process" / planned["fingerprint"] / "spec.json").is_file()
    record.write_text(json.dumps(planned | {"log": ["read from the first run's plan"]}))
    report, _ = run(forged, "gold", "planned-again", [row])
    assert report["resolved_ids"] == [FIX_ID]
    log = (tmp / LOGS / "planned-again" / "gold" / FIX_ID / "run_instance.log").read_text()
    assert "read from the first run's plan" in log and f"environment {planned['fingerprint']}" in log


def test_malformed_rows_are_reported_and_the_rest_evaluated(forged, tmp_path):
    tmp, store = forged
    lines = (tmp / "forged" / "instances.jsonl").read_text().splitlines()
    dataset = tmp_path / "mixed.jsonl"
    dataset.write_text("\n".join(lines[:1] + ['{"instance_id": "broken__row-1", "repo": "x/y"}']) + "\n")
    rows, skipped = load_dataset(dataset)
    assert [r.instance_id for r in rows] == [json.loads(lines[0])["instance_id"]]
    assert list(skipped) == ["broken__row-1"] and skipped["broken__row-1"].startswith("malformed row")


def test_swebench_reads_our_logs_into_the_same_run_report(forged, monkeypatch):
    from swebench.harness.reporting import make_run_report

    tmp, _ = forged
    rows, _ = load_dataset(tmp / "forged" / "instances.jsonl")
    gold = {r.instance_id: r.patch for r in rows}
    wrong = wrong_patch(gold[FIX_ID])
    patches = {
        FIX_ID: wrong,
        rows[0].instance_id: "",
        **{i: p for i, p in gold.items() if i not in (FIX_ID, rows[0].instance_id)},
    }
    chosen = {i: Prediction(instance_id=i, model_name_or_path="org/model", model_patch=p) for i, p in patches.items()}
    ours, _ = run(forged, chosen, "mixed-run")
    monkeypatch.chdir(tmp)  # SWE-bench reads logs/run_evaluation relative to the working folder
    theirs = json.loads(
        make_run_report(
            {i: p.model_dump() for i, p in chosen.items()},
            [r.model_dump() for r in rows],
            "mixed-run",
            report_dir=str(tmp / "swebench"),
        ).read_text()
    )
    assert theirs == ours
    assert ours["resolved_ids"] == sorted(set(gold) - {FIX_ID, rows[0].instance_id})
    assert ours["unresolved_ids"] == [FIX_ID] and ours["empty_patch_ids"] == [rows[0].instance_id]


def test_run_killed_with_sigkill_resumes_to_the_same_report(forged):
    tmp, store = forged
    cli = [
        str(Path(sys.executable).parent / "repoforge"),
        "eval",
        "--dataset",
        str(tmp / "forged" / "instances.jsonl"),
        "--predictions",
        "gold",
        "--max-workers",
        "1",
        "--sandbox",
        "process",
        "--store",
        str(store),
        "--repo-mirror",
        str(tmp / "mirror"),
        "--log-dir",
        str(tmp / LOGS),
        "--report-dir",
        str(tmp),
    ]
    whole = subprocess.run([*cli, "--run-id", "whole"], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    killed = subprocess.Popen(
        [*cli, "--run-id", "killed"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    done = tmp / LOGS / "killed" / "gold"
    deadline = time.monotonic() + 120
    while not list(done.glob("*/report.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert not (tmp / "gold.killed.json").exists()  # it died before reporting
    resumed = subprocess.run([*cli, "--run-id", "killed"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    report = lambda run_id: json.loads((tmp / f"gold.{run_id}.json").read_text())
    assert report("killed") == report("whole")


def test_evaluation_on_a_two_node_ray_cluster(forged, two_node_cluster):
    start_ray(two_node_cluster)
    wait_for(lambda: ray.cluster_resources().get(SLOT) == 2, "second node")
    tmp, store = forged
    rows, _ = load_dataset(tmp / "forged" / "instances.jsonl")
    opts = EvalOptions(
        run_id="cluster-run",
        store=store,
        log_dir=tmp / LOGS,
        report_dir=tmp,
        repo_mirror=tmp / "mirror",
        sandbox="process",
        timeout=30,
        ray_address=two_node_cluster,
    )
    report, _ = evaluate(rows, load_predictions("gold", rows), opts, workers=2)
    assert report["resolved_instances"] == report["total_instances"] == 3
