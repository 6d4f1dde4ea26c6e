"""Open or clone a repository and read its history through the git CLI."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from repoforge.names import safe_name


class GitError(RuntimeError):
    """A git command failed; the message carries git's own words."""


def git(repo: Path, *args: str, check: bool = True, text: bool = True, input: bytes | None = None):
    """Run git in `repo`; return stdout (str, or bytes when text=False)."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        input=input,
        env={"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args[:3])}: {err or f'exit {proc.returncode}'}")
    return proc.stdout.decode(errors="replace") if text else proc.stdout


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    date: str  # committer date, ISO 8601 strict
    message: str


_URL = re.compile(r"^(?:[a-z+]+://|[\w.-]+@[\w.-]+:)")


def is_url(source: str) -> bool:
    return bool(_URL.match(source))


def repo_name_from_url(url: str) -> str:
    """owner/name from any git URL form (https, ssh, scp-like, local path), in GitHub's characters."""
    path = re.sub(r"\.git/?$", "", url.rstrip("/"))
    parts = re.split(r"[/:]", path)
    parts = [p for p in parts if p]
    if len(parts) >= 2:
        return f"{safe_name(parts[-2])}/{safe_name(parts[-1])}"
    return f"local/{safe_name(parts[-1] if parts else 'repo')}"


def clone_url(name: str) -> str:
    """Where owner/name lives when nothing local holds it (SWE-bench's rows all come from GitHub)."""
    return f"https://github.com/{name}.git"


def open_source(source: str, cache_dir: Path, repo_mirror: Path | None = None) -> tuple[Path, str]:
    """Return (local repository path, owner/name) for a local path, a bundle or a URL.

    A URL's `owner/name` is looked up as `repo_mirror/owner__name` first; otherwise it is cloned
    (bare) into cache_dir and fetched on later runs.
    """
    if is_url(source):
        name = repo_name_from_url(source)
        if repo_mirror is not None:
            mirrored = repo_mirror / name.replace("/", "__")
            if mirrored.exists():
                return _checked(mirrored), name
        return _clone(source, cache_dir / name.replace("/", "__")), name
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise GitError(f"{source}: no such file or directory")
    if path.is_file():  # a git bundle: clone it like a URL
        return _clone(str(path), cache_dir / f"bundle__{path.stem}"), _local_name(path, None)
    repo = _checked(path)
    return repo, _local_name(path, repo)


def _checked(path: Path) -> Path:
    if git(path, "rev-parse", "--git-dir", check=False).strip() == "":
        raise GitError(f"{path}: not a git repository")
    try:
        git(path, "rev-parse", "--verify", "HEAD^{commit}")
    except GitError as exc:
        raise GitError(f"{path}: repository has no commits ({exc})") from None
    return path


def _local_name(path: Path, repo: Path | None) -> str:
    if repo is not None:
        url = git(repo, "config", "--get", "remote.origin.url", check=False).strip()
        if url:
            return repo_name_from_url(url)
    # A folder may be named anything (`a+b`, spaces): instance ids and image names derive from this.
    return f"local/{safe_name(path.stem if path.is_file() else path.name)}"


