"""Static reading of a source tree's packaging metadata.

Nothing here executes project code: ``setup.py`` and ``noxfile.py`` are parsed with :mod:`ast`,
INI files with :mod:`configparser`, TOML with :mod:`tomllib`, and YAML with a few line-based
rules. Every source is optional; a malformed or odd file is skipped with a message in
``ProjectMetadata.warnings`` and never raises.
"""

from __future__ import annotations

import ast
import configparser
import posixpath
import re
import tomllib
from itertools import product
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, Field

__all__ = ["ProjectMetadata", "read_metadata", "poetry_constraint", "tox_env_pythons", "conda_to_pep508",
           "ci_python_versions"]


class ProjectMetadata(BaseModel):
    name: str | None = None
    requires_python: str | None = None  # a PEP 440 specifier string, e.g. ">=3.7"
    classifier_pythons: list[str] = Field(default_factory=list)  # ["3.8", "3.9"], X.Y only, sorted
    tox_pythons: list[str] = Field(default_factory=list)  # from tox envlists, sorted
    ci_pythons: list[str] = Field(default_factory=list)  # GitHub Actions / Travis python versions, sorted
    dependencies: list[str] = Field(default_factory=list)  # runtime PEP 508 requirements
    extras: dict[str, list[str]] = Field(default_factory=dict)  # extra name -> requirements
    test_extras: list[str] = Field(default_factory=list)  # extras to install for the tests
    test_requirements: list[str] = Field(default_factory=list)  # requirements to run the tests
    build_requires: list[str] = Field(default_factory=list)  # [build-system] requires (+ setup_requires)
    build_backend: str | None = None
    has_setup_py: bool = False
    has_pyproject: bool = False
    uses_setuptools_scm: bool = False
    pytest_configured: bool = False
    runner_script: str | None = None  # e.g. "runtests.py", relative to the root
    manifest_files: list[str] = Field(default_factory=list)  # files the dependency set was read from
    warnings: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Small generic tables (knowledge about ecosystems, not about any repository)

TEST_EXTRA_NAMES = {"test", "tests", "testing"}
DEV_EXTRA_NAMES = {"dev", "develop", "development"}
TEST_GROUP_NAMES = TEST_EXTRA_NAMES | DEV_EXTRA_NAMES
SCM_PACKAGES = {"setuptools-scm", "hatch-vcs", "setuptools-scm-git-archive"}
TEST_RUNNER_PACKAGES = {"pytest", "nose", "nose2"}
RUNNER_SCRIPTS = ["runtests.py", "run_tests.py", "run-tests.py", "bin/test", "tests/runtests.py", "tests/run_tests.py"]
REQ_FILE_TEST_TOKENS = {"test", "tests", "testing", "dev", "develop", "development", "ci"}
REQ_FILE_RUNTIME_TOKENS = {"base", "prod", "production", "runtime", "install", "main", "common", "core"}
REQ_FILE_OTHER_TOKENS = {"doc", "docs", "documentation", "lint", "linting", "typing", "mypy", "optional", "extra",
                         "extras", "style", "format", "release", "benchmark", "benchmarks", "examples"}
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

_PY_CLASSIFIER = re.compile(r"^Programming Language\s*::\s*Python\s*::\s*(\d+)\.(\d+)\s*$")
_TOX_PY_FACTOR = re.compile(r"^py(?:thon)?(\d)\.?(\d{1,2})$")
_POETRY_OP = re.compile(r"(\^|~=|~|>=|<=|==|!=|===|>|<|=)?\s*([A-Za-z0-9_.*+!-]+)")


def _canon(name: str) -> str:
    return canonicalize_name(name)


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def _sorted_pythons(vs: set[str]) -> list[str]:
    return sorted(vs, key=_version_key)


