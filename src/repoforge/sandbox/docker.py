"""The docker backend: system base -> Python -> environment -> instance images, built with no registry.

- system base: one Debian suite from debootstrap (the host's, so that interpreters built on the host
  run on it): git, iproute2, patch and the shared libraries CPython's builds link against, slimmed.
- Python: one image per interpreter, shared by every environment built on it: uv's standalone build or
  the host's own installation copied (slimmed) into a layer over the system base, or as the last resort
  a Debian suite whose python3 is that version (sandbox/interpreters.py says which, and why). The build
  checks that the interpreter runs there.
- environment: Python + /opt/venv, installed in a build container with the checkout mounted at
  /testbed, then committed; one per EnvSpec fingerprint, shared by every instance that needs it.
- instance: environment + /testbed holding the repository at its base commit, fetched with depth 1,
  so no later commit, ref or reflog entry exists in it.
Bases and Python images are rebuilt only when their recipe changes (the recipe's hash is in the tag).
Every container runs with limits, is removed by force, and is labeled with its owner's pid so a
crashed run's leftovers are found and removed by the next run. The host's CA bundle is mounted
into build containers (never baked in). Test containers have no network unless asked (then they are on
Docker's default bridge): every route leads to the loopback device so that connects time out as on a
slow network (name lookups fail at once).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import os
import posixpath
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from repoforge.env.python import available_pythons
from repoforge.git.repo import borrowed_objects, isolated_checkout
from repoforge.locks import exclusive
from repoforge.names import docker_tag
from repoforge.sandbox import SandboxError, lineage
from repoforge.sandbox.base import (
    MAX_OUTPUT,
    RESTORE_GENERATED,
    TESTBED,
    Captured,
    ExecResult,
    apply_inside,
    diff_inside,
    read_result_file,
    run_captured,
)
from repoforge.sandbox.channel import Channel, ChannelBroken, server_argv
from repoforge.sandbox.interpreters import (
    LINK,
    SLIMMED,
    STRIP,
    PythonSource,
    has_source,
    pack,
    python_source,
    stripping,
)
from repoforge.sandbox.process import uv_binary, uv_cache_dir

# The host is Debian bookworm: interpreters built on it need its C library and these libraries' sonames.
SYSTEM_SUITE = "bookworm"
TOOLS = ["git", "iproute2", "patch"]
CPYTHON_LIBRARIES = [
    "libssl3",
    "libffi8",
    "zlib1g",
    "libsqlite3-0",
    "libbz2-1.0",
    "liblzma5",
    "libreadline8",
    "libncursesw6",
    "libtinfo6",
    "libuuid1",
    "libgdbm6",
    "libgdbm-compat4",
    "libexpat1",
    "libnsl2",
    "libcrypt1",
]
# A Debian suite's own python3; before 3.12 Debian splits distutils out, and uv needs it for older Pythons.
DEBIAN_PYTHON = {
    "bullseye": ["python3", "python3-distutils"],
    "bookworm": ["python3", "python3-distutils"],
    "trixie": ["python3"],
}
# git pulls in the full perl (about 45 MB) for commands no test harness uses (add -i, send-email,
# svn); perl-base, which dpkg itself needs, stays.
SLIM_PACKAGES = re.compile(r"perl|perl-modules-[\d.]+|libperl5[\d.]+|liberror-perl")
SLIM = [
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf",
    "var/log",
]
# What a copied interpreter must import in its image; ldd names any library its modules miss.
PYTHON_CHECK = "import ssl, sqlite3, ctypes, lzma, bz2, zlib, decimal, hashlib"
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
    for path in (
        os.environ.get("REPOFORGE_CA_BUNDLE"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if path and Path(path).is_file():
            return path
    return None


def _building(name: str):
    """One builder per image name across threads and processes on this host."""
    return exclusive(LOCKS / (hashlib.sha256(name.encode()).hexdigest()[:16] + ".lock"))


def label_changes(labels: dict[str, str]) -> list[str]:
    """`--change` arguments that set image labels; values are quoted, since an instance id may hold spaces."""
    return [
        arg
        for key, value in labels.items()
        for arg in ("--change", f"LABEL {key}={json.dumps(value, ensure_ascii=False)}")
    ]


UNOWNED = {"repoforge.pid": "", "repoforge.host": ""}  # a committed image is no process's leftover


# --- images -------------------------------------------------------------------------------------


def _digest(*recipe: str) -> str:
    return hashlib.sha256("\0".join(recipe).encode()).hexdigest()[:10]


def can_build_bases() -> bool:
    return shutil.which("debootstrap") is not None and os.geteuid() == 0


def system_base_ref() -> str:
    recipe = [SYSTEM_SUITE, *TOOLS, *CPYTHON_LIBRARIES, *SLIM, SLIM_PACKAGES.pattern]
    return f"repoforge-base:{SYSTEM_SUITE}-{_digest(*recipe)}"


def ensure_system_base() -> str:
    ref = system_base_ref()
    with _building(ref):
        if not image_exists(ref):
            _debootstrap(SYSTEM_SUITE, TOOLS + CPYTHON_LIBRARIES, ref, {"repoforge.kind": "base"})
    return ref


def python_ref(source: PythonSource) -> str:
    if source.kind == "debian":
        recipe = [source.origin, *TOOLS, *DEBIAN_PYTHON[source.origin], *SLIM, SLIM_PACKAGES.pattern, LINK]
    else:
        stripped = STRIP if stripping() else []
        recipe = [system_base_ref(), source.label, source.build, *SLIMMED.values(), *stripped, LINK]
    return f"repoforge-python:{source.version}-{source.kind}-{_digest(*recipe)}"


def ensure_python(source: PythonSource) -> str:
    """The image of one interpreter, built and checked once, shared by every environment built on it."""
    ref = python_ref(source)
    with _building(ref):
        if not image_exists(ref):
            labels = {
                "repoforge.kind": "python",
                "repoforge.python": source.version,
                "repoforge.python_source": source.label,
            }
            if source.kind == "debian":  # a whole suite of its own: it stands on nothing
                _debootstrap(source.origin, TOOLS + DEBIAN_PYTHON[source.origin], ref, labels, source)
            else:
                base = ensure_system_base()
                with tempfile.TemporaryDirectory(prefix="repoforge-python-") as tmp:
                    pack(source, Path(tmp) / "python.tar")
                    _add_layer(base, (Path(tmp) / "python.tar").read_bytes(), labels | {"repoforge.parent": base}, ref)
            _check_python(source, ref)
    return ref


def _debootstrap(
    suite: str, packages: list[str], ref: str, labels: dict[str, str], python: PythonSource | None = None
) -> None:
    """A slimmed minbase of `suite` with `packages`, imported as `ref` (with `python`'s uniform link)."""
    if not can_build_bases():
        raise SandboxError("building a base image needs root and debootstrap (apt-get install debootstrap)")
    mirror = os.environ.get("REPOFORGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    with tempfile.TemporaryDirectory(prefix="repoforge-rootfs-") as root:
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, root, mirror],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SandboxError(f"debootstrap {suite} failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
        _purge_packages(root)
        for folder in SLIM:
            shutil.rmtree(Path(root, folder), ignore_errors=True)
            Path(root, folder).mkdir(parents=True, exist_ok=True)
        if python is not None:
            Path(root, LINK.format(version=python.version).lstrip("/")).symlink_to(python.interpreter)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        changes = [
            *label_changes(labels),
            "--change",
            f"ENV PATH={PATH}",
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            'CMD ["bash"]',
        ]
        imported = subprocess.run(["docker", "import", *changes, "-", ref], stdin=tar.stdout, capture_output=True)
        tar.wait()
        if imported.returncode != 0:
            raise SandboxError(f"docker import failed: {imported.stderr.decode(errors='replace')}")


def _purge_packages(root: str) -> None:
    listed = subprocess.run(["chroot", root, "dpkg-query", "-W", "-f", "${Package}\n"], capture_output=True, text=True)
    drop = [name for name in listed.stdout.split() if SLIM_PACKAGES.fullmatch(name)]
    if drop:
        subprocess.run(["chroot", root, "dpkg", "--purge", "--force-depends", *drop], capture_output=True)


def _add_layer(parent: str, archive: bytes, labels: dict[str, str], ref: str) -> None:
    """Commit `parent` plus the tar `archive` (extracted at /) as `ref`."""
    container = docker("create", *owner_labels("build"), parent, "true").stdout.decode().strip()
    try:
        docker("cp", "-", f"{container}:/", input=archive)
        docker("commit", *label_changes(labels | UNOWNED), container, ref)
    finally:
        docker("rm", "-f", container, check=False)


def _check_python(source: PythonSource, ref: str) -> None:
    """Prove the interpreter runs in its image (through the uniform link); else drop the image and say why."""
    dynload = f"{source.prefix}/lib/python{source.version}/lib-dynload"
    script = (
        f"ldd {source.interpreter} {dynload}/*.so 2>&1; "
        f"{LINK.format(version=source.version)} -c {shlex.quote(PYTHON_CHECK)}"
    )
    run = docker("run", "--rm", "--network", "none", ref, "bash", "-c", script, timeout=300, check=False)
    if run.returncode == 0:
        return
    docker("rmi", ref, check=False)
    output = (run.stdout + run.stderr).decode(errors="replace").strip()
    missing = _missing_libraries(output)
    why = f"missing {', '.join(missing)}" if missing else (output.splitlines() or [f"exit {run.returncode}"])[-1]
    system = source.origin if source.kind == "debian" else f"Debian {SYSTEM_SUITE}"
    raise SandboxError(f"Python {source.version} from {source.label} does not run on {system}: {why}")


def _missing_libraries(ldd_output: str) -> list[str]:
    """Each library (or symbol version) ldd did not find, with the file that needs it."""
    missing, needing = [], ""
    for line in ldd_output.splitlines():
        if line.endswith(":") and not line[:1].isspace():
            needing = line[:-1].rsplit("/", 1)[-1]
        elif found := re.match(r"\s+(\S+) => not found", line) or re.search(r"version `([^']+)' not found", line):
            missing.append(f"{found[1]} (for {needing})")
    return list(dict.fromkeys(missing))


def instance_ref(instance_id: str) -> str:
    """One image per instance id; ids Docker refuses (`local__a+b-1`, uppercase) get a valid, distinct tag."""
    return f"repoforge-instance:{docker_tag(instance_id)}"


def testbed_archive(repo: Path, commit: str) -> bytes:
    """A tar of /testbed: the repository at `commit` and nothing newer (isolated_checkout)."""
    with tempfile.TemporaryDirectory(prefix="repoforge-testbed-") as tmp:
        tree = Path(tmp) / "testbed"
        isolated_checkout(repo, commit, tree)
        archive = Path(tmp) / "testbed.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(tree, arcname="testbed")
        return archive.read_bytes()


def cached_testbed(repo: Path, commit: str, folder: Path) -> bytes:
    """testbed_archive, kept in `folder` by commit: the checkout costs 0.1-0.3 s of git, reading it back does not."""
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):  # a row's field: it must not name another path
        return testbed_archive(repo, commit)
    path = folder / f"{commit}.tar"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{commit}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(testbed_archive(repo, commit))
        os.replace(tmp, path)
    return path.read_bytes()


def ensure_instance(repo: Path, commit: str, env_ref: str, instance_id: str) -> str:
    """The environment plus the repository at `commit` and nothing newer."""
    ref = instance_ref(instance_id)
    with _building(ref):
        parent = docker("image", "inspect", "--format", '{{index .Config.Labels "repoforge.parent"}}', ref, check=False)
        if parent.returncode == 0 and parent.stdout.decode().strip() == env_ref:
            return ref
        _add_layer(
            env_ref,
            testbed_archive(repo, commit),
            {"repoforge.kind": "instance", "repoforge.parent": env_ref, "repoforge.instance_id": instance_id},
            ref,
        )
    return ref


# --- sandboxes ----------------------------------------------------------------------------------


def run_args(network: bool, limits: list[str] = (), kind: str = "sandbox") -> list[str]:
    args = ["run", "-d", *owner_labels(kind), *limits]
    if not network:
        # Names fail at once (a resolver on loopback that refuses) instead of after 10 s per lookup.
        args += ["--network", "none", "--cap-add", "NET_ADMIN", "--dns", "127.0.0.1", "--dns-option", "attempts:1"]
    return args


class DockerSandbox:
    """One running container; every command through `docker exec`.

    Each `docker exec` costs about 0.1 s, so what a sandbox must do before its first command (the offline routes,
    then `setup`) runs in that command, and `close` does not wait for the container's removal."""

    root = TESTBED

    def __init__(
        self,
        image: str,
        network: bool = False,
        mounts: list[str] = (),
        env: dict[str, str] | None = None,
        limits: list[str] = (),
        kind: str = "sandbox",
        setup: str = "",
    ):
        args = run_args(network, limits, kind)
        for name, value in (env or {}).items():
            args += ["-e", f"{name}={value}"]
        for mount in mounts:
            args += ["-v", mount]
        self.container = docker(*args, image, "sleep", "infinity", timeout=120).stdout.decode().strip()
        self.setup = "; ".join(filter(None, ["" if network else OFFLINE_ROUTES, setup]))
        self.reused: ReusedContainer | None = None
        self.testbed: bytes | None = None

    @classmethod
    def reusing(cls, reused: ReusedContainer, testbed: bytes, setup: str) -> DockerSandbox:
        """A sandbox in a container an earlier instance used: its first command waits for the cleanup that
        instance's close started (else does it: empties what that instance could have written and checks that
        nothing else of it is left), then unpacks `testbed` before `setup`."""
        sandbox = cls.__new__(cls)
        sandbox.container, sandbox.setup, sandbox.reused, sandbox.testbed = reused.container, setup, reused, testbed
        return sandbox

    def _exec_raw(
        self, command: str, timeout: float | None, input: bytes | None = None, max_output: int = MAX_OUTPUT
    ) -> ExecResult:
        start = time.monotonic()
        setup, nonce = self.setup, secrets.token_hex(12)
        wrapped = command
        if setup:  # nothing of the checkout has run yet: the nonce is still unknown to it
            wrapped = f"if ! out=$({{ {setup}\n}} 2>&1); then printf '{nonce}%s' \"$out\"; exit 1; fi; {wrapped}"
        if self.testbed is not None and self.reused.cleaning:
            left = self.reused.take_cleanup()
            if left:
                self._replace_reused(left)
        if self.reused:
            run = self._run_reused(*self._in_reused(wrapped, input, nonce, timeout), timeout, max_output)
        else:
            run = self._docker_exec(_timed(wrapped, timeout), input, timeout, max_output)
        seconds = time.monotonic() - start
        output = run.output
        if self.testbed is not None:  # a reset that did not say it finished (killed, say) left the container as it was
            if not output.startswith(nonce + READY):
                self._replace_reused(_left(output, nonce))
                return self._exec_raw(command, timeout, input, max_output)
            output = output[len(nonce + READY) :]
            if self.reused.dev is None:  # a new container's reset took /dev's first state
                self.reused.dev, _, output = output.partition("\n")
        if (setup or self.testbed) and output.startswith(nonce):
            raise SandboxError(f"the sandbox could not be set up: {output[len(nonce) :].strip()[-500:]}")
        self.setup, self.testbed = "", None
        timed_out = run.timed_out or (bool(timeout) and run.exit_code == 137 and seconds >= timeout - 1)
        return ExecResult(run.exit_code, output, seconds, timed_out)

    def _docker_exec(self, command: str, input: bytes | None, timeout: float | None, max_output: int) -> Captured:
        args = ["exec", *(["-i"] if input is not None else []), "-w", TESTBED, self.container, "bash", "-c", command]
        # The client gets a minute more than the command: killing it would leave the command running.
        return run_captured(["docker", *args], (timeout + 60) if timeout else None, max_output, input=input)

    def _in_reused(
        self, wrapped: str, input: bytes | None, nonce: str, timeout: float | None
    ) -> tuple[str, bytes | None]:
        """Every command of a reused container runs without NET_ADMIN and is killed after `timeout` seconds: by the
        channel's server, else by setpriv and `timeout`. The first one resets the container first."""
        if self.reused.channel is None:
            wrapped = f"{DROP_CAPS} bash -c {shlex.quote(_timed(wrapped, timeout))}"
        if self.testbed is None:
            return wrapped, input
        kills = self.reused.channel is None  # else the channel's server kills, sparing itself
        cleaned, self.reused.cleaned = self.reused.cleaned, False
        reset = reset_command(nonce, self.reused.dev, len(self.testbed), self.reused.routes, kills, cleaned)
        return f"{reset}\n{wrapped}", self.testbed + (input or b"")

    def _run_reused(self, command: str, input: bytes | None, timeout: float | None, max_output: int) -> Captured:
        """Over the container's channel where it has one. A channel that broke spoils the container: on an
        instance's first command, which fails its reset then, the instance gets a new one."""
        if self.reused.channel is None:
            return self._docker_exec(command, input, timeout, max_output)
        try:
            return self.reused.channel.run(command, input, self.testbed is not None, timeout, max_output)
        except ChannelBroken as broken:
            self.reused.spoiled = True
            return broken.partial or Captured(-signal.SIGKILL, f"the container's channel broke: {broken}", False)

    def _replace_reused(self, left: str) -> None:
        """What an earlier instance left behind could not be removed: this instance gets a new container."""
        self.reused.spoiled = True
        self.reused.remove()
        if self.reused.fresh:
            raise SandboxError(f"a new container failed its own reset: {left}")
        self.reused = reused_container(*self.reused.key, self.reused.limits)
        self.container = self.reused.container

    def exec(
        self,
        command: str,
        timeout: float | None = None,
        network: bool = False,
        max_output: int = MAX_OUTPUT,
        input: str | None = None,
    ) -> ExecResult:
        return self._exec_raw(command, timeout, None if input is None else input.encode(), max_output)

    def read_file(self, path: str) -> str:
        return read_result_file(self, path)

    def write_file(self, path: str, content: str) -> None:
        quoted = shlex.quote(path)
        self._exec_raw(f'mkdir -p "$(dirname {quoted})" && cat > {quoted}', timeout=60, input=content.encode())

    def apply_patch(self, patch: str) -> None:
        apply_inside(self, patch)

    def diff(self) -> str:
        return diff_inside(self)

    def close(self) -> None:
        if self.reused and not self.reused.spoiled:
            self.reused.in_use, self.reused.fresh = False, False
            self.reused.clean_ahead()
        elif self.reused:
            self.reused.remove()
        else:
            remove_later(self.container)


# --- containers reused between instances of one environment ----------------------------------------

# A reused container's root file system is read-only: these are the only places an instance can write, and each is
# a tmpfs emptied before the next instance. /dev (a tmpfs Docker makes) must list as it did when the container
# started, and no process of an earlier instance may be left; otherwise the container is replaced. HOME is one of
# them, not /root: interpreters copied from the host may live under /root (pyenv's).
HOME = "/home/repoforge"
SCRATCH = ("/testbed", "/tmp", "/var/tmp", HOME)
DEV_DIGEST = "find /dev -mindepth 1 -maxdepth 1 -printf '%y %m %f %l\\n' | sort | md5sum"
LEFTOVERS, READY = "leftovers:", "ready:"
CLEANUP_SECONDS = 300  # for a cleanup run ahead (clean_ahead): it removes what an instance wrote
DROP_CAPS = "setpriv --inh-caps -net_admin --bounding-set -net_admin --"


def _timed(command: str, timeout: float | None) -> str:
    """`command`, killed with what it started after `timeout` seconds (rounded up: 0 would be none)."""
    return f"timeout -s KILL {math.ceil(timeout)} bash -c {shlex.quote(command)}" if timeout else command


def reset_command(
    nonce: str, dev: str | None, testbed_size: int, routes: str = "", kills: bool = True, cleaned: bool = False
) -> str:
    """Run first in a reused container, before the command (outside its `timeout`, when it has one): empties it
    (cleanup_steps), unless the last instance's close already did (`cleaned`), then reads the testbed from the head of
    stdin. In a new container (`dev` None) it first sets `routes` and prints /dev's state after its "ready", for the
    next instances' resets to compare with."""
    first = [] if cleaned else cleanup_steps(nonce, dev, routes, kills)
    unpack = f"out=$(head -c {testbed_size} | tar -x -C / 2>&1) || {_spoiled(nonce, '$out')}"
    return "; ".join([*first, unpack, _ready(nonce, dev)])


def cleanup_steps(nonce: str, dev: str | None, routes: str = "", kills: bool = True) -> list[str]:
    """With `kills`, kill every other process (else the caller has), empty the scratch places, and check that nothing
    of an earlier instance is left. With `dev` None (a new container), set `routes` and take /dev's state as $dev."""
    scratch = " ".join([*SCRATCH, "/dev/shm", "/dev/mqueue"])
    if dev is None:
        first = [f"out=$({{ {routes}; }} 2>&1) || {_spoiled(nonce, '$out')}"] if routes else []
        dev_check = [*first, f"dev=$({DEV_DIGEST})"]
    else:
        dev_check = [f'[ "$({DEV_DIGEST})" = "{dev}" ] || {_spoiled(nonce, "changes in /dev")}']
    return [
        *(["kill -9 -1 2>/dev/null"] if kills else []),  # every process but this shell and pid 1
        "ipcrm --all 2>/dev/null",
        f"find {scratch} -mindepth 1 -delete 2>/dev/null",
        f"chmod 1777 /tmp /var/tmp; chmod 700 {HOME}",
        f'left=$(find {scratch} -mindepth 1 | head -3); [ -z "$left" ] || {_spoiled(nonce, "$left")}',
        *dev_check,
        # killed processes whose parent is gone stay as zombies (pid 1 is sleep): too many, and it is dropped
        f'procs=$(ls -d /proc/[0-9]* | wc -l); [ "$procs" -lt 64 ] || {_spoiled(nonce, "$procs processes")}',
    ]


def cleanup_command(nonce: str, dev: str | None, routes: str = "") -> str:
    """cleanup_steps alone, for a container's channel (whose server has killed the other processes)."""
    return "; ".join([*cleanup_steps(nonce, dev, routes, kills=False), _ready(nonce, dev)])


def _ready(nonce: str, dev: str | None) -> str:
    """What a reset prints once done; in a new container (`dev` None), /dev's first state and a newline after it."""
    return f'printf "{nonce}{READY}%s\\n" "$dev"' if dev is None else f"printf {nonce}{READY}"


def _spoiled(nonce: str, what: str) -> str:
    return f'{{ printf "{nonce}{LEFTOVERS}%s" "{what}"; exit 1; }}'


def _left(output: str, nonce: str) -> str:
    """What a reset that did not print its "ready" found left of an earlier instance."""
    return output.removeprefix(nonce + LEFTOVERS).strip()[:200] or "the reset did not end"


class ReusedContainer:
    """A container of one environment image that instances take in turn (one at a time, in this process)."""

    def __init__(self, image: str, network: bool, limits: list[str]):
        self.key, self.limits = (image, network), limits
        self.in_use, self.fresh, self.spoiled = True, True, False
        tmpfs = [f"--tmpfs={path}:exec" for path in SCRATCH]
        args = [*run_args(network, limits), "--read-only", "--cap-drop", "MKNOD", "-e", f"HOME={HOME}", *tmpfs]
        self.container = docker(*args, image, "sleep", "infinity", timeout=120).stdout.decode().strip()
        # Set before the first instance (by _set_up, else by its reset): the routes, which instances cannot change
        # (they lack NET_ADMIN), and /dev's first state, which every later reset compares with.
        self.routes, self.dev = "" if network else OFFLINE_ROUTES, None
        # Ray ends its workers without their exit handlers, and their children with them: a watcher that is no
        # child of this process (its shell starts it in the background and ends) removes the container when the pipe
        # it reads closes, which this process's end does, however it ends; remove() closes it sooner.
        watch = f"exec 3<&0; (cat <&3 > /dev/null; exec docker rm -f {self.container}) > /dev/null 2>&1 &"
        starter = subprocess.Popen(["sh", "-c", watch], stdin=subprocess.PIPE, start_new_session=True)
        starter.wait()
        self.pipe = starter.stdin
        self.channel = open_channel(self.container)
        # The nonce of the cleanup an instance's close left running over the channel, and whether the container is
        # clean (then the next instance's first command only unpacks its testbed).
        self.cleaning: str | None = None
        self.cleaned = False
        if self.channel:
            self._set_up()

    def _set_up(self) -> None:
        """Set the routes and take /dev's first state now (in the background, for a container started ahead), not
        in the first instance's first command."""
        nonce = secrets.token_hex(12)
        command = cleanup_command(nonce, None, self.routes)
        try:
            output = self.channel.run(command, None, False, CLEANUP_SECONDS, MAX_OUTPUT, drop_net_admin=False).output
        except ChannelBroken:  # each command a `docker exec`, the first one resetting as without a channel
            self.channel.close()
            self.channel = None
            return
        if not output.startswith(nonce + READY):
            self.remove()
            raise SandboxError(f"a new container failed its own reset: {_left(output, nonce)}")
        self.dev, self.cleaned = output[len(nonce + READY) :].partition("\n")[0], True

    def clean_ahead(self) -> None:
        """Empty the container for the next instance now, without waiting: the host grades meanwhile."""
        # No channel, a first reset that did not end, or a cleanup still pending (no instance ran since).
        if self.channel is None or self.dev is None or self.cleaning:
            return
        nonce = secrets.token_hex(12)
        try:
            self.channel.submit(
                cleanup_command(nonce, self.dev), None, reset=True, timeout=CLEANUP_SECONDS, max_output=MAX_OUTPUT
            )
            self.cleaning = nonce
        except ChannelBroken:
            self.spoiled = True

    def take_cleanup(self) -> str | None:
        """Wait for the cleanup clean_ahead left running: what it found left of the last instance, else None."""
        nonce, self.cleaning = self.cleaning, None
        try:
            output = self.channel.collect().output
        except ChannelBroken as broken:
            return f"the container's channel broke: {broken}"
        self.cleaned = output == nonce + READY
        return None if self.cleaned else _left(output, nonce)

    def remove(self) -> None:
        """Remove the container, without waiting for it."""
        self.pipe.close()
        if self.channel:
            self.channel.close()


def open_channel(container: str) -> Channel | None:
    """The container's command channel, if its environment's interpreter can serve one (else: a `docker exec` per
    command)."""
    try:
        return Channel(["docker", "exec", "-i", "-w", "/", container, *server_argv(f"{VENV}/bin/python")])
    except ChannelBroken:
        return None


_reusable: list[ReusedContainer] = []  # in use, or idle: of the environment this process will likely need next
# Being started in the background for that environment (at most one), so that its instance does not wait for
# `docker run` (0.45 s).
_ahead: dict[tuple[str, bool], Future] = {}
_starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="repoforge-ahead")


