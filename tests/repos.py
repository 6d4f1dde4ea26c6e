"""Small real repositories, one per situation forge must handle."""

from __future__ import annotations

from pathlib import Path

from gitrepo import RepoBuilder


def setup_py_only(path: Path) -> RepoBuilder:
    """No pyproject.toml; setuptools of its date cannot install it editable."""
    repo = RepoBuilder(path, remote="git@github.com:example/greeter.git")
    setup = (
        "from setuptools import setup\n\nREQUIRES = ['six']\n\n"
        "setup(name='greeter', version='1.0', py_modules=['greeter'], install_requires=REQUIRES,\n"
        "      classifiers=['Programming Language :: Python :: 3.9'])\n"
    )
    repo.commit(
        "Initial greeter",
        "2021-05-01T09:00:00+00:00",
        {
            "setup.py": setup,
            "greeter.py": "def greet(name):\n    return 'Hello ' + name\n",
            "test_greeter.py": "from greeter import greet\n\n\ndef test_greet():\n    assert greet('a') == 'Hello a'\n",
        },
    )
    repo.commit(
        "Greet text types via six (#3)",
        "2021-05-10T09:00:00+00:00",
        {
            "greeter.py": "import six\n\n\ndef greet(name):\n    return 'Hello ' + six.text_type(name)\n",
            "test_greeter.py": "from greeter import greet\n\n\ndef test_greet():\n    assert greet('a') == 'Hello a'\n\n\n"
            "def test_greet_number():\n    assert greet(3) == 'Hello 3'\n",
        },
    )
    return repo


def unittest_project(path: Path) -> RepoBuilder:
    repo = RepoBuilder(path, remote="https://github.com/example/shapes")
    setup_cfg = "[metadata]\nname = shapes\nversion = 0.1\n\n[options]\npackages = shapes\npython_requires = >=3.7\n"
    pyproject = '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
    tests = (
        "import unittest\n\nfrom shapes import area\n\n\nclass TestArea(unittest.TestCase):\n"
        "    def test_square(self):\n        self.assertEqual(area(2), 4)\n"
    )
    repo.commit(
        "Initial shapes",
        "2024-02-01T09:00:00+00:00",
        {
            "setup.cfg": setup_cfg,
            "pyproject.toml": pyproject,
            "shapes/__init__.py": "def area(side):\n    return side * side\n",
            "tests/__init__.py": "",
            "tests/test_area.py": tests,
        },
    )
    repo.commit(
        "Support rectangles",
        "2024-02-03T09:00:00+00:00",
        {
            "shapes/__init__.py": "def area(side, other=None):\n    return side * (side if other is None else other)\n",
            "tests/test_area.py": tests + "\n    def test_rectangle(self):\n        self.assertEqual(area(2, 3), 6)\n"
            "\n    @unittest.skip('later')\n    def test_circle(self):\n        pass\n",
        },
    )
    return repo


def old_dependency(path: Path) -> RepoBuilder:
    """Uses markupsafe.soft_unicode, which exists only in MarkupSafe releases before 2.1 (2022)."""
    repo = RepoBuilder(path, remote="https://github.com/example/escaper.git")
    pyproject = (
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "escaper"\nversion = "0.1"\ndependencies = ["markupsafe"]\n'
        'classifiers = ["Programming Language :: Python :: 3.7", "Programming Language :: Python :: 3.8"]\n'
    )
    repo.commit(
        "Initial escaper",
        "2020-06-01T09:00:00+00:00",
        {
            "pyproject.toml": pyproject,
            "escaper.py": "def text(value):\n    return str(value)\n",
            "tests/test_escaper.py": "from escaper import text\n\n\ndef test_text():\n    assert text(1) == '1'\n",
        },
    )
    repo.commit(
        "Use soft_unicode for text (#7)",
        "2020-06-03T09:00:00+00:00",
        {
            "escaper.py": "from markupsafe import soft_unicode\n\n\ndef text(value):\n    return soft_unicode(value)\n",
            "tests/test_escaper.py": "from markupsafe import Markup\n\nfrom escaper import text\n\n\n"
            "def test_text():\n    assert text(1) == '1'\n\n\n"
            "def test_markup_kept():\n    assert isinstance(text(Markup('<b>')), Markup)\n",
        },
    )
    return repo