def _dedup(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _add_marker(req: str, marker: str) -> str:
    marker = marker.strip()
    if not marker:
        return req
    if ";" in req:
        base, _, existing = req.partition(";")
        return f"{base.strip()}; ({existing.strip()}) and ({marker})"
    return f"{req}; {marker}"


def _fix_specifier(spec: str) -> str | None:
    """A valid PEP 440 specifier set from spec, repairing `>=3.6.*`, or None."""
    spec = " ".join(spec.split())
    try:
        SpecifierSet(spec)
        return spec
    except InvalidSpecifier:
        pass
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    fixed = []
    for p in parts:
        m = re.match(r"^(>=|<=|>|<|~=)\s*(.+?)\.\*$", p)
        fixed.append(f"{m.group(1)}{m.group(2)}" if m else p)
    candidate = ",".join(fixed)
    try:
        SpecifierSet(candidate)
        return candidate
    except InvalidSpecifier:
        return None


# --------------------------------------------------------------------------------------------
# Poetry constraints


def _bump(release: tuple[int, ...], index: int) -> str:
    up = list(release[:index]) + [release[index] + 1]
    up += [0] * (len(release) - len(up))
    return ".".join(str(x) for x in up)


def poetry_constraint(constraint: str) -> str | None:
    """A Poetry version constraint as a PEP 440 specifier ("" for any), or None if impossible."""
    c = constraint.strip()
    if c in ("", "*"):
        return ""
    if "||" in c or "|" in c:
        return None
    out: list[str] = []
    for chunk in c.split(","):
        chunk = chunk.strip()
        if not chunk or chunk == "*":
            continue
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
                try:
                    release = Version(ver).release
                except InvalidVersion:
                    return None
                if op == "^":
                    nonzero = [i for i, x in enumerate(release) if x != 0]
                    index = nonzero[0] if nonzero else len(release) - 1
                else:
                    index = 0 if len(release) == 1 else 1
                out += [f">={ver}", f"<{_bump(release, index)}"]
            elif op == "=":
                out.append(f"=={ver}")
            elif op == "":
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


# --------------------------------------------------------------------------------------------
# Static evaluation of Python source (setup.py, noxfile.py)


class _Unresolvable(Exception):
    pass


class _Bad:
    """An element that could not be resolved statically."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return f"<unresolvable {self.what}>"


def _describe(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # pragma: no cover - unparse of odd trees
        text = type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _eval(node: ast.AST, env: dict[str, Any]) -> Any:
    """The literal value of node, resolving names through env; raises _Unresolvable."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        out: list[Any] = []
        for elt in node.elts:
            if isinstance(elt, ast.Starred):
                try:
                    val = _eval(elt.value, env)
                except _Unresolvable:
                    out.append(_Bad(_describe(elt)))
                    continue
                if isinstance(val, (list, tuple)):
                    out.extend(val)
                else:
                    out.append(_Bad(_describe(elt)))
                continue
            try:
                out.append(_eval(elt, env))
            except _Unresolvable:
                out.append(_Bad(_describe(elt)))
        return out
    if isinstance(node, ast.Dict):
        d: dict[Any, Any] = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                try:
                    val = _eval(v, env)
                except _Unresolvable:
                    continue
                if isinstance(val, dict):
                    d.update(val)
                continue
            key = _eval(k, env)
            if not isinstance(key, (str, int, bool, type(None))):
                raise _Unresolvable(_describe(k))
            try:
                d[key] = _eval(v, env)
            except _Unresolvable:
                d[key] = _Bad(_describe(v))
        return d
    if isinstance(node, ast.Name):
        if node.id in env:
            val = env[node.id]
            if isinstance(val, _Bad):
                raise _Unresolvable(node.id)
            return val
        raise _Unresolvable(node.id)
    if isinstance(node, ast.BinOp):
        left = _eval(node.left, env)
        right = _eval(node.right, env)
        if isinstance(node.op, ast.Add):
            if isinstance(left, list) and isinstance(right, list):
                return left + right
            if isinstance(left, str) and isinstance(right, str):
                return left + right
        if isinstance(node.op, ast.Mod) and isinstance(left, str):
            args = tuple(right) if isinstance(right, list) else right
            try:
                return left % args
            except Exception as exc:
                raise _Unresolvable(_describe(node)) from exc
        raise _Unresolvable(_describe(node))
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue) and value.format_spec is None:
                val = _eval(value.value, env)
                if not isinstance(val, (str, int, float)):
                    raise _Unresolvable(_describe(node))
                parts.append(str(val))
            else:
                raise _Unresolvable(_describe(node))
        return "".join(parts)
    if isinstance(node, ast.Subscript):
        container = _eval(node.value, env)
        key = _eval(node.slice, env)
        try:
            val = container[key]
        except Exception as exc:
            raise _Unresolvable(_describe(node)) from exc
        if isinstance(val, _Bad):
            raise _Unresolvable(_describe(node))
        return val
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("dict", "list", "tuple", "sorted", "set"):
            if func.id == "dict":
                d = {}
                for arg in node.args:
                    val = _eval(arg, env)
                    if not isinstance(val, dict):
                        raise _Unresolvable(_describe(node))
                    d.update(val)
                for kw in node.keywords:
                    if kw.arg is None:
                        val = _eval(kw.value, env)
                        if not isinstance(val, dict):
                            raise _Unresolvable(_describe(node))
                        d.update(val)
                    else:
                        try:
                            d[kw.arg] = _eval(kw.value, env)
                        except _Unresolvable:
                            d[kw.arg] = _Bad(_describe(kw.value))
                return d
            if len(node.args) == 1 and not node.keywords:
                val = _eval(node.args[0], env)
                if isinstance(val, dict):
                    val = list(val)
                if isinstance(val, list):
                    if func.id == "sorted":
                        try:
                            return sorted(val)
                        except TypeError as exc:
                            raise _Unresolvable(_describe(node)) from exc
                    return list(val)
            if func.id in ("list", "tuple") and not node.args:
                return []
            raise _Unresolvable(_describe(node))
        if isinstance(func, ast.Attribute):
            if func.attr in ("format", "split", "splitlines", "strip") and isinstance(func.value, (ast.Constant, ast.Name)):
                base = _eval(func.value, env)
                if isinstance(base, str):
                    args = [_eval(a, env) for a in node.args]
                    kwargs = {kw.arg: _eval(kw.value, env) for kw in node.keywords if kw.arg}
                    try:
                        return getattr(base, func.attr)(*args, **kwargs)
                    except Exception as exc:
                        raise _Unresolvable(_describe(node)) from exc
            if func.attr in ("keys", "values") and not node.args:
                base = _eval(func.value, env)
                if isinstance(base, dict):
                    return list(base.keys() if func.attr == "keys" else base.values())
        raise _Unresolvable(_describe(node))
    raise _Unresolvable(_describe(node))


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _flat_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that always run: the body, try/with bodies and `if __name__ == "__main__"`."""
    out: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, ast.Try):
            out += _flat_statements(stmt.body)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            out += _flat_statements(stmt.body)
        elif isinstance(stmt, ast.If) and _is_main_guard(stmt.test):
            out += _flat_statements(stmt.body)
        else:
            out.append(stmt)
    return out


def _bind(env: dict[str, Any], target: ast.expr, value_node: ast.expr | None, value: Any) -> None:
    if isinstance(target, ast.Name):
        env[target.id] = value
    elif isinstance(target, (ast.Tuple, ast.List)):
        if isinstance(value_node, (ast.Tuple, ast.List)) and len(value_node.elts) == len(target.elts):
            for t, v in zip(target.elts, value_node.elts):
                try:
                    val = _eval(v, env)
                except _Unresolvable:
                    val = _Bad(_describe(v))
                _bind(env, t, v, val)
        else:
            for t in target.elts:
                if isinstance(t, ast.Name):
                    env[t.id] = _Bad(t.id)
    elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
        container = env.get(target.value.id)
        if isinstance(container, dict):
            try:
                container[_eval(target.slice, env)] = value
            except (_Unresolvable, TypeError):
                pass


def _run_statements(stmts: list[ast.stmt], env: dict[str, Any]) -> None:
    """Record literal assignments (and list/dict mutations) of stmts into env."""
    for stmt in stmts:
        if isinstance(stmt, ast.Assign):
            try:
                value = _eval(stmt.value, env)
            except _Unresolvable:
                value = _Bad(_describe(stmt.value))
            for target in stmt.targets:
                _bind(env, target, stmt.value, value)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            try:
                value = _eval(stmt.value, env)
            except _Unresolvable:
                value = _Bad(_describe(stmt.value))
            _bind(env, stmt.target, stmt.value, value)
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            name = stmt.target.id
            current = env.get(name)
            try:
                value = _eval(stmt.value, env)
            except _Unresolvable:
                value = _Bad(_describe(stmt.value))
            if isinstance(stmt.op, ast.Add) and isinstance(current, list) and isinstance(value, list):
                env[name] = current + value
            elif isinstance(stmt.op, ast.Add) and isinstance(current, str) and isinstance(value, str):
                env[name] = current + value
            elif name in env:
                env[name] = _Bad(name)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            func = call.func
            if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
                continue
            target = env.get(func.value.id)
            try:
                args = [_eval(a, env) for a in call.args]
            except _Unresolvable:
                args = None
            if isinstance(target, list) and func.attr in ("append", "extend", "insert"):
                if args is None:
                    target.append(_Bad(_describe(call)))
                elif func.attr == "append" and len(args) == 1:
                    target.append(args[0])
                elif func.attr == "extend" and len(args) == 1 and isinstance(args[0], list):
                    target.extend(args[0])
                elif func.attr == "insert" and len(args) == 2:
                    target.append(args[1])
            elif isinstance(target, dict) and func.attr == "update":
                if args is not None and len(args) == 1 and isinstance(args[0], dict):
                    target.update(args[0])
                for kw in call.keywords:
                    if kw.arg:
                        try:
                            target[kw.arg] = _eval(kw.value, env)
                        except _Unresolvable:
                            target[kw.arg] = _Bad(_describe(kw.value))


# --------------------------------------------------------------------------------------------
# Requirement lines


_OPTION_SPLIT = re.compile(r"\s+-{1,2}[A-Za-z]")
_COMMENT = re.compile(r"(^|\s)#.*$")
_URLISH = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^(git|hg|svn|bzr)\+")
_SELF_PATH = re.compile(r"^\.(?:/)?(?:\[([^\]]*)\])?$")


def _classify_line(line: str) -> tuple[str, Any] | None:
    """('req', text) | ('include', path) | ('self', [extras]) | ('skip', reason) | None."""
    line = _COMMENT.sub("", line).strip()
    if not line:
        return None
    m = re.match(r"^(?:-r|--requirement)(?:\s*=\s*|\s*)(\S+)$", line)
    if m:
        return ("include", m.group(1))
    m = re.match(r"^(?:-e|--editable)(?:\s*=\s*|\s+)(\S+)", line)
    if m:
        target = m.group(1)
        sm = _SELF_PATH.match(target)
        if sm:
            return ("self", [e.strip() for e in (sm.group(1) or "").split(",") if e.strip()])
        return ("skip", f"editable requirement {target!r}")
    if line.startswith("-"):
        return None  # -c, -i, --index-url, --pre, -f, ...
    line = _OPTION_SPLIT.split(line, maxsplit=1)[0].strip()
    if "${" in line:
        return ("skip", f"requirement with an environment variable {line!r}")
    sm = _SELF_PATH.match(line)
    if sm:
        return ("self", [e.strip() for e in (sm.group(1) or "").split(",") if e.strip()])
    if _URLISH.match(line) or re.search(r"\s@\s|^[^;]*@\s*\S+://", line):
        return ("skip", f"direct reference {line!r}")
    if line.startswith((".", "/", "~", "file:")) or re.search(r"\.(whl|zip|tar\.gz|tgz|tar\.bz2)$", line):
        return ("skip", f"local path {line!r}")
    return ("req", " ".join(line.split()))


def _join_continuations(text: str) -> list[str]:
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


# --------------------------------------------------------------------------------------------
# Reader


Raw = tuple[str, str]  # (requirement text, source file)


class _Reader:
    def __init__(self, root: Path):
        self.root = root
        self.resolved_root = root.resolve()
        self.warnings: list[str] = []
        self.manifest: set[str] = set()
        self.texts: dict[str, str | None] = {}
        self.names: list[str] = []
        self.requires_python: list[tuple[str, str]] = []  # (spec, source)
        self.classifiers: list[str] = []
        self.tox_pythons: set[str] = set()
        self.ci_pythons: set[str] = set()
        self.deps: list[Raw] = []
        self.extras: dict[str, list[Raw]] = {}
        self.tests: list[Raw] = []
        self.build: list[Raw] = []
        self.pipfile_packages: list[Raw] = []
        self.tox_extras: list[str] = []
        self.self_extras: list[str] = []
        self.build_backend: str | None = None
        self.scm = False
        self.pytest_configured = False

    # -- files ----------------------------------------------------------------------------

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def exists(self, rel: str) -> bool:
        try:
            return (self.root / rel).is_file()
        except OSError:
            return False

    def read(self, rel: str, record: bool = True) -> str | None:
        rel = posixpath.normpath(rel)
        if rel.startswith("../") or rel == ".." or rel.startswith("/"):
            self.warn(f"{rel}: outside the source tree, not read")
            return None
        if rel not in self.texts:
            self.texts[rel] = self._load(rel)
        text = self.texts[rel]
        if text is not None and record:
            self.manifest.add(rel)
        return text

    def _load(self, rel: str) -> str | None:
        path = self.root / rel
        try:
            if not path.is_file():
                return None
            resolved = path.resolve()
            if resolved != self.resolved_root and self.resolved_root not in resolved.parents:
                self.warn(f"{rel}: a link leading outside the source tree, not read")
                return None
            if path.stat().st_size > 5_000_000:
                self.warn(f"{rel}: too large, not read")
                return None
            data = path.read_bytes()
        except OSError as exc:
            self.warn(f"{rel}: unreadable ({exc.__class__.__name__})")
            return None
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            try:
                return data.decode("utf-16")
            except UnicodeDecodeError:
                pass
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            self.warn(f"{rel}: not UTF-8, read as latin-1")
            return data.decode("latin-1")

    def load_toml(self, rel: str) -> dict | None:
        text = self.read(rel)
        if text is None:
            return None
        try:
            return tomllib.loads(text)
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            self.warn(f"{rel}: invalid TOML, skipped ({exc})")
            return None

    def load_ini(self, rel: str) -> configparser.ConfigParser | None:
        text = self.read(rel)
        if text is None:
            return None
        parser = configparser.ConfigParser(interpolation=None, strict=False, allow_no_value=True)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            parser.read_string(text, source=rel)
        except configparser.MissingSectionHeaderError:
            self.warn(f"{rel}: invalid INI (no section header), skipped")
            return None
        except configparser.ParsingError as exc:
            bad = len(getattr(exc, "errors", []) or [])
            self.warn(f"{rel}: partly unparsable INI, kept what parsed ({bad} bad lines)")
        except configparser.Error as exc:
            self.warn(f"{rel}: invalid INI, skipped ({exc.__class__.__name__})")
            return None
        return parser

    # -- requirement files ---------------------------------------------------------------

    def req_lines(self, lines: list[str], base_dir: str, source: str, sink: list[Raw],
                  visited: set[str], test_context: bool) -> None:
        for line in lines:
            kind = _classify_line(line)
            if kind is None:
                continue
            what, value = kind
            if what == "req":
                sink.append((value, source))
            elif what == "include":
                self.include(posixpath.join(base_dir, value), source, sink, visited, test_context)
            elif what == "self":
                if test_context:
                    self.self_extras += value
            elif what == "skip":
                self.warn(f"{source}: skipped {value}")

    def include(self, rel: str, source: str, sink: list[Raw], visited: set[str], test_context: bool) -> None:
        rel = posixpath.normpath(rel)
        if rel in visited:
            return
        visited.add(rel)
        text = self.read(rel)
        if text is None:
            path = self.root / rel
            if not rel.startswith("..") and not (path.is_symlink() or path.exists()):
                self.warn(f"{source}: included requirements file {rel} not found")
            return
        self.req_lines(_join_continuations(text), posixpath.dirname(rel), rel, sink, visited, test_context)

    def parse_req_file(self, rel: str, test_context: bool) -> list[Raw]:
        sink: list[Raw] = []
        self.include(rel, rel, sink, set(), test_context)
        return sink

    # -- final requirement hygiene ------------------------------------------------------

    def clean(self, raws: list[Raw], project: str | None, test_context: bool) -> list[str]:
        out: list[str] = []
        for text, source in raws:
            text = " ".join(str(text).split())
            if not text:
                continue
            try:
                req = Requirement(text)
            except InvalidRequirement as exc:
                self.warn(f"{source}: skipped unparsable requirement {text!r} ({str(exc).splitlines()[0]})")
                continue
            if req.url:
                self.warn(f"{source}: skipped direct reference {text!r}")
                continue
            if project and _canon(req.name) == project:
                if test_context:
                    self.self_extras += sorted(req.extras)
                continue
            out.append(text)
        return _dedup(out)


# --------------------------------------------------------------------------------------------
# Sources


def _str_list(r: _Reader, value: Any, what: str, source: str) -> list[str]:
    """value as a list of strings (a string is split into lines); bad items warned about."""
    if isinstance(value, _Bad):
        r.warn(f"{source}: could not statically resolve {what}")
        return []
    if isinstance(value, str):
        return [ln.strip() for ln in value.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            else:
                r.warn(f"{source}: could not statically resolve an item of {what}: {item!r}")
        return out
    r.warn(f"{source}: {what} is not a list of strings, skipped")
    return []


def _add_extras(r: _Reader, value: Any, source: str) -> None:
    if isinstance(value, _Bad) or not isinstance(value, dict):
        r.warn(f"{source}: could not statically resolve extras_require")
        return
    for key, reqs in value.items():
        if not isinstance(key, str):
            continue
        name, _, marker = key.partition(":")
        items = _str_list(r, reqs, f"extras_require[{key!r}]", source)
        raws = [(_add_marker(x, marker) if marker else x, source) for x in items]
        name = name.strip()
        if not name:  # ":python_version<'3'" means conditional runtime dependencies
            r.deps += raws
        else:
            r.extras.setdefault(name, []).extend(raws)


def _read_pyproject(r: _Reader) -> None:
    data = r.load_toml("pyproject.toml")
    if not isinstance(data, dict):
        return
    src = "pyproject.toml"

    def table(obj: Any, *keys: str) -> dict:
        for key in keys:
            obj = obj.get(key) if isinstance(obj, dict) else None
        return obj if isinstance(obj, dict) else {}

    build = table(data, "build-system")
    requires = build.get("requires")
    if isinstance(requires, list):
        r.build += [(x, src) for x in requires if isinstance(x, str)]
    if isinstance(build.get("build-backend"), str):
        r.build_backend = build["build-backend"]

    project = table(data, "project")
    if isinstance(project.get("name"), str):
        r.names.append(project["name"])
    if isinstance(project.get("requires-python"), str):
        r.requires_python.append((project["requires-python"], src))
    if isinstance(project.get("classifiers"), list):
        r.classifiers += [c for c in project["classifiers"] if isinstance(c, str)]
    if isinstance(project.get("dependencies"), list):
        r.deps += [(x, src) for x in project["dependencies"] if isinstance(x, str)]
    for extra, reqs in table(project, "optional-dependencies").items():
        if isinstance(reqs, list):
            r.extras.setdefault(str(extra), []).extend((x, src) for x in reqs if isinstance(x, str))

    tool = table(data, "tool")
    # setuptools dynamic metadata read from files
    dynamic = table(tool, "setuptools", "dynamic")
    for key, value in dynamic.items():
        if key == "dependencies":
            for f in _dynamic_files(value):
                r.deps += r.parse_req_file(f, test_context=False)
        elif key == "optional-dependencies" and isinstance(value, dict):
            for extra, spec in value.items():
                for f in _dynamic_files(spec):
                    r.extras.setdefault(str(extra), []).extend(r.parse_req_file(f, test_context=False))

    # PEP 735 dependency groups, PDM dev groups, Hatch test environments
    groups = table(data, "dependency-groups")
    for group in groups:
        if _canon(group) in TEST_GROUP_NAMES:
            r.tests += _dependency_group(r, groups, group, set())
    for group, reqs in table(tool, "pdm", "dev-dependencies").items():
        if _canon(group) in TEST_GROUP_NAMES and isinstance(reqs, list):
            r.tests += [(x, src) for x in reqs if isinstance(x, str)]
    for env_name, env in table(tool, "hatch", "envs").items():
        if _canon(env_name) in {"default", "test", "tests", "testing"} and isinstance(env, dict):
            reqs = env.get("dependencies")
            if isinstance(reqs, list):
                r.tests += [(x, src) for x in reqs if isinstance(x, str)]

    poetry = table(tool, "poetry")
    if poetry:
        _read_poetry(r, poetry, src)

    if "ini_options" in table(tool, "pytest"):
        r.pytest_configured = True
    if "setuptools_scm" in tool or "setuptools-scm" in tool:
        r.scm = True
    if table(tool, "hatch", "version").get("source") == "vcs":
        r.scm = True
    if table(tool, "pdm", "version").get("source") == "scm":
        r.scm = True
    legacy = table(tool, "tox").get("legacy_tox_ini")
    if isinstance(legacy, str):
        parser = configparser.ConfigParser(interpolation=None, strict=False, allow_no_value=True)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            parser.read_string(legacy, source="pyproject.toml [tool.tox]")
        except configparser.Error:
            r.warn("pyproject.toml: [tool.tox] legacy_tox_ini is not valid INI, partly skipped")
        _read_tox_config(r, parser, "tox", src)


def _dynamic_files(value: Any) -> list[str]:
    if isinstance(value, dict):
        files = value.get("file")
        if isinstance(files, str):
            return [files]
        if isinstance(files, list):
            return [f for f in files if isinstance(f, str)]
    return []


def _dependency_group(r: _Reader, groups: dict, name: str, seen: set[str]) -> list[Raw]:
    if name in seen:
        return []
    seen.add(name)
    out: list[Raw] = []
    items = groups.get(name)
    if not isinstance(items, list):
        return out
    for item in items:
        if isinstance(item, str):
            out.append((item, "pyproject.toml"))
        elif isinstance(item, dict) and isinstance(item.get("include-group"), str):
            out += _dependency_group(r, groups, item["include-group"], seen)
    return out


def _read_poetry(r: _Reader, poetry: dict, src: str) -> None:
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
                    in_extras.setdefault(_canon(n), []).append(str(extra))

    deps = poetry.get("dependencies") if isinstance(poetry.get("dependencies"), dict) else {}
    for name, spec in deps.items():
        if _canon(name) == "python":
            if isinstance(spec, str):
                converted = _poetry_python(r, spec)
                if converted:
                    r.requires_python.append((converted, src))
            continue
        for req, optional in _poetry_requirements(r, name, spec, src):
            if not optional:
                r.deps.append((req, src))
            else:
                for extra in in_extras.get(_canon(name), []):
                    r.extras[extra].append((req, src))

    sections: list[Any] = [poetry.get("dev-dependencies")]
    groups = poetry.get("group") if isinstance(poetry.get("group"), dict) else {}
    for group, body in groups.items():
        if _canon(group) in TEST_GROUP_NAMES and isinstance(body, dict):
            sections.append(body.get("dependencies"))
    for section in sections:
        if not isinstance(section, dict):
            continue
        for name, spec in section.items():
            if _canon(name) == "python":
                continue
            r.tests += [(req, src) for req, _ in _poetry_requirements(r, name, spec, src)]


def _poetry_python(r: _Reader, spec: str) -> str | None:
    converted = poetry_constraint(spec)
    if converted is None and "||" in spec:
        lowers = []
        for alt in spec.split("||"):
            c = poetry_constraint(alt)
            m = re.match(r"^>=([\d.]+)", c or "")
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


def _poetry_requirements(r: _Reader, name: str, spec: Any, src: str) -> list[tuple[str, bool]]:
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
            version = entry.get("version", "*")
            if not isinstance(version, str):
                version = "*"
            if isinstance(entry.get("extras"), list):
                extras = [e for e in entry["extras"] if isinstance(e, str)]
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


def _cfg_list(r: _Reader, value: str | None, what: str, source: str, req_like: bool) -> list[str]:
    """A setup.cfg list value: dangling lines, or ';'/','-separated on one line; file: followed."""
    if value is None:
        return []
    value = value.strip()
    if value.startswith("file:"):
        if not req_like:
            r.warn(f"{source}: {what} uses a file: directive, skipped")
            return []
        out: list[str] = []
        for f in value[5:].replace(",", " ").split():
            raws = r.parse_req_file(f.strip(), test_context=False)
            out += [x for x, _ in raws]
        return out
    if value.startswith("attr:"):
        r.warn(f"{source}: {what} uses an attr: directive, skipped")
        return []
    if "\n" in value:
        items = [ln.strip() for ln in value.splitlines()]
    elif req_like:
        items = [value]
        try:
            Requirement(value)
        except InvalidRequirement:
            for sep in (";", ","):
                parts = [p.strip() for p in value.split(sep) if p.strip()]
                if len(parts) > 1:
                    items = parts
                    break
    else:
        items = [p.strip() for p in value.split(",")]
    return [x for x in (_COMMENT.sub("", i).strip() for i in items) if x]


def _read_setup_cfg(r: _Reader) -> None:
    cfg = r.load_ini("setup.cfg")
    if cfg is None:
        return
    src = "setup.cfg"
    if cfg.has_section("metadata"):
        name = cfg.get("metadata", "name", fallback=None)
        if name and not name.strip().startswith(("attr:", "file:")):
            r.names.append(name.strip())
        r.classifiers += _cfg_list(r, cfg.get("metadata", "classifiers", fallback=None), "classifiers", src, False)
    if cfg.has_section("options"):
        opts = cfg["options"]
        r.deps += [(x, src) for x in _cfg_list(r, opts.get("install_requires"), "install_requires", src, True)]
        r.tests += [(x, src) for x in _cfg_list(r, opts.get("tests_require"), "tests_require", src, True)]
        setup_requires = _cfg_list(r, opts.get("setup_requires"), "setup_requires", src, True)
        r.build += [(x, src) for x in setup_requires]
        py = opts.get("python_requires")
        if py and py.strip():
            r.requires_python.append((py.strip(), src))
        if opts.get("use_scm_version", "").strip().lower() in ("true", "1", "yes"):
            r.scm = True
    if cfg.has_section("options.extras_require"):
        for extra, value in cfg["options.extras_require"].items():
            name, _, marker = extra.partition(":")
            items = _cfg_list(r, value, f"extras_require {extra}", src, True)
            r.extras.setdefault(name.strip(), []).extend(
                (_add_marker(x, marker) if marker else x, src) for x in items)
    if cfg.has_section("tool:pytest") or cfg.has_section("pytest"):
        r.pytest_configured = True
    if cfg.has_section("tox:tox"):
        _read_tox_config(r, cfg, "tox:tox", src)


def _find_setup_call(tree: ast.Module) -> tuple[ast.Call | None, list[ast.AST]]:
    parents: dict[ast.AST, ast.AST] = {}
    calls: list[ast.Call] = []
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "setup") or (isinstance(f, ast.Attribute) and f.attr == "setup"):
                if node.keywords:
                    calls.append(node)
    if not calls:
        return None, []
    call = max(calls, key=lambda c: len(c.keywords))
    chain: list[ast.AST] = []
    node: ast.AST | None = call
    while node is not None:
        node = parents.get(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            chain.insert(0, node)
    return call, chain


_REQ_FILE_MENTION = re.compile(r"""['"]([\w./-]*\.(?:txt|in))['"]""")


