"""Evaluate predictions on instances; write SWE-bench's log layout and run report.

    logs/run_evaluation/<run_id>/<model>/<instance_id>/{report.json, run_instance.log, test_output.txt,
                                                        patch.diff, eval.sh}
    <report_dir>/<model>.<run_id>.json

An instance whose report.json exists is not evaluated again, so rerunning a run_id resumes it; the run report
covers every instance of the run evaluated so far. Run ids, model names and instance ids never name a folder outside
their place (see names.py). The gold patch's own run of a row, in each environment and sandbox, is kept in the
store (gold-runs/): other patches' XFAIL and network failures are judged by it (see grade.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import shlex
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, NamedTuple

from pydantic import AfterValidator, BaseModel, Field

from repoforge.env.build import (
    RECIPE_VERSION,
    BuildFailed,
    built_env,
    built_fingerprint,
    declared_names,
    ensure_env,
    env_folder,
    plan_and_build,
)
from repoforge.env.metadata import read_metadata
from repoforge.forge import default_store, run_all, write_atomic
from repoforge.git.locate import RepoPlaces, find_repository, has_commit
from repoforge.git.repo import GitError, apply_patch, checkout, commit_date, describe_as, paths_in_patch
from repoforge.harness.dataset import patch_problem
from repoforge.harness.grade import (
    NeedsNetwork,
    Results,
    base_reach_checks,
    check_online,
    consistent,
    disagreements,
    gold_evidence,
    grade,
    reach_tampering,
    xfail_rule,
)
from repoforge.harness.patchtext import PatchRefused
from repoforge.harness.patchtext import reaches as patch_reaches
from repoforge.harness.tree import apply_model_patch, prepare_run, restore_plan
from repoforge.names import check_run_id, model_folder
from repoforge.sandbox import SandboxError, get_backend
from repoforge.sandbox.base import PatchError, Sandbox
from repoforge.schema import AbsolutePath, EnvSpec, GoldRun, InstanceReport, Prediction, TaskInstance
from repoforge.testrun.command import runner_facts_command
from repoforge.testrun.logparsers import UnknownLogParser, parse_log, swebench_parser
from repoforge.testrun.parse import names_functions_alone, parse_pytest_log
from repoforge.validate import (
    RunFailed,
    SuiteRun,
    files_test,
    run_tests,
    runner_read,
    step_run,
    test_run_command,
    test_step,
)

ERROR_MARK = "evaluation error: "
GOLD_RECORD = "gold.json"


class EvalOptions(BaseModel):
    run_id: Annotated[str, AfterValidator(check_run_id)]
    store: AbsolutePath = Field(default_factory=default_store)
    log_dir: AbsolutePath = Path("logs/run_evaluation")
    report_dir: AbsolutePath = Path(".")
    repo_mirror: AbsolutePath | None = None
    sources_file: AbsolutePath | None = None  # forge's sources.json beside the dataset
    sandbox: str = "auto"
    timeout: float = 1800
    ray_address: str | None = None
    network: bool = False  # tests may reach the network (rows SWE-bench graded online); off, they cannot
    reuse_containers: bool = True  # Docker: instances of one environment take turns in one container, reset between

    def places(self) -> RepoPlaces:
        return RepoPlaces(store=self.store, mirror=self.repo_mirror, sources_file=self.sources_file)


def instance_log_dir(opts: EvalOptions, prediction: Prediction, instance_id: str) -> Path:
    return opts.log_dir / opts.run_id / model_folder(prediction.model_name_or_path) / instance_id


def environment(row: TaskInstance, opts: EvalOptions, backend, log: list[str]) -> tuple[Path, EnvSpec, str]:
    """(repository, spec, env_ref): the row's own env when this backend can build it, else inferred."""
    repo = find_repository(row.repo, row.base_commit, opts.places())
    own = row.env is not None and row.env.python in backend.pythons()
    if own and (built := built_env(row.env, opts.store, backend)):  # no checkout to read the project from
        (spec, env_ref), reused = built, True
    else:
        spec, env_ref, reused = _ensure_env(repo, row, own, opts, backend, log)
    log.append(f"environment {spec.fingerprint} (python {spec.python}, {'reused' if reused else 'built'}): {env_ref}")
    return repo, spec, env_ref


