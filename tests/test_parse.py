"""Parsers against real runner output.

Fixtures are unedited runner output except that absolute /tmp paths were rewritten to /src/...
and /venv/... . All pytest fixtures come from one throwaway suite (module functions, classes,
a nested class, parametrized ids with dots, dashes, slashes and spaces, failures, a failing
fixture, teardown errors, skips, xfails, xpasses, a unittest.TestCase, a module that fails to
import and one that skips itself), run with ``--continue-on-collection-errors``:

  junit/pytest3.xml           pytest 3.10.1, Python 3.6.15 (xunit1, <testsuite> root)
  junit/pytest4.xml           pytest 4.6.11, Python 3.7.16 (xunit1)
  junit/pytest5.xml           pytest 5.4.3,  Python 3.8.18 (xunit1, the default then)
  junit/pytest5_xunit2.xml    pytest 5.4.3,  Python 3.8.18, -o junit_family=xunit2
  junit/pytest6.xml           pytest 6.2.5,  Python 3.9.18 (xunit2, the default since 6.0)
  junit/pytest7.xml           pytest 7.4.4,  Python 3.10.13
  junit/pytest8.xml           pytest 8.3.5,  Python 3.12.1
  junit/pytest8_xunit1.xml    pytest 8.3.5,  Python 3.12.1, -o junit_family=xunit1
  junit/pytest9.xml           pytest 9.2.0,  Python 3.13.0
  junit/pytest9_xunit1.xml    pytest 9.2.0,  Python 3.13.0, -o junit_family=xunit1
  junit/pytest9_internal_error.xml  pytest 9.2.0, a conftest hook raising (INTERNALERROR)
  junit/pytest3.log           pytest 3.10.1 -v -rfEsxXpP (3.x ignores -rA)
  junit/pytest4.log, pytest6.log    same runs as the XML, -v -rA
  junit/pytest9.log           pytest 9.2.0 -v -rA --color=yes (ANSI colour codes)

Unittest fixtures come from a second suite (ok, FAIL, ERROR, skip, skip in setUp, expected
failure, unexpected success, docstrings, printed output with and without newline, subtests,
a failing setUpClass, a module that fails to import), run with ``python -u -m unittest -v``:

  unittest/py39.log           Python 3.9.18 (the <= 3.10 form "test_x (mod.Class)")
  unittest/py313.log          Python 3.13.0 (the 3.11+ form "test_x (mod.Class.test_x)")
  unittest/py312_runtests.log Python 3.12.1, a runtests.py using TextTestRunner(verbosity=2)
"""

from pathlib import Path

import pytest

from repoforge.schema import TestStatus as Status  # a Test* name would be collected
from repoforge.testrun.logparsers import UnknownLogParser, parse_log, swebench_parser
from repoforge.testrun.parse import (
    as_run_here,
    junit_would_name,
    parse_junit,
    parse_pytest_log,
    parse_unittest_log,
    with_swebench_spellings,
)

DATA = Path(__file__).parent / "data"
P, F, E, S, X = Status.PASSED, Status.FAILED, Status.ERROR, Status.SKIPPED, Status.XFAIL

PYTEST_FILES = [
    "test_top.py",
    "pkg/tests.py",
    "tests/unit/test_x.py",
    "tests/unit/test_ut.py",
    "tests/test_broken.py",
    "tests/test_modskip.py",
]