def _read_setup_py(r: _Reader) -> None:
    src = "setup.py"
    text = r.read(src)
    if text is None:
        return
    if re.search(r"use_scm_version|setuptools[_-]scm", text):
        r.scm = True
    _setup_py_requirement_files(r, text)
    try:
        tree = ast.parse(text, filename=src)
    except (SyntaxError, ValueError) as exc:
        r.warn(f"{src}: cannot be parsed ({exc.__class__.__name__}: {exc}), skipped")
        return
    call, functions = _find_setup_call(tree)
    if call is None:
        r.warn(f"{src}: no setup(...) call with keywords found")
        return
    env: dict[str, Any] = {}
    _run_statements(_flat_statements(tree.body), env)
    for fn in functions:
        _run_statements(_flat_statements(fn.body), env)  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is None:
            try:
                value = _eval(kw.value, env)
            except _Unresolvable:
                r.warn(f"{src}: could not statically resolve **{_describe(kw.value)}")
                continue
            if isinstance(value, dict):
                kwargs.update({k: v for k, v in value.items() if isinstance(k, str)})
            continue
        try:
            kwargs[kw.arg] = _eval(kw.value, env)
        except _Unresolvable:
            kwargs[kw.arg] = _Bad(_describe(kw.value))

    name = kwargs.get("name")
    if isinstance(name, str):
        r.names.append(name)
    elif "name" in kwargs:
        r.warn(f"{src}: could not statically resolve name")
    if "install_requires" in kwargs:
        r.deps += [(x, src) for x in _str_list(r, kwargs["install_requires"], "install_requires", src)]
    if "tests_require" in kwargs:
        r.tests += [(x, src) for x in _str_list(r, kwargs["tests_require"], "tests_require", src)]
    if "setup_requires" in kwargs:
        r.build += [(x, src) for x in _str_list(r, kwargs["setup_requires"], "setup_requires", src)]
    if "extras_require" in kwargs:
        _add_extras(r, kwargs["extras_require"], src)
    if "classifiers" in kwargs:
        r.classifiers += _str_list(r, kwargs["classifiers"], "classifiers", src)
    py = kwargs.get("python_requires")
    if isinstance(py, str):
        r.requires_python.append((py, src))
    elif "python_requires" in kwargs:
        r.warn(f"{src}: could not statically resolve python_requires")
    scm = kwargs.get("use_scm_version")
    if isinstance(scm, _Bad) or (scm is not None and scm is not False):
        r.scm = True


