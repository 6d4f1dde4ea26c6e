"""The result model and the state shared by the readers of every source."""

from __future__ import annotations

import configparser
import os
import posixpath
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

Raw = tuple[str, str]  # (requirement text, source file)

TEST_EXTRA_NAMES = {"test", "tests", "testing"}
DEV_EXTRA_NAMES = {"dev", "develop", "development"}
TEST_GROUP_NAMES = TEST_EXTRA_NAMES | DEV_EXTRA_NAMES
# Folders holding no project files worth reading: VCS data, virtual environments, build output.
SKIPPED_DIRS = {
    ".git",
    ".hg",
    ".svn",
    ".tox",
    ".nox",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".eggs",
    "build",
    "dist",
    "site-packages",
    ".mypy_cache",
    ".pytest_cache",
}
MAX_LISTED_FILES = 20_000  # a bound on the files one listing looks at, for giant trees
YAML_FILE = re.compile(r"\.ya?ml$")


class ProjectMetadata(BaseModel):
    name: str | None = None
    requires_python: str | None = None  # a PEP 440 specifier string, e.g. ">=3.7"
    classifier_pythons: list[str] = Field(default_factory=list)  # ["3.8", "3.9"], X.Y only, sorted
    tox_pythons: list[str] = Field(default_factory=list)  # from tox envlists, sorted
    ci_pythons: list[str] = Field(default_factory=list)  # GitHub Actions / Travis python versions, sorted
    dependencies: list[str] = Field(default_factory=list)  # runtime PEP 508 requirements
    extras: dict[str, list[str]] = Field(default_factory=dict)  # extra name -> requirements
    test_extras: list[str] = Field(default_factory=list)  # extras to install for the tests
    test_requirements: list[str] = Field(default_factory=list)  # requirements to run the tests
    build_requires: list[str] = Field(default_factory=list)  # [build-system] requires (+ setup_requires)
    build_backend: str | None = None
    has_setup_py: bool = False
    has_pyproject: bool = False
    uses_setuptools_scm: bool = False
    pytest_configured: bool = False
    pytest_plugins: list[str] = Field(default_factory=list)  # `-p NAME` of the addopts pytest would read
    # declared test requirements that are pytest plugins the tests need (their markers or fixtures are
    # used, the pytest configuration requires or loads them), canonical names
    needed_plugins: list[str] = Field(default_factory=list)
    runner_script: str | None = None  # e.g. "runtests.py", relative to the root
    manifest_files: list[str] = Field(default_factory=list)  # files the dependency set was read from
    warnings: list[str] = Field(default_factory=list)


def new_ini_parser() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False, allow_no_value=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    return parser


