"""Benchmark the docker backend's Python images: the system base, then one image per interpreter.

    .venv/bin/python bench/pythons.py [--fresh]

For every version the process backend offers (env/python.py): the source the docker backend takes it
from, the installation's bytes and what the copy leaves out (by reason), the image's own bytes, the
seconds to build it, and proof that it runs: `docker run --rm IMAGE pythonX.Y -c 'import ssl, ...'`.
--fresh first removes the system base and every image standing on it (Python, environment and
instance images of this recipe only), so that build times are measured from nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from repoforge.env.python import available_pythons
from repoforge.sandbox.docker import docker, ensure_python, ensure_system_base, image_exists, system_base_ref
from repoforge.sandbox.interpreters import dropped_by, has_source, python_source
from repoforge.store import disk_usage

PROOF = (
    "import ssl, sqlite3, ctypes, lzma, bz2, zlib, readline, sys; print(sys.version.split()[0], ssl.OPENSSL_VERSION)"
)


def size(ref: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout)


def remove_tree(root: str) -> None:
    """`root` and every image standing on it, children first."""
    images = disk_usage().images
    by_name = {name: image for image in images for name in (image.ref, image.id)}
    doomed = [by_name[root]] if root in by_name else []
    for image in doomed:  # grows while walked: breadth first down the tree
        doomed += [child for child in images if child.parent in (image.ref, image.id) and child not in doomed]
    for image in reversed(doomed):
        docker("rmi", image.ref, check=False)


def installation(source) -> tuple[int, Counter]:
    """Bytes of the installation's files, and of those the copy leaves out, by reason."""
    total, dropped = 0, Counter()
    for path in Path(source.origin).rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
            reason = dropped_by(path.relative_to(source.origin).as_posix())
            if reason:
                dropped[reason] += path.stat().st_size
    return total, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench-pythons.json"))
    args = parser.parse_args()
    if args.fresh:
        remove_tree(system_base_ref())
    start = time.monotonic()
    built = not image_exists(system_base_ref())
    base = ensure_system_base()
    results = {
        "system_base": {
            "ref": base,
            "bytes": size(base),
            "seconds": round(time.monotonic() - start, 1),
            "built": built,
        },
        "pythons": [],
    }
    print(
        f"system base {base}: {size(base) / 1e6:.1f} MB, {results['system_base']['seconds']} s"
        f"{'' if built else ' (existed)'}"
    )
    print("| version | source | installation | left out | image's own bytes | build (s) | proof |")
    print("|---|---|---|---|---|---|---|")
    for version in [v for v in available_pythons() if has_source(v)]:
        source = python_source(version)
        start = time.monotonic()
        ref = ensure_python(source)
        seconds = round(time.monotonic() - start, 1)
        total, dropped = installation(source) if source.kind != "debian" else (0, Counter())
        own = size(ref) - (size(base) if source.kind != "debian" else 0)
        proof = docker("run", "--rm", "--network", "none", ref, f"python{version}", "-c", PROOF).stdout.decode().strip()
        results["pythons"].append(
            {
                "version": version,
                "source": source.label,
                "ref": ref,
                "installation_bytes": total,
                "dropped_bytes": dict(dropped),
                "own_bytes": own,
                "seconds": seconds,
                "proof": proof,
            }
        )
        left_out = ", ".join(f"{reason} {n / 1e6:.1f} MB" for reason, n in dropped.most_common())
        print(
            f"| {version} | {source.label} | {total / 1e6:.1f} MB | {left_out} | {own / 1e6:.1f} MB | {seconds} | "
            f"{proof} |"
        )
    args.out.write_text(json.dumps(results, indent=2))
    print(f"records: {args.out}")


if __name__ == "__main__":
    main()