def uninstallable(path: Path) -> RepoBuilder:
    repo = RepoBuilder(path, remote="https://github.com/example/broken.git")
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "broken"\nversion = "0.1"\n'
        'dependencies = ["repoforge-no-such-distribution-anywhere==1.0"]\n'
    )
    repo.commit(
        "Initial broken",
        "2024-01-01T09:00:00+00:00",
        {
            "pyproject.toml": pyproject,
            "broken.py": "X = 1\n",
            "tests/test_broken.py": "def test_x():\n    assert True\n",
        },
    )
    repo.commit(
        "Set X to 2",
        "2024-01-02T09:00:00+00:00",
        {
            "broken.py": "X = 2\n",
            "tests/test_broken.py": "from broken import X\n\n\ndef test_x():\n    assert X == 2\n",
        },
    )
    return repo


def generated_module(path: Path) -> RepoBuilder:
    """Its build writes a module into the checkout (as setuptools-scm's write_to does) that git ignores."""
    repo = RepoBuilder(path, remote="https://github.com/example/stamp.git")
    setup = (
        "import os\nfrom setuptools import setup\n\n"
        "with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'stamp', '_version.py'), 'w') as f:\n"
        "    f.write('version = \"1.0\"\\n')\n\n"
        "setup(name='stamp', version='1.0', packages=['stamp'])\n"
    )
    pyproject = '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
    repo.commit(
        "Initial stamp",
        "2024-03-01T09:00:00+00:00",
        {
            "setup.py": setup,
            "pyproject.toml": pyproject,
            ".gitignore": "stamp/_version.py\n",
            "stamp/__init__.py": "from stamp._version import version\n\n\ndef label(name):\n    return name\n",
            "tests/test_stamp.py": "from stamp import label\n\n\ndef test_label():\n    assert label('a') == 'a'\n",
        },
    )
    repo.commit(
        "Label with the version (#4)",
        "2024-03-04T09:00:00+00:00",
        {
            "stamp/__init__.py": "from stamp._version import version\n\n\ndef label(name):\n    return f'{name} {version}'\n",
            "tests/test_stamp.py": "from stamp import label, version\n\n\ndef test_version():\n    assert version == '1.0'\n\n\n"
            "def test_label():\n    assert label('a') == 'a 1.0'\n",
        },
    )
    return repo


def pinned_python(path: Path) -> RepoBuilder:
    """Wants Python 3.8 and no other (no Debian suite ships it); no remote, so its folder names it."""
    repo = RepoBuilder(path)
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "middle"\nversion = "0.1"\nrequires-python = "==3.8.*"\n'
    )
    tests = "from middle import median\n\n\ndef test_odd():\n    assert median([3, 1, 2]) == 2\n"
    repo.commit(
        "Initial middle",
        "2021-02-01T09:00:00+00:00",
        {
            "pyproject.toml": pyproject,
            "middle.py": "def median(xs):\n    return sorted(xs)[len(xs) // 2]\n",
            "tests/test_middle.py": tests,
        },
    )
    even = "def median(xs):\n    s, n = sorted(xs), len(xs)\n    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2\n"
    repo.commit(
        "Median of an even count (#5)",
        "2021-02-03T09:00:00+00:00",
        {
            "middle.py": even,
            "tests/test_middle.py": tests + "\n\ndef test_even():\n    assert median([4, 1, 3, 2]) == 2.5\n",
        },
    )
    return repo


