"""Whether a model's answer can be an instance's problem statement: an issue, not an empty answer, a diff or the fix."""

from __future__ import annotations

import re

from repoforge.describe.leak import leaked_line

MIN_WORDS = 8  # fewer cannot say a symptom, how to reproduce it and what was expected
DIFF = re.compile(r"^(?:diff --git |@@ -\d)", re.MULTILINE)
FENCED = re.compile(r"\A```[\w-]*\n(.*)\n```\Z", re.DOTALL)  # a whole answer wrapped in one code block


def read_statement(text: str) -> str:
    """The answer as a statement: stripped, and taken out of a code block wrapping all of it."""
    text = text.strip()
    if fenced := FENCED.match(text):
        text = fenced.group(1).strip()
    return text


def rejection(statement: str, fix: list[str]) -> str | None:
    """Why `statement` is not taken (said to the model when it is asked again), or None when it is."""
    if not statement:
        return "the answer was empty"
    if (words := len(statement.split())) < MIN_WORDS:
        return f"it is too short to be an issue (words: {words})"
    if DIFF.search(statement):
        return "it shows a diff, where an issue reports a problem"
    if line := leaked_line(statement, fix):
        return f"it gives away the fix: it contains the fix's line `{line}`"
    return None