def reused_container(image: str, network: bool, limits: list[str], ahead: str | None = None) -> ReusedContainer:
    """This process's idle container of `image`, else the one started ahead for it, else a new one. Of the others,
    only a container of `ahead` (the environment this process will likely need next) is kept, or started now."""
    key, next_key = (image, network), (ahead or image, network)
    entry = next((e for e in _reusable if e.key == key and not e.in_use and not e.spoiled), None)
    if entry is None:
        entry = _started_ahead(key) or ReusedContainer(image, network, limits)
        _reusable.append(entry)
    entry.in_use = True
    for other in [e for e in _reusable if e.spoiled or (not e.in_use and e.key != next_key)]:
        other.remove()
        _reusable.remove(other)
    for other in [k for k in _ahead if k != next_key]:
        _ahead.pop(other).add_done_callback(_discard_started)
    if next_key not in _ahead and not any(e.key == next_key for e in _reusable):
        _ahead[next_key] = _starter.submit(ReusedContainer, *next_key, limits)
    return entry


def _started_ahead(key: tuple[str, bool]) -> ReusedContainer | None:
    future = _ahead.pop(key, None)
    try:
        return future.result() if future else None
    except SandboxError:  # it did not start: one is started now, which says why if it fails too
        return None


def _discard_started(future: Future) -> None:
    try:
        future.result().remove()
    except SandboxError:
        pass


