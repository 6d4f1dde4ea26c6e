"""The Sandbox protocol: everything the builder, validator, harness and agent need of an environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

TESTBED = "/testbed"  # where the repository appears inside a sandbox (SWE-bench's convention)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str  # stdout and stderr, interleaved
    seconds: float
    timed_out: bool = False


class PatchError(RuntimeError):
    """A patch did not apply; the message is git's."""


# Files the install wrote into the checkout that the project needs at run time (a version module from
# setuptools-scm, an extension built in place) live on in the environment and are put back, never over a
# file, into every checkout that uses it. Build leftovers and caches are not kept.
GENERATED = ".repoforge-generated.tar"
_NOT_KEPT = r"(^|/)(__pycache__|\.eggs|\.tox|\.nox|\.pytest_cache|\.hypothesis|build|dist)/|\.egg-info/|\.pyc$|^\.repoforge"


def save_generated(venv: str) -> str:
    """Command, run in the checkout after a build, that keeps its untracked files in the environment."""
    return f"git ls-files -z --others | {{ grep -zvE '{_NOT_KEPT}' || true; }} | tar --null -T - -cf {venv}/{GENERATED}"


RESTORE_GENERATED = f'if [ -f "$VIRTUAL_ENV/{GENERATED}" ]; then tar --skip-old-files -xf "$VIRTUAL_ENV/{GENERATED}"; fi'


class Sandbox(Protocol):
    """One repository checkout plus one environment; backends differ only in how they start."""

    def exec(self, command: str, timeout: float | None = None, network: bool = False) -> ExecResult:
        """Run a bash command in the repository root with the environment active."""
        ...

    def read_file(self, path: str) -> str: ...

    def write_file(self, path: str, content: str) -> None: ...

    def apply_patch(self, patch: str) -> None: ...

    def diff(self) -> str:
        """The working tree's changes against the checked-out commit."""
        ...

    def close(self) -> None: ...


class BuildBox(Protocol):
    """A sandbox with the network on, in which one environment is installed and then kept."""

    sandbox: Sandbox
    venv: str  # the environment's path, as commands inside see it
    uv: str  # the uv binary, likewise
    python: str  # the interpreter to create the venv from, likewise
    python_source: str  # where that interpreter came from, as EnvSpec.python_source records it

    def keep(self) -> str:
        """Freeze the installed environment; return the reference sandboxes start from."""
        ...

    def close(self) -> None: ...


class Backend(Protocol):
    """How environments are built and sandboxes started: processes on the host, or Docker."""

    name: str

    def pythons(self) -> dict[str, str]:
        """major.minor -> interpreter path, for every Python this backend can build with."""
        ...

    def build_box(self, worktree: Path, env_dir: Path, python: str) -> BuildBox: ...

    def env_exists(self, env_ref: str) -> bool: ...

    def instance_sandbox(self, repo: Path, commit: str, env_ref: str, instance_id: str, work: Path,
                         network: bool = False) -> Sandbox:
        """A sandbox with the repository at `commit` and the environment `env_ref` active; with `network`, its
        commands may reach the network (the host's, or a container's on Docker's default bridge)."""
        ...

    def discard_instance(self, instance_id: str) -> None:
        """Drop what instance_sandbox kept for an instance that was not validated."""
        ...
