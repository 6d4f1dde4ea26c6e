"""The Sandbox protocol: everything the builder, validator, harness and agent need of an environment."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

TESTBED = "/testbed"  # where the repository appears inside a sandbox (SWE-bench's convention)

# Git as the harness runs it in a checkout: with the repository's own configuration alone (no patch may change
# .git, and the harness checks that none did), no system or user configuration, hooks, attribute files outside
# the tree or fsmonitor, so that nothing the checkout holds runs. A shell function: every `git` after it is this.
NEUTRAL_GIT = ("git() { HOME=/nonexistent XDG_CONFIG_HOME=/nonexistent GIT_CONFIG_NOSYSTEM=1 "
               "GIT_CONFIG_GLOBAL=/dev/null GIT_ATTR_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 command git "
               "-c core.hooksPath=/dev/null -c core.fsmonitor= -c core.attributesFile=/dev/null \"$@\"; }; ")


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str  # stdout and stderr, interleaved
    seconds: float
    timed_out: bool = False


class PatchError(RuntimeError):
    """A patch did not apply; the message is git's."""


@dataclass(frozen=True)
class Step:
    exit_code: int
    output: str


def run_steps(sandbox: Sandbox, steps: dict[str, str], timeout: float) -> dict[str, Step]:
    """Several harness commands in one sandbox command (each costs a sandbox start), each one's exit code and
    output told apart by a marker nothing in the checkout can know in advance."""
    nonce = secrets.token_hex(12)
    script = NEUTRAL_GIT + "".join(f"{{ {command}\n}} 2>&1; printf '\\n{nonce} {name} %d\\n' $?; "
                                   for name, command in steps.items())
    result = sandbox.exec(script, timeout=timeout)
    parts = re.split(rf"\n{nonce} (\w+) (\d+)\n", result.output)
    found = {parts[i]: Step(int(parts[i + 1]), parts[i - 1]) for i in range(1, len(parts) - 1, 3)}
    if list(found) != list(steps):  # the sandbox failed, not anything in it
        from repoforge.sandbox import SandboxError

        raise SandboxError(f"harness command ended early (exit {result.exit_code}"
                           f"{', timed out' if result.timed_out else ''}): {result.output[-500:]}")
    return found


PATCH_FILE = ".git/repoforge.patch"  # where a patch waits to be applied: in the repository, outside its tree


def apply_inside(sandbox: Sandbox, patch: str) -> None:
    """`git apply` run in the sandbox, neutrally: the checkout may already hold what a patch put there."""
    if not patch.strip():
        return
    try:
        sandbox.write_file(f"{sandbox.root}/{PATCH_FILE}", patch)
    except OSError as exc:
        raise PatchError(f"cannot write the patch into the checkout: {exc}") from None
    result = sandbox.exec(f"{NEUTRAL_GIT}git apply --whitespace=nowarn {PATCH_FILE}", timeout=120)
    if result.exit_code != 0:
        raise PatchError(result.output.strip())


def diff_inside(sandbox: Sandbox) -> str:
    """The working tree's changes against the checked-out commit, computed in the sandbox, neutrally."""
    command = "git add -A && git diff --cached --no-color --no-ext-diff --no-textconv HEAD"
    return sandbox.exec(NEUTRAL_GIT + command, timeout=120).output


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

    def read_untrusted(self, path: str, limit: int) -> str | None:
        """A file the code under test may have replaced: its first `limit` bytes if it is a regular file, else
        None (a symlink, FIFO or device is never followed or opened)."""
        ...

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
