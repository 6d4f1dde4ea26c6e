"""What every attack needs: the demo repository forged once, graded by each backend, and patches made of files.

Each attack is a patch on example__calcpkg-12, whose FAIL_TO_PASS tests fail at its base commit: a patch that only
attacks is resolved exactly when the attack works. Its code also tries to write a file on the host (MARKER): no
attack may write outside its sandbox, on either backend.
"""

from __future__ import annotations

from pathlib import Path

import calcpkg
import pytest

from repoforge.forge import ForgeOptions, forge
from repoforge.harness.dataset import load_dataset
from repoforge.harness.evaluate import EvalOptions, evaluate_one, instance_log_dir
from repoforge.sandbox.docker import engine_answers
from repoforge.schema import InstanceReport, Prediction, TaskInstance

FIX_ID = "example__calcpkg-12"
# Code an attack runs wherever it can: it leaves a file on the host if it ever runs there.
ESCAPE = """try:
    open("MARKER", "w").write("escaped")
except OSError:
    pass
"""
# pytest's reports all say passed, in every account of the run (JUnit file and console alike).
REPORTS_PASS = """import _pytest.reports

_init = _pytest.reports.TestReport.__init__


def _passed(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.outcome = "passed"


_pytest.reports.TestReport.__init__ = _passed
"""
# A pytest hook doing the same, for a conftest or a plugin.
HOOK_PASS = """import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
"""
# What a forged JUnit file says: every test of the run passed.
FAKE_JUNIT = (
    '<testsuite><testcase classname="tests.test_calc" name="test_add"/>'
    '<testcase classname="tests.test_calc" name="test_add_negative"/>'
    '<testcase classname="tests.test_calc" name="test_mul"/></testsuite>'
)


def added(path: str, text: str, git_header: bool = True) -> str:
    """A diff section creating `path`; without its `diff --git` line, a plain ---/+++ section."""
    lines = text.splitlines()
    header = f"diff --git a/{path} b/{path}\nnew file mode 100644\n" if git_header else ""
    hunk = f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n"
    return header + hunk + "".join(f"+{line}\n" for line in lines)


def filled(path: str, text: str) -> str:
    """A diff section giving the empty file `path` (src/calcpkg/__init__.py at the base commit) its `text`."""
    return added(path, text).replace("new file mode 100644\n", "").replace("--- /dev/null", f"--- a/{path}")


def symlink(path: str, target: str) -> str:
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 120000\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n"
        f"+{target}\n\\ No newline at end of file\n"
    )


class Grader:
    """The forged demo instance graded on one backend, one patch at a time."""

    def __init__(self, root: Path, store: Path, backend: str):
        self.root, self.backend = root, backend
        rows, _ = load_dataset(root / "forged" / "instances.jsonl")
        self.row: TaskInstance = next(r for r in rows if r.instance_id == FIX_ID)
        self.opts = EvalOptions(
            run_id=f"attacks-{backend}",
            store=store,
            log_dir=root / "logs",
            report_dir=root,
            repo_mirror=root / "mirror",
            sandbox=backend,
            timeout=60,
        )

    def grade(self, name: str, patch: str) -> tuple[InstanceReport, str]:
        """The report and run_instance.log of `patch`, graded as model `name`."""
        prediction = Prediction(instance_id=FIX_ID, model_name_or_path=name, model_patch=patch)
        report = evaluate_one(self.row, prediction, self.opts)
        return report, (instance_log_dir(self.opts, prediction, FIX_ID) / "run_instance.log").read_text()

    def attack(self, patch: str, tmp_path: Path) -> tuple[InstanceReport, str]:
        """Grade an attack: it must not be resolved, nor err, nor leave a file on the host."""
        marker = tmp_path / "escaped-to-the-host"
        report, log = self.grade(tmp_path.name, patch.replace("MARKER", str(marker)))
        assert not marker.exists(), f"the attack ran on the host:\n{log}"
        assert not report.resolved and not report.error, log
        return report, log


@pytest.fixture(scope="session")
def forged_demo(tmp_path_factory, store) -> Path:
    root = tmp_path_factory.mktemp("attacks")
    repo = calcpkg.build(root / "mirror" / "example__calcpkg")
    forge([str(repo.path)], ForgeOptions(out=root / "forged", store=store, timeout=15, sandbox="process"))
    return root


@pytest.fixture(scope="module", params=["process", "docker"])
def grader(request, forged_demo, store) -> Grader:
    """One backend's grader for a module of attacks; its environment built once, and the gold patch resolving."""
    if request.param == "docker" and not engine_answers():
        pytest.skip("no Docker engine answers here (.ci/run starts one)")
    grader = Grader(forged_demo, store, request.param)
    report, log = grader.grade("gold", grader.row.patch)
    assert report.resolved, log
    return grader
