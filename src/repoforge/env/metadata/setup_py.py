"""setup.py, read with ast: the keywords of its setup(...) call and the requirements files it
mentions."""

from __future__ import annotations

import ast
import posixpath
import re
from typing import Any

from .model import Reader
from .requirements import REQ_FILE_OTHER_TOKENS, REQ_FILE_TEST_TOKENS, add_marker, parse_req_file, path_tokens
from .static_eval import Bad, Unresolvable, describe, eval_or_bad, evaluate, flat_statements, run_statements

SRC = "setup.py"
_REQ_FILE_MENTION = re.compile(r"""['"]([\w./-]*\.(?:txt|in))['"]""")


def read_setup_py(r: Reader) -> None:
    text = r.read(SRC)
    if text is None:
        return
    if re.search(r"use_scm_version|setuptools[_-]scm", text):
        r.scm = True
    _read_mentioned_requirement_files(r, text)
    try:
        tree = ast.parse(text, filename=SRC)
    except (SyntaxError, ValueError) as exc:
        r.warn(f"{SRC}: cannot be parsed ({exc.__class__.__name__}: {exc}), skipped")
        return
    call, functions = _find_setup_call(tree)
    if call is None:
        r.warn(f"{SRC}: no setup(...) call with keywords found")
        return
    env: dict[str, Any] = {}
    run_statements(flat_statements(tree.body), env)
    for fn in functions:
        run_statements(flat_statements(fn.body), env)
    _read_setup_keywords(r, _setup_keywords(r, call, env))


def _find_setup_call(tree: ast.Module) -> tuple[ast.Call | None, list[ast.FunctionDef | ast.AsyncFunctionDef]]:
    """The setup(...) call with the most keywords, and the functions enclosing it, outermost first."""
    parents: dict[ast.AST, ast.AST] = {}
    calls: list[ast.Call] = []
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
        if isinstance(node, ast.Call) and node.keywords:
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "setup") or (isinstance(f, ast.Attribute) and f.attr == "setup"):
                calls.append(node)
    if not calls:
        return None, []
    call = max(calls, key=lambda c: len(c.keywords))
    chain: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    node: ast.AST | None = call
    while node is not None:
        node = parents.get(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            chain.insert(0, node)
    return call, chain


def _setup_keywords(r: Reader, call: ast.Call, env: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of call, unresolvable values as Bad."""
    kwargs: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is not None:
            kwargs[kw.arg] = eval_or_bad(kw.value, env)
            continue
        try:
            value = evaluate(kw.value, env)
        except Unresolvable:
            r.warn(f"{SRC}: could not statically resolve **{describe(kw.value)}")
            continue
        if isinstance(value, dict):
            kwargs.update({k: v for k, v in value.items() if isinstance(k, str)})
    return kwargs


def _read_setup_keywords(r: Reader, kwargs: dict[str, Any]) -> None:
    name = kwargs.get("name")
    if isinstance(name, str):
        r.names.append(name)
    elif "name" in kwargs:
        r.warn(f"{SRC}: could not statically resolve name")
    if "install_requires" in kwargs:
        r.deps += [(x, SRC) for x in _str_list(r, kwargs["install_requires"], "install_requires")]
    if "tests_require" in kwargs:
        r.tests += [(x, SRC) for x in _str_list(r, kwargs["tests_require"], "tests_require")]
    if "setup_requires" in kwargs:
        r.build += [(x, SRC) for x in _str_list(r, kwargs["setup_requires"], "setup_requires")]
    if "extras_require" in kwargs:
        _add_extras(r, kwargs["extras_require"])
    if "classifiers" in kwargs:
        r.classifiers += _str_list(r, kwargs["classifiers"], "classifiers")
    py = kwargs.get("python_requires")
    if isinstance(py, str):
        r.requires_python.append((py, SRC))
    elif "python_requires" in kwargs:
        r.warn(f"{SRC}: could not statically resolve python_requires")
    scm = kwargs.get("use_scm_version")
    if isinstance(scm, Bad) or (scm is not None and scm is not False):
        r.scm = True


def _str_list(r: Reader, value: Any, what: str) -> list[str]:
    """value as a list of strings (a string is split into lines); bad items warned about."""
    if isinstance(value, Bad):
        r.warn(f"{SRC}: could not statically resolve {what}")
        return []
    if isinstance(value, str):
        return [ln.strip() for ln in value.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            else:
                r.warn(f"{SRC}: could not statically resolve an item of {what}: {item!r}")
        return out
    r.warn(f"{SRC}: {what} is not a list of strings, skipped")
    return []


def _add_extras(r: Reader, value: Any) -> None:
    if not isinstance(value, dict):
        r.warn(f"{SRC}: could not statically resolve extras_require")
        return
    for key, reqs in value.items():
        if not isinstance(key, str):
            continue
        name, _, marker = key.partition(":")
        raws = [(add_marker(x, marker), SRC) for x in _str_list(r, reqs, f"extras_require[{key!r}]")]
        name = name.strip()
        if not name:  # ":python_version<'3'" means conditional runtime dependencies
            r.deps += raws
        else:
            r.extras.setdefault(name, []).extend(raws)


def _read_mentioned_requirement_files(r: Reader, text: str) -> None:
    """Requirement files setup.py mentions (e.g. open('requirements.txt')) and that exist."""
    seen: set[str] = set()
    for m in _REQ_FILE_MENTION.finditer(text):
        mention = posixpath.normpath(m.group(1))
        base = posixpath.basename(mention).lower()
        candidates = [mention] if "/" in mention else [mention, f"requirements/{mention}"]
        for rel in candidates:
            rel = posixpath.normpath(rel)
            if rel in seen or not r.exists(rel):
                continue
            if not ("req" in base or "dep" in base or rel.startswith("requirements/")):
                continue
            seen.add(rel)
            tokens = path_tokens(rel)
            if tokens & REQ_FILE_TEST_TOKENS:
                r.tests += parse_req_file(r, rel, test_context=True)
            elif tokens & REQ_FILE_OTHER_TOKENS:
                continue  # docs, lint, ... requirements
            else:
                r.deps += parse_req_file(r, rel, test_context=False)
            break
