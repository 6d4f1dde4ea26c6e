"""CI configuration (GitHub Actions, Travis, Azure Pipelines, AppVeyor, CircleCI, GitLab, CI
templates under ci/): the Python versions tested, and what the jobs that run the tests install.

A job is a unit: a GitHub Actions, CircleCI or Azure job, or what a file holds outside its jobs.
Of the jobs that run tests (by their commands, or by their names when the command is a matrix
value), what they install unconditionally (no `if:` on the step, no shell `if` around the
command) and what at least half of them install is the project's test environment as CI declares
it; one job's special additions (an alternative backend, a GPU build) are not.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Iterator
from typing import Any

import yaml

from .conda import conda_to_pep508, is_environment
from .model import YAML_FILE, Reader, parse_yaml
from .requirements import COMMENT, MIN_VERSION_TOKENS, classify_line, include, join_continuations, path_tokens

CI_FILES = [
    ".travis.yml",
    "azure-pipelines.yml",
    "appveyor.yml",
    ".appveyor.yml",
    ".circleci/config.yml",
    ".gitlab-ci.yml",
]
CI_FOLDERS = [".github/workflows", "ci", ".ci"]  # conda environment files among them are no CI files
PYTHON_KEYS = {"python-version", "python_version", "python-versions", "python", "py"}
CONDITION_KEYS = {"if", "condition"}
VARIABLE_KEYS = {"env", "variables"}
# Tools that install or package (upgraded before installing), or make environments of their own
# (tox, nox: their configuration is read for what the tests need): the builder chooses these.
BUILD_TOOLS = {"pip", "pip3", "uv", "setuptools", "wheel", "virtualenv", "tox", "nox"}
TEST_JOB = re.compile(r"(?<![a-z])(unit)?test(s|ing)?(?![a-z])", re.I)  # run-tests, unittests; not "latest"
TEST_RUN = re.compile(
    r"(?:^|[\s;&|(/])(?:py\.?test|nosetests|nose2|tox|nox)(?:\s|$)|(?:^|\s)(?:\./)?bin/test(?:\s|$)"
    r"|\bmake\s+(?:test|tests|check)\b|\bsetup\.py\s+test\b|\brun_?tests\.py\b"
)
# pip options that take a value; the value of -r is a requirements file, of -e a path
PIP_VALUED = {
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-e",
    "--editable",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--global-option",
    "--install-option",
    "-C",
    "--config-settings",
    "-t",
    "--target",
    "--prefix",
    "--root",
    "--python",
    "--platform",
    "--python-version",
    "--implementation",
    "--abi",
    "--src",
    "--upgrade-strategy",
    "--progress-bar",
    "--cache-dir",
    "--log",
    "--timeout",
    "--retries",
    "--trusted-host",
    "--only-binary",
    "--no-binary",
}
CONDA_VALUED = {"-n", "--name", "-p", "--prefix", "-c", "--channel", "--file"}
_ASSIGNMENT = re.compile(r"(?<![\w$-])([A-Za-z_]\w*)=(\"[^\"]*\"|'[^']*'|[^\s;'\"&|]*)")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_UNKNOWABLE = "\x00"  # stands for a CI expression (`${{ matrix.x }}`, `$(var)`): its word is skipped

Item = tuple[str, str]  # ("req", requirement) | ("file", requirements file) | ("extra", extra of the project)


def _version(token: Any) -> str | None:
    m = re.match(r"^(\d)\.(\d{1,2})$", str(token).strip())
    return f"{m.group(1)}.{int(m.group(2))}" if m else None


def _python_versions(node: Any) -> set[str]:
    """X.Y versions listed under python/python-version keys anywhere in a YAML document."""
    versions: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in PYTHON_KEYS and isinstance(value, (str, list)):
                versions |= {v for v in map(_version, value if isinstance(value, list) else [value]) if v}
            versions |= _python_versions(value)
    elif isinstance(node, list):
        for item in node:
            versions |= _python_versions(item)
    return versions


def ci_python_versions(text: str) -> set[str]:
    """X.Y versions listed under python/python-version keys of a CI YAML file."""
    try:
        return _python_versions(parse_yaml(text))
    except yaml.YAMLError:
        return set()


def _ci_files(r: Reader) -> list[str]:
    listed = [rel for folder in CI_FOLDERS for rel in r.files_under(folder, YAML_FILE)]
    return [rel for rel in CI_FILES if r.exists(rel)] + listed


def _units(doc: Any) -> list[tuple[str, Any]]:
    """The jobs of a CI document by name, and the rest of it as one more unit (named "")."""
    if not isinstance(doc, dict):
        return [("", doc)]
    jobs = doc.get("jobs")
    if isinstance(jobs, dict):
        listed = [(str(name), job) for name, job in jobs.items()]
    elif isinstance(jobs, list):  # Azure Pipelines: [{job: name, steps: [...]}]
        listed = [(str(job.get("job", "")) if isinstance(job, dict) else "", job) for job in jobs]
    else:
        listed = []
    return [*listed, ("", {key: value for key, value in doc.items() if key != "jobs"})]


def _scripts(node: Any, guarded: bool = False) -> Iterator[tuple[str, bool]]:
    """Every string of a YAML node, with whether a condition (`if:`, `condition:`) guards it."""
    if isinstance(node, dict):
        guarded = guarded or any(key in CONDITION_KEYS for key in node)
        for value in node.values():
            yield from _scripts(value, guarded)
    elif isinstance(node, list):
        for item in node:
            yield from _scripts(item, guarded)
    elif isinstance(node, str):
        yield node, guarded


def _variables(node: Any, scripts: list[tuple[str, bool]]) -> dict[str, str]:
    """Variables a unit sets (`env:` mappings, shell assignments), each with its richest value: a
    value set under a condition (EXTRAS=',stats' for the full job) is what the fullest job installs."""
    values: dict[str, str] = {}
    found = [(name, value.strip("'\"")) for text, _ in scripts for name, value in _ASSIGNMENT.findall(text)]
    found += [
        (str(name), value) for mapping in _mappings(node) for name, value in mapping.items() if isinstance(value, str)
    ]
    for name, value in found:
        if len(value) >= len(values.get(name, "")):
            values[name] = value
    return values


def _mappings(node: Any) -> Iterator[dict]:
    """The variable mappings (`env:`, `variables:`) anywhere in node; a list is searched as a whole."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in VARIABLE_KEYS and isinstance(value, dict):
                yield value
            yield from _mappings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _mappings(item)


