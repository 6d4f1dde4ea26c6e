"""SWE-bench's own Python log parsers, which made the test ids of SWE-bench's rows from console output.

A parser is looked up by name among the functions of swebench's Python parser module, never by
evaluating a row's text.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from repoforge.schema import TestStatus


class UnknownLogParser(ValueError):
    """A row names a log parser that is not one of swebench's Python log parsers."""


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _parser_module() -> ModuleType:
    """swebench.harness.log_parsers.python, loaded alone: importing the swebench.harness package imports
    docker, modal and datasets (over ten seconds), while the parsers need only its constants module."""
    harness = Path(importlib.util.find_spec("swebench").origin).parent / "harness"
    constants = "swebench.harness.constants"  # imported by the parsers under this name; plain data
    if constants not in sys.modules:
        sys.modules[constants] = _load(constants, harness / "constants" / "__init__.py")
    return _load("repoforge_swebench_python_log_parsers", harness / "log_parsers" / "python.py")


@functools.cache
def _parsers() -> dict[str, Callable[[str, object], dict[str, str]]]:
    return {
        name: value
        for name, value in vars(_parser_module()).items()
        if name.startswith("parse_log_") and callable(value)
    }


def swebench_parser(log_parser: str | None, repo: str) -> str | None:
    """The name of the parser that made a row's test ids: the row's own, else swebench's for its repository."""
    if log_parser:
        if log_parser not in _parsers():
            raise UnknownLogParser(
                f"the row's log_parser {log_parser!r} is not one of swebench's Python log "
                f"parsers ({', '.join(sorted(_parsers()))})"
            )
        return log_parser
    by_repo = _parser_module().MAP_REPO_TO_PARSER_PY.get(repo)
    return by_repo.__name__ if by_repo else None


def parse_log(parser: str, text: str) -> dict[str, TestStatus]:
    """Per-test statuses as the swebench parser `parser` reads console output; words that are no status
    (a line "ERROR: file not found" gives "ERROR:") are not tests."""
    statuses = {status.value for status in TestStatus}
    return {test: TestStatus(status) for test, status in _parsers()[parser](text, None).items() if status in statuses}
