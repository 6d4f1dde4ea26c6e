"""SPICE's consensus over a label's votes."""

from __future__ import annotations

import statistics
from collections import Counter

LOW, HIGH = {0, 1}, {2, 3}


def consensus(scores: list[int]) -> tuple[int | None, bool]:
    """(value, controversial): the score given at least twice (the most often, if several), else the median.

    With an even number of votes and no repeated score the median is the higher middle vote: filters keep rows
    whose labels are low, so a tie is read the cautious way. Controversial: votes on both sides of 1/2.
    """
    if not scores:
        return None, False
    controversial = bool(LOW & set(scores)) and bool(HIGH & set(scores))
    (top, count), *rest = Counter(scores).most_common()
    tied = any(other == count for _, other in rest)  # two scores given equally often: the median settles it
    if count >= 2 and not tied:
        return top, controversial
    return statistics.median_high(scores), controversial
