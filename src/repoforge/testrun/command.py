"""The command that runs a set of test files and leaves machine-readable results behind."""

from __future__ import annotations

import shlex

from packaging.version import InvalidVersion, Version

JUNIT_FILE = ".repoforge-junit.xml"  # written in the repository root, read and removed after the run

# addopts is cleared because projects put coverage and plugin flags there whose plugins we do not
# install; the plugins it loads (`-p pytester`) are given back explicitly. Collection errors in one file
# must not hide the results of the others. Both options arrived with pytest 3.0; older runners get
# neither and keep their addopts.
PYTEST = "python -m pytest -p no:cacheprovider -rA --tb=short {modern}--junitxml={{junit}} {{files}}"
PYTEST_3 = "-o addopts= --continue-on-collection-errors "

# How the harness runs that command, so that the code under test does not choose what runs it:
# - plugins load as the environment was validated with them: autoload off (pytest >= 3.8 honours it) and each
#   pytest11 entry point the build installed named with -p (by its entry-point name from pytest 4.4, by module
#   before). Older pytest loads what is installed; nothing in the checkout is installed (the restore step removes
#   any *.dist-info the patch adds).
# - pytest is imported with neither the current folder nor the checkout on sys.path (a pytest.py at the root does
#   not stand in for it), then sys.path is as the build left it, without the current folder.
# - every outcome is printed by letter (pytest < 4.6 knows no -rA): the console summary names every test, a
#   second account of the run to hold the JUnit file against.
AUTOLOAD_OFF = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1"
# pytest runs with no current folder on sys.path (`python -m pytest` would put the checkout first), only what the build
# installed: the checkout where an install put it there, as pytest itself may need it (a project that is pytest, or
# that pytest depends on). A module the patch creates that pytest would import as its own is removed before the run,
# wherever it sits (harness/tree.py).
LAUNCHER = (
    'import sys; sys.path[:] = [e for e in sys.path if e not in ("", ".")]; import pytest; '
    'sys.exit(getattr(pytest, "console_main", pytest.main)())'
)
RUNNER_MODULES = {"_pytest", "pytest", "pluggy", "py", "_py"}  # what `import pytest` imports of its own
SUMMARY = "-rfEpxXsA"

FUNCTIONS_JUNIT_FILE = ".repoforge-functions.xml"
# For test modules written for a project's own runner that pytest cannot import (one that defines its helpers only
# when it is not under pytest, as sympy's did for its bin/test): each module imported, each test* function in it called
# with no argument, as such runners do; ours, since no runner of a project's may decide how its tests are read. The
# results are written as pytest's JUnit file and -rA summary are, so they are read and cross-checked alike. A skip or
# xfail is told by its exception's class name (Skipped, SkipTest, XFail). Python 3.6 and later.
FUNCTION_RUNNER = r"""
import importlib, inspect, os, re, sys, traceback
from xml.sax.saxutils import escape, quoteattr
sys.path[:] = [e for e in sys.path if e not in ("", ".")]
OUTCOMES = {"Skipped": "SKIPPED", "SkipTest": "SKIPPED", "Skip": "SKIPPED", "XFail": "XFAIL"}
JUNIT = {
    "PASSED": "",
    "FAILED": '<failure message="failed">%s</failure>',
    "ERROR": '<error message="collection failure">%s</error>',
    "SKIPPED": '<skipped type="pytest.skip" message="skipped"/>',
    "XFAIL": '<skipped type="pytest.xfail" message="xfail"/>',
}
junit, cases = sys.argv[1], []
for path in sys.argv[2:]:
    # Imported as pytest imports it: by its name below the first folder up that is no package, that folder first.
    parts = path[:-3].split("/")
    base = len(parts) - 1
    while base > 0 and os.path.exists("/".join(parts[:base] + ["__init__.py"])):
        base -= 1
    module_name = ".".join(parts[base:])
    try:
        sys.path.insert(0, os.path.abspath("/".join(parts[:base]) or "."))
        module = importlib.import_module(module_name)
    except BaseException:
        cases.append((path, "", module_name, "ERROR", traceback.format_exc()))
        print("ERROR collecting " + path + "\n" + cases[-1][-1])
        continue
    for name, test in list(vars(module).items()):
        if name.startswith("test") and inspect.isfunction(test):
            try:
                test()
                outcome, text = "PASSED", ""
            except BaseException as exc:
                outcome, text = OUTCOMES.get(type(exc).__name__, "FAILED"), traceback.format_exc()
            cases.append((path + "::" + name, module_name, name, outcome, text))
with open(junit, "w") as out:
    out.write('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="functions">')
    for _, classname, name, outcome, text in cases:
        out.write("<testcase classname=%s name=%s>" % (quoteattr(classname), quoteattr(name)))
        text = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f]", "?", escape(text))  # what XML 1.0 cannot hold
        out.write(JUNIT[outcome] % text if "%s" in JUNIT[outcome] else JUNIT[outcome])
        out.write("</testcase>")
    out.write("</testsuite></testsuites>")
print("=========================== short test summary info ============================")
for test_id, _, _, outcome, _ in cases:
    print(outcome + " " + test_id)
sys.exit(1 if any(case[3] in ("FAILED", "ERROR") for case in cases) else 0)
"""


