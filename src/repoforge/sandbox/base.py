"""The Sandbox protocol: everything the builder, validator, harness and agent need of an environment."""

from __future__ import annotations

import os
import secrets
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

TESTBED = "/testbed"  # where the repository appears inside a sandbox (SWE-bench's convention)
MAX_OUTPUT = 4_000_000  # bytes kept of one command's output: its first and last halves
MAX_RESULT_BYTES = 64_000_000  # of a result file (JUnit XML of tens of thousands of tests fits)
# How long output is still read once the command has ended: a process it left behind may hold the pipe forever.
DRAIN_SECONDS = 2.0

# Git as the harness runs it in a checkout: with the repository's own configuration alone (no patch may change
# .git, and the harness checks that none did), no system or user configuration, hooks, attribute files outside
# the tree or fsmonitor, so that nothing the checkout holds runs. A shell function: every `git` after it is this.
NEUTRAL_GIT = (
    "git() { HOME=/nonexistent XDG_CONFIG_HOME=/nonexistent GIT_CONFIG_NOSYSTEM=1 "
    "GIT_CONFIG_GLOBAL=/dev/null GIT_ATTR_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 command git "
    '-c core.hooksPath=/dev/null -c core.fsmonitor= -c core.attributesFile=/dev/null "$@"; }; '
)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str  # stdout and stderr, interleaved
    seconds: float
    timed_out: bool = False


class Captured(NamedTuple):
    exit_code: int  # -SIGKILL when killed at the timeout
    output: str
    timed_out: bool