PYTEST_SUITE = {
    "pkg/tests.py::TestP::test_m": P,
    "pkg/tests.py::test_in_tests_py": P,
    "test_top.py::test_fail": F,
    "test_top.py::test_param[1-x]": P,
    "test_top.py::test_param[1.5-p/q]": P,
    "test_top.py::test_param[2-y-z]": F,
    "test_top.py::test_param[3-a b]": P,
    "test_top.py::test_pass": P,
    "test_top.py::test_prints": P,
    "test_top.py::test_skip": S,
    "test_top.py::test_xfail": X,
    "test_top.py::test_xpass": P,  # non-strict XPASS is a pass
    "test_top.py::test_xpass_strict": F,
    "tests/test_broken.py": E,  # collection error
    "tests/unit/test_ut.py::TestU::test_doc": P,
    "tests/unit/test_ut.py::TestU::test_error": F,  # pytest reports unittest errors as failures
    "tests/unit/test_ut.py::TestU::test_expected_failure": X,
    "tests/unit/test_ut.py::TestU::test_fail": F,
    "tests/unit/test_ut.py::TestU::test_ok": P,
    "tests/unit/test_ut.py::TestU::test_prints": P,
    "tests/unit/test_ut.py::TestU::test_skipped": S,
    "tests/unit/test_ut.py::TestU::test_unexpected_success": F,
    "tests/unit/test_x.py::TestC::TestInner::test_deep": P,
    "tests/unit/test_x.py::TestC::TestInner::test_deep_fail": F,
    "tests/unit/test_x.py::TestC::TestInner::test_xfail_imperative": X,
    "tests/unit/test_x.py::TestC::test_a": P,
    "tests/unit/test_x.py::TestC::test_b": S,
    "tests/unit/test_x.py::TestC::test_y[a-1]": P,
    "tests/unit/test_x.py::TestC::test_y[b.2]": P,
    "tests/unit/test_x.py::test_fail_and_teardown_error": E,  # FAILED, then ERROR
    "tests/unit/test_x.py::test_setup_error": E,
    "tests/unit/test_x.py::test_teardown_error": E,  # PASSED, then ERROR
}
# Only the JUnit report names a module that skipped itself; the console gives "file:line".
PYTEST_JUNIT = PYTEST_SUITE | {"tests/test_modskip.py": S}

JUNIT_FIXTURES = sorted(p.name for p in (DATA / "junit").glob("pytest*.xml") if "internal" not in p.name)


@pytest.mark.parametrize("fixture", JUNIT_FIXTURES)
def test_junit_all_pytest_versions(fixture):
    text = (DATA / "junit" / fixture).read_text()
    assert parse_junit(text, PYTEST_FILES) == PYTEST_JUNIT


@pytest.mark.parametrize("fixture", JUNIT_FIXTURES)
def test_junit_guesses_modules_without_test_files(fixture):
    text = (DATA / "junit" / fixture).read_text()
    assert parse_junit(text, []) == PYTEST_JUNIT


def test_junit_test_files_decide_where_the_module_ends():
    # A lowercase class name defeats the guess; the listed file does not.
    text = (DATA / "junit" / "pytest6.xml").read_text().replace("TestC", "checks")
    assert parse_junit(text, PYTEST_FILES)["tests/unit/test_x.py::checks::test_a"] == P
    assert parse_junit(text, [])["tests/unit/test_x/checks.py::test_a"] == P


def test_junit_internal_error_is_not_a_test():
    text = (DATA / "junit" / "pytest9_internal_error.xml").read_text()
    assert parse_junit(text, ["test_ie.py"]) == {
        "test_ie.py::test_ok": P,
        "test_ie.py::test_boom": P,
    }


@pytest.mark.parametrize("text", ["", "not xml", "<testsuite><testcase", "<a/>"])
def test_junit_malformed(text):
    assert parse_junit(text, PYTEST_FILES) == {}


@pytest.mark.parametrize("fixture", ["pytest3.log", "pytest4.log", "pytest6.log", "pytest9.log"])
def test_pytest_log(fixture):
    assert parse_pytest_log((DATA / "junit" / fixture).read_text()) == PYTEST_SUITE


def test_pytest_log_summary_only_and_xdist():
    text = (
        "[gw1] [ 50%] PASSED tests/x.py::test_a \n"
        "FAILED tests/x.py::test_b[p] - assert [1] == [2]\n"
        "SKIPPED [1] tests/x.py:12: no reason\n"
        "FAILED (failures=1)\n"
    )
    assert parse_pytest_log(text) == {"tests/x.py::test_a": P, "tests/x.py::test_b[p]": F}


UNITTEST_FILES = ["tests/test_calc.py", "tests/unit/test_more.py", "tests/test_broken.py"]

UNITTEST_SUITE = {
    "tests/test_broken.py": E,  # import failure (unittest.loader._FailedTest)
    "tests/test_calc.py::TestBrokenSetup": E,  # setUpClass raised
    "tests/test_calc.py::TestCalc::test_add": P,
    "tests/test_calc.py::TestCalc::test_doc": P,
    "tests/test_calc.py::TestCalc::test_doc_fail": F,
    "tests/test_calc.py::TestCalc::test_error": E,
    "tests/test_calc.py::TestCalc::test_expected_failure": X,
    "tests/test_calc.py::TestCalc::test_fail": F,
    "tests/test_calc.py::TestCalc::test_prints": P,
    "tests/test_calc.py::TestCalc::test_prints_no_newline": P,
    "tests/test_calc.py::TestCalc::test_skip": S,
    "tests/test_calc.py::TestCalc::test_subtests": F,
    "tests/test_calc.py::TestCalc::test_unexpected_success": F,
    "tests/test_calc.py::TestSkippedClass::test_a": S,
    "tests/unit/test_more.py::TestMore::test_one": P,
}


