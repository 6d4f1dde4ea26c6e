"""Benchmark evaluation: wall time with one worker against the default, and the harness's overhead.

    .venv/bin/python bench/eval.py --dataset instances.jsonl --repo-mirror DIR [--store DIR] [--sandbox process]

Evaluates the gold patches of every row twice in one run, with fresh run ids: first with
--max-workers 1, then with the default. Environments are built (or found) before either is timed.
Overhead per instance = (one-worker wall time - the test commands' own seconds) / instances.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from repoforge.harness.dataset import load_dataset, load_predictions
from repoforge.harness.evaluate import EvalOptions, evaluate, instance_log_dir


def timed_run(rows, predictions, opts: EvalOptions, workers: int) -> tuple[float, dict, float]:
    start = time.monotonic()
    report, _ = evaluate(rows, predictions, opts, workers)
    wall = time.monotonic() - start
    test_seconds = 0.0
    for row in rows:
        path = instance_log_dir(opts, predictions[row.instance_id], row.instance_id) / "report.json"
        if path.exists():
            test_seconds += json.loads(path.read_text())[row.instance_id]["seconds"].get("tests", 0.0)
    return wall, report, test_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--repo-mirror", type=Path)
    parser.add_argument("--store", type=Path)
    parser.add_argument("--sandbox", default="process")
    parser.add_argument("--workers", type=int, default=2, help="the default to compare one worker against")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-eval-")))
    args = parser.parse_args()
    rows, _ = load_dataset(args.dataset)
    predictions = load_predictions("gold", rows)
    extra = {"store": args.store} if args.store else {}
    options = lambda run_id: EvalOptions(run_id=run_id, log_dir=args.out / "logs", report_dir=args.out,
                                         repo_mirror=args.repo_mirror, sandbox=args.sandbox, **extra)
    stamp = int(time.time())
    evaluate(rows, predictions, options(f"warmup-{stamp}"), args.workers)  # environments built, caches warm
    one_wall, one_report, one_tests = timed_run(rows, predictions, options(f"w1-{stamp}"), 1)
    many_wall, many_report, _ = timed_run(rows, predictions, options(f"w{args.workers}-{stamp}"), args.workers)
    n = len(rows)
    summary = {
        "instances": n,
        "resolved_one_worker": one_report["resolved_instances"],
        "resolved_default": many_report["resolved_instances"],
        "wall_one_worker_s": round(one_wall, 1),
        f"wall_{args.workers}_workers_s": round(many_wall, 1),
        "speedup": round(one_wall / many_wall, 2),
        "test_command_s_per_instance": round(one_tests / n, 3),
        "overhead_s_per_instance": round((one_wall - one_tests) / n, 3),
    }
    (args.out / "bench-eval.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
