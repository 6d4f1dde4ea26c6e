"""Attacks on the grading rules (issue 9, classes 4 and 6): XFAIL counted as passed, failures dressed as the network's,
and result files or outputs the code under test swaps or floods. Each is a real patch graded on the forged calcpkg,
on both backends where the sandbox matters."""

from __future__ import annotations

import pytest
from conftest import ONLINE_TEST

from attacks.forging import (
    BACKENDS,
    CORRECT_FIX,
    F2P,
    FIX_ID,
    WRONG_FIX,
    calc_patch,
    fix_row,
    forged_calcpkg,
    grade,
    init_patch,
    log_of,
    predict,
)
from repoforge.sandbox.base import MAX_OUTPUT
from repoforge.schema import TestStatus as Status  # a Test* name would be collected
from repoforge.validate import classify

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tmp(tmp_path_factory, store):
    return forged_calcpkg(tmp_path_factory, store)


def with_test(row, diff: str, test: str):
    """The row with one more test file in its test_patch, and its test in PASS_TO_PASS."""
    return row.model_copy(update={"test_patch": row.test_patch + diff, "PASS_TO_PASS": row.PASS_TO_PASS + [test]})


# --- class 4: XFAIL ---------------------------------------------------------------------------------------------

XFAIL_FIX = calc_patch(["    import pytest", "", '    pytest.xfail("add() is being rewritten")'])


@pytest.mark.parametrize("sandbox", BACKENDS)
@pytest.mark.parametrize("rules", ["forge", "swebench"])
def test_library_code_calling_pytest_xfail_passes_no_test(tmp, store, rules, sandbox):
    """add() calls pytest.xfail(): its FAIL_TO_PASS tests end XFAIL. Forge's rows never pass an XFAIL; SWE-bench's
    rows (here: with a log_parser) pass one only where the gold patch's own run ended XFAIL too."""
    row = fix_row(tmp, log_parser="parse_log_pytest" if rules == "swebench" else None)
    run_id = f"xfail-{rules}-{sandbox}"
    report, graded = grade(tmp, store, predict(XFAIL_FIX), run_id, [row], sandbox)
    assert "XFAIL tests/test_calc.py::test_add - reason: add() is being rewritten" in log_of(
        tmp, store, run_id, name="test_output.txt"
    )
    assert graded[FIX_ID]["patch_successfully_applied"] and not graded[FIX_ID]["resolved"]
    assert graded[FIX_ID]["tests_status"]["FAIL_TO_PASS"]["failure"] == F2P
    assert report["unresolved_ids"] == [FIX_ID] and report["error_ids"] == []
    if rules == "forge":  # no gold run is needed to refuse an XFAIL
        assert "running the gold patch" not in log_of(tmp, store, run_id)


KNOWN_BUG_TEST = """\
diff --git a/tests/test_known.py b/tests/test_known.py
new file mode 100644
--- /dev/null
+++ b/tests/test_known.py
@@ -0,0 +1,6 @@
+import pytest
+
+
+@pytest.mark.xfail(reason="a known bug")
+def test_known_bug():
+    assert False
"""
KNOWN_BUG = "tests/test_known.py::test_known_bug"


def test_an_xfail_the_gold_patch_ends_with_too_passes_on_swebench_rows_only(tmp, store):
    """SWE-bench's parity: a test that is XFAIL by design (the gold patch's run ends so) passes on its rows, for the
    gold patch and for another correct one; forge's rows never list one (validation leaves it out)."""
    swebench = with_test(fix_row(tmp, log_parser="parse_log_pytest"), KNOWN_BUG_TEST, KNOWN_BUG)
    assert grade(tmp, store, "gold", "known-xfail-gold", [swebench])[0]["resolved_ids"] == [FIX_ID]
    assert grade(tmp, store, predict(CORRECT_FIX), "known-xfail-other", [swebench])[0]["resolved_ids"] == [FIX_ID]
    assert "running the gold patch" not in log_of(tmp, store, "known-xfail-other")  # the gold run above is kept
    ours = swebench.model_copy(update={"log_parser": None})
    _, graded = grade(tmp, store, "gold", "known-xfail-ours", [ours])
    assert graded[FIX_ID]["tests_status"]["PASS_TO_PASS"]["failure"] == [KNOWN_BUG]


def test_validation_lists_no_test_that_ended_xfail():
    """The same rule at forge's validation: an XFAIL after the fix is no pass, before it no failure."""
    pre = [{"a": Status.FAILED, "b": Status.XFAIL, "c": Status.PASSED}] * 2
    post = [{"a": Status.XFAIL, "b": Status.XFAIL, "c": Status.PASSED}] * 3
    assert classify(pre, post) == ([], ["c"], [])


# --- class 6: failures that look like the network's -------------------------------------------------------------

GAIERROR_FIX = calc_patch(
    ["    import socket", "", '    raise socket.gaierror(-3, "Temporary failure in name resolution")']
)


