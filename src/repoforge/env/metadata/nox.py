"""noxfile.py, read with ast: the session.install(...) arguments of its test sessions."""

from __future__ import annotations

import ast
import re
from typing import Any

from .model import Reader
from .requirements import req_lines
from .static_eval import Unresolvable, describe, evaluate, flat_statements, run_statements

SRC = "noxfile.py"
Function = ast.FunctionDef | ast.AsyncFunctionDef


def read_noxfile(r: Reader) -> None:
    text = r.read(SRC)
    if text is None:
        return
    try:
        tree = ast.parse(text, filename=SRC)
    except (SyntaxError, ValueError) as exc:
        r.warn(f"{SRC}: cannot be parsed ({exc.__class__.__name__}), skipped")
        return
    module_env: dict[str, Any] = {}
    run_statements(flat_statements(tree.body), module_env)
    functions = [n for n in ast.walk(tree) if isinstance(n, Function)]
    for fn in [fn for fn in functions if _is_test_session(fn)] or functions:
        env = dict(module_env)
        run_statements(flat_statements(fn.body), env)
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "install":
                _install_tokens(r, _install_arguments(r, node, env))


def _is_test_session(fn: Function) -> bool:
    if re.search(r"test|unit|cover", fn.name, re.I):
        return True
    return any(
        isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and re.match(r"^(pytest|py\.test|nosetests)\b", n.value)
        for n in ast.walk(fn)
    )


def _install_arguments(r: Reader, call: ast.Call, env: dict[str, Any]) -> list[str]:
    """The string arguments of session.install(...), *lists flattened."""
    tokens: list[str] = []
    for arg in call.args:
        try:
            value = evaluate(arg.value if isinstance(arg, ast.Starred) else arg, env)
        except Unresolvable:
            r.warn(f"{SRC}: could not statically resolve install argument {describe(arg)}")
            continue
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str):
                tokens.append(v)
            else:
                r.warn(f"{SRC}: could not statically resolve install argument {describe(arg)}")
    return tokens


def _install_tokens(r: Reader, tokens: list[str]) -> None:
    """pip install arguments as test requirements; -r/-e take the next token, -c is ignored."""
    i = 0
    while i < len(tokens):
        tok = tokens[i].strip()
        nxt = tokens[i + 1].strip() if i + 1 < len(tokens) else None
        if tok in ("-r", "--requirement", "-e", "--editable", "-c", "--constraint") and nxt is not None:
            i += 2
            if tok not in ("-c", "--constraint"):
                req_lines(r, [f"{tok} {nxt}"], "", SRC, r.tests, set(), test_context=True)
            continue
        i += 1
        req_lines(r, [tok], "", SRC, r.tests, set(), test_context=True)
