"""The environment planner's decisions, each from inputs a real project or a real uv run produces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import repos
from gitrepo import RepoBuilder

from repoforge.env import build
from repoforge.env.build import (
    OLDER_PYTHON_CHOICE,
    Installer,
    _broken_plugin,
    built_env,
    cutoff_date,
    declared_names,
    env_folder,
    plan,
    plan_and_build,
    requirements_for_tests,
    tooling_floors,
)
from repoforge.env.index import _fits
from repoforge.env.metadata import ProjectMetadata
from repoforge.env.python import choose_python, python_preference
from repoforge.git.repo import checkout, describe_as, git
from repoforge.sandbox.process import ProcessBackend
from repoforge.schema import EnvSpec
from repoforge.testrun import command
from repoforge.validate import run_tests

AVAILABLE = {v: f"/usr/bin/python{v}" for v in ("3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13")}

# uv 0.13's own words for a dependency whose old releases were deleted from the index.
UV_FILTERED = """\
error: No solution found when resolving dependencies
  cause: Because there are no versions of atomicwrites and pytest>=4.5.0 depends on atomicwrites>=1.0, we can conclude that pytest>=4.5.0 cannot be used.
         And because you require pytest>=4.5, we can conclude that your requirements are unsatisfiable.

hint: `atomicwrites` was filtered by `exclude-newer` to only include packages uploaded before 2019-06-02T00:00:00Z. The latest version satisfying the requirement is v1.4.1, published at 2022-07-08T18:31:40.459Z. Consider using `exclude-newer-package` to override the cutoff for this package.
"""


def test_cutoff_is_quarter_start_unless_manifests_changed_later():
    assert cutoff_date("2021-05-17T12:00:00+02:00", "2019-01-01T00:00:00+00:00") == "2021-04-01T00:00:00Z"
    assert cutoff_date("2021-05-17T12:00:00+02:00", "2021-05-02T08:30:00+00:00") == "2021-05-02T08:30:01Z"
    assert cutoff_date("2021-05-17T12:00:00+02:00", None) == "2021-04-01T00:00:00Z"


def test_tooling_is_never_older_than_the_interpreter():
    floors = tooling_floors("3.9", "2019-06-01T00:00:00Z")
    assert floors["pytest"] == floors["setuptools"] == floors["pluggy"] == "2020-10-05T00:00:00Z"
    assert tooling_floors("3.8", "2021-01-01T00:00:00Z") == {}


def test_test_requirements_drop_coverage_and_lint_and_add_runner():
    meta = ProjectMetadata(test_requirements=["pytest-cov>=2", "flake8", "hypothesis", "Sphinx", "mock"])
    assert requirements_for_tests(meta) == ["hypothesis", "mock", "pytest", "setuptools"]
    meta = ProjectMetadata(test_requirements=["pytest<5", "setuptools>=40"])
    assert requirements_for_tests(meta) == ["pytest<5", "setuptools>=40"]


def test_a_left_out_plugin_is_kept_when_the_tests_need_it():
    meta = ProjectMetadata(
        test_requirements=["pytest-cov>=2", "pytest-mypy", "mock"],
        needed_plugins=["pytest-cov"],
        pytest_plugins=["pytest_cov", "pytest_mypy"],
    )
    assert requirements_for_tests(meta) == ["pytest-cov>=2", "mock", "pytest", "setuptools"]


def test_tooling_pins_go_when_the_interpreter_is_newer_and_clashing_pins_keep_the_highest():
    meta = ProjectMetadata(
        test_requirements=[
            "py==1.4.12",
            "pytest==2.3.4",
            "pytest-httpbin==0.0.7",
            "pytest-httpbin==1.0.0",
            "mock>=1",
            "mock<3",
        ]
    )
    assert requirements_for_tests(meta, interpreter_newer=True) == [
        "py",
        "pytest",
        "pytest-httpbin==1.0.0",
        "mock>=1",
        "mock<3",
        "setuptools",
    ]
    assert requirements_for_tests(meta)[:2] == ["py==1.4.12", "pytest==2.3.4"]


UV_BUILD_FAILED = """\
error: Failed to build `pexpect-u==2.5.1`
  cause: The build backend returned an error
         error in pexpect-u setup command: use_2to3 is invalid.

