"""Run a candidate's tests before and after its fix, repeatedly, and derive FAIL_TO_PASS / PASS_TO_PASS."""

from __future__ import annotations

import math
import secrets
import shlex
from collections.abc import Callable
from typing import NamedTuple

from repoforge.llm.fit import cut
from repoforge.sandbox import SandboxError
from repoforge.sandbox.base import (
    ExecResult,
    PatchError,
    ResultFileError,
    Sandbox,
    Step,
    Then,
    exec_then_read,
    run_steps,
)
from repoforge.schema import Candidate, EnvSpec, Rejection, TaskInstance, TestStatus
from repoforge.testrun.command import (
    FUNCTIONS_JUNIT_FILE,
    JUNIT_FILE,
    function_run_command,
    hardened,
    read_runner_facts,
    render,
    render_args,
    runner_facts_command,
)
from repoforge.testrun.parse import junit_failure_texts, parse_junit

# What a test must end as to enter FAIL_TO_PASS / PASS_TO_PASS, and to pass them when a row of ours is graded: an XFAIL
# says the code failed (library code calling pytest.xfail() turns any failure into one). SWE-bench's rows follow
# SWE-bench's rules (see harness/grade.py).
PASSING = {TestStatus.PASSED}
FAILING = {TestStatus.FAILED, TestStatus.ERROR}
# Of the FAIL_TO_PASS tests' failures at the base commit, a row keeps the first few (by id), each cut to its message
# and its traceback's beginning and end: enough to say what a user would see, small enough for every row.
FAILURES_KEPT = 5
FAILURE_CHARS = 1500


class RunFailed(Exception):
    def __init__(self, reason: str, detail: str, seconds: float):
        super().__init__(reason)
        self.reason, self.detail, self.seconds = reason, detail, seconds


class SuiteRun(NamedTuple):
    statuses: dict[str, TestStatus]  # by SWE-bench test id
    result: ExecResult
    failures: dict[str, str]  # failing test id -> its messages and traceback


def test_run_command(sandbox: Sandbox, spec: EnvSpec, files: list[str]) -> str:
    """The command of one run of the test files (spec's runner known: see with_runner)."""
    junit = f"{sandbox.root}/{JUNIT_FILE}"
    return hardened(render(spec.test_command, files, junit), spec.runner_version, spec.runner_plugins or {})


def with_runner(spec: EnvSpec, sandbox: Sandbox) -> EnvSpec:
    """spec, with the runner it was validated with read from the sandbox's venv if the build did not record it."""
    if spec.runner_plugins is not None:
        return spec
    return runner_read(spec, sandbox.exec(runner_facts_command(), timeout=120))


def runner_read(spec: EnvSpec, facts: ExecResult | Step) -> EnvSpec:
    """spec with the runner facts a sandbox command printed (runner_facts_command)."""
    if facts.exit_code != 0:
        raise SandboxError(f"cannot read the venv's test runner: {facts.output[-500:]}")
    version, plugins = read_runner_facts(facts.output)
    return spec.model_copy(update={"runner_version": version, "runner_plugins": plugins})


def run_tests(
    sandbox: Sandbox,
    spec: EnvSpec,
    files: list[str],
    timeout: float,
    functions: bool = False,
    first: Callable[[], SuiteRun] | None = None,
) -> SuiteRun:
    """One run of the test files (`first`, when the harness already ran it: see test_step); with `functions`, the
    files pytest cannot import run by FUNCTION_RUNNER instead (for rows whose test ids are bare function names, made by
    a project's own runner), the others by pytest again, so that each run's exit code speaks for its results alone."""
    run = first() if first else _pytest_run(sandbox, spec, files, timeout)
    unimportable = [f for f in files if run.statuses.get(f) == TestStatus.ERROR] if functions else []
    if not unimportable:
        return run
    junit = f"{sandbox.root}/{FUNCTIONS_JUNIT_FILE}"
    runs = [_run(sandbox, function_run_command(unimportable, junit), junit, unimportable, timeout)]
    importable = [f for f in files if f not in unimportable]
    if importable:
        runs.append(_pytest_run(sandbox, spec, importable, timeout))
    result = ExecResult(
        max(r.result.exit_code for r in runs),
        "\n".join(r.result.output for r in [run, *runs]),
        sum(r.result.seconds for r in [run, *runs]),
    )
    return SuiteRun(
        {t: s for r in runs for t, s in r.statuses.items()}, result, {t: f for r in runs for t, f in r.failures.items()}
    )


