"""Finding the repository of an instance row, the same way for every command that reads rows.

In order: `--repo-mirror DIR/owner__name`; the clone kept in the store (forge keeps one of every
source it mined, local folders and bundles included); the `sources.json` that forge wrote beside the
dataset; the row's URL, cloned into the store. A place counts only if it holds the commit asked for.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from pydantic import BaseModel

from repoforge.git.repo import GitError, clone_url, git, open_source
from repoforge.locks import exclusive


class RepoPlaces(BaseModel):
    """Where rows' repositories may be found besides their URL."""

    store: Path
    mirror: Path | None = None
    sources_file: Path | None = None  # forge's OUT/sources.json beside the dataset: owner/name -> path


def store_clone(store: Path, name: str) -> Path:
    return store / "repos" / name.replace("/", "__")


def has_commit(path: Path, commit: str) -> bool:
    if not path.exists():
        return False
    try:
        git(path, "cat-file", "-e", f"{commit}^{{commit}}")
        return True
    except GitError:
        return False


def find_repository(name: str, commit: str, places: RepoPlaces) -> Path:
    """A local repository of `name` (owner/name) holding `commit`; GitError names every place tried."""
    tried = []
    for label, path in _local_places(name, places):
        if has_commit(path, commit):
            return path
        tried.append(f"{label} {path}: {'no such repository' if not path.exists() else 'lacks the commit'}")
    url = clone_url(name)
    try:
        path, _ = open_source(url, places.store / "repos")
        if has_commit(path, commit):
            return path
        tried.append(f"{url}: cloned, but it lacks the commit")
    except GitError as exc:
        tried.append(str(exc))
    raise GitError(f"cannot find {name} at {commit[:12]}; tried: " + "; ".join(tried))


def _local_places(name: str, places: RepoPlaces) -> list[tuple[str, Path]]:
    found = []
    if places.mirror is not None:
        found.append(("--repo-mirror", places.mirror / name.replace("/", "__")))
    found.append(("the store's clone", store_clone(places.store, name)))
    if places.sources_file is not None and places.sources_file.is_file():
        try:
            recorded = json.loads(places.sources_file.read_text()).get(name)
        except (ValueError, AttributeError):
            recorded = None
        if isinstance(recorded, str):
            found.append((str(places.sources_file), Path(recorded)))
    return found


def keep_clone(source: Path, name: str, store: Path) -> None:
    """Keep `source`'s history in the store under `name`, so rows forged from it are found later.

    A first source is cloned (bare; a local clone hard-links objects); another source of the same
    name adds its HEAD under a ref of its own, so no commit either one holds is lost.
    """
    dest = store_clone(store, name)
    if dest.resolve() == source.resolve():
        return
    with exclusive(dest.parent / f".{dest.name}.lock"):
        if not dest.exists():
            partial = dest.with_name(dest.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            git(dest.parent, "clone", "--quiet", "--bare", str(source.resolve()), str(partial))
            partial.rename(dest)
        ref = "refs/repoforge/sources/" + hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
        git(dest, "fetch", "--quiet", "--no-tags", str(source.resolve()), f"+HEAD:{ref}")
