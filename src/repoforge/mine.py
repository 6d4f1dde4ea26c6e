"""Commits of a repository's history -> candidate task instances, or recorded reasons why not."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from repoforge.git.repo import Commit, FileChange, GitError, changed_files, diff, first_parent_history
from repoforge.schema import Candidate, Rejection

# SWE-bench's split puts a file in test_patch when its path names tests; we match whole path
# tokens so that e.g. `contest.py` or `latest/` stay source files.
_TEST_TOKENS = {"test", "tests", "testing", "e2e"}
_TEST_MODULE = re.compile(r"^(test_.*|.*_test|tests?|conftest)\.py$")
_DOC_SUFFIXES = {".md", ".rst", ".txt", ".adoc", ".html", ".css", ".png", ".jpg", ".svg", ".gif"}
_VENDOR_DIRS = {"vendor", "vendored", "_vendor", "third_party", "thirdparty", "node_modules", "extern"}
_MERGE_SUBJECT = re.compile(r"^Merge (branch|remote-tracking branch|tag|commit) ")
_PR_NUMBER = re.compile(r"(?:Merge pull request #(\d+)|\(#(\d+)\)\s*$)", re.MULTILINE)

MAX_DIFF_LINES = 2000  # a larger change is rarely one task, and costly to validate


def is_test_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    if _TEST_MODULE.match(parts[-1]):
        return True
    tokens = {t for part in parts[:-1] for t in re.split(r"[._-]", part.lower())}
    return bool(tokens & _TEST_TOKENS)


def is_test_module(path: str) -> bool:
    """A file pytest would collect tests from (data files under tests/ are not)."""
    name = PurePosixPath(path).name
    return name.endswith(".py") and name != "conftest.py" and _TEST_MODULE.match(name) is not None


def _is_doc(path: str) -> bool:
    p = PurePosixPath(path)
    return p.suffix.lower() in _DOC_SUFFIXES or any(part in {"docs", "doc"} for part in p.parts[:-1])


def _is_vendored(path: str) -> bool:
    return any(part.lower() in _VENDOR_DIRS for part in PurePosixPath(path).parts[:-1])


def classify(changes: list[FileChange]) -> str | None:
    """The reason a change is not a candidate, or None when it is one."""
    if not changes:
        return "empty change"
    if any(c.added is None for c in changes):
        return "binary diff"
    if sum(c.added + c.deleted for c in changes) > MAX_DIFF_LINES:
        return "oversized diff"
    if all(_is_doc(c.path) for c in changes):
        return "docs-only"
    tests = [c.path for c in changes if is_test_path(c.path)]
    sources = [c.path for c in changes if not is_test_path(c.path) and not _is_doc(c.path)]
    if any(_is_vendored(p) for p in sources):
        return "vendored code"
    if not any(p.endswith(".py") for p in sources):
        return "no python source change"
    if not tests:
        return "no test change"
    if not any(is_test_module(p) for p in tests):
        return "no test module changed"
    return None


def problem_statement(message: str) -> str:
    """The change's own words: a PR merge's title/body, else the commit message."""
    lines = message.strip().splitlines()
    if lines and lines[0].startswith("Merge pull request #"):
        lines = lines[1:]  # the PR title and body follow GitHub's merge subject
    text = "\n".join(lines).strip()
    return re.sub(r"\n{3,}", "\n\n", text)


def instance_id(repo: str, commit: Commit) -> str:
    match = _PR_NUMBER.search(commit.message)
    suffix = next((g for g in match.groups() if g), None) if match else None
    return f"{repo.replace('/', '__')}-{suffix or commit.sha[:7]}"


def mine_commit(repo_path: Path, repo: str, commit: Commit) -> Candidate | Rejection:
    reject = lambda reason, detail="": Rejection(stage="mine", reason=reason, detail=detail, commit=commit.sha)
    if not commit.parents:
        return reject("root commit")
    subject = commit.message.splitlines()[0] if commit.message else ""
    if _MERGE_SUBJECT.match(subject):
        return reject("merge noise")
    base = commit.parents[0]
    try:
        changes = changed_files(repo_path, base, commit.sha)
        reason = classify(changes)
        if reason:
            return reject(reason)
        test_paths = [c.path for c in changes if is_test_path(c.path)]
        source_paths = [c.path for c in changes if not is_test_path(c.path)]
        patch = diff(repo_path, base, commit.sha, source_paths).decode("utf-8")
        test_patch = diff(repo_path, base, commit.sha, test_paths).decode("utf-8")
    except UnicodeDecodeError:
        return reject("non-UTF-8 diff")
    except GitError as exc:
        return reject("git error", str(exc))
    statement = problem_statement(commit.message)
    if not statement:
        return reject("no problem statement")
    return Candidate(
        repo=repo,
        instance_id=instance_id(repo, commit),
        base_commit=base,
        commit=commit.sha,
        patch=patch,
        test_patch=test_patch,
        problem_statement=statement,
        created_at=commit.date,
        test_files=sorted(p for p in test_paths if is_test_module(p)),
    )


def mine(
    repo_path: Path, repo: str, limit_commits: int | None = None, until: str | None = None
) -> tuple[list[Candidate], list[Rejection]]:
    """Walk first-parent history, newest first; every commit becomes a candidate or a rejection."""
    candidates, rejections, seen = [], [], set()
    for commit in first_parent_history(repo_path, limit=limit_commits, until=until):
        result = mine_commit(repo_path, repo, commit)
        if isinstance(result, Rejection):
            rejections.append(result)
        elif result.instance_id in seen:  # two commits citing one PR number: keep the sha apart
            result.instance_id = f"{repo.replace('/', '__')}-{commit.sha[:7]}"
            candidates.append(result)
        else:
            candidates.append(result)
        if isinstance(result, Candidate):
            seen.add(result.instance_id)
    return candidates, rejections
