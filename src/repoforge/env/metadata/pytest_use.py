"""What the test files take from pytest plugins: the markers and fixtures they use, read with
regular expressions. A fixture of a plugin not installed makes its tests error; a marker of one
stops the collection under `filterwarnings = error`."""

from __future__ import annotations

import re

from .model import Reader

TEST_FILE = re.compile(r"^(test_.*|.*_test|conftest|tests)\.py$")
_MARKER = re.compile(
    r"\bmark\.([A-Za-z_]\w*)|\b(?:add_marker|get_closest_marker|get_marker|iter_markers)"
    r"\(\s*['\"]([A-Za-z_]\w*)"
)
_SIGNATURE = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+\w+[ \t]*\(([^)]*)\)", re.M)
_PARAMETER = re.compile(r"(?:^|,)\s*\**([A-Za-z_]\w*)")  # fixtures are requested as parameters


def read_pytest_use(r: Reader) -> None:
    for rel in r.files_under("", TEST_FILE):
        text = r.read(rel, record=False)  # test files are no part of the dependency set
        if text is None:
            continue
        r.pytest_names |= {marker or named for marker, named in _MARKER.findall(text)}
        r.pytest_names |= {name for params in _SIGNATURE.findall(text) for name in _PARAMETER.findall(params)}


def provides(plugin: str, names: set[str]) -> bool:
    """Whether the plugin `pytest-X` provides one of names, by the convention of plugin names: a
    marker or fixture named X, or with a word starting with X (`no_cover` of pytest-cov, `mocker`
    of pytest-mock, `remote_data` of pytest-remotedata)."""
    stem = plugin.removeprefix("pytest-").replace("-", "")
    return any(
        name.lower().replace("_", "") == stem or any(word.startswith(stem) for word in name.lower().split("_"))
        for name in names
    )
