"""Names made from what users name (folders, repositories, instance ids) that other systems accept."""

from __future__ import annotations

import hashlib
import re

# GitHub's repository and owner names; Docker's tags allow the same characters, lowercase here.
REPO_REFUSED = r"[^A-Za-z0-9_.-]"
TAG_REFUSED = r"[^a-z0-9_.-]"


def safe_name(name: str, refused: str = REPO_REFUSED, max_length: int = 100, lower: bool = False) -> str:
    """`name` with every refused character made `-`, stable and unique.

    A name that is already valid stays as it is (SWE-bench's ids keep their form). Where the valid
    form differs, a short hash of the original follows it, so `a+b`, `a b` and `A-B` never meet.
    """
    safe = re.sub(refused, "-", name.lower() if lower else name).lstrip(".-")
    if safe == name and len(safe) <= max_length:
        return safe
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return "-".join(filter(None, [safe[: max_length - len(digest) - 1], digest]))


def docker_tag(name: str) -> str:
    """An image tag for `name`: lowercase [a-z0-9_.-], at most 128 characters, not led by `.` or `-`."""
    return safe_name(name, TAG_REFUSED, max_length=128, lower=True)
