"""The forged calcpkg example to attack (forged once per session), and patches graded on it with either backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import calcpkg
import pytest

from repoforge.forge import ForgeOptions, forge
from repoforge.harness.dataset import load_dataset, load_predictions
from repoforge.harness.evaluate import EvalOptions, evaluate, instance_log_dir
from repoforge.sandbox.docker import engine_answers
from repoforge.schema import Prediction, TaskInstance

FIX_ID = "example__calcpkg-12"  # add() returned a - b; FAIL_TO_PASS test_add, test_add_negative; PASS_TO_PASS test_mul
F2P = ["tests/test_calc.py::test_add", "tests/test_calc.py::test_add_negative"]
REPOFORGE = str(Path(sys.executable).parent / "repoforge")
BACKENDS = [
    "process",
    pytest.param("docker", marks=pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers here")),
]
_forged: dict[Path, Path] = {}


def forged_calcpkg(tmp_path_factory, store: Path) -> Path:
    """A folder holding forged/instances.jsonl and mirror/ (where eval finds the repository); forged once."""
    if store not in _forged:
        tmp = tmp_path_factory.mktemp("attacked")
        repo = calcpkg.build(tmp / "mirror" / "example__calcpkg")
        forge([str(repo.path)], ForgeOptions(out=tmp / "forged", store=store, timeout=15, sandbox="process"))
        _forged[store] = tmp
    return _forged[store]


def rows(tmp: Path) -> list[TaskInstance]:
    return load_dataset(tmp / "forged" / "instances.jsonl")[0]


def fix_row(tmp: Path, **fields) -> TaskInstance:
    """The row of FIX_ID, with `fields` changed (a log_parser makes it graded as SWE-bench's rows are)."""
    row = next(r for r in rows(tmp) if r.instance_id == FIX_ID)
    return TaskInstance.model_validate(row.model_dump() | fields)


def predict(patch: str, model: str = "attacker", instance_id: str = FIX_ID) -> dict[str, Prediction]:
    return {instance_id: Prediction(instance_id=instance_id, model_name_or_path=model, model_patch=patch)}


def options(tmp: Path, store: Path, run_id: str, sandbox: str = "process") -> EvalOptions:
    return EvalOptions(
        run_id=run_id,
        store=store,
        log_dir=tmp / "logs",
        report_dir=tmp / "reports",
        repo_mirror=tmp / "mirror",
        sandbox=sandbox,
        timeout=60,
    )


def grade(
    tmp: Path,
    store: Path,
    predictions: dict[str, Prediction] | str,
    run_id: str,
    dataset: list[TaskInstance] | None = None,
    sandbox: str = "process",
) -> tuple[dict, dict[str, dict]]:
    """Evaluate: the run report, and each instance's report.json body (or, if it erred, its run_instance.log)."""
    dataset = dataset or rows(tmp)
    chosen = load_predictions(predictions, dataset) if isinstance(predictions, str) else predictions
    opts = options(tmp, store, run_id, sandbox)
    report, _ = evaluate(dataset, chosen, opts, workers=1)
    graded = {}
    for instance_id, prediction in chosen.items():
        folder = instance_log_dir(opts, prediction, instance_id)
        if (folder / "report.json").exists():
            graded[instance_id] = json.loads((folder / "report.json").read_text())[instance_id]
    return report, graded


def log_of(
    tmp: Path,
    store: Path,
    run_id: str,
    model: str = "attacker",
    instance_id: str = FIX_ID,
    name: str = "run_instance.log",
) -> str:
    prediction = Prediction(instance_id=instance_id, model_name_or_path=model)
    return (instance_log_dir(options(tmp, store, run_id), prediction, instance_id) / name).read_text()


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`repoforge ...` as a user runs it; COLUMNS keeps rich from wrapping the messages tests look for."""
    return subprocess.run(
        [REPOFORGE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "COLUMNS": "400"},
    )


def calc_patch(add_body: list[str]) -> str:
    """A patch of calcpkg at FIX_ID's base commit that makes add()'s body `add_body` (indented lines)."""
    return (
        "diff --git a/src/calcpkg/calc.py b/src/calcpkg/calc.py\n--- a/src/calcpkg/calc.py\n"
        f"+++ b/src/calcpkg/calc.py\n@@ -1,5 +1,{4 + len(add_body)} @@\n def add(a, b):\n-    return a - b\n"
        + "".join(f"+{line}\n" if line else "+\n" for line in add_body)
        + " \n \n def mul(a, b):\n"
    )


def init_patch(lines: list[str]) -> str:
    """A patch that fills calcpkg's empty __init__.py, which every test imports, with `lines`."""
    return (
        "diff --git a/src/calcpkg/__init__.py b/src/calcpkg/__init__.py\n--- a/src/calcpkg/__init__.py\n"
        f"+++ b/src/calcpkg/__init__.py\n@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)
    )


CORRECT_FIX = calc_patch(["    return a + b"])
WRONG_FIX = calc_patch(["    return a * b"])
