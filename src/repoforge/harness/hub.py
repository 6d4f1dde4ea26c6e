"""Datasets named on the Hugging Face hub (`owner/name`, or `owner/name:split`), read from the hub's parquet export.

The hub converts every dataset to parquet and lists the files at /api/datasets/<name>/parquet; they are
downloaded once into a cache folder, so a later run works offline. HF_ENDPOINT and HF_TOKEN are honoured
as by Hugging Face's own clients.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from repoforge.harness.dataset import DatasetError

# Each part is led by a letter, digit or `_`: a split of `..` would name the cache's own folder.
HUB_NAME = re.compile(r"^\w[\w.-]*/\w[\w.-]*(?::\w[\w.-]*)?$")
DEFAULT_SPLIT = "test"  # SWE-bench's datasets keep their instances there
DONE = ".complete"


def is_hub_name(source: str) -> bool:
    """owner/name[:split], and not a file (a missing data/rows.jsonl stays a missing file)."""
    path = Path(source)
    return not path.exists() and path.suffix not in (".jsonl", ".json", ".parquet") and bool(HUB_NAME.match(source))


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _get(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url)
    if token := os.environ.get("HF_TOKEN"):
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _split_urls(name: str, split: str, timeout: float) -> list[str]:
    """The parquet files of `split` in the dataset's default (or only) configuration."""
    listing = json.loads(_get(f"{_endpoint()}/api/datasets/{name}/parquet", timeout))
    config = "default" if "default" in listing else next(iter(listing), None)
    splits = listing.get(config) or {}
    if split not in splits:
        raise DatasetError(f"{name} has no split {split!r} (it has: {', '.join(sorted(splits)) or 'none'})")
    return splits[split]


def download(source: str, cache: Path, timeout: float = 120) -> Path:
    """A folder holding the split's parquet files, downloaded on first use."""
    name, _, split = source.partition(":")
    folder = cache / name.replace("/", "__") / (split or DEFAULT_SPLIT)
    if (folder / DONE).exists():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        for number, url in enumerate(_split_urls(name, split or DEFAULT_SPLIT, timeout)):
            (partial / f"{number:05d}.parquet").write_bytes(_get(url, timeout))
    except urllib.error.HTTPError as exc:
        raise DatasetError(
            f"the hub at {_endpoint()} answered {exc.code} for {name}"
            + (": no such dataset (or it is private: set HF_TOKEN)" if exc.code in (401, 404) else "")
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DatasetError(
            f"cannot read {name} from the hub at {_endpoint()}: {reason}; "
            "download it where the hub is reachable and pass the file's path"
        ) from None
    (partial / DONE).touch()
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder
