"""The gathered raw declarations turned into a ProjectMetadata: first-found values, parsed and
de-duplicated requirements, the extras and pytest plugins the tests need."""

from __future__ import annotations

import re
import shlex

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from .model import DEV_EXTRA_NAMES, TEST_EXTRA_NAMES, ProjectMetadata, Raw, Reader
from .pytest_use import provides

SCM_PACKAGES = {"setuptools-scm", "hatch-vcs", "setuptools-scm-git-archive"}
RUNNER_SCRIPTS = ["runtests.py", "run_tests.py", "run-tests.py", "bin/test", "tests/runtests.py", "tests/run_tests.py"]
_PY_CLASSIFIER = re.compile(r"^Programming Language\s*::\s*Python\s*::\s*(\d+)\.(\d+)\s*$")
# Words of an extra's name saying it gathers the optional features (`all`, `complete`, `full-deps`).
EVERYTHING_WORDS = {"all", "complete", "full", "everything", "optional", "extras"}


def finish(r: Reader) -> ProjectMetadata:
    md = ProjectMetadata()
    md.has_setup_py = r.exists("setup.py")
    md.has_pyproject = r.exists("pyproject.toml")
    md.name = r.names[0].strip() if r.names else None
    project = canonicalize_name(md.name) if md.name else None
    md.requires_python = _requires_python(r)
    md.classifier_pythons = _sorted_pythons(classifier_pythons(r.classifiers))
    md.tox_pythons = _sorted_pythons(r.tox_pythons)
    md.ci_pythons = _sorted_pythons(r.ci_pythons)

    md.dependencies = _clean(r, r.deps, project, test_context=False)
    if not md.dependencies and r.pipfile_packages:
        md.dependencies = _clean(r, r.pipfile_packages, project, test_context=False)
    md.extras = {name: _clean(r, reqs, project, test_context=False) for name, reqs in r.extras.items() if name}
    config, options = _pytest_config(r)
    required_plugins = options.get("required_plugins", "").split()
    r.tests += [(req, config) for req in required_plugins]
    md.test_requirements = _clean(r, r.tests, project, test_context=True)
    md.build_requires = _clean(r, r.build, None, test_context=False)
    md.build_backend = r.build_backend
    md.test_extras = _test_extras(r, md.extras)
    md.test_requirements = _dedup(md.test_requirements + _further_extras_requirements(r, md, project))

    md.uses_setuptools_scm = r.scm or any(_name(req) in SCM_PACKAGES for req in md.build_requires)
    md.pytest_configured = r.pytest_configured or r.exists("pytest.ini") or r.exists("conftest.py")
    md.pytest_plugins = _addopts_plugins(options.get("addopts", ""))
    md.needed_plugins = _needed_plugins(r, md, required_plugins)
    md.runner_script = next((s for s in RUNNER_SCRIPTS if r.exists(s)), None)
    md.manifest_files = sorted(r.manifest)
    md.warnings = _dedup(r.warnings)
    return md


