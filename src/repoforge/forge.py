"""The forge pipeline: sources -> candidates -> environments -> validated instances.

Every stage writes files under OUT and skips what is already there, so a rerun resumes and a crash
loses at most the candidates in flight:
  OUT/sources.json          owner/name -> local repository
  OUT/candidates.jsonl      mined candidates;   OUT/mine_rejections.jsonl  commits that are not
  OUT/builds/<id>.json      the environment a candidate got, or why not
  OUT/results/<id>.json     the instance a candidate became, or why not
  OUT/instances.jsonl, OUT/forge_report.json   assembled from the above
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field
from rich.console import Console

from repoforge.env.build import BuildFailed, plan_and_build
from repoforge.git.locate import keep_clone
from repoforge.git.repo import GitError, checkout, open_source
from repoforge.mine import mine
from repoforge.runner import run_items
from repoforge.sandbox import SandboxError, get_backend
from repoforge.sandbox.base import Backend
from repoforge.schema import AbsolutePath, BuildAttempt, Candidate, EnvSpec, Rejection, TaskInstance
from repoforge.validate import validate

console = Console(stderr=True, soft_wrap=True)


def default_store() -> Path:
    return Path(os.environ.get("REPOFORGE_HOME", "~/.cache/repoforge")).expanduser().resolve()


class ForgeOptions(BaseModel):
    out: AbsolutePath
    store: AbsolutePath = Field(default_factory=default_store)
    repo_mirror: AbsolutePath | None = None
    max_candidates: int | None = None
    max_commits: int | None = None
    until: str | None = None  # mine only commits made up to this date
    workers: int = 2
    pre_runs: int = 2
    post_runs: int = 3
    timeout: float = 600
    sandbox: str = "auto"  # auto | process | docker
    ray_address: str | None = None  # a Ray cluster; a local Ray when None


class BuildRecord(BaseModel):
    instance_id: str
    env: EnvSpec | None = None
    env_ref: str | None = None  # the backend's handle: a venv path, an image
    reused: bool = False
    rejection: Rejection | None = None
    attempts: list[BuildAttempt] = Field(default_factory=list)
    seconds: float = 0.0


class ResultRecord(BaseModel):
    instance_id: str
    instance: TaskInstance | None = None
    rejection: Rejection | None = None
    flaky: list[str] = Field(default_factory=list)
    seconds: float = 0.0


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _jsonl(models: list[BaseModel]) -> str:
    return "".join(m.model_dump_json() + "\n" for m in models)


# --- mine -------------------------------------------------------------------------------------


def mine_sources(sources: list[str], opts: ForgeOptions) -> list[Candidate]:
    """Mine every source into OUT; reuse OUT/candidates.jsonl when it exists (resume)."""
    candidates_file = opts.out / "candidates.jsonl"
    if candidates_file.exists():
        return load_candidates(opts.out)
    start = time.monotonic()
    repos, candidates, rejections = {}, [], []
    for source in sources:
        try:
            path, name = open_source(source, opts.store / "repos", opts.repo_mirror)
            found, rejected = mine(path, name, opts.max_commits, opts.until)
        except GitError as exc:
            console.print(f"[red]skipping source {source}: {exc}[/red]")
            rejections.append(Rejection(stage="source", reason="unusable source", detail=f"{source}: {exc}"))
            continue
        repos[name] = str(path)
        try:  # rows forged from it are then evaluated wherever they are taken
            keep_clone(path, name, opts.store)
        except GitError as exc:
            console.print(
                f"[yellow]{source}: not kept in the store ({exc}); eval finds it through "
                f"{opts.out / 'sources.json'}[/yellow]"
            )
        candidates += found[: opts.max_candidates]  # the newest of each source, so every source has its share
        rejections += rejected
    write_atomic(opts.out / "sources.json", json.dumps(repos, indent=2))
    write_atomic(opts.out / "mine_rejections.jsonl", _jsonl(rejections))
    write_atomic(opts.out / "stage_seconds.json", json.dumps({"mine": time.monotonic() - start}))
    write_atomic(candidates_file, _jsonl(candidates))
    return candidates


def load_candidates(out: Path) -> list[Candidate]:
    lines = (out / "candidates.jsonl").read_text().splitlines()
    return [Candidate.model_validate_json(line) for line in lines if line.strip()]


# --- build and validate, per candidate ----------------------------------------------------------


def _repo_path(out: Path, repo: str) -> Path:
    return Path(json.loads((out / "sources.json").read_text())[repo])


def _error_reason(exc: Exception) -> str:
    return "git error" if isinstance(exc, GitError) else "sandbox error"


def build_one(candidate: Candidate, opts: ForgeOptions, backend: Backend) -> BuildRecord:
    path = opts.out / "builds" / f"{candidate.instance_id}.json"
    if path.exists():
        return BuildRecord.model_validate_json(path.read_text())
    start = time.monotonic()
    tree = opts.store / "work" / f"build-{candidate.instance_id}-{os.getpid()}"
    record = BuildRecord(instance_id=candidate.instance_id)
    try:
        repo = _repo_path(opts.out, candidate.repo)
        checkout(repo, candidate.commit, tree)
        spec, env_ref, reused = plan_and_build(repo, candidate.commit, candidate.created_at, tree, backend, opts.store)
        record.env, record.env_ref, record.reused, record.attempts = spec, env_ref, reused, spec.attempts
    except BuildFailed as exc:
        record.attempts = exc.attempts
        detail = "\n".join(f"[{a.strategy}] {a.error}" for a in exc.attempts)
        record.rejection = Rejection(
            stage="build", reason=str(exc), detail=detail, instance_id=candidate.instance_id, commit=candidate.commit
        )
    except (GitError, SandboxError) as exc:
        record.rejection = Rejection(
            stage="build",
            reason=_error_reason(exc),
            detail=str(exc),
            instance_id=candidate.instance_id,
            commit=candidate.commit,
        )
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    record.seconds = time.monotonic() - start
    write_atomic(path, record.model_dump_json(indent=2))
    return record


def validate_one(candidate: Candidate, build: BuildRecord, opts: ForgeOptions, backend: Backend) -> ResultRecord:
    path = opts.out / "results" / f"{candidate.instance_id}.json"
    if path.exists():
        return ResultRecord.model_validate_json(path.read_text())
    start = time.monotonic()
    record = ResultRecord(instance_id=candidate.instance_id)
    if build.rejection is not None:
        record.rejection = build.rejection
    else:
        try:
            sandbox = backend.instance_sandbox(
                _repo_path(opts.out, candidate.repo),
                candidate.base_commit,
                build.env_ref,
                candidate.instance_id,
                opts.store / "work",
            )
            outcome, record.flaky = validate(candidate, sandbox, build.env, opts.pre_runs, opts.post_runs, opts.timeout)
        except (GitError, SandboxError) as exc:
            outcome = Rejection(
                stage="validate",
                reason=_error_reason(exc),
                detail=str(exc),
                instance_id=candidate.instance_id,
                commit=candidate.commit,
            )
        if isinstance(outcome, TaskInstance):
            record.instance = outcome
        else:
            record.rejection = outcome
            backend.discard_instance(candidate.instance_id)
    record.seconds = time.monotonic() - start
    write_atomic(path, record.model_dump_json(indent=2))
    return record


def forge_one(candidate: Candidate, opts: ForgeOptions, backend: Backend) -> ResultRecord:
    return validate_one(candidate, build_one(candidate, opts, backend), opts, backend)


def run_all(
    items: list, work: Callable, workers: int, label: str, ray_address: str | None = None, sandbox: str = "process"
) -> None:
    """Run `work` on every item (it has an instance_id) as Ray tasks; one failure never stops the rest.

    `work` writes its own results to files, so a crash loses at most the items in flight.
    """

    def report_failure(item, outcome) -> None:
        if isinstance(outcome, BaseException):  # a bug must not cost the other items their results
            console.print(f"[red]{item.instance_id}: internal error {type(outcome).__name__}: {outcome}[/red]")

    run_items(
        work,
        items,
        key=lambda item: item.instance_id,
        workers=workers,
        ray_address=ray_address,
        label=label,
        docker=sandbox == "docker",
        on_done=report_failure,
    )


# --- assembling ---------------------------------------------------------------------------------


def _records(out: Path, folder: str, model: type[BaseModel]) -> dict[str, BaseModel]:
    return {p.stem: model.model_validate_json(p.read_text()) for p in sorted((out / folder).glob("*.json"))}


def assemble(opts: ForgeOptions, started: float) -> dict:
    """Write instances.jsonl and forge_report.json from the per-candidate files."""
    out = opts.out
    candidates = load_candidates(out) if (out / "candidates.jsonl").exists() else []
    builds = _records(out, "builds", BuildRecord)
    results = _records(out, "results", ResultRecord)
    mine_rejections = (
        [
            Rejection.model_validate_json(line)
            for line in (out / "mine_rejections.jsonl").read_text().splitlines()
            if line.strip()
        ]
        if (out / "mine_rejections.jsonl").exists()
        else []
    )
    instances = [
        results[c.instance_id].instance
        for c in candidates
        if c.instance_id in results and results[c.instance_id].instance
    ]
    rejections = (
        mine_rejections
        + [r.rejection for r in results.values() if r.rejection]
        + [b.rejection for i, b in builds.items() if b.rejection and i not in results]
    )
    built = [b for b in builds.values() if b.env]
    stage_seconds = (
        json.loads((out / "stage_seconds.json").read_text()) if (out / "stage_seconds.json").exists() else {}
    )
    report = {
        "sources": json.loads((out / "sources.json").read_text()) if (out / "sources.json").exists() else {},
        "counts": {
            "commits_scanned": len(candidates) + len([r for r in mine_rejections if r.stage == "mine"]),
            "candidates": len(candidates),
            "built": len(builds),
            "env_ready": len(built),
            "env_fingerprints": len({b.env.fingerprint for b in built}),
            "env_reused": sum(b.reused for b in built),
            "validated": len(results),
            "instances": len(instances),
            "flaky_tests": sum(len(r.flaky) for r in results.values()),
            "rejected": _count_reasons(rejections),
        },
        "seconds": {
            "mine": round(stage_seconds.get("mine", 0.0), 2),
            "build": round(sum(b.seconds for b in builds.values()), 2),
            "validate": round(sum(r.seconds for r in results.values()), 2),
            "wall": round(time.monotonic() - started, 2),
        },
        "rejections": [r.model_dump() for r in rejections],
    }
    write_atomic(out / "instances.jsonl", _jsonl(instances))
    write_atomic(out / "forge_report.json", json.dumps(report, indent=2))
    return report


def _count_reasons(rejections: list[Rejection]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter] = {}
    for r in rejections:
        counts.setdefault(r.stage, Counter())[r.reason] += 1
    return {stage: dict(c.most_common()) for stage, c in counts.items()}


def forge(sources: list[str], opts: ForgeOptions) -> dict:
    started = time.monotonic()
    opts.out.mkdir(parents=True, exist_ok=True)
    candidates = mine_sources(sources, opts)
    console.print(f"{len(candidates)} candidates from {len(sources)} source(s)")
    backend = get_backend(opts.sandbox)  # chosen here, once; each worker process starts its own
    sandbox = backend.name
    run_all(
        candidates,
        lambda c: forge_one(c, opts, get_backend(sandbox)),
        opts.workers,
        f"forge ({sandbox})",
        opts.ray_address,
        sandbox,
    )
    return assemble(opts, started)