def _pytest_run(sandbox: Sandbox, spec: EnvSpec, files: list[str], timeout: float) -> SuiteRun:
    return _run(sandbox, test_run_command(sandbox, spec, files), f"{sandbox.root}/{JUNIT_FILE}", files, timeout)


def _run(sandbox: Sandbox, command: str, junit: str, files: list[str], timeout: float) -> SuiteRun:
    return _suite_run(*exec_then_read(sandbox, f"rm -f {junit}; {command}", junit, timeout), files, timeout)


def _suite_run(result: ExecResult, read: Callable[[], str], files: list[str], timeout: float) -> SuiteRun:
    """The JUnit file is read only as a regular file, and only so far."""
    if result.timed_out:
        raise RunFailed("test run timed out", f"killed after {timeout:.0f} s\n" + result.output[-2000:], result.seconds)
    try:
        xml, unreadable = read(), ""
    except ResultFileError as exc:
        xml, unreadable = "", f"test results unreadable: {exc}\n"
    statuses = parse_junit(xml, files)
    if not statuses:
        raise RunFailed("tests did not run", unreadable + result.output[-3000:], result.seconds)
    return SuiteRun(statuses, result, junit_failure_texts(xml, files))


def test_step(sandbox: Sandbox, spec: EnvSpec, candidates: list[str], timeout: float) -> Then:
    """The test run of those `candidates` that are files, as a command to run after harness steps in the same sandbox
    command (harness/tree.prepare_run), killed after `timeout`; read by step_run."""
    junit = f"{sandbox.root}/{JUNIT_FILE}"
    command = hardened(render_args(spec.test_command, junit), spec.runner_version, spec.runner_plugins or {})
    nonce = secrets.token_hex(12)
    listed = " ".join(map(shlex.quote, candidates))
    return Then(
        f'set --; for f in {listed}; do [ -f "$f" ] && set -- "$@" "$f"; done; if [ $# -gt 0 ]; then rm -f {junit}; '
        f't0=$EPOCHREALTIME; timeout -s KILL {math.ceil(timeout)} bash -c {shlex.quote(command)} bash "$@"; '
        f'printf \'\\n{nonce} tests %d %s %s\\n\' $? "$t0" "$EPOCHREALTIME"; fi',
        junit,
        timeout,
        nonce,
    )


def step_run(step: Then, ran: tuple[ExecResult, Callable[[], str]], files: list[str]) -> SuiteRun:
    """The SuiteRun of a test_step: its own exit code and seconds, as it printed them after the tests' output (the
    last such line: see exec_then_read)."""
    result, read = ran
    output, marker, end = result.output.rpartition(f"\n{step.nonce} tests ")
    fields = end.replace(",", ".").split()  # the seconds in the sandbox's locale
    if not marker or len(fields) != 3 or not fields[0].isdigit():  # killed before it ended
        return _suite_run(result, read, files, step.timeout)
    code, seconds = int(fields[0]), _elapsed(fields[1], fields[2], result.seconds)
    timed_out = result.timed_out or (code == 137 and seconds >= step.timeout - 1)
    return _suite_run(ExecResult(code, output, seconds, timed_out), read, files, step.timeout)


def _elapsed(start: str, end: str, otherwise: float) -> float:
    try:
        return float(end) - float(start)
    except ValueError:  # a shell without EPOCHREALTIME (bash before 5)
        return otherwise


def files_test(paths: list[str]) -> str:
    """A command printing which of `paths` are files in the checkout (a patch may have deleted some)."""
    return "".join(f"[ -f {shlex.quote(p)} ] && echo {shlex.quote(p)}; " for p in paths) + "true"


def existing_files(sandbox: Sandbox, paths: list[str]) -> list[str]:
    """The paths that are files in the sandbox's checkout, in one command."""
    found = sandbox.exec(files_test(paths))
    if found.exit_code != 0:  # the sandbox itself failed: that says nothing about the files
        raise SandboxError(f"cannot look at the checkout (exit {found.exit_code}): {found.output[-500:]}")
    return [p for p in paths if p in found.output.splitlines()]


