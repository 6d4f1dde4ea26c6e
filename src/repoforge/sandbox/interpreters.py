"""Where the docker backend's interpreters come from, and what of each goes into its image.

The versions are the host's (env/python.py finds them for the process backend), so that both backends
choose the same Python. Each version's source, in order of preference:
- uv: a standalone build uv manages (`uv python find`, else `uv python install` where its download
  host answers; where it does not, the attempt fails at once). Relocatable: copied to /opt/python/NAME.
- host: the installation the process backend runs, when it is self-contained (pyenv's and the like: a
  prefix holding bin/ and lib/, linked against PREFIX/lib): copied at its own prefix.
- debian: the python3 of the Debian suite that ships the version (the last resort; a whole suite).
Copies leave out what no environment's tests use; `dropped_by` says what and why.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from repoforge.env.python import available_pythons, inspect_interpreter
from repoforge.sandbox import SandboxError
from repoforge.sandbox.process import uv_binary

DEBIAN_SUITES = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}  # the python3 each suite ships
SYSTEM_PREFIXES = {"/", "/usr", "/usr/local"}  # shared with other software: never copied whole
UV_PREFIX = "/opt/python"
LINK = "/usr/local/bin/python{version}"  # every Python image's interpreter, whatever its source

# Relative to the installation; a path counts under the first reason that matches. Packages installed
# into the interpreter itself go too: venvs never see them. The standard library's bytecode stays: sandboxes
# write none, so without it every test run would compile the modules it imports again (0.4 s measured).
SLIMMED = {
    "installed packages and their scripts": r"lib/python3\.\d+t?/site-packages/.+|bin/(?!python).+",
    "test suites": r"lib/python3\.\d+t?/(.+/)?(test|tests|idle_test)(/.*)?",
    "IDLE, Tk and turtle": r"lib/python3\.\d+t?/(idlelib|tkinter|turtledemo|lib-dynload/_tkinter\..*)(/.*)?"
    r"|lib/(lib)?(tcl|tk|itcl|thread)\d.*",
    "static libraries": r".*\.a",
    "manual pages": r"share(/.*)?",
    "bytecode for -O and -OO (tests run without them)": r".*\.opt-[12]\.pyc",
}
_SLIMMED = {reason: re.compile(pattern) for reason, pattern in SLIMMED.items()}
# Shared libraries lose their debug sections (libpython3.13 31 -> 6 MB), where the host has binutils.
STRIP = ["strip", "--strip-debug"]


class PythonSource(BaseModel):
    version: str  # major.minor
    kind: Literal["uv", "host", "debian"]
    origin: str  # the installation's folder on the host; for Debian, the suite
    prefix: str  # where the installation lives in the image
    build: str  # the exact build (sys.version; for Debian, the suite): another build is another image

    @property
    def label(self) -> str:
        """What EnvSpec.python_source records: uv:NAME, host:PREFIX or debian:SUITE."""
        return {"uv": f"uv:{Path(self.origin).name}", "host": f"host:{self.prefix}", "debian": f"debian:{self.origin}"}[
            self.kind
        ]

    @property
    def interpreter(self) -> str:
        return f"{self.prefix}/bin/python{self.version}"


@functools.cache
def python_source(version: str) -> PythonSource | None:
    """The preferred source of `version`: uv's build, else the host's installation, else Debian's."""
    return uv_source(version) or host_source(version) or debian_source(version)


def has_source(version: str) -> bool:
    """Whether any source gives `version`; cheapest first, so a download is tried only as the last way."""
    return bool(host_source(version) or debian_source(version) or uv_source(version))


def host_source(version: str) -> PythonSource | None:
    path = available_pythons().get(version)
    found = inspect_interpreter(path) if path else None
    if found is None or found.prefix in SYSTEM_PREFIXES or not Path(found.prefix, "bin", f"python{version}").exists():
        return None
    return PythonSource(
        version=version, kind="host", origin=os.path.realpath(found.prefix), prefix=found.prefix, build=found.build
    )


def debian_source(version: str) -> PythonSource | None:
    suite = DEBIAN_SUITES.get(version)
    return PythonSource(version=version, kind="debian", origin=suite, prefix="/usr", build=suite) if suite else None


@functools.cache
def uv_source(version: str) -> PythonSource | None:
    path = _uv_find(version) or (_uv_install(version) and _uv_find(version))
    found = inspect_interpreter(path) if path else None
    if found is None:
        return None
    origin = os.path.realpath(found.prefix)  # uv links a minor version's folder to its patch release's
    return PythonSource(
        version=version, kind="uv", origin=origin, prefix=f"{UV_PREFIX}/{Path(origin).name}", build=found.build
    )


def _uv_python(*args: str, timeout: float) -> subprocess.CompletedProcess | None:
    # No retries: where the download host does not answer, the attempt fails in a fraction of a second.
    env = {**os.environ, "UV_HTTP_RETRIES": "0"}
    try:
        return subprocess.run([uv_binary(), "python", *args], capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _uv_find(version: str) -> str | None:
    proc = _uv_python("find", "--managed-python", "--no-project", f"cpython@{version}", timeout=60)
    return proc.stdout.strip() if proc and proc.returncode == 0 else None


def _uv_install(version: str) -> bool:
    # Neither executables on the user's PATH nor entries in the system's registry: only the build itself.
    proc = _uv_python("install", "--no-bin", "--no-registry", f"cpython@{version}", timeout=600)
    return proc is not None and proc.returncode == 0


def dropped_by(relative: str) -> str | None:
    """Why a copy leaves out this path of an installation (relative to it), or None when it keeps it."""
    return next((reason for reason, pattern in _SLIMMED.items() if pattern.fullmatch(relative)), None)


def stripping() -> bool:
    return shutil.which(STRIP[0]) is not None


def pack(source: PythonSource, archive: Path) -> None:
    """A tar, to extract at /, of the slimmed installation at its prefix (its binaries stripped of debug sections,
    where `stripping()`) and the link to its interpreter."""
    top, strip = source.prefix.strip("/"), stripping()
    binaries: list[tarfile.TarInfo] = []

    def kept(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if dropped_by(info.name[len(top) + 1 :]):
            return None
        if strip and info.isreg() and _shared_object(Path(source.origin, info.name[len(top) + 1 :])):
            binaries.append(info)  # added stripped, below
            return None
        return info

    try:
        with tarfile.open(archive, "w") as tar, tempfile.TemporaryDirectory(prefix="repoforge-strip-") as tmp:
            tar.add(source.origin, arcname=top, filter=kept)
            for info in binaries:
                original, stripped = Path(source.origin, info.name[len(top) + 1 :]), Path(tmp, "binary")
                if subprocess.run([*STRIP, "-o", stripped, original], capture_output=True).returncode != 0:
                    shutil.copyfile(original, stripped)  # a library strip cannot read goes in as it is
                info.size = stripped.stat().st_size
                with stripped.open("rb") as handle:
                    tar.addfile(info, handle)
            link = tarfile.TarInfo(LINK.format(version=source.version).lstrip("/"))
            link.type, link.linkname = tarfile.SYMTYPE, source.interpreter
            tar.addfile(link)
    except OSError as exc:  # the installation changed or vanished since it was found
        raise SandboxError(f"cannot copy Python {source.version} from {source.origin}: {exc}") from None


def _shared_object(path: Path) -> bool:
    """A shared library (libpython, an extension module) and no other file's hard link (tar would link to it
    before it is added)."""
    if ".so" not in path.name or path.stat().st_nlink != 1:
        return False
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"
