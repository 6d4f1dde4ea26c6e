"""`repoforge sft-data`: the trajectories whose patch the harness resolved, as rows TRL's SFTTrainer reads.

A row is {"messages": [...], "tools": [...]} (TRL's conversational format with tool calls; a tool call's arguments
as an object, as chat templates want them). Every message carries `training`: true for the model's own turns, false
for the system prompt, the task and the tool outputs (axolotl's per-message key; in TRL, assistant_only_loss=True
masks the same turns).
"""

from __future__ import annotations

import json
from pathlib import Path

from repoforge.agent.trajectory import Trajectory
from repoforge.names import model_folder


class SftDataError(ValueError):
    pass


def resolved_by(reports: list[Path]) -> dict[str, set[str]]:
    """{report file name: resolved instance ids} of SWE-bench run reports (<model>.<run_id>.json)."""
    resolved = {}
    for path in reports:
        try:
            resolved[path.name] = set(json.loads(path.read_text())["resolved_ids"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SftDataError(f"{path} is not a run report with resolved_ids: {exc}") from None
    return resolved


def kept(trajectory: Trajectory, resolved: dict[str, set[str]]) -> bool:
    """Whether a report of this trajectory's model (its sample's name) resolves its instance."""
    prefix = model_folder(trajectory.prediction.model_name_or_path) + "."
    return any(name.startswith(prefix) and trajectory.instance_id in ids for name, ids in resolved.items())


def trajectories_in(folder: Path) -> tuple[list[Trajectory], list[str]]:
    """The trajectories under folder/<instance_id>/<k>.json, and the files that are not one (with why)."""
    found, bad = [], []
    for path in sorted(folder.glob("*/*.json")):
        try:
            found.append(Trajectory.model_validate_json(path.read_text()))
        except (OSError, ValueError) as exc:
            bad.append(f"{path}: {str(exc).splitlines()[0]}")
    return [t for t in found if t.prediction is not None], bad


def sft_row(trajectory: Trajectory) -> dict:
    return {
        "messages": [_message(m) for m in trajectory.messages],
        "tools": trajectory.tools,
        "instance_id": trajectory.instance_id,
        "sample": trajectory.sample,
    }


def _message(message: dict) -> dict:
    row = {key: value for key, value in message.items() if key != "tool_calls"}
    if message.get("tool_calls"):
        row["tool_calls"] = [
            {"type": "function", "id": call["id"], "function": {**call["function"], "arguments": _object(call)}}
            for call in message["tool_calls"]
        ]
    row["training"] = message["role"] == "assistant"
    return row


def _object(call: dict):
    arguments = call["function"]["arguments"]
    try:
        value = json.loads(arguments)
    except (TypeError, ValueError):
        return arguments
    return value if isinstance(value, dict) else arguments


def sft_rows(
    trajectories: Path, reports: list[Path], instances: set[str] | None = None
) -> tuple[list[dict], int, list[str]]:
    """(the SFT rows of the trajectories the run reports resolve, of `instances` only if given; how many
    trajectories were read; the files that are not one, with why). A report that is not one is an SftDataError."""
    resolved = resolved_by(reports)
    found, bad = trajectories_in(trajectories)
    chosen = [t for t in found if kept(t, resolved) and (instances is None or t.instance_id in instances)]
    return [sft_row(t) for t in chosen], len(found), bad
