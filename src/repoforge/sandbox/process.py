"""The process backend: a checkout plus a venv on the host, commands under bubblewrap when present.

Under bubblewrap the checkout appears at /testbed, so an environment built once (with the project
installed editable from /testbed) serves every checkout of the same dependency set. The root file
system is read-only, /tmp private, and with the network off (the default) every route leads to the
loopback device: a connect attempt then times out as on a slow network instead of failing at once,
while name lookups go to a resolver on loopback and fail at once. With the network on, commands
share the host's.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from repoforge.env.python import available_pythons, inspect_interpreter
from repoforge.git.repo import borrowed_objects, isolated_checkout
from repoforge.sandbox.base import (
    MAX_OUTPUT,
    RESTORE_GENERATED,
    TESTBED,
    ExecResult,
    apply_inside,
    diff_inside,
    read_result_file,
    run_captured,
)

_OFFLINE_ROUTES = "ip link set lo up 2>/dev/null; ip route add default dev lo 2>/dev/null; "
_SKIP_ROOT_ENTRIES = {"proc", "dev", "tmp", "testbed", "lost+found"}


@functools.cache
def _offline_resolv_conf() -> Path:
    """A resolver on loopback, where nothing answers: a name lookup fails at once, not after 10 s."""
    path = Path(tempfile.gettempdir()) / f"repoforge-offline-resolv-{os.getuid()}.conf"
    path.write_text("nameserver 127.0.0.1\noptions attempts:1\n")
    return path


@functools.cache
def bwrap_path() -> str | None:
    path = shutil.which("bwrap")
    if path is None:
        return None
    probe = subprocess.run([path, "--ro-bind", "/", "/", "true"], capture_output=True)
    return path if probe.returncode == 0 else None


def _root_binds() -> list[str]:
    args = []
    for entry in sorted(os.listdir("/")):
        full = f"/{entry}"
        if entry in _SKIP_ROOT_ENTRIES:
            continue
        if os.path.islink(full):
            args += ["--symlink", os.readlink(full), full]
        elif os.path.isdir(full):
            args += ["--ro-bind", full, full]
    return args


class ProcessSandbox:
    def __init__(
        self,
        worktree: Path,
        venv: Path | None = None,
        writable: list[Path] = (),
        readonly: list[Path] = (),
        env: dict[str, str] | None = None,
        isolate: bool = True,
        network: bool = False,
    ):
        self.worktree = worktree
        self.network = network  # every command's default: the host's network, or none
        self.venv = venv
        self.writable = list(writable)
        # Host paths commands need besides the root file system's (they may live under the hidden /tmp).
        self.readonly = list(readonly) + ([venv] if venv is not None else [])
        self.extra_env = env or {}
        self.bwrap = bwrap_path() if isolate else None
        if isolate and self.bwrap is None:
            warnings.warn("bubblewrap (bwrap) not available: commands run unisolated, network on", stacklevel=2)

    @property
    def root(self) -> str:
        """The repository's path as commands inside the sandbox see it."""
        return TESTBED if self.bwrap else str(self.worktree)

    def _environment(self) -> dict[str, str]:
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        env = {
            "PATH": path,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": "/tmp",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        for name in (
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "REQUESTS_CA_BUNDLE",
            "PIP_CERT",
            "UV_CACHE_DIR",
            "UV_NATIVE_TLS",
        ):
            if name in os.environ:
                env[name] = os.environ[name]
        if self.venv is not None:
            env["VIRTUAL_ENV"] = str(self.venv)
            env["PATH"] = f"{self.venv}/bin:{path}"
        if not self.bwrap:
            # Unisolated, a shared environment's editable install points at another checkout.
            src = self.worktree / "src"
            env["PYTHONPATH"] = os.pathsep.join([str(self.worktree)] + ([str(src)] if src.is_dir() else []))
        env.update(self.extra_env)
        return env

    def _argv(self, command: str, network: bool) -> list[str]:
        if not self.bwrap:
            return ["bash", "-c", command]
        # A private process namespace: nothing a command starts outlives it (a process left behind could
        # change the checkout while the harness reads it).
        argv = [
            self.bwrap,
            *_root_binds(),
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--bind",
            str(self.worktree),
            TESTBED,
            "--chdir",
            TESTBED,
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
        ]
        for path in self.readonly:
            if not any(path.is_relative_to(w) for w in self.writable):
                argv += ["--ro-bind", str(path), str(path)]
        for path in self.writable:
            argv += ["--bind", str(path), str(path)]
        if not network:
            argv += ["--unshare-net", "--ro-bind", str(_offline_resolv_conf()), "/etc/resolv.conf"]
            if os.geteuid() == 0:
                argv += ["--cap-add", "CAP_NET_ADMIN"]
                command = _OFFLINE_ROUTES + command
        return argv + ["bash", "-c", command]

    def exec(
        self,
        command: str,
        timeout: float | None = None,
        network: bool = False,
        max_output: int = MAX_OUTPUT,
        input: str | None = None,
    ) -> ExecResult:
        start = time.monotonic()
        run = run_captured(
            self._argv(command, network or self.network),
            timeout,
            max_output,
            input=None if input is None else input.encode(),
            cwd=self.worktree,
            env=self._environment(),
        )
        return ExecResult(run.exit_code, run.output, time.monotonic() - start, run.timed_out)

    def _host_path(self, path: str) -> Path:
        """Where a sandbox path is on the host, with no symlink on the way: what runs in the checkout may have
        made any of its folders a link to anywhere on the host."""
        relative = path[len(self.root) :].lstrip("/") if path.startswith(self.root) else path
        root = os.path.realpath(self.worktree)
        target = os.path.normpath(os.path.join(root, relative))
        if not target.startswith(root + os.sep) or os.path.realpath(os.path.dirname(target)) != os.path.dirname(target):
            raise PermissionError(f"{path} leads out of the checkout (through a symlink or ..)")
        return Path(target)

    def read_file(self, path: str) -> str:
        return read_result_file(self, path)

    def write_file(self, path: str, content: str) -> None:
        target = self._host_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644), "w") as file:
            file.write(content)

    def apply_patch(self, patch: str) -> None:
        apply_inside(self, patch)

    def diff(self) -> str:
        return diff_inside(self)

    def close(self) -> None:
        shutil.rmtree(self.worktree, ignore_errors=True)


