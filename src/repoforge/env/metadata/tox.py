"""tox configuration (tox.ini, setup.cfg [tox:tox], pyproject legacy_tox_ini): envlist pythons,
test dependencies and extras."""

from __future__ import annotations

import configparser
import re
from itertools import product

from .model import Reader
from .requirements import COMMENT, MIN_VERSION_TOKENS, join_continuations, req_lines

_TOX_PY_FACTOR = re.compile(r"^py(?:thon)?(\d)\.?(\d{1,2})$")
_TOX_FACTOR_PREFIX = re.compile(r"^([\w{}.!,\-]+):\s+(.*)$")


def _split_top_level(text: str) -> list[str]:
    """Items of text separated by commas or newlines outside braces."""
    out, buf, depth = [], "", 0
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        if ch in ",\n" and depth == 0:
            out.append(buf)
            buf = ""
        else:
            buf += ch
    out.append(buf)
    return [x.strip() for x in out if x.strip()]


def _expand_braces(text: str, limit: int = 512) -> list[str]:
    """`py{37,38}-x` as ["py37-x", "py38-x"], at most limit items per brace level."""
    m = re.search(r"\{([^{}]*)\}", text)
    if not m:
        return [text]
    head, tail = text[: m.start()], text[m.end() :]
    options = [o.strip() for o in m.group(1).split(",")]
    out: list[str] = []
    for option, rest in product(options, _expand_braces(tail, limit)):
        out.append(head + option + rest)
        if len(out) >= limit:
            break
    return out


def tox_env_pythons(envlist: str) -> set[str]:
    """X.Y versions named by the py factors of a tox envlist."""
    versions: set[str] = set()
    for item in _split_top_level(envlist):
        for env in _expand_braces(item):
            for factor in env.split("-"):
                m = _TOX_PY_FACTOR.match(factor.strip())
                if m:
                    versions.add(f"{m.group(1)}.{int(m.group(2))}")
    return versions


def _without_factors(line: str) -> str | None:
    """line without a leading `py37,py38: ` factor condition; None when a factor names the oldest-versions
    variant (`min: -r requirements-min.txt`): that is not the test environment."""
    m = _TOX_FACTOR_PREFIX.match(line)
    if not m:
        return line
    factors = set(re.split(r"[^a-z]+", m.group(1).lower()))
    return None if factors & MIN_VERSION_TOKENS else m.group(2).strip()


def read_tox_config(r: Reader, cfg: configparser.ConfigParser, section: str, src: str) -> None:
    if cfg.has_section(section):
        envlist = cfg.get(section, "envlist", fallback=None) or cfg.get(section, "env_list", fallback=None)
        if envlist:
            r.tox_pythons |= tox_env_pythons(envlist)
    if cfg.has_section("pytest"):
        r.pytest_configured = True
    if not cfg.has_section("testenv"):
        return
    lines = []
    for raw in join_continuations(cfg.get("testenv", "deps", fallback=None) or ""):
        line = COMMENT.sub("", raw).strip()
        if not line:
            continue
        line = (_without_factors(line) or "").replace("{toxinidir}/", "").replace("{toxinidir}", ".")
        if line and "{" not in line:  # other substitutions ({[testenv]deps}, {env:...}, {posargs}) are skipped
            lines.append(line)
    req_lines(r, lines, "", src, r.tests, set(), test_context=True)
    for raw in re.split(r"[,\n]", cfg.get("testenv", "extras", fallback=None) or ""):
        item = _without_factors(COMMENT.sub("", raw).strip())
        if item and "{" not in item:
            r.tox_extras.append(item)


def read_tox_ini(r: Reader) -> None:
    cfg = r.load_ini("tox.ini")
    if cfg is not None:
        read_tox_config(r, cfg, "tox", "tox.ini")
        if cfg.has_section("pytest"):
            r.pytest_options["tox.ini"] = dict(cfg["pytest"])
