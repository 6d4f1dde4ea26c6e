"""`repoforge pipeline CONFIG`: the whole loop, from repositories to a trained policy, one stage after another.

    forge -> describe -> label -> filter -> agent -> eval -> sft-data -> sft -> rl

Each stage is the command of its name, run on what the stages before it wrote, and writes under OUT/<stage>/. A stage
that finished records OUT/<stage>/done.json (its summary and seconds) and a rerun skips it; a stage interrupted
resumes through its command's own resumability. OUT/pipeline.json says, for every stage the last run reached, done,
skipped or failed, with the seconds and the summary or the reason; a failure stops the run, and the next run
continues from the stage that failed.
"""

from __future__ import annotations

import json
import time
import tomllib
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)
from rich.console import Console
from rich.markup import escape

from repoforge.forge import ForgeOptions, default_store, forge, write_atomic
from repoforge.llm import ModelConfig
from repoforge.schema import TaskInstance

console = Console(soft_wrap=True)

STAGES = ("forge", "describe", "label", "filter", "agent", "eval", "sft-data", "sft", "rl")
ROW_STAGES = ("forge", "describe", "label", "filter")  # each writes OUT/<stage>/instances.jsonl for the next
Stage = Literal["forge", "describe", "label", "filter", "agent", "eval", "sft-data", "sft", "rl"]


# --- the model the stages share ------------------------------------------------------------------------------------


def served_folder(model: str | None, store: Path) -> Path:
    """A local model folder: the one named, else the embedded model (converted into the store on first use)."""
    from repoforge.llm.embedded import model_folder

    return Path(model).resolve() if model else model_folder(store)


@contextmanager
def served_model(
    engine: str, model: str | None, base_url: str | None, store: Path, **settings
) -> Iterator[ModelConfig]:
    """The endpoint at base_url; without one, the local model (the embedded one by default) served on loopback while
    the context lasts, or run in-process (engine local)."""
    from repoforge.llm.serve import Server

    folder = served_folder(model, store) if base_url is None else None
    server = Server(folder, log=store / "serve.log") if folder and engine == "openai" else None
    with server or nullcontext():
        yield ModelConfig(
            engine=engine,
            model=server.model if server else str(folder or model or ""),
            base_url=server.base_url if server else base_url,
            **settings,
        )


# --- the config ----------------------------------------------------------------------------------------------------


def _beside_config(path: Path, info: ValidationInfo) -> Path:
    return ((info.context or {}).get("base", Path.cwd()) / path.expanduser()).resolve()


ConfigPath = Annotated[Path, AfterValidator(_beside_config)]  # a relative path is the config file's folder's


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(Section):
    """The model describe, label and agent ask: by default the embedded one, served on loopback once for the run."""

    engine: Literal["openai", "local"] = "openai"
    base_url: str | None = None  # an OpenAI-compatible endpoint; None: `model` is served on loopback
    model: str | None = None  # the endpoint's model name, or a local model folder [default: the embedded SmolLM2]
    api_key_env: str = "OPENAI_API_KEY"
    max_retries: int = 3
    price_input: float = 0.0  # US dollars per million tokens
    price_output: float = 0.0

    @field_validator("model")
    @classmethod
    def _folder_beside_config(cls, model: str | None, info: ValidationInfo) -> str | None:
        served = model and info.data.get("base_url") is None  # then a folder, named as the config file sees it
        return str(_beside_config(Path(model), info)) if served else model


class ForgeSection(Section):
    max_candidates: int | None = None
    max_commits: int | None = None
    until: str | None = None
    workers: int = Field(2, ge=1)


class DescribeSection(Section):
    attempts: int = Field(3, ge=1)
    max_tokens: int = Field(512, ge=1)
    temperature: float = 0.7
    context_tokens: int = 8192
    prompts: ConfigPath | None = None
    github: bool = True
    github_api: str = "https://api.github.com"
    workers: int = Field(2, ge=1)


