"""Applying a model's patch and grading the test run, as SWE-bench does and harder to fool."""

from __future__ import annotations

import re
import shlex
from typing import Callable, NamedTuple

from repoforge.git.repo import paths_in_patch
from repoforge.mine import is_test_path
from repoforge.sandbox.base import Sandbox
from repoforge.schema import GoldRun, InstanceReport, TaskInstance, TestsStatus, TestStatus
from repoforge.testrun.parse import junit_would_name, with_swebench_spellings
from repoforge.validate import FAILING, PASSING

PATCH_FILE = ".git/repoforge-model.patch"  # inside the sandbox's repository, outside its working tree
# SWE-bench's fallback chain; the tree is reset between attempts.
APPLY_CHAIN = [
    f"git apply --verbose {PATCH_FILE}",
    f"git apply --verbose --3way {PATCH_FILE}",
    f"git apply --verbose --reject {PATCH_FILE}",
    f"patch --batch --forward --fuzz=5 -p1 -i {PATCH_FILE}",
]
RESET = "git reset -q --hard HEAD && git clean -qfd"
# How a test that needs a live public service fails in an offline sandbox: names do not resolve, and
# connections are refused or never answered (urllib, requests/urllib3, httpx, sockets, curl).
OFFLINE = re.compile(
    r"gaierror|Name or service not known|Temporary failure in name resolution|nodename nor servname"
    r"|No address associated with hostname|NameResolutionError|getaddrinfo failed|Could not resolve host"
    r"|Network is unreachable|Failed to establish a new connection|Max retries exceeded with url"
)


class NeedsNetwork(Exception):
    """Tests the grade depends on failed as they fail in the gold patch's own offline run, for want of the network:
    the harness's failure, not the model's (see check_online)."""

    def __init__(self, tests: list[str], other_failures: int):
        super().__init__(f"{len(tests)} test(s) need a live network service and the sandbox is offline: "
                         + ", ".join(tests[:5]) + (" ..." if len(tests) > 5 else "")
                         + (f"; {other_failures} other required test(s) failed" if other_failures
                            else "; every other required test passed"))
        self.tests = tests


def apply_with_fallback(sandbox: Sandbox, patch: str, log: list[str]) -> bool:
    sandbox.write_file(f"{sandbox.root}/{PATCH_FILE}", patch)
    for command in APPLY_CHAIN:
        result = sandbox.exec(command, timeout=120)
        log.append(f"$ {command}\n{result.output}")
        if result.exit_code == 0:
            return True
        sandbox.exec(RESET, timeout=120)
    return False


def restore_from_base(sandbox: Sandbox, paths: list[str], log: list[str]) -> None:
    """Put `paths` back as the base commit has them (deleting those it does not have)."""
    for path in paths:
        quoted = shlex.quote(path)
        command = f"git checkout -q HEAD -- {quoted} 2>/dev/null || rm -rf {quoted}"
        log.append(f"$ {command}")
        sandbox.exec(command, timeout=60)


def test_files_touched(patch: str) -> list[str]:
    """What in a model's patch is a test, a conftest or test data: graded on the originals instead."""
    return [path for path in paths_in_patch(patch) if is_test_path(path)]


class Results(NamedTuple):
    """Per-test statuses and what gave them: "junit", or the swebench log parser that read the console output."""

    source: str
    statuses: dict[str, TestStatus]


def grade(report: InstanceReport, statuses: dict[str, TestStatus], fail_to_pass: list[str], pass_to_pass: list[str],
          files: list[str], log: Results | None = None,
          xfail_passes: Callable[[str], bool] = lambda test: False) -> dict[str, TestStatus | None]:
    """Fill tests_status, decided_by and resolved; return each required test's status as decided (None: missing).

    A test passes when it ended PASSED, or XFAIL where `xfail_passes` says so (see xfail_rule); a test missing from
    the results counts as failed. The JUnit results decide every required test they name (in any SWE-bench
    spelling) and every test they would name if it existed (see junit_would_name), so no printed line can pass a
    test of the run. The row's log parser, if it has one, decides only the rest, ids that name no such test: a
    wrapped progress line's "[100%]", a test of an inner pytest run printed into the log.
    """
    junit = Results("junit", with_swebench_spellings(statuses))
    report.decided_by, decided = {}, {}
    for key, tests in (("FAIL_TO_PASS", fail_to_pass), ("PASS_TO_PASS", pass_to_pass)):
        passed = []
        for test in tests:
            decider = junit if log is None or test in junit.statuses or junit_would_name(test, files) else log
            report.decided_by.setdefault(decider.source, []).append(test)
            decided[test] = status = decider.statuses.get(test)
            if status in PASSING or (status == TestStatus.XFAIL and xfail_passes(test)):
                passed.append(test)
        report.tests_status[key] = TestsStatus(success=passed, failure=[t for t in tests if t not in passed])
    report.resolved = not _failed(report)
    return decided


def _failed(report: InstanceReport) -> list[str]:
    return [test for key in ("FAIL_TO_PASS", "PASS_TO_PASS") for test in report.tests_status[key].failure]


def xfail_rule(row: TaskInstance, parser: str | None, gold_patch: bool,
               gold: Callable[[], GoldRun | None]) -> Callable[[str], bool]:
    """Whether a required test of `row` that ended XFAIL passed, for the gold patch or another.

    SWE-bench counts XFAIL as passed (swebench.harness.grading.test_passed), and so does this grader on SWE-bench's
    rows (a log_parser, or no env of ours and a repository swebench has a parser for): for the gold patch, and for
    another patch where the gold patch's own run left that test XFAIL too, since library code calling pytest.xfail()
    turns any failure into an XFAIL. Forge's rows hold only tests that ended PASSED: there XFAIL never passes.
    """
    if not (row.log_parser or (row.env is None and parser)):
        return lambda test: False
    if gold_patch:
        return lambda test: True
    return lambda test: test in (gold() or GoldRun()).xfail


def gold_evidence(report: InstanceReport, decided: dict[str, TestStatus | None], failures: dict[str, str]) -> GoldRun:
    """What a run of the gold patch, graded into `report`, says about the row's required tests in this sandbox."""
    failed = _failed(report)
    return GoldRun(failed=failed, needs_network=[t for t in failed if OFFLINE.search(failures.get(t, ""))],
                   xfail=[test for test, status in decided.items() if status == TestStatus.XFAIL])


def consistent(statuses: dict[str, TestStatus], exit_code: int) -> bool:
    """Whether the runner's exit code agrees with the parsed results (pytest: 0 iff nothing failed)."""
    failed = any(status in FAILING for status in statuses.values())
    return (exit_code == 0) != failed


def check_online(report: InstanceReport, failures: dict[str, str], gold: Callable[[], GoldRun | None]) -> None:
    """Raise NeedsNetwork when an offline run says nothing about the patch: a failed required test needed the network
    in the gold patch's own offline run, and every failed one failed there too. A test the gold patch passes offline
    has failed, whatever its failure says: a wrong fix can raise socket.gaierror. The gold run is asked for (and made,
    once, if it is unknown) only when a failure looks like the network."""
    failed = _failed(report)
    if not any(OFFLINE.search(failures.get(test, "")) for test in failed):
        return
    evidence = gold()
    offline = [test for test in failed if evidence and test in evidence.needs_network]
    if offline and set(failed) <= set(evidence.failed):
        raise NeedsNetwork(offline, len(failed) - len(offline))
