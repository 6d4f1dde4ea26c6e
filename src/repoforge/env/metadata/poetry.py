"""Poetry's [tool.poetry] table and its version constraints."""

from __future__ import annotations

import re
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .model import TEST_GROUP_NAMES, Reader
from .requirements import table_version_extras

_POETRY_OP = re.compile(r"(\^|~=|~|>=|<=|==|!=|===|>|<|=)?\s*([A-Za-z0-9_.*+!-]+)")


def _bump(release: tuple[int, ...], index: int) -> str:
    up = list(release[:index]) + [release[index] + 1]
    up += [0] * (len(release) - len(up))
    return ".".join(str(x) for x in up)


def _caret_or_tilde(op: str, ver: str) -> list[str] | None:
    """`^1.2` / `~1.2` as a lower and an upper bound, or None for an invalid version."""
    try:
        release = Version(ver).release
    except InvalidVersion:
        return None
    if op == "^":
        nonzero = [i for i, x in enumerate(release) if x != 0]
        index = nonzero[0] if nonzero else len(release) - 1
    else:
        index = 0 if len(release) == 1 else 1
    return [f">={ver}", f"<{_bump(release, index)}"]


def poetry_constraint(constraint: str) -> str | None:
    """A Poetry version constraint as a PEP 440 specifier ("" for any), or None if impossible."""
    c = constraint.strip()
    if c in ("", "*"):
        return ""
    if "|" in c:
        return None
    out: list[str] = []
    for chunk in c.split(","):
        chunk = chunk.strip()
        pos = 0
        while pos < len(chunk):
            m = _POETRY_OP.match(chunk, pos)
            if not m or m.end() == pos:
                return None
            pos = m.end()
            while pos < len(chunk) and chunk[pos] == " ":
                pos += 1
            op, ver = m.group(1) or "", m.group(2)
            if ver == "*":
                continue
            if op in ("^", "~"):
                bounds = _caret_or_tilde(op, ver)
                if bounds is None:
                    return None
                out += bounds
            elif op in ("=", ""):
                out.append(f"=={ver}")
            else:
                out.append(f"{op}{ver}")
    spec = ",".join(out)
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        return None
    return spec


def _python_marker(spec: str) -> str:
    parts = []
    for s in spec.split(","):
        m = re.match(r"^(~=|===|==|!=|<=|>=|<|>)(.+)$", s.strip())
        if not m:
            continue
        op, ver = m.groups()
        var = "python_full_version" if ver.count(".") >= 2 and not ver.endswith("*") else "python_version"
        parts.append(f'{var} {op} "{ver}"')
    return " and ".join(parts)


def read_poetry(r: Reader, poetry: dict, src: str) -> None:
    if isinstance(poetry.get("name"), str):
        r.names.append(poetry["name"])
    if isinstance(poetry.get("classifiers"), list):
        r.classifiers += [c for c in poetry["classifiers"] if isinstance(c, str)]

    extras_decl = poetry.get("extras") if isinstance(poetry.get("extras"), dict) else {}
    in_extras: dict[str, list[str]] = {}  # canonical package name -> extras listing it
    for extra, names in extras_decl.items():
        r.extras.setdefault(str(extra), [])
        if isinstance(names, list):
            for n in names:
                if isinstance(n, str):
                    in_extras.setdefault(canonicalize_name(n), []).append(str(extra))

    deps = poetry.get("dependencies") if isinstance(poetry.get("dependencies"), dict) else {}
    for name, spec in deps.items():
        if canonicalize_name(name) == "python":
            if isinstance(spec, str):
                converted = _poetry_python(r, spec)
                if converted:
                    r.requires_python.append((converted, src))
            continue
        for req, optional in _poetry_requirements(r, name, spec, src):
            if not optional:
                r.deps.append((req, src))
            else:
                for extra in in_extras.get(canonicalize_name(name), []):
                    r.extras[extra].append((req, src))

    sections: list[Any] = [poetry.get("dev-dependencies")]
    groups = poetry.get("group") if isinstance(poetry.get("group"), dict) else {}
    for group, body in groups.items():
        if canonicalize_name(group) in TEST_GROUP_NAMES and isinstance(body, dict):
            sections.append(body.get("dependencies"))
    for section in sections:
        if not isinstance(section, dict):
            continue
        for name, spec in section.items():
            if canonicalize_name(name) != "python":
                r.tests += [(req, src) for req, _ in _poetry_requirements(r, name, spec, src)]


def _poetry_python(r: Reader, spec: str) -> str | None:
    """The python constraint as a specifier; for a union, the lowest of its lower bounds."""
    converted = poetry_constraint(spec)
    if converted is None and "||" in spec:
        lowers = []
        for alt in spec.split("||"):
            m = re.match(r"^>=([\d.]+)", poetry_constraint(alt) or "")
            if m:
                lowers.append(m.group(1))
        if lowers:
            converted = f">={min(lowers, key=lambda v: Version(v))}"
            r.warn(f"pyproject.toml: python constraint {spec!r} is a union; using {converted!r}")
            return converted
    if converted is None:
        r.warn(f"pyproject.toml: cannot convert python constraint {spec!r}")
        return None
    return converted or None


def _poetry_requirements(r: Reader, name: str, spec: Any, src: str) -> list[tuple[str, bool]]:
    """(requirement, optional) pairs for one Poetry dependency entry."""
    entries = spec if isinstance(spec, list) else [spec]
    out: list[tuple[str, bool]] = []
    for entry in entries:
        extras: list[str] = []
        markers: list[str] = []
        optional = False
        if isinstance(entry, str):
            version = entry
        elif isinstance(entry, dict):
            if any(k in entry for k in ("git", "path", "url", "file")):
                r.warn(f"{src}: skipped non-index dependency {name!r}")
                continue
            version, extras = table_version_extras(entry)
            optional = bool(entry.get("optional", False))
            if isinstance(entry.get("python"), str):
                py = poetry_constraint(entry["python"])
                if py:
                    markers.append(_python_marker(py))
            if isinstance(entry.get("markers"), str) and entry["markers"].strip():
                markers.append(entry["markers"].strip())
        else:
            r.warn(f"{src}: unreadable dependency entry for {name!r}")
            continue
        converted = poetry_constraint(version)
        if converted is None:
            r.warn(f"{src}: cannot convert constraint {version!r} of {name!r}; left unpinned")
            converted = ""
        req = name + (f"[{','.join(extras)}]" if extras else "") + converted
        markers = [m for m in markers if m]
        if len(markers) == 1:
            req += f"; {markers[0]}"
        elif markers:
            req += "; " + " and ".join(f"({m})" for m in markers)
        out.append((req, optional))
    return out
