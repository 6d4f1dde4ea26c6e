"""pyproject.toml: build system, PEP 621, setuptools dynamic files, PEP 735 groups, PDM, Hatch,
Poetry and tool settings."""

from __future__ import annotations

import configparser
from typing import Any

from packaging.utils import canonicalize_name

from .model import TEST_GROUP_NAMES, Raw, Reader, new_ini_parser
from .poetry import read_poetry
from .requirements import parse_req_file
from .tox import read_tox_config

SRC = "pyproject.toml"
HATCH_TEST_ENVS = {"default", "test", "tests", "testing"}


def _table(obj: Any, *keys: str) -> dict:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj if isinstance(obj, dict) else {}


def _reqs(value: Any) -> list[Raw]:
    """The string items of a list, as requirements read from pyproject.toml."""
    return [(x, SRC) for x in value if isinstance(x, str)] if isinstance(value, list) else []


def read_pyproject(r: Reader) -> None:
    data = r.load_toml(SRC)
    if not isinstance(data, dict):
        return
    build = _table(data, "build-system")
    r.build += _reqs(build.get("requires"))
    if isinstance(build.get("build-backend"), str):
        r.build_backend = build["build-backend"]
    _read_project(r, _table(data, "project"))
    tool = _table(data, "tool")
    _read_dynamic(r, _table(tool, "setuptools", "dynamic"))
    _read_test_groups(r, data, tool)
    poetry = _table(tool, "poetry")
    if poetry:
        read_poetry(r, poetry, SRC)
    _read_tool_settings(r, tool)


def _read_project(r: Reader, project: dict) -> None:
    """The PEP 621 [project] table."""
    if isinstance(project.get("name"), str):
        r.names.append(project["name"])
    if isinstance(project.get("requires-python"), str):
        r.requires_python.append((project["requires-python"], SRC))
    if isinstance(project.get("classifiers"), list):
        r.classifiers += [c for c in project["classifiers"] if isinstance(c, str)]
    r.deps += _reqs(project.get("dependencies"))
    for extra, reqs in _table(project, "optional-dependencies").items():
        if isinstance(reqs, list):
            r.extras.setdefault(str(extra), []).extend(_reqs(reqs))


def _read_dynamic(r: Reader, dynamic: dict) -> None:
    """setuptools dynamic metadata read from requirements files."""
    for key, value in dynamic.items():
        if key == "dependencies":
            for f in _dynamic_files(value):
                r.deps += parse_req_file(r, f, test_context=False)
        elif key == "optional-dependencies" and isinstance(value, dict):
            for extra, spec in value.items():
                for f in _dynamic_files(spec):
                    r.extras.setdefault(str(extra), []).extend(parse_req_file(r, f, test_context=False))


def _dynamic_files(value: Any) -> list[str]:
    files = value.get("file") if isinstance(value, dict) else None
    if isinstance(files, str):
        return [files]
    if isinstance(files, list):
        return [f for f in files if isinstance(f, str)]
    return []


def _read_test_groups(r: Reader, data: dict, tool: dict) -> None:
    """PEP 735 dependency groups, PDM dev groups and Hatch environments meant for the tests."""
    groups = _table(data, "dependency-groups")
    for group in groups:
        if canonicalize_name(group) in TEST_GROUP_NAMES:
            r.tests += _dependency_group(groups, group, set())
    for group, reqs in _table(tool, "pdm", "dev-dependencies").items():
        if canonicalize_name(group) in TEST_GROUP_NAMES:
            r.tests += _reqs(reqs)
    for env_name, env in _table(tool, "hatch", "envs").items():
        if canonicalize_name(env_name) in HATCH_TEST_ENVS and isinstance(env, dict):
            r.tests += _reqs(env.get("dependencies"))


def _dependency_group(groups: dict, name: str, seen: set[str]) -> list[Raw]:
    """The requirements of a PEP 735 group, following include-group entries."""
    if name in seen:
        return []
    seen.add(name)
    out: list[Raw] = []
    items = groups.get(name)
    if not isinstance(items, list):
        return out
    for item in items:
        if isinstance(item, str):
            out.append((item, SRC))
        elif isinstance(item, dict) and isinstance(item.get("include-group"), str):
            out += _dependency_group(groups, item["include-group"], seen)
    return out


def _read_tool_settings(r: Reader, tool: dict) -> None:
    """pytest configuration, version-from-SCM plugins and an embedded tox configuration."""
    if "ini_options" in _table(tool, "pytest"):
        r.pytest_configured = True
        r.pytest_options[SRC] = {
            key: " ".join(map(str, value)) if isinstance(value, list) else str(value)
            for key, value in _table(tool, "pytest", "ini_options").items()
        }
    if "setuptools_scm" in tool or "setuptools-scm" in tool:
        r.scm = True
    if _table(tool, "hatch", "version").get("source") == "vcs":
        r.scm = True
    if _table(tool, "pdm", "version").get("source") == "scm":
        r.scm = True
    legacy = _table(tool, "tox").get("legacy_tox_ini")
    if isinstance(legacy, str):
        parser = new_ini_parser()
        try:
            parser.read_string(legacy, source="pyproject.toml [tool.tox]")
        except configparser.Error:
            r.warn("pyproject.toml: [tool.tox] legacy_tox_ini is not valid INI, partly skipped")
        read_tox_config(r, parser, "tox", SRC)