def optional_packages(path: Path) -> RepoBuilder:
    """Tests that skip without packages the project declares only for CI (a conda environment under
    ci/, with a package no index has) and in its `all` extra, not in its test extra."""
    repo = RepoBuilder(path, remote="https://github.com/example/tally.git")
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "tally"\nversion = "0.1"\n'
        'classifiers = ["Programming Language :: Python :: 3.11"]\n\n'
        '[project.optional-dependencies]\ntest = ["pytest"]\ntext = ["six"]\nall = ["tally[text]"]\n'
    )
    environment = (
        "name: tally-tests\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n"
        "  - pytest\n  - toolz >= 0.10\n  - repoforge-no-such-conda-package\n"
    )
    tests = (
        "import pytest\n\nfrom tally import count\n\n\n"
        "def test_count():\n    assert count('aab') == {'a': 2, 'b': 1}\n\n\n"
        "def test_count_like_toolz():\n    toolz = pytest.importorskip('toolz')\n"
        "    assert count('abca') == toolz.frequencies('abca')\n\n\n"
        "def test_count_text():\n    six = pytest.importorskip('six')\n"
        "    assert count(six.text_type('a')) == {'a': 1}\n"
    )
    repo.commit(
        "Initial tally",
        "2024-04-01T09:00:00+00:00",
        {
            "pyproject.toml": pyproject,
            "ci/requirements/environment.yml": environment,
            "tests/test_tally.py": tests,
            "tally.py": "def count(items):\n    return {item: 1 for item in items}\n",
        },
    )
    repo.commit(
        "Count repeated items (#2)",
        "2024-04-02T09:00:00+00:00",
        {
            "tally.py": "def count(items):\n    out = {}\n    for item in items:\n"
            "        out[item] = out.get(item, 0) + 1\n    return out\n",
        },
    )
    return repo


def plugin_marker(path: Path) -> RepoBuilder:
    """Its conftest marks every test with a marker of pytest-cov, a plugin builds leave out unless the
    tests need it; warnings are errors, so without the plugin no test runs."""
    repo = RepoBuilder(path, remote="https://github.com/example/marked.git")
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "marked"\nversion = "0.1"\n'
        'classifiers = ["Programming Language :: Python :: 3.11"]\n'
    )
    conftest = (
        "import pytest\n\n\ndef pytest_collection_modifyitems(items):\n    for item in items:\n"
        "        item.add_marker(pytest.mark.no_cover)\n"
    )
    repo.commit(
        "Initial marked",
        "2024-04-01T09:00:00+00:00",
        {
            "pyproject.toml": pyproject,
            "pytest.ini": "[pytest]\nfilterwarnings =\n    error\n",
            "requirements-test.txt": "pytest\npytest-cov\n",
            "conftest.py": conftest,
            "marked.py": "def double(x):\n    return x + x\n",
            "tests/test_marked.py": "from marked import double\n\n\ndef test_double():\n    assert double(2) == 4\n",
        },
    )
    return repo


def broken_binding(path: Path) -> RepoBuilder:
    """Lists for its tests a binding (eccodes) that installs from the index but does not import without its C
    library, which no index has; the package imports it where present, as optional features do."""
    repo = RepoBuilder(path, remote="https://github.com/example/gridded.git")
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "gridded"\nversion = "0.1"\n'
        'classifiers = ["Programming Language :: Python :: 3.11"]\n'
    )
    package = (
        "try:\n    import eccodes\nexcept ImportError:\n    eccodes = None\n\n\n"
        "def cells(rows, columns):\n    return rows * columns\n"
    )
    repo.commit(
        "Initial gridded",
        "2023-01-05T09:00:00+00:00",
        {
            "pyproject.toml": pyproject,
            "requirements-test.txt": "pytest\neccodes\n",
            "gridded/__init__.py": package,
            "tests/test_gridded.py": "from gridded import cells\n\n\ndef test_cells():\n    assert cells(2, 3) == 6\n",
        },
    )
    return repo


