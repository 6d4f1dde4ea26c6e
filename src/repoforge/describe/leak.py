"""Whether a statement gives away the fix: a line the gold patch adds, found in it with whitespace set aside."""

from __future__ import annotations

import re

# Shorter lines (`}`, `else:`, `return None`, `import os`), whitespace aside, say nothing of the fix on their own.
MIN_CHARS = 12
WHITESPACE = re.compile(r"\s+")


def squeeze(text: str) -> str:
    return WHITESPACE.sub("", text)


def fix_lines(patch: str, test_patch: str = "") -> list[str]:
    """The lines only the fix knows: added by the patch, not trivial, and neither a line it removes (code moved or
    re-indented, which the base commit has) nor a line of the test patch (a statement may quote how to reproduce)."""
    known = {squeeze(line[1:]) for line in patch.splitlines() if line.startswith("-") and not line.startswith("---")}
    known |= {squeeze(line[1:]) for line in test_patch.splitlines()}
    lines: list[str] = []
    for line in patch.splitlines():
        text = line[1:].strip()
        if line.startswith("+") and not line.startswith("+++") and len(squeeze(text)) >= MIN_CHARS:
            if squeeze(text) not in known and text not in lines:
                lines.append(text)
    return lines


def leaked_line(statement: str, lines: list[str]) -> str | None:
    """The first of `lines` the statement contains, whitespace aside (a re-indented or re-spaced copy counts)."""
    squeezed = squeeze(statement)
    return next((line for line in lines if squeeze(line) in squeezed), None)
