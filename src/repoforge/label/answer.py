"""Reading a 0-3 score out of a model's answer: the JSON asked for, or failing that, what can be read out of text."""

from __future__ import annotations

import json
import re

SCORES = range(4)
# `"score": 2`, `score = 2`, `Score: 2/3`, `**Score:** 2`: a score named as such, with the number right after it.
NAMED_SCORE = re.compile(r"score\W{0,6}(-?\d+)", re.IGNORECASE)


def parse_answer(text: str) -> tuple[int, str] | None:
    """(score, explanation) from the first JSON object in `text` whose score is 0-3; None if there is none."""
    decoder = json.JSONDecoder()
    for start in (match.start() for match in re.finditer(r"\{", text)):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and (score := _score(value.get("score"))) is not None:
            explanation = value.get("explanation", "")
            return score, explanation if isinstance(explanation, str) else json.dumps(explanation)
    return None


def extract_answer(text: str) -> tuple[int, str] | None:
    """The last resort for an answer that is not the JSON asked for: a score named as such, in range."""
    for match in NAMED_SCORE.finditer(text):
        if (score := _score(match.group(1))) is not None:
            return score, text.strip()
    return None


def _score(value) -> int | None:
    """0-3 from an int, a whole float or a numeral string; anything else, or out of range, is no score."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value in SCORES else None
