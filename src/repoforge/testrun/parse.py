"""Per-test statuses from pytest JUnit XML, unittest verbose logs and pytest console logs.

Every parser returns ids in pytest nodeid form, the spelling SWE-bench's FAIL_TO_PASS and
PASS_TO_PASS use: ``path/to/test_x.py::Outer::Inner::test_name[param]``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from repoforge.sandbox.base import TESTBED
from repoforge.schema import TestStatus

# One id can be reported twice (a pass, then an error in teardown); the worse outcome wins.
_RANK = {
    TestStatus.PASSED: 0,
    TestStatus.SKIPPED: 1,
    TestStatus.XFAIL: 2,
    TestStatus.FAILED: 3,
    TestStatus.ERROR: 4,
}


def _record(results: dict[str, TestStatus], test_id: str, status: TestStatus) -> None:
    old = results.get(test_id)
    if old is None or _RANK[status] > _RANK[old]:
        results[test_id] = status


def _match_file(dotted: str, test_files: list[str]) -> tuple[str, str] | None:
    """Split ``pkg.test_mod.Class`` into (``pkg/test_mod.py``, ``Class``) using a file that ran.

    A file matches when its dotted path is a prefix of ``dotted``; failing that, when a tail of it
    is (Django-style runners name modules relative to the tests directory). The longest match
    wins; a tie between different files is ambiguous and gives None.
    """
    best: tuple[bool, int] | None = None
    found: set[tuple[str, str]] = set()
    for path in test_files:
        parts = path.removesuffix(".py").split("/")
        for start in range(len(parts)):  # longest tail first
            module = ".".join(parts[start:])
            if dotted == module or dotted.startswith(module + "."):
                key = (start == 0, len(module))
                if best is None or key > best:
                    best, found = key, set()
                if key == best:
                    found.add((path, dotted[len(module) + 1 :]))
                break
    return found.pop() if len(found) == 1 else None


def _guess_split(dotted: str) -> tuple[str, str]:
    """Without a known file, the module part is everything before the first CapWords name."""
    parts = dotted.split(".")
    cut = next((i for i, p in enumerate(parts) if i and p[:1].isupper()), len(parts))
    return "/".join(parts[:cut]) + ".py", ".".join(parts[cut:])


def _to_id(dotted: str, name: str, test_files: list[str], file_hint: str | None = None) -> str:
    """Nodeid of test ``name`` in ``dotted`` (module plus classes); no name: the container."""
    dotted = dotted.replace(".()", "")  # pytest 3 leaves "()" instance levels in nested classes
    path, classes = (
        _match_file(dotted, test_files) or (file_hint and _match_file(dotted, [file_hint])) or _guess_split(dotted)
    )
    return "::".join(filter(None, [path, *classes.split("."), name]))


# --- pytest --junitxml ---------------------------------------------------------------------------


def _child_status(child: ET.Element) -> TestStatus:
    if child.tag == "failure":
        return TestStatus.FAILED
    if child.tag == "error":
        return TestStatus.ERROR
    if child.tag != "skipped":  # system-out, properties, ...
        return TestStatus.PASSED
    kind, message = child.get("type"), child.get("message")
    # pytest 3 writes xfail as an untyped skip whose message is "expected test failure".
    if kind == "pytest.xfail" or (kind is None and message == "expected test failure"):
        return TestStatus.XFAIL
    return TestStatus.SKIPPED


def _junit_status(case: ET.Element) -> TestStatus:
    return max(map(_child_status, case), key=_RANK.__getitem__, default=TestStatus.PASSED)


def _is_collection_report(case: ET.Element) -> bool:
    """A module that failed to import (or skipped itself) rather than a test."""
    messages = {child.get("message") for child in case}
    collection = {"collection failure", "collection skipped"}
    return not case.get("classname") or bool(messages & collection)


def _testcases(xml_text: str, test_files: list[str]):
    """(test id, <testcase>) for every test in pytest's ``--junitxml`` report; none if it does not parse."""
    try:
        root = ET.fromstring(xml_text)
    except (ET.ParseError, ValueError):
        return
    for case in root.iter("testcase"):
        classname, name = case.get("classname") or "", case.get("name") or ""
        if (classname, name) == ("pytest", "internal"):
            continue  # pytest's own crash, not a test
        if _is_collection_report(case):
            # The module's whole dotted path sits in name (classname is empty).
            classname, name = ".".join(filter(None, (classname, name))), ""
        yield _to_id(classname, name, test_files, case.get("file")), case


