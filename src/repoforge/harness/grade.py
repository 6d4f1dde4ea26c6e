"""Applying a model's patch and grading the test run, as SWE-bench does and harder to fool."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import NamedTuple

from repoforge.harness.patchtext import REACHES
from repoforge.mine import is_test_path
from repoforge.sandbox import SandboxError
from repoforge.sandbox.base import Step
from repoforge.schema import GoldRun, InstanceReport, TaskInstance, TestsStatus, TestStatus
from repoforge.testrun.parse import as_run_here, junit_would_name, with_swebench_spellings
from repoforge.validate import FAILING, PASSING

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
        super().__init__(
            f"{len(tests)} test(s) need a live network service and the sandbox is offline: "
            + ", ".join(tests[:5])
            + (" ..." if len(tests) > 5 else "")
            + (
                f"; {other_failures} other required test(s) failed"
                if other_failures
                else "; every other required test passed"
            )
        )
        self.tests = tests


class Results(NamedTuple):
    """Per-test statuses and what gave them: "junit", or the swebench log parser that read the console output."""

    source: str
    statuses: dict[str, TestStatus]


def grade(
    report: InstanceReport,
    statuses: dict[str, TestStatus],
    fail_to_pass: list[str],
    pass_to_pass: list[str],
    files: list[str],
    log: Results | None = None,
    xfail_passes: Callable[[str], bool] = lambda test: False,
) -> dict[str, TestStatus | None]:
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
            here = as_run_here(test, junit.statuses)
            decider = junit if log is None or here in junit.statuses or junit_would_name(test, files) else log
            report.decided_by.setdefault(decider.source, []).append(test)
            decided[test] = status = decider.statuses.get(here if decider is junit else test)
            if status in PASSING or (status == TestStatus.XFAIL and xfail_passes(test)):
                passed.append(test)
        report.tests_status[key] = TestsStatus(success=passed, failure=[t for t in tests if t not in passed])
    report.resolved = not _failed(report)
    return decided


def _failed(report: InstanceReport) -> list[str]:
    return [test for key in ("FAIL_TO_PASS", "PASS_TO_PASS") for test in report.tests_status[key].failure]


def xfail_rule(
    row: TaskInstance, parser: str | None, gold_patch: bool, gold: Callable[[], GoldRun | None]
) -> Callable[[str], bool]:
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
    return GoldRun(
        failed=failed,
        needs_network=[t for t in failed if OFFLINE.search(failures.get(t, ""))],
        xfail=[test for test, status in decided.items() if status == TestStatus.XFAIL],
    )


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


def base_reach_checks(reaches: dict[str, list[str]]) -> dict[str, str]:
    """Harness commands listing the base commit's files that do what the patch's non-test code does (see
    patchtext.REACHES), one per reach; read by reach_tampering."""
    return {
        f"reach{i}": f"git grep -l -I -i -P -e {shlex.quote(REACHES[what])} HEAD -- '*.py'"
        for i, what in enumerate(reaches)
    }


def reach_tampering(reaches: dict[str, list[str]], steps: dict[str, Step]) -> list[str]:
    """Each reach into the test machinery that the project's own (non-test) code never makes at the base commit.

    Code the tests import runs inside the test process and can forge every account of the run, so what it does
    there is read from the patch; a project that itself uses atexit, say, is not suspected for using it."""
    reasons = []
    for i, (what, files) in enumerate(reaches.items()):
        step = steps[f"reach{i}"]
        if step.exit_code > 1:  # 1: no match
            raise SandboxError(f"git grep failed in the sandbox: {step.output[-300:]}")
        base = [line.partition(":")[2] for line in step.output.splitlines()]
        if all(is_test_path(path) for path in base):
            reasons.append(
                f"the patch's non-test code reaches into {what} ({', '.join(files)}), which the "
                "project's own code never does at the base commit"
            )
    return reasons


def disagreements(
    report: InstanceReport, junit: dict[str, TestStatus], console: dict[str, TestStatus], summary: bool | None
) -> list[str]:
    """The required tests the JUnit file and the console summary disagree on (one passes it, the other fails it
    or never names it): the code under test rewrote one of them. `summary`: whether the environment's console
    summary names each outcome (EnvSpec.runner_summary); where it need not, a console naming none is not held
    against the JUnit file."""
    if not console and not summary:
        return []
    junit, console = with_swebench_spellings(junit), with_swebench_spellings(console)
    here = {test: as_run_here(test, junit) for test in report.decided_by.get("junit", [])}
    return [
        f"{test}: the JUnit file says {_said(junit, name)}, the console summary {_said(console, name)}"
        for test, name in here.items()
        if (junit.get(name) in PASSING) != (console.get(name) in PASSING)
    ]


def _said(statuses: dict[str, TestStatus], test: str) -> str:
    return statuses[test].value if test in statuses else "nothing"