def python_bound_requirement(path: Path) -> RepoBuilder:
    """Declares Python 3.10 and 3.11 in January 2023, and numba for its tests, which had no release for 3.11 yet
    (numba 0.56 refuses to build there): only on 3.10 can the tests import it."""
    repo = RepoBuilder(path, remote="https://github.com/example/fastsum.git")
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "fastsum"\nversion = "0.1"\nrequires-python = ">=3.10"\n'
        'classifiers = ["Programming Language :: Python :: 3.10", "Programming Language :: Python :: 3.11"]\n'
    )
    tests = "import numba  # noqa: F401\n\nfrom fastsum import total\n\n\ndef test_total():\n    assert total([1, 2, 3]) == 6\n"
    repo.commit(
        "Initial fastsum",
        "2023-01-10T09:00:00+00:00",
        {
            "pyproject.toml": pyproject,
            "requirements-test.txt": "pytest\nnumba\n",
            "fastsum/__init__.py": "def total(xs):\n    return sum(xs)\n",
            "tests/test_fastsum.py": tests,
        },
    )
    return repo


def stale_import(path: Path) -> RepoBuilder:
    """Pins Jinja2 2.11.3, whose import asks MarkupSafe for soft_unicode, gone from the MarkupSafe 2.1 of its
    date (2022): a dependency's dependency left newer than the dependency was made against."""
    repo = RepoBuilder(path, remote="https://github.com/example/templated.git")
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "templated"\nversion = "0.1"\ndependencies = ["jinja2==2.11.3"]\n'
        'classifiers = ["Programming Language :: Python :: 3.9"]\n'
    )
    repo.commit(
        "Initial templated",
        "2022-06-01T09:00:00+00:00",
        {
            "pyproject.toml": pyproject,
            "templated/__init__.py": "import jinja2\n\n\ndef render(text, **values):\n"
            "    return jinja2.Template(text).render(**values)\n",
            "tests/test_templated.py": "from templated import render\n\n\n"
            "def test_render():\n    assert render('{{ a }}!', a=1) == '1!'\n",
        },
    )
    return repo


def depended_on(path: Path) -> RepoBuilder:
    """A project (named six here) that a test requirement (python-dateutil) depends on in a version the checkout's
    does not meet; its pinned setuptools cannot install it editable, so the project goes in before its deps."""
    repo = RepoBuilder(path, remote="https://github.com/example/six.git")
    pyproject = '[build-system]\nrequires = ["setuptools<64", "wheel"]\nbuild-backend = "setuptools.build_meta"\n'
    setup = (
        "from setuptools import setup\n\nsetup(name='six', version='1.0', py_modules=['six'],\n"
        "      classifiers=['Programming Language :: Python :: 3.11'])\n"
    )
    repo.commit(
        "Initial six",
        "2024-03-01T09:00:00+00:00",
        {
            "pyproject.toml": pyproject,
            "setup.py": setup,
            "requirements-test.txt": "pytest\npython-dateutil\n",
            "six.py": "def checkout():\n    return True\n",
            "tests/test_six.py": "import six\n\n\ndef test_the_checkout_is_tested():\n    assert six.checkout()\n",
        },
    )
    return repo


def git_versioned(path: Path) -> RepoBuilder:
    """Takes its version from `git describe` when it is built (as versioneer does); a test checks it."""
    repo = RepoBuilder(path, remote="https://github.com/example/stamped.git")
    setup = (
        "import subprocess\n\nfrom setuptools import setup\n\n\ndef version():\n    try:\n"
        "        tag = subprocess.check_output(['git', 'describe', '--tags', '--abbrev=0'])\n"
        "    except (OSError, subprocess.CalledProcessError):\n        return '0+unknown'\n"
        "    return tag.decode().strip().lstrip('v')\n\n\n"
        "setup(name='stamped', version=version(), packages=['stamped'],\n"
        "      classifiers=['Programming Language :: Python :: 3.11'])\n"
    )
    package = "from importlib.metadata import version\n\n__version__ = version('stamped')\n\n\n"
    tests = "import stamped\n\n\ndef test_version():\n    assert stamped.__version__ == '1.2'\n"
    repo.commit(
        "Initial stamped",
        "2024-04-01T09:00:00+00:00",
        {
            "setup.py": setup,
            "stamped/__init__.py": package + "def stamp(text):\n    return text\n",
            "tests/test_stamped.py": tests,
        },
    )
    repo._git("tag", "v1.2")
    repo.commit(
        "Stamp with the version (#4)",
        "2024-04-03T09:00:00+00:00",
        {
            "stamped/__init__.py": package + "def stamp(text):\n    return f'{text} ({__version__})'\n",
            "tests/test_stamped.py": tests + "\n\ndef test_stamp():\n    assert stamped.stamp('a') == 'a (1.2)'\n",
        },
    )
    return repo


