"""`repoforge agent run`: rollouts of a model on instances, each a Ray task graded by the harness as it ends.

    OUT/trajectories/<instance_id>/<k>.json   every rollout (agent/trajectory.py)
    OUT/preds.jsonl, OUT/preds-sample<k>.jsonl SWE-bench's predictions format, one file per sample
    OUT/<model>.<run_id>.json                  SWE-bench's run report of each sample
    OUT/logs/run_evaluation/...                the harness's logs

A rerun resumes: a rollout whose trajectory is on disk is not run again (only graded, if it was not yet).
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path

from pydantic import BaseModel

from repoforge.agent.config import AgentConfig
from repoforge.agent.env import AgentEnv, grade, sample_name
from repoforge.agent.loop import rollout
from repoforge.agent.trajectory import Trajectory
from repoforge.forge import write_atomic
from repoforge.harness.evaluate import EvalOptions, write_run_report
from repoforge.llm import ChatModel, ModelConfig, make_model
from repoforge.runner import console, run_items
from repoforge.schema import AbsolutePath, TaskInstance


class AgentRunOptions(BaseModel):
    out: AbsolutePath
    model: ModelConfig
    config: AgentConfig
    eval: EvalOptions  # where environments, repositories and the harness's logs are; its run_id names the run
    samples: int = 1
    evaluate: bool = True


def trajectory_path(out: Path, instance_id: str, sample: int) -> Path:
    return out / "trajectories" / instance_id / f"{sample}.json"


def predictions_path(out: Path, sample: int) -> Path:
    return out / ("preds.jsonl" if sample == 0 else f"preds-sample{sample}.jsonl")


def _read(path: Path) -> Trajectory | None:
    try:
        return Trajectory.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None  # missing, or cut short by a crash: rolled out again


@functools.cache
def _model(config_json: str) -> ChatModel:
    """One engine per worker process and model: a local model is loaded once, not per rollout."""
    return make_model(ModelConfig.model_validate_json(config_json))


def rollout_and_grade(item: tuple[TaskInstance, int], opts: AgentRunOptions) -> Trajectory:
    """Roll out sample k of an instance (unless its trajectory is kept) and grade it; both kept as they are done."""
    row, sample = item
    path = trajectory_path(opts.out, row.instance_id, sample)
    trajectory = _read(path)
    if trajectory is None:
        trajectory = rollout(AgentEnv(opts.config, opts.eval), _model(opts.model.model_dump_json()), row, sample)
        write_atomic(path, trajectory.model_dump_json(indent=1))
    if opts.evaluate and trajectory.verdict is None:
        trajectory.verdict = grade(row, trajectory.prediction, opts.eval)
        write_atomic(path, trajectory.model_dump_json(indent=1))
    return trajectory


def run_agent(
    rows: list[TaskInstance],
    opts: AgentRunOptions,
    workers: int,
    ray_address: str | None,
    instance_ids: set[str] | None = None,
) -> dict:
    """Every (instance, sample) rolled out and graded (of `instance_ids` only, if given); the predictions files and
    run reports written of every rollout in OUT, so that runs on parts of the dataset add up; a summary."""
    from repoforge.sandbox import get_backend

    backend = get_backend(opts.eval.sandbox).name
    opts = opts.model_copy(update={"eval": opts.eval.model_copy(update={"sandbox": backend})})  # decided once
    items = [(row, k) for row in rows for k in range(opts.samples)]
    kept = {_key(item): _read(trajectory_path(opts.out, item[0].instance_id, item[1])) for item in items}
    chosen = [item for item in items if instance_ids is None or item[0].instance_id in instance_ids]
    todo = [item for item in chosen if not _finished(kept[_key(item)], opts.evaluate)]
    done = {key: t for key, t in kept.items() if t is not None and _finished(t, opts.evaluate)}

    def record(item, outcome) -> None:
        if isinstance(outcome, BaseException):  # lost with its worker, or a bug: retried by a rerun
            console.print(f"[red]{_key(item)}: {type(outcome).__name__}: {outcome}[/red]")
        else:
            done[_key(item)] = outcome

    def status() -> str:
        resolved = sum(bool(t.verdict and t.verdict.resolved) for t in done.values())
        return f"resolved {resolved}/{len(done)}" if opts.evaluate else f"{len(done)} rolled out"

    if todo:
        work = functools.partial(rollout_and_grade, opts=opts)
        run_items(
            work,
            todo,
            key=_key,
            workers=workers,
            ray_address=ray_address,
            label="agent",
            docker=backend == "docker",
            on_done=record,
            status=status,
        )
    return _write_outputs(rows, done, opts)


def _key(item: tuple[TaskInstance, int]) -> str:
    return f"{item[0].instance_id}/{item[1]}"


def _finished(trajectory: Trajectory | None, evaluate: bool) -> bool:
    return trajectory is not None and (trajectory.verdict is not None or not evaluate)


def _write_outputs(rows: list[TaskInstance], done: dict[str, Trajectory], opts: AgentRunOptions) -> dict:
    summary = {"rollouts": len(done), "samples": {}}
    for sample in range(opts.samples):
        trajectories = [done[key] for row in rows if (key := f"{row.instance_id}/{sample}") in done]
        predictions = {t.instance_id: t.prediction for t in trajectories}
        lines = "".join(p.model_dump_json() + "\n" for p in predictions.values())
        write_atomic(predictions_path(opts.out, sample), lines)
        entry = {
            "predictions": str(predictions_path(opts.out, sample)),
            "exit_reasons": dict(Counter(t.exit_reason for t in trajectories)),
            "cost": round(sum(t.cost for t in trajectories), 6),
        }
        if opts.evaluate and predictions:
            report, path = write_run_report(rows, predictions, opts.eval, {})
            entry |= {
                "report": str(path),
                "resolved": report["resolved_instances"],
                "errors": report["error_instances"],
            }
        summary["samples"][sample_name(opts.model.short_name, sample)] = entry
    write_atomic(opts.out / "summary.json", json.dumps(summary, indent=2))
    return summary