def parse_junit(xml_text: str, test_files: list[str]) -> dict[str, TestStatus]:
    """Statuses from pytest's ``--junitxml`` report (pytest 3.x to 9.x, xunit1 and xunit2)."""
    results: dict[str, TestStatus] = {}
    for test_id, case in _testcases(xml_text, test_files):
        _record(results, test_id, _junit_status(case))
    return results


def junit_failure_texts(xml_text: str, test_files: list[str]) -> dict[str, str]:
    """Each failing or erring test's messages and tracebacks, from the same report."""
    texts: dict[str, str] = {}
    for test_id, case in _testcases(xml_text, test_files):
        for child in case:
            if child.tag in ("failure", "error"):
                texts[test_id] = texts.get(test_id, "") + f"{child.get('message') or ''}\n{child.text or ''}\n"
    return texts


_OPTION = re.compile(r"(.*?)\[(.*)\]")
_XML_ESCAPE = re.compile(r"#x([0-9A-Fa-f]{2})")
# Duplicate parameter ids are made unique with a counter: pytest < 8 appends it ("1-1" twice: "1-10",
# "1-11"), pytest >= 8 puts "_" before it when the id ends in a digit ("1-1_0", "1-1_1").
_COUNTER_AFTER_DIGIT = re.compile(r"(?<=\d)_(?=\d+\]$)")
_TRAILING_DIGITS = re.compile(r"\[.*?(\d{2,})\]$")
_BARE_TEST = re.compile(r"test\w*(\[.*)?")  # a parameter part may be cut short
_UNITTEST_NAME = re.compile(r"\w+ \(([\w.]+)\)")


def names_functions_alone(test_ids: list[str]) -> bool:
    """Whether a row's test ids are bare function names (`test_equality`), as a project's own runner prints them."""
    return any(_BARE_TEST.fullmatch(test_id) for test_id in test_ids)


def with_swebench_spellings(statuses: dict[str, TestStatus]) -> dict[str, TestStatus]:
    """statuses, plus every name SWE-bench's Python log parsers give the same tests, for datasets that use them.

    An exact id always wins; two tests sharing a spelling give it the worse status.
    """
    aliases: dict[str, TestStatus] = {}
    for test_id, status in statuses.items():
        for spelling in _spellings(test_id) - {test_id}:
            _record(aliases, spelling, status)
    return aliases | statuses


def _spellings(test_id: str) -> set[str]:
    # pytest before 4.0 names a method "Class::()::test"; SWE-bench's rows were made with a newer pytest than a
    # commit's date may give here, which also escapes a parameter's non-printable characters ("\x00").
    test_id = test_id.replace("::()::", "::")
    return set().union(*(_cut_spellings(name) for name in {test_id, _escaped(test_id)}))


def as_run_here(test_id: str, known: Mapping[str, object], root: str = TESTBED) -> str:
    """A row's test id as this checkout names it, where its parameter is a path into the checkout of the machine that
    made the row (/n/fs/.../pydicom__pydicom__1.2/pydicom/data/x.dcm): the same path under `root`, if a test has it."""
    option = _OPTION.fullmatch(test_id)
    if test_id in known or not option or not option[2].startswith("/"):
        return test_id
    param = option[2]
    foreign = ("/".join(param.split("/")[:i]) + "/" for i in range(2, param.count("/") + 1))
    here = (f"{option[1]}[{param.replace(prefix, root + '/')}]" for prefix in foreign)
    return next((candidate for candidate in here if candidate in known), test_id)


