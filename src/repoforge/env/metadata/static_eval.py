"""Static evaluation of Python source (setup.py, noxfile.py): literal values, never execution."""

from __future__ import annotations

import ast
from typing import Any


class Unresolvable(Exception):
    pass


class Bad:
    """An element that could not be resolved statically."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return f"<unresolvable {self.what}>"


def describe(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # pragma: no cover - unparse of odd trees
        text = type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def eval_or_bad(node: ast.AST, env: dict[str, Any]) -> Any:
    """The literal value of node, or a Bad standing for it."""
    try:
        return evaluate(node, env)
    except Unresolvable:
        return Bad(describe(node))


def evaluate(node: ast.AST, env: dict[str, Any]) -> Any:
    """The literal value of node, resolving names through env; raises Unresolvable."""
    if isinstance(node, ast.Constant):
        return node.value
    handler = _HANDLERS.get(type(node))
    if handler is None:
        raise Unresolvable(describe(node))
    return handler(node, env)


def _sequence(node: ast.List | ast.Tuple | ast.Set, env: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for elt in node.elts:
        if not isinstance(elt, ast.Starred):
            out.append(eval_or_bad(elt, env))
            continue
        try:
            val = evaluate(elt.value, env)
        except Unresolvable:
            val = None
        if isinstance(val, (list, tuple)):
            out.extend(val)
        else:
            out.append(Bad(describe(elt)))
    return out


def _dict(node: ast.Dict, env: dict[str, Any]) -> dict[Any, Any]:
    d: dict[Any, Any] = {}
    for k, v in zip(node.keys, node.values, strict=True):
        if k is None:  # {**other}
            try:
                val = evaluate(v, env)
            except Unresolvable:
                continue
            if isinstance(val, dict):
                d.update(val)
            continue
        key = evaluate(k, env)
        if not isinstance(key, (str, int, bool, type(None))):
            raise Unresolvable(describe(k))
        d[key] = eval_or_bad(v, env)
    return d


def _name(node: ast.Name, env: dict[str, Any]) -> Any:
    val = env.get(node.id, Bad(node.id))
    if isinstance(val, Bad):
        raise Unresolvable(node.id)
    return val


def _binop(node: ast.BinOp, env: dict[str, Any]) -> Any:
    left = evaluate(node.left, env)
    right = evaluate(node.right, env)
    if isinstance(node.op, ast.Add) and (
        isinstance(left, list) and isinstance(right, list) or isinstance(left, str) and isinstance(right, str)
    ):
        return left + right
    if isinstance(node.op, ast.Mod) and isinstance(left, str):
        try:
            return left % (tuple(right) if isinstance(right, list) else right)
        except Exception as exc:
            raise Unresolvable(describe(node)) from exc
    raise Unresolvable(describe(node))


def _fstring(node: ast.JoinedStr, env: dict[str, Any]) -> str:
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
            continue
        if not (isinstance(value, ast.FormattedValue) and value.format_spec is None):
            raise Unresolvable(describe(node))
        val = evaluate(value.value, env)
        if not isinstance(val, (str, int, float)):
            raise Unresolvable(describe(node))
        parts.append(str(val))
    return "".join(parts)


def _subscript(node: ast.Subscript, env: dict[str, Any]) -> Any:
    container = evaluate(node.value, env)
    key = evaluate(node.slice, env)
    try:
        val = container[key]
    except Exception as exc:
        raise Unresolvable(describe(node)) from exc
    if isinstance(val, Bad):
        raise Unresolvable(describe(node))
    return val


def _call(node: ast.Call, env: dict[str, Any]) -> Any:
    func = node.func
    if isinstance(func, ast.Name) and func.id == "dict":
        return _dict_call(node, env)
    if isinstance(func, ast.Name) and func.id in ("list", "tuple", "sorted", "set"):
        return _sequence_call(node, func.id, env)
    if isinstance(func, ast.Attribute):
        return _method_call(node, func, env)
    raise Unresolvable(describe(node))


def _dict_call(node: ast.Call, env: dict[str, Any]) -> dict[Any, Any]:
    d = {}
    for value in node.args:
        _update_from(d, node, value, env)
    for kw in node.keywords:
        if kw.arg is None:
            _update_from(d, node, kw.value, env)
        else:
            d[kw.arg] = eval_or_bad(kw.value, env)
    return d


def _update_from(d: dict[Any, Any], call: ast.Call, value: ast.expr, env: dict[str, Any]) -> None:
    val = evaluate(value, env)
    if not isinstance(val, dict):
        raise Unresolvable(describe(call))
    d.update(val)


def _sequence_call(node: ast.Call, name: str, env: dict[str, Any]) -> list[Any]:
    """list(...), tuple(...), set(...) or sorted(...) of a literal list or dict (a list either way)."""
    if len(node.args) == 1 and not node.keywords:
        val = evaluate(node.args[0], env)
        if isinstance(val, dict):
            val = list(val)
        if isinstance(val, list):
            if name != "sorted":
                return list(val)
            try:
                return sorted(val)
            except TypeError as exc:
                raise Unresolvable(describe(node)) from exc
    if name in ("list", "tuple") and not node.args:
        return []
    raise Unresolvable(describe(node))


def _method_call(node: ast.Call, func: ast.Attribute, env: dict[str, Any]) -> Any:
    """ "...".format/split/splitlines/strip(...) and {...}.keys()/values()."""
    if func.attr in ("format", "split", "splitlines", "strip") and isinstance(func.value, (ast.Constant, ast.Name)):
        base = evaluate(func.value, env)
        if isinstance(base, str):
            args = [evaluate(a, env) for a in node.args]
            kwargs = {kw.arg: evaluate(kw.value, env) for kw in node.keywords if kw.arg}
            try:
                return getattr(base, func.attr)(*args, **kwargs)
            except Exception as exc:
                raise Unresolvable(describe(node)) from exc
    if func.attr in ("keys", "values") and not node.args:
        base = evaluate(func.value, env)
        if isinstance(base, dict):
            return list(base.keys() if func.attr == "keys" else base.values())
    raise Unresolvable(describe(node))


_HANDLERS: dict[type, Any] = {
    ast.List: _sequence,
    ast.Tuple: _sequence,
    ast.Set: _sequence,
    ast.Dict: _dict,
    ast.Name: _name,
    ast.BinOp: _binop,
    ast.JoinedStr: _fstring,
    ast.Subscript: _subscript,
    ast.Call: _call,
}


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def flat_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that always run: the body, try/with bodies and `if __name__ == "__main__"`."""
    out: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, (ast.Try, ast.With, ast.AsyncWith)) or (
            isinstance(stmt, ast.If) and _is_main_guard(stmt.test)
        ):
            out += flat_statements(stmt.body)
        else:
            out.append(stmt)
    return out