def _ensure_env(
    repo: Path, row: TaskInstance, own: bool, opts: EvalOptions, backend, log: list[str]
) -> tuple[EnvSpec, str, bool]:
    """ensure_env on a checkout: of the row's own env when `own`, else of the one planned for it."""
    tree = opts.store / "work" / f"env-{row.instance_id}-{os.getpid()}"
    try:
        if own:
            checkout(repo, row.base_commit, tree)
            spec, meta = row.env.model_copy(update={"attempts": [], "install_steps": []}), read_metadata(tree)
            return ensure_env(spec, meta, tree, opts.store, backend)
        return _planned_env(repo, row, tree, backend, opts.store, log)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _planned_env(
    repo: Path, row: TaskInstance, tree: Path, backend, store: Path, log: list[str]
) -> tuple[EnvSpec, str, bool]:
    """The environment of a row without our env (SWE-bench's), planned at its setup commit checked out at `tree`,
    with the fix's manifest changes, and what the base commit declares for its tests that the setup commit does
    not."""
    commit = _setup_commit(repo, row, log)
    record = _planning_record(row, commit, backend, store)
    if record.exists():  # planned before (by the run's build phase, or an earlier run): no checkout, no planning
        planned = json.loads(record.read_text())
        if built := built_fingerprint(planned["fingerprint"], store, backend):
            log.extend(planned["log"])
            return *built, True
    planning_log = len(log)
    checkout(repo, commit, tree)
    describe_as(tree, row.base_commit)  # a version computed from git at build time is the instance's
    _apply_manifest_changes(tree, row.patch, log)
    also = _base_only_requirements(repo, row.base_commit, tree, log) if commit != row.base_commit else []
    date = commit_date(repo, commit)
    spec, ref, reused = plan_and_build(
        repo, commit, date, tree, backend, store, version_commit=row.base_commit, also=also
    )
    record.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(record, json.dumps({"fingerprint": spec.fingerprint, "log": log[planning_log:]}))
    return spec, ref, reused


def _planning_record(row: TaskInstance, commit: str, backend, store: Path) -> Path:
    """Where the fingerprint that planning `row` at `commit` gave is kept. The planning reads only the repository at
    fixed commits, the row's patch and the package index as of a fixed date; so the same facts plan the same."""
    facts = [RECIPE_VERSION, backend.name, sorted(backend.pythons()), row.repo, row.base_commit, commit, row.patch]
    key = hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:32]
    return store / "planned" / backend.name / f"{key}.json"


def _base_only_requirements(repo: Path, base: str, planned: Path, log: list[str]) -> list[str]:
    """Names the base commit requires (to run or to test) that the planned tree no longer, or not yet, does, or
    does under another marker (for older Pythons only, say): its code and tests may import them. Names only, with
    the base's markers: the planned cutoff chooses the release."""
    tree = planned.with_name(planned.name + "-base")
    try:
        checkout(repo, base, tree)
        base_meta = read_metadata(tree)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    also = sorted(declared_names(base_meta) - declared_names(read_metadata(planned)))
    if also:
        log.append(f"from the base commit's declarations: {', '.join(also)}")
    return also


