"""conda environment files (environment.yml, ci/*.yml, ...): conda and pip dependencies as
test requirements. YAML is read with a few line-based rules."""

from __future__ import annotations

import posixpath
import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .model import Raw, Reader
from .requirements import COMMENT, req_lines

ENV_YAML_DIRS = ["", "ci", ".ci", "ci/deps", "requirements"]
# conda package names that differ from the package index
CONDA_NAME_MAP = {
    "pytables": "tables",
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "matplotlib-base": "matplotlib",
    "numpy-base": "numpy",
    "py-xgboost": "xgboost",
    "msgpack-python": "msgpack",
    "python-graphviz": "graphviz",
    "pyqt": "PyQt5",
    "tensorflow-base": "tensorflow",
    "ruamel_yaml": "ruamel.yaml",
}
# conda packages that are never Python distributions on the index
CONDA_DROP = {"python", "pip", "python_abi", "setuptools-conda", "c-compiler", "cxx-compiler",
              "fortran-compiler", "compilers", "libgcc", "libgcc-ng", "libstdcxx-ng", "gcc", "gxx",
              "nodejs", "openjdk", "blas", "libblas", "liblapack", "r-base"}


def conda_to_pep508(item: str) -> str | None:
    """A conda match spec (`numpy=1.18`, `conda-forge::scipy >=1.4`) as a requirement, or None."""
    item = re.sub(r"^[\w.-]+::", "", item.strip())
    m = re.match(r"^([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*(.*)$", item)
    if not m:
        return None
    name, rest = m.group(1), m.group(2).strip()
    if name.lower() in CONDA_DROP:
        return None
    name = CONDA_NAME_MAP.get(name.lower(), name)
    if "|" in rest:
        return name
    if rest.startswith("=") and not rest.startswith("=="):
        return name + _conda_prefix(rest[1:].split("=")[0])
    if re.match(r"^(>=|<=|==|!=|~=|>|<)", rest):
        spec = rest.split(" ")[0] if re.match(r"^==[^=]*=", rest) is None else rest.rsplit("=", 1)[0]
        return name + spec.replace(" ", "")
    return name + (_conda_prefix(rest.split()[0]) if rest else "")


def _conda_prefix(version: str) -> str:
    """A conda version (`1.18`, `1.18.*`, `1.18*`) as a prefix-matching specifier."""
    version = version.strip()
    if not version or version == "*":
        return ""
    if version.endswith(".*"):
        return "==" + version
    if version.endswith("*"):
        return "==" + version[:-1].rstrip(".") + ".*"
    return f"=={version}.*"


def _parse_env_yaml(r: Reader, rel: str, text: str) -> list[Raw] | None:
    """Requirements of a conda environment file, or None when it has no `dependencies:`."""
    out: list[Raw] = []
    in_deps = found = False
    pip_indent: int | None = None
    for raw in text.splitlines():
        line = COMMENT.sub("", raw.rstrip())
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        s = line.strip()
        if not in_deps:
            if indent == 0 and re.match(r"^dependencies\s*:\s*$", s):
                in_deps = found = True
            continue
        if indent == 0 and not s.startswith("-"):
            in_deps = False
            continue
        if not s.startswith("-"):
            continue
        item = s[1:].strip().strip("'\"")
        if pip_indent is not None and indent > pip_indent:  # an item of the `- pip:` list
            req_lines(r, [item], posixpath.dirname(rel), rel, out, set(), test_context=True)
            continue
        pip_indent = None
        if re.match(r"^pip\s*:\s*$", item):
            pip_indent = indent
        elif not item.endswith(":"):
            converted = conda_to_pep508(item)
            if converted:
                out.append((converted, rel))
    return out if found else None


def _environment_files(r: Reader) -> list[str]:
    files: list[str] = []
    for folder in ENV_YAML_DIRS:
        base = r.root / folder if folder else r.root
        try:
            if not base.is_dir():
                continue
            for path in sorted(base.iterdir()):
                if not path.is_file() or path.suffix not in (".yml", ".yaml"):
                    continue
                if folder == "" and path.stem != "environment":
                    continue
                files.append(f"{folder}/{path.name}" if folder else path.name)
        except OSError:
            continue
    return files


def read_environment_files(r: Reader) -> None:
    per_file: list[list[Raw]] = []
    for rel in _environment_files(r):
        text = r.read(rel, record=False)
        reqs = None if text is None else _parse_env_yaml(r, rel, text)
        if reqs is not None:
            r.read(rel)  # record it
            per_file.append(reqs)
    if len(per_file) > 1:
        r.tests += _agreed_pins(per_file)
    elif per_file:
        r.tests += per_file[0]


def _agreed_pins(per_file: list[list[Raw]]) -> list[Raw]:
    """Several environments (often one per Python version) pin the same package differently:
    keep a package's pin only when every file agrees on it."""
    by_name: dict[str, set[str]] = {}
    for reqs in per_file:
        for text, _ in reqs:
            try:
                by_name.setdefault(canonicalize_name(Requirement(text).name), set()).add(text)
            except InvalidRequirement:
                pass
    out: list[Raw] = []
    for reqs in per_file:
        for text, src in reqs:
            try:
                name = Requirement(text).name
            except InvalidRequirement:
                out.append((text, src))
                continue
            out.append((text if len(by_name[canonicalize_name(name)]) == 1 else name, src))
    return out
