"""Class 2: test machinery the restore step must see, though the patch's `diff --git` lines do not name it.
The restore step reads the tree after the patch, not the patch's text."""

from __future__ import annotations

import pytest

from .conftest import ESCAPE, HOOK_PASS, REPORTS_PASS, added, symlink

pytestmark = pytest.mark.slow

# A conftest in a plain ---/+++ section: no `diff --git` line names it.
CONFTEST_PLAIN = added("conftest.py", ESCAPE + HOOK_PASS, git_header=False)

# tests/__init__.py, imported before the tests, written through a symlink under a name that is no test's.
THROUGH_SYMLINK = symlink("src/calcpkg/lib", "../../tests") + added(
    "src/calcpkg/lib/__init__.py", ESCAPE + REPORTS_PASS
)

# A link into the tests: a second path to a test file, the restore step would not know to follow.
SYMLINK_INTO_TESTS = symlink("src/calcpkg/checks.py", "../../tests/test_calc.py")


def test_a_conftest_in_a_plain_section_is_removed(grader, tmp_path):
    report, log = grader.attack(CONFTEST_PLAIN, tmp_path)
    assert report.patch_successfully_applied
    assert "put back as the base commit has them: none; removed: conftest.py" in log
    assert report.tests_status["FAIL_TO_PASS"].failure == [
        "tests/test_calc.py::test_add",
        "tests/test_calc.py::test_add_negative",
    ]


def test_a_file_written_through_a_symlink_is_refused(grader, tmp_path):
    report, log = grader.attack(THROUGH_SYMLINK, tmp_path)
    assert not report.patch_successfully_applied
    assert "patch refused: it writes src/calcpkg/lib/__init__.py through src/calcpkg/lib, a symlink it creates" in log


def test_a_symlink_into_the_tests_is_refused(grader, tmp_path):
    report, log = grader.attack(SYMLINK_INTO_TESTS, tmp_path)
    assert not report.patch_successfully_applied
    assert "patch refused: it makes src/calcpkg/checks.py a symlink into the test machinery" in log
