"""What the package index knew when: upload dates, used to move one package's cutoff."""

from __future__ import annotations

import functools
import json
import re
import urllib.error
import urllib.request

from packaging.version import InvalidVersion, Version

INDEX_JSON = "https://pypi.org/pypi/{name}/json"


@functools.cache
def _releases(name: str) -> dict:
    try:
        with urllib.request.urlopen(INDEX_JSON.format(name=name), timeout=30) as response:
            return json.load(response).get("releases", {})
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def _fits(filename: str, python: str) -> bool:
    """Whether a wheel's tags admit CPython `python` (major.minor) on Linux x86-64/any."""
    if not filename.endswith(".whl"):
        return False
    tags = filename[:-4].split("-")[-3:]
    pyver, abi, platform = tags
    cp = "cp" + python.replace(".", "")
    platform_ok = platform == "any" or ("linux" in platform and "x86_64" in platform)
    if not platform_ok:
        return False
    if pyver in ("py3", "py2.py3") or "py3" in pyver.split("."):
        return True
    if abi == "abi3":
        minimum = re.match(r"cp3(\d+)", pyver)
        return bool(minimum) and int(minimum.group(1)) <= int(python.split(".")[1])
    return cp in pyver.split(".")


def first_wheel_date(name: str, python: str) -> str | None:
    """Upload time (ISO) of the first wheel of `name` installable on `python`, if any."""
    dates = [
        file["upload_time_iso_8601"]
        for files in _releases(name).values()
        for file in files
        if _fits(file.get("filename", ""), python) and not file.get("yanked")
    ]
    return min(dates) if dates else None


def release_date(name: str, version: str) -> str | None:
    """Upload time (ISO) of release `version` of `name`, if the index knows it."""
    dates = [file["upload_time_iso_8601"] for file in _releases(name).get(version, [])]
    return min(dates) if dates else None


def next_release_date(name: str, version: str) -> str | None:
    """When the first release of `name` after `version` was whole (its last file's upload time), if any."""

    def parsed(text: str) -> Version | None:
        try:
            return Version(text)
        except InvalidVersion:
            return None

    after = sorted(
        (v, files)
        for text, files in _releases(name).items()
        if (v := parsed(text)) and files and v > (parsed(version) or v)
    )
    return max(file["upload_time_iso_8601"] for file in after[0][1]) if after else None