hint: `pexpect-u` (v2.5.1) was included because `invoke` (v0.2.0) depends on `pexpect-u==2.5.1`
"""


def test_a_test_requirement_that_cannot_be_installed_is_named_for_dropping():
    spec = EnvSpec(python="3.6", exclude_newer="2013-03-22T00:00:00Z")
    installer = Installer(box=None, spec=spec, log=[], droppable=frozenset({"invoke", "pytest"}))
    assert installer._culprit(UV_BUILD_FAILED, ["requests", "invoke==0.2.0", "pytest"]) == "invoke"
    assert installer._culprit(UV_BUILD_FAILED, ["requests", "pytest"]) is None  # not asked for: nothing to drop
    project_dep = Installer(box=None, spec=spec, log=[], droppable=frozenset({"pytest"}))
    assert project_dep._culprit(UV_BUILD_FAILED, ["invoke==0.2.0"]) is None  # the project's own: never dropped


@pytest.mark.slow
def test_a_test_requirement_is_dropped_and_the_projects_own_of_that_name_kept(tmp_path):
    backend = ProcessBackend()
    (tmp_path / "tree").mkdir()
    (tmp_path / "env").mkdir()
    box = backend.build_box(tmp_path / "tree", tmp_path / "env", "3.11")
    spec = EnvSpec(python="3.11", exclude_newer="2024-01-01T00:00:00Z")
    installer = Installer(box, spec, log=[], droppable=frozenset({"six", "repoforge-no-such-distribution-anywhere"}))
    assert installer.run(f"{box.uv} venv -q --python {backend.pythons()['3.11']} {box.venv}").exit_code == 0
    installer.uv_install(
        "dependencies and tests", ["six"], tests=["six==0.0.1", "repoforge-no-such-distribution-anywhere", "toolz"]
    )
    assert spec.dropped == ["six", "repoforge-no-such-distribution-anywhere"]
    assert spec.install_steps[0].argv[-2:] == ["six", "toolz"]  # the project's six stayed
    assert installer.run(f"{box.venv}/bin/python -c 'import six, toolz'").exit_code == 0


def test_repair_moves_only_the_filtered_package():
    spec = EnvSpec(python="3.9", exclude_newer="2019-06-02T00:00:00Z")
    installer = Installer(box=None, spec=spec, log=[])
    assert installer._repair(UV_FILTERED) is True
    assert spec.package_floors == {"atomicwrites": "2022-07-08T18:31:41Z"}
    assert installer._repair(UV_FILTERED) is False  # the same failure again: nothing left to move
    assert installer._repair("error: something else entirely") is False


def test_wheel_tags_for_an_interpreter():
    assert _fits("numpy-1.19.5-cp39-cp39-manylinux2010_x86_64.whl", "3.9")
    assert not _fits("numpy-1.19.5-cp38-cp38-manylinux2010_x86_64.whl", "3.9")
    assert not _fits("numpy-1.19.5-cp39-cp39-win_amd64.whl", "3.9")
    assert _fits("six-1.16.0-py2.py3-none-any.whl", "3.9")
    assert _fits("cryptography-41.0.0-cp37-abi3-manylinux_2_28_x86_64.whl", "3.9")
    assert not _fits("cryptography-41.0.0-cp310-abi3-manylinux_2_28_x86_64.whl", "3.9")
    assert not _fits("numpy-1.19.5.tar.gz", "3.9")


def test_python_choice():
    # Declared versions that existed at the commit date win; the newest of them.
    meta = ProjectMetadata(classifier_pythons=["3.6", "3.7", "3.8"])
    assert choose_python(meta, "2020-06-01T00:00:00Z", AVAILABLE) == "3.8"
    # Nothing declared: the newest interpreter released by the commit date.
    assert choose_python(ProjectMetadata(), "2018-08-01T00:00:00Z", AVAILABLE) == "3.7"
    # requires-python rules out what it excludes, even when newer ones were out.
    meta = ProjectMetadata(requires_python=">=3.6,<3.8")
    assert choose_python(meta, "2023-01-01T00:00:00Z", AVAILABLE) == "3.7"
    # Older than every interpreter here: the oldest allowed one.
    assert choose_python(ProjectMetadata(), "2012-01-01T00:00:00Z", AVAILABLE) == "3.6"
    # Python 2 only: nothing here runs it.
    assert choose_python(ProjectMetadata(classifier_pythons=["2.6", "2.7"]), "2014-01-01", AVAILABLE) is None
    # The order a build that must leave test requirements out goes on in: declared ones, newest first.
    meta = ProjectMetadata(classifier_pythons=["3.9", "3.10", "3.11", "3.12"], requires_python=">=3.10")
    assert python_preference(meta, "2023-01-10T00:00:00Z", AVAILABLE) == ["3.11", "3.10"]


# uv's words when a per-package cutoff (a tooling floor) is itself too early for a build requirement.
UV_FILTERED_BY_FLOOR = """\
error: Failed to download and build `pycrypto==2.6.1`
  cause: Failed to resolve requirements from `setup.py` build
  cause: No solution found when resolving: `setuptools>=40.8.0`
  cause: Because only setuptools<=32.2.0 is available and you require setuptools>=40.8.0, we can conclude that your requirements are unsatisfiable.

