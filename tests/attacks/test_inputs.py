"""Malformed inputs (issue 9): each is a clear error naming its row and field (the command line exits with 2 for a
file it cannot use, and nothing has been done yet), or costs only its own instance, which is graded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attacks.forging import FIX_ID, cli, forged_calcpkg, rows
from repoforge.harness import hub
from repoforge.harness.dataset import DatasetError, load_dataset, load_predictions

ROW = {
    "repo": "example/calcpkg",
    "instance_id": "example__calcpkg-1",
    "base_commit": "a" * 40,
    "patch": "diff --git a/x.py b/x.py\n",
    "test_patch": "diff --git a/test_x.py b/test_x.py\n",
    "problem_statement": "add() is wrong",
    "created_at": "2023-03-05T10:00:00Z",
    "FAIL_TO_PASS": '["test_x.py::t"]',
    "PASS_TO_PASS": "[]",
    "environment_setup_commit": "b" * 40,
}


def row(number: int, **fields) -> dict:
    return ROW | {"instance_id": f"example__calcpkg-{number}"} | fields


def jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def eval_cli(dataset: Path, predictions: Path | str = "gold", *more: str):
    return cli("eval", "--dataset", str(dataset), "--predictions", str(predictions), "--run-id", "r", *more)


def test_a_folder_without_parquet_files_is_a_clear_error(tmp_path):
    (tmp_path / "rows.jsonl").write_text(json.dumps(row(1)) + "\n")  # a file, but not a split's
    result = eval_cli(tmp_path)
    assert result.returncode == 2
    assert f"{tmp_path}: a folder, and none of its files is a .parquet file" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_an_empty_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    dataset = jsonl(tmp_path / "rows.jsonl", [row(1)])
    for result in (eval_cli(empty), eval_cli(dataset, empty)):
        assert result.returncode == 2 and f"{empty}: empty, it holds no rows" in result.stdout


def test_a_malformed_row_is_skipped_naming_its_field_and_row(tmp_path):
    path = tmp_path / "rows.jsonl"
    records = [
        row(1),
        {"instance_id": "example__calcpkg-2", "repo": "x/y"},
        row(3, FAIL_TO_PASS="not json"),
        row(4, FAIL_TO_PASS="[1, 2]"),
        row(5, PASS_TO_PASS=None),
        "a string",
        row(7, patch="\ud800"),
        row(8, instance_id="a/b"),
    ]
    text = "".join(json.dumps(record) + "\n" for record in records)
    path.write_bytes(text.encode() + json.dumps(row(9, test_patch="@@")).encode().replace(b"@@", b"\xff\xfe") + b"\n")
    good, skipped = load_dataset(path)
    assert [r.instance_id for r in good] == ["example__calcpkg-1"]
    assert skipped["example__calcpkg-2"].startswith("malformed row 2: base_commit: Field required; patch: Field")
    assert skipped["example__calcpkg-3"] == (
        "malformed row 3: FAIL_TO_PASS: text that is not JSON, where a list of test ids is expected"
    )
    assert skipped["example__calcpkg-4"] == (
        "malformed row 4: FAIL_TO_PASS.0: Input should be a valid string; "
        "FAIL_TO_PASS.1: Input should be a valid string"
    )
    assert skipped["example__calcpkg-5"] == "malformed row 5: PASS_TO_PASS: Input should be a valid list"
    assert skipped["row 6"].startswith("malformed row 6: the row: Input should be a valid dictionary")
    assert skipped["example__calcpkg-7"] == "malformed row 7: patch: not UTF-8 text: a lone surrogate at character 0"
    assert skipped["row 8"].startswith("malformed row 8: instance_id: 'a/b' cannot name a folder")
    assert skipped["example__calcpkg-9"] == (
        "malformed row 9: test_patch: not UTF-8 text: a lone surrogate at character 0"
    )  # bytes that were not UTF-8


def test_a_file_with_no_usable_row_is_a_clear_cli_error(tmp_path):
    dataset = jsonl(tmp_path / "rows.jsonl", [row(1, FAIL_TO_PASS=[1]), {"instance_id": "example__calcpkg-2"}])
    result = eval_cli(dataset)
    assert result.returncode == 2
    assert "no usable row:" in result.stdout
    assert "example__calcpkg-1: malformed row 1: FAIL_TO_PASS.0: Input should be a valid string" in result.stdout
    assert "example__calcpkg-2: malformed row 2: repo: Field required" in result.stdout


def test_every_row_of_a_duplicated_instance_id_is_skipped(tmp_path):
    dataset = jsonl(
        tmp_path / "rows.jsonl", [row(1), row(2, problem_statement="one"), row(2, problem_statement="another")]
    )
    good, skipped = load_dataset(dataset)
    assert [r.instance_id for r in good] == ["example__calcpkg-1"]
    assert skipped == {"example__calcpkg-2": "duplicate instance_id: rows 2, 3 share it; none is evaluated"}


@pytest.mark.parametrize(
    "prediction,why",
    [
        (
            {"instance_id": "example__calcpkg-1", "model_name_or_path": "m", "model_patch": 5},
            "prediction 1 (example__calcpkg-1): model_patch: Input should be a valid string",
        ),
        (
            {"instance_id": "example__calcpkg-1", "model_name_or_path": "m", "model_patch": ["diff"]},
            "prediction 1 (example__calcpkg-1): model_patch: Input should be a valid string",
        ),
        (
            {"instance_id": "example__calcpkg-1", "model_name_or_path": "", "model_patch": "x"},
            "prediction 1 (example__calcpkg-1): model_name_or_path: String should have at least 1 character",
        ),
        ({"model_name_or_path": "m", "model_patch": "x"}, "prediction 1: instance_id: Field required"),
        ("a string", "prediction 1: the row: Input should be a valid dictionary"),
    ],
)
def test_a_malformed_prediction_is_a_clear_cli_error(tmp_path, prediction, why):
    dataset = jsonl(tmp_path / "rows.jsonl", [row(1)])
    result = eval_cli(dataset, jsonl(tmp_path / "predictions.jsonl", [prediction]))
    assert result.returncode == 2 and why in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_an_instance_predicted_twice_is_a_clear_error(tmp_path):
    twice = [{"instance_id": "example__calcpkg-1", "model_name_or_path": "m", "model_patch": patch} for patch in "ab"]
    with pytest.raises(
        DatasetError,
        match=r"prediction 2 \(example__calcpkg-1\): instance_id is predicted already, "
        r"by prediction 1",
    ):
        load_predictions(jsonl(tmp_path / "predictions.jsonl", twice), [])


def test_instance_ids_not_in_the_dataset_are_a_clear_cli_error(tmp_path):
    result = eval_cli(jsonl(tmp_path / "rows.jsonl", [row(1)]), "gold", "-i", "example__calcpkg-1", "-i", "nope-1")
    assert result.returncode == 2 and "--instance-ids: not in the dataset: nope-1" in result.stdout


def test_a_hub_name_never_names_a_folder_outside_the_cache():
    for source in ("org/name:..", "org/..", "../x", "./x", "org/name:."):
        assert not hub.is_hub_name(source)
    assert hub.is_hub_name("princeton-nlp/SWE-bench_Verified:test")


BINARY_DIFF = """\
diff --git a/src/calcpkg/calc.cpython-311.pyc b/src/calcpkg/calc.cpython-311.pyc
new file mode 100644
index 0000000000000000000000000000000000000000..3f2ed1d2f3b4e0c3d7f0b1a8e9e8d6f8a7c6b5a4
GIT binary patch
literal 4
LcmZ?wbaDUy00001