def _setup_commit(repo: Path, row: TaskInstance, log: list[str]) -> str:
    """Where a row without our env is planned: its environment_setup_commit, as SWE-bench plans it.

    That commit is shared by every row of one version, so they share one environment, and their test
    lists were made in an environment of that commit's dependencies. A base commit made after it
    (SWE-bench files some rows under an older version) may import what that commit did not declare
    yet: such a row is planned at its base commit.
    """
    setup = row.environment_setup_commit or row.base_commit
    if setup == row.base_commit:
        return setup
    if not has_commit(repo, setup):
        log.append(f"environment_setup_commit {setup[:12]} is not in the repository: planned at the base commit")
        return row.base_commit
    if datetime.fromisoformat(commit_date(repo, row.base_commit)) > datetime.fromisoformat(commit_date(repo, setup)):
        log.append(f"the base commit is newer than environment_setup_commit {setup[:12]}: planned at the base commit")
        return row.base_commit
    return setup


def _apply_manifest_changes(tree: Path, patch: str, log: list[str]) -> None:
    """The fix's changes to the dependency manifests: a fix may declare the package it starts to import."""
    manifests = set(read_metadata(tree).manifest_files)
    files = [path for path in paths_in_patch(patch) if path in manifests]
    if not files:
        return
    try:
        apply_patch(tree, patch, only=files)
        log.append(f"planned with the fix's changes to {', '.join(files)}")
    except GitError:
        log.append(f"the fix's changes to {', '.join(files)} do not apply at the setup commit: planned without them")


class Job(NamedTuple):
    """One instance's evaluation, as a worker gets it: its row, its prediction, the environment it will likely
    need next."""

    row: TaskInstance
    prediction: Prediction
    ahead: str | None

    @property
    def instance_id(self) -> str:
        return self.row.instance_id


def evaluate_one(
    row: TaskInstance, prediction: Prediction, opts: EvalOptions, ahead: str | None = None
) -> InstanceReport:
    """Grade one prediction, writing its log folder; infrastructure failures land in report.error. `ahead` is the
    environment the next instance will likely need (its container may start meanwhile)."""
    folder = instance_log_dir(opts, prediction, row.instance_id)
    if (folder / "report.json").exists():
        return InstanceReport.model_validate(json.loads((folder / "report.json").read_text())[row.instance_id])
    folder.mkdir(parents=True, exist_ok=True)
    start, log = time.monotonic(), []
    patch = prediction.model_patch or ""
    (folder / "patch.diff").write_text(patch, errors="backslashreplace")  # a lone surrogate shows as \ud800
    report = InstanceReport(patch_is_None=prediction.model_patch is None, patch_exists=bool(patch.strip()))
    malformed = patch_problem(patch) if report.patch_exists else None
    if malformed:  # the model's failure, graded as a patch that does not apply
        log.append(f"malformed prediction: {malformed}; not applied")
    elif report.patch_exists:
        try:
            _run(row, patch, opts, report, folder, log, ahead)
        except INFRASTRUCTURE_ERRORS as exc:
            report.error = f"{type(exc).__name__}: {exc.summary() if isinstance(exc, BuildFailed) else exc}"
        except Exception as exc:  # a harness bug: recorded as this instance's error, the run goes on
            report.error = f"internal error {type(exc).__name__}: {exc}"
    report.seconds["total"] = round(time.monotonic() - start, 3)
    log.append(f"seconds: {json.dumps(report.seconds)}")
    log.append(f"{ERROR_MARK}{report.error}" if report.error else f"resolved: {report.resolved}")
    (folder / "run_instance.log").write_text("\n".join(log) + "\n")
    # As in SWE-bench, an instance that erred has no report.json: it counts as an error, and a rerun retries it.
    if not report.error:
        write_atomic(folder / "report.json", json.dumps({row.instance_id: report.model_dump()}, indent=2))
    return report


