"""Build a project's environment at a commit with no per-repository knowledge.

The recipe is inferred: the project's metadata gives the dependencies and the test requirements,
the commit date gives the package index's state (`uv --exclude-newer`), and the failures observed
move single packages' cutoffs or switch to the next install strategy. Environments are keyed by a
fingerprint of what determines them, so commits with the same dependency set share one.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from repoforge.env import index
from repoforge.env.metadata import ProjectMetadata, read_metadata
from repoforge.env.python import PYTHON_RELEASES, available_pythons, choose_python, python_preference
from repoforge.git.repo import commit_date_of_last_change, release_version
from repoforge.locks import exclusive
from repoforge.sandbox.base import TESTBED, Backend, BuildBox, save_generated
from repoforge.sandbox.process import uv_binary
from repoforge.schema import BuildAttempt, EnvSpec, InstallStep
from repoforge.testrun.command import (
    RUNNER_MODULES,
    SUMMARY,
    read_runner_facts,
    runner_facts_command,
    test_command,
)

RECIPE_VERSION = "10"  # bump when the way environments are built changes
INSTALL_TIMEOUT = 900
MAX_REPAIRS = 8
OLDER_PYTHONS = 2  # tried when a build left test requirements out
OLDER_PYTHON_CHOICE = "older-python.json"  # in the first planned environment's folder: the fingerprint used instead
# uv gave up waiting for a cache lock another build (another process or container) held.
CACHE_LOCKED = re.compile(r"when waiting for lock|is another uv process running")

# Test tooling must work on the chosen interpreter, so it is never older than that interpreter.
TOOLING = {
    "pytest",
    "pluggy",
    "py",
    "setuptools",
    "wheel",
    "attrs",
    "more-itertools",
    "atomicwrites",
    "iniconfig",
    "packaging",
    "tomli",
    "exceptiongroup",
    "importlib-metadata",
    "zipp",
    "six",
    "setuptools-scm",
    "pyparsing",
    "colorama",
}
# Tools for coverage, linting, docs, release and CI reports add failure modes and no test outcome,
# unless the tests use a marker or fixture of one (ProjectMetadata.needed_plugins).
NOT_FOR_TESTS = re.compile(
    r"^(pytest-cov|coverage|codecov|coveralls|python-coveralls|pytest-codecov|tox|nox|pre-commit|"
    r"black|flake8.*|pylint|mypy|isort|ruff|sphinx.*|twine|check-manifest|bump2?version|"
    r"pytest-flake8|pytest-mypy|pytest-black|pytest-isort|pytest-pylint|pytest-pep8|pep8|pyflakes|"
    r"pytest-azurepipelines|pytest-github-actions-annotate-failures)$"
)


class BuildFailed(RuntimeError):
    def __init__(self, reason: str, attempts: list[BuildAttempt]):
        super().__init__(reason)
        self.attempts = attempts

    def summary(self) -> str:
        """The reason and each attempt's telling line, for one-line reports."""
        return "; ".join([str(self), *(f"{a.strategy}: {_last_line(a.error)}" for a in self.attempts)])


# --- planning ---------------------------------------------------------------------------------


def cutoff_date(commit_date: str, manifests_changed: str | None) -> str:
    """The package index's date: the commit's quarter start, never before the manifests' change.

    Rounding to a quarter lets neighbouring commits share an environment; the manifests' own
    date keeps a newly required release reachable.
    """
    day = date.fromisoformat(commit_date[:10])
    quarter_start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    cutoff = datetime.combine(quarter_start, datetime.min.time())
    if manifests_changed:
        changed = datetime.fromisoformat(manifests_changed).replace(tzinfo=None) + timedelta(seconds=1)
        cutoff = max(cutoff, changed)
    return cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")


def _names(requirements: list[str]) -> list[Requirement]:
    parsed = []
    for text in requirements:
        try:
            parsed.append(Requirement(text))
        except InvalidRequirement:
            continue
    return parsed


def for_tests(meta: ProjectMetadata, name: str) -> bool:
    """Whether the declared test requirement or pytest plugin name is installed for the tests."""
    name = canonicalize_name(name)
    return not NOT_FOR_TESTS.match(name) or name in meta.needed_plugins