literal 0
HcmV?d00001

"""


@pytest.mark.slow
def test_a_patch_that_is_not_text_is_its_instances_malformed_prediction(tmp_path_factory, store, tmp_path):
    """A lone surrogate, bytes that are not UTF-8, a binary diff: each instance is graded as a patch that does not
    apply, its log says why, and the run goes on."""
    tmp = forged_calcpkg(tmp_path_factory, store)
    ids = sorted(r.instance_id for r in rows(tmp))
    patches = {ids[0]: b'"\\ud800 a surrogate"', ids[1]: b'"bytes: \xff\xfe"', ids[2]: json.dumps(BINARY_DIFF).encode()}
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_bytes(
        b"".join(
            b'{"instance_id": "%s", "model_name_or_path": "m", "model_patch": %s}\n' % (i.encode(), patch)
            for i, patch in patches.items()
        )
    )
    logs = tmp_path / "logs"
    result = cli(
        "eval",
        "--dataset",
        str(tmp / "forged" / "instances.jsonl"),
        "--predictions",
        str(predictions),
        "--run-id",
        "not-text",
        "--sandbox",
        "process",
        "--store",
        str(store),
        "--repo-mirror",
        str(tmp / "mirror"),
        "--log-dir",
        str(logs),
        "--report-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "m.not-text.json").read_text())
    assert report["completed_ids"] == report["unresolved_ids"] == ids and report["error_ids"] == []
    why = [
        "not UTF-8 text: a lone surrogate at character 0",
        "not UTF-8 text: a lone surrogate at character 7",
        "binary diff of src/calcpkg/calc.cpython-311.pyc: a prediction is a text diff",
    ]
    for instance_id, reason in zip(ids, why, strict=True):
        folder = logs / "not-text" / "m" / instance_id
        assert f"malformed prediction: {reason}; not applied" in (folder / "run_instance.log").read_text()
        assert not json.loads((folder / "report.json").read_text())[instance_id]["patch_successfully_applied"]
    assert (logs / "not-text" / "m" / ids[0] / "patch.diff").read_text() == "\\ud800 a surrogate"
    assert FIX_ID in ids