def _run(
    row: TaskInstance,
    patch: str,
    opts: EvalOptions,
    report: InstanceReport,
    folder: Path,
    log: list[str],
    ahead: str | None = None,
) -> None:
    parser = swebench_parser(row.log_parser, row.repo)
    log.append(f"network: {'on' if opts.network else 'off'}")
    log.append(f"log parser: {parser or 'none, the JUnit results decide every test'}")
    backend = get_backend(opts.sandbox)
    started = time.monotonic()
    repo, spec, env_ref = environment(row, opts, backend, log)
    report.seconds["env"] = round(time.monotonic() - started, 3)
    sandbox = backend.instance_sandbox(
        repo,
        row.base_commit,
        env_ref,
        row.instance_id,
        opts.store / "work",
        network=opts.network,
        reuse=opts.reuse_containers,
        ahead=ahead,
    )
    try:
        try:
            applied = _apply(sandbox, row, patch, spec, opts, report, log)
        except PatchRefused as exc:  # as a patch that does not apply, with the reason
            applied = None
            log.append(f"patch refused: {exc}")
        report.patch_successfully_applied = applied is not None
        if applied is None:
            return
        files, spec, first = applied
        (folder / "eval.sh").write_text(_eval_script(row, sandbox, spec, files, opts.network))
        run, output = _test(row, sandbox, spec, files, first, opts, report, folder, log)
    finally:
        sandbox.close()  # a reused container is emptied for the next instance while this one is graded
    _grade(row, patch, run, output, files, spec, parser, backend.name, opts, report, log)


def _apply(
    sandbox: Sandbox, row: TaskInstance, patch: str, spec: EnvSpec, opts: EvalOptions, report: InstanceReport, log
) -> tuple[list[str], EnvSpec, Callable[[], SuiteRun] | None] | None:
    """Apply the patch, put the test machinery back, apply the test_patch, and run the tests in the same sandbox
    command where the runner is known: the test files to run, spec with its runner known, and the run if it was made;
    None if the patch does not apply. Its reaches into the test machinery go to report.tampering."""
    changes = apply_model_patch(sandbox, patch, log)
    if changes is None:
        return None
    # Tests, their configuration and what Python or pytest loads of itself are graded as the dataset has them,
    # whatever the patch did to them, wherever: found in the tree, not in the patch's text.
    test_paths = paths_in_patch(row.test_patch)
    candidates = [f for f in test_paths if f.endswith(".py") and posixpath.basename(f) != "conftest.py"]
    reaches = patch_reaches(patch)
    # An environment built before the runner was recorded: read from its venv, in the same sandbox command, and the
    # tests run by a command of their own.
    runner = {} if spec.runner_plugins is not None else {"runner": runner_facts_command()}
    tests = None if runner else test_step(sandbox, spec, candidates, opts.timeout)
    steps, ran = prepare_run(
        sandbox,
        restore_plan(changes, test_paths),
        row.test_patch,
        {"files": files_test(candidates), **runner, **base_reach_checks(reaches)},
        log,
        then=tests,
    )
    if steps["test_patch"].exit_code != 0:
        raise PatchError(steps["test_patch"].output.strip())
    report.tampering = reach_tampering(reaches, steps)
    files = [f for f in candidates if f in steps["files"].output.splitlines()]
    if not files:  # as SWE-bench runs them: every Python file the test_patch leaves (whatever its name), but conftests
        raise NothingToRun("the test_patch leaves no Python file to run")
    first = functools.partial(step_run, tests, ran, files) if tests else None
    return files, runner_read(spec, steps["runner"]) if runner else spec, first


def _test(
    row: TaskInstance,
    sandbox: Sandbox,
    spec: EnvSpec,
    files: list[str],
    first: Callable[[], SuiteRun] | None,
    opts: EvalOptions,
    report: InstanceReport,
    folder: Path,
    log: list[str],
) -> tuple[SuiteRun | None, str]:
    """The tests' run (None if it gave no results) and its output, kept in the folder."""
    try:
        functions = names_functions_alone(row.FAIL_TO_PASS + row.PASS_TO_PASS)
        run = run_tests(sandbox, spec, files, opts.timeout, functions, first)
        output, seconds = run.result.output, run.result.seconds
    except RunFailed as exc:
        run, output, seconds = None, f"{exc.reason}\n{exc.detail}", exc.seconds
        log.append(exc.reason)
    # The test commands' own seconds (counted in the sandbox for a run made in the harness's steps' command).
    report.seconds["tests"] = round(seconds, 3)
    (folder / "test_output.txt").write_text(output)
    return run, output