def requirements_for_tests(meta: ProjectMetadata, interpreter_newer: bool = False) -> list[str]:
    """What the tests need beyond the project: declared test requirements, then the runner.

    setuptools comes too, dated like the runner: old pytest imports pkg_resources at start-up, and
    a current setuptools would bring plugins (its vendored typeguard) that old pytest rejects. When
    the interpreter is newer than the commit, the project's pins of test tooling were made for an
    older one and are dropped: the tooling floors choose. Exact pins of one package that disagree
    (two requirement files) keep the highest.
    """
    kept = [r for r in _names(meta.test_requirements) if for_tests(meta, r.name)]
    if interpreter_newer:
        for req in kept:
            if canonicalize_name(req.name) in TOOLING:
                req.specifier = SpecifierSet()
    kept = _highest_pins(kept)
    names = {canonicalize_name(r.name) for r in kept}
    return [str(r) for r in kept] + [tool for tool in ("pytest", "setuptools") if tool not in names]


def declared_names(meta: ProjectMetadata) -> set[str]:
    """The packages a project declares it needs to run or to test, each as a name and the marker it is declared
    under ("importlib-metadata; python_version < '3.8'"): what is needed where, whatever the versions."""
    return {
        f"{canonicalize_name(r.name)}; {r.marker}" if r.marker else canonicalize_name(r.name)
        for r in _names(meta.dependencies + meta.test_requirements)
    }


def _highest_pins(requirements: list[Requirement]) -> list[Requirement]:
    highest: dict[str, tuple[Version, Requirement]] = {}
    for req in requirements:
        pinned = [_version(s.version) for s in req.specifier if s.operator == "=="]
        name = canonicalize_name(req.name)
        if len(pinned) == 1 and (name not in highest or pinned[0] > highest[name][0]):
            highest[name] = (pinned[0], req)
    return [r for r in requirements if highest.get(canonicalize_name(r.name), (None, r))[1] is r]


def _version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        return Version("0")


def fingerprint(python: str, cutoff: str, root: Path, meta: ProjectMetadata, facts: list = ()) -> str:
    """What decides an environment: the recipe, python, cutoff, manifests, layout, plugins and other `facts`."""
    digest = hashlib.sha256(f"{RECIPE_VERSION}\0{python}\0{cutoff}\0{facts}\0".encode())
    for name in meta.manifest_files:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    # The editable install's path entry depends on the layout, not on the code.
    digest.update(b"src" if (root / "src").is_dir() else b"flat")
    # Plugins kept because the test files need them: the manifests need not change when they start to.
    digest.update(" ".join(p for p in meta.needed_plugins if NOT_FOR_TESTS.match(p)).encode())
    return digest.hexdigest()[:20]


def tooling_floors(python: str, cutoff: str) -> dict[str, str]:
    floor = max(cutoff, PYTHON_RELEASES.get(python, cutoff[:10]) + "T00:00:00Z")
    return {name: floor for name in sorted(TOOLING)} if floor > cutoff else {}


# --- installing -------------------------------------------------------------------------------


