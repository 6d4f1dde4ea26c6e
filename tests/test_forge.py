"""forge end to end on real repositories built here: exact instances, test lists and rejections."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import calcpkg
import pytest
import repos

from repoforge.forge import ForgeOptions, forge

pytestmark = pytest.mark.slow


def run_forge(tmp_path: Path, store: Path, source: Path | str, sandbox: str = "process") -> tuple[dict, dict, dict]:
    """(instances by id, report, rejections by instance id or commit)."""
    opts = ForgeOptions(out=tmp_path / "out", store=store, timeout=15, sandbox=sandbox)
    report = forge([str(source)], opts)
    lines = (opts.out / "instances.jsonl").read_text().splitlines()
    instances = {row["instance_id"]: row for row in map(json.loads, lines)}
    on_disk = json.loads((opts.out / "forge_report.json").read_text())
    assert on_disk["counts"] == report["counts"]
    rejections = {r["instance_id"] or r["commit"]: r for r in report["rejections"]}
    return instances, report, rejections


def shas(repo) -> list[str]:
    """Commit shas oldest first."""
    return repo._git("rev-list", "--reverse", "HEAD").split()


@pytest.fixture(scope="module")
def calc_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("calc")
    repo = calcpkg.build(tmp / "calcpkg")
    return repo, *run_forge(tmp, tmp / "store", repo.path)  # its own store: it counts builds


def test_bug_fix_commit_becomes_instance(calc_run):
    repo, instances, _, _ = calc_run
    initial, fix = shas(repo)[:2]
    row = instances["example__calcpkg-12"]
    assert row["repo"] == "example/calcpkg"
    assert row["base_commit"] == initial
    assert row["environment_setup_commit"] == initial
    assert row["FAIL_TO_PASS"] == ["tests/test_calc.py::test_add", "tests/test_calc.py::test_add_negative"]
    assert row["PASS_TO_PASS"] == ["tests/test_calc.py::test_mul"]
    assert list(row["base_failures"]) == row["FAIL_TO_PASS"]  # how each failed at the base commit, for describe
    assert "assert -1 == 5" in row["base_failures"]["tests/test_calc.py::test_add"]
    assert row["problem_statement"] == "Fix add returning the difference (#12)\n\nadd(2, 3) gave -1 instead of 5."
    assert row["created_at"] == "2023-03-05T10:00:00+00:00"
    assert "src/calcpkg/calc.py" in row["patch"] and "tests/" not in row["patch"]
    assert "tests/test_calc.py" in row["test_patch"] and "src/" not in row["test_patch"]
    assert row["env"]["python"] == "3.11"
    assert row["env"]["strategy"] == "editable"


def test_feature_commit_with_new_test_module(calc_run):
    repo, instances, _, _ = calc_run
    row = instances[f"example__calcpkg-{shas(repo)[3][:7]}"]
    assert row["FAIL_TO_PASS"] == [
        "tests/test_power.py::TestPower::test_square",
        "tests/test_power.py::test_power[2-3-8]",
        "tests/test_power.py::test_power[5-0-1]",
    ]
    assert row["PASS_TO_PASS"] == []


def test_flaky_test_left_out_and_counted(calc_run):
    repo, instances, report, _ = calc_run
    row = instances[f"example__calcpkg-{shas(repo)[4][:7]}"]
    assert row["FAIL_TO_PASS"] == ["tests/test_divide.py::test_divide"]
    assert row["PASS_TO_PASS"] == []
    assert report["counts"]["flaky_tests"] == 1


def test_rejections_have_reasons(calc_run):
    repo, instances, report, rejections = calc_run
    commits = shas(repo)
    assert set(instances) == {
        "example__calcpkg-12",
        f"example__calcpkg-{commits[3][:7]}",
        f"example__calcpkg-{commits[4][:7]}",
    }
    assert rejections[commits[0]]["reason"] == "root commit"
    assert rejections[commits[2]]["reason"] == "docs-only"
    assert rejections[f"example__calcpkg-{commits[5][:7]}"]["reason"] == "test run timed out"
    assert rejections[commits[6]]["reason"] == "non-UTF-8 diff"
    assert rejections[commits[7]]["reason"] == "binary diff"
    assert rejections[commits[8]]["reason"] == "no test change"
    counts = report["counts"]
    assert counts["commits_scanned"] == 9
    assert counts["candidates"] == 4
    assert counts["instances"] == 3
    assert counts["env_fingerprints"] == 1  # one dependency set, one environment
    assert counts["env_reused"] == 3
    assert counts["rejected"] == {
        "mine": {"root commit": 1, "docs-only": 1, "non-UTF-8 diff": 1, "binary diff": 1, "no test change": 1},
        "validate": {"test run timed out": 1},
    }


def test_rerun_resumes_without_redoing(calc_run):
    repo, instances, report, _ = calc_run
    opts = ForgeOptions(out=repo.path.parent / "out", store=repo.path.parent / "store", timeout=15, sandbox="process")
    again = forge([str(repo.path)], opts)
    assert again["counts"] == report["counts"]
    assert again["seconds"]["wall"] < 10  # nothing rebuilt, nothing rerun


def test_setup_py_only_project_uses_compat_editable(tmp_path, store):
    repo = repos.setup_py_only(tmp_path / "greeter")
    instances, _, _ = run_forge(tmp_path, store, repo.path)
    row = instances["example__greeter-3"]
    assert row["FAIL_TO_PASS"] == ["test_greeter.py::test_greet_number"]
    assert row["PASS_TO_PASS"] == ["test_greeter.py::test_greet"]
    assert row["env"]["python"] == "3.9"
    assert row["env"]["strategy"] == "compat-editable"
    assert [a["strategy"] for a in row["env"]["attempts"]] == ["editable", "compat-editable"]


def test_a_fix_eval_would_grade_as_tampering_is_rejected(tmp_path, store):
    """The gold patch of every instance resolves under eval: a fix whose code reaches into the test machinery (here the
    module table) where the project's own code never does is rejected, with eval's reason."""
    repo = repos.reaching_fix(tmp_path / "reacher")
    instances, report, rejections = run_forge(tmp_path, store, repo.path)
    assert instances["example__reacher-1"]["FAIL_TO_PASS"] == ["tests/test_add.py::test_add"]
    assert list(instances) == ["example__reacher-1"]
    assert report["counts"]["rejected"]["validate"] == {"the fix reaches into the test machinery": 1}
    assert rejections["example__reacher-2"]["detail"] == (
        "the patch's non-test code reaches into the module table (reacher.py), which the project's own code never "
        "does at the base commit"
    )


def test_unittest_project(tmp_path, store):
    repo = repos.unittest_project(tmp_path / "shapes")
    instances, _, _ = run_forge(tmp_path, store, repo.path)
    (row,) = instances.values()
    assert row["FAIL_TO_PASS"] == ["tests/test_area.py::TestArea::test_rectangle"]
    assert row["PASS_TO_PASS"] == ["tests/test_area.py::TestArea::test_square"]


def test_dependency_only_in_old_release(tmp_path, store):
    repo = repos.old_dependency(tmp_path / "escaper")
    instances, _, _ = run_forge(tmp_path, store, repo.path)
    row = instances["example__escaper-7"]
    assert row["FAIL_TO_PASS"] == ["tests/test_escaper.py::test_markup_kept"]
    assert row["PASS_TO_PASS"] == ["tests/test_escaper.py::test_text"]
    assert row["env"]["python"] == "3.8"
    assert row["env"]["exclude_newer"] == "2020-06-01T09:00:01Z"  # the manifest's own date


def test_files_the_build_writes_into_the_checkout_reach_every_instance(tmp_path, store):
    repo = repos.generated_module(tmp_path / "stamp")
    instances, _, _ = run_forge(tmp_path, store, repo.path)
    row = instances["example__stamp-4"]
    assert row["FAIL_TO_PASS"] == ["tests/test_stamp.py::test_label"]
    assert row["PASS_TO_PASS"] == ["tests/test_stamp.py::test_version"]


def test_uninstallable_project_is_rejected_with_attempts(tmp_path, store):
    repo = repos.uninstallable(tmp_path / "broken")
    instances, report, rejections = run_forge(tmp_path, store, repo.path)
    assert instances == {}
    (rejection,) = [r for r in report["rejections"] if r["stage"] == "build"]
    assert rejection["reason"] == "install failed"
    assert "repoforge-no-such-distribution-anywhere" in rejection["detail"]
    assert [line.split("]")[0] for line in rejection["detail"].splitlines() if line.startswith("[")][:3] == [
        "[editable",
        "[compat-editable",
        "[checkout-on-path",
    ]


def test_bad_sources_are_reported_and_the_rest_completes(tmp_path, store):
    not_a_repo = tmp_path / "plain"
    not_a_repo.mkdir()
    good = repos.unittest_project(tmp_path / "shapes")
    opts = ForgeOptions(out=tmp_path / "out", store=store, timeout=15, sandbox="process")
    report = forge([str(not_a_repo), "https://127.0.0.1:9/nobody/nothing.git", str(good.path)], opts)
    reasons = [(r["stage"], r["reason"]) for r in report["rejections"] if r["stage"] == "source"]
    assert reasons == [("source", "unusable source")] * 2
    assert report["counts"]["instances"] == 1


def test_corrupt_object_rejects_only_its_commit(tmp_path, store):
    repo = repos.unittest_project(tmp_path / "shapes")
    extra = repo.commit(
        "Add perimeter",
        "2024-02-05T09:00:00+00:00",
        {
            "shapes/perimeter.py": "def perimeter(side):\n    return 4 * side\n",
            "tests/test_perimeter.py": "from shapes.perimeter import perimeter\n\n\ndef test_p():\n    assert perimeter(1) == 4\n",
        },
    )
    blob = repo._git("rev-parse", f"{extra}:shapes/perimeter.py")
    (repo.path / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    instances, report, rejections = run_forge(tmp_path, store, repo.path)
    assert rejections[extra]["reason"] == "git error"
    assert list(instances) == ["example__shapes-" + shas(repo)[1][:7]]


def test_cli_explains_a_path_that_is_not_a_repository(tmp_path):
    cli = Path(sys.executable).parent / "repoforge"
    proc = subprocess.run(
        [str(cli), "forge", str(tmp_path), "-o", str(tmp_path / "out"), "--sandbox", "process"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "not a git repository" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
