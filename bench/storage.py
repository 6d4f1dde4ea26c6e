"""Benchmark storage: forge real histories with Docker and measure what the instances cost on disk.

    .venv/bin/python bench/storage.py --repo-mirror DIR --max-candidates 60 URL [URL ...]

Counts only the images this run's instances need (their instance images, the environments under
them, and the Python images and bases under those), in one measurement: unique bytes (each layer
once), apparent bytes (what `docker images` shows per instance image), and the bytes a layout with
one full image per instance would take.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from repoforge.forge import ForgeOptions, forge
from repoforge.sandbox.docker import instance_ref
from repoforge.store import KINDS, disk_usage


def closure(usage, instance_ids: set[str]) -> list:
    """The instance images of `instance_ids` and every image under them."""
    by_ref = {name: image for image in usage.images for name in (image.ref, image.id)}
    # By tag: an older image of the same instance (rebuilt since) is no longer what it uses.
    refs = {instance_ref(i) for i in instance_ids}
    wanted = [i for i in usage.images if i.ref in refs]
    seen = {i.ref for i in wanted}
    frontier = list(wanted)
    while frontier:
        parent = by_ref.get(frontier.pop().parent or "")
        if parent and parent.ref not in seen:
            seen.add(parent.ref)
            wanted.append(parent)
            frontier.append(parent)
    return wanted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--repo-mirror", type=Path)
    parser.add_argument("--max-candidates", type=int, default=60)
    parser.add_argument("--until")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-storage-")))
    args = parser.parse_args()
    opts = ForgeOptions(
        out=args.out,
        store=args.out / "store",
        repo_mirror=args.repo_mirror,
        sandbox="docker",
        max_candidates=args.max_candidates,
        until=args.until,
        workers=args.workers,
        timeout=args.timeout,
    )
    report = forge(args.sources, opts)
    rows = [json.loads(line) for line in (args.out / "instances.jsonl").read_text().splitlines()]
    images = closure(disk_usage(), {row["instance_id"] for row in rows})
    instances = [i for i in images if i.kind == "instance"]
    n = len(instances)
    env_ids = {i.id for i in images if i.kind == "env"}
    summary = {
        "instances": n,
        "environments": sum(i.kind == "env" for i in images),
        "pythons": sum(i.kind == "python" for i in images),
        "bases": sum(i.kind == "base" for i in images),
        # rebased: environments stored as a layer over another (sandbox/lineage.py)
        "environments_rebased": sum(i.kind == "env" and i.parent in env_ids for i in images),
        "unique_bytes": sum(i.own_bytes for i in images),
        "unique_bytes_by_kind": {k: sum(i.own_bytes for i in images if i.kind == k) for k in KINDS},
        "unique_bytes_per_instance": sum(i.own_bytes for i in images) / n if n else None,
        "apparent_bytes_per_instance": sum(i.apparent_bytes for i in instances) / n if n else None,
        "full_image_per_instance_bytes": sum(i.apparent_bytes for i in instances),
        "instance_layer_bytes_median": sorted(i.own_bytes for i in instances)[n // 2] if n else None,
        "forge_counts": report["counts"],
    }
    (args.out / "bench-storage.json").write_text(json.dumps(summary, indent=2))
    mb = lambda b: f"{b / 1e6:.1f} MB" if b is not None else "-"
    print(
        f"instances: {n} (environments {summary['environments']}, Pythons {summary['pythons']}, "
        f"bases {summary['bases']})"
    )
    print(
        f"unique bytes: {mb(summary['unique_bytes'])} in all, {mb(summary['unique_bytes_per_instance'])} per instance"
    )
    print("of which " + ", ".join(f"{k} {mb(b)}" for k, b in summary["unique_bytes_by_kind"].items()))
    print(f"environments stored over another: {summary['environments_rebased']}")
    print(f"apparent bytes per instance: {mb(summary['apparent_bytes_per_instance'])}")
    print(f"one full image per instance: {mb(summary['full_image_per_instance_bytes'])} in all")
    print(f"median instance layer: {mb(summary['instance_layer_bytes_median'])}")
    print(f"records: {args.out}")


if __name__ == "__main__":
    main()