class Installer:
    """Runs uv inside the build box, repairing cutoffs from the failures it reads."""

    def __init__(self, box: BuildBox, spec: EnvSpec, log: list[str], droppable: frozenset[str] = frozenset()):
        self.box, self.spec, self.log = box, spec, log
        self.droppable = droppable  # test requirements that may be left out when they cannot be installed

    def run(self, command: str, timeout: float = 120):
        return self.box.sandbox.exec(command, timeout=timeout, network=True)

    def uv_install(self, name: str, args: list[str], dated: bool = True, tests: list[str] = ()) -> None:
        """Install args and the test requirements tests; a failure moves cutoffs (at most MAX_REPAIRS
        times) or leaves out the droppable test requirement it names (any number of them: projects
        declare many optional ones), never an arg of the project's own (`numpy>=1.15` stays when the
        tests' `numpy==1.16.*` goes)."""
        repairs = 0
        while True:
            argv = [self.box.uv, "pip", "install", "--python", f"{self.box.venv}/bin/python", *args, *tests]
            if dated:
                argv[3:3] = self._cutoff_args()
            if self.spec.install_env:
                argv = ["env", *(f"{k}={v}" for k, v in sorted(self.spec.install_env.items())), *argv]
            result = self.run(_shell(argv), timeout=INSTALL_TIMEOUT)
            self.log.append(f"$ {_shell(argv)}\n{result.output}")
            if result.exit_code == 0:
                self.spec.install_steps.append(InstallStep(name=name, argv=argv))
                return
            if result.timed_out:
                raise InstallError(_tail(result.output))
            if CACHE_LOCKED.search(result.output) and repairs < MAX_REPAIRS:
                repairs += 1  # another build held uv's cache: nothing to repair, the same install again
                continue
            if dated and repairs < MAX_REPAIRS and self._repair(result.output):
                repairs += 1
                continue
            culprit = self._culprit(result.output, tests)
            if culprit is None:
                raise InstallError(
                    ("too many repairs; last error:\n" if repairs == MAX_REPAIRS else "") + _tail(result.output)
                )
            self.spec.dropped.append(culprit)
            tests = [t for t in tests if _requirement_name(t) != culprit]

    def _cutoff_args(self) -> list[str]:
        args = ["--exclude-newer", self.spec.exclude_newer]
        for name, day in sorted(self.spec.package_floors.items()):
            args += ["--exclude-newer-package", f"{name}={day}"]
        return args

    def _floor(self, name: str, day: str | None) -> bool:
        name = canonicalize_name(name)
        if not day or self.spec.package_floors.get(name, "") >= day:
            return False
        self.spec.package_floors[name] = day
        return True

    def date_like(self, package: str, runner: str, version: str) -> bool:
        """Limit `package` to releases made by the time `runner` `version` was: they were made against it."""
        day = index.release_date(runner, version)
        if not day or self.spec.package_floors.get(package) == _after(day):
            return False
        self.spec.package_floors[package] = _after(day)
        return True

    def _repair(self, output: str) -> bool:
        """Move one package's cutoff to fit the failure; False when nothing fits."""
        for name, published in re.findall(
            r"`([\w.\-]+)` was filtered by `exclude-newer(?:-package)?`.*?published at (\S+?)\.?\s", output, re.S
        ):
            if self._floor(name, _after(published)):
                return True
        for name in re.findall(r"Failed to (?:build|download and build) `([\w.\-]+)(?:[=@ ][^`]*)?`", output):
            if self._floor(name, _after(index.first_wheel_date(name, self.spec.python))):
                return True
        # Releases whose metadata uv cannot parse (old pandas' `pytz (>=2011k)`): the next release is the first.
        for name, version in re.findall(r"Metadata for `([\w.\-]+)` \(v([^)\s]+)\) could not be parsed", output):
            if self._floor(name, _after(index.next_release_date(name, version))):
                return True
        return False

    def _culprit(self, output: str, tests: list[str]) -> str | None:
        """A droppable test requirement among tests that the failure names (failed, or brought what failed)."""
        named = re.findall(
            r"(?:Failed to (?:build|download and build)|included because|you require) `?([\w.\-]+)", output
        )
        present = {_requirement_name(t) for t in tests}
        return next((n for n in map(canonicalize_name, named) if n in self.droppable and n in present), None)


def _requirement_name(arg: str) -> str | None:
    try:
        return canonicalize_name(Requirement(arg).name)
    except InvalidRequirement:
        return None


class InstallError(RuntimeError):
    pass


def _after(timestamp: str | None) -> str | None:
    if not timestamp:
        return None
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00")) + timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _shell(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def _last_line(text: str) -> str:
    """The line of an error that says most: uv's last cause, else the last line, shortened."""
    lines = [
        line.strip() for line in text.strip().splitlines() if line.strip() and not line.strip().startswith("hint:")
    ]
    causes = [line for line in lines if line.startswith(("cause:", "error:"))]
    return ((causes or lines or ["?"])[-1])[:200]


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