def _clone(url: str, dest: Path) -> Path:
    if dest.exists():
        git(dest, "fetch", "--quiet", "--prune", "origin", "+refs/heads/*:refs/heads/*", check=False)
        return _checked(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    subprocess.run(["rm", "-rf", str(tmp)], check=False)
    try:
        git(dest.parent, "clone", "--quiet", "--bare", url, str(tmp))
    except GitError as exc:
        raise GitError(f"cannot clone {url}: {exc}") from None
    tmp.rename(dest)
    return _checked(dest)


def first_parent_history(
    repo: Path, rev: str = "HEAD", limit: int | None = None, until: str | None = None
) -> list[Commit]:
    """Commits of the default branch, newest first, following first parents only."""
    fmt = "%H%x00%P%x00%cI%x00%B%x1e"
    args = ["log", "--first-parent", f"--format={fmt}", rev]
    if limit:
        args.insert(1, f"--max-count={limit}")
    if until:
        args.insert(1, f"--until={until}")
    commits = []
    for record in git(repo, *args).split("\x1e"):
        record = record.strip("\n")
        if not record:
            continue
        sha, parents, date, message = record.split("\x00", 3)
        commits.append(Commit(sha, tuple(parents.split()), date, message.strip()))
    return commits


def diff(repo: Path, base: str, commit: str, paths: list[str] | None = None) -> bytes:
    """The binary-safe unified diff from base to commit, as git apply reads it."""
    args = ["diff", "--no-color", "--no-ext-diff", "--full-index", "--binary", base, commit]
    if paths is not None:
        args += ["--", *paths]
    return git(repo, *args, text=False)


@dataclass(frozen=True)
class FileChange:
    path: str
    added: int | None  # None for a binary change
    deleted: int | None


def changed_files(repo: Path, base: str, commit: str) -> list[FileChange]:
    changes = []
    for line in git(repo, "diff", "--numstat", "-z", "--no-renames", base, commit).split("\x00"):
        if not line:
            continue
        added, deleted, path = line.split("\t", 2)
        binary = added == "-"
        changes.append(FileChange(path, None if binary else int(added), None if binary else int(deleted)))
    return changes


def commit_date(repo: Path, commit: str) -> str:
    return git(repo, "log", "-1", "--format=%cI", commit).strip()


def commit_date_of_last_change(repo: Path, commit: str, paths: list[str]) -> str | None:
    """Committer date of the newest commit at or before `commit` that touched any of `paths`."""
    if not paths:
        return None
    return git(repo, "log", "-1", "--format=%cI", commit, "--", *paths).strip() or None


def checkout(repo: Path, commit: str, dest: Path) -> None:
    """A working copy of `commit` at dest whose .git shares objects with `repo` (no copy)."""
    subprocess.run(["rm", "-rf", str(dest)], check=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    git(dest.parent, "clone", "--quiet", "--shared", "--no-checkout", str(repo.resolve()), str(dest))
    git(dest, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit)


def isolated_checkout(repo: Path, commit: str, dest: Path) -> None:
    """A working copy of `commit` at dest holding that commit alone: no history, no refs, nothing newer (what an
    instance's sandbox holds, so that neither a patch's tests nor an agent can read the fix from the future)."""
    subprocess.run(["rm", "-rf", str(dest)], check=False)
    dest.mkdir(parents=True)
    git(dest, "init", "-q")
    git(dest, "fetch", "-q", "--depth", "1", f"file://{repo.resolve()}", commit)
    git(dest, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", commit)
    (dest / ".git" / "FETCH_HEAD").unlink(missing_ok=True)
    shutil.rmtree(dest / ".git" / "logs", ignore_errors=True)


def borrowed_objects(clone: Path) -> list[str]:
    """The object folders a `checkout` (a shared clone) reads from its repository."""
    alternates = clone / ".git" / "objects" / "info" / "alternates"
    if not alternates.is_file():
        return []
    return [line for line in alternates.read_text().splitlines() if line.startswith("/")]


def describe_as(clone: Path, commit: str) -> None:
    """Delete the clone's tags that `commit` does not descend from, so that its checkout describes itself
    (`git describe`, as versioneer and the like do when the project builds) by the release `commit` belongs to."""
    later = git(clone, "for-each-ref", f"--no-merged={commit}", "--format=delete %(refname)", "refs/tags")
    if later:
        git(clone, "update-ref", "--stdin", input=later.encode())


def release_version(repo: Path, commit: str) -> str | None:
    """The version of the newest release tag `commit` descends from (v1.2.3, release-1.2.3, 1.2.3rc1 -> 1.2.3)."""
    tag = git(repo, "describe", "--tags", "--abbrev=0", commit, check=False).strip()
    number = re.search(r"\d+(?:\.\d+)+(?:[a-z]+\d*)?", tag)
    try:
        return Version(number.group()).base_version if number else None
    except InvalidVersion:
        return None


def paths_in_patch(patch: str) -> list[str]:
    """The files a unified git diff touches (new paths; deleted files included)."""
    paths = re.findall(r"^diff --git a/.* b/(.*)$", patch, re.MULTILINE)
    return list(dict.fromkeys(paths))


def apply_patch(worktree: Path, patch: str, only: list[str] | None = None) -> None:
    """Apply `patch` (only its changes to the files `only`, when given)."""
    if patch.strip():
        include = [f"--include={path}" for path in only or []]
        git(worktree, "apply", "--whitespace=nowarn", *include, "-", input=patch.encode())
