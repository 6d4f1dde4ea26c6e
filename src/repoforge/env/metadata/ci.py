"""CI configuration (GitHub Actions workflows, .travis.yml): the Python versions tested."""

from __future__ import annotations

import re

from .model import Reader
from .requirements import COMMENT

_CI_KEY = re.compile(r"^(\s*)(?:-\s*)?(python-version|python_version|python-versions|python|py)\s*:\s*(.*)$")


def ci_python_versions(text: str) -> set[str]:
    """X.Y versions listed under python/python-version keys of a CI YAML file."""
    versions: set[str] = set()
    lines = [COMMENT.sub("", ln).rstrip() for ln in text.splitlines()]

    def add(token: str) -> None:
        m = re.match(r"^(\d)\.(\d{1,2})$", token.strip().strip("'\"").strip())
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
        else:  # a block list under the key
            for follow in lines[i + 1:]:
                if not follow.strip():
                    continue
                s = follow.strip()
                if not s.startswith("-") or len(follow) - len(follow.lstrip()) < key_indent:
                    break
                add(s[1:])
    return versions


def read_ci(r: Reader) -> None:
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