def _setup_py_requirement_files(r: _Reader, text: str) -> None:
    """Requirement files setup.py mentions (e.g. open('requirements.txt')) and that exist."""
    seen: set[str] = set()
    for m in _REQ_FILE_MENTION.finditer(text):
        mention = posixpath.normpath(m.group(1))
        base = posixpath.basename(mention).lower()
        candidates = [mention]
        if "/" not in mention:
            candidates.append(f"requirements/{mention}")
        for rel in candidates:
            rel = posixpath.normpath(rel)
            if rel in seen or not r.exists(rel):
                continue
            if not ("req" in base or "dep" in base or rel.startswith("requirements/")):
                continue
            seen.add(rel)
            tokens = _path_tokens(rel)
            if tokens & REQ_FILE_TEST_TOKENS:
                r.tests += r.parse_req_file(rel, test_context=True)
            elif tokens & REQ_FILE_OTHER_TOKENS:
                continue
            else:
                r.deps += r.parse_req_file(rel, test_context=False)
            break


def _path_tokens(rel: str) -> set[str]:
    stem = rel.rsplit(".", 1)[0].lower()
    return {t for t in re.split(r"[^a-z]+", stem) if t} - {"requirements", "requirement", "reqs", "req"}


def _requirement_file_candidates(r: _Reader) -> list[str]:
    found: set[str] = set()
    try:
        for path in r.root.glob("*.txt"):
            if "requirements" in path.name.lower() and path.is_file():
                found.add(path.name)
        for d in ("requirements", "tests", "test", "ci", ".ci"):
            folder = r.root / d
            if not folder.is_dir():
                continue
            for path in folder.glob("*.txt"):
                if path.is_file() and (d == "requirements" or "requirements" in path.name.lower()):
                    found.add(f"{d}/{path.name}")
    except OSError as exc:
        r.warn(f"cannot list requirement files ({exc.__class__.__name__})")
    return sorted(found)