@pytest.mark.parametrize("fixture", ["py39.log", "py313.log", "py312_runtests.log"])
def test_unittest_log(fixture):
    text = (DATA / "unittest" / fixture).read_text()
    assert parse_unittest_log(text, UNITTEST_FILES) == UNITTEST_SUITE


@pytest.mark.parametrize("fixture", ["py39.log", "py313.log"])
def test_unittest_log_without_test_files(fixture):
    # The import failure names only the module's last component, so its directory is lost.
    text = (DATA / "unittest" / fixture).read_text()
    expected = UNITTEST_SUITE.copy()
    expected["test_broken.py"] = expected.pop("tests/test_broken.py")
    assert parse_unittest_log(text, []) == expected


def test_unittest_module_relative_to_tests_dir():
    # Django's runtests.py names "basic.tests" for tests/basic/tests.py.
    text = "test_save (basic.tests.ModelTest.test_save) ... ok\n"
    files = ["tests/basic/tests.py", "tests/other/tests.py"]
    assert parse_unittest_log(text, files) == {"tests/basic/tests.py::ModelTest::test_save": P}


def test_unittest_ambiguous_tail_falls_back_to_guess():
    text = "test_save (tests.ModelTest) ... ok\n"
    files = ["tests/basic/tests.py", "tests/other/tests.py"]
    assert parse_unittest_log(text, files) == {"tests.py::ModelTest::test_save": P}


def test_swebench_spellings_of_ids_with_spaces_and_paths_resolve_to_the_tests():
    statuses = {
        'tests/test_u.py::test_pragmas[<meta charset="UTF-8">]': P,
        'tests/test_u.py::test_pragmas[<meta http-equiv="Content-type">]': F,
        "tests/test_u.py::test_unchanged[/testbed/tests/test_u.py]": P,
        "tests/test_u.py::test_plain": P,
    }
    spelled = with_swebench_spellings(statuses)
    assert spelled["tests/test_u.py::test_pragmas[<meta"] == F  # both tests cut to it: the worse wins
    assert spelled["tests/test_u.py::test_unchanged[/test_u.py]"] == P
    assert spelled["tests/test_u.py::test_unchanged[/testbed/tests/test_u.py]"] == P
    assert len([name for name in spelled if "::" in name]) == len(statuses) + 2  # and the bare names


def test_swebench_spellings_without_the_file():
    spelled = with_swebench_spellings(
        {
            "sympy/core/tests/test_basic.py::test_equality": P,  # sympy's bin/test prints bare function names
            "tests/test_p.py::test_power[2-3]": F,
            "tests/basic/tests.py::ModelTest::test_save": P,  # Django names modules from its tests folder
            "a/test_x.py::test_same": P,
            "b/test_x.py::test_same": F,
        }
    )
    assert spelled["test_equality"] == P
    assert spelled["test_power[2-3]"] == F
    for name in ("basic.tests.ModelTest", "tests.basic.tests.ModelTest", "tests.ModelTest"):
        assert spelled[f"test_save ({name})"] == spelled[f"test_save ({name}.test_save)"] == P
    assert spelled["test_save"] == P
    assert spelled["test_same"] == F  # two tests, one spelling: the worse status
    assert "test_power[2-3] (tests.test_p)" not in spelled  # unittest names no module functions


def test_swebench_spellings_of_duplicate_parameter_ids_of_both_pytest_eras():
    # Twice the id "1-1": pytest < 8 appends the counter ("1-10"), pytest >= 8 puts "_" before it ("1-1_0").
    new = with_swebench_spellings({"t.py::test_d[1-1_0]": P, "t.py::test_d[1-1_1]": F, "t.py::test_d[a0]": P})
    assert (new["t.py::test_d[1-10]"], new["t.py::test_d[1-11]"], new["test_d[1-10]"]) == (P, F, P)
    assert not any("a_0" in name for name in new)  # an id ending in a letter is suffixed alike in both eras
    old = with_swebench_spellings({"t.py::test_d[1234-12340]": P, "t.py::test_d[1234-12341]": F})
    assert (old["t.py::test_d[1234-1234_0]"], old["t.py::test_d[1234-1234_1]"], old["test_d[1234-1234_0]"]) == (P, F, P)
    exact = with_swebench_spellings({"t.py::test_d[1-10]": F, "t.py::test_d[1-1_0]": P})
    assert (exact["t.py::test_d[1-10]"], exact["t.py::test_d[1-1_0]"]) == (F, P)  # an exact id always wins