def _escaped(test_id: str) -> str:
    """The id with its parameter's non-printable characters escaped as pytest >= 3.? does; JUnit files spell the
    characters XML cannot hold "#x00"."""
    if not (option := _OPTION.fullmatch(test_id)):
        return test_id
    param = _XML_ESCAPE.sub(lambda m: chr(int(m[1], 16)), option[2])
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in param)
    return f"{option[1]}[{escaped}]"


def _cut_spellings(test_id: str) -> set[str]:
    # Parsers split log lines on whitespace, so an id is cut at its first space, and some cut a path-like
    # parameter to '/' and its last component.
    cut = test_id.split()[0] if test_id.strip() else test_id
    names = {test_id, cut}
    if option := _OPTION.search(cut):
        main, param = option.groups()
        if param.startswith("/") and not param.startswith("//") and "*" not in param:
            names.add(f"{main}[/{param.split('/')[-1]}]")
    names |= {other for name in names for other in _other_era_duplicates(name)}
    return names | {short for name in names for short in _without_file(name)}


def _other_era_duplicates(test_id: str) -> set[str]:
    """A duplicate parameter id as the other pytest era spells it; where an old counter starts is unknown."""
    if _COUNTER_AFTER_DIGIT.search(test_id):
        return {_COUNTER_AFTER_DIGIT.sub("", test_id)}
    if not (digits := _TRAILING_DIGITS.search(test_id)):
        return set()
    return {test_id[: digits.start(1) + i] + "_" + test_id[digits.start(1) + i :] for i in range(1, len(digits[1]))}


def _without_file(test_id: str) -> set[str]:
    """Names runners give without the file: the bare function (sympy's bin/test) and, for a method, unittest's
    and Django's "name (module.Class)" for every tail of the module path (Django's runner names modules from
    its tests folder), in both its forms (Python 3.11 added ".name")."""
    head, bracket, params = test_id.partition("[")
    if "::" not in head:
        return set()
    path, *classes, name = head.split("::")
    names = {name + bracket + params}
    if classes and not bracket:
        module = path.removesuffix(".py").split("/")
        for start in range(len(module)):
            dotted = ".".join(module[start:] + classes)
            names |= {f"{name} ({dotted})", f"{name} ({dotted}.{name})"}
    return names


def junit_would_name(test_id: str, files: list[str]) -> bool:
    """Whether a JUnit report of a run of `files` names the test `test_id` (in some spelling) if it exists: a test
    of one of the files, in pytest's form or unittest's, or any bare test-function name."""
    if unittest := _UNITTEST_NAME.fullmatch(test_id):
        modules = {
            ".".join(parts[start:])
            for parts in (f.removesuffix(".py").split("/") for f in files)
            for start in range(len(parts))
        }
        return any(unittest[1].startswith(module + ".") for module in modules)
    return test_id.split("::")[0] in files or bool(_BARE_TEST.fullmatch(test_id))


# --- unittest -v / TextTestRunner(verbosity=2) ---------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# "test_add (tests.test_calc.TestCalc) ... ok"; 3.11+ repeats the method name inside the parens,
# subtests add "(i=1)", and the " ... outcome" part may be missing (docstring or output follows).
_UT_DESC = re.compile(r"^\s*(\w+) \(([\w.]+)\)(?: \(.*?\))?(?: \.\.\.(.*))?$")
# Python reprs skip reasons, so they are always quoted.
_UT_OUTCOME = re.compile(r"(?:^|\s)(ok|FAIL|ERROR|expected failure|unexpected success|skipped (?:'.*'|\".*\"))$")
# The failure details name each bad test again; in Python <= 3.10 this is the only place a
# failing subtest or a broken setUpClass is named.
_UT_HEADER = re.compile(r"^(FAIL|ERROR|UNEXPECTED SUCCESS): (\w+) \(([\w.]+)\)")
_UT_STATUS = {
    "ok": TestStatus.PASSED,
    "FAIL": TestStatus.FAILED,
    "ERROR": TestStatus.ERROR,
    "expected failure": TestStatus.XFAIL,
    "unexpected success": TestStatus.FAILED,
    "UNEXPECTED SUCCESS": TestStatus.FAILED,
}
_UT_FIXTURES = {"setUpClass", "tearDownClass", "setUpModule", "tearDownModule"}


