"""Class 1: nothing of a patch runs on the host. git refuses these patches; GNU patch, the chain's last resort,
would apply them, and the next git command on the host would run what they put into .git."""

from __future__ import annotations

import pytest

from .conftest import added, symlink

pytestmark = pytest.mark.slow

# A filter that every git command reading a .py file runs (git apply of the test_patch did, on the host): in
# .git/config through a plain ---/+++ section, which only patch applies.
GIT_CONFIG_FILTER = (
    added(".gitattributes", "*.py filter=pwn")
    + """\
--- a/.git/config
+++ b/.git/config
@@ -1,1 +1,4 @@
+[filter "pwn"]
+	clean = "touch MARKER; cat"
+	smudge = "touch MARKER; cat"
 [core]
"""
)

# The same filter, written through a symlink to .git that the patch creates (patch follows symlinks in the tree).
SYMLINK_TO_GIT = (
    added(".gitattributes", "*.py filter=pwn")
    + symlink("src/calcpkg/meta", "../../.git")
    + """\
--- a/src/calcpkg/meta/config
+++ b/src/calcpkg/meta/config
@@ -1,1 +1,3 @@
+[filter "pwn"]
+	clean = "touch MARKER; cat"
 [core]
"""
)

# An ed script: patch hands it to ed, whose `!` runs a shell command (CVE-2018-1000156 where patch is unfixed).
ED_SCRIPT = """\
Index: a/src/calcpkg/calc.py
2c
    return a + b
.
1a
!touch MARKER
.
"""


def test_a_patch_writing_git_config_is_refused(grader, tmp_path):
    report, log = grader.attack(GIT_CONFIG_FILTER, tmp_path)
    assert not report.patch_successfully_applied
    assert "patch refused: it names a/.git/config, inside the repository's .git" in log


def test_a_patch_writing_git_config_through_a_symlink_is_refused(grader, tmp_path):
    report, log = grader.attack(SYMLINK_TO_GIT, tmp_path)
    assert not report.patch_successfully_applied
    assert "patch refused: it writes src/calcpkg/meta/config through src/calcpkg/meta, a symlink it creates" in log


def test_an_ed_script_is_refused(grader, tmp_path):
    report, log = grader.attack(ED_SCRIPT, tmp_path)
    assert not report.patch_successfully_applied
    assert "patch refused: it holds an ed script or a normal diff ('2c')" in log