def _dedup(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _name(req: str) -> str | None:
    try:
        return canonicalize_name(Requirement(req).name)
    except InvalidRequirement:
        return None


def _fix_specifier(spec: str) -> str | None:
    """A valid PEP 440 specifier set from spec, repairing `>=3.6.*`, or None."""
    spec = " ".join(spec.split())
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    repaired = ",".join(re.sub(r"^(>=|<=|>|<|~=)\s*(.+?)\.\*$", r"\1\2", p) for p in parts)
    for candidate in (spec, repaired):
        try:
            SpecifierSet(candidate)
            return candidate
        except InvalidSpecifier:
            pass
    return None


def _requires_python(r: Reader) -> str | None:
    """The first non-empty valid python requirement, in reading order."""
    for spec, source in r.requires_python:
        fixed = _fix_specifier(spec)
        if fixed is None:
            r.warn(f"{source}: invalid python requirement {spec!r}, skipped")
        elif fixed:
            return fixed
    return None


def classifier_pythons(classifiers: list[str]) -> set[str]:
    pythons = set()
    for c in classifiers:
        m = _PY_CLASSIFIER.match(c.strip())
        if m:
            pythons.add(f"{m.group(1)}.{int(m.group(2))}")
    return pythons


def _sorted_pythons(versions: set[str]) -> list[str]:
    return sorted(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


def _clean(r: Reader, raws: list[Raw], project: str | None, test_context: bool) -> list[str]:
    """Valid index requirements of raws, without the project itself (whose extras, in a test
    context, are remembered), de-duplicated."""
    out: list[str] = []
    for text, source in raws:
        text = " ".join(str(text).split())
        if not text:
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            r.warn(f"{source}: skipped unparsable requirement {text!r} ({str(exc).splitlines()[0]})")
            continue
        if req.url:
            r.warn(f"{source}: skipped direct reference {text!r}")
            continue
        if project and canonicalize_name(req.name) == project:
            if test_context:
                r.self_extras += sorted(req.extras)
            continue
        out.append(text)
    return _dedup(out)


def _test_extras(r: Reader, extras: dict[str, list[str]]) -> list[str]:
    """The test extras (else the dev ones), those tox installs and those installed as `.[x]`."""
    declared = {canonicalize_name(e): e for e in extras}
    tests = [e for e in extras if canonicalize_name(e) in TEST_EXTRA_NAMES]
    if not tests:
        tests = [e for e in extras if canonicalize_name(e) in DEV_EXTRA_NAMES]
    tests += [declared[canonicalize_name(e)] for e in r.tox_extras if canonicalize_name(e) in declared]
    tests += [declared.get(canonicalize_name(e), e) for e in r.self_extras]
    return _dedup(tests)


def _further_extras_requirements(r: Reader, md: ProjectMetadata, project: str | None) -> list[str]:
    """The requirements of the extras the tests may need beyond the test extras: those named for
    everything (`all`, `complete`), those CI test jobs install, and the extras these include.

    They are test requirements rather than extras to install, so that one that cannot be installed
    is left out alone. An extra named for everything that reads empty (computed in a way static
    reading cannot follow) stands for all the others.
    """
    declared = {canonicalize_name(e): e for e in md.extras}
    everything = [e for e in md.extras if set(re.split(r"[-_.]", e.lower())) & EVERYTHING_WORDS]
    wanted = everything + [declared[c] for c in map(canonicalize_name, r.ci_extras) if c in declared]
    for extra in wanted:  # grows with the extras each one includes (`all = ["pkg[io,viz]"]`)
        wanted += [
            declared[e]
            for e in _included_extras(r.extras.get(extra, []), project)
            if e in declared and declared[e] not in wanted
        ]
    reqs: list[str] = []
    for extra in _dedup(wanted):
        if extra not in md.test_extras:
            reqs += md.extras[extra] or (_other_extras_requirements(md, extra) if extra in everything else [])
    return reqs


def _other_extras_requirements(md: ProjectMetadata, extra: str) -> list[str]:
    return [req for other, reqs in md.extras.items() if other != extra for req in reqs]


def _included_extras(raws: list[Raw], project: str | None) -> list[str]:
    """The extras of the project itself that requirements name (`pkg[io,viz]` in an extra of pkg)."""
    included = []
    for text, _ in raws:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if project and canonicalize_name(req.name) == project:
            included += [canonicalize_name(e) for e in sorted(req.extras)]
    return included


# The files pytest takes its configuration from, first found first; only that one counts.
PYTEST_CONFIGS = ["pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg"]


def _pytest_config(r: Reader) -> tuple[str, dict[str, str]]:
    """The file pytest takes its configuration from, and its pytest options."""
    ini = r.load_ini("pytest.ini") if r.exists("pytest.ini") else None
    if ini is not None and ini.has_section("pytest"):
        r.pytest_options["pytest.ini"] = dict(ini["pytest"])
    config = next((f for f in PYTEST_CONFIGS if f in r.pytest_options), "")
    return config, r.pytest_options.get(config, {})


def _needed_plugins(r: Reader, md: ProjectMetadata, required: list[str]) -> list[str]:
    """The declared pytest plugins the tests need: the configuration requires them
    (`required_plugins`) or loads them (`-p`), or they provide a marker or fixture the tests use."""
    required_names = {_name(req) for req in required}
    loaded = {canonicalize_name(p) for p in md.pytest_plugins}
    needed = []
    for name in filter(None, map(_name, md.test_requirements)):
        if not name.startswith("pytest-"):
            continue
        if (
            name in required_names
            or name in loaded
            or name.removeprefix("pytest-") in loaded
            or provides(name, r.pytest_names)
        ):
            needed.append(name)
    return _dedup(needed)


def _addopts_plugins(addopts: str) -> list[str]:
    """The plugins the addopts load (`-p pytester`): kept when the rest of the addopts is not."""
    try:
        words = shlex.split(addopts)
    except ValueError:
        words = addopts.split()
    return [
        after if word == "-p" else word[2:]
        for word, after in zip(words, words[1:] + [""], strict=False)
        if word.startswith("-p") and (word != "-p" or after)
    ]