def test_swebench_spellings_of_an_older_pytest():
    # pytest < 4 names a method Class::()::test; JUnit files spell the characters XML cannot hold "#x00", a newer
    # pytest's ids escape every non-printable character.
    old = with_swebench_spellings({"t.py::TestU::()::test_u[#x00\x01-out1]": P, "t.py::TestU::()::test_v[\x80]": F})
    assert (old["t.py::TestU::test_u[\\x00\\x01-out1]"], old["t.py::TestU::test_v[\\x80]"]) == (P, F)
    assert old["test_u[\\x00\\x01-out1]"] == P and "t.py::TestU::test_u[#x00\x01-out1]" in old
    escaped_already = with_swebench_spellings({"t.py::T::()::test_w[\x00\\x80-o16]": P})  # bytes: \x80 as text
    assert escaped_already["t.py::T::test_w[\\x00\\x80-o16]"] == P


def test_a_path_parameter_of_the_machine_that_made_the_row_is_read_in_this_checkout():
    here = {"p/t.py::test_f[/testbed/p/data/x.dcm-data0]": P}
    row_id = "p/t.py::test_f[/n/fs/tmpq/p__p__1.2/p/data/x.dcm-data0]"
    assert as_run_here(row_id, here) == "p/t.py::test_f[/testbed/p/data/x.dcm-data0]"
    assert as_run_here(row_id.replace("x.dcm", "y.dcm"), here) == row_id.replace("x.dcm", "y.dcm")
    assert as_run_here("p/t.py::test_f[a/p/data/x.dcm-data0]", here) == "p/t.py::test_f[a/p/data/x.dcm-data0]"
    pair = {"p/t.py::test_g[/testbed/p/x.dcm-/testbed/p/y.dcm]": P}  # every path of a parameter moves alike
    assert as_run_here("p/t.py::test_g[/tmp/q/p__1/p/x.dcm-/tmp/q/p__1/p/y.dcm]", pair) == next(iter(pair))


@pytest.mark.parametrize(
    "test_id,named",
    [
        ("tests/test_x.py::TestC::test_y[1]", True),
        ("tests/test_x.py", True),  # a module that failed to import
        ("test_y", True),
        ("test_y[a-b", True),  # cut at a space
        ("testHelper", True),  # pytest collects every test* function
        ("test_y (tests.test_x.TestC)", True),
        ("test_y (test_x.TestC.test_y)", True),
        ("[100%]", False),  # a wrapped progress line
        ("test_capsysbinary.py::test_hello", False),  # a test of an inner pytest run, printed into the log
        ("tests/test_other.py::test_y", False),
        ("test_y (other.TestC)", False),
        ("Saving a model keeps its primary key", False),  # Django prints a docstring instead of the name
    ],
)
def test_junit_would_name_the_tests_of_the_files_that_ran(test_id, named):
    assert junit_would_name(test_id, ["tests/test_x.py"]) is named


def test_swebench_parsers_are_found_by_name_or_repository_only():
    assert swebench_parser("parse_log_sympy", "example/calcpkg") == "parse_log_sympy"
    assert swebench_parser(None, "pylint-dev/pylint") == "parse_log_pytest_options"  # swebench's own map
    assert swebench_parser(None, "example/calcpkg") is None
    for name in ("parse_log_gotest", "__import__('os').system('true')", "TestStatus"):
        with pytest.raises(UnknownLogParser, match="is not one of swebench's Python log parsers"):
            swebench_parser(name, "example/calcpkg")
    pytest_log = "PASSED [100%]\nFAILED tests/x.py::test_b - assert 1 == 2\nERROR: file or directory not found: x\n"
    assert parse_log("parse_log_pytest", pytest_log) == {"[100%]": P, "tests/x.py::test_b": F}
    assert parse_log("parse_log_sympy", "test_c ok\ntest_d F\n") == {"test_c": P, "test_d": F}