_READ_REQUIRES = r"""
import glob, json, os, sys
for site in sys.path:
    for info in glob.glob(os.path.join(site, "*.dist-info")):
        try:
            url = json.load(open(os.path.join(info, "direct_url.json")))
        except (OSError, ValueError):
            continue
        if url.get("url", "").rstrip("/").endswith("testbed") or url.get("dir_info", {}).get("editable"):
            for line in open(os.path.join(info, "METADATA"), errors="replace"):
                if line.startswith("Requires-Dist:"):
                    print(line.split(":", 1)[1].strip())
            sys.exit(0)
sys.exit(3)  # the project is not installed from the checkout
"""


def _read_requires(inst: Installer):
    """Prints the checkout's installed Requires-Dist; fails when the checkout is not what is installed."""
    return inst.run(f"{inst.box.venv}/bin/python -c {_shell([_READ_REQUIRES])}")


def declared_requirements(inst: Installer, extras: list[str]) -> list[str]:
    """Requires-Dist of the project installed editable, evaluated for the venv's Python and `extras`."""
    result = _read_requires(inst)
    python = inst.spec.python
    environment = default_environment() | {"python_version": python, "python_full_version": f"{python}.0"}
    kept = []
    for req in _names(result.output.splitlines()):
        wanted = not req.marker or any(req.marker.evaluate(environment | {"extra": e}) for e in extras or [""])
        if wanted:
            req.marker = None
            kept.append(str(req))
    return kept


def _tests(inst: Installer, meta: ProjectMetadata) -> list[str]:
    wanted = requirements_for_tests(
        meta, interpreter_newer=bool(tooling_floors(inst.spec.python, inst.spec.exclude_newer))
    )
    return [r for r in wanted if _requirement_name(r) not in inst.spec.dropped]


def _target(extras: list[str]) -> str:
    return f"{TESTBED}[{','.join(extras)}]" if extras else TESTBED


def strategy_editable(inst: Installer, meta: ProjectMetadata) -> None:
    """The literal recipe: the project editable with its test extras, everything date-limited."""
    inst.uv_install("project and tests", ["-e", _target(meta.test_extras)], tests=_tests(inst, meta))


COMPAT_EDITABLE = ["--no-deps", "-e", TESTBED, "--config-settings", "editable_mode=compat"]
EDITABLE_BACKEND = ["setuptools>=64", "wheel"]  # setuptools 64 brought editable installs (PEP 660)


def strategy_compat(inst: Installer, meta: ProjectMetadata) -> None:
    """For builds old setuptools cannot do: the project alone with a current backend, then its deps."""
    isolated = _install_compat(inst, meta)
    requires = declared_requirements(inst, meta.test_extras)
    inst.uv_install("dependencies and tests", requires, tests=_tests(inst, meta))
    # A test requirement that depends back on the project (a plugin of it) may have replaced the checkout with a
    # release from the index, its version unmet by the checkout's: put the checkout back, the release's deps kept.
    if _read_requires(inst).exit_code != 0:
        flags = [] if isolated else ["--no-build-isolation"]
        inst.uv_install("project again (a dependency had replaced it)", [*flags, *COMPAT_EDITABLE], dated=False)


def _install_compat(inst: Installer, meta: ProjectMetadata) -> bool:
    """The project alone, editable in compat mode; False when it needed the current backend installed first."""
    try:
        inst.uv_install("project (compat editable)", COMPAT_EDITABLE, dated=False)
        return True
    except InstallError as exc:
        if "build_editable" not in str(exc):
            raise
    # The project pins a backend too old for editable installs: build it with a current one instead.
    others = [r for r in meta.build_requires if _requirement_name(r) not in ("setuptools", "wheel")]
    inst.uv_install("current build backend", [*EDITABLE_BACKEND, *others], dated=False)
    inst.uv_install(
        "project (compat editable, current backend)", ["--no-build-isolation", *COMPAT_EDITABLE], dated=False
    )
    return False