hint: `setuptools` was filtered by `exclude-newer-package` to only include packages uploaded before 2016-12-23T00:00:00Z. The latest version satisfying the requirement is v84.2.1, published at 2026-10-20T19:01:35.678Z. Consider removing the setting or updating it to a later date.
"""


def test_repair_moves_a_floor_that_is_too_early():
    spec = EnvSpec(
        python="3.6", exclude_newer="2016-10-01T00:00:00Z", package_floors={"setuptools": "2016-12-23T00:00:00Z"}
    )
    assert Installer(box=None, spec=spec, log=[])._repair(UV_FILTERED_BY_FLOOR) is True
    assert spec.package_floors == {"setuptools": "2026-10-20T19:01:36Z"}


def test_old_pytest_gets_only_options_it_knows():
    assert "--continue-on-collection-errors" in command.test_command("pytest", "3.0")
    assert "-o addopts=" in command.test_command("pytest", "8.3")
    assert "-o addopts= --continue-on-collection-errors -p pytester --junitxml" in command.test_command(
        "pytest", "8.3", ["pytester"]
    )
    old = command.test_command("pytest", "2.9")
    assert "-o " not in old and "--continue-on-collection-errors" not in old and "--junitxml={junit}" in old


PLUGIN_CRASH = """\
INTERNALERROR>   File "/env/venv/lib/python3.8/site-packages/pluggy/callers.py", line 180, in _multicall
INTERNALERROR>     res = hook_impl.function(*args)
INTERNALERROR>   File "/env/venv/lib/python3.8/site-packages/pytest_forked/__init__.py", line 43, in pytest_runtest_protocol
INTERNALERROR>     if item.config.getvalue("forked") or item.get_closest_marker("forked"):
INTERNALERROR> AttributeError: 'Function' object has no attribute 'get_closest_marker'
"""


def test_the_plugin_that_crashes_the_runner_is_named():
    assert _broken_plugin(PLUGIN_CRASH) == "pytest-forked"
    assert _broken_plugin(PLUGIN_CRASH.replace("pytest_forked/__init__", "_pytest/runner")) is None


def build_and_run(tmp_path: Path, store: Path, repo, files: list[str]) -> tuple[EnvSpec, dict[str, str]]:
    """The environment of repo's last commit, built for real, and one run of files in it as validation runs them."""
    backend, commit = ProcessBackend(), repo._git("rev-parse", "HEAD")
    tree = tmp_path / "tree"
    checkout(repo.path, commit, tree)
    spec, env_ref, _ = plan_and_build(repo.path, commit, repo._git("log", "-1", "--format=%cI"), tree, backend, store)
    sandbox = backend.instance_sandbox(repo.path, commit, env_ref, "run", tmp_path / "work")
    try:
        return spec, run_tests(sandbox, spec, files, timeout=120).statuses
    finally:
        sandbox.close()


@pytest.mark.slow
def test_packages_declared_for_ci_and_in_an_all_extra_are_installed_for_the_tests(tmp_path, store):
    repo = repos.optional_packages(tmp_path / "tally")
    spec, statuses = build_and_run(tmp_path, store, repo, ["tests/test_tally.py"])
    assert statuses == {
        "tests/test_tally.py::test_count": "PASSED",
        "tests/test_tally.py::test_count_like_toolz": "PASSED",  # toolz: conda file only
        "tests/test_tally.py::test_count_text": "PASSED",
    }  # six: the `all` extra only
    assert spec.dropped == ["repoforge-no-such-conda-package"]  # what no index has is left out, not the rest


