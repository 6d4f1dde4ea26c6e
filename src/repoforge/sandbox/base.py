"""The Sandbox protocol: everything the builder, validator, harness and agent need of an environment."""

from __future__ import annotations

from dataclasses import dataclass
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
