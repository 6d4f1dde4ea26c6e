"""Benchmark forge on real repositories' histories.

    .venv/bin/python bench/forge.py --repo-mirror DIR --max-candidates 30 URL [URL ...]

Each source is forged into its own output folder with a fresh environment store (so every
environment is built cold; uv's download cache is left as it is), then the per-candidate records
are summarised: candidates, environments ready, instances, rejection reasons, median seconds.
Prints a Markdown table for docs/benchmarks.md and writes bench-forge.json beside the outputs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from repoforge.forge import BuildRecord, ForgeOptions, ResultRecord, forge


def summarise(out: Path, report: dict, wall: float) -> dict:
    builds = [BuildRecord.model_validate_json(p.read_text()) for p in (out / "builds").glob("*.json")]
    results = [ResultRecord.model_validate_json(p.read_text()) for p in (out / "results").glob("*.json")]
    counts = report["counts"]
    cold = [b.seconds for b in builds if b.env and not b.reused]
    warm = [b.seconds for b in builds if b.env and b.reused]
    per_candidate = [
        b.seconds + r.seconds
        for b, r in zip(
            sorted(builds, key=lambda b: b.instance_id), sorted(results, key=lambda r: r.instance_id), strict=False
        )
    ]
    median = lambda xs: round(statistics.median(xs), 1) if xs else None
    return {
        "commits_scanned": counts["commits_scanned"],
        "candidates": counts["candidates"],
        "env_ready": counts["env_ready"],
        "env_ready_share": round(counts["env_ready"] / counts["candidates"], 3) if counts["candidates"] else None,
        "env_fingerprints": counts["env_fingerprints"],
        "instances": counts["instances"],
        "flaky_tests": counts["flaky_tests"],
        "median_cold_build_s": median(cold),
        "median_warm_build_s": median(warm),
        "median_candidate_s": median(per_candidate),
        "wall_s": round(wall, 1),
        "rejected": counts["rejected"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--repo-mirror", type=Path)
    parser.add_argument("--max-candidates", type=int, default=30)
    parser.add_argument("--until", help="mine commits made up to this date")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--sandbox", default="process", help="process (the default here), docker or auto")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-forge-")))
    args = parser.parse_args()
    summary = {}
    for source in args.sources:
        out = args.out / source.rstrip("/").split("/")[-1]
        opts = ForgeOptions(
            out=out,
            store=out / "store",
            repo_mirror=args.repo_mirror,
            max_candidates=args.max_candidates,
            until=args.until,
            workers=args.workers,
            sandbox=args.sandbox,
            timeout=args.timeout,
        )
        start = time.monotonic()
        report = forge([source], opts)
        summary[source] = summarise(out, report, time.monotonic() - start)
    (args.out / "bench-forge.json").write_text(json.dumps(summary, indent=2))
    keys = [
        "commits_scanned",
        "candidates",
        "env_ready",
        "env_ready_share",
        "env_fingerprints",
        "instances",
        "flaky_tests",
        "median_cold_build_s",
        "median_warm_build_s",
        "median_candidate_s",
        "wall_s",
    ]
    print("| source | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for source, row in summary.items():
        print(f"| {source} | " + " | ".join(str(row[k]) for k in keys) + " |")
    for source, row in summary.items():
        print(f"\n{source} rejections: {json.dumps(row['rejected'])}")
    print(f"\nfull records: {args.out}")


if __name__ == "__main__":
    main()