class LabelSection(Section):
    samples: int = Field(3, ge=1)
    attempts: int = Field(3, ge=1)
    max_tokens: int = Field(256, ge=1)
    temperature: float = 0.7
    context_tokens: int = 8192
    concurrency: int = Field(4, ge=1)
    prompts: ConfigPath | None = None
    workers: int = Field(2, ge=1)


class FilterSection(Section):
    max_clarity: int | None = None
    max_test_validity: int | None = None
    max_difficulty: int | None = None
    max_difficulty_estimate: int | None = None
    keep_controversial: bool = False


class AgentSection(Section):
    samples: int = Field(1, ge=1)
    config: ConfigPath | None = None  # a file like agent/config.yaml, merged over it
    max_turns: int | None = None
    command_seconds: float | None = None
    total_seconds: float | None = None
    context_tokens: int | None = None
    observation_chars: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    tool_mode: Literal["auto", "text"] | None = None
    workers: int = Field(2, ge=1)


class EvalSection(Section):
    gold: bool = True  # also grade the gold patches of what forge made: the instances' own check
    workers: int = Field(2, ge=1)


class PipelineConfig(Section):
    sources: list[str] = Field(min_length=1)  # local repositories, bundles or git URLs, as `repoforge forge` takes
    out: ConfigPath
    store: ConfigPath = Field(default_factory=default_store)
    repo_mirror: ConfigPath | None = None
    sandbox: Literal["auto", "process", "docker"] = "auto"
    timeout: float = 600  # seconds one test run may take, in forge's validation and in every grading
    ray_address: str | None = None
    stages: list[Stage] = list(STAGES)
    model: ModelSection = ModelSection()
    forge: ForgeSection = ForgeSection()
    describe: DescribeSection = DescribeSection()
    label: LabelSection = LabelSection()
    filter: FilterSection = FilterSection()
    agent: AgentSection = AgentSection()
    eval: EvalSection = EvalSection()
    sft: dict[str, Any] = {}  # SFTOptions' fields (checked by load_config); `model`: the model trained
    rl: dict[str, Any] = {}  # RLOptions' fields (checked by load_config)

    @field_validator("sources")
    @classmethod
    def _paths_beside_config(cls, sources: list[str], info: ValidationInfo) -> list[str]:
        from repoforge.git.repo import is_url

        return [source if is_url(source) else str(_beside_config(Path(source), info)) for source in sources]

    def folder(self, stage: str) -> Path:
        return self.out / stage

    def rows_of(self, stage: str) -> Path:
        """The rows a stage works on: those of the last row stage before it that runs (forge's if none does)."""
        before = [s for s in ROW_STAGES[1:] if STAGES.index(s) < STAGES.index(stage) and s in self.stages]
        return self.folder(before[-1] if before else "forge") / "instances.jsonl"

    def base_model(self) -> Path:
        """The model sft trains, and rl when sft did not: sft.model, else the local model the stages before asked
        (the embedded one by default)."""
        local = self.model.model if self.model.base_url is None else None
        return self.sft.get("model") or served_folder(local, self.store)

    def eval_options(self, run_id: str, folder: Path):
        from repoforge.harness.evaluate import EvalOptions

        return EvalOptions(
            run_id=run_id,
            store=self.store,
            log_dir=folder / "logs" / "run_evaluation",
            report_dir=folder,
            repo_mirror=self.repo_mirror,
            sources_file=self.folder("forge") / "sources.json",
            sandbox=self.sandbox,
            timeout=self.timeout,
            ray_address=self.ray_address,
        )

    def agent_config(self):
        from repoforge.agent.config import load_config as load_agent_config

        section = self.agent
        limits = section.model_dump(include={"command_seconds", "total_seconds", "context_tokens", "observation_chars"})
        sampling = {"max_tokens": section.max_tokens, "temperature": section.temperature}
        return load_agent_config(
            section.config, tool_mode=section.tool_mode, sampling=sampling, turns=section.max_turns, **limits
        )


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and every problem, on one line."""


def load_config(path: Path) -> PipelineConfig:
    """The config in a YAML (.yaml, .yml) or TOML (.toml) file; unknown keys are refused."""
    values = _parse(path)
    context = {"base": path.resolve().parent}
    try:
        config = PipelineConfig.model_validate(values, context=context)
        if config.sft or config.rl:  # checked only when given: the trainers' modules import torch
            trainers = _trainer_sections().model_validate({"sft": config.sft, "rl": config.rl}, context=context)
            config.sft, config.rl = (getattr(trainers, name).model_dump(exclude_unset=True) for name in ("sft", "rl"))
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_problems(exc)}") from None
    return config


def _parse(path: Path) -> dict:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            values = yaml.safe_load(text)
        elif path.suffix == ".toml":
            values = tomllib.loads(text)
        else:
            raise ConfigError(f"{path}: not a .yaml, .yml or .toml file")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML: {getattr(exc, 'problem', None) or exc}{where}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: holds no mapping of settings")
    return values


def _trainer_sections() -> type[BaseModel]:
    """The sft and rl sections: the trainers' own option fields (one source of their names, types and defaults), but
    those the pipeline sets."""
    from repoforge.train.rl import RLOptions
    from repoforge.train.sft import SFTOptions

    sft = _section(SFTOptions, {"data", "out", "model"}, model=(ConfigPath | None, None))
    rl = _section(RLOptions, {"out", "model", "agent", "eval", "ray_address"})
    return create_model("Trainers", __base__=Section, sft=(sft, {}), rl=(rl, {}))


def _section(options: type[BaseModel], omitted: set[str], **fields) -> type[BaseModel]:
    own = {name: (field.annotation, field) for name, field in options.model_fields.items() if name not in omitted}
    return create_model(f"{options.__name__}Section", __base__=Section, **own, **fields)


def _problems(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "the config"
        problems.append(f"{where}: {'unknown key' if error['type'] == 'extra_forbidden' else error['msg']}")
    return "; ".join(problems)


# --- running the stages --------------------------------------------------------------------------------------------


class StageFailed(RuntimeError):
    """The stage cannot do its job; the message says why, and what to do."""


class StageSkipped(RuntimeError):
    """The stage has nothing to do; the message says why."""


class StageRecord(BaseModel):
    status: Literal["done", "skipped", "failed"]
    seconds: float = 0.0
    summary: dict | None = None
    reason: str | None = None


class SharedModel:
    """The model describe, label and agent ask: served on first need, once for all of them, and stopped before
    training, whose model then has the cores and the memory."""

    def __init__(self, config: PipelineConfig):
        self.section, self.store = config.model, config.store
        self.stack = ExitStack()
        self.served: ModelConfig | None = None

    def config(self, **settings) -> ModelConfig:
        if self.served is None:
            section = self.section
            settings_of_run = section.model_dump(exclude={"engine", "model", "base_url"})
            self.served = self.stack.enter_context(
                served_model(section.engine, section.model, section.base_url, self.store, **settings_of_run)
            )
        return self.served.model_copy(update=settings)

    def close(self) -> None:
        self.stack.close()
        self.served = None


def read_rows(path: Path, stage: str) -> list[TaskInstance]:
    from repoforge.harness.dataset import load_dataset

    if not path.is_file():
        raise StageFailed(f"{path} is missing: the {path.parent.name} stage has not run before {stage}")
    return load_dataset(path)[0]


def run_forge(config: PipelineConfig, model: SharedModel) -> dict:
    out = config.folder("forge")
    opts = ForgeOptions(
        out=out,
        store=config.store,
        repo_mirror=config.repo_mirror,
        sandbox=config.sandbox,
        timeout=config.timeout,
        ray_address=config.ray_address,
        **config.forge.model_dump(),
    )
    report = forge(config.sources, opts)
    if not report["sources"]:
        # Nothing was mined: forgetting the empty mining lets a rerun mine the sources it is given then.
        (out / "candidates.jsonl").unlink(missing_ok=True)
        unusable = [r["detail"] for r in report["rejections"] if r["stage"] == "source"]
        raise StageFailed(f"no usable source: {'; '.join(unusable)}")
    counts = report["counts"]
    if not counts["instances"]:
        raise StageFailed(f"no instance from {counts['candidates']} candidates: see {out / 'forge_report.json'}")
    return {key: counts[key] for key in ("commits_scanned", "candidates", "instances")}


def run_describe(config: PipelineConfig, model: SharedModel) -> dict:
    from repoforge.describe.github import GitHubConfig
    from repoforge.describe.run import DescribeOptions, describe_rows

    section = config.describe
    rows = read_rows(config.rows_of("describe"), "describe")
    opts = DescribeOptions(
        model=model.config(context_tokens=section.context_tokens),
        cache=config.store / "llm-cache",
        attempts=section.attempts,
        max_tokens=section.max_tokens,
        temperature=section.temperature,
        github=GitHubConfig(api_url=section.github_api) if section.github else None,
        **({"prompts": section.prompts} if section.prompts else {}),
    )
    out = config.folder("describe") / "instances.jsonl"
    described = [r.description for r in describe_rows(rows, opts, out, section.workers, config.ray_address)]
    # The model stopped answering before a row's attempts were used up: the endpoint failed; a rerun asks again.
    _fail_if_any([d.error for d in described if d.error and d.attempts < opts.attempts], len(rows), "no answer")
    sources = Counter(d.source or "kept" for d in described)
    return {"rows": len(rows), "by_model": sources["model"], "from_github": sources["github"], "kept": sources["kept"]}


def run_label(config: PipelineConfig, model: SharedModel) -> dict:
    from repoforge.git.locate import RepoPlaces
    from repoforge.harness.dataset import write_rows
    from repoforge.label.run import LABELS, LabelOptions, label_rows

    section = config.label
    rows = read_rows(config.rows_of("label"), "label")
    opts = LabelOptions(
        model=model.config(context_tokens=section.context_tokens, max_concurrency=section.concurrency),
        cache=config.store / "llm-cache",
        samples=section.samples,
        attempts=section.attempts,
        max_tokens=section.max_tokens,
        temperature=section.temperature,
        places=RepoPlaces(
            store=config.store, mirror=config.repo_mirror, sources_file=config.folder("forge") / "sources.json"
        ),
        **({"prompts": section.prompts} if section.prompts else {}),
    )
    labeled = label_rows(rows, opts, section.workers, config.ray_address)
    write_rows(labeled, config.folder("label") / "instances.jsonl")
    _fail_if_any([r.labels.error for r in labeled if r.labels.error], len(rows), "no labels")
    scored = sum(getattr(r.labels, name).value is not None for r in labeled for name in LABELS)
    return {"rows": len(rows), "labels_scored": scored, "labels_asked": len(rows) * len(LABELS)}


def run_filter(config: PipelineConfig, model: SharedModel) -> dict:
    from repoforge.harness.dataset import write_rows
    from repoforge.label.select import Bounds, select

    section = config.filter
    rows = read_rows(config.rows_of("filter"), "filter")
    bounds = Bounds(
        clarity=section.max_clarity,
        test_validity=section.max_test_validity,
        difficulty=section.max_difficulty,
        difficulty_estimate=section.max_difficulty_estimate,
        keep_controversial=section.keep_controversial,
    )
    kept, dropped = select(rows, bounds)
    if not kept:  # failed, not done: a rerun with looser bounds filters again
        reasons = ", ".join(f"{reason} {count}" for reason, count in dropped.most_common())
        raise StageFailed(f"kept none of {len(rows)} rows (dropped: {reasons}): loosen the filter section")
    write_rows(kept, config.folder("filter") / "instances.jsonl")
    return {"rows": len(rows), "kept": len(kept), "dropped": dict(dropped)}


def run_agent(config: PipelineConfig, model: SharedModel) -> dict:
    from repoforge.agent.run import AgentRunOptions
    from repoforge.agent.run import run_agent as roll_out

    section = config.agent
    rows = read_rows(config.rows_of("agent"), "agent")
    agent = config.agent_config()
    out = config.folder("agent")
    opts = AgentRunOptions(
        out=out,
        model=model.config(context_tokens=agent.limits.context_tokens),
        config=agent,
        eval=config.eval_options("agent", out),
        samples=section.samples,
        evaluate=False,  # the eval stage grades the predictions
    )
    summary = roll_out(rows, opts, section.workers, config.ray_address)
    if summary["rollouts"] < len(rows) * section.samples:  # lost with their workers: a rerun rolls them out
        raise StageFailed(f"{summary['rollouts']} of {len(rows) * section.samples} rollouts done")
    reasons = sum((Counter(sample["exit_reasons"]) for sample in summary["samples"].values()), Counter())
    return {"rollouts": summary["rollouts"], "exit_reasons": dict(reasons)}


def run_eval(config: PipelineConfig, model: SharedModel) -> dict:
    from repoforge.agent.run import predictions_path
    from repoforge.harness.dataset import load_predictions
    from repoforge.harness.evaluate import evaluate

    out, workers = config.folder("eval"), config.eval.workers
    summary = {}
    if config.eval.gold:
        forged = read_rows(config.folder("forge") / "instances.jsonl", "eval")
        report, _ = evaluate(forged, load_predictions("gold", forged), config.eval_options("gold", out), workers)
        summary |= {"gold_resolved": report["resolved_instances"], "gold_total": report["total_instances"]}
    rows = read_rows(config.rows_of("agent"), "eval")
    reports = []
    for sample in range(config.agent.samples):
        path = predictions_path(config.folder("agent"), sample)
        if not path.is_file():
            raise StageFailed(f"{path} is missing: the agent stage has not run before eval")
        reports.append(evaluate(rows, load_predictions(str(path), rows), config.eval_options("agent", out), workers)[0])
    summary |= {key: sum(r[f"{key}_instances"] for r in reports) for key in ("submitted", "resolved", "error")}
    return summary


def run_sft_data(config: PipelineConfig, model: SharedModel) -> dict:
    reports = sorted(config.folder("eval").glob("*.agent.json"))
    if not reports:
        raise StageFailed(f"no run report of the agent in {config.folder('eval')}: the eval stage has not run")
    from repoforge.agent.sftdata import sft_rows

    rows, found, _ = sft_rows(config.folder("agent") / "trajectories", reports)
    write_atomic(config.folder("sft-data") / "sft.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    return {"rows": len(rows), "trajectories": found}


def run_sft(config: PipelineConfig, model: SharedModel) -> dict:
    data = config.folder("sft-data") / "sft.jsonl"
    if not data.is_file():
        raise StageFailed(f"{data} is missing: the sft-data stage has not run before sft")
    if not data.read_text().strip():
        raise StageSkipped("no resolved trajectory to train on")
    from repoforge.train.sft import SFTOptions, train_sft

    model.close()
    start = config.base_model()
    settings = {name: value for name, value in config.sft.items() if name != "model"}
    return {**train_sft(SFTOptions(data=data, model=start, out=config.folder("sft"), **settings)), "start": str(start)}


def run_rl(config: PipelineConfig, model: SharedModel) -> dict:
    from repoforge.train.rl import RLOptions, train_rl

    rows = read_rows(config.rows_of("rl"), "rl")
    model.close()
    trained = _finished(config, "sft") if "sft" in config.stages else None
    start = Path(trained.summary["checkpoint"]) if trained else config.base_model()
    opts = RLOptions(
        out=config.folder("rl"),
        model=start,
        agent=config.agent_config(),
        eval=config.eval_options("rl", config.folder("rl")),
        ray_address=config.ray_address,
        **config.rl,
    )
    return {**train_rl(rows, opts), "start": str(start)}


RUNNERS: dict[str, Callable[[PipelineConfig, SharedModel], dict]] = {
    "forge": run_forge,
    "describe": run_describe,
    "label": run_label,
    "filter": run_filter,
    "agent": run_agent,
    "eval": run_eval,
    "sft-data": run_sft_data,
    "sft": run_sft,
    "rl": run_rl,
}


def _fail_if_any(errors: list[str], total: int, what: str) -> None:
    if errors:
        raise StageFailed(f"{len(errors)} of {total} rows: {what}: {' '.join(errors[0].split())}")


def _finished(config: PipelineConfig, stage: str) -> StageRecord | None:
    path = config.folder(stage) / "done.json"
    return StageRecord.model_validate_json(path.read_text()) if path.is_file() else None


def run_stage(stage: str, config: PipelineConfig, model: SharedModel) -> tuple[StageRecord, bool]:
    """(the stage's record, whether it ran now): skipped when switched off, as it was when it finished before."""
    if stage not in config.stages:
        return StageRecord(status="skipped", reason="switched off (not in the config's stages)"), False
    if finished := _finished(config, stage):
        return finished, False
    console.print(f"[dim]{stage} ...[/dim]")
    started = time.monotonic()
    try:
        summary = RUNNERS[stage](config, model)
    except StageSkipped as exc:
        return StageRecord(status="skipped", seconds=_since(started), reason=str(exc)), True
    except (Exception, KeyboardInterrupt) as exc:
        return StageRecord(status="failed", seconds=_since(started), reason=_reason(exc, stage, config)), True
    record = StageRecord(status="done", seconds=_since(started), summary=summary)
    write_atomic(config.folder(stage) / "done.json", record.model_dump_json(indent=2))
    return record, True


def _since(started: float) -> float:
    return round(time.monotonic() - started, 1)


def _reason(exc: BaseException, stage: str, config: PipelineConfig) -> str:
    """One line; what went wrong unexpectedly also leaves its traceback in OUT/<stage>/error.log."""
    if isinstance(exc, StageFailed):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    log = config.folder(stage) / "error.log"
    write_atomic(log, traceback.format_exc())
    return f"{type(exc).__name__}: {' '.join(str(exc).split())} (traceback: {log})"


def run_pipeline(config: PipelineConfig) -> dict[str, StageRecord]:
    """Run the stages in order until one fails; OUT/pipeline.json is rewritten as each ends."""
    records: dict[str, StageRecord] = {}
    model = SharedModel(config)
    if any(_finished(config, stage) is None for stage in config.stages):
        _start_ray(config)
    try:
        for number, stage in enumerate(STAGES, 1):
            record, ran = run_stage(stage, config, model)
            records[stage] = record
            report = {name: r.model_dump(mode="json", exclude_none=True) for name, r in records.items()}
            write_atomic(config.out / "pipeline.json", json.dumps(report, indent=2))
            console.print(f"[{number}/{len(STAGES)}] {_line(stage, record, ran, config)}")
            if record.status == "failed":
                break
    finally:
        model.close()
    return records


def _start_ray(config: PipelineConfig) -> None:
    """Ray, with slots for the largest stage: started by the first stage with its own count, it would hold no
    more rollout workers than forge's."""
    from repoforge.runner import start_ray

    sections = (config.forge, config.describe, config.label, config.agent, config.eval)
    start_ray(config.ray_address, max([s.workers for s in sections] + [config.rl.get("workers", 0)]))


def _line(stage: str, record: StageRecord, ran: bool, config: PipelineConfig) -> str:
    if record.status == "failed":
        return f"[red]{stage} failed: {escape(record.reason)}[/red]"
    if record.status == "skipped":
        return f"[yellow]{stage} skipped: {escape(record.reason)}[/yellow]"
    numbers = ", ".join(f"{k.replace('_', ' ')} {_number(v)}" for k, v in _flat(record.summary) if _number(v))
    state = f"done in {record.seconds:.0f} s" if ran else f"already done (in {record.seconds:.0f} s)"
    return f"[green]{stage}[/green] {state}: {escape(numbers)} -> {escape(str(config.folder(stage)))}"


def _number(value: Any) -> str:
    """A summary's value as the stage's line shows it: numbers only (paths and names are in the summary)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value) if isinstance(value, int) else ""


def _flat(summary: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in summary.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key} ")
        else:
            yield f"{prefix}{key}", value