@atexit.register
def _remove_reused() -> None:
    for entry in _reusable:
        entry.remove()
    for future in _ahead.values():
        _discard_started(future)


_removing: list[subprocess.Popen] = []


def remove_later(container: str) -> None:
    """`docker rm -f` without waiting for it (0.2-0.3 s); removals_done() waits, and so does the process's exit."""
    _removing[:] = [proc for proc in _removing if proc.poll() is None]
    _removing.append(
        subprocess.Popen(["docker", "rm", "-f", container], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    )


@atexit.register
def removals_done() -> None:
    while _removing:
        _removing.pop().wait()


class DockerBuildBox:
    def __init__(self, worktree: Path, source: PythonSource, env_dir: Path):
        self.image = ensure_python(source)
        self.venv, self.uv, self.env_dir = VENV, "/usr/local/bin/uv", env_dir
        self.python, self.python_source = LINK.format(version=source.version), source.label
        cache = uv_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        mounts = [f"{worktree}:{TESTBED}", f"{uv_binary()}:/usr/local/bin/uv:ro", f"{cache}:/uv-cache"]
        mounts += self._objects_mounts(worktree)
        env = {"UV_CACHE_DIR": "/uv-cache", "UV_LINK_MODE": "copy"}
        bundle = ca_bundle()
        if bundle:
            mounts.append(f"{bundle}:{CA_IN_CONTAINER}:ro")
            env |= {
                "SSL_CERT_FILE": CA_IN_CONTAINER,
                "REQUESTS_CA_BUNDLE": CA_IN_CONTAINER,
                "PIP_CERT": CA_IN_CONTAINER,
            }
        try:
            self.sandbox = DockerSandbox(self.image, network=True, mounts=mounts, env=env, kind="build")
        except SandboxError:
            self._drop_alternates()
            raise

    def _objects_mounts(self, worktree: Path) -> list[str]:
        """The checkout borrows the repository's objects: they are mounted, so that git works in the box (a version
        computed from git, as versioneer does, is then the checkout's and not 0+unknown). At fixed paths, named by
        an alternates file of the box's own: the mount points (empty folders) are committed with the environment,
        which must not depend on where the repository is on this host, nor differ from its relatives' (lineage)."""
        borrowed = borrowed_objects(worktree)
        if not borrowed:
            self.alternates = None
            return []
        fixed = [f"/repoforge-objects/{index}" for index in range(len(borrowed))]
        with tempfile.NamedTemporaryFile("w", prefix="repoforge-alternates-", delete=False) as alternates:
            alternates.write("".join(f"{path}\n" for path in fixed))
        self.alternates = Path(alternates.name)
        own = f"{self.alternates}:{TESTBED}/.git/objects/info/alternates:ro"
        return [*(f"{path}:{inside}:ro" for path, inside in zip(borrowed, fixed, strict=True)), own]

    def keep(self) -> str:
        """Commit the environment, stored over its nearest relative where that is smaller (sandbox/lineage.py);
        its image id names it, since a rebuild reuses the tag."""
        self.sandbox.exec("rm -rf /tmp/* /root/.cache", timeout=60)
        python = image_id(self.image)
        labels = {"repoforge.kind": "env", "repoforge.parent": python, "repoforge.fingerprint": self.env_dir.name}
        committed = docker(
            "commit",
            *label_changes(labels | UNOWNED),
            "--change",
            f"ENV VIRTUAL_ENV={VENV}",
            self.sandbox.container,
            env_image_ref(self.env_dir.name),
        )
        return rebase_on_lineage(committed.stdout.decode().strip(), self.sandbox.container, python, self.env_dir)

    def close(self) -> None:
        self.sandbox.close()
        self._drop_alternates()

    def _drop_alternates(self) -> None:
        if self.alternates:
            self.alternates.unlink(missing_ok=True)


def env_image_ref(fingerprint: str) -> str:
    return f"repoforge-env:{fingerprint}"


def rebase_on_lineage(built: str, container: str, python: str, env_dir: Path) -> str:
    """The image that holds the environment `built` (committed from `container` on the Python image `python`):
    a layer over its nearest relative where that is smaller and exactly the same, else `built` itself."""
    with tempfile.TemporaryDirectory(prefix="repoforge-lineage-") as tmp:
        archive, changes = Path(tmp) / "venv.tar", Path(tmp) / "changes.tar"
        try:
            with archive.open("wb") as out:
                copied = subprocess.run(["docker", "cp", f"{container}:{VENV}", "-"], stdout=out)
            entries = lineage.manifest(archive) if copied.returncode == 0 else None
        except (OSError, tarfile.TarError):
            entries = None
        if entries is None:  # a storage saving lost, never the build: neither rebased nor a relative for others
            return built
        found = lineage.nearest(env_dir.parent, python, entries, env_dir.name, image_exists)
        image, depth = built, 0
        if found:
            parent, (removed, changed, _) = found
            try:
                lineage.changes_archive(archive, changed, changes)
                image = _rebased(built, python, parent["image"], removed, changes, env_dir.name)
                depth = parent["depth"] + 1
            except SandboxError:
                pass  # lineage.NotRebased, or docker failed: the independent build stays
        lineage.record(env_dir / lineage.MANIFEST, python, image, depth, entries)
    return image


def _rebased(built: str, python: str, parent: str, removed: list[str], changes: Path, fingerprint: str) -> str:
    """`parent` made into `built`'s file system (`built` stands on `python`): the `removed` entries gone, the
    `changes` archive added; checked to equal `built` and be smaller than its own layer, then tagged in its place."""
    root = posixpath.dirname(VENV)  # the archive holds venv/...
    box = DockerSandbox(parent, network=True, kind="build")
    try:
        if removed:
            gone = box.exec("xargs -0 rm -rf --", timeout=300, input="\0".join(f"{root}/{p}" for p in removed))
            if gone.exit_code != 0:
                raise SandboxError(f"cannot remove the parent's files: {gone.output[-300:]}")
        docker("cp", "-", f"{box.container}:{root}", input=changes.read_bytes(), timeout=600)
        labels = {"repoforge.kind": "env", "repoforge.parent": parent, "repoforge.fingerprint": fingerprint}
        rebased = docker("commit", *label_changes(labels | UNOWNED), box.container).stdout.decode().strip()
    finally:
        box.close()
    same = _file_system_digest(rebased) == _file_system_digest(built) and _env(rebased) == _env(built)
    smaller = _size(rebased) - _size(parent) <= lineage.WORTH_IT * (_size(built) - _size(python))
    if not (same and smaller):
        docker("rmi", rebased, check=False)
        raise lineage.NotRebased("not the independent build" if not same else "not smaller")
    docker("tag", rebased, env_image_ref(fingerprint))
    docker("rmi", built, check=False)  # untagged now: nothing else names it
    return rebased


def _file_system_digest(image: str) -> str:
    run = docker("run", "--rm", "--network", "none", image, "bash", "-c", lineage.FILE_SYSTEM_DIGEST, timeout=600)
    return run.stdout.decode().strip()


def _env(image: str) -> list[str]:
    """The image's environment variables; docker commit does not keep their order."""
    return sorted(json.loads(docker("image", "inspect", "--format", "{{json .Config.Env}}", image).stdout))


def _size(image: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout.decode())


class DockerBackend:
    name = "docker"

    def __init__(self, memory: str = "4g", cpus: float = 1.0, pids: int = 4096):
        if not engine_answers():
            raise SandboxError("no Docker engine answers (is dockerd running, and may this user use it?)")
        self.limits = ["--memory", memory, "--cpus", str(cpus), "--pids-limit", str(pids)]
        from repoforge.store import remove_stale_containers

        remove_stale_containers()

    def pythons(self) -> dict[str, str]:
        """The process backend's versions (so both choose alike) that some source puts into an image."""
        return {version: LINK.format(version=version) for version in available_pythons() if has_source(version)}

    def build_box(self, worktree: Path, env_dir: Path, python: str) -> DockerBuildBox:
        source = python_source(python)
        if source is None:
            raise SandboxError(f"no source of Python {python} for an image (uv, the host, Debian)")
        return DockerBuildBox(worktree, source, env_dir)

    def env_exists(self, env_ref: str) -> bool:
        """A container this process keeps, or starts ahead, of `env_ref` answers without asking the engine (0.03 s
        per instance)."""
        kept = any(entry.key[0] == env_ref and not entry.spoiled for entry in _reusable)
        return kept or any(key[0] == env_ref for key in _ahead) or image_exists(env_ref)

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
    ) -> DockerSandbox:
        """With `reuse`, the instance runs in this process's container of `env_ref` (one is started if there is
        none): no container start and no instance image, the checkout unpacked in the first command; a container of
        `ahead` (the environment the next instance will likely need) is started meanwhile."""
        if reuse:
            reused = reused_container(env_ref, network, self.limits, ahead)
            testbed = cached_testbed(repo, commit, work / "testbeds")
            return DockerSandbox.reusing(reused, testbed, RESTORE_GENERATED)
        image = ensure_instance(repo, commit, env_ref, instance_id)
        return DockerSandbox(image, network=network, limits=self.limits, setup=RESTORE_GENERATED)

    def discard_instance(self, instance_id: str) -> None:
        removals_done()  # an image a container still uses cannot be removed
        docker("rmi", instance_ref(instance_id), check=False)