def growing_dependencies(path: Path) -> RepoBuilder:
    """Two fixes whose base commits differ by one dependency (toolz added): their environments differ by it."""
    repo = RepoBuilder(path, remote="https://github.com/example/growing.git")
    pyproject = (
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "growing"\nversion = "0.1"\nrequires-python = ">=3.11"\ndependencies = {deps}\n\n'
        '[project.optional-dependencies]\ntest = ["pytest"]\n'
    )
    tests = "from growing import add, mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n"
    repo.commit(
        "Initial growing",
        "2024-04-01T09:00:00+00:00",
        {
            "pyproject.toml": pyproject.format(deps='["six"]'),
            "growing.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
            "tests/test_growing.py": tests,
        },
    )
    tests += "\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    repo.commit(
        "Fix add (#1)",
        "2024-04-02T09:00:00+00:00",
        {
            "growing.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n",
            "tests/test_growing.py": tests,
        },
    )
    repo.commit(
        "Multiply through toolz",
        "2024-04-03T09:00:00+00:00",
        {
            "pyproject.toml": pyproject.format(deps='["six", "toolz"]'),
            "growing.py": "from toolz import reduce\n\n\ndef add(a, b):\n    return a + b\n\n\n"
            "def mul(*numbers):\n    return reduce(lambda a, b: a + b, numbers)\n",
        },
    )
    tests += "\n\ndef test_mul_many():\n    assert mul(2, 3, 4) == 24\n"
    repo.commit(
        "Fix mul (#2)",
        "2024-04-04T09:00:00+00:00",
        {
            "growing.py": "from toolz import reduce\n\n\ndef add(a, b):\n    return a + b\n\n\n"
            "def mul(*numbers):\n    return reduce(lambda a, b: a * b, numbers)\n",
            "tests/test_growing.py": tests,
        },
    )
    return repo


def reaching_fix(path: Path) -> RepoBuilder:
    """Two fixes; the second's code reads the interpreter's module table, which the project never did before it."""
    repo = RepoBuilder(path, remote="https://github.com/example/reacher.git")
    pyproject = (
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "reacher"\nversion = "0.1"\nrequires-python = ">=3.11"\n\n'
        '[project.optional-dependencies]\ntest = ["pytest"]\n'
    )
    tests = "from reacher import add\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n"
    repo.commit(
        "Initial reacher",
        "2024-05-01T09:00:00+00:00",
        {"pyproject.toml": pyproject, "reacher.py": "def add(a, b):\n    return a - b\n", "tests/test_add.py": tests},
    )
    tests += "\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    repo.commit(
        "Fix add (#1)",
        "2024-05-02T09:00:00+00:00",
        {"reacher.py": "def add(a, b):\n    return a + b\n", "tests/test_add.py": tests},
    )
    tests = (
        tests.replace("import add", "import add, loaded") + "\n\ndef test_loaded():\n    assert 'reacher' in loaded()\n"
    )
    repo.commit(
        "List loaded modules (#2)",
        "2024-05-03T09:00:00+00:00",
        {
            "reacher.py": "import sys\n\n\ndef add(a, b):\n    return a + b\n\n\n"
            "def loaded():\n    return sorted(sys.modules)\n",
            "tests/test_add.py": tests,
        },
    )
    return repo