def strategy_path(inst: Installer, meta: ProjectMetadata) -> None:
    """No install of the project: its declared dependencies, and the checkout on sys.path."""
    extras = [r for e in meta.test_extras for r in meta.extras.get(e, [])]
    inst.uv_install("dependencies and tests", [*meta.dependencies, *extras], tests=_tests(inst, meta))
    # An import line, so that the checkout comes first: ahead of any installed copy of the project
    # (a test runner testing itself, or a dependency that depends back on it).
    write_pth = (
        f"site=$({inst.box.venv}/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')"
        f" && if [ -d {TESTBED}/src ]; then p=\"'{TESTBED}/src', '{TESTBED}'\"; else p=\"'{TESTBED}'\"; fi"
        f' && echo "import sys; sys.path[0:0] = [$p]" > $site/_repoforge_testbed.pth'
    )
    if inst.run(write_pth).exit_code != 0:
        raise InstallError("cannot write the path entry for the checkout")
    inst.spec.install_steps.append(InstallStep(name="checkout on sys.path", argv=["sh", "-c", write_pth]))


STRATEGIES = [
    ("editable", strategy_editable),
    ("compat-editable", strategy_compat),
    ("checkout-on-path", strategy_path),
]


# --- the entry point --------------------------------------------------------------------------


def plan(
    repo: Path,
    commit: str,
    commit_date: str,
    worktree: Path,
    backend: Backend,
    version_commit: str | None = None,
    also: list[str] = (),
    python: str | None = None,
) -> tuple[EnvSpec, ProjectMetadata]:
    """Read the checkout at `worktree` (of `commit`) and decide python (unless given), cutoff and fingerprint.

    The project's own version is the last release tag before `version_commit` (default: `commit`): the
    instance's, when an environment planned at a later commit serves it (tests may check the version).
    `also` are more test requirements (another commit's), installed where they can be.
    """
    meta = read_metadata(worktree)
    meta.test_requirements += list(also)
    available = backend.pythons()
    python = python or choose_python(meta, commit_date, available)
    if python is None:
        wanted = meta.requires_python or ", ".join(meta.classifier_pythons) or "unknown"
        raise BuildFailed(f"no suitable python (wants {wanted}; have {', '.join(available)})", [])
    cutoff = cutoff_date(commit_date, commit_date_of_last_change(repo, commit, meta.manifest_files))
    spec = EnvSpec(
        python=python,
        exclude_newer=cutoff,
        package_floors=tooling_floors(python, cutoff),
        install_env=_scm_version(meta, release_version(repo, version_commit or commit)),
    )
    spec.fingerprint = fingerprint(python, cutoff, worktree, meta, [*sorted(spec.install_env.items()), *also])
    return spec, meta


def plan_and_build(
    repo: Path, commit: str, commit_date: str, worktree: Path, backend: Backend, store: Path, **plan_options
) -> tuple[EnvSpec, str, bool]:
    """plan() and ensure_env(). A build that had to leave test requirements out is done again on the next older
    Python the project prefers (at most OLDER_PYTHONS of them) where one of those requirements installs, and the
    build that leaves out fewest is kept: a test dependency with no release yet for a new Python (numba for 3.11 in
    January 2023) would skip the tests that use it."""
    spec, meta = plan(repo, commit, commit_date, worktree, backend, **plan_options)
    best = ensure_env(spec, meta, worktree, store, backend)
    # The choice is made once per environment (its dry runs ask the index): later calls read it.
    decided = env_folder(store, backend.name, spec.fingerprint) / OLDER_PYTHON_CHOICE
    chosen = json.loads(decided.read_text()) if decided.exists() else ""
    if chosen is None:
        return best
    if chosen and (built := built_env(spec.model_copy(update={"fingerprint": chosen}), store, backend)):
        return *built, True
    preference = python_preference(meta, commit_date, backend.pythons())
    older = preference[preference.index(spec.python) + 1 :] if spec.python in preference else []
    for python in older[:OLDER_PYTHONS]:
        left_out = [r for r in _names(meta.test_requirements) if canonicalize_name(r.name) in best[0].dropped]
        if not left_out:
            break
        if not any_installs_on(python, left_out, spec.exclude_newer):
            continue
        try:
            built = ensure_env(
                *plan(repo, commit, commit_date, worktree, backend, **plan_options, python=python),
                worktree,
                store,
                backend,
            )
        except BuildFailed:
            continue
        if len(built[0].dropped) < len(best[0].dropped):
            best = built
    decided.write_text(json.dumps(best[0].fingerprint if best[0].fingerprint != spec.fingerprint else None))
    return best


