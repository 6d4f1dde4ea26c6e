"""Bubble-free RL: the same workload trained --sync and asynchronously, one after the other in one run; the trainer's
idle fraction and steps per hour of each, and their metrics drawn together.

    .venv/bin/python bench/rl.py [--steps 8] [--workers 4] [--answer-seconds 3] [--hidden 256 --layers 4]
                                 [--sandbox auto] [--store DIR] [--out DIR]

The workload: the bundled example forged; episodes replayed in real sandboxes, each 1 to 10 steps long (every step
runs the project's tests, as an agent checking its work does; half the scripts fix the bug first, so the harness
rewards them 1 and the others 0); each answer takes --answer-seconds, as from an inference server; a tiny random model
(repoforge.train.tiny) takes real training steps on the episodes' tokens. The trainer runs on one core (torch threads
1), as a GPU trainer leaves the CPU to the rollouts.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "examples")]

import calcpkg  # noqa: E402
import torch  # noqa: E402

from repoforge.agent.config import load_config  # noqa: E402
from repoforge.forge import ForgeOptions, default_store, forge  # noqa: E402
from repoforge.harness.dataset import load_dataset  # noqa: E402
from repoforge.harness.evaluate import EvalOptions  # noqa: E402
from repoforge.runner import start_ray  # noqa: E402
from repoforge.sandbox import get_backend  # noqa: E402
from repoforge.train.replay import ReplayPolicy  # noqa: E402
from repoforge.train.rl import RLOptions, train_rl  # noqa: E402
from repoforge.train.tiny import make_tiny_model  # noqa: E402

FIX_ID = "example__calcpkg-12"  # add() returned the difference
CALC = "src/calcpkg/calc.py"
TEST = {"name": "execute_bash", "arguments": {"command": "python -m pytest -q -x tests 2>&1 | tail -3"}}
FIX = {
    "name": "str_replace_editor",
    "arguments": {"command": "str_replace", "path": CALC, "old_str": "return a - b", "new_str": "return a + b"},
}
FINISH = {"name": "finish", "arguments": {}}


def scripts() -> list[list[dict]]:
    """Ten episodes, one of each length from 1 to 10 steps, lengths mixed; the even ones fix the bug first."""
    lengths = [2, 1, 10, 3, 7, 4, 9, 5, 6, 8]
    return [[FIX] * (k % 2 == 0) + [TEST] * (n - 1 - (k % 2 == 0)) + [FINISH] for k, n in enumerate(lengths)]


def fix_row(folder: Path, store: Path, sandbox: str):
    """The forged instance whose bug the scripts fix: every group then holds rewards 1 and 0, and trains."""
    repo = calcpkg.build(folder / "mirror" / "example__calcpkg")
    forge([str(repo.path)], ForgeOptions(out=folder / "forged", store=store, timeout=30, sandbox=sandbox))
    rows, _ = load_dataset(folder / "forged" / "instances.jsonl")
    return [row for row in rows if row.instance_id == FIX_ID]


def measure(rows, model: Path, out: Path, args, sync: bool) -> dict:
    eval_opts = EvalOptions(run_id="rl", store=args.store, log_dir=out / "logs", repo_mirror=args.out / "mirror")
    opts = RLOptions(
        out=out,
        model=model,
        agent=load_config(tool_mode="text", turns=10, sampling={"max_tokens": 64}),
        eval=eval_opts.model_copy(update={"sandbox": args.sandbox}),
        steps=args.steps,
        group_size=args.group_size,
        groups_per_step=args.groups_per_step,
        max_staleness=args.max_staleness,
        sync=sync,
        workers=args.workers,
        learning_rate=1e-4,
    )
    started = time.monotonic()
    policy = functools.partial(ReplayPolicy, scripts=scripts(), answer_seconds=args.answer_seconds)
    train_rl(rows, opts, engine=policy)
    seconds = time.monotonic() - started
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    busy, idle = (sum(row[key] for row in steps) for key in ("trainer_busy_seconds", "trainer_idle_seconds"))
    later = steps[1:]  # after the first batch, which every mode waits for
    later_busy, later_idle = (
        sum(row[key] for row in later) for key in ("trainer_busy_seconds", "trainer_idle_seconds")
    )
    return {
        "mode": "sync" if sync else "async",
        "steps": len(steps),
        "seconds": round(seconds, 1),
        "steps_per_hour": round(len(steps) / seconds * 3600, 1),
        "steps_per_hour_after_first_step": round(
            (len(steps) - 1) / (steps[-1]["elapsed_seconds"] - steps[0]["elapsed_seconds"]) * 3600, 1
        ),
        "trainer_busy_seconds": round(busy, 1),
        "trainer_idle_fraction": round(idle / (busy + idle), 3),
        "trainer_idle_fraction_after_first_step": round(later_idle / (later_busy + later_idle), 3),
        "median_train_step_seconds": sorted(row["trainer_busy_seconds"] for row in steps)[len(steps) // 2],
        "rollouts_per_minute": steps[-1]["rollouts_per_minute"],
        "mean_reward": round(sum(row["reward"] for row in steps) / len(steps), 3),
        "staleness": _summed(row["staleness"] for row in steps),
        "dropped_stale_groups": steps[-1]["dropped_stale"],
    }


def _summed(histograms) -> dict:
    total: dict[str, int] = {}
    for histogram in histograms:
        for lag, count in histogram.items():
            total[lag] = total.get(lag, 0) + count
    return dict(sorted(total.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--groups-per-step", type=int, default=1)
    parser.add_argument("--max-staleness", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--answer-seconds", type=float, default=3.0, help="each replayed answer's latency")
    parser.add_argument("--hidden", type=int, default=256, help="the tiny model's width")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--sandbox", default="auto")
    parser.add_argument("--store", type=Path, default=None, help="environments (built on first use)")
    parser.add_argument("--out", type=Path, default=Path("bench-rl-out"))
    args = parser.parse_args()
    args.store, args.out = (args.store or default_store()).resolve(), args.out.resolve()
    args.sandbox = get_backend(args.sandbox).name
    torch.set_num_threads(1)
    start_ray(None, args.workers)  # before forging, which would start it with its own slot count
    rows = fix_row(args.out, args.store, args.sandbox)
    model = make_tiny_model(args.out / "model", hidden=args.hidden, layers=args.layers)
    results = [measure(rows, model, args.out / mode, args, mode == "sync") for mode in ("sync", "async")]
    from repoforge.train.plot import plot_runs

    sync, asynchronous = results
    summary = {
        "sandbox": args.sandbox,
        "instances": len(rows),
        "model": {"hidden": args.hidden, "layers": args.layers},
        "workers": args.workers,
        "answer_seconds": args.answer_seconds,
        "runs": results,
        "async_over_sync_steps_per_hour": round(asynchronous["steps_per_hour"] / sync["steps_per_hour"], 2),
        "async_over_sync_after_first_step": round(
            asynchronous["steps_per_hour_after_first_step"] / sync["steps_per_hour_after_first_step"], 2
        ),
        "plots": [str(p) for p in plot_runs([args.out / "sync", args.out / "async"], args.out / "plots")],
    }
    (args.out / "bench-rl.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
