"""Benchmark labels: agreement of the no-model difficulty estimate and of a model with SWE-bench Verified's human
`difficulty` column, and what labeling costs per instance.

    .venv/bin/python bench/label.py --verified test.parquet [--model-rows N] [--base-url URL --model NAME]
                                    [--dataset instances.jsonl] [--store DIR] [--out FILE]

Verified's labels are a test set: nothing here is chosen by looking at them (the estimate's weights are set on
principle, see label/estimate.py). `--model-rows` labels the first N rows (sorted by instance id) with the model,
its difficulty votes compared with the humans'; `--dataset` labels forged instances and reports tokens, seconds and
cost per instance, also at a hosted model's list price for the same tokens. Without `--base-url` the embedded
model is served on loopback.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

from repoforge.forge import default_store
from repoforge.harness.dataset import load_dataset, read_records
from repoforge.label.estimate import estimate_difficulty
from repoforge.label.run import LabelOptions, label_rows
from repoforge.llm import ModelConfig
from repoforge.llm.embedded import model_folder
from repoforge.llm.serve import Server

# SWE-bench Verified's buckets, in SPICE's order (0-3).
HUMAN = {"<15 min fix": 0, "15 min - 1 hour": 1, "1-4 hours": 2, ">4 hours": 3}
HOSTED = {"name": "gpt-4o-mini", "input": 0.15, "output": 0.60}  # US dollars per million tokens, list price


def agreement(predicted: list[int | None], human: list[int]) -> dict:
    pairs = [(p, h) for p, h in zip(predicted, human, strict=True) if p is not None]
    return {
        "rows": len(human),
        "answered": len(pairs),
        "exact": sum(p == h for p, h in pairs) / len(human),
        "within_one": sum(abs(p - h) <= 1 for p, h in pairs) / len(human),
        "predicted": dict(sorted(Counter(p for p, _ in pairs).items())),
        "confusion": {f"{h}->{p}": n for (p, h), n in sorted(Counter(pairs).items(), key=lambda kv: kv[0][::-1])},
    }


def human_labels(path: Path) -> tuple[list, list[int]]:
    rows, skipped = load_dataset(path)
    assert not skipped, skipped
    difficulty = {r["instance_id"]: HUMAN[r["difficulty"]] for r in read_records(path)}
    rows.sort(key=lambda row: row.instance_id)
    return rows, [difficulty[row.instance_id] for row in rows]


def model_options(args, server: Server | None, price: dict) -> LabelOptions:
    config = ModelConfig(
        model=server.model if server else args.model,
        base_url=server.base_url if server else args.base_url,
        context_tokens=args.context_tokens,
        price_input=price["input"],
        price_output=price["output"],
    )
    return LabelOptions(
        model=config, cache=args.store / "llm-cache", samples=args.samples, attempts=args.attempts, max_tokens=128
    )


def per_instance(labeled: list) -> dict:
    labels = [row.labels for row in labeled]
    mean = lambda values: statistics.fmean(values) if values else 0.0
    return {
        "instances": len(labels),
        "errors": sum(bool(label.error) for label in labels),
        "prompt_tokens": mean([label.prompt_tokens for label in labels]),
        "completion_tokens": mean([label.completion_tokens for label in labels]),
        "seconds": mean([label.seconds for label in labels]),
        "hosted_cost_usd": mean([label.cost for label in labels]),
        "hosted_price": HOSTED,
        "votes_extracted": sum(
            v.extracted
            for label in labels
            for name in ("clarity", "test_validity", "difficulty")
            for v in (getattr(label, name).votes if getattr(label, name) else [])
        ),
        "votes_without_score": sum(
            v.score is None
            for label in labels
            for name in ("clarity", "test_validity", "difficulty")
            for v in (getattr(label, name).votes if getattr(label, name) else [])
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verified", type=Path, required=True, help="SWE-bench Verified's test.parquet")
    parser.add_argument("--dataset", type=Path, help="forged instances to label for cost per instance")
    parser.add_argument("--model-rows", type=int, default=0)
    parser.add_argument("--base-url")
    parser.add_argument("--model", default="")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--context-tokens", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--store", type=Path, default=default_store())
    parser.add_argument("--out", type=Path, default=Path("bench-label.json"))
    args = parser.parse_args()

    rows, human = human_labels(args.verified)
    estimates = [estimate_difficulty(row.patch, row.FAIL_TO_PASS).value for row in rows]
    result = {
        "human": dict(sorted(Counter(human).items())),
        "majority_class": max(Counter(human).values()) / len(human),
        "estimate": agreement(estimates, human),
    }
    serving = args.base_url is None and (args.model_rows or args.dataset)
    with Server(model_folder(args.store), log=args.store / "serve.log") if serving else nullcontext() as server:
        opts = model_options(args, server, HOSTED)
        if args.model_rows:
            chosen = rows[: args.model_rows]
            labeled = label_rows(chosen, opts, args.workers)
            values = [row.labels.difficulty.value if row.labels.difficulty else None for row in labeled]
            result["model"] = {
                "name": opts.model.model,
                "agreement": agreement(values, human[: args.model_rows]),
                "estimate_on_same_rows": agreement(estimates[: args.model_rows], human[: args.model_rows]),
                "majority_class_on_same_rows": max(Counter(human[: args.model_rows]).values()) / args.model_rows,
                "per_instance": per_instance(labeled),
            }
        if args.dataset:
            forged, _ = load_dataset(args.dataset)
            result["forged"] = per_instance(label_rows(forged, opts, args.workers))
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
