"""Requirement lines (pip's requirements-file syntax) and the project's requirements files."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .model import Raw, Reader

TEST_RUNNER_PACKAGES = {"pytest", "nose", "nose2"}
REQ_FILE_TEST_TOKENS = {"test", "tests", "testing", "dev", "develop", "development", "ci"}
REQ_FILE_RUNTIME_TOKENS = {"base", "prod", "production", "runtime", "install", "main", "common", "core"}
REQ_FILE_OTHER_TOKENS = {
    "doc",
    "docs",
    "documentation",
    "lint",
    "linting",
    "typing",
    "mypy",
    "optional",
    "extra",
    "extras",
    "style",
    "format",
    "release",
    "benchmark",
    "benchmarks",
    "examples",
}
MIN_VERSION_TOKENS = {"min", "minimum", "minimal", "oldest", "lowest", "pinned"}  # oldest-versions environments
# In a test folder, a file of optional packages is for the tests; one for docs or linting is not.
REQ_FILE_NOT_TEST_TOKENS = REQ_FILE_OTHER_TOKENS - {"optional", "extra", "extras"}
CI_FOLDERS = ("ci", ".ci", ".github")
TEST_FOLDERS = ("tests", "test", *CI_FOLDERS)
_TEXT_FILE = re.compile(r"\.txt$")
_REQ_FILE_PATH = re.compile(r"(req|dep)[^/]*(/.*)?\.txt$", re.I)  # ci/requirements.txt, ci/deps/py38.txt

COMMENT = re.compile(r"(^|\s)#.*$")
_OPTION_SPLIT = re.compile(r"\s+-{1,2}[A-Za-z]")
_URLISH = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^(git|hg|svn|bzr)\+")
_SELF_PATH = re.compile(r"^\.(?:/)?(?:\[([^\]]*)\])?$")


def add_marker(req: str, marker: str) -> str:
    """req restricted by the environment marker marker (and its own marker, if any)."""
    marker = marker.strip()
    if not marker:
        return req
    if ";" in req:
        base, _, existing = req.partition(";")
        return f"{base.strip()}; ({existing.strip()}) and ({marker})"
    return f"{req}; {marker}"


def table_version_extras(entry: dict) -> tuple[str, list[str]]:
    """Version ("*" when absent or odd) and extras of a table-form dependency (Pipfile, Poetry)."""
    version = entry.get("version", "*")
    extras = entry.get("extras")
    return (
        version if isinstance(version, str) else "*",
        [e for e in extras if isinstance(e, str)] if isinstance(extras, list) else [],
    )


def _self_extras(match: re.Match) -> list[str]:
    return [e.strip() for e in (match.group(1) or "").split(",") if e.strip()]


def classify_line(line: str) -> tuple[str, Any] | None:
    """('req', text) | ('include', path) | ('self', [extras]) | ('skip', reason) | None."""
    line = COMMENT.sub("", line).strip()
    if not line:
        return None
    m = re.match(r"^(?:-r|--requirement)(?:\s*=\s*|\s*)(\S+)$", line)
    if m:
        return ("include", m.group(1))
    m = re.match(r"^(?:-e|--editable)(?:\s*=\s*|\s+)(\S+)", line)
    if m:
        sm = _SELF_PATH.match(m.group(1))
        return ("self", _self_extras(sm)) if sm else ("skip", f"editable requirement {m.group(1)!r}")
    if line.startswith("-"):
        return None  # -c, -i, --index-url, --pre, -f, ...
    line = _OPTION_SPLIT.split(line, maxsplit=1)[0].strip()
    if "${" in line:
        return ("skip", f"requirement with an environment variable {line!r}")
    sm = _SELF_PATH.match(line)
    if sm:
        return ("self", _self_extras(sm))
    if _URLISH.match(line) or re.search(r"\s@\s|^[^;]*@\s*\S+://", line):
        return ("skip", f"direct reference {line!r}")
    if line.startswith((".", "/", "~", "file:")) or re.search(r"\.(whl|zip|tar\.gz|tgz|tar\.bz2)$", line):
        return ("skip", f"local path {line!r}")
    return ("req", " ".join(line.split()))


def join_continuations(text: str) -> list[str]:
    """The lines of text, with backslash-continued lines joined."""
    lines: list[str] = []
    buf = ""
    for raw in text.splitlines():
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        lines.append(buf + raw)
        buf = ""
    if buf:
        lines.append(buf)
    return lines


def req_lines(
    r: Reader, lines: list[str], base_dir: str, source: str, sink: list[Raw], visited: set[str], test_context: bool
) -> None:
    """Add the requirements of lines to sink, following -r includes relative to base_dir."""
    for line in lines:
        kind = classify_line(line)
        if kind is None:
            continue
        what, value = kind
        if what == "req":
            sink.append((value, source))
        elif what == "include":
            include(r, posixpath.join(base_dir, value), source, sink, visited, test_context)
        elif what == "self":
            if test_context:
                r.self_extras += value
        elif what == "skip":
            r.warn(f"{source}: skipped {value}")


def include(r: Reader, rel: str, source: str, sink: list[Raw], visited: set[str], test_context: bool) -> None:
    """Add the requirements of the file rel, which source mentions, to sink."""
    rel = posixpath.normpath(rel)
    if rel in visited:
        return
    if test_context and rel != source and path_tokens(rel) & REQ_FILE_NOT_TEST_TOKENS:
        # A development file that gathers everything (docs' theme, linters) names much the tests never import.
        r.warn(f"{source}: left out {rel}: not for the tests")
        return
    visited.add(rel)
    text = r.read(rel)
    if text is None:
        path = r.root / rel
        if not rel.startswith("..") and not (path.is_symlink() or path.exists()):
            r.warn(f"{source}: included requirements file {rel} not found")
        return
    req_lines(r, join_continuations(text), posixpath.dirname(rel), rel, sink, visited, test_context)


def parse_req_file(r: Reader, rel: str, test_context: bool) -> list[Raw]:
    sink: list[Raw] = []
    include(r, rel, rel, sink, set(), test_context)
    return sink


def path_tokens(rel: str) -> set[str]:
    """The words of a requirements file's path, e.g. {"test"} for requirements/test.txt."""
    stem = rel.rsplit(".", 1)[0].lower()
    return {t for t in re.split(r"[^a-z]+", stem) if t} - {"requirements", "requirement", "reqs", "req"}