def _unittest_id(name: str, dotted: str, test_files: list[str]) -> str:
    dotted = dotted.removesuffix("." + name)  # 3.11+ spelling
    if dotted.startswith("unittest.loader._Failed"):  # import failure: name is the module
        dotted, name = name, ""
    elif name in _UT_FIXTURES:  # a class or module fixture broke: blame the container
        name = ""
    return _to_id(dotted, name, test_files)


def _outcome(text: str) -> TestStatus | None:
    # Only the part after the last " ... " can be the outcome (docstrings may contain "...").
    match = _UT_OUTCOME.search(text.rsplit(" ... ", 1)[-1].rstrip())
    if match is None:
        return None
    word = match[1]
    return TestStatus.SKIPPED if word.startswith("skipped") else _UT_STATUS[word]


def parse_unittest_log(text: str, test_files: list[str]) -> dict[str, TestStatus]:
    """Statuses from ``python -m unittest -v`` (or any TextTestRunner at verbosity 2) output."""
    results: dict[str, TestStatus] = {}
    pending: str | None = None  # test whose outcome has not been printed yet
    for line in _ANSI.sub("", text).splitlines():
        if header := _UT_HEADER.match(line):
            _record(results, _unittest_id(header[2], header[3], test_files), _UT_STATUS[header[1]])
            continue
        if line.startswith("=" * 20):  # failure details start: no outcome can follow
            pending = None
            continue
        # A test with failing subtests prints no outcome in <= 3.10, so the next
        # description can start on the same line.
        while desc := _UT_DESC.match(line):
            pending = _unittest_id(desc[1], desc[2], test_files)
            line = desc[3] or ""
        if pending and (status := _outcome(line)):
            _record(results, pending, status)
            pending = None
    return results


# --- pytest console (-rA short summary, -v) ------------------------------------------------------

# A nodeid runs to the first space unless its parameter part holds spaces: "t[3-a b]".
_NODEID = r"[^\s\[]+(?:\[.*?\](?=\s|$))?"
# "FAIL" is pytest 3's summary word and "xfail" its -v word; XPASS (non-strict) is a pass, as
# in the JUnit report. The optional prefix is pytest-xdist's -v form.
_PYTEST_STATUS = {
    "PASSED": TestStatus.PASSED,
    "XPASS": TestStatus.PASSED,
    "FAILED": TestStatus.FAILED,
    "FAIL": TestStatus.FAILED,
    "ERROR": TestStatus.ERROR,
    "SKIPPED": TestStatus.SKIPPED,
    "XFAIL": TestStatus.XFAIL,
    "xfail": TestStatus.XFAIL,
}
_WORDS = "|".join(_PYTEST_STATUS)
_SUMMARY = re.compile(rf"^(?:\[gw\d+\] \[\s*\d+%\] )?({_WORDS}) ({_NODEID})")
_VERBOSE = re.compile(rf"^({_NODEID}) ({_WORDS})(?:\s|$)")


def parse_pytest_log(text: str) -> dict[str, TestStatus]:
    """Statuses from pytest console output: ``-rA`` summary lines and ``-v`` progress lines."""
    results: dict[str, TestStatus] = {}
    for line in _ANSI.sub("", text).splitlines():
        if match := _SUMMARY.match(line):
            word, test_id = match[1], match[2]
        elif match := _VERBOSE.match(line):
            test_id, word = match[1], match[2]
        else:
            continue
        # "SKIPPED [1] file:line" and "FAILED (failures=1)" name no test.
        if "::" in test_id or test_id.endswith(".py"):
            _record(results, test_id.replace("::()", ""), _PYTEST_STATUS[word])
    return results