def any_installs_on(python: str, requirements: list[Requirement], cutoff: str) -> bool:
    """Whether uv would install one of `requirements` as of `cutoff` on the host's `python`: dry runs in one new venv.
    Wheels only, from the index only: the requirements come from the repository, and an sdist's build would run its
    code on the host."""
    host = available_pythons().get(python)
    from_index = [str(r) for r in requirements if not r.url]
    if host is None or not from_index:
        return False
    with tempfile.TemporaryDirectory(prefix="repoforge-dry-run-") as tmp:
        venv = Path(tmp) / "venv"
        if subprocess.run([uv_binary(), "venv", "-q", "--python", host, str(venv)], capture_output=True).returncode:
            return False
        dry = [uv_binary(), "pip", "install", "--dry-run", "-q", "--only-binary", ":all:", "--exclude-newer", cutoff]
        return any(_succeeds([*dry, "--python", str(venv / "bin" / "python"), r]) for r in from_index)


def _succeeds(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=300).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _scm_version(meta: ProjectMetadata, version: str | None) -> dict[str, str]:
    """setuptools-scm's version for this project alone: its last release tag, else 0.0.0.

    A checkout's git may reach no tag at all; a variable for every package would re-version the
    dependencies built from source too (and uv would then reject them).
    """
    if meta.name:
        return {
            f"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_{canonicalize_name(meta.name).replace('-', '_').upper()}": version
            or "0.0.0"
        }
    return {"SETUPTOOLS_SCM_PRETEND_VERSION": version or "0.0.0"} if meta.uses_setuptools_scm else {}


def env_folder(store: Path, backend: str, fingerprint: str) -> Path:
    """Where an environment's spec, logs and (for the process backend) venv live."""
    return store / "envs" / backend / fingerprint


def built_env(spec: EnvSpec, store: Path, backend: Backend) -> tuple[EnvSpec, str] | None:
    """(final spec, environment reference) of spec's fingerprint if it is built (its spec.json comes last)."""
    return built_fingerprint(spec.fingerprint, store, backend)


def built_fingerprint(fingerprint: str, store: Path, backend: Backend) -> tuple[EnvSpec, str] | None:
    env_dir = env_folder(store, backend.name, fingerprint)
    done, ref = env_dir / "spec.json", env_dir / "ref"
    if done.exists() and backend.env_exists(ref.read_text()):
        return EnvSpec.model_validate_json(done.read_text()), ref.read_text()
    return None


def ensure_env(
    spec: EnvSpec, meta: ProjectMetadata, worktree: Path, store: Path, backend: Backend
) -> tuple[EnvSpec, str, bool]:
    """The built environment for spec's fingerprint: (final spec, environment reference, reused?)."""
    env_dir = env_folder(store, backend.name, spec.fingerprint)
    env_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(env_dir / ".lock"):  # one builder per fingerprint; the others wait and reuse
        if built := built_env(spec, store, backend):
            return *built, True
        done, ref = env_dir / "spec.json", env_dir / "ref"
        failed = env_dir / "failed.json"
        if failed.exists():
            record = json.loads(failed.read_text())
            raise BuildFailed(record["reason"], [BuildAttempt(**a) for a in record["attempts"]])
        box = backend.build_box(worktree, env_dir, spec.python)
        try:
            spec = _build(spec.model_copy(update={"python_source": box.python_source}), meta, box, env_dir)
            ref.write_text(box.keep())
        finally:
            box.close()
        done.write_text(spec.model_dump_json(indent=2))
        return spec, ref.read_text(), False


