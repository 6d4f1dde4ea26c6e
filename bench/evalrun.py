"""What the evaluation benchmarks share: their arguments, and the options of one evaluation run."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from repoforge.harness.evaluate import EvalOptions


def parser(doc: str, name: str, timeout: float, workers_help: str) -> argparse.ArgumentParser:
    """--dataset, --repo-mirror, --store, --sandbox, --workers, --timeout and --out (a fresh folder)."""
    args = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("--dataset", type=Path, required=True)
    args.add_argument("--repo-mirror", type=Path)
    args.add_argument("--store", type=Path)
    args.add_argument("--sandbox", default="process")
    args.add_argument("--workers", type=int, default=2, help=workers_help)
    args.add_argument("--timeout", type=float, default=timeout, help="seconds one test run may take")
    args.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix=f"bench-{name}-")))
    return args


def options(args: argparse.Namespace, run_id: str) -> EvalOptions:
    """One run's options: logs and report under --out, the store of --store when given."""
    extra = {"store": args.store} if args.store else {}
    return EvalOptions(
        run_id=run_id,
        log_dir=args.out / "logs",
        report_dir=args.out,
        repo_mirror=args.repo_mirror,
        sandbox=args.sandbox,
        timeout=args.timeout,
        **extra,
    )
