"""The command that runs a set of test files and leaves machine-readable results behind."""

from __future__ import annotations

import shlex

JUNIT_FILE = ".repoforge-junit.xml"  # written in the repository root, read and removed after the run

# addopts is cleared because projects put coverage and plugin flags there whose plugins we do not
# install; collection errors in one file must not hide the results of the others.
PYTEST = ("python -m pytest -p no:cacheprovider -o addopts= -rA --tb=short "
          "--continue-on-collection-errors --junitxml={junit} {files}")


def test_command(runner: str) -> str:
    """A template with {files} and {junit} placeholders."""
    if runner != "pytest":
        raise ValueError(f"unknown test runner {runner!r}")
    return PYTEST


def render(template: str, files: list[str], junit: str = JUNIT_FILE) -> str:
    return template.format(files=" ".join(shlex.quote(f) for f in files), junit=shlex.quote(junit))