def _read_requirement_files(r: _Reader) -> None:
    for rel in _requirement_file_candidates(r):
        text = r.read(rel, record=False)
        if text is None:
            continue
        tokens = _path_tokens(rel)
        folder = rel.split("/", 1)[0] if "/" in rel else ""
        lists_runner = False
        for line in _join_continuations(text):
            kind = _classify_line(line)
            if kind and kind[0] == "req":
                try:
                    if _canon(Requirement(kind[1]).name) in TEST_RUNNER_PACKAGES or \
                            _canon(Requirement(kind[1]).name).startswith("pytest"):
                        lists_runner = True
                except InvalidRequirement:
                    pass
        if folder in ("tests", "test", "ci", ".ci") or tokens & REQ_FILE_TEST_TOKENS or lists_runner:
            r.tests += r.parse_req_file(rel, test_context=True)
        elif rel == "requirements.txt" or rel == "requirements/requirements.txt" or \
                tokens & REQ_FILE_RUNTIME_TOKENS or \
                (folder == "requirements" and any(t.startswith("prod") for t in tokens)):
            r.deps += r.parse_req_file(rel, test_context=False)


# -- tox -----------------------------------------------------------------------------------


def _split_top_level(text: str) -> list[str]:
    out, buf, depth = [], "", 0
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        if (ch in ",\n" and depth == 0):
            out.append(buf)
            buf = ""
        else:
            buf += ch
    out.append(buf)
    return [x.strip() for x in out if x.strip()]


