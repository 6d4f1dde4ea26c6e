"""The no-model difficulty estimate: minutes from the size of the gold patch, bucketed on SPICE's time scale.

The weights are chosen on principle, never fitted to any labels (SWE-bench Verified's are a test set): an
engineer new to the code needs about 10 minutes to find where to change it, a minute per changed line
(a modified line counts as removed plus added), 10 minutes to understand each further file, 2 minutes per
further place in a file, and 2 minutes per further behaviour the tests require (FAIL_TO_PASS beyond the first).
"""

from __future__ import annotations

from repoforge.schema import DifficultyEstimate

FIND_MINUTES = 10.0
PER_LINE, PER_FILE, PER_HUNK, PER_TEST = 1.0, 10.0, 2.0, 2.0
BUCKETS = (15.0, 60.0, 240.0)  # SPICE: under 15 min -> 0, up to 1 h -> 1, up to 4 h -> 2, more -> 3


def estimate_difficulty(patch: str, fail_to_pass: list[str]) -> DifficultyEstimate:
    lines = files = hunks = 0
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            files += 1
        elif line.startswith("@@"):
            hunks += 1
        elif line.startswith(("+++", "---")):
            continue
        elif line[:1] in "+-" and line[1:].strip():
            lines += 1
    tests = len(fail_to_pass)
    minutes = (
        FIND_MINUTES
        + PER_LINE * lines
        + PER_FILE * max(files - 1, 0)
        + PER_HUNK * max(hunks - files, 0)
        + PER_TEST * max(tests - 1, 0)
    )
    value = sum(minutes >= bound for bound in BUCKETS)
    return DifficultyEstimate(value=value, minutes=minutes, lines=lines, files=files, hunks=hunks, tests=tests)
