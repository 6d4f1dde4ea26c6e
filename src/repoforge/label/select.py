"""`repoforge filter`: the rows whose labels are within bounds (RepoForge's SFT data: all three at most 1)."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from repoforge.schema import TaskInstance


class Bounds(BaseModel):
    """Highest label value kept, per label (None: any); controversial labels dropped, as SPICE drops them."""

    clarity: int | None = None
    test_validity: int | None = None
    difficulty: int | None = None
    difficulty_estimate: int | None = None
    keep_controversial: bool = False


def rejection(row: TaskInstance, bounds: Bounds) -> str | None:
    """Why the row is not kept, or None. A label asked for but missing (never labeled, or no vote gave a score)
    cannot be shown within bounds, so it is not kept."""
    labels = row.labels
    for name in ("clarity", "test_validity", "difficulty"):
        limit = getattr(bounds, name)
        label = getattr(labels, name) if labels else None
        if limit is None:
            continue
        if label is None or label.value is None:
            return f"{name}: no label"
        if label.value > limit:
            return f"{name} above {limit}"
        if label.controversial and not bounds.keep_controversial:
            return f"{name}: controversial"
    estimate = labels.difficulty_estimate if labels else None
    if bounds.difficulty_estimate is not None and (estimate is None or estimate.value > bounds.difficulty_estimate):
        return f"difficulty_estimate above {bounds.difficulty_estimate}" if estimate else "difficulty_estimate: none"
    return None


def select(rows: list[TaskInstance], bounds: Bounds) -> tuple[list[TaskInstance], Counter]:
    """(kept rows, in order; how many were dropped for each reason)."""
    kept, dropped = [], Counter()
    for row in rows:
        if reason := rejection(row, bounds):
            dropped[reason] += 1
        else:
            kept.append(row)
    return kept, dropped
