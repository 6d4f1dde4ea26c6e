"""Environment images that hold only what changed: lineage.

An environment is always built from its EnvSpec alone, on its Python image. Once built, it is stored instead
as the nearest environment already built on the same Python (the one whose venv differs from it by the fewest
bytes, usually an earlier commit of the same repository) plus one layer with the files that differ and the
removal of those it lacks, where that layer is at most half the independent one. The rebased image is kept
only if its whole file system is, file for file, the independent build's, so every instance gets exactly the
environment its EnvSpec makes; otherwise the independent build stays.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

from repoforge.sandbox import SandboxError

MANIFEST = "venv-manifest.json"  # beside the environment's spec.json: what rebasing compares
MAX_DEPTH = 30  # rebased on rebased...: overlayfs stacks a bounded number of layers
WORTH_IT = 0.5  # the rebased layer must be at most this share of the independent one
# The whole file system, as a digest: every entry's path, type, mode, owner and link target, every file's bytes
# (not the files Docker mounts into every container).
_SKIP = " -o ".join(f"-path {p}" for p in ("/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"))
FILE_SYSTEM_DIGEST = (
    f"{{ find / -xdev \\( {_SKIP} \\) -prune -o -printf '%p %y %m %U %G %l\\n' | LC_ALL=C sort; "
    f"find / -xdev \\( {_SKIP} \\) -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; }}"
    " | sha256sum"
)


def manifest(archive: Path) -> dict[str, list]:
    """path -> [type, mode, size, sha256 or link target] of every entry of a tar of the venv."""
    entries = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile():
                digest = hashlib.file_digest(tar.extractfile(member), "sha256").hexdigest()  # in chunks
            else:
                digest = member.linkname
            entries[member.name] = [member.type.decode(), member.mode, member.size, digest]
    return entries


def difference(parent: dict[str, list], child: dict[str, list]) -> tuple[list[str], list[str], int]:
    """(paths to remove from parent, entries to add from child, bytes added) that make parent into child."""
    changed = [path for path, entry in child.items() if parent.get(path) != entry]
    # An entry that changes type is removed first: extracting a folder over a file (or back) fails.
    removed = [p for p, entry in parent.items() if p not in child or child[p][0] != entry[0]]
    return removed, changed, sum(child[path][2] for path in changed)


def nearest(
    envs: Path, python_image: str, entries: dict[str, list], own: str, exists: Callable[[str], bool]
) -> tuple[dict, tuple] | None:
    """The built environment on `python_image` whose image `exists` that `entries` differs from by the fewest
    bytes: (its record, difference), or None when none is close enough to be worth a layer over it."""
    total = sum(entry[2] for entry in entries.values())
    best = None
    for path in envs.glob(f"*/{MANIFEST}"):
        if path.parent.name == own:
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("python_image") != python_image or record.get("depth", 0) >= MAX_DEPTH:
            continue
        diff = difference(record["entries"], entries)
        if diff[2] <= WORTH_IT * total and (best is None or diff[2] < best[1][2]) and exists(record["image"]):
            best = (record, diff)
    return best


def changes_archive(archive: Path, changed: list[str], out: Path) -> None:
    """A tar of the entries `changed`, taken from `archive`."""
    wanted = set(changed)
    with tarfile.open(archive) as source, tarfile.open(out, "w") as tar:
        for member in source:
            if member.name in wanted:
                tar.addfile(member, source.extractfile(member) if member.isfile() else None)


def record(path: Path, python_image: str, image: str, depth: int, entries: dict[str, list]) -> None:
    """What `nearest` reads of this environment, written whole (a concurrent build may be reading)."""
    text = json.dumps({"python_image": python_image, "image": image, "depth": depth, "entries": entries})
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)


class NotRebased(SandboxError):
    """The rebased image is not the independent build: it is dropped, the independent one kept."""