def _build(spec: EnvSpec, meta: ProjectMetadata, box: BuildBox, env_dir: Path) -> EnvSpec:
    attempts: list[BuildAttempt] = []
    droppable = frozenset(canonicalize_name(r.name) for r in _names(meta.test_requirements))
    for name, strategy in STRATEGIES:
        start = time.monotonic()
        trial = spec.model_copy(deep=True)
        log: list[str] = []
        installer = Installer(box, trial, log, droppable)
        try:
            runner = _install_retrying(installer, strategy, meta)
            plugins = [p for p in meta.pytest_plugins if for_tests(meta, _plugin_distribution(p))]
            trial.test_command = test_command(trial.test_runner, runner.version, plugins)
            trial.runner_version, trial.runner_plugins, trial.runner_summary = runner
        except (InstallError, Reinstall) as exc:
            attempts.append(BuildAttempt(strategy=name, ok=False, seconds=time.monotonic() - start, error=str(exc)))
            (env_dir / f"build-{name}.log").write_text("\n".join(log))
            continue
        attempts.append(BuildAttempt(strategy=name, ok=True, seconds=time.monotonic() - start))
        (env_dir / f"build-{name}.log").write_text("\n".join(log))
        saved = installer.run(save_generated(box.venv))
        if saved.exit_code != 0:
            log.append(f"generated files not kept: {saved.output}")
        trial.strategy, trial.attempts = name, attempts
        return trial
    installer.run(f"rm -rf {box.venv}")
    reason = "install failed"
    (env_dir / "failed.json").write_text(json.dumps({"reason": reason, "attempts": [a.model_dump() for a in attempts]}))
    raise BuildFailed(reason, attempts)


def _plugin_distribution(plugin: str) -> str:
    """The distribution a `-p` plugin name comes from, by the convention of plugin names
    (`pytest_cov` and `xdist` from pytest-cov and pytest-xdist)."""
    name = canonicalize_name(plugin)
    return name if name.startswith("pytest-") else f"pytest-{name}"


# Hash-based where the Python has it (3.7+): equal sources give equal bytecode whenever they were installed, so
# that environments share their unchanged files (sandbox/lineage.py).
COMPILE = (
    "if {python} -c 'import py_compile; py_compile.PycInvalidationMode' 2>/dev/null; "
    "then mode='--invalidation-mode checked-hash'; fi; "
    "{python} -W ignore -m compileall -q -j 0 $mode "
    '"$({python} -c \'import sysconfig; print(sysconfig.get_paths()["purelib"])\')" >/dev/null 2>&1; true'
)


class Reinstall(Exception):
    """What the install gave broke the runner or the project; the cause is repaired, the strategy runs again."""


# A trivial test, run where the project's conftest cannot interfere: every installed plugin takes part.
PROBE = (
    "mkdir -p /tmp/repoforge-probe && cd /tmp/repoforge-probe && "
    "printf 'def test_probe():\\n    pass\\n' > test_probe.py && "
    f"{{python}} -m pytest -p no:cacheprovider {SUMMARY} test_probe.py"
)


class Runner(NamedTuple):
    """The runner an environment is validated with (EnvSpec.runner_*)."""

    version: str
    plugins: dict[str, str]  # the pytest11 entry points the probe ran with: a test run loads these and no others
    summary: bool  # whether the console summary names each outcome (no plugin replaced pytest's)


def _install_retrying(installer: Installer, strategy, meta: ProjectMetadata, tries: int = 3) -> Runner:
    for _ in range(tries - 1):
        try:
            return _install(installer, strategy, meta)
        except Reinstall as exc:
            installer.log.append(f"once more: {exc}")
    return _install(installer, strategy, meta)


def _install(installer: Installer, strategy, meta: ProjectMetadata) -> Runner:
    """A fresh venv, the strategy, then proof that pytest runs a test: the runner, as the proof ran it."""
    box = installer.box
    created = installer.run(f"rm -rf {box.venv} && {box.uv} venv -q --python {box.python} {box.venv}")
    if created.exit_code != 0:
        raise InstallError(created.output)
    strategy(installer, meta)
    # Compiled as pip compiles: a dependency's compile-time warning (an invalid escape) must not reach
    # tests that turn warnings into errors, and sandboxes write no bytecode. (uv's --compile-bytecode
    # needs Python 3.7.)
    installer.run(COMPILE.format(python=f"{box.venv}/bin/python"), timeout=INSTALL_TIMEOUT)
    check = installer.run(f"{box.venv}/bin/python -m pytest --version")
    version = re.search(r"py\.?test(?: version)? (\d+\.\d+(?:\.\d+)?)", check.output)
    if check.exit_code != 0 or not version:
        raise InstallError("pytest does not start:\n" + _tail(check.output))
    probe = installer.run(PROBE.format(python=f"{box.venv}/bin/python"))
    installer.log.append(f"$ pytest on a trivial test\n{probe.output}")
    if probe.exit_code != 0:
        plugin = _broken_plugin(probe.output)
        if plugin and installer.date_like(plugin, "pytest", version.group(1)):
            raise Reinstall(f"the pytest plugin {plugin} broke pytest: now dated like it")
        raise InstallError(f"pytest {version.group(1)} cannot run a trivial test:\n" + _tail(probe.output))
    facts = installer.run(runner_facts_command(f"{box.venv}/bin/python"))
    if facts.exit_code != 0:
        raise InstallError("cannot list the installed pytest plugins:\n" + _tail(facts.output))
    summary = re.search(r"^PASSED test_probe\.py::test_probe", probe.output, re.MULTILINE) is not None
    _check_import(installer, meta)
    return Runner(version.group(1), read_runner_facts(facts.output)[1], summary)