def uv_binary() -> str:
    """The uv installed beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv") or "uv"


def uv_cache_dir() -> Path:
    proc = subprocess.run([uv_binary(), "cache", "dir"], capture_output=True, text=True)
    return Path(proc.stdout.strip() or Path.home() / ".cache" / "uv")


class ProcessBuildBox:
    """The venv lives in the environment's folder on the host; uv's cache is the user's."""

    def __init__(self, worktree: Path, env_dir: Path, python: str):
        cache = uv_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        self.venv, self.uv, self.python = str(env_dir / "venv"), uv_binary(), python
        self.python_source = inspect_interpreter(python).origin
        self.sandbox = ProcessSandbox(
            worktree,
            venv=env_dir / "venv",
            writable=[env_dir, cache],
            # the repository's objects the checkout borrows: git works in the box (see the docker backend's)
            readonly=[Path(self.uv), *map(Path, borrowed_objects(worktree))],
            env={"UV_CACHE_DIR": str(cache)},
        )

    def keep(self) -> str:
        return self.venv

    def close(self) -> None:
        pass  # the checkout belongs to the caller


class ProcessBackend:
    name = "process"

    def pythons(self) -> dict[str, str]:
        return available_pythons()

    def build_box(self, worktree: Path, env_dir: Path, python: str) -> ProcessBuildBox:
        return ProcessBuildBox(worktree, env_dir, self.pythons()[python])

    def env_exists(self, env_ref: str) -> bool:
        return (Path(env_ref) / "bin" / "python").exists()

    def instance_sandbox(
        self,
        repo: Path,
        commit: str,
        env_ref: str,
        instance_id: str,
        work: Path,
        network: bool = False,
        reuse: bool = False,  # nothing to reuse or start ahead: a process sandbox starts no container
        ahead: str | None = None,
    ) -> ProcessSandbox:
        work.mkdir(parents=True, exist_ok=True)
        # A folder of its own, even for a second sandbox of the instance in this process (the gold patch's run).
        worktree = Path(tempfile.mkdtemp(prefix=f"{instance_id}-", dir=work))
        isolated_checkout(repo, commit, worktree)
        sandbox = ProcessSandbox(worktree, venv=Path(env_ref), network=network)
        sandbox.exec(RESTORE_GENERATED)
        return sandbox

    def discard_instance(self, instance_id: str) -> None:
        pass  # the checkout went with its sandbox