def _grade(
    row: TaskInstance,
    patch: str,
    run: SuiteRun | None,
    output: str,
    files: list[str],
    spec: EnvSpec,
    parser: str | None,
    backend: str,
    opts: EvalOptions,
    report: InstanceReport,
    log: list[str],
) -> None:
    statuses = run.statuses if run else {}
    gold = functools.cache(lambda: _gold_run(row, spec, backend, opts, log))
    decided = grade(
        report,
        statuses,
        row.FAIL_TO_PASS,
        row.PASS_TO_PASS,
        files,
        Results(parser, parse_log(parser, output)) if parser else None,
        xfail_rule(row, parser, patch == row.patch, gold),
    )
    if run and patch == row.patch:
        write_atomic(
            _gold_folder(row, spec, backend, opts) / GOLD_RECORD,
            gold_evidence(report, decided, run.failures).model_dump_json(indent=2),
        )
    if run:
        report.tampering += disagreements(report, statuses, parse_pytest_log(output), spec.runner_summary)
    if report.tampering:
        log.extend(f"tampering: {reason}" for reason in report.tampering)
        report.resolved = False
        return
    if run and not opts.network:  # online, a network failure is not the sandbox's doing
        check_online(report, run.failures, gold)
    if run and not consistent(statuses, run.result.exit_code):
        log.append(f"exit code {run.result.exit_code} disagrees with the parsed results: not resolved")
        report.resolved = False


class NothingToRun(Exception):
    """The row's test_patch leaves no Python file to run: a defect of the row, not of the patch."""


# What ends an instance's evaluation as an error of the harness or the environment, apart from the model's failures.
INFRASTRUCTURE_ERRORS = (GitError, SandboxError, BuildFailed, PatchError, NeedsNetwork, NothingToRun, UnknownLogParser)


def _gold_folder(row: TaskInstance, spec: EnvSpec, backend: str, opts: EvalOptions) -> Path:
    """Where the gold patch's own run of `row` (as it is) in this environment and sandbox is kept."""
    key = json.dumps([backend, opts.network, spec.fingerprint, row.model_dump(mode="json")], sort_keys=True)
    return opts.store / "gold-runs" / backend / hashlib.sha256(key.encode()).hexdigest()[:32]


