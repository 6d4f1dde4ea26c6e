"""conda environment files (environment*.yml at the root, any *.yml under CI folders): the conda
and pip dependencies of the main one as test requirements."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

from .finish import classifier_pythons
from .model import YAML_FILE, Raw, Reader
from .requirements import MIN_VERSION_TOKENS, path_tokens, req_lines

ENV_FOLDERS = ["ci", ".ci", ".github", "requirements", "conda"]
# conda package names that differ from the package index
CONDA_NAME_MAP = {
    "pytables": "tables",
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "matplotlib-base": "matplotlib",
    "numpy-base": "numpy",
    "py-xgboost": "xgboost",
    "msgpack-python": "msgpack",
    "python-graphviz": "graphviz",
    "pyqt": "PyQt5",
    "tensorflow-base": "tensorflow",
    "ruamel_yaml": "ruamel.yaml",
    "iris": "scitools-iris",  # the index's `iris` is another project
}
# conda packages that are never Python distributions on the index
CONDA_DROP = {
    "python",
    "pip",
    "python_abi",
    "setuptools-conda",
    "c-compiler",
    "cxx-compiler",
    "fortran-compiler",
    "compilers",
    "libgcc",
    "libgcc-ng",
    "libstdcxx-ng",
    "gcc",
    "gxx",
    "nodejs",
    "openjdk",
    "blas",
    "libblas",
    "liblapack",
    "r-base",
    "hdf5",
    "libnetcdf",
    "geos",
    "proj",
    "openjpeg",
    "jpeg",
    "zlib",
}
# Words of a file's path saying it is not the main test environment: the oldest supported versions,
# documentation, another platform, unreleased upstream versions, linting.
ASIDE_TOKENS = MIN_VERSION_TOKENS | {
    "doc",
    "docs",
    "documentation",
    "rtd",
    "readthedocs",
    "windows",
    "win",
    "macos",
    "osx",
    "mac",
    "darwin",
    "upstream",
    "nightly",
    "lint",
    "linting",
    "typing",
    "mypy",
    "benchmark",
    "benchmarks",
    "asv",
    "binder",
}
_OPERATOR = re.compile(r"\s*(==|>=|<=|!=|~=|>|<|=)\s*")
_PYTHON_SPEC = re.compile(r"^python\s*(?:[=<>!~]=?\s*|\s+)(\d)\.(\d{1,2})")
_PYTHON_IN_PATH = re.compile(r"py(?:thon)?[-_]?(\d)\.?(\d{1,2})(?!\d)")


def is_environment(doc: object) -> bool:
    """Whether a YAML document is a conda environment (it lists `dependencies`)."""
    return isinstance(doc, dict) and isinstance(doc.get("dependencies"), list)


def conda_to_pep508(item: str) -> str | None:
    """A conda match spec (`numpy=1.18`, `numpy >= 1.16`, `conda-forge::scipy >=1.4`,
    `numpy 1.18.* py38_0`, `numpy[version='>=1.16']`) as a requirement, or None."""
    item = re.sub(r"^[\w./-]+::", "", item.strip())
    m = re.match(r"^([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*(.*)$", item)
    if not m:
        return None
    name, rest = m.group(1), m.group(2).strip()
    if name.lower() in CONDA_DROP:
        return None
    name = CONDA_NAME_MAP.get(name.lower(), name)
    bracket = re.search(r"version\s*=\s*['\"]([^'\"]+)['\"]", rest) if rest.startswith("[") else None
    version = bracket.group(1) if bracket else rest
    # Operators and commas may stand apart from their versions; what follows a space is a build string.
    version = re.sub(r"\s*,\s*", ",", _OPERATOR.sub(r"\1", version)).split(" ")[0]
    spec = _conda_specifier(version)
    try:
        Requirement(name + spec)
    except InvalidRequirement:
        return name  # a conda version PEP 440 cannot express still names the package
    return name + spec


def _conda_specifier(version: str) -> str:
    """A conda version constraint as a PEP 440 specifier ("" for any)."""
    if not version or "|" in version:
        return ""
    if version.startswith("=="):
        return "==" + version[2:].split("=")[0]
    if version.startswith("="):
        return _conda_prefix(version[1:].split("=")[0])
    if re.match(r"^(>=|<=|!=|~=|>|<)", version):
        return version
    return _conda_prefix(version.split("=")[0])


def _conda_prefix(version: str) -> str:
    """A conda version (`1.18`, `1.18.*`, `1.18*`) as a prefix-matching specifier."""
    version = version.strip()
    if not version or version == "*":
        return ""
    if version.endswith(".*"):
        return "==" + version
    if version.endswith("*"):
        return "==" + version[:-1].rstrip(".") + ".*"
    return f"=={version}.*"


@dataclass
class _Environment:
    rel: str
    dependencies: list  # conda match specs, and a {pip: [lines]} mapping
    python: tuple[int, int] | None  # the Python it pins, from its dependencies or its name
    aside: bool  # its path says it is not the main test environment

    def rank(self, newest_declared: tuple[int, int] | None) -> tuple:
        """Higher is preferred: the main environment, for the newest Python the project declares
        (which the build will likely choose), else the newest (unpinned: the current one), with the
        most packages."""
        python = self.python or (99, 0)
        declared = newest_declared is None or self.python is None or python <= newest_declared
        size = sum(len(d["pip"]) if isinstance(d, dict) else 1 for d in self.dependencies)
        return not self.aside, declared, python, size

    def requirements(self, r: Reader) -> list[Raw]:
        reqs: list[Raw] = []
        for dep in self.dependencies:
            if isinstance(dep, dict):
                req_lines(r, dep["pip"], posixpath.dirname(self.rel), self.rel, reqs, set(), test_context=True)
            elif req := conda_to_pep508(dep):
                reqs.append((req, self.rel))
        return reqs


def _environment(r: Reader, rel: str) -> _Environment | None:
    """The conda environment file rel, or None when it is no such file (no `dependencies` list)."""
    doc = r.load_yaml(rel, record=False)
    if not is_environment(doc):
        return None
    deps = [
        d.strip() if isinstance(d, str) else {"pip": [x for x in d["pip"] if isinstance(x, str)]}
        for d in doc["dependencies"]
        if isinstance(d, str) or _is_pip_list(d)
    ]
    python = next((m for m in (_PYTHON_SPEC.match(d) for d in deps if isinstance(d, str)) if m), None)
    python = python or _PYTHON_IN_PATH.search(posixpath.basename(rel).lower())
    return _Environment(
        rel,
        deps,
        (int(python.group(1)), int(python.group(2))) if python else None,
        aside=bool(path_tokens(rel) & ASIDE_TOKENS),
    )


def _is_pip_list(dep: object) -> bool:
    return isinstance(dep, dict) and isinstance(dep.get("pip"), list)


def _candidates(r: Reader) -> list[str]:
    root = [p.name for p in sorted(r.root.glob("environment*.y*ml")) if YAML_FILE.search(p.name)]
    return root + [rel for folder in ENV_FOLDERS for rel in r.files_under(folder, YAML_FILE)]


def read_environment_files(r: Reader) -> None:
    """The preferred conda environment's packages as test requirements.

    Projects keep one environment per Python version or purpose; their union would pin one package
    several ways, so one environment is chosen (the main, newest and fullest) and used whole.
    """
    found = [env for env in (_environment(r, rel) for rel in _candidates(r)) if env is not None]
    declared = classifier_pythons(r.classifiers) | r.tox_pythons | r.ci_pythons
    newest = max((tuple(map(int, v.split("."))) for v in declared), default=None)
    if found:
        chosen = max(found, key=lambda env: env.rank(newest))
        r.read(chosen.rel)  # record it
        r.tests += chosen.requirements(r)
