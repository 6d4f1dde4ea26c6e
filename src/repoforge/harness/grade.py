"""Applying a model's patch and grading the test run, as SWE-bench does and harder to fool."""

from __future__ import annotations

import re
import shlex
from typing import NamedTuple

from repoforge.git.repo import paths_in_patch
from repoforge.mine import is_test_path
from repoforge.sandbox.base import Sandbox
from repoforge.schema import InstanceReport, TestsStatus, TestStatus
from repoforge.testrun.parse import junit_would_name, with_swebench_spellings
from repoforge.validate import PASSING

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
    """Tests the grade depends on failed because the sandbox is offline: the harness's failure, not the model's."""

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
          files: list[str], log: Results | None = None) -> None:
    """Fill tests_status, decided_by and resolved; a test missing from the results counts as failed.

    The JUnit results decide every required test they name (in any SWE-bench spelling) and every test they
    would name if it existed (see junit_would_name), so no printed line can pass a test of the run. The row's
    log parser, if it has one, decides only the rest, ids that name no such test: a wrapped progress line's
    "[100%]", a test of an inner pytest run printed into the log.
    """
    junit = Results("junit", with_swebench_spellings(statuses))
    report.decided_by = {}
    for key, tests in (("FAIL_TO_PASS", fail_to_pass), ("PASS_TO_PASS", pass_to_pass)):
        passed = []
        for test in tests:
            decider = junit if log is None or test in junit.statuses or junit_would_name(test, files) else log
            report.decided_by.setdefault(decider.source, []).append(test)
            if decider.statuses.get(test) in PASSING:
                passed.append(test)
        report.tests_status[key] = TestsStatus(success=passed, failure=[t for t in tests if t not in passed])
    report.resolved = all(not report.tests_status[k].failure for k in ("FAIL_TO_PASS", "PASS_TO_PASS"))


def consistent(statuses: dict[str, TestStatus], exit_code: int) -> bool:
    """Whether the runner's exit code agrees with the parsed results (pytest: 0 iff nothing failed)."""
    failed = any(status not in PASSING and status != TestStatus.SKIPPED for status in statuses.values())
    return (exit_code == 0) != failed


def check_online(report: InstanceReport, failures: dict[str, str]) -> None:
    """Raise NeedsNetwork when failed FAIL_TO_PASS/PASS_TO_PASS tests say the network was unreachable."""
    failed = [t for key in ("FAIL_TO_PASS", "PASS_TO_PASS") for t in report.tests_status[key].failure]
    offline = [t for t in failed if OFFLINE.search(failures.get(t, ""))]
    if offline:
        raise NeedsNetwork(offline, len(failed) - len(offline))
