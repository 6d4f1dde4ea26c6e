"""Benchmark evaluation: wall time with one worker against the default, and the harness's overhead.

    .venv/bin/python bench/eval.py --dataset instances.jsonl --repo-mirror DIR [--store DIR] [--sandbox process]

Evaluates the gold patches of every row twice in one run, with fresh run ids: first with
--max-workers 1, then with the default. Environments are built (or found) before either is timed.
Overhead per instance = (one-worker wall time - the test commands' own seconds) / instances.
With --sandbox docker, a third run (one worker, before the others) starts a new container for every
instance instead of reusing one per environment, to compare the two side by side.
"""

from __future__ import annotations

import json
import time

import evalrun  # bench/: the evaluation benchmarks' shared arguments

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
    args = evalrun.parser(
        __doc__,
        "eval",
        timeout=EvalOptions.model_fields["timeout"].default,
        workers_help="the default to compare one worker against",
    ).parse_args()
    rows, _ = load_dataset(args.dataset)
    predictions = load_predictions("gold", rows)
    options = lambda run_id: evalrun.options(args, run_id)
    stamp = int(time.time())
    evaluate(rows, predictions, options(f"warmup-{stamp}"), args.workers)  # environments built, caches warm
    fresh = {}
    if args.sandbox == "docker":
        fresh_opts = options(f"fresh-{stamp}").model_copy(update={"reuse_containers": False})
        wall, report, tests = timed_run(rows, predictions, fresh_opts, 1)
        fresh = {
            "resolved_fresh_containers": report["resolved_instances"],
            "wall_one_worker_fresh_containers_s": round(wall, 1),
            "overhead_s_per_instance_fresh_containers": round((wall - tests) / len(rows), 3),
        }
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
        **fresh,
    }
    (args.out / "bench-eval.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