def _bind(env: dict[str, Any], target: ast.expr, value_node: ast.expr | None, value: Any) -> None:
    if isinstance(target, ast.Name):
        env[target.id] = value
    elif isinstance(target, (ast.Tuple, ast.List)):
        if isinstance(value_node, (ast.Tuple, ast.List)) and len(value_node.elts) == len(target.elts):
            for t, v in zip(target.elts, value_node.elts, strict=True):
                _bind(env, t, v, eval_or_bad(v, env))
        else:
            for t in target.elts:
                if isinstance(t, ast.Name):
                    env[t.id] = Bad(t.id)
    elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
        container = env.get(target.value.id)
        if isinstance(container, dict):
            try:
                container[evaluate(target.slice, env)] = value
            except (Unresolvable, TypeError):
                pass


def run_statements(stmts: list[ast.stmt], env: dict[str, Any]) -> None:
    """Record literal assignments (and list/dict mutations) of stmts into env."""
    for stmt in stmts:
        if isinstance(stmt, ast.Assign):
            value = eval_or_bad(stmt.value, env)
            for target in stmt.targets:
                _bind(env, target, stmt.value, value)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            _bind(env, stmt.target, stmt.value, eval_or_bad(stmt.value, env))
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            _aug_assign(stmt, stmt.target.id, env)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            _mutating_call(stmt.value, env)


def _aug_assign(stmt: ast.AugAssign, name: str, env: dict[str, Any]) -> None:
    current = env.get(name)
    value = eval_or_bad(stmt.value, env)
    if isinstance(stmt.op, ast.Add) and (
        isinstance(current, list) and isinstance(value, list) or isinstance(current, str) and isinstance(value, str)
    ):
        env[name] = current + value
    elif name in env:
        env[name] = Bad(name)


def _mutating_call(call: ast.Call, env: dict[str, Any]) -> None:
    """name.append/extend/insert(...) on a known list, name.update(...) on a known dict."""
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        return
    target = env.get(func.value.id)
    try:
        args = [evaluate(a, env) for a in call.args]
    except Unresolvable:
        args = None
    if isinstance(target, list) and func.attr in ("append", "extend", "insert"):
        if args is None:
            target.append(Bad(describe(call)))
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
                target[kw.arg] = eval_or_bad(kw.value, env)
