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


# Names that become folders and file names of a run's logs and report (SWE-bench's layout):
#   <log_dir>/<run_id>/<model folder>/<instance_id>/...   <report_dir>/<model folder>.<run_id>.json
# A run id has no dot, so the report's name says where the model's part ends.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# SWE-bench's model folder is the name with `/` made `__`. It is kept for names whose segments hold letters, digits,
# `.+-` and single inner underscores: there a `__` can only have been a `/`, so no two such names share a folder.
_SEGMENT = r"[A-Za-z0-9](?:[A-Za-z0-9.+-]|_(?=[A-Za-z0-9.+-]))*"
_PLAIN_MODEL = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
MAX_MODEL_PLAIN = 100
MAX_FOLDER_BYTES = 200


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id):
        raise ValueError(
            f"{run_id!r} is not a run id: 1-64 letters, digits, '-' and '_', led by a letter or digit "
            "(no dot: the run report is <model>.<run_id>.json)"
        )
    return run_id


def check_folder_name(name: str) -> str:
    """`name` as it is, if it can name one folder of its own (an instance id names its log folder); else ValueError."""
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        raise ValueError(f"{name!r} is not UTF-8 text (it holds a lone surrogate)") from None
    if not name or name in (".", "..") or "/" in name or re.search(r"[\x00-\x1f\x7f]", name) or size > MAX_FOLDER_BYTES:
        raise ValueError(
            f"{name!r} cannot name a folder: it must be 1-{MAX_FOLDER_BYTES} bytes, not '.' or '..', "
            "without '/' or control characters"
        )
    return name


def model_folder(name: str) -> str:
    """The log folder of model `name`: SWE-bench's spelling where no other name can have it, else the name made safe,
    `@` (which SWE-bench's spelling here never holds) and a hash of the name: `org/m` and `org__m`, `..` and `.`
    each get their own folder, and a rerun of one name finds its own."""
    if len(name) <= MAX_MODEL_PLAIN and _PLAIN_MODEL.fullmatch(name):
        return name.replace("/", "__")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", name)[:MAX_MODEL_PLAIN].lstrip(".") + "@" + digest