def _expand_braces(text: str, limit: int = 512) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", text)
    if not m:
        return [text]
    head, tail = text[: m.start()], text[m.end():]
    options = [o.strip() for o in m.group(1).split(",")]
    out: list[str] = []
    for option, rest in product(options, _expand_braces(tail, limit)):
        out.append(head + option + rest)
        if len(out) >= limit:
            break
    return out


def tox_env_pythons(envlist: str) -> set[str]:
    versions: set[str] = set()
    for item in _split_top_level(envlist):
        for env in _expand_braces(item):
            for factor in env.split("-"):
                m = _TOX_PY_FACTOR.match(factor.strip())
                if m:
                    versions.add(f"{m.group(1)}.{int(m.group(2))}")
    return versions


_TOX_FACTOR_PREFIX = re.compile(r"^([\w{}.!,\-]+):\s+(.*)$")


def _read_tox_config(r: _Reader, cfg: configparser.ConfigParser, section: str, src: str) -> None:
    if cfg.has_section(section):
        envlist = cfg.get(section, "envlist", fallback=None) or cfg.get(section, "env_list", fallback=None)
        if envlist:
            r.tox_pythons |= tox_env_pythons(envlist)
    if cfg.has_section("pytest"):
        r.pytest_configured = True
    if not cfg.has_section("testenv"):
        return
    deps = cfg.get("testenv", "deps", fallback=None) or ""
    lines = []
    for raw in _join_continuations(deps):
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        m = _TOX_FACTOR_PREFIX.match(line)
        if m and "://" not in m.group(1):
            line = m.group(2).strip()
        line = line.replace("{toxinidir}/", "").replace("{toxinidir}", ".")
        if "{" in line:
            continue  # other substitutions ({[testenv]deps}, {env:...}, {posargs})
        lines.append(line)
    r.req_lines(lines, "", src, r.tests, set(), test_context=True)
    extras = cfg.get("testenv", "extras", fallback=None) or ""
    for raw in re.split(r"[,\n]", extras):
        item = _COMMENT.sub("", raw).strip()
        m = _TOX_FACTOR_PREFIX.match(item)
        if m:
            item = m.group(2).strip()
        if item and "{" not in item:
            r.tox_extras.append(item)