def classify(
    pre: list[dict[str, TestStatus]], post: list[dict[str, TestStatus]]
) -> tuple[list[str], list[str], list[str]]:
    """(FAIL_TO_PASS, PASS_TO_PASS, flaky): a test missing from a run counts as failed there."""
    f2p, p2p, flaky = [], [], []
    for test in sorted(set().union(*pre, *post)):
        before = [run.get(test, TestStatus.FAILED) for run in pre]
        after = [run.get(test, TestStatus.FAILED) for run in post]
        if _mixed(before) or _mixed(after):
            flaky.append(test)
        elif all(s in FAILING for s in before) and all(s in PASSING for s in after):
            f2p.append(test)
        elif all(s in PASSING for s in before + after):
            p2p.append(test)
    return f2p, p2p, flaky


def _mixed(statuses: list[TestStatus]) -> bool:
    return any(s in PASSING for s in statuses) and any(s in FAILING for s in statuses)


def reaches_into_tests(sandbox: Sandbox, patch: str) -> list[str]:
    """What eval's tampering reading (harness/grade.reach_tampering) finds in `patch`, the sandbox at its base."""
    from repoforge.harness.grade import base_reach_checks, reach_tampering  # grade imports this module
    from repoforge.harness.patchtext import reaches

    reaching = reaches(patch)
    return reach_tampering(reaching, run_steps(sandbox, base_reach_checks(reaching), timeout=120)) if reaching else []


def validate(
    candidate: Candidate, sandbox: Sandbox, spec: EnvSpec, pre_runs: int = 2, post_runs: int = 3, timeout: float = 600
) -> tuple[TaskInstance | Rejection, list[str]]:
    """The instance (or why not) and the flaky tests left out; `sandbox` holds the base commit and is closed."""
    reject = lambda reason, detail="": Rejection(
        stage="validate", reason=reason, detail=detail, instance_id=candidate.instance_id, commit=candidate.commit
    )
    try:
        spec = with_runner(spec, sandbox)
        if reasons := reaches_into_tests(sandbox, candidate.patch):  # eval would grade its own fix as tampering
            return reject("the fix reaches into the test machinery", "; ".join(reasons)), []
        try:
            sandbox.apply_patch(candidate.test_patch)
        except PatchError as exc:
            return reject("test_patch does not apply", str(exc)), []
        # A test_patch may delete test modules; only the ones left can run.
        files = existing_files(sandbox, candidate.test_files)
        if not files:
            return reject("no test module to run"), []
        pre = [run_tests(sandbox, spec, files, timeout) for _ in range(pre_runs)]
        try:
            sandbox.apply_patch(candidate.patch)
        except PatchError as exc:
            return reject("patch does not apply", str(exc)), []
        post = [run_tests(sandbox, spec, files, timeout).statuses for _ in range(post_runs)]
    except RunFailed as exc:
        return reject(exc.reason, exc.detail), []
    finally:
        sandbox.close()
    f2p, p2p, flaky = classify([run.statuses for run in pre], post)
    if not any(s in PASSING for run in post for s in run.values()):
        return reject("no test passes after the fix"), flaky
    if not f2p:
        return reject("no FAIL_TO_PASS tests", f"{len(p2p)} pass before and after; {len(flaky)} flaky"), flaky
    instance = TaskInstance(
        repo=candidate.repo,
        instance_id=candidate.instance_id,
        base_commit=candidate.base_commit,
        patch=candidate.patch,
        test_patch=candidate.test_patch,
        problem_statement=candidate.problem_statement,
        hints_text=candidate.hints_text,
        created_at=candidate.created_at,
        FAIL_TO_PASS=f2p,
        PASS_TO_PASS=p2p,
        environment_setup_commit=candidate.base_commit,
        env=spec,
        base_failures=base_failures(pre[0].failures, f2p),
    )
    return instance, flaky


def base_failures(failures: dict[str, str], f2p: list[str]) -> dict[str, str]:
    """The first FAIL_TO_PASS tests' failure texts of a run at the base commit, cut (see FAILURES_KEPT)."""
    failed = [test for test in f2p if failures.get(test, "").strip()]
    return {test: cut(failures[test].strip(), FAILURE_CHARS) for test in failed[:FAILURES_KEPT]}