def _gold_run(row: TaskInstance, spec: EnvSpec, backend: str, opts: EvalOptions, log: list[str]) -> GoldRun | None:
    """What the gold patch's own run of `row` here did to its required tests: kept, else run once now."""
    folder = _gold_folder(row, spec, backend, opts)
    if not (folder / GOLD_RECORD).exists():
        log.append(f"running the gold patch, whose run here judges this one's XFAIL and network failures: {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        gold_log = []
        try:
            _run(row, row.patch, opts, InstanceReport(), folder, gold_log)
        except INFRASTRUCTURE_ERRORS as exc:  # a NeedsNetwork of the gold patch comes after its record is kept
            gold_log.append(f"{ERROR_MARK}{type(exc).__name__}: {exc}")
        (folder / "run_instance.log").write_text("\n".join(gold_log) + "\n")
    if not (folder / GOLD_RECORD).exists():
        log.append("the gold patch's run gave no results: this patch's XFAIL and network failures count as failures")
        return None
    return GoldRun.model_validate_json((folder / GOLD_RECORD).read_text())


def _eval_script(row: TaskInstance, sandbox: Sandbox, spec: EnvSpec, files: list[str], network: bool) -> str:
    """What the harness ran, as a script a person can rerun in the sandbox (after the patch's changes to the test
    machinery are put back: see run_instance.log)."""
    network_note = "on (repoforge eval --network)" if network else "off (every route leads to the loopback device)"
    return "\n".join(
        [
            "#!/bin/bash",
            "set -uo pipefail",
            f"# network: {network_note}",
            "cd /testbed",
            f"git checkout {row.base_commit} -- {' '.join(map(shlex.quote, paths_in_patch(row.test_patch)))}",
            "git apply -v - <<'EOF_TEST_PATCH'",
            row.test_patch.rstrip("\n"),
            "EOF_TEST_PATCH",
            test_run_command(sandbox, spec, files),
            "",
        ]
    )


def _done(opts: EvalOptions, prediction: Prediction, row: TaskInstance) -> bool:
    return (instance_log_dir(opts, prediction, row.instance_id) / "report.json").exists()


def _environment_key(row: TaskInstance) -> tuple[str, str]:
    # Rows carrying our env share it by fingerprint; the others are planned at their setup commits.
    return row.repo, row.env.fingerprint if row.env else row.environment_setup_commit or row.base_commit


def _one_per_environment(rows: list[TaskInstance]) -> list[TaskInstance]:
    return list({_environment_key(r): r for r in rows}.values())


def _slowest_environments_first(rows: list[TaskInstance]) -> list[TaskInstance]:
    """The instances of one environment one after another (a worker reuses its container for them), environments
    with the most tests first (the slowest, as a rule), so that no straggler ends the run alone."""
    size = lambda row: len(row.FAIL_TO_PASS) + len(row.PASS_TO_PASS)
    groups: dict[tuple, list[TaskInstance]] = {}
    for row in sorted(rows, key=size, reverse=True):
        groups.setdefault(_environment_key(row), []).append(row)
    return [row for group in sorted(groups.values(), key=lambda g: sum(map(size, g)), reverse=True) for row in group]


def _environments_ahead(todo: list[TaskInstance], workers: int, opts: EvalOptions) -> dict[str, str]:
    """instance id -> the built environment of the instance `workers` places later: the one its worker will most
    likely run next, since each worker takes the next waiting instance when it is done. Rows without an environment
    of their own are planned only when they run: none is named for them."""
    refs = {}
    for row, later in zip(todo, todo[workers:], strict=False):
        folder = env_folder(opts.store, opts.sandbox, later.env.fingerprint) if later.env else None
        if folder and (folder / "spec.json").exists() and (folder / "ref").exists():
            refs[row.instance_id] = (folder / "ref").read_text()
    return refs


def _env_built(row: TaskInstance, store: Path, backend: str) -> bool:
    """Whether the row's own environment is already in the store (rows without one must be planned)."""
    return row.env is not None and (env_folder(store, backend, row.env.fingerprint) / "spec.json").exists()


def _prepare(row: TaskInstance, opts: EvalOptions) -> None:
    """Build (or find) a row's environment; a failure is recorded when its instances meet it again."""
    try:
        environment(row, opts, get_backend(opts.sandbox), [])
    except (GitError, SandboxError, BuildFailed):
        pass


def run_report(
    rows: list[TaskInstance], predictions: dict[str, Prediction], opts: EvalOptions, skipped: dict[str, str]
) -> dict:
    """SWE-bench's run report (schema_version 2), read back from the log folders as SWE-bench reads them."""
    ids = [r.instance_id for r in rows] + list(skipped)
    empty = {i for i in ids if i in predictions and not (predictions[i].model_patch or "").strip()}
    completed, resolved, errors, reasons = set(), set(), set(), {}
    for instance_id in ids:
        if instance_id not in predictions or instance_id in empty:
            continue
        folder = instance_log_dir(opts, predictions[instance_id], instance_id)
        if (folder / "report.json").exists():
            completed.add(instance_id)
            if json.loads((folder / "report.json").read_text())[instance_id]["resolved"]:
                resolved.add(instance_id)
        else:
            errors.add(instance_id)
            reasons[instance_id] = skipped.get(instance_id) or _error_reason(folder)
    return {
        "total_instances": len(ids),
        "submitted_instances": len(predictions),
        "completed_instances": len(completed),
        "resolved_instances": len(resolved),
        "unresolved_instances": len(completed - resolved),
        "infra_failure_instances": len(errors),  # every error here is the harness's or the environment's
        "ambiguous_failure_instances": 0,
        "empty_patch_instances": len(empty),
        "error_instances": len(errors),
        "completed_ids": sorted(completed),
        "incomplete_ids": sorted(i for i in ids if i not in predictions),
        "empty_patch_ids": sorted(empty),
        "submitted_ids": sorted(predictions),
        "resolved_ids": sorted(resolved),
        "unresolved_ids": sorted(completed - resolved),
        "infra_failure_ids": sorted(errors),
        "ambiguous_failure_ids": [],
        "failure_reasons": dict(sorted(reasons.items())),
        "error_ids": sorted(errors),
        "schema_version": 2,
    }


def _error_reason(folder: Path) -> str:
    log = folder / "run_instance.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return next((line[len(ERROR_MARK) :] for line in reversed(lines) if line.startswith(ERROR_MARK)), "not evaluated")


def evaluate(
    rows: list[TaskInstance],
    predictions: dict[str, Prediction],
    opts: EvalOptions,
    workers: int,
    skipped: dict[str, str] | None = None,
    instance_ids: set[str] | None = None,
) -> tuple[dict, Path]:
    """Evaluate every row that has a prediction (of `instance_ids` only, if given); return the run report and where
    it was written. The report covers every instance of the run evaluated so far, so a rerun of the run id with
    other instance ids adds to it."""
    skipped = skipped or {}
    chosen = {i: p for i, p in predictions.items() if instance_ids is None or i in instance_ids}
    todo = [row for row in rows if row.instance_id in chosen and not _done(opts, chosen[row.instance_id], row)]
    # Each environment is built once, ahead of the instances that need it; then the instances with the
    # most tests (the slowest, as a rule) go first, so that no straggler ends the run alone.
    backend = get_backend(opts.sandbox).name
    opts = opts.model_copy(update={"sandbox": backend})  # "auto" is decided here, once, not on each node
    to_build = [r for r in _one_per_environment(todo) if not _env_built(r, opts.store, backend)]
    run_all(to_build, lambda row: _prepare(row, opts), workers, "environments", opts.ray_address, backend)
    todo = _slowest_environments_first(todo)
    ahead = _environments_ahead(todo, workers, opts) if opts.reuse_containers else {}
    # Each task carries its own row, prediction and next environment: the run's (MBs) would go with every task.
    jobs = [Job(row, chosen[row.instance_id], ahead.get(row.instance_id)) for row in todo]
    run_all(
        jobs,
        lambda job: evaluate_one(job.row, job.prediction, opts, job.ahead),
        workers,
        f"eval {opts.run_id}",
        opts.ray_address,
        backend,
    )
    evaluated = {i: p for i, p in predictions.items() if i in chosen or instance_log_dir(opts, p, i).exists()}
    return write_run_report(rows, evaluated, opts, skipped)


def write_run_report(
    rows: list[TaskInstance], predictions: dict[str, Prediction], opts: EvalOptions, skipped: dict[str, str]
) -> tuple[dict, Path]:
    """The run report of `predictions` (of one model), where SWE-bench writes it: <report_dir>/<model>.<run_id>.json."""
    report = run_report(rows, predictions, opts, skipped)
    model = model_folder(next(iter(predictions.values())).model_name_or_path) if predictions else "none"
    path = opts.report_dir / f"{model}.{opts.run_id}.json"
    write_atomic(path, json.dumps(report, indent=2))
    return report, path
