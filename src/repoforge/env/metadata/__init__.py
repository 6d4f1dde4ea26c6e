"""Static reading of a source tree's packaging metadata.

Nothing here executes project code: ``setup.py`` and ``noxfile.py`` are parsed with :mod:`ast`,
INI files with :mod:`configparser`, TOML with :mod:`tomllib`, YAML with PyYAML's safe loader,
shell commands in CI files with :mod:`shlex`. Every source is optional; a malformed or odd file is
skipped with a message in ``ProjectMetadata.warnings`` and never raises.

One module per source family reads into a shared :class:`~.model.Reader`; :mod:`.finish` turns
what was gathered into a :class:`ProjectMetadata`.
"""

from __future__ import annotations

from pathlib import Path

from .ci import ci_python_versions, read_ci
from .conda import conda_to_pep508, read_environment_files
from .finish import finish
from .model import ProjectMetadata, Reader
from .nox import read_noxfile
from .pipfile import read_pipfile
from .poetry import poetry_constraint
from .pyproject import read_pyproject
from .pytest_use import read_pytest_use
from .requirements import read_requirement_files
from .setup_cfg import read_setup_cfg
from .setup_py import read_setup_py
from .tox import read_tox_ini, tox_env_pythons

__all__ = [
    "ProjectMetadata",
    "read_metadata",
    "poetry_constraint",
    "tox_env_pythons",
    "conda_to_pep508",
    "ci_python_versions",
]

# (name used in warnings, reader), in reading order: the first declared name and python
# requirement win, and requirements keep this order.
_STEPS = [
    ("pyproject", read_pyproject),
    ("setup_cfg", read_setup_cfg),
    ("setup_py", read_setup_py),
    ("requirement_files", read_requirement_files),
    ("tox_ini", read_tox_ini),
    ("noxfile", read_noxfile),
    ("pipfile", read_pipfile),
    ("ci", read_ci),  # before the conda environments: their choice follows the Pythons CI tests
    ("environment_files", read_environment_files),
    ("pytest_use", read_pytest_use),
]


def read_metadata(root: Path) -> ProjectMetadata:
    """Everything the tree at root declares about its Python environment, read statically."""
    root = Path(root)
    r = Reader(root)
    if not root.is_dir():
        return ProjectMetadata(warnings=[f"{root}: not a directory"])
    for name, step in _STEPS:
        try:
            step(r)
        except Exception as exc:  # a safety net: an odd file must never stop the reading
            r.warn(f"{name}: unexpected {exc.__class__.__name__}: {exc}")
    return finish(r)