# Imports each name given; prints those that fail with anything but ImportError (a missing optional part, or
# another import name, is no fault), with the installed packages in the traceback; and, for an installed package
# whose `from M import X` fails (X gone from a newer M), that package, its version and M.
IMPORT_PROBE = r"""
import importlib, re, sys, traceback


def version(dist):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return ""


for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError:
        frame = traceback.extract_tb(sys.exc_info()[2])[-1]
        importer = re.search(r"site-packages/(\w+)", frame[0])
        module = re.match(r"\s*from\s+(\w+)[\w.]*\s+import\b", frame[3] or "")
        if importer and module and module.group(1) != importer.group(1):
            print("STALE", importer.group(1), version(importer.group(1)) or "?", module.group(1))
    except BaseException:
        print("BROKEN", name, *re.findall(r"site-packages/(\w+)", traceback.format_exc()))
"""


def _check_import(installer: Installer, meta: ProjectMetadata) -> None:
    """Import the optional test requirements, and the project where its tests will: one that installs but
    does not import (a binding whose C library is missing) is left out, and the strategy runs again; a package
    whose import asks a module for a name its newer releases dropped gets that module's releases of its time."""
    optional = sorted(n.replace("-", "_") for n in installer.droppable - set(installer.spec.dropped))
    package = canonicalize_name(meta.name).replace("-", "_") if meta.name else None
    own = (
        package
        and installer.run(
            " || ".join(f"[ -e {TESTBED}/{path} ]" for path in (package, f"src/{package}", f"{package}.py"))
        ).exit_code
        == 0
    )
    names = [*optional, *([package] if own else [])]
    if not names:
        return
    probe = installer.run(f"cd /tmp && {installer.box.venv}/bin/python -c {_shell([IMPORT_PROBE])} {' '.join(names)}")
    for line in probe.output.splitlines():
        if line.startswith("STALE "):
            _date_like_importer(installer, *line.split()[1:])
        elif line.startswith("BROKEN "):
            _leave_out_broken(installer, *line.split()[1:])


def _date_like_importer(installer: Installer, importer: str, version: str, module: str) -> None:
    installer.log.append(f"$ import {importer} {version}: a name it imports is gone from {module}")
    if version != "?" and installer.date_like(canonicalize_name(module), canonicalize_name(importer), version):
        raise Reinstall(f"{importer} {version} imports what newer {module} lacks: {module} now dated like it")


def _leave_out_broken(installer: Installer, name: str, *modules: str) -> None:
    installer.log.append(f"$ import {name}: fails ({', '.join(modules)})")
    culprit = next(
        (
            m
            for m in map(canonicalize_name, [name, *modules])
            if m in installer.droppable and m not in installer.spec.dropped
        ),
        None,
    )
    if culprit:
        installer.spec.dropped.append(culprit)
        raise Reinstall(f"the test requirement {culprit} installs but does not import: left out")


def _broken_plugin(output: str) -> str | None:
    """The installed package, not pytest's own, deepest in the traceback of the runner's crash."""
    modules = re.findall(r"site-packages/(\w+)(?:/|\.py)", output)
    plugins = [m for m in modules if m not in RUNNER_MODULES]
    return canonicalize_name(plugins[-1]) if plugins else None