@dataclass
class Reader:
    """What the sources declare, gathered raw, and the guarded access to the tree's files."""

    root: Path
    resolved_root: Path = field(init=False)
    warnings: list[str] = field(default_factory=list)
    manifest: set[str] = field(default_factory=set)  # files the dependency set was read from
    texts: dict[str, str | None] = field(default_factory=dict)  # cache of read files
    names: list[str] = field(default_factory=list)
    requires_python: list[tuple[str, str]] = field(default_factory=list)  # (spec, source)
    classifiers: list[str] = field(default_factory=list)
    tox_pythons: set[str] = field(default_factory=set)
    ci_pythons: set[str] = field(default_factory=set)
    deps: list[Raw] = field(default_factory=list)
    extras: dict[str, list[Raw]] = field(default_factory=dict)
    tests: list[Raw] = field(default_factory=list)
    build: list[Raw] = field(default_factory=list)
    pipfile_packages: list[Raw] = field(default_factory=list)
    tox_extras: list[str] = field(default_factory=list)
    self_extras: list[str] = field(default_factory=list)  # extras of the project itself the tests install
    ci_extras: list[str] = field(default_factory=list)  # extras of the project itself CI test jobs install
    build_backend: str | None = None
    scm: bool = False
    pytest_configured: bool = False
    pytest_options: dict[str, dict[str, str]] = field(default_factory=dict)  # config file -> its pytest options
    pytest_names: set[str] = field(default_factory=set)  # markers and fixture names the test files use

    def __post_init__(self) -> None:
        self.resolved_root = self.root.resolve()

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def exists(self, rel: str) -> bool:
        try:
            return (self.root / rel).is_file()
        except OSError:
            return False

    def read(self, rel: str, record: bool = True) -> str | None:
        """The text of the file rel (cached); record adds it to the manifest."""
        rel = posixpath.normpath(rel)
        if rel.startswith("../") or rel == ".." or rel.startswith("/"):
            self.warn(f"{rel}: outside the source tree, not read")
            return None
        if rel not in self.texts:
            self.texts[rel] = self._load(rel)
        text = self.texts[rel]
        if text is not None and record:
            self.manifest.add(rel)
        return text

    def _load(self, rel: str) -> str | None:
        path = self.root / rel
        try:
            if not path.is_file():
                return None
            resolved = path.resolve()
            if resolved != self.resolved_root and self.resolved_root not in resolved.parents:
                self.warn(f"{rel}: a link leading outside the source tree, not read")
                return None
            if path.stat().st_size > 5_000_000:
                self.warn(f"{rel}: too large, not read")
                return None
            data = path.read_bytes()
        except OSError as exc:
            self.warn(f"{rel}: unreadable ({exc.__class__.__name__})")
            return None
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            try:
                return data.decode("utf-16")
            except UnicodeDecodeError:
                pass
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            self.warn(f"{rel}: not UTF-8, read as latin-1")
            return data.decode("latin-1")

    def load_toml(self, rel: str) -> dict | None:
        text = self.read(rel)
        if text is None:
            return None
        try:
            return tomllib.loads(text)
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            self.warn(f"{rel}: invalid TOML, skipped ({exc})")
            return None

    def load_yaml(self, rel: str, record: bool = True) -> Any:
        text = self.read(rel, record)
        if text is None:
            return None
        try:
            return parse_yaml(text)
        except yaml.YAMLError as exc:
            self.warn(f"{rel}: invalid YAML, skipped ({str(exc).splitlines()[0]})")
            return None

    def files_under(self, folder: str, name: re.Pattern) -> list[str]:
        """Files below folder (any depth, links not followed) whose names match name, sorted."""
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root / folder):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            found += [posixpath.join(rel_dir, f) for f in filenames if name.search(f)]
            if len(found) > MAX_LISTED_FILES:
                self.warn(f"{folder or '.'}: more than {MAX_LISTED_FILES} files, the rest not read")
                break
        return sorted(posixpath.normpath(f) for f in found)

    def load_ini(self, rel: str) -> configparser.ConfigParser | None:
        text = self.read(rel)
        if text is None:
            return None
        parser = new_ini_parser()
        try:
            parser.read_string(text, source=rel)
        except configparser.MissingSectionHeaderError:
            self.warn(f"{rel}: invalid INI (no section header), skipped")
            return None
        except configparser.ParsingError as exc:
            bad = len(getattr(exc, "errors", []) or [])
            self.warn(f"{rel}: partly unparsable INI, kept what parsed ({bad} bad lines)")
        except configparser.Error as exc:
            self.warn(f"{rel}: invalid INI, skipped ({exc.__class__.__name__})")
            return None
        return parser


def parse_yaml(text: str) -> Any:
    """A YAML document as plain data, numbers and dates kept as written (`3.10` stays "3.10")."""
    return yaml.load(text, Loader=_TextLoader)  # a SafeLoader: builds plain data only


class _TextLoader(yaml.SafeLoader):
    """Safe YAML whose numbers and dates stay text: CI files write Python versions as bare numbers."""


_AS_TEXT = {"tag:yaml.org,2002:float", "tag:yaml.org,2002:int", "tag:yaml.org,2002:timestamp"}
_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _AS_TEXT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
