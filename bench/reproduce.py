"""Benchmark reproduction: does each row of a dataset (SWE-bench's, say) reproduce on environments we build?

    .venv/bin/python bench/reproduce.py --dataset rows.jsonl --repo-mirror DIR [--store DIR] [--sandbox docker]

Evaluates the gold patch of every row, then, on the rows gold resolves, the base commit as it is (an empty
prediction is never run, as in SWE-bench, so a patch that only adds an empty file stands in for it). A row
reproduces when gold resolves it and the base commit does not. For every other row the output says why: the
harness's error (environment, offline tests), the required tests that failed under gold, or that the base resolves it.
Per repository: rows, reproduced, gold errors, base resolved; the median cold build of the environments
the rows used and the median seconds of a gold evaluation; with Docker, the store's unique bytes per instance.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path

import evalrun  # bench/: the evaluation benchmarks' shared arguments

from repoforge import store
from repoforge.env.build import env_folder
from repoforge.harness.dataset import load_dataset, load_predictions
from repoforge.harness.evaluate import evaluate, instance_log_dir
from repoforge.schema import EnvSpec, Prediction

NOOP = "diff --git a/.repoforge-noop b/.repoforge-noop\nnew file mode 100644\nindex 0000000..e69de29\n"


def predictions(kind: str, rows) -> dict[str, Prediction]:
    if kind == "gold":
        return load_predictions("gold", rows)
    return {
        r.instance_id: Prediction(instance_id=r.instance_id, model_name_or_path="base", model_patch=NOOP) for r in rows
    }


def gold_outcome(instance_id: str, report: dict, folder: Path) -> str:
    if instance_id in report["resolved_ids"]:
        return "resolved"
    if instance_id in report["error_ids"]:
        return "error: " + report["failure_reasons"].get(instance_id, "")
    status = json.loads((folder / "report.json").read_text())[instance_id]["tests_status"]
    failed = status["FAIL_TO_PASS"]["failure"] + status["PASS_TO_PASS"]["failure"]
    total = sum(len(status[k]["success"]) + len(status[k]["failure"]) for k in ("FAIL_TO_PASS", "PASS_TO_PASS"))
    return f"unresolved: {len(failed)}/{total} required tests fail, e.g. {', '.join(failed[:3])}"


def run_facts(folder: Path) -> tuple[str | None, float | None]:
    """(the environment's fingerprint, the evaluation's seconds) from an instance's run_instance.log."""
    log = (folder / "run_instance.log").read_text() if (folder / "run_instance.log").exists() else ""
    env = re.search(r"^environment (\w+) ", log, re.M)
    seconds = re.search(r"^seconds: (.*)$", log, re.M)
    return (env[1] if env else None), (json.loads(seconds[1]).get("total") if seconds else None)


def build_seconds(store_dir: Path, backend: str, fingerprint: str) -> float | None:
    spec = env_folder(store_dir, backend, fingerprint) / "spec.json"
    if not spec.exists():
        return None
    return sum(attempt.seconds for attempt in EnvSpec.model_validate_json(spec.read_text()).attempts)


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def main() -> None:
    parser = evalrun.parser(__doc__, "reproduce", timeout=600, workers_help="instances evaluated at once")
    parser.add_argument("--tag", default=str(int(time.time())), help="names the runs; the same tag resumes them")
    args = parser.parse_args()
    rows, skipped = load_dataset(args.dataset)
    options = {kind: evalrun.options(args, f"{kind}-{args.tag}") for kind in ("gold", "base")}
    start = time.monotonic()
    gold_report = evaluate(rows, predictions("gold", rows), options["gold"], args.workers)[0]
    # Only a row gold resolves can reproduce: the base commit runs on those alone.
    resolved = [r for r in rows if r.instance_id in gold_report["resolved_ids"]]
    reports = {
        "gold": gold_report,
        "base": evaluate(resolved, predictions("base", resolved), options["base"], args.workers)[0],
    }
    per_row, per_repo = {}, defaultdict(lambda: defaultdict(list))
    for row in rows:
        folder = instance_log_dir(options["gold"], predictions("gold", [row])[row.instance_id], row.instance_id)
        gold = gold_outcome(row.instance_id, reports["gold"], folder)
        base_resolves = row.instance_id in reports["base"]["resolved_ids"]
        fingerprint, seconds = run_facts(folder)
        per_row[row.instance_id] = {
            "repo": row.repo,
            "gold": gold,
            "base_resolves": base_resolves,
            "reproduces": gold == "resolved" and not base_resolves,
            "env": fingerprint,
            "eval_seconds": seconds,
        }
        repo = per_repo[row.repo]
        repo["rows"].append(row.instance_id)
        repo["envs"].append(fingerprint)
        if seconds is not None:
            repo["eval_seconds"].append(seconds)
    backend = options["gold"].sandbox if options["gold"].sandbox != "auto" else "docker"
    summary = {
        "rows": len(rows),
        "skipped_rows": skipped,
        "reproduce": sum(r["reproduces"] for r in per_row.values()),
        "gold_resolved": reports["gold"]["resolved_instances"],
        "gold_errors": reports["gold"]["error_instances"],
        "base_resolved": reports["base"]["resolved_instances"],
        "wall_s": round(time.monotonic() - start, 1),
        "repositories": {
            name: repo_summary(facts, per_row, options["gold"].store, backend)
            for name, facts in sorted(per_repo.items())
        },
        "instances": per_row,
    }
    if backend == "docker":
        usage = store.disk_usage()
        summary["store"] = {
            "instances": usage.instances,
            "unique_bytes": usage.unique_bytes,
            "unique_bytes_per_instance": usage.unique_bytes_per_instance,
        }
    (args.out / "bench-reproduce.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "instances"}, indent=2))
    print(f"per row: {args.out / 'bench-reproduce.json'}")


def repo_summary(facts: dict, per_row: dict, store_dir: Path, backend: str) -> dict:
    rows = [per_row[i] for i in facts["rows"]]
    builds = [build_seconds(store_dir, backend, f) for f in set(facts["envs"]) if f]
    return {
        "rows": len(rows),
        "reproduced": sum(r["reproduces"] for r in rows),
        "gold_errors": sum(r["gold"].startswith("error") for r in rows),
        "base_resolves": sum(r["base_resolves"] for r in rows),
        "environments": len(set(filter(None, facts["envs"]))),
        "median_cold_build_s": median([b for b in builds if b is not None]),
        "median_eval_s": median(facts["eval_seconds"]),
        "not_reproduced": {
            i: per_row[i]["gold"] if per_row[i]["gold"] != "resolved" else "base resolves"
            for i in facts["rows"]
            if not per_row[i]["reproduces"]
        },
    }


if __name__ == "__main__":
    main()
