"""Read datasets (ours or SWE-bench's; JSONL, JSON or parquet) and predictions; every error names its row and field."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pyarrow
import pyarrow.parquet as parquet
from pydantic import ValidationError

from repoforge.names import check_folder_name
from repoforge.schema import Prediction, TaskInstance, check_utf8_text

MAX_LISTED = 10  # problems one error names
# git's binary diffs: with --binary the data, without it only a line saying the files differ
BINARY_DIFF = re.compile(r"^(?:GIT binary patch|Binary files .* differ)$", re.MULTILINE)


class DatasetError(ValueError):
    """A file that cannot be used at all; the command line says why and exits with 2."""


def read_records(path: Path) -> list:
    """Rows of a JSONL, JSON (a list) or parquet file, or of a folder of parquet files (a split, in order)."""
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    if path.is_dir():
        parts = sorted(path.glob("*.parquet"))
        if not parts:
            raise DatasetError(f"{path}: a folder, and none of its files is a .parquet file")
        records = [record for part in parts for record in _read_parquet(part)]
    elif path.suffix == ".parquet":
        records = _read_parquet(path)
    else:
        records = _read_json(path)
    if not records:
        raise DatasetError(f"{path}: empty, it holds no rows")
    return records


def _read_parquet(path: Path) -> list:
    try:
        return parquet.read_table(path).to_pylist()
    except pyarrow.ArrowException as exc:
        raise DatasetError(f"{path}: not a readable parquet file ({exc})") from None


def _read_json(path: Path) -> list:
    # Bytes that are not UTF-8 survive as lone surrogates, so the row or prediction holding them is the one refused.
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        pass
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not JSON ({exc.msg})") from None
    return records


def _fields(exc: ValidationError) -> str:
    """Each error as `field: message`, e.g. `FAIL_TO_PASS.2: Input should be a valid string`."""
    return "; ".join(
        f"{'.'.join(map(str, error['loc'])) or 'the row'}: {error['msg'].removeprefix('Value error, ')}"
        for error in exc.errors()
    )


def _usable_id(record) -> str | None:
    """The record's instance_id, if it can name the record (and its log folder)."""
    instance_id = record.get("instance_id") if isinstance(record, dict) else None
    try:
        return check_folder_name(instance_id) if isinstance(instance_id, str) else None
    except ValueError:
        return None


def _listed(problems: list[str]) -> str:
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return "".join(f"\n  {problem}" for problem in problems[:MAX_LISTED]) + more


def sources_beside(path: Path) -> Path:
    """The sources.json forge writes beside its instances.jsonl: owner/name -> the repository it mined."""
    return ((path if path.is_dir() else path.parent) / "sources.json").resolve()


def load_dataset(path: Path) -> tuple[list[TaskInstance], dict[str, str]]:
    """(rows, {instance_id or "row N": why it was skipped}): a malformed row, or every row of an instance_id that
    names more than one, costs only itself. A file with no usable row is a DatasetError."""
    records = read_records(path)
    numbers = defaultdict(list)
    for number, record in enumerate(records, 1):
        numbers[_usable_id(record)].append(number)
    rows, skipped = [], {}
    for number, record in enumerate(records, 1):
        name = _usable_id(record)
        if name and len(numbers[name]) > 1:
            rows_of = ", ".join(map(str, numbers[name]))
            skipped[name] = f"duplicate instance_id: rows {rows_of} share it; none is evaluated"
            continue
        try:
            rows.append(TaskInstance.model_validate(record))
        except ValidationError as exc:
            skipped[name or f"row {number}"] = f"malformed row {number}: {_fields(exc)}"
    if not rows:
        raise DatasetError(f"{path}: no usable row:" + _listed([f"{name}: {why}" for name, why in skipped.items()]))
    return rows, skipped


def write_rows(rows: list[TaskInstance], path: Path) -> None:
    """Rows as JSONL, written atomically."""
    from repoforge.forge import write_atomic  # not at the top: forge imports the whole pipeline

    write_atomic(path, "".join(row.model_dump_json() + "\n" for row in rows))


def load_predictions(source: str, rows: list[TaskInstance]) -> dict[str, Prediction]:
    """`gold` (each row's patch), `empty` (no patch), or a JSONL/JSON file of predictions, one per instance."""
    if source in ("gold", "empty"):
        return {
            r.instance_id: Prediction(
                instance_id=r.instance_id, model_name_or_path=source, model_patch=r.patch if source == "gold" else ""
            )
            for r in rows
        }
    predictions, numbers, problems = {}, {}, []
    for number, record in enumerate(read_records(Path(source)), 1):
        name = f"prediction {number}" + (f" ({instance_id})" if (instance_id := _usable_id(record)) else "")
        try:
            prediction = Prediction.model_validate(record)
        except ValidationError as exc:
            problems.append(f"{name}: {_fields(exc)}")
            continue
        if prediction.instance_id in numbers:
            first = numbers[prediction.instance_id]
            problems.append(f"{name}: instance_id is predicted already, by prediction {first}")
        numbers.setdefault(prediction.instance_id, number)
        predictions[prediction.instance_id] = prediction
    if problems:
        raise DatasetError(f"{source}: malformed predictions:{_listed(problems)}")
    return predictions


def patch_problem(patch: str) -> str | None:
    """Why a model's patch is malformed, if it is: not UTF-8 text, or binary diffs (a prediction is a text diff).
    Such a patch is not applied; the instance is graded, and the run goes on."""
    try:
        check_utf8_text(patch)
    except ValueError as exc:
        return str(exc)
    sections = re.split(r"^(?=diff --git )", patch, flags=re.MULTILINE)
    binary = [_diff_path(section) for section in sections if BINARY_DIFF.search(section)]
    if binary:
        return f"binary diff of {', '.join(binary)}: a prediction is a text diff"
    return None


def _diff_path(section: str) -> str:
    header = re.match(r"diff --git a/.* b/(.*)", section)
    return header[1] if header else "a file"
