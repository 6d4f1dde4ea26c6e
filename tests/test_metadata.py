"""Static metadata reading: each source in a small tree, exact values."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from repoforge.env.metadata import (
    ProjectMetadata,
    ci_python_versions,
    conda_to_pep508,
    poetry_constraint,
    read_metadata,
    tox_env_pythons,
)


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def test_empty_tree(tmp_path: Path) -> None:
    assert read_metadata(tmp_path) == ProjectMetadata()


def test_pep621_project_with_test_extra(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "pyproject.toml": """
            [build-system]
            requires = ["setuptools>=61", "setuptools_scm[toml]>=6.2"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "My_Pkg"
            requires-python = ">=3.7"
            dependencies = ["requests>=2.0", "attrs ;  python_version < '3.8'", "not a requirement!!"]
            classifiers = [
                "Programming Language :: Python :: 3",
                "Programming Language :: Python :: 3.10",
                "Programming Language :: Python :: 3.7",
                "Programming Language :: Python :: 3 :: Only",
            ]

            [project.optional-dependencies]
            test = ["pytest>=6", "my-pkg[yaml]"]
            yaml = ["pyyaml"]
            dev = ["black"]

            [tool.pytest.ini_options]
            addopts = "-ra"
        """,
        },
    )
    md = read_metadata(tmp_path)
    assert md.name == "My_Pkg"
    assert md.requires_python == ">=3.7"
    assert md.classifier_pythons == ["3.7", "3.10"]
    assert md.dependencies == ["requests>=2.0", "attrs ; python_version < '3.8'"]
    assert md.extras == {"test": ["pytest>=6"], "yaml": ["pyyaml"], "dev": ["black"]}
    assert md.test_extras == ["test"]  # dev is not used when a test extra exists
    assert md.test_requirements == []  # extras are not expanded
    assert md.build_requires == ["setuptools>=61", "setuptools_scm[toml]>=6.2"]
    assert md.build_backend == "setuptools.build_meta"
    assert md.uses_setuptools_scm is True
    assert md.pytest_configured is True
    assert md.has_pyproject is True and md.has_setup_py is False
    assert md.manifest_files == ["pyproject.toml"]
    assert len(md.warnings) == 1 and "not a requirement!!" in md.warnings[0]


def test_dev_extra_used_only_without_test_extras(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "pyproject.toml": """
        [project]
        name = "x"
        [project.optional-dependencies]
        docs = ["sphinx"]
        Dev = ["pytest"]
    """
        },
    )
    assert read_metadata(tmp_path).test_extras == ["Dev"]


def test_poetry_project(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "pyproject.toml": """
            [tool.poetry]
            name = "poetic"
            classifiers = ["Programming Language :: Python :: 3.8"]

            [tool.poetry.dependencies]
            python = "^3.7"
            requests = "^2.22"
            click = "~7.1"
            attrs = "*"
            toml = ">=0.10,<0.11"
            pendulum = { version = "^2.0.5", extras = ["test"] }
            psycopg2 = { version = "^2.8", optional = true }
            lxml = { version = "^4.0", optional = true }
            orphan = { version = "1.0", optional = true }
            dataclasses = { version = "0.7", python = ">=3.6,<3.7" }
            mylib = { git = "https://github.com/x/mylib.git" }

            [tool.poetry.extras]
            pgsql = ["psycopg2"]
            xml = ["lxml", "psycopg2"]

            [tool.poetry.dev-dependencies]
            pytest = "^6.0"

            [tool.poetry.group.test.dependencies]
            pytest-cov = "^0.0.3"

            [tool.poetry.group.docs.dependencies]
            sphinx = "^4"

            [build-system]
            requires = ["poetry-core>=1.0.0"]
            build-backend = "poetry.core.masonry.api"
        """,
        },
    )
    md = read_metadata(tmp_path)
    assert md.name == "poetic"
    assert md.requires_python == ">=3.7,<4.0"
    assert md.classifier_pythons == ["3.8"]
    assert md.dependencies == [
        "requests>=2.22,<3.0",
        "click>=7.1,<7.2",
        "attrs",
        "toml>=0.10,<0.11",
        "pendulum[test]>=2.0.5,<3.0.0",
        'dataclasses==0.7; python_version >= "3.6" and python_version < "3.7"',
    ]
    assert md.extras == {"pgsql": ["psycopg2>=2.8,<3.0"], "xml": ["psycopg2>=2.8,<3.0", "lxml>=4.0,<5.0"]}
    assert md.test_extras == []
    assert md.test_requirements == ["pytest>=6.0,<7.0", "pytest-cov>=0.0.3,<0.0.4"]
    assert md.build_backend == "poetry.core.masonry.api"
    assert any("mylib" in w for w in md.warnings)


@pytest.mark.parametrize(
    "given, expected",
    [
        ("^3.7", ">=3.7,<4.0"),
        ("~3.7", ">=3.7,<3.8"),
        (">=3.6,<4", ">=3.6,<4"),
        ("*", ""),
        ("^1.2.3", ">=1.2.3,<2.0.0"),
        ("^0.2.3", ">=0.2.3,<0.3.0"),
        ("^0", ">=0,<1"),
        ("~1", ">=1,<2"),
        ("~1.2.3", ">=1.2.3,<1.3.0"),
        ("1.2.3", "==1.2.3"),
        ("1.2.*", "==1.2.*"),
        ("~=1.4", "~=1.4"),
        (">= 1.2, < 1.5", ">=1.2,<1.5"),
        ("^2.7 || ^3.5", None),
        ("not a version", None),
    ],
)
def test_poetry_constraint(given: str, expected: str | None) -> None:
    assert poetry_constraint(given) == expected


def test_poetry_python_union_uses_lowest_bound(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "pyproject.toml": """
        [tool.poetry]
        name = "old"
        [tool.poetry.dependencies]
        python = "^2.7 || ^3.5"
    """
        },
    )
    md = read_metadata(tmp_path)
    assert md.requires_python == ">=2.7"
    assert len(md.warnings) == 1


def test_setup_py_with_module_level_names(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "setup.py": """
            import os
            from setuptools import setup, find_packages

            NAME = "classic"
            BASE = ["six>=1.10", "requests"]
            EXTRA = ["click"]
            INSTALL_REQUIRES = BASE + EXTRA
            INSTALL_REQUIRES.append("attrs")
            TESTS = ["pytest", "mock"]
            extras = {
                "test": TESTS + ["coverage"],
                "docs": ["sphinx"],
                ":python_version<'3.4'": ["enum34"],
                "yaml:sys_platform == 'linux'": ["pyyaml"],
                "all": ["classic[docs]", "numpy>=%s" % "1.16"],
            }
            here = os.path.abspath(os.path.dirname(__file__))
            with open(os.path.join(here, "README.rst")) as f:
                long_description = f.read()
            kwargs = dict(
                tests_require=TESTS,
                setup_requires=["setuptools_scm", "pytest-runner"],
            )

            if __name__ == "__main__":
                setup(
                    name=NAME,
                    version="1.0",
                    long_description=long_description,
                    packages=find_packages(),
                    install_requires=INSTALL_REQUIRES,
                    extras_require=extras,
                    python_requires=">=2.7, !=3.0.*, !=3.1.*",
                    classifiers=[
                        "Programming Language :: Python :: 2.7",
                        "Programming Language :: Python :: 3.6",
                    ],
                    use_scm_version=True,
                    **kwargs
                )
        """,
        },
    )
    md = read_metadata(tmp_path)
    assert md.name == "classic"
    assert md.has_setup_py is True
    assert md.requires_python == ">=2.7, !=3.0.*, !=3.1.*"
    assert md.classifier_pythons == ["2.7", "3.6"]
    assert md.dependencies == ["six>=1.10", "requests", "click", "attrs", "enum34; python_version<'3.4'"]
    assert md.extras == {
        "test": ["pytest", "mock", "coverage"],
        "docs": ["sphinx"],
        "yaml": ["pyyaml; sys_platform == 'linux'"],
        "all": ["numpy>=1.16"],
    }
    assert md.test_extras == ["test"]
    assert md.test_requirements == ["pytest", "mock", "numpy>=1.16", "sphinx"]  # `all`, with the docs it includes
    assert md.build_requires == ["setuptools_scm", "pytest-runner"]
    assert md.uses_setuptools_scm is True
    assert md.manifest_files == ["setup.py"]
    assert md.warnings == []


def test_setup_py_unresolvable_values_warn(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "setup.py": """
        import setuptools
        def reqs():
            return ["a"]
        setuptools.setup(name="odd", install_requires=reqs(), tests_require=["nose", compute()])
    """
        },
    )
    md = read_metadata(tmp_path)
    assert md.name == "odd"
    assert md.dependencies == []
    assert md.test_requirements == ["nose"]
    assert len(md.warnings) == 2
    assert "install_requires" in md.warnings[0] and "tests_require" in md.warnings[1]


def test_setup_py_reads_mentioned_requirement_files(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "setup.py": """
            from setuptools import setup
            with open("deps.txt") as f:
                reqs = f.read().splitlines()
            setup(name="reader", install_requires=reqs)
        """,
            "deps.txt": "numpy>=1.10\n# comment\nscipy\n",
        },
    )
    md = read_metadata(tmp_path)
    assert md.dependencies == ["numpy>=1.10", "scipy"]
    assert md.manifest_files == ["deps.txt", "setup.py"]
    assert md.warnings == ["setup.py: could not statically resolve install_requires"]


def test_setup_py_syntax_error_and_malformed_pyproject(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "setup.py": "from setuptools import setup\nsetup(name='broken',\n",
            "pyproject.toml": "[project\nname = 'x'\n",
        },
    )
    md = read_metadata(tmp_path)
    assert md.name is None
    assert md.has_setup_py and md.has_pyproject
    assert len(md.warnings) == 2
    assert md.warnings[0].startswith("pyproject.toml: invalid TOML")
    assert md.warnings[1].startswith("setup.py: cannot be parsed (SyntaxError")


def test_setup_cfg(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "setup.cfg": """
            [metadata]
            name = cfgpkg
            version = attr: cfgpkg.__version__
            classifiers =
                Programming Language :: Python :: 3.9
                Programming Language :: Python :: 3.8

            [options]
            python_requires = >=3.6.*
            install_requires =
                numpy>=1.16
                # a comment
                pandas; python_version >= "3.7"
            tests_require = pytest; mock
            setup_requires = file: setup-requirements.txt

            [options.extras_require]
            testing =
                pytest-cov
                cfgpkg[extra]
            extra = attr: cfgpkg.extras

            [tool:pytest]
            testpaths = tests

            [tox:tox]
            envlist = py38,py39
        """,
        },
    )
    md = read_metadata(tmp_path)
    assert md.name == "cfgpkg"
    assert md.requires_python == ">=3.6"  # `>=3.6.*` repaired
    assert md.classifier_pythons == ["3.8", "3.9"]
    assert md.dependencies == ["numpy>=1.16", 'pandas; python_version >= "3.7"']
    assert md.test_requirements == ["pytest", "mock"]
    assert md.extras == {"testing": ["pytest-cov"], "extra": []}
    assert md.test_extras == ["testing"]
    assert md.tox_pythons == ["3.8", "3.9"]
    assert md.pytest_configured is True
    assert md.manifest_files == ["setup.cfg"]
    assert any("attr:" in w for w in md.warnings)
    assert any("setup-requirements.txt not found" in w for w in md.warnings)


def test_requirement_files_with_includes_and_cycle(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "requirements.txt": """
            -r requirements/base.txt
            flask==1.0 --hash=sha256:abcdef
            --index-url https://example.org/simple
            -e git+https://github.com/x/y.git#egg=y
            git+https://github.com/x/z.git
            ./vendored
            -e .
            django   >=2.2 ,<3   # trailing comment
        """,
            "requirements/base.txt": "-r ../requirements.txt\nsix\nfutures; python_version < '3'\n",
            "requirements/docs.txt": "sphinx\n",
            "requirements-dev.txt": "-r requirements.txt\n--requirement=requirements/test.txt\n-r docs/requirements.txt\nblack\n",
            "docs/requirements.txt": "furo\n",
            "requirements/test.txt": "-r test.txt\n-c constraints.txt\npytest>=5\n.[tests]\n",
            "requirements/prod.txt": "gunicorn\n",
            "tools-requirements.txt": "pytest-xdist\n",
        },
    )
    md = read_metadata(tmp_path)
    assert md.dependencies == [
        "six",
        "futures; python_version < '3'",
        "flask==1.0",
        "django >=2.2 ,<3",
        "gunicorn",
    ]
    assert md.test_requirements == [
        "six",
        "futures; python_version < '3'",
        "flask==1.0",
        "django >=2.2 ,<3",
        "pytest>=5",
        "black",
        "pytest-xdist",
    ]
    assert md.test_extras == ["tests"]
    assert md.manifest_files == [
        "requirements-dev.txt",
        "requirements.txt",
        "requirements/base.txt",
        "requirements/prod.txt",
        "requirements/test.txt",
        "tools-requirements.txt",
    ]
    assert sum("skipped" in w for w in md.warnings) == 3  # -e git+, git+, ./vendored
    assert "requirements-dev.txt: left out docs/requirements.txt: not for the tests" in md.warnings


def test_tox_ini(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "pyproject.toml": """
            [project]
            name = "toxed"
            [project.optional-dependencies]
            testing = ["hypothesis"]
            speedups = ["ujson"]
        """,
            "tox.ini": """
            [tox]
            envlist = py{36,37}-django{22,30}, lint, py3, pypy3

            [testenv]
            deps =
                -r{toxinidir}/requirements-test.txt
                pytest
                django22: Django>=2.2,<2.3
                django30: Django>=3.0,<3.1
                py36,py37: mock
                py37-min: -r requirements-min.txt
                {[base]deps}
                {env:EXTRA_DEP:}
            extras =
                speedups
                unknown
            commands = pytest {posargs}

            [pytest]
            addopts = -x
        """,
            "requirements-test.txt": "coverage\n",
            "requirements-min.txt": "Django==2.2.0\n",
        },
    )
    md = read_metadata(tmp_path)
    assert md.tox_pythons == ["3.6", "3.7"]
    assert md.test_requirements == ["coverage", "pytest", "Django>=2.2,<2.3", "Django>=3.0,<3.1", "mock"]
    assert md.test_extras == ["testing", "speedups"]
    assert md.pytest_configured is True
    assert md.manifest_files == ["pyproject.toml", "requirements-test.txt", "tox.ini"]


@pytest.mark.parametrize(
    "envlist, expected",
    [
        ("py{36,37}-django{22,30}", {"3.6", "3.7"}),
        ("py27,py38\n  py310-lint", {"2.7", "3.8", "3.10"}),
        ("py3{8,9}", {"3.8", "3.9"}),
        ("{py27,py36}-test, py3.11", {"2.7", "3.6", "3.11"}),
        ("py3, pypy3, docs", set()),
    ],
)
def test_tox_env_pythons(envlist: str, expected: set[str]) -> None:
    assert tox_env_pythons(envlist) == expected


def test_noxfile(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "noxed"\n',
            "noxfile.py": """
            import nox

            TEST_DEPS = ["pytest", "pytest-mock"]

            @nox.session(python=["3.8", "3.9"])
            def tests(session):
                session.install("-e", ".[test]")
                session.install(*TEST_DEPS, "-r", "requirements/extra.txt")
                session.install("-c", "constraints.txt", "freezegun")
                session.install(".")
                session.run("pytest")

            @nox.session
            def lint(session):
                session.install("flake8")
                session.run("flake8")
        """,
            "requirements/extra.txt": "responses\n",
        },
    )
    md = read_metadata(tmp_path)
    assert md.test_requirements == ["pytest", "pytest-mock", "responses", "freezegun"]
    assert md.test_extras == ["test"]  # from the self-reference, though undeclared
    assert md.manifest_files == ["noxfile.py", "pyproject.toml", "requirements/extra.txt"]
    assert md.warnings == []


def test_pipfile(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "Pipfile": """
            [[source]]
            url = "https://pypi.org/simple"

            [packages]
            requests = "*"
            django = ">=2.0"
            celery = {version = "==4.3", extras = ["redis"]}
            mypkg = {path = ".", editable = true}

            [dev-packages]
            pytest = "*"
            tox = "3.14"
        """,
        },
    )
    md = read_metadata(tmp_path)
    assert md.dependencies == ["requests", "django>=2.0", "celery[redis]==4.3"]
    assert md.test_requirements == ["pytest", "tox==3.14"]
    assert md.warnings == []


def test_pipfile_packages_ignored_when_other_runtime_source(tmp_path: Path) -> None:
    make(tmp_path, {"Pipfile": "[packages]\nrequests = '*'\n", "requirements.txt": "flask\n"})
    assert read_metadata(tmp_path).dependencies == ["flask"]


def test_environment_yml_with_pip_list(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "environment.yml": """
            name: dev
            channels:
              - conda-forge
            dependencies:
              - python=3.8
              - pip
              - numpy=1.18
              - conda-forge::scipy >=1.4
              - pytables
              - pytorch=1.4=py3.8_cuda
              - matplotlib-base
              - pandas==1.0.3
              - py-xgboost
              - pip:
                - pytest-asyncio>=0.10
                - -r pip-extra.txt
                - git+https://github.com/x/y.git
              - "hypothesis"
            variables:
              - notadep
        """,
            "pip-extra.txt": "responses\n",
        },
    )
    md = read_metadata(tmp_path)
    assert md.test_requirements == [
        "numpy==1.18.*",
        "scipy>=1.4",
        "tables",
        "torch==1.4.*",
        "matplotlib",
        "pandas==1.0.3",
        "xgboost",
        "pytest-asyncio>=0.10",
        "responses",
        "hypothesis",
    ]
    assert md.manifest_files == ["environment.yml", "pip-extra.txt"]
    assert len(md.warnings) == 1 and "git+https" in md.warnings[0]


def test_of_several_conda_environments_the_newest_main_one_is_used(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "ci/deps/py37.yaml": "dependencies:\n  - numpy=1.16\n  - pytest>=5\n  - six\n",
            "ci/deps/py38.yaml": "dependencies:\n  - numpy=1.18\n  - pytest>=5\n",
            "ci/deps/py39-min.yaml": "dependencies:\n  - numpy=1.10\n  - pytest>=5\n",
            "ci/deps/docs.yaml": "dependencies:\n  - sphinx\n",
            "ci/azure.yml": "jobs:\n  - job: x\n",
        },
    )
    md = read_metadata(tmp_path)
    assert md.test_requirements == ["numpy==1.18.*", "pytest>=5"]
    assert md.manifest_files == ["ci/deps/py38.yaml"]
    # The project declares Python 3.7 at most: the build will likely choose it, so its environment.
    make(tmp_path, {".travis.yml": "python: [3.6, 3.7]\n"})
    assert read_metadata(tmp_path).test_requirements == ["numpy==1.16.*", "pytest>=5", "six"]


def test_conda_environment_under_ci_requirements(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "ci/requirements/environment.yml": """
            name: tests
            channels: [conda-forge]
            dependencies:
              - dask
              - numpy >= 1.16.0   # spaced the conda way
              - pandas >=1.0, <2
              - iris
              - pip
              - pip:
                - numbagg
        """,
            "ci/requirements/py38-all-but-dask.yml": "dependencies:\n  - python=3.8\n  - numpy\n  - pandas\n",
            "ci/requirements/py37-min-all-deps.yml": "dependencies:\n  - python=3.7\n  - numpy=1.15\n",
            "ci/requirements/environment-windows.yml": "dependencies:\n  - numpy\n  - pywin32\n  - a\n  - b\n  - c\n",
            "ci/requirements/doc.yml": "dependencies:\n  - sphinx\n",
            ".github/workflows/ci.yml": "jobs:\n  test:\n    steps:\n      - run: pytest\n",
        },
    )
    md = read_metadata(tmp_path)
    # the main environment, unpinned (so for the newest Python), is preferred to one for Python 3.8
    assert md.test_requirements == ["dask", "numpy>=1.16.0", "pandas>=1.0,<2", "scitools-iris", "numbagg"]
    assert md.manifest_files == ["ci/requirements/environment.yml"]
    assert md.warnings == []


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("numpy=1.18", "numpy==1.18.*"),
        ("numpy 1.18.*", "numpy==1.18.*"),
        ("numpy=1.18*", "numpy==1.18.*"),
        ("python=3.8", None),
        ("pip", None),
        ("libxml2", "libxml2"),
        ("numpy>=1.1,<2", "numpy>=1.1,<2"),
        ("numpy >= 1.16.0", "numpy>=1.16.0"),
        ("numpy >=1.16, <2", "numpy>=1.16,<2"),
        ("numpy==1.18.1=py38_0", "numpy==1.18.1"),
        ("numpy 1.18.1 py38_0", "numpy==1.18.1.*"),
        ("numpy[version='>=1.16']", "numpy>=1.16"),
        ("numpy 1.18|1.19", "numpy"),
        ("hdf5", None),
    ],
)
def test_conda_to_pep508(spec: str, expected: str | None) -> None:
    assert conda_to_pep508(spec) == expected


def test_an_all_extra_gathers_optional_packages_for_the_tests(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "pyproject.toml": """
        [project]
        name = "gather"
        [project.optional-dependencies]
        test = ["pytest"]
        io = ["h5py", "netcdf4"]
        viz = ["matplotlib"]
        docs = ["sphinx"]
        all = ["gather[io,viz]", "toolz"]
    """
        },
    )
    md = read_metadata(tmp_path)
    assert md.test_extras == ["test"]
    # test requirements, not extras to install: one that cannot be installed is left out alone
    assert md.test_requirements == ["toolz", "h5py", "netcdf4", "matplotlib"]


def test_a_complete_extra_made_of_other_extras_in_setup_cfg(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "setup.cfg": """
        [metadata]
        name = gather
        [options.extras_require]
        io =
            h5py
        viz = matplotlib
        complete =
            %(io)s
            %(viz)s
    """
        },
    )
    md = read_metadata(tmp_path)
    assert md.extras == {"io": ["h5py"], "viz": ["matplotlib"], "complete": ["h5py", "matplotlib"]}
    assert md.test_requirements == ["h5py", "matplotlib"]
    assert md.warnings == []


def test_an_all_extra_computed_beyond_static_reading_stands_for_every_extra(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "setup.py": """
        from setuptools import setup
        EXTRAS = {"optional": ["numba"], "doc": ["ipython"], "test": ["pytest"]}
        EXTRAS["all"] = sorted(set(sum(EXTRAS.values(), [])))
        setup(name="computed", extras_require=EXTRAS)
    """
        },
    )
    md = read_metadata(tmp_path)
    assert md.test_extras == ["test"]
    assert md.test_requirements == ["numba", "ipython", "pytest"]  # `optional` by its name, then `all`
    assert md.warnings == ["setup.py: could not statically resolve extras_require['all']"]


def test_what_ci_test_jobs_install(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "pyproject.toml": """
            [project]
            name = "plotter"
            [project.optional-dependencies]
            test = ["pytest"]
            plot = ["matplotlib"]
        """,
            "ci/utils.txt": "pytest-mock\n",
            ".github/workflows/tests.yml": """
            on: [push]
            jobs:
              tests:
                strategy:
                  matrix:
                    python-version: ["3.9", "3.10"]
                steps:
                  - uses: actions/checkout@v4
                  - run: |
                      python -m pip install --upgrade pip wheel
                      if [[ ${{ matrix.python-version }} == '3.10' ]]; then EXTRAS=',plot'; fi
                      pip install -e .[test$EXTRAS] \\
                          -r ci/utils.txt "numpy>=1.20"
                      if [ "$RUNNER_OS" = Linux ]; then
                        pip install shell-guarded
                      fi
                  - if: matrix.python-version == '3.10'
                    run: pip install step-guarded
                  - run: make ${{ matrix.target }}  # a test job by its name
              gpu:
                steps:
                  - run: python -m pip install .[test,plot] cupy numpy>=1.20 -r ci/utils.txt
                  - run: python -m pytest tests/gpu
              tox:
                steps:
                  - run: pip install tox
                  - run: tox -e py
              lint:
                steps:
                  - run: pip install flake8 mypy
                  - run: flake8 .
        """,
        },
    )
    md = read_metadata(tmp_path)
    # Of the three jobs that run tests, two install these; cupy is one job's (the gpu one's) alone.
    assert md.test_requirements == ["pytest-mock", "numpy>=1.20", "matplotlib"]
    assert md.test_extras == ["test"]
    assert md.ci_pythons == ["3.9", "3.10"]
    assert md.manifest_files == [".github/workflows/tests.yml", "ci/utils.txt", "pyproject.toml"]


def test_requirement_files_under_ci_folders(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "ci/requirements/py311.txt": "toolz\n",
            "ci/requirements-docs.txt": "sphinx\n",
            "ci/requirements-min.txt": "numpy==1.10\n",
            ".github/test-deps.txt": "attrs\n",
            ".github/spelling_words.txt": "numpy\n",
            "requirements/tests-pallets-min.txt": "werkzeug==2.0.0\npytest\n",
        },
    )
    md = read_metadata(tmp_path)
    assert md.test_requirements == ["attrs", "toolz"]
    assert md.manifest_files == [".github/test-deps.txt", "ci/requirements/py311.txt"]


def test_plugins_the_tests_need(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "requirements-test.txt": "pytest-cov\npytest-mypy\npytest-timeout\npytest-black\npytest-xdist\npytest-mock\n",
            "pytest.ini": """
            [pytest]
            addopts = -p xdist
            required_plugins = pytest-black>=0.3
            filterwarnings = error
        """,
            "tests/conftest.py": """
            import pytest
            def pytest_collection_modifyitems(items):
                for item in items:
                    item.add_marker(pytest.mark.no_cover)
        """,
            "tests/test_x.py": """
            import pytest
            @pytest.mark.timeout(5)
            def test_x(
                mocker, tmp_path
            ):
                pass
        """,
        },
    )
    md = read_metadata(tmp_path)
    assert md.needed_plugins == ["pytest-cov", "pytest-timeout", "pytest-black", "pytest-xdist", "pytest-mock"]
    assert md.test_requirements[-1] == "pytest-black>=0.3"  # a required plugin is installed
    assert md.pytest_plugins == ["xdist"]


def test_setuptools_scm_detection_variants(tmp_path: Path) -> None:
    a = make(tmp_path / "a", {"pyproject.toml": "[tool.setuptools_scm]\n"})
    b = make(tmp_path / "b", {"pyproject.toml": '[tool.hatch.version]\nsource = "vcs"\n'})
    c = make(tmp_path / "c", {"pyproject.toml": '[build-system]\nrequires = ["hatchling", "hatch-vcs"]\n'})
    d = make(tmp_path / "d", {"setup.py": "from setuptools import setup\nsetup(use_scm_version={'root': '.'})\n"})
    e = make(tmp_path / "e", {"setup.py": "from setuptools import setup\nsetup(name='plain', version='1')\n"})
    assert [read_metadata(p).uses_setuptools_scm for p in (a, b, c, d, e)] == [True, True, True, True, False]


def test_runner_script_and_pytest_detection(tmp_path: Path) -> None:
    a = make(tmp_path / "a", {"runtests.py": "print(1)\n", "conftest.py": ""})
    b = make(tmp_path / "b", {"tests/runtests.py": "", "pytest.ini": "[pytest]\n"})
    c = make(tmp_path / "c", {"bin/test": "#!/bin/sh\n"})
    d = make(tmp_path / "d", {"tests/test_x.py": ""})
    assert (read_metadata(a).runner_script, read_metadata(a).pytest_configured) == ("runtests.py", True)
    assert (read_metadata(b).runner_script, read_metadata(b).pytest_configured) == ("tests/runtests.py", True)
    assert (read_metadata(c).runner_script, read_metadata(c).pytest_configured) == ("bin/test", False)
    assert (read_metadata(d).runner_script, read_metadata(d).pytest_configured) == (None, False)


def test_ci_pythons(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            ".github/workflows/test.yml": """
            jobs:
              test:
                strategy:
                  matrix:
                    python-version: [3.7, "3.8", '3.10', pypy-3.7]
                    os: [ubuntu-latest]
                steps:
                  - uses: actions/setup-python@v2
                    with:
                      python-version: ${{ matrix.python-version }}
        """,
            ".github/workflows/lint.yaml": """
            jobs:
              lint:
                strategy:
                  matrix:
                    python:
                      - "3.11"
                      - 3.9
        """,
            ".travis.yml": "language: python\npython:\n  - 2.7\n  - '3.6'\n",
        },
    )
    md = read_metadata(tmp_path)
    assert md.ci_pythons == ["2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11"]
    assert md.tox_pythons == []
    assert md.manifest_files == []  # CI files do not define the dependency set


def test_ci_python_versions_scalar() -> None:
    assert ci_python_versions("steps:\n  - with:\n      python-version: '3.9'\n") == {"3.9"}
    assert ci_python_versions("python: [3.10, 3.9]\n") == {"3.10", "3.9"}  # YAML numbers kept as written
    assert ci_python_versions("python: [3.10\n") == set()


def test_odd_files_never_raise(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "setup.cfg": "no section header\n[metadata\n",
            "tox.ini": "[tox]\nenvlist = py37\n[tox]\nenvlist = py38\n  garbage line without key\n",
            "Pipfile": "[packages\n",
            "noxfile.py": "def (:\n",
            "environment.yml": "dependencies: [numpy]\n",
            "ci/environment.yml": "dependencies:\n  - numpy\n bad: : :\n",
            ".github/workflows/ci.yml": "jobs: [\n",
            ".travis.yml": "- just\n- a list\n",
            "requirements.txt": "\x00\xff binary junk ===\n",
            "setup.py": "setup(**{1: 2}, install_requires=42, extras_require=['x'])\n",
        },
    )
    (tmp_path / "requirements-dev.txt").write_bytes(b"\xff\xfe pytest\n")
    md = read_metadata(tmp_path)
    assert isinstance(md, ProjectMetadata)
    assert md.warnings
    assert sum("invalid YAML" in w for w in md.warnings) == 2
    assert md.dependencies == []


def test_pytest_plugins_come_from_the_config_pytest_reads_first(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "pytest.ini": "[pytest]\naddopts = -rfEX -p pytester --cov=pkg -pxdist --strict-markers\n",
            "setup.cfg": "[tool:pytest]\naddopts = -p other\n",
            "pyproject.toml": '[tool.pytest.ini_options]\naddopts = ["-p", "third"]\n',
        },
    )
    assert read_metadata(tmp_path).pytest_plugins == ["pytester", "xdist"]
    (tmp_path / "pytest.ini").unlink()
    assert read_metadata(tmp_path).pytest_plugins == ["third"]
