"""The bundled example: a small package whose history holds every kind of commit forge meets.

python examples/calcpkg.py DIR   # writes the repository at DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gitrepo import RepoBuilder  # noqa: E402

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "calcpkg"
version = "0.1.0"
requires-python = ">=3.8"

[project.optional-dependencies]
test = ["pytest"]
"""

CALC_V1 = """\
def add(a, b):
    return a - b


def mul(a, b):
    return a * b
"""

CALC_V2 = CALC_V1.replace("return a - b", "return a + b")
CALC_V3 = (
    CALC_V2
    + """

def power(base, exp):
    return base ** exp
"""
)
CALC_V4 = (
    CALC_V3
    + """

def divide(a, b):
    return a / b
"""
)

TEST_V1 = """\
from calcpkg.calc import add, mul


def test_mul():
    assert mul(3, 4) == 12
"""

TEST_V2 = (
    TEST_V1
    + """

def test_add():
    assert add(2, 3) == 5


def test_add_negative():
    assert add(-2, -3) == -5
"""
)

TEST_POWER = """\
import pytest

from calcpkg.calc import power


class TestPower:
    def test_square(self):
        assert power(3, 2) == 9


@pytest.mark.parametrize("base,exp,expected", [(2, 3, 8), (5, 0, 1)])
def test_power(base, exp, expected):
    assert power(base, exp) == expected
"""

TEST_DIVIDE = """\
from pathlib import Path

from calcpkg.calc import divide

COUNTER = Path(__file__).parent / ".runs"


def test_divide():
    assert divide(6, 3) == 2


def test_alternating():
    # Fails on every other run: the kind of test validation must leave out.
    runs = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(runs))
    assert runs % 2 == 0
"""

TEST_SLOW = """\
import time

from calcpkg.calc import add


def test_waits_forever():
    time.sleep(100000)
    assert add(1, 1) == 2
"""


def build(path: Path) -> RepoBuilder:
    repo = RepoBuilder(path, remote="https://github.com/example/calcpkg.git")
    repo.commit(
        "Initial calcpkg",
        "2023-03-01T10:00:00+00:00",
        {
            "pyproject.toml": PYPROJECT,
            "src/calcpkg/__init__.py": "",
            "src/calcpkg/calc.py": CALC_V1,
            "tests/test_calc.py": TEST_V1,
            "README.md": "# calcpkg\n",
        },
    )
    repo.commit(
        "Fix add returning the difference (#12)\n\nadd(2, 3) gave -1 instead of 5.",
        "2023-03-05T10:00:00+00:00",
        {"src/calcpkg/calc.py": CALC_V2, "tests/test_calc.py": TEST_V2},
    )
    repo.commit("Document usage", "2023-03-06T10:00:00+00:00", {"README.md": "# calcpkg\n\nAdd numbers.\n"})
    repo.commit(
        "Add power()\n\nUsers asked for exponentiation.",
        "2023-03-07T10:00:00+00:00",
        {"src/calcpkg/calc.py": CALC_V3, "tests/test_power.py": TEST_POWER},
    )
    repo.commit(
        "Add divide()",
        "2023-03-08T10:00:00+00:00",
        {"src/calcpkg/calc.py": CALC_V4, "tests/test_divide.py": TEST_DIVIDE},
    )
    repo.commit(
        "Speed up add",
        "2023-03-09T10:00:00+00:00",
        {"src/calcpkg/calc.py": CALC_V4 + "\n# faster\n", "tests/test_slow.py": TEST_SLOW},
    )
    repo.commit(
        "Add a Latin-1 note",
        "2023-03-10T10:00:00+00:00",
        {
            "src/calcpkg/notes.py": "# caf\xe9\n".encode("latin-1"),
            "tests/test_notes.py": "def test_notes():\n    import calcpkg.notes\n",
        },
    )
    repo.commit(
        "Ship a logo",
        "2023-03-11T10:00:00+00:00",
        {
            "src/calcpkg/logo.py": "LOGO = 'logo.bin'\n",
            "tests/test_logo.py": "def test_logo():\n    pass\n",
            "src/calcpkg/logo.bin": bytes(range(256)),
        },
    )
    repo.commit("Tidy calc", "2023-03-12T10:00:00+00:00", {"src/calcpkg/calc.py": CALC_V4 + "\n# tidy\n"})
    return repo


if __name__ == "__main__":
    target = Path(sys.argv[1])
    if (target / ".git").exists():
        print(f"{target} exists")
    else:
        build(target)
        print(f"example repository written to {target}")