def function_run_command(files: list[str], junit: str) -> str:
    """Runs the test functions of `files` with FUNCTION_RUNNER, results in `junit`."""
    return f"python -c {shlex.quote(FUNCTION_RUNNER)} {shlex.quote(junit)} {' '.join(shlex.quote(f) for f in files)}"


# The runner as installed in the venv (never in the checkout, whose modules it does not import: eval reads it after
# the patch is applied): pytest's version and its pytest11 entry points. Python 3.6 and later.
_RUNNER_FACTS = r"""
import sys
sys.path[:] = [e for e in sys.path if e not in ("", ".")]
import configparser, glob, os, re, sysconfig
for site in sorted({sysconfig.get_paths()[key] for key in ("purelib", "platlib")}):
    for info in sorted(glob.glob(os.path.join(site, "*.dist-info")) + glob.glob(os.path.join(site, "*.egg-info"))):
        pytest = re.match(r"pytest-([^-]+?)(-py[\d.]+)?\.(dist|egg)-info$", os.path.basename(info), re.I)
        if pytest:
            print("version " + pytest.group(1))
        entry_points = configparser.ConfigParser(delimiters=("=",), interpolation=None, strict=False)
        entry_points.optionxform = str
        try:
            entry_points.read(os.path.join(info, "entry_points.txt"))
        except (configparser.Error, UnicodeDecodeError):
            continue
        if entry_points.has_section("pytest11"):
            for name, value in entry_points.items("pytest11"):
                print("plugin " + name + " " + re.split(r"[:\s\[]", value.strip())[0])
"""


def runner_facts_command(python: str = "python") -> str:
    return f"{python} -c {shlex.quote(_RUNNER_FACTS)}"


def test_command(runner: str, runner_version: str, plugins: list[str] = ()) -> str:
    """A template with {files} and {junit} placeholders, for the runner's major.minor version."""
    if runner != "pytest":
        raise ValueError(f"unknown test runner {runner!r}")
    modern = Version(runner_version) >= Version("3.0")
    given_back = "".join(f"-p {shlex.quote(plugin)} " for plugin in plugins)
    return PYTEST.format(modern=PYTEST_3 + given_back if modern else "")


def render(template: str, files: list[str], junit: str = JUNIT_FILE) -> str:
    return template.format(files=" ".join(shlex.quote(f) for f in files), junit=shlex.quote(junit))


def render_args(template: str, junit: str) -> str:
    """The command with the files left to its shell's arguments ("$@")."""
    return template.format(files='"$@"', junit=shlex.quote(junit))


def hardened(command: str, runner_version: str, plugins: dict[str, str]) -> str:
    """A rendered test command (of any recipe version) as the harness runs it."""
    args = command.removeprefix("python -m pytest ")
    if args == command:
        raise ValueError(f"not a pytest command: {command[:80]!r}")
    launcher = shlex.quote(LAUNCHER)
    return f"{AUTOLOAD_OFF} python -c {launcher} {plugin_args(runner_version, plugins)}{args} {SUMMARY}"


def plugin_args(runner_version: str, plugins: dict[str, str]) -> str:
    """-p for each validated plugin, spelled as the runner's version reads it (an unknown version: a current one)."""
    version = _version(runner_version)
    if version is not None and version < Version("3.8"):
        return ""
    by_name = version is None or version >= Version("4.4")
    return "".join(f"-p {shlex.quote(name if by_name else module)} " for name, module in sorted(plugins.items()))


def read_runner_facts(output: str) -> tuple[str, dict[str, str]]:
    """(pytest's version, pytest11 entry-point name -> module) from RUNNER_FACTS' output."""
    version, plugins = "", {}
    for kind, _, rest in (line.partition(" ") for line in output.splitlines()):
        if kind == "version":
            version = rest.strip()
        elif kind == "plugin" and len(rest.split()) == 2:
            name, module = rest.split()
            plugins[name] = module
    return version, plugins


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None
