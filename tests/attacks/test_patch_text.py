"""Attacks on the reading of a patch and on the restore rules, checked without a sandbox: every header form git
or GNU patch reads names a checked path, and every file of the test machinery is put back, wherever it sits."""

from __future__ import annotations

import pytest

from repoforge.harness.patchtext import MAX_FILES, PatchRefused, check, reaches
from repoforge.harness.tree import Changes, restore_plan

from .conftest import added, symlink


@pytest.mark.parametrize(
    "patch,reason",
    [
        (
            'diff --git "a/.g\\151t/config" "b/.g\\151t/config"\n',
            "it names a/.git/config, inside the repository's .git",
        ),
        ("*** a/.git/hooks/post-checkout\n--- b/.git/hooks/post-checkout\n", "inside the repository's .git"),
        ("Index: x/.GIT/config\n", "it names x/.GIT/config, inside the repository's .git"),
        ("diff --git a/x b/y\nrename from x\nrename to .git/hooks/pre-commit\n", "inside the repository's .git"),
        ("--- a/../outside.py\t2024-01-01\n+++ b/../outside.py\n", "a path out of the tree, a/../outside.py"),
        ("--- /etc/passwd\n+++ /etc/passwd\n", "an absolute path, /etc/passwd"),
        ("--- a/pkg/_speedups.so\n+++ b/pkg/_speedups.so\n", "it names pkg/_speedups.so, a compiled file"),
        (symlink("docs", "..") + added("docs/conftest.py", "x = 1"), "it writes docs/conftest.py through docs"),
        ("3a\nimport os\n.\n", "it holds an ed script or a normal diff ('3a')"),
        ("".join(added(f"f{i}.py", "x = 1") for i in range(MAX_FILES + 1)), f"(at most {MAX_FILES})"),
    ],
)
def test_what_no_fix_needs_is_refused(patch, reason):
    with pytest.raises(PatchRefused) as refused:
        check(patch)
    assert reason in str(refused.value)


def test_quoted_and_plain_names_are_read_as_git_reads_them():
    patch = (
        'diff --git "a/caf\\303\\251.py" "b/caf\\303\\251.py"\n'
        + added("with space/x.py", "x = 1")
        + "--- a/plain.py\t2024-01-01 10:00:00\n+++ b/plain.py\t2024-01-01 10:00:01\n"
    )
    assert check(patch) == {"café.py", "with space/x.py", "plain.py"}


def test_only_non_test_code_reaching_into_the_runner_is_read():
    patch = added(
        "src/pkg/util.py", "import atexit\nfrom unittest import mock\nfrom unittest.mock import patch"
    ) + added("tests/test_util.py", "import _pytest\nimport sys\nsys.modules.clear()")
    assert reaches(patch) == {"atexit": ["src/pkg/util.py"]}


def changes(*paths: str, tracked: tuple[str, ...] = (), configs=None) -> Changes:
    return Changes(set(paths), set(tracked), configs or {})


def test_the_test_machinery_is_put_back_wherever_it_sits():
    machinery = [
        "conftest.py",
        "tests/test_x.py",
        "tests/data/input.json",
        "pkg/sitecustomize.py",
        "usercustomize.py",
        "src/pkg.pth",
        "pkg/__pycache__/mod.cpython-311.pyc",
        "lib/x.dist-info/METADATA",
        "x.egg-info/entry_points.txt",
        "sub/pytest.ini",
        ".pytest.ini",
        "pytest.toml",
        ".gitattributes",
    ]
    plan = restore_plan(changes(*machinery, "src/pkg/mod.py", "README.md", tracked=("tests/test_x.py",)), [])
    assert plan.checkout == ["tests/test_x.py"]
    assert sorted(plan.remove) == sorted(set(machinery) - {"tests/test_x.py"})


@pytest.mark.parametrize(
    "name,base,now,put_back",
    [
        ("pyproject.toml", '[project]\nname = "x"\n', '[project]\nname = "y"\n', False),
        (
            "pyproject.toml",
            "[tool.pytest.ini_options]\naddopts = '-q'\n",
            "[tool.pytest.ini_options]\naddopts = '-x'\n",
            True,
        ),
        ("pyproject.toml", "[tool.black]\n", "[tool]\npytest.ini_options.python_files = 'x.py'\n", True),
        ("pyproject.toml", "[tool.black]\n", "[tool.black\n", True),  # what pytest cannot read either
        ("setup.cfg", "[metadata]\nname = x\n", "[metadata]\nname = y\n", False),
        ("setup.cfg", "[metadata]\nname = x\n", "[metadata]\nname = x\n[tool:pytest]\npython_files = x.py\n", True),
        ("tox.ini", "[pytest]\nmarkers = a\n", "[pytest]\nmarkers = a\n  b\n", True),
        ("tox.ini", None, "[testenv]\ndeps = x\n", False),
        ("tox.ini", None, "[pytest]\n", True),
    ],
)
def test_a_shared_configuration_is_put_back_when_its_pytest_part_changed(name, base, now, put_back):
    path = f"sub/{name}"
    plan = restore_plan(changes(path, tracked=(path,) if base else (), configs={path: (base, now)}), [])
    assert (plan.checkout + plan.remove == [path]) is put_back
