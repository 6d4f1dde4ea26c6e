"""Find the machine's Python interpreters and choose one for a project at a commit."""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from pydantic import BaseModel

from repoforge.env.metadata import ProjectMetadata

# CPython feature releases (x.y.0). Language history, not project knowledge: it tells which
# interpreter a commit's developers could have had, and when tooling for it first existed.
PYTHON_RELEASES = {
    "3.5": "2015-09-13",
    "3.6": "2016-12-23",
    "3.7": "2018-06-27",
    "3.8": "2019-10-14",
    "3.9": "2020-10-05",
    "3.10": "2021-10-04",
    "3.11": "2022-10-24",
    "3.12": "2023-10-02",
    "3.13": "2024-10-07",
    "3.14": "2025-10-07",
}
MIN_SUPPORTED = Version("3.6")  # uv creates no venvs for older interpreters


@functools.cache
def available_pythons() -> dict[str, str]:
    """major.minor -> interpreter path, for every CPython 3 found on PATH, by uv, or by pyenv."""
    found: dict[str, str] = {}
    candidates = [shutil.which(f"python3.{minor}") for minor in range(6, 20)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
    candidates += _uv_pythons()
    for path in filter(None, candidates):
        found_here = inspect_interpreter(path)
        version = found_here.version if found_here else None
        if version and Version(version) >= MIN_SUPPORTED and version not in found:
            found[version] = path
    return dict(sorted(found.items(), key=lambda kv: Version(kv[0])))


def _uv_pythons() -> list[str]:
    uv = shutil.which("uv")
    if not uv:
        return []
    proc = subprocess.run(
        [uv, "python", "list", "--only-installed", "--output-format", "json"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return []
    return [entry["path"] for entry in json.loads(proc.stdout or "[]") if entry.get("path")]


class Interpreter(BaseModel):
    """What an interpreter says of itself."""

    version: str  # major.minor
    prefix: str  # sys.base_prefix: its installation, also when reached through a shim or a venv
    build: str  # sys.version: the exact build (patch version, date, compiler)

    @property
    def origin(self) -> str:
        """Where it came from, as EnvSpec.python_source records it."""
        return f"host:{self.prefix}"


# venv is imported too: Debian splits it out, and an interpreter without it cannot serve a build.
_DESCRIBE = (
    "import json, sys, venv; print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
    "'prefix': sys.base_prefix, 'build': sys.version}))"
)


@functools.cache
def inspect_interpreter(path: str) -> Interpreter | None:
    try:
        proc = subprocess.run([path, "-c", _DESCRIBE], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Interpreter.model_validate_json(proc.stdout) if proc.returncode == 0 else None


def choose_python(meta: ProjectMetadata, commit_date: str, available: dict[str, str]) -> str | None:
    """The interpreter version to build with, or None when none available fits (see python_preference)."""
    return next(iter(python_preference(meta, commit_date, available)), None)


def python_preference(meta: ProjectMetadata, commit_date: str, available: dict[str, str]) -> list[str]:
    """The interpreter versions to build with, best first.

    Allowed: what requires-python admits. Preferred, newest first: the versions the project declares
    (classifiers, tox envs, CI) that existed at the commit date; else all that existed at the commit
    date; else the oldest allowed one alone.
    """
    spec = _specifier(meta.requires_python)
    allowed = [v for v in available if spec is None or spec.contains(f"{v}.0", prereleases=True)]
    declared = set(meta.classifier_pythons) | set(meta.tox_pythons) | set(meta.ci_pythons)
    if declared and all(v.startswith("2") for v in declared):
        return []  # a Python 2 project: nothing here can run it
    released = [v for v in allowed if PYTHON_RELEASES.get(v, "9999") <= commit_date[:10]]
    preferred = [v for v in released if v in declared] or released
    if preferred:
        return sorted(preferred, key=Version, reverse=True)
    return [min(allowed, key=Version)] if allowed else []


def _specifier(text: str | None) -> SpecifierSet | None:
    if not text:
        return None
    try:
        return SpecifierSet(text.replace(" ", ""))
    except InvalidSpecifier:
        return None


def interpreter_path(version: str) -> Path:
    return Path(available_pythons()[version])