@pytest.mark.parametrize("sandbox", BACKENDS)
def test_a_wrong_fix_raising_a_network_error_is_a_failure(tmp, store, sandbox):
    """add() raises socket.gaierror: its tests fail saying the network was unreachable, but the gold patch's own
    offline run passes them, so they failed; that run is made once (if no earlier test made it) and kept."""
    row = fix_row(tmp)
    report, graded = grade(tmp, store, predict(GAIERROR_FIX), f"gaierror-{sandbox}", [row], sandbox)
    assert report["unresolved_ids"] == [FIX_ID] and report["error_ids"] == []
    assert graded[FIX_ID]["tests_status"]["FAIL_TO_PASS"]["failure"] == F2P
    report, _ = grade(tmp, store, predict(GAIERROR_FIX, "attacker-2"), f"gaierror-again-{sandbox}", [row], sandbox)
    assert report["unresolved_ids"] == [FIX_ID]
    assert "running the gold patch" not in log_of(tmp, store, f"gaierror-again-{sandbox}", "attacker-2")


def test_a_test_the_gold_patch_needs_the_network_for_says_nothing_about_any_patch(tmp, store):
    """A row lists a test that needs a live service (as rows graded online do): offline it is an infrastructure error
    for every patch that fails nothing else, and a wrong fix that fails more is a failure."""
    row = with_test(fix_row(tmp), ONLINE_TEST, "tests/test_online.py::test_reads_the_package_index")
    report, _ = grade(tmp, store, predict(CORRECT_FIX), "online-correct", [row])
    assert report["error_ids"] == [FIX_ID]
    assert report["failure_reasons"][FIX_ID] == (
        "NeedsNetwork: 1 test(s) need a live network service and the sandbox is offline: "
        "tests/test_online.py::test_reads_the_package_index; every other required test passed"
    )
    report, graded = grade(tmp, store, predict(WRONG_FIX), "online-wrong", [row])
    assert report["unresolved_ids"] == [FIX_ID] and report["error_ids"] == []
    assert graded[FIX_ID]["tests_status"]["FAIL_TO_PASS"]["failure"] == F2P


# --- class 6: hangs and floods: every read has a bound ----------------------------------------------------------


def at_exit(*lines: str) -> str:
    """The correct fix, plus code every test imports that runs `lines` once pytest has written its results."""
    body = [f"    {line}" for line in lines]
    junit = "    junit = [a.split('=', 1)[1] for a in sys.argv if a.startswith('--junitxml=')][0]"
    return CORRECT_FIX + init_patch(
        [
            "import atexit, os, subprocess, sys",
            "",
            "",
            "def _after_pytest():",
            junit,
            *body,
            "",
            "",
            "atexit.register(_after_pytest)",
        ]
    )


SWAPS = {
    "fifo": (["os.remove(junit)", "os.mkfifo(junit)"], "is not a regular file"),
    "symlink-to-dev-zero": (["os.remove(junit)", "os.symlink('/dev/zero', junit)"], "is a symlink"),
    "huge-sparse-file": (["os.truncate(junit, 1 << 30)"], "is larger than"),
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("sandbox", BACKENDS)
@pytest.mark.parametrize("swap", SWAPS)
def test_a_result_file_swapped_after_the_run_is_read_within_bounds(tmp, store, swap, sandbox):
    """An atexit swaps the JUnit file for a FIFO (a reader would wait forever), a symlink to /dev/zero (one would read
    forever) or a 1 GiB file: the file is refused, the run has no results, the patch does not resolve."""
    lines, why = SWAPS[swap]
    run_id = f"swap-{swap}-{sandbox}"
    report, graded = grade(tmp, store, predict(at_exit(*lines)), run_id, [fix_row(tmp)], sandbox)
    assert graded[FIX_ID]["patch_successfully_applied"] and not graded[FIX_ID]["resolved"]
    assert report["unresolved_ids"] == [FIX_ID]
    assert why in log_of(tmp, store, run_id, name="test_output.txt")
    assert graded[FIX_ID]["seconds"]["tests"] < 60


@pytest.mark.timeout(600)
@pytest.mark.parametrize("sandbox", BACKENDS)
def test_a_flood_of_output_is_kept_at_its_head_and_tail(tmp, store, sandbox):
    """300 MB written to the run's output once pytest is done: the harness keeps 4 MB (no more is ever held), its
    first and last halves; the atexit that wrote it is the patch reaching into the test run, so not resolved."""
    flood = at_exit("for _ in range(300):", "    os.write(1, b'x' * (1 << 20))", "os.write(1, b'the end')")
    report, graded = grade(tmp, store, predict(flood), f"flood-{sandbox}", [fix_row(tmp)], sandbox)
    output = log_of(tmp, store, f"flood-{sandbox}", name="test_output.txt")
    assert len(output) < MAX_OUTPUT + 100 and "bytes of output cut" in output and output.endswith("the end")
    assert "test session starts" in output[:1000]
    assert report["unresolved_ids"] == [FIX_ID] and any("atexit" in why for why in graded[FIX_ID]["tampering"])


@pytest.mark.timeout(600)
@pytest.mark.parametrize("sandbox", BACKENDS)
def test_a_process_left_holding_the_output_holds_no_reader(tmp, store, sandbox):
    """A daemon the tests leave behind keeps the run's output pipe open for 90 s: the reader stops once the run ends."""
    daemon = CORRECT_FIX + init_patch(
        ["import subprocess", "", "subprocess.Popen(['sleep', '90'], start_new_session=True)"]
    )
    report, graded = grade(tmp, store, predict(daemon), f"daemon-{sandbox}", [fix_row(tmp)], sandbox)
    assert report["resolved_ids"] == [FIX_ID]
    assert graded[FIX_ID]["seconds"]["tests"] < 30
