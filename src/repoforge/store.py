"""The image store: what RepoForge's docker images cost on disk, and removing what nothing needs.

Images form a tree (system base -> python -> env [-> env ...] -> instance) told apart by their `repoforge.*` labels
(a Python from a Debian suite is a whole system of its own: it has no parent). Each image only adds
layers on top of its parent, so `docker images` counts shared layers once per image while
the disk holds them once: an image's own bytes are Size(image) - Size(parent), and the store's
unique bytes are the sum of those. Only labeled images are ever looked at or removed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess

from pydantic import BaseModel
from rich.table import Table

KINDS = ("base", "python", "env", "instance")
CONTAINER_KINDS = ("sandbox", "build")


class StoreError(RuntimeError):
    """docker is missing, the engine does not answer, or a docker command failed."""


class ImageUsage(BaseModel):
    ref: str
    id: str  # parents may be named by id
    kind: str
    parent: str | None
    instance_id: str | None
    fingerprint: str | None
    python_source: str | None  # a Python image's interpreter: uv:NAME, host:PREFIX or debian:SUITE
    apparent_bytes: int  # Size: what `docker images` shows for it
    own_bytes: int  # Size - parent's Size: bytes only this image adds


class StoreUsage(BaseModel):
    images: list[ImageUsage]
    by_kind: dict[str, int]  # unique bytes of each kind's images: where the bytes are
    instances: int
    apparent_bytes: int
    unique_bytes: int
    full_image_per_instance_bytes: int
    unique_bytes_per_instance: float
    apparent_bytes_per_instance: float


class PruneResult(BaseModel):
    containers: list[str]
    images: list[str]
    freed_bytes: int


def _run(docker: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run([docker, *args], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise StoreError(f"the docker command ({docker}) is not installed") from None
    except subprocess.TimeoutExpired:
        raise StoreError(f"docker {args[0]} did not answer within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        raise StoreError(f"docker {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc


def _check_engine(docker: str) -> None:
    # One clear message up front instead of a confusing failure from whichever command comes first.
    proc = _run(docker, "info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    if proc.returncode != 0:
        raise StoreError(f"no Docker engine answers ({proc.stderr.strip() or 'docker info failed'})")


def _normalize(ref: str) -> str:
    # Parent labels may omit ":latest"; RepoTags never do.
    return ref if ":" in ref.rsplit("/", 1)[-1] else f"{ref}:latest"


class _Image(BaseModel):
    """What prune needs beyond ImageUsage: the id and every tag (to remove by name)."""

    id: str
    tags: list[str]
    layers: list[str]
    usage: ImageUsage


def _images(docker: str, labels: dict[str, str] | None) -> list[_Image]:
    filters = ["--filter", "label=repoforge.kind"]
    for key, value in (labels or {}).items():
        filters += ["--filter", f"label={key}={value}"]
    ids = sorted(set(_run(docker, "image", "ls", "--no-trunc", *filters, "--format", "{{.ID}}").stdout.split()))
    if not ids:
        return []
    inspected = json.loads(_run(docker, "image", "inspect", *ids).stdout)
    # Parents are named by tag or, where a tag may be reused by a rebuild, by image id.
    by_tag = {tag: item for item in inspected for tag in item.get("RepoTags") or []}
    by_tag.update({item["Id"]: item for item in inspected})
    images = []
    for item in inspected:
        found = (item.get("Config") or {}).get("Labels") or {}
        if found.get("repoforge.kind") not in KINDS:
            continue
        tags = item.get("RepoTags") or []
        layers = (item.get("RootFS") or {}).get("Layers") or []
        parent_ref = found.get("repoforge.parent") or None
        parent = by_tag.get(_normalize(parent_ref)) if parent_ref else None
        parent_layers = ((parent or {}).get("RootFS") or {}).get("Layers") or []
        # A parent whose layers are not a prefix of ours was rebuilt under the same tag since:
        # it is not what we stand on, so count it as missing.
        if parent is not None and layers[: len(parent_layers)] != parent_layers:
            parent = None
        size = int(item["Size"])
        usage = ImageUsage(
            ref=tags[0] if tags else item["Id"].removeprefix("sha256:")[:12],
            id=item["Id"],
            kind=found["repoforge.kind"],
            parent=parent_ref,
            instance_id=found.get("repoforge.instance_id") or None,
            fingerprint=found.get("repoforge.fingerprint") or None,
            python_source=found.get("repoforge.python_source") or None,
            apparent_bytes=size,
            own_bytes=size - int(parent["Size"]) if parent else size,
        )
        images.append(_Image(id=item["Id"], tags=tags, layers=layers, usage=usage))
    images.sort(key=lambda image: (KINDS.index(image.usage.kind), image.usage.ref))
    return images


def _summarize(images: list[ImageUsage]) -> StoreUsage:
    instances = [image for image in images if image.kind == "instance"]
    unique = sum(image.own_bytes for image in images)
    full = sum(image.apparent_bytes for image in instances)
    return StoreUsage(
        images=images,
        by_kind={kind: sum(image.own_bytes for image in images if image.kind == kind) for kind in KINDS},
        instances=len(instances),
        apparent_bytes=sum(image.apparent_bytes for image in images),
        unique_bytes=unique,
        full_image_per_instance_bytes=full,
        unique_bytes_per_instance=unique / len(instances) if instances else 0.0,
        apparent_bytes_per_instance=full / len(instances) if instances else 0.0,
    )


def disk_usage(docker: str = "docker", *, labels: dict[str, str] | None = None) -> StoreUsage:
    """Every RepoForge image (optionally only those also carrying `labels`) and what it costs."""
    _check_engine(docker)
    return _summarize([image.usage for image in _images(docker, labels)])


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def stale_containers(docker: str = "docker") -> list[str]:
    """Our sandbox/build containers on this host whose owning process is gone."""
    _check_engine(docker)
    fmt = '{{.ID}}\t{{.Label "repoforge.kind"}}\t{{.Label "repoforge.pid"}}\t{{.Label "repoforge.host"}}'
    listed = _run(docker, "ps", "-a", "--no-trunc", "--filter", "label=repoforge.kind", "--format", fmt).stdout
    host, stale = socket.gethostname(), []
    for line in listed.splitlines():
        cid, kind, pid, owner_host = (line.split("\t") + ["", "", ""])[:4]
        # Another host's pids mean nothing here; only our own host's owners can be checked.
        if kind in CONTAINER_KINDS and owner_host == host and not _pid_alive(pid):
            stale.append(cid)
    return stale


def remove_stale_containers(docker: str = "docker") -> list[str]:
    stale = stale_containers(docker)
    if stale:
        # Failures are tolerated: a container may vanish between listing and removal.
        _run(docker, "rm", "-f", *stale, check=False)
    gone = set(_run(docker, "ps", "-a", "--no-trunc", "--format", "{{.ID}}").stdout.split())
    return [cid for cid in stale if cid not in gone]


def _remove(docker: str, image: _Image) -> bool:
    # Never -f: an image a container still uses must stay. Removing by every tag deletes it once
    # the last tag goes; whether it is really gone is asked afterwards, not inferred.
    _run(docker, "rmi", *(image.tags or [image.id]), check=False)
    return _run(docker, "image", "inspect", image.id, check=False).returncode != 0


def prune(
    keep_instances: set[str] | None = None, docker: str = "docker", *, labels: dict[str, str] | None = None
) -> PruneResult:
    """Remove stale containers, then unwanted instance images, then envs, Pythons and bases nothing stands on.

    Instances are removed when keep_instances is given and their id is not in it, and always when
    untagged (superseded by a rebuild under the same tag, nothing can name them). `labels`
    restricts the images considered (e.g. to one test run's).
    """
    containers = remove_stale_containers(docker)
    images = _images(docker, labels)
    tag_ids = {tag: image.id for image in images for tag in image.tags}
    tag_ids.update({image.id: image.id for image in images})
    remaining = {image.id: image for image in images}
    removed: list[_Image] = []

    def drop(candidates: list[_Image]) -> None:
        for image in candidates:
            if _remove(docker, image):
                removed.append(image)
                del remaining[image.id]

    drop(
        [
            image
            for image in images
            if image.usage.kind == "instance"
            and (not image.tags or (keep_instances is not None and image.usage.instance_id not in keep_instances))
        ]
    )
    for kind in ("env", "python", "base"):
        # Any remaining image naming it keeps it, whatever its kind: safer than the strict tree. An environment
        # may stand on another (sandbox/lineage.py): rounds until no removal frees another.
        while True:
            named = {tag_ids.get(_normalize(i.usage.parent)) for i in remaining.values() if i.usage.parent}
            unnamed = [i for i in images if i.usage.kind == kind and i.id in remaining and i.id not in named]
            count = len(remaining)
            drop(unnamed)
            if len(remaining) == count:
                break
    return PruneResult(
        containers=containers,
        images=[image.usage.ref for image in removed],
        freed_bytes=sum(image.usage.own_bytes for image in removed),
    )


def human(size: float) -> str:
    """Decimal units, as docker prints them."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def format_usage(usage: StoreUsage) -> Table:
    table = Table(title="RepoForge image store")
    table.add_column("image")
    table.add_column("kind")
    table.add_column("apparent", justify="right")
    table.add_column("own", justify="right")
    for kind in KINDS:
        rows = [image for image in usage.images if image.kind == kind]
        for image in rows:
            table.add_row(image.ref, image.kind, human(image.apparent_bytes), human(image.own_bytes))
        if rows:
            table.add_section()
    table.add_row(
        f"total ({len(usage.images)} images, as `docker images` adds up)", "", human(usage.apparent_bytes), ""
    )
    table.add_row("unique bytes on disk", "", "", human(usage.unique_bytes))
    for kind in KINDS:
        count = sum(image.kind == kind for image in usage.images)
        table.add_row(f"  of which {count} {kind} images", "", "", human(usage.by_kind[kind]))
    table.add_row(
        f"one full image per instance ({usage.instances})", "", human(usage.full_image_per_instance_bytes), ""
    )
    table.add_row("per instance", "", human(usage.apparent_bytes_per_instance), human(usage.unique_bytes_per_instance))
    return table