@pytest.mark.slow
def test_a_test_requirement_with_no_release_for_the_newest_python_gets_an_older_one(tmp_path, store, monkeypatch):
    """numba had no release for Python 3.11 in January 2023: on 3.11 it is left out and the tests cannot import it,
    so the environment is built again on the project's next Python, 3.10, where it installs. The choice is kept."""
    repo = repos.python_bound_requirement(tmp_path / "fastsum")
    spec, statuses = build_and_run(tmp_path, store, repo, ["tests/test_fastsum.py"])
    assert statuses == {"tests/test_fastsum.py::test_total": "PASSED"}
    assert (spec.python, spec.dropped) == ("3.10", [])
    commit, date, tree = repo._git("rev-parse", "HEAD"), "2023-01-10T09:00:00+00:00", tmp_path / "tree"
    newest, _ = plan(repo.path, commit, date, tree, ProcessBackend())
    assert newest.python == "3.11" and built_env(newest, store, ProcessBackend())[0].dropped == ["numba"]
    decided = env_folder(store, "process", newest.fingerprint) / OLDER_PYTHON_CHOICE
    assert json.loads(decided.read_text()) == spec.fingerprint
    monkeypatch.setattr(build, "any_installs_on", None)  # decided once: no dry run asks the index again
    again = plan_and_build(repo.path, commit, date, tree, ProcessBackend(), store)
    assert (again[0].fingerprint, again[2]) == (spec.fingerprint, True)


@pytest.mark.slow
def test_a_plugin_whose_marker_the_conftest_uses_is_installed(tmp_path, store):
    repo = repos.plugin_marker(tmp_path / "marked")
    _, statuses = build_and_run(tmp_path, store, repo, ["tests/test_marked.py"])
    assert statuses == {"tests/test_marked.py::test_double": "PASSED"}


@pytest.mark.slow
def test_a_test_requirement_that_installs_but_does_not_import_is_left_out(tmp_path, store):
    repo = repos.broken_binding(tmp_path / "gridded")
    spec, statuses = build_and_run(tmp_path, store, repo, ["tests/test_gridded.py"])
    assert statuses == {"tests/test_gridded.py::test_cells": "PASSED"}
    assert spec.dropped == ["eccodes"]


@pytest.mark.slow
def test_a_dependency_that_drops_a_name_a_pinned_package_imports_is_dated_like_that_package(tmp_path, store):
    repo = repos.stale_import(tmp_path / "templated")
    spec, statuses = build_and_run(tmp_path, store, repo, ["tests/test_templated.py"])
    assert statuses == {"tests/test_templated.py::test_render": "PASSED"}
    assert spec.package_floors["markupsafe"] == "2021-01-31T16:33:08Z"  # Jinja2 2.11.3 uploaded, and a second


@pytest.mark.slow
def test_a_checkout_a_test_requirement_replaced_with_a_release_is_put_back(tmp_path, store):
    repo = repos.depended_on(tmp_path / "six")
    spec, statuses = build_and_run(tmp_path, store, repo, ["tests/test_six.py"])
    assert statuses == {"tests/test_six.py::test_the_checkout_is_tested": "PASSED"}
    assert spec.strategy == "compat-editable"
    assert [step.name for step in spec.install_steps][-1] == "project again (a dependency had replaced it)"


def test_a_checkout_describes_itself_by_the_release_of_the_commit_it_serves(tmp_path):
    repo = RepoBuilder(tmp_path / "versioned")
    first = repo.commit("One", "2024-01-01T09:00:00+00:00", {"a.py": "1\n"})
    repo._git("tag", "v1.0")
    repo.commit("Two", "2024-02-01T09:00:00+00:00", {"a.py": "2\n"})
    repo._git("tag", "-a", "v2.0", "-m", "2.0")
    later = repo.commit("Three", "2024-03-01T09:00:00+00:00", {"a.py": "3\n"})
    clone = tmp_path / "clone"
    checkout(repo.path, later, clone)
    describe_as(clone, first)
    assert git(clone, "describe", "--tags").startswith("v1.0-2-g")
    assert git(repo.path, "describe", "--tags", later).startswith("v2.0-1-g")  # the repository keeps its tags


def test_what_a_commit_declares_is_read_with_its_markers():
    """A base commit that needs importlib-metadata everywhere, planned at a setup commit that needs it only before
    3.8: the difference is declared, whatever the versions; a name declared alike is not."""
    base = ProjectMetadata(dependencies=["importlib-metadata>=0.12", "six"], test_requirements=["Pytest>=4"])
    setup = ProjectMetadata(dependencies=['importlib-metadata>=1; python_version < "3.8"', "six>=1.10"])
    assert declared_names(base) - declared_names(setup) == {"importlib-metadata", "pytest"}
    assert declared_names(setup) == {'importlib-metadata; python_version < "3.8"', "six"}
