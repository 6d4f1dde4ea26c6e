"""The docker backend: base -> environment -> instance images, built with no registry.

- base: a Debian suite from debootstrap, slimmed, one per Python version (the suite's python3);
  rebuilt only when its recipe changes (the recipe's hash is in the tag).
- environment: base + /opt/venv, installed in a build container with the checkout mounted at
  /testbed, then committed; one per EnvSpec fingerprint, shared by every instance that needs it.
- instance: environment + /testbed holding the repository at its base commit, fetched with depth 1,
  so no later commit, ref or reflog entry exists in it.
Every container runs with limits, is removed by force, and is labeled with its owner's pid so a
crashed run's leftovers are found and removed by the next run. The host's CA bundle is mounted
into build containers (never baked in). Test containers have no network unless asked (then they are on
Docker's default bridge): every route leads to the loopback device so that connects time out as on a
slow network (name lookups fail at once).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from repoforge.git.repo import git
from repoforge.locks import exclusive
from repoforge.sandbox import SandboxError
from repoforge.sandbox.base import RESTORE_GENERATED, TESTBED, ExecResult, PatchError
from repoforge.sandbox.process import uv_binary, uv_cache_dir

# Debian suites and the python3 each ships: the interpreters this backend can offer. Before 3.12
# Debian splits distutils out of the standard library, and uv needs it for older Pythons.
SUITES = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
SUITE_PACKAGES = {"bullseye": ["python3-distutils"], "bookworm": ["python3-distutils"], "trixie": []}
BASE_PACKAGES = ["python3", "git", "iproute2", "patch"]
# git pulls in the full perl (about 45 MB) for commands no test harness uses (add -i, send-email,
# svn); perl-base, which dpkg itself needs, stays.
SLIM_PACKAGES = re.compile(r"perl|perl-modules-[\d.]+|libperl5[\d.]+|liberror-perl")
SLIM = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
        "var/lib/apt/lists", "var/cache/apt", "var/cache/debconf", "var/log"]
VENV = "/opt/venv"
CA_IN_CONTAINER = "/etc/repoforge/ca.crt"
PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OFFLINE_ROUTES = "ip link set lo up; ip route add default dev lo"
LOCKS = Path(os.environ.get("REPOFORGE_HOME", "~/.cache/repoforge")).expanduser() / "locks"


def docker(*args: str, input: bytes | None = None, timeout: float | None = None, check: bool = True):
    try:
        proc = subprocess.run(["docker", *args], input=input, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise SandboxError("the docker command is not installed") from None
    except subprocess.TimeoutExpired:
        raise SandboxError(f"docker {args[0]} did not answer within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        raise SandboxError(f"docker {args[0]}: {proc.stderr.decode(errors='replace').strip()}")
    return proc


def engine_answers() -> bool:
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=15, check=False).returncode == 0
    except SandboxError:
        return False


def image_exists(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


def image_id(ref: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.decode().strip()


def owner_labels(kind: str) -> list[str]:
    labels = {"repoforge.kind": kind, "repoforge.pid": str(os.getpid()), "repoforge.host": socket.gethostname()}
    return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]


def ca_bundle() -> str | None:
    """The host's CA bundle (REPOFORGE_CA_BUNDLE, SSL_CERT_FILE, or the system's), mounted for installs."""
    for path in (os.environ.get("REPOFORGE_CA_BUNDLE"), os.environ.get("SSL_CERT_FILE"),
                 "/etc/ssl/certs/ca-certificates.crt"):
        if path and Path(path).is_file():
            return path
    return None


def _building(name: str):
    """One builder per image name across threads and processes on this host."""
    return exclusive(LOCKS / (hashlib.sha256(name.encode()).hexdigest()[:16] + ".lock"))


# --- images -------------------------------------------------------------------------------------

def base_ref(python: str) -> str:
    recipe = f"{SUITES[python]} {' '.join(_packages(SUITES[python]))} {' '.join(SLIM)} {SLIM_PACKAGES.pattern}"
    return f"repoforge-base:{SUITES[python]}-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"


def _packages(suite: str) -> list[str]:
    return BASE_PACKAGES + SUITE_PACKAGES[suite]


def ensure_base(python: str) -> str:
    ref = base_ref(python)
    with _building(ref):
        if not image_exists(ref):
            _build_base(SUITES[python], ref)
    return ref


def can_build_bases() -> bool:
    return shutil.which("debootstrap") is not None and os.geteuid() == 0


def _build_base(suite: str, ref: str) -> None:
    if not can_build_bases():
        raise SandboxError("building a base image needs root and debootstrap (apt-get install debootstrap)")
    mirror = os.environ.get("REPOFORGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    with tempfile.TemporaryDirectory(prefix="repoforge-rootfs-") as root:
        proc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(_packages(suite))}",
                               suite, root, mirror], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SandboxError(f"debootstrap {suite} failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
        _purge_packages(root)
        for folder in SLIM:
            shutil.rmtree(Path(root, folder), ignore_errors=True)
            Path(root, folder).mkdir(parents=True, exist_ok=True)
        subprocess.run(["find", root, "-name", "__pycache__", "-prune", "-exec", "rm", "-rf", "{}", "+"], check=False)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        changes = ["--change", "LABEL repoforge.kind=base", "--change", f"ENV PATH={PATH}",
                   "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["bash"]']
        imported = subprocess.run(["docker", "import", *changes, "-", ref], stdin=tar.stdout, capture_output=True)
        tar.wait()
        if imported.returncode != 0:
            raise SandboxError(f"docker import failed: {imported.stderr.decode(errors='replace')}")


def _purge_packages(root: str) -> None:
    listed = subprocess.run(["chroot", root, "dpkg-query", "-W", "-f", "${Package}\n"], capture_output=True, text=True)
    drop = [name for name in listed.stdout.split() if SLIM_PACKAGES.fullmatch(name)]
    if drop:
        subprocess.run(["chroot", root, "dpkg", "--purge", "--force-depends", *drop], capture_output=True)


def instance_ref(instance_id: str) -> str:
    return f"repoforge-instance:{instance_id.lower()[:128]}"


def ensure_instance(repo: Path, commit: str, env_ref: str, instance_id: str) -> str:
    """The environment plus the repository at `commit` and nothing newer."""
    ref = instance_ref(instance_id)
    with _building(ref):
        parent = docker("image", "inspect", "--format", '{{index .Config.Labels "repoforge.parent"}}', ref,
                        check=False)
        if parent.returncode == 0 and parent.stdout.decode().strip() == env_ref:
            return ref
        with tempfile.TemporaryDirectory(prefix="repoforge-testbed-") as tmp:
            tree = Path(tmp) / "testbed"
            tree.mkdir()
            git(tree, "init", "-q")
            git(tree, "fetch", "-q", "--depth", "1", f"file://{repo.resolve()}", commit)
            git(tree, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", commit)
            (tree / ".git" / "FETCH_HEAD").unlink(missing_ok=True)
            shutil.rmtree(tree / ".git" / "logs", ignore_errors=True)
            archive = Path(tmp) / "testbed.tar"
            with tarfile.open(archive, "w") as tar:
                tar.add(tree, arcname="testbed")
            container = docker("create", *owner_labels("build"), env_ref, "true").stdout.decode().strip()
            try:
                docker("cp", "-", f"{container}:/", input=archive.read_bytes())
                docker("commit", "--change", "LABEL repoforge.kind=instance",
                       "--change", f"LABEL repoforge.parent={env_ref}",
                       "--change", f"LABEL repoforge.instance_id={instance_id}",
                       "--change", "LABEL repoforge.pid= repoforge.host=", container, ref)
            finally:
                docker("rm", "-f", container, check=False)
    return ref


# --- sandboxes ----------------------------------------------------------------------------------

class DockerSandbox:
    """One running container; every command through `docker exec`."""

    root = TESTBED

    def __init__(self, image: str, network: bool = False, mounts: list[str] = (), env: dict[str, str] | None = None,
                 limits: list[str] = (), kind: str = "sandbox"):
        args = ["run", "-d", *owner_labels(kind), *limits]
        if not network:
            # Names fail at once (a resolver on loopback that refuses) instead of after 10 s per lookup.
            args += ["--network", "none", "--cap-add", "NET_ADMIN", "--dns", "127.0.0.1", "--dns-option", "attempts:1"]
        for name, value in (env or {}).items():
            args += ["-e", f"{name}={value}"]
        for mount in mounts:
            args += ["-v", mount]
        self.container = docker(*args, image, "sleep", "infinity", timeout=120).stdout.decode().strip()
        if not network:
            self._exec_raw(OFFLINE_ROUTES, timeout=30)

    def _exec_raw(self, command: str, timeout: float | None, input: bytes | None = None) -> ExecResult:
        start = time.monotonic()
        wrapped = f"timeout -s KILL {int(timeout)} bash -c {shlex.quote(command)}" if timeout else command
        args = ["exec", *(["-i"] if input is not None else []), "-w", TESTBED, self.container, "bash", "-c", wrapped]
        proc = docker(*args, input=input, check=False, timeout=(timeout + 60) if timeout else None)
        seconds = time.monotonic() - start
        output = (proc.stdout + proc.stderr).decode(errors="replace")
        timed_out = bool(timeout) and proc.returncode == 137 and seconds >= timeout - 1
        return ExecResult(proc.returncode, output, seconds, timed_out)

    def exec(self, command: str, timeout: float | None = None, network: bool = False) -> ExecResult:
        return self._exec_raw(command, timeout)

    def read_file(self, path: str) -> str:
        result = self._exec_raw(f"cat {shlex.quote(path)}", timeout=60)
        if result.exit_code != 0:
            raise FileNotFoundError(path)
        return result.output

    def write_file(self, path: str, content: str) -> None:
        quoted = shlex.quote(path)
        self._exec_raw(f'mkdir -p "$(dirname {quoted})" && cat > {quoted}', timeout=60, input=content.encode())

    def apply_patch(self, patch: str) -> None:
        if not patch.strip():
            return
        self.write_file("/tmp/repoforge.patch", patch)
        result = self._exec_raw("git apply --whitespace=nowarn /tmp/repoforge.patch", timeout=60)
        if result.exit_code != 0:
            raise PatchError(result.output.strip())

    def diff(self) -> str:
        return self._exec_raw("git add -A && git diff --cached --no-color HEAD", timeout=120).output

    def close(self) -> None:
        docker("rm", "-f", self.container, check=False)


class DockerBuildBox:
    def __init__(self, worktree: Path, base: str, python: str, fingerprint: str):
        self.venv, self.uv, self.python, self.base, self.fingerprint = VENV, "/usr/local/bin/uv", python, base, fingerprint
        cache = uv_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        mounts = [f"{worktree}:{TESTBED}", f"{uv_binary()}:/usr/local/bin/uv:ro", f"{cache}:/uv-cache"]
        env = {"UV_CACHE_DIR": "/uv-cache", "UV_LINK_MODE": "copy"}
        bundle = ca_bundle()
        if bundle:
            mounts.append(f"{bundle}:{CA_IN_CONTAINER}:ro")
            env |= {"SSL_CERT_FILE": CA_IN_CONTAINER, "REQUESTS_CA_BUNDLE": CA_IN_CONTAINER, "PIP_CERT": CA_IN_CONTAINER}
        self.sandbox = DockerSandbox(base, network=True, mounts=mounts, env=env, kind="build")

    def keep(self) -> str:
        """Commit the environment; its image id names it, since a rebuild reuses the tag."""
        self.sandbox.exec("rm -rf /tmp/* /root/.cache", timeout=60)
        committed = docker("commit", "--change", "LABEL repoforge.kind=env",
                           "--change", f"LABEL repoforge.parent={image_id(self.base)}",
                           "--change", f"LABEL repoforge.fingerprint={self.fingerprint}",
                           "--change", "LABEL repoforge.pid= repoforge.host=", "--change", f"ENV VIRTUAL_ENV={VENV}",
                           self.sandbox.container, f"repoforge-env:{self.fingerprint}")
        return committed.stdout.decode().strip()

    def close(self) -> None:
        self.sandbox.close()


class DockerBackend:
    name = "docker"

    def __init__(self, memory: str = "4g", cpus: float = 1.0, pids: int = 4096):
        if not engine_answers():
            raise SandboxError("no Docker engine answers (is dockerd running, and may this user use it?)")
        self.limits = ["--memory", memory, "--cpus", str(cpus), "--pids-limit", str(pids)]
        from repoforge.store import remove_stale_containers

        remove_stale_containers()

    def pythons(self) -> dict[str, str]:
        return {version: f"/usr/bin/python{version}" for version in SUITES}

    def build_box(self, worktree: Path, env_dir: Path, python: str) -> DockerBuildBox:
        return DockerBuildBox(worktree, ensure_base(python), self.pythons()[python], env_dir.name)

    def env_exists(self, env_ref: str) -> bool:
        return image_exists(env_ref)

    def instance_sandbox(self, repo: Path, commit: str, env_ref: str, instance_id: str, work: Path,
                         network: bool = False) -> DockerSandbox:
        image = ensure_instance(repo, commit, env_ref, instance_id)
        sandbox = DockerSandbox(image, network=network, limits=self.limits)
        sandbox.exec(RESTORE_GENERATED)
        return sandbox

    def discard_instance(self, instance_id: str) -> None:
        docker("rmi", instance_ref(instance_id), check=False)