def _read_tox_ini(r: _Reader) -> None:
    cfg = r.load_ini("tox.ini")
    if cfg is not None:
        _read_tox_config(r, cfg, "tox", "tox.ini")


# -- nox -----------------------------------------------------------------------------------


def _read_noxfile(r: _Reader) -> None:
    src = "noxfile.py"
    text = r.read(src)
    if text is None:
        return
    try:
        tree = ast.parse(text, filename=src)
    except (SyntaxError, ValueError) as exc:
        r.warn(f"{src}: cannot be parsed ({exc.__class__.__name__}), skipped")
        return
    module_env: dict[str, Any] = {}
    _run_statements(_flat_statements(tree.body), module_env)
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]

    def is_test_session(fn: ast.AST) -> bool:
        if re.search(r"test|unit|cover", fn.name, re.I):  # type: ignore[attr-defined]
            return True
        return any(isinstance(n, ast.Constant) and isinstance(n.value, str)
                   and re.match(r"^(pytest|py\.test|nosetests)\b", n.value) for n in ast.walk(fn))

    chosen = [fn for fn in functions if is_test_session(fn)] or functions
    for fn in chosen:
        env = dict(module_env)
        _run_statements(_flat_statements(fn.body), env)  # type: ignore[attr-defined]
        for node in ast.walk(fn):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "install"):
                continue
            tokens: list[str] = []
            for arg in node.args:
                inner = arg.value if isinstance(arg, ast.Starred) else arg
                try:
                    value = _eval(inner, env)
                except _Unresolvable:
                    r.warn(f"{src}: could not statically resolve install argument {_describe(arg)}")
                    continue
                values = value if isinstance(value, list) else [value]
                for v in values:
                    if isinstance(v, str):
                        tokens.append(v)
                    else:
                        r.warn(f"{src}: could not statically resolve install argument {_describe(arg)}")
            _nox_tokens(r, tokens, src)


def _nox_tokens(r: _Reader, tokens: list[str], src: str) -> None:
    i = 0
    while i < len(tokens):
        tok = tokens[i].strip()
        nxt = tokens[i + 1].strip() if i + 1 < len(tokens) else None
        if tok in ("-r", "--requirement", "-e", "--editable", "-c", "--constraint") and nxt is not None:
            i += 2
            if tok in ("-c", "--constraint"):
                continue
            r.req_lines([f"{tok} {nxt}"], "", src, r.tests, set(), test_context=True)
            continue
        i += 1
        r.req_lines([tok], "", src, r.tests, set(), test_context=True)


# -- Pipfile -------------------------------------------------------------------------------


def _pipfile_section(r: _Reader, section: Any, src: str) -> list[Raw]:
    out: list[Raw] = []
    if not isinstance(section, dict):
        return out
    for name, spec in section.items():
        extras: list[str] = []
        marker = ""
        if isinstance(spec, str):
            version = spec
        elif isinstance(spec, dict):
            if any(k in spec for k in ("git", "path", "file", "hg", "svn", "bzr")):
                if not (isinstance(spec.get("path"), str) and spec["path"].strip() == "."):
                    r.warn(f"{src}: skipped non-index package {name!r}")
                continue
            version = spec.get("version", "*") if isinstance(spec.get("version", "*"), str) else "*"
            if isinstance(spec.get("extras"), list):
                extras = [e for e in spec["extras"] if isinstance(e, str)]
            if isinstance(spec.get("markers"), str):
                marker = spec["markers"]
        else:
            continue
        version = version.strip()
        if version in ("*", ""):
            version = ""
        elif version[0].isdigit():
            version = "==" + version
        req = name + (f"[{','.join(extras)}]" if extras else "") + version
        out.append((_add_marker(req, marker) if marker else req, src))
    return out


def _read_pipfile(r: _Reader) -> None:
    data = r.load_toml("Pipfile")
    if not isinstance(data, dict):
        return
    r.pipfile_packages = _pipfile_section(r, data.get("packages"), "Pipfile")
    r.tests += _pipfile_section(r, data.get("dev-packages"), "Pipfile")


# -- conda environment files ---------------------------------------------------------------


def conda_to_pep508(item: str) -> str | None:
    """A conda match spec (`numpy=1.18`, `conda-forge::scipy >=1.4`) as a requirement, or None."""
    item = re.sub(r"^[\w.-]+::", "", item.strip())
    m = re.match(r"^([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*(.*)$", item)
    if not m:
        return None
    name, rest = m.group(1), m.group(2).strip()
    low = name.lower()
    if low in CONDA_DROP:
        return None
    name = CONDA_NAME_MAP.get(low, name)
    spec = ""
    if "|" in rest:
        rest = ""
    if rest.startswith("=") and not rest.startswith("=="):
        version = rest[1:].split("=")[0].strip()
        spec = _conda_prefix(version)
    elif re.match(r"^(>=|<=|==|!=|~=|>|<)", rest):
        spec = rest.split(" ")[0] if re.match(r"^==[^=]*=", rest) is None else rest.rsplit("=", 1)[0]
        spec = spec.replace(" ", "")
    elif rest:
        spec = _conda_prefix(rest.split()[0])
    return name + spec


def _conda_prefix(version: str) -> str:
    version = version.strip()
    if not version or version == "*":
        return ""
    if version.endswith(".*"):
        return "==" + version
    if version.endswith("*"):
        return "==" + version[:-1].rstrip(".") + ".*"
    return f"=={version}.*"


def _parse_env_yaml(r: _Reader, rel: str, text: str) -> list[Raw] | None:
    """Requirements of a conda environment file, or None when it has no `dependencies:`."""
    out: list[Raw] = []
    in_deps = False
    found = False
    pip_indent: int | None = None
    base_dir = posixpath.dirname(rel)
    for raw in text.splitlines():
        line = _COMMENT.sub("", raw.rstrip())
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
        if pip_indent is not None and indent > pip_indent:
            kind = _classify_line(item)
            if kind and kind[0] == "req":
                out.append((kind[1], rel))
            elif kind and kind[0] == "include":
                r.include(posixpath.join(base_dir, kind[1]), rel, out, set(), test_context=True)
            elif kind and kind[0] == "self":
                r.self_extras += kind[1]
            elif kind and kind[0] == "skip":
                r.warn(f"{rel}: skipped {kind[1]}")
            continue
        pip_indent = None
        if re.match(r"^pip\s*:\s*$", item):
            pip_indent = indent
            continue
        if item.endswith(":"):
            continue
        converted = conda_to_pep508(item)
        if converted:
            out.append((converted, rel))
    return out if found else None


