"""Attacks on names used as paths (issue 9, class 5): run ids, model names and instance ids are data. None escapes
its folder or shares another's, nothing outside --log-dir and --report-dir is written or removed, and a rerun of a
run id adds to its run report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attacks.forging import FIX_ID, WRONG_FIX, cli, fix_row, forged_calcpkg, grade, options, predict, rows
from repoforge.harness.dataset import load_predictions
from repoforge.harness.evaluate import evaluate
from repoforge.names import check_run_id, model_folder

TRICKY_MODELS = [
    "org/m",
    "org__m",
    "org_/m",
    "org/_m",
    "org___m",
    "org/m_",
    "a/b/c",
    "a__b/c",
    "a/b__c",
    "..",
    ".",
    "",
    "/",
    "a/../b",
    "../../x",
    "a@b",
    "m@" + "0" * 16,
    "x" * 101,
    "x" * 300,
    "m\ud800",
    "gpt-4.1",
    "Org/Model-7B.v2",
    "a b",
    "a\nb",
    "a\\b",
]


def test_every_model_name_has_a_folder_of_its_own():
    """Names SWE-bench would spell alike (`org/m`, `org__m`) or as no folder (`..`) get distinct single folders."""
    folders = [model_folder(name) for name in TRICKY_MODELS]
    assert len(set(folders)) == len(TRICKY_MODELS)
    assert folders == [model_folder(name) for name in TRICKY_MODELS]  # a rerun finds its own
    for folder in folders:
        assert folder not in ("", ".", "..") and "/" not in folder and "\n" not in folder
        assert len(f"{folder}.{'r' * 64}.json".encode()) <= 255  # the run report's name fits a file system's
    assert [model_folder(name) for name in ("org/m", "gpt-4.1", "Org/Model-7B.v2")] == [
        "org__m",
        "gpt-4.1",
        "Org__Model-7B.v2",
    ]  # SWE-bench's spelling, where it is unambiguous
    assert model_folder("org__m").startswith("org__m@")


@pytest.mark.parametrize("run_id", ["../x", "..", ".", "", "a/b", "a.b", "-rf", "x" * 65, "a\nb"])
def test_a_run_id_that_is_no_plain_name_is_refused(run_id):
    with pytest.raises(ValueError, match="is not a run id"):
        check_run_id(run_id)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory, store):
    return forged_calcpkg(tmp_path_factory, store)


@pytest.mark.slow
def test_model_names_spelled_alike_never_share_a_verdict(tmp, store):
    """`org/m` resolves; `org__m`, then `..` and `.`, submit a wrong fix in the same run: SWE-bench's spelling would
    give them `org/m`'s folder (and its resolved report.json) or a folder outside the run's."""
    row = fix_row(tmp)
    assert grade(tmp, store, predict(row.patch, "org/m"), "names", [row])[0]["resolved_ids"] == [FIX_ID]
    first = (tmp / "logs" / "names" / "org__m" / FIX_ID / "run_instance.log").stat().st_mtime_ns
    for model in ("org__m", "..", "."):
        report, graded = grade(tmp, store, predict(WRONG_FIX, model), "names", [row])
        assert report["unresolved_ids"] == [FIX_ID] and not graded[FIX_ID]["resolved"]
        assert (tmp / "logs" / "names" / model_folder(model) / FIX_ID / "report.json").exists()
    assert grade(tmp, store, predict(row.patch, "org/m"), "names", [row])[0]["resolved_ids"] == [FIX_ID]
    assert (tmp / "logs" / "names" / "org__m" / FIX_ID / "run_instance.log").stat().st_mtime_ns == first  # resumed
    assert sorted(p.name for p in (tmp / "reports").glob("*.names.json")) == sorted(
        f"{model_folder(m)}.names.json" for m in ("org/m", "org__m", "..", ".")
    )


@pytest.mark.slow
def test_a_rerun_with_other_instance_ids_adds_to_the_run_report(tmp, store):
    dataset = rows(tmp)
    first, second = sorted(r.instance_id for r in dataset)[:2]
    opts = options(tmp, store, "merged")
    for chosen in ({first}, {second}):
        report, path = evaluate(dataset, load_predictions("gold", dataset), opts, 1, instance_ids=chosen)
    assert json.loads(path.read_text()) == report
    assert report["completed_ids"] == report["resolved_ids"] == report["submitted_ids"] == [first, second]
    assert report["total_instances"] == len(dataset)


def snapshot(root: Path, inside: list[Path]) -> dict[str, tuple | None]:
    """Every file (its bytes and modification time) and folder under `root`, but those under `inside`."""
    found = {}
    for path in root.rglob("*"):
        if not any(path == folder or folder in path.parents for folder in inside):
            relative = str(path.relative_to(root))
            found[relative] = None if path.is_dir() else (path.read_bytes(), path.lstat().st_mtime_ns)
    return found


@pytest.mark.slow
def test_names_that_would_escape_write_and_remove_nothing_outside_the_log_and_report_folders(tmp, store, tmp_path):
    """Run ids, instance ids and model names that name other folders (`../x`, `a/b`, `..`, `.`, ``): each is refused
    with exit 2 or kept inside its folder; around the log and report folders nothing changes."""
    logs, reports = tmp_path / "a" / "b" / "logs", tmp_path / "a" / "b" / "reports"
    for sentinel in ("keep", "a/keep", "a/b/keep", "a/b/x/keep", "x/keep"):
        (tmp_path / sentinel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / sentinel).write_text("mine\n")
    good = [r.model_dump(mode="json") for r in rows(tmp)]
    bad = [dict(good[0], instance_id=name) for name in ("../../x", "a/b", "..", ".", "", "../../../keep")]
    dataset, predictions, bad_predictions = (tmp_path / name for name in ("rows.jsonl", "preds.jsonl", "bad.jsonl"))
    dataset.write_text("".join(json.dumps(r) + "\n" for r in good + bad))
    models = ["..", "../../x", "."]
    predictions.write_text(
        "".join(
            json.dumps({"instance_id": r["instance_id"], "model_name_or_path": m, "model_patch": r["patch"]}) + "\n"
            for r, m in zip(good, models, strict=True)
        )
    )
    bad_predictions.write_text(json.dumps({"instance_id": "../../x", "model_name_or_path": "m", "model_patch": "x"}))
    before = snapshot(tmp_path, [logs, reports])
    common = [
        "eval",
        "--dataset",
        str(dataset),
        "--sandbox",
        "process",
        "--store",
        str(store),
        "--max-workers",
        "1",
        "--repo-mirror",
        str(tmp / "mirror"),
        "--log-dir",
        str(logs),
        "--report-dir",
        str(reports),
    ]
    for run_id in ("../x", "../../x", "..", ".", "", "a/b", "x.json"):
        refused = cli(*common, "--predictions", "gold", "--run-id", run_id, cwd=tmp_path / "a")
        assert refused.returncode == 2 and "is not a run id" in refused.stderr, refused.stderr
    refused = cli(*common, "--predictions", str(bad_predictions), "--run-id", "r", cwd=tmp_path / "a")
    assert refused.returncode == 2
    assert "prediction 1: instance_id: '../../x' cannot name a folder" in refused.stdout
    ran = cli(*common, "--predictions", str(predictions), "--run-id", "escape", cwd=tmp_path / "a")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.count("cannot name a folder") == len(bad)  # each bad row skipped, with its reason
    assert "Traceback" not in ran.stdout + ran.stderr
    assert snapshot(tmp_path, [logs, reports]) == before
    assert sorted(p.name for p in (logs / "escape").iterdir()) == sorted(model_folder(m) for m in models)
    report = json.loads((reports / f"{model_folder(models[0])}.escape.json").read_text())  # named as SWE-bench does
    assert report["resolved_ids"] == sorted(r["instance_id"] for r in good)
