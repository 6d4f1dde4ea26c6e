"""setup.cfg: [metadata], [options], [options.extras_require], pytest and tox sections."""

from __future__ import annotations

import configparser

from packaging.requirements import InvalidRequirement, Requirement

from .model import Reader
from .requirements import COMMENT, add_marker, parse_req_file
from .tox import read_tox_config

SRC = "setup.cfg"


def _cfg_list(r: Reader, value: str | None, what: str, req_like: bool) -> list[str]:
    """A setup.cfg list value: dangling lines, or ';'/','-separated on one line; file: followed."""
    if value is None:
        return []
    value = value.strip()
    if value.startswith("file:"):
        if not req_like:
            r.warn(f"{SRC}: {what} uses a file: directive, skipped")
            return []
        return [x for f in value[5:].replace(",", " ").split() for x, _ in parse_req_file(r, f, test_context=False)]
    if value.startswith("attr:"):
        r.warn(f"{SRC}: {what} uses an attr: directive, skipped")
        return []
    if "\n" in value:
        items = [ln.strip() for ln in value.splitlines()]
    elif req_like:
        items = _one_line_requirements(value)
    else:
        items = [p.strip() for p in value.split(",")]
    return [x for x in (COMMENT.sub("", i).strip() for i in items) if x]


def _one_line_requirements(value: str) -> list[str]:
    """value as one requirement if it is one, else split on ';' or ','."""
    try:
        Requirement(value)
        return [value]
    except InvalidRequirement:
        pass
    for sep in (";", ","):
        parts = [p.strip() for p in value.split(sep) if p.strip()]
        if len(parts) > 1:
            return parts
    return [value]


def _interpolated(r: Reader, cfg: configparser.ConfigParser, section: str, option: str, value: str) -> str:
    """value with its `%(other)s` references to the section's options filled in, as setuptools reads it
    (`all = %(io)s %(viz)s`)."""
    if "%(" not in value:
        return value
    try:
        return configparser.BasicInterpolation().before_get(
            cfg, section, option, value, dict(cfg.items(section, raw=True))
        )
    except configparser.Error as exc:
        r.warn(f"{SRC}: [{section}] {option}: cannot fill in references ({exc.__class__.__name__})")
        return value


def read_setup_cfg(r: Reader) -> None:
    cfg = r.load_ini(SRC)
    if cfg is None:
        return
    if cfg.has_section("metadata"):
        name = cfg.get("metadata", "name", fallback=None)
        if name and not name.strip().startswith(("attr:", "file:")):
            r.names.append(name.strip())
        r.classifiers += _cfg_list(r, cfg.get("metadata", "classifiers", fallback=None), "classifiers", False)
    if cfg.has_section("options"):
        opts = cfg["options"]
        r.deps += [(x, SRC) for x in _cfg_list(r, opts.get("install_requires"), "install_requires", True)]
        r.tests += [(x, SRC) for x in _cfg_list(r, opts.get("tests_require"), "tests_require", True)]
        r.build += [(x, SRC) for x in _cfg_list(r, opts.get("setup_requires"), "setup_requires", True)]
        py = opts.get("python_requires")
        if py and py.strip():
            r.requires_python.append((py.strip(), SRC))
        if opts.get("use_scm_version", "").strip().lower() in ("true", "1", "yes"):
            r.scm = True
    if cfg.has_section("options.extras_require"):
        for extra, value in cfg["options.extras_require"].items():
            name, _, marker = extra.partition(":")
            value = _interpolated(r, cfg, "options.extras_require", extra, value)
            items = _cfg_list(r, value, f"extras_require {extra}", True)
            r.extras.setdefault(name.strip(), []).extend((add_marker(x, marker), SRC) for x in items)
    if cfg.has_section("tool:pytest") or cfg.has_section("pytest"):
        r.pytest_configured = True
    if cfg.has_section("tool:pytest"):
        r.pytest_options[SRC] = dict(cfg["tool:pytest"])
    if cfg.has_section("tox:tox"):
        read_tox_config(r, cfg, "tox:tox", SRC)
