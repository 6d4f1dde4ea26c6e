"""Pipfile: [packages] (dependencies when nothing else declares them) and [dev-packages]."""

from __future__ import annotations

from typing import Any

from .model import Raw, Reader
from .requirements import add_marker, table_version_extras

SRC = "Pipfile"


def read_pipfile(r: Reader) -> None:
    data = r.load_toml(SRC)
    if not isinstance(data, dict):
        return
    r.pipfile_packages = _section(r, data.get("packages"))
    r.tests += _section(r, data.get("dev-packages"))


def _section(r: Reader, section: Any) -> list[Raw]:
    if not isinstance(section, dict):
        return []
    out: list[Raw] = []
    for name, spec in section.items():
        extras: list[str] = []
        marker = ""
        if isinstance(spec, str):
            version = spec
        elif isinstance(spec, dict):
            if any(k in spec for k in ("git", "path", "file", "hg", "svn", "bzr")):
                if not (isinstance(spec.get("path"), str) and spec["path"].strip() == "."):
                    r.warn(f"{SRC}: skipped non-index package {name!r}")
                continue
            version, extras = table_version_extras(spec)
            if isinstance(spec.get("markers"), str):
                marker = spec["markers"]
        else:
            continue
        req = name + (f"[{','.join(extras)}]" if extras else "") + _version_spec(version)
        out.append((add_marker(req, marker), SRC))
    return out


def _version_spec(version: str) -> str:
    """A Pipfile version ("*", "1.2", ">=1.2") as a specifier."""
    version = version.strip()
    if version in ("*", ""):
        return ""
    return "==" + version if version[0].isdigit() else version