def _candidates(r: Reader) -> list[str]:
    """requirements*.txt at the root and in test folders, any .txt under requirements/, and any
    requirements-like .txt under CI folders."""
    found = set(r.files_under("requirements", _TEXT_FILE))
    for folder in CI_FOLDERS:
        found |= {rel for rel in r.files_under(folder, _TEXT_FILE) if _REQ_FILE_PATH.search(rel)}
    try:
        for d in ("", "tests", "test"):
            folder = r.root / d
            if folder.is_dir():
                found |= {
                    posixpath.join(d, p.name)
                    for p in folder.glob("*.txt")
                    if "requirements" in p.name.lower() and p.is_file()
                }
    except OSError as exc:
        r.warn(f"cannot list requirement files ({exc.__class__.__name__})")
    # CI's oldest-versions environments (tests-min.txt) are no part of the test environment.
    return sorted(rel for rel in found if not path_tokens(rel) & MIN_VERSION_TOKENS)


def _lists_test_runner(text: str) -> bool:
    for line in join_continuations(text):
        kind = classify_line(line)
        if kind and kind[0] == "req":
            try:
                name = canonicalize_name(Requirement(kind[1]).name)
            except InvalidRequirement:
                continue
            if name in TEST_RUNNER_PACKAGES or name.startswith("pytest"):
                return True
    return False


def read_requirement_files(r: Reader) -> None:
    """requirements*.txt files: test ones give test requirements, runtime ones dependencies."""
    for rel in _candidates(r):
        text = r.read(rel, record=False)
        if text is None:
            continue
        tokens = path_tokens(rel)
        folder = rel.split("/", 1)[0] if "/" in rel else ""
        if folder in TEST_FOLDERS:
            named_for_tests = not tokens & REQ_FILE_NOT_TEST_TOKENS
        else:
            named_for_tests = bool(tokens & REQ_FILE_TEST_TOKENS)
        if named_for_tests or _lists_test_runner(text):
            r.tests += parse_req_file(r, rel, test_context=True)
        elif (
            rel in ("requirements.txt", "requirements/requirements.txt")
            or tokens & REQ_FILE_RUNTIME_TOKENS
            or (folder == "requirements" and any(t.startswith("prod") for t in tokens))
        ):
            r.deps += parse_req_file(r, rel, test_context=False)