def _expand(script: str, variables: dict[str, str]) -> str:
    """script with its variables replaced by their values (unset ones by nothing), CI expressions
    by a mark that has their words skipped."""
    script = re.sub(r"\$\{\{.*?\}\}|\$\([^)]*\)|%\w+%", _UNKNOWABLE, script)
    return _VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), script)


def _commands(script: str) -> Iterator[tuple[list[str], bool]]:
    """The simple commands of a shell script as words, each with whether a shell condition
    (`if ...; then`, `case`, `[ ... ] &&`) guards it."""
    depth = 0
    for line in join_continuations(script):
        for statement in COMMENT.sub("", line).split(";"):
            parts = re.split(r"&&|\|\||\|", statement)
            tested = len(parts) > 1 and re.match(r"\s*(\[|test\s)", parts[0]) is not None
            for part in parts:
                words = _words(part)
                keyword = words[0] if words else ""
                if keyword in ("if", "case"):
                    depth += 1
                elif keyword in ("fi", "esac"):
                    depth = max(0, depth - 1)
                elif keyword in ("then", "else", "do"):
                    yield words[1:], depth > 0 or tested
                elif keyword not in ("elif", "while", "until", "for", "done"):
                    yield words, depth > 0 or tested


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _install_items(words: list[str]) -> Iterator[Item]:
    """What a `pip install` or `conda install` command installs."""
    for i in range(1, len(words)):
        program = words[i - 1].rsplit("/", 1)[-1]
        if words[i] != "install":
            continue
        if re.match(r"^pip\d?(\.\d+)?$", program):
            yield from _pip_items(words[i + 1 :])
        elif program in ("conda", "mamba", "micromamba"):
            yield from _conda_items(words[i + 1 :])


def _pip_items(args: list[str]) -> Iterator[Item]:
    rest = iter(args)
    for arg in rest:
        if arg in PIP_VALUED:
            value = next(rest, "")
            if arg not in ("-r", "--requirement", "-e", "--editable"):
                continue
            arg = f"{arg} {value}"
        elif arg.startswith("-") and not re.match(r"^(-r\S|--requirement=)", arg):
            continue
        kind = classify_line(arg) if _UNKNOWABLE not in arg else None
        if kind is None:
            continue
        what, value = kind
        if what == "req" and _name(value) not in BUILD_TOOLS:
            yield "req", value
        elif what == "include":
            yield "file", value
        elif what == "self":
            yield from (("extra", extra) for extra in value)


def _conda_items(args: list[str]) -> Iterator[Item]:
    rest = iter(args)
    for arg in rest:
        if arg in CONDA_VALUED:
            next(rest, None)
        elif (
            not arg.startswith("-")
            and _UNKNOWABLE not in arg
            and (req := conda_to_pep508(arg))
            and _name(req) not in BUILD_TOOLS
        ):
            yield "req", req


def _name(requirement: str) -> str | None:
    m = re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    return m.group(0).lower() if m else None


def _installs(unit: Any, scripts: list[tuple[str, bool]], inherited: dict[str, str]) -> list[Item]:
    """What a unit installs unconditionally, in order."""
    variables = inherited | _variables(unit, scripts)
    return list(
        dict.fromkeys(
            item
            for text, guarded in scripts
            if not guarded
            for words, conditional in _commands(_expand(text, variables))
            if not conditional
            for item in _install_items(words)
        )
    )


def read_ci(r: Reader) -> None:
    test_jobs: list[tuple[str, list[Item]]] = []  # (CI file, what the job installs) of the jobs running tests
    for rel in _ci_files(r):
        doc = r.load_yaml(rel, record=False)  # recorded only when it adds to the dependency set
        if is_environment(doc):
            continue
        r.ci_pythons |= _python_versions(doc)
        # variables set for the whole file (GitHub Actions' top-level env) reach every job
        top = _variables({key: doc[key] for key in VARIABLE_KEYS & set(doc)}, []) if isinstance(doc, dict) else {}
        for name, unit in _units(doc):
            scripts = list(_scripts(unit))
            if TEST_JOB.search(name) or any(TEST_RUN.search(text) for text, _ in scripts):
                test_jobs.append((rel, _installs(unit, scripts, top)))
    jobs_with = Counter(item for _, items in test_jobs for item in items)
    taken: set[Item] = set()
    for rel, items in test_jobs:
        for item in items:
            if item not in taken and 2 * jobs_with[item] >= len(test_jobs):
                taken.add(item)
                _take(r, rel, item)


def _take(r: Reader, rel: str, item: Item) -> None:
    what, value = item
    if what == "file" and path_tokens(value) & MIN_VERSION_TOKENS:
        return  # the oldest supported versions: a job of its own, not the test environment
    r.read(rel)  # record it: it adds to the dependency set
    if what == "req":
        r.tests.append((value, rel))
    elif what == "file":
        include(r, value, rel, r.tests, set(), test_context=True)
    else:
        r.ci_extras.append(value)