def _read_environment_files(r: _Reader) -> None:
    files: list[str] = []
    for folder in ENV_YAML_DIRS:
        base = r.root / folder if folder else r.root
        try:
            if not base.is_dir():
                continue
            for path in sorted(base.iterdir()):
                if not path.is_file() or path.suffix not in (".yml", ".yaml"):
                    continue
                if folder == "" and path.stem not in ("environment",):
                    continue
                files.append(f"{folder}/{path.name}" if folder else path.name)
        except OSError:
            continue
    per_file: list[list[Raw]] = []
    for rel in files:
        text = r.read(rel, record=False)
        if text is None:
            continue
        reqs = _parse_env_yaml(r, rel, text)
        if reqs is None:
            continue
        r.read(rel)  # record it
        per_file.append(reqs)
    if len(per_file) > 1:
        # Several environments (often one per Python version) pin the same package differently:
        # keep a package's pin only when every file agrees on it.
        by_name: dict[str, set[str]] = {}
        for reqs in per_file:
            for text, _ in reqs:
                try:
                    by_name.setdefault(_canon(Requirement(text).name), set()).add(text)
                except InvalidRequirement:
                    pass
        for reqs in per_file:
            for text, src in reqs:
                try:
                    name = Requirement(text).name
                except InvalidRequirement:
                    r.tests.append((text, src))
                    continue
                r.tests.append((text if len(by_name[_canon(name)]) == 1 else name, src))
    elif per_file:
        r.tests += per_file[0]


# -- CI configuration ----------------------------------------------------------------------


_CI_KEY = re.compile(r"^(\s*)(?:-\s*)?(python-version|python_version|python-versions|python|py)\s*:\s*(.*)$")


def ci_python_versions(text: str) -> set[str]:
    """X.Y versions listed under python/python-version keys of a CI YAML file."""
    versions: set[str] = set()
    lines = [_COMMENT.sub("", ln).rstrip() for ln in text.splitlines()]

    def add(token: str) -> None:
        token = token.strip().strip("'\"").strip()
        m = re.match(r"^(\d)\.(\d{1,2})$", token)
        if m:
            versions.add(f"{m.group(1)}.{int(m.group(2))}")

    for i, line in enumerate(lines):
        m = _CI_KEY.match(line)
        if not m or "${{" in line:
            continue
        key_indent = len(m.group(1))
        value = m.group(3).strip()
        if value.startswith("["):
            for token in value.strip("[]").split(","):
                add(token)
        elif value:
            add(value)
        else:
            for follow in lines[i + 1:]:
                if not follow.strip():
                    continue
                indent = len(follow) - len(follow.lstrip())
                s = follow.strip()
                if not s.startswith("-") or indent < key_indent:
                    break
                add(s[1:])
    return versions


def _read_ci(r: _Reader) -> None:
    paths: list[str] = []
    workflows = r.root / ".github" / "workflows"
    try:
        if workflows.is_dir():
            paths += [f".github/workflows/{p.name}" for p in sorted(workflows.iterdir())
                      if p.is_file() and p.suffix in (".yml", ".yaml")]
    except OSError:
        pass
    if r.exists(".travis.yml"):
        paths.append(".travis.yml")
    for rel in paths:
        text = r.read(rel, record=False)  # CI files do not define the dependency set
        if text is not None:
            r.ci_pythons |= ci_python_versions(text)


# --------------------------------------------------------------------------------------------


def read_metadata(root: Path) -> ProjectMetadata:
    """Everything the tree at root declares about its Python environment, read statically."""
    root = Path(root)
    r = _Reader(root)
    if not root.is_dir():
        return ProjectMetadata(warnings=[f"{root}: not a directory"])
    steps = [_read_pyproject, _read_setup_cfg, _read_setup_py, _read_requirement_files, _read_tox_ini,
             _read_noxfile, _read_pipfile, _read_environment_files, _read_ci]
    for step in steps:
        try:
            step(r)
        except Exception as exc:  # a safety net: an odd file must never stop the reading
            r.warn(f"{step.__name__.removeprefix('_read_')}: unexpected {exc.__class__.__name__}: {exc}")
    return _finish(r)


def _finish(r: _Reader) -> ProjectMetadata:
    md = ProjectMetadata()
    md.has_setup_py = r.exists("setup.py")
    md.has_pyproject = r.exists("pyproject.toml")
    md.name = r.names[0].strip() if r.names else None
    project = _canon(md.name) if md.name else None

    for spec, source in r.requires_python:
        fixed = _fix_specifier(spec)
        if fixed is None:
            r.warn(f"{source}: invalid python requirement {spec!r}, skipped")
            continue
        if fixed:
            md.requires_python = fixed
            break

    pythons = set()
    for c in r.classifiers:
        m = _PY_CLASSIFIER.match(c.strip())
        if m:
            pythons.add(f"{m.group(1)}.{int(m.group(2))}")
    md.classifier_pythons = _sorted_pythons(pythons)
    md.tox_pythons = _sorted_pythons(r.tox_pythons)
    md.ci_pythons = _sorted_pythons(r.ci_pythons)

    md.dependencies = r.clean(r.deps, project, test_context=False)
    if not md.dependencies and r.pipfile_packages:
        md.dependencies = r.clean(r.pipfile_packages, project, test_context=False)
    md.extras = {name: r.clean(reqs, project, test_context=False) for name, reqs in r.extras.items() if name}
    md.test_requirements = r.clean(r.tests, project, test_context=True)
    md.build_requires = r.clean(r.build, None, test_context=False)
    md.build_backend = r.build_backend

    declared = {_canon(e): e for e in md.extras}
    tests = [e for e in md.extras if _canon(e) in TEST_EXTRA_NAMES]
    if not tests:
        tests = [e for e in md.extras if _canon(e) in DEV_EXTRA_NAMES]
    tests += [declared[_canon(e)] for e in r.tox_extras if _canon(e) in declared]
    tests += [declared.get(_canon(e), e) for e in r.self_extras]
    md.test_extras = _dedup(tests)

    scm = r.scm
    for req in md.build_requires:
        try:
            if _canon(Requirement(req).name) in SCM_PACKAGES:
                scm = True
        except InvalidRequirement:
            pass
    md.uses_setuptools_scm = scm
    md.pytest_configured = r.pytest_configured or r.exists("pytest.ini") or r.exists("conftest.py")
    md.runner_script = next((s for s in RUNNER_SCRIPTS if r.exists(s)), None)
    md.manifest_files = sorted(r.manifest)
    md.warnings = _dedup(r.warnings)
    return md
