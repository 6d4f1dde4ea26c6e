"""Read datasets (ours or SWE-bench's; JSONL, JSON or parquet) and predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow
import pyarrow.parquet as parquet
from pydantic import ValidationError

from repoforge.schema import Prediction, TaskInstance


class DatasetError(ValueError):
    """A file that cannot be read as rows at all."""


def read_records(path: Path) -> list[dict]:
    """Rows of a JSONL, JSON (a list) or parquet file, or of a folder of parquet files (a split, in order)."""
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    if path.is_dir():
        return [record for part in sorted(path.glob("*.parquet")) for record in read_records(part)]
    if path.suffix == ".parquet":
        try:
            return parquet.read_table(path).to_pylist()
        except pyarrow.ArrowException as exc:
            raise DatasetError(f"{path}: not a readable parquet file ({exc})") from None
    text = path.read_text(errors="replace")
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


def sources_beside(path: Path) -> Path:
    """The sources.json forge writes beside its instances.jsonl: owner/name -> the repository it mined."""
    return ((path if path.is_dir() else path.parent) / "sources.json").resolve()


def load_dataset(path: Path) -> tuple[list[TaskInstance], dict[str, str]]:
    """(rows, {instance_id or row number: why it was skipped}) - a malformed row costs only itself."""
    rows, skipped = [], {}
    for number, record in enumerate(read_records(path), 1):
        try:
            rows.append(TaskInstance.model_validate(record))
        except (ValidationError, ValueError) as exc:
            name = record.get("instance_id") if isinstance(record, dict) else None
            skipped[name or f"row {number}"] = f"malformed row: {str(exc).splitlines()[0]}"
    return rows, skipped


def load_predictions(source: str, rows: list[TaskInstance]) -> dict[str, Prediction]:
    """`gold` (each row's patch), `empty` (no patch), or a JSONL/JSON file of predictions."""
    if source in ("gold", "empty"):
        return {r.instance_id: Prediction(instance_id=r.instance_id, model_name_or_path=source,
                                          model_patch=r.patch if source == "gold" else "") for r in rows}
    predictions = {}
    for record in read_records(Path(source)):
        try:
            prediction = Prediction.model_validate(record)
        except ValidationError as exc:
            raise DatasetError(f"{source}: malformed prediction: {str(exc).splitlines()[0]}") from None
        predictions[prediction.instance_id] = prediction
    return predictions