def run_captured(
    argv: list[str], timeout: float | None, max_output: int = MAX_OUTPUT, input: bytes | None = None, **popen
) -> Captured:
    """Run `argv` in a session of its own, stdout and stderr together, within bounds the command cannot stretch.

    Only the first and last `max_output / 2` bytes of its output are kept, however much it writes; at `timeout` its
    process group is killed; once it has ended, its output is read for DRAIN_SECONDS more at most, so that a process
    it left behind holding the pipe (a daemon of the code under test) cannot hold the reader.
    """
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **popen,
    )
    output = HeadAndTail(max_output)
    deadline = time.monotonic() + timeout if timeout is not None else None
    ended, timed_out = None, False
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        pending = memoryview(input or b"")
        if input is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin, selectors.EVENT_WRITE)
        while selector.get_map():
            now = time.monotonic()
            if deadline is not None and now >= deadline and not timed_out:
                timed_out = _kill(proc)
            if ended is None and proc.poll() is not None:
                ended = now
            if ended is not None and now - ended >= DRAIN_SECONDS:
                break
            wait = 0.5 if deadline is None or timed_out else min(0.5, deadline - now)
            for key, _ in selector.select(max(wait, 0.01)):
                if key.fileobj is not proc.stdout:
                    pending = _write_some(proc.stdin, pending, selector)
                elif chunk := os.read(proc.stdout.fileno(), 1 << 16):
                    output.add(chunk)
                else:
                    selector.unregister(proc.stdout)
    for stream in (proc.stdout, proc.stdin):
        if stream is not None:
            stream.close()
    try:  # it may have closed its output and gone on
        code = proc.wait(None if deadline is None else max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        timed_out = _kill(proc)
        code = proc.wait()
    return Captured(-signal.SIGKILL if timed_out else code, output.text(), timed_out)


def _kill(proc: subprocess.Popen) -> bool:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def _write_some(stdin, pending: memoryview, selector: selectors.BaseSelector) -> memoryview:
    """Write what the pipe takes now; unregister stdin once all is written or the command stopped reading."""
    try:
        pending = pending[os.write(stdin.fileno(), pending[: 1 << 16]) :]
    except BlockingIOError:
        pass
    except BrokenPipeError:
        pending = pending[:0]
    if not pending:
        selector.unregister(stdin)
        stdin.close()
    return pending


class HeadAndTail:
    """The first and last `limit / 2` bytes of a stream, and how many were cut between them."""

    def __init__(self, limit: int):
        self.half, self.head, self.tail, self.cut = limit // 2, bytearray(), bytearray(), 0

    def add(self, chunk: bytes) -> None:
        room = self.half - len(self.head)
        self.head += chunk[:room]
        self.tail += chunk[room:] if room > 0 else chunk
        if len(self.tail) > self.half:
            self.cut += len(self.tail) - self.half
            del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        cut = f"\n[... {self.cut} bytes of output cut ...]\n".encode() if self.cut else b""
        return bytes(self.head + cut + self.tail).decode(errors="replace")


class ResultFileError(OSError):
    """A result file that is missing, or was replaced by something that is not a file to read."""


def read_result_file(sandbox: Sandbox, path: str, max_bytes: int = MAX_RESULT_BYTES, timeout: float = 60) -> str:
    """A file the code under test could have replaced, read in the sandbox with bounds it cannot stretch.

    An atexit may swap a result file for a FIFO (a reader would wait forever), a symlink (to /dev/zero, or to a file
    the sandbox should not hand over) or a huge file: it is read only if it is a regular file, never through a
    symlink (dd's nofollow holds even if it is swapped after the test), without blocking, at most `max_bytes`,
    within `timeout`. Anything else raises ResultFileError saying why.
    """
    result = sandbox.exec(_result_file_command(path, max_bytes), timeout=timeout, max_output=max_bytes + 1)
    if result.timed_out:
        raise ResultFileError(f"{path}: reading it took more than {timeout:.0f} s")
    return _result_file_text(path, result.exit_code, result.output, max_bytes)


def _result_file_command(path: str, max_bytes: int) -> str:
    quoted = shlex.quote(path)
    return (
        f"if [ -L {quoted} ]; then exit 64; elif [ ! -e {quoted} ]; then exit 65; elif [ ! -f {quoted} ]; "
        f"then exit 66; fi; exec dd if={quoted} iflag=nofollow,nonblock,count_bytes count={max_bytes + 1} "
        "bs=1M status=none 2>/dev/null"
    )


def _result_file_text(path: str, exit_code: int, text: str, max_bytes: int) -> str:
    why = {64: "is a symlink", 65: "does not exist", 66: "is not a regular file (a FIFO, a device or a folder)"}
    if exit_code in why:
        raise ResultFileError(f"{path} {why[exit_code]}")
    if exit_code != 0:
        raise ResultFileError(f"{path} cannot be read (exit {exit_code})")
    if len(text.encode()) > max_bytes:
        raise ResultFileError(f"{path} is larger than {max_bytes} bytes")
    return text


# A result file up to this size comes back in the output of the command that wrote it (a sandbox command less, 0.1 s
# in Docker); a larger one is read by a command of its own. Half of MAX_OUTPUT at most: the kept tail holds it.
INLINE_RESULT_BYTES = 1_000_000


def exec_then_read(
    sandbox: Sandbox, command: str, path: str, timeout: float, input: str | None = None
) -> tuple[ExecResult, Callable[[], str]]:
    """`command`, then the result file `path` read as read_result_file reads it, in the same sandbox command: the
    command's result (its output without the file) and a function giving the file's text or raising ResultFileError.

    The file comes last, after a marker nothing in the checkout can know before the command starts; the last marker is
    taken, so that output the command printed, forged markers included, comes before it. A process the command left
    behind could still print after it, as it could still change the file before a separate read."""
    nonce = secrets.token_hex(12)
    script = (
        f"( {command}\n); code=$?; printf '\\n{nonce} file\\n'; "
        f"( {_result_file_command(path, INLINE_RESULT_BYTES)} ); printf '\\n{nonce} read %d\\n' $?; exit $code"
    )
    result = sandbox.exec(script, timeout=timeout, input=input)
    rest, read_marker, status = result.output.rpartition(f"\n{nonce} read ")
    output, file_marker, text = rest.rpartition(f"\n{nonce} file\n")
    if not (read_marker and file_marker and status.strip().isdigit()):  # killed before its end: the output as it came
        return result, lambda: read_result_file(sandbox, path)
    result = ExecResult(result.exit_code, output, result.seconds, result.timed_out)
    if len(text.encode()) > INLINE_RESULT_BYTES:
        return result, lambda: read_result_file(sandbox, path)
    return result, lambda: _result_file_text(path, int(status), text, MAX_RESULT_BYTES)


class Then(NamedTuple):
    """A command run after harness steps in the same sandbox command (a sandbox start less), and the result file it
    writes, which comes back with it (exec_then_read)."""

    command: str
    result_file: str
    timeout: float
    nonce: str  # of the marker the command prints at its end


class PatchError(RuntimeError):
    """A patch did not apply; the message is git's."""


@dataclass(frozen=True)
class Step:
    exit_code: int
    output: str


def run_steps(
    sandbox: Sandbox, steps: dict[str, str], timeout: float, upload: tuple[str, str] | None = None
) -> dict[str, Step]:
    """Several harness commands in one sandbox command (each costs a sandbox start), each one's exit code and
    output told apart by a marker nothing in the checkout can know in advance. `upload` (path, text) is written
    first, from the command's input, so that a file the steps read costs no command of its own."""
    nonce = secrets.token_hex(12)
    script = steps_script(steps, nonce, upload[0] if upload else None)
    result = sandbox.exec(script, timeout=timeout, input=upload[1] if upload else None)
    return read_steps(result, nonce, list(steps))[0]


def steps_script(steps: dict[str, str], nonce: str, upload_path: str | None = None) -> str:
    """The script of run_steps: each step's output, then a marker with its exit code, which is also $step_NAME."""
    write = f"cat > {shlex.quote(upload_path)} || exit 1; " if upload_path else ""
    return (
        NEUTRAL_GIT
        + write
        + "".join(
            f"{{ {command}\n}} 2>&1; step_{name}=$?; printf '\\n{nonce} {name} %d\\n' $step_{name}; "
            for name, command in steps.items()
        )
    )


def read_steps(result: ExecResult, nonce: str, names: list[str]) -> tuple[dict[str, Step], str]:
    """The steps' results, read from the front in order, and the output after the last one's marker: a command run
    after the steps (code under test) may print markers, but only after the real ones."""
    found, position, output = {}, 0, result.output
    for name in names:
        # str.find, not a regex: each command's nonce would cost a compiled pattern per step
        head = f"\n{nonce} {name} "
        start = output.find(head, position)
        end = output.find("\n", start + len(head)) if start >= 0 else -1
        code = output[start + len(head) : end] if end >= 0 else ""
        if not (code.isascii() and code.isdigit()):  # the sandbox failed, not anything in it
            from repoforge.sandbox import SandboxError

            raise SandboxError(
                f"harness command ended early (exit {result.exit_code}"
                f"{', timed out' if result.timed_out else ''}): {output[-500:]}"
            )
        found[name] = Step(int(code), output[position:start])
        position = end + 1
    return found, output[position:]


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
_NOT_KEPT = (
    r"(^|/)(__pycache__|\.eggs|\.tox|\.nox|\.pytest_cache|\.hypothesis|build|dist)/|\.egg-info/|\.pyc$|^\.repoforge"
)


def save_generated(venv: str) -> str:
    """Command, run in the checkout after a build, that keeps its untracked files in the environment."""
    return f"git ls-files -z --others | {{ grep -zvE '{_NOT_KEPT}' || true; }} | tar --null -T - -cf {venv}/{GENERATED}"


RESTORE_GENERATED = (
    f'if [ -f "$VIRTUAL_ENV/{GENERATED}" ]; then tar --skip-old-files -xf "$VIRTUAL_ENV/{GENERATED}"; fi'
)


class Sandbox(Protocol):
    """One repository checkout plus one environment; backends differ only in how they start."""

    def exec(
        self,
        command: str,
        timeout: float | None = None,
        network: bool = False,
        max_output: int = MAX_OUTPUT,
        input: str | None = None,
    ) -> ExecResult:
        """Run a bash command in the repository root with the environment active, `input` on its stdin; keep at
        most `max_output` bytes of its output (the first and last halves)."""
        ...

    def read_file(self, path: str) -> str:
        """A regular file of the sandbox, read within bounds (see read_result_file)."""
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

    def instance_sandbox(
        self,
        repo: Path,
        commit: str,
        env_ref: str,
        instance_id: str,
        work: Path,
        network: bool = False,
        reuse: bool = False,
        ahead: str | None = None,
    ) -> Sandbox:
        """A sandbox with the repository at `commit` and the environment `env_ref` active; with `network`, its
        commands may reach the network (the host's, or a container's on Docker's default bridge); with `reuse`, it
        may be a container an earlier instance of `env_ref` used, emptied of everything that instance could write,
        and `ahead` names the environment the next instance will likely need, for a container to start meanwhile."""
        ...

    def discard_instance(self, instance_id: str) -> None:
        """Drop what instance_sandbox kept for an instance that was not validated."""
        ...
