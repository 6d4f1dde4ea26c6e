"""The `repoforge` command line: parse, call one function, print."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from repoforge import forge as forging
from repoforge import store
from repoforge.sandbox import get_backend

app = typer.Typer(
    help="Turn git history into executable, validated SWE task instances.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)

Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder (reruns resume from it).")]
Store = Annotated[
    Optional[Path],
    typer.Option(help="Where environments and clones are kept [default: $REPOFORGE_HOME or ~/.cache/repoforge]."),
]
Mirror = Annotated[
    Optional[Path], typer.Option("--repo-mirror", help="Look up owner/name as DIR/owner__name before cloning.")
]
Workers = Annotated[int, typer.Option("--workers", "-w", min=1, help="Candidates processed in parallel.")]
Timeout = Annotated[float, typer.Option(help="Seconds one test run may take before it is killed.")]
RayAddress = Annotated[Optional[str], typer.Option(help="A Ray cluster (host:port); a local Ray when omitted.")]
Sandbox = Annotated[str, typer.Option("--sandbox", help="auto (docker when an engine answers) | process | docker.")]


def _options(out: Path, store: Optional[Path], **kwargs) -> forging.ForgeOptions:
    values = {k: v for k, v in kwargs.items() if v is not None}
    if store is not None:
        values["store"] = store
    return forging.ForgeOptions(out=out, **values)


def _check_sandbox(sandbox: str) -> str:
    if sandbox not in ("auto", "process", "docker"):
        raise typer.BadParameter(f"{sandbox!r}: choose auto, process or docker", param_hint="--sandbox")
    return sandbox


PIPELINE_HELP = """The whole loop, from repositories to a trained policy, as CONFIG says.

Stages, in order, each the command of its name run on what the stages before it wrote:
  forge      sources -> validated instances
  describe   issue-style problem statements
  label      SPICE's labels (clarity, test validity, difficulty)
  filter     the rows whose labels are within bounds
  agent      rollouts of the model on those rows
  eval       the agent's predictions graded (and the gold patches of what forge made)
  sft-data   the resolved trajectories
  sft        the base model trained on them (skipped when none resolved)
  rl         RL from sft's checkpoint, else from the base model

CONFIG (YAML or TOML; unknown keys refused): sources; out (relative paths are the config file's folder's); store, \
repo_mirror, sandbox, timeout, ray_address; model (engine, base_url, model, api_key_env, max_retries, price_input, \
price_output: by default the embedded model, served on loopback once for the run); one section per stage with its \
command's options (forge, describe, label, filter, agent, eval), sft (train sft's options; model: the model \
trained), rl (train rl's options); stages (those to run, by default all).

Each stage writes under OUT/<stage>/ and, once finished, OUT/<stage>/done.json: a rerun skips it. \
OUT/pipeline.json holds each stage's status (done, skipped, failed), seconds, and summary or reason; a failure \
stops the run, and the next run continues from the stage that failed."""


@app.command("pipeline", help=PIPELINE_HELP)
def pipeline_run(
    config: Annotated[Path, typer.Argument(help="A YAML or TOML file like examples/pipeline.yaml.")],
) -> None:
    from repoforge.pipeline import ConfigError, load_config, run_pipeline

    try:
        settings = load_config(config)
    except ConfigError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    records = run_pipeline(settings)
    console.print(f"stages: [bold]{settings.out / 'pipeline.json'}[/bold]")
    if any(record.status == "failed" for record in records.values()):
        raise typer.Exit(1)


@app.command()
def forge(
    sources: Annotated[list[str], typer.Argument(help="Local git repositories, bundles or git URLs.")],
    out: Out,
    max_candidates: Annotated[
        Optional[int], typer.Option(help="Keep the newest this many candidates of each source.")
    ] = None,
    max_commits: Annotated[Optional[int], typer.Option(help="Scan at most this many commits per source.")] = None,
    until: Annotated[Optional[str], typer.Option(help="Mine only commits made up to this date (YYYY-MM-DD).")] = None,
    workers: Workers = 2,
    timeout: Timeout = 600,
    store: Store = None,
    repo_mirror: Mirror = None,
    sandbox: Sandbox = "auto",
    ray_address: RayAddress = None,
) -> None:
    """Mine, build and validate: write OUT/instances.jsonl and OUT/forge_report.json."""
    opts = _options(
        out,
        store,
        repo_mirror=repo_mirror,
        max_candidates=max_candidates,
        max_commits=max_commits,
        until=until,
        workers=workers,
        timeout=timeout,
        sandbox=_check_sandbox(sandbox),
        ray_address=ray_address,
    )
    report = forging.forge(sources, opts)
    _print_report(report)
    if not report["sources"]:
        console.print("[red]no usable source: nothing was forged[/red]")
        raise typer.Exit(1)
    console.print(f"instances: [bold]{out / 'instances.jsonl'}[/bold]  report: {out / 'forge_report.json'}")


@app.command()
def mine(
    sources: Annotated[list[str], typer.Argument(help="Local git repositories, bundles or git URLs.")],
    out: Out,
    max_candidates: Annotated[
        Optional[int], typer.Option(help="Keep the newest this many candidates of each source.")
    ] = None,
    max_commits: Annotated[Optional[int], typer.Option(help="Scan at most this many commits per source.")] = None,
    until: Annotated[Optional[str], typer.Option(help="Mine only commits made up to this date (YYYY-MM-DD).")] = None,
    store: Store = None,
    repo_mirror: Mirror = None,
) -> None:
    """Only mine: write OUT/candidates.jsonl and OUT/mine_rejections.jsonl."""
    opts = _options(
        out, store, repo_mirror=repo_mirror, max_candidates=max_candidates, max_commits=max_commits, until=until
    )
    opts.out.mkdir(parents=True, exist_ok=True)
    candidates = forging.mine_sources(sources, opts)
    console.print(f"{len(candidates)} candidates in {out / 'candidates.jsonl'}")


@app.command()
def build(
    out: Out, workers: Workers = 2, store: Store = None, sandbox: Sandbox = "auto", ray_address: RayAddress = None
) -> None:
    """Only build the environments of OUT's candidates: write OUT/builds/<id>.json."""
    opts = _options(out, store, workers=workers)
    candidates = _mined(out)
    name = get_backend(_check_sandbox(sandbox)).name
    forging.run_all(
        candidates, lambda c: forging.build_one(c, opts, get_backend(name)), opts.workers, "build", ray_address, name
    )
    _print_report(forging.assemble(opts, time.monotonic()))


@app.command()
def validate(
    out: Out,
    workers: Workers = 2,
    timeout: Timeout = 600,
    store: Store = None,
    sandbox: Sandbox = "auto",
    ray_address: RayAddress = None,
) -> None:
    """Validate OUT's built candidates (building what is missing): write instances and report."""
    opts = _options(out, store, workers=workers, timeout=timeout)
    candidates = _mined(out)
    name = get_backend(_check_sandbox(sandbox)).name
    forging.run_all(
        candidates,
        lambda c: forging.forge_one(c, opts, get_backend(name)),
        opts.workers,
        "validate",
        ray_address,
        name,
    )
    _print_report(forging.assemble(opts, time.monotonic()))


@app.command("eval")
def evaluate(
    dataset: Annotated[
        str,
        typer.Option(
            help="Instances: a JSONL, JSON or parquet file, ours or SWE-bench's; or a "
            "Hugging Face dataset name, owner/name[:split] (split: test)."
        ),
    ],
    predictions: Annotated[str, typer.Option(help="A JSONL/JSON file of predictions, or gold, or empty.")],
    run_id: Annotated[str, typer.Option(help="Names the run; rerunning it resumes.")],
    instance_ids: Annotated[
        Optional[list[str]], typer.Option("--instance-ids", "-i", help="Only these instances.")
    ] = None,
    max_workers: Annotated[int, typer.Option(min=1, help="Instances evaluated in parallel.")] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds the test run of one instance may take.")] = 1800,
    log_dir: Annotated[Path, typer.Option(help="SWE-bench's log folder.")] = Path("logs/run_evaluation"),
    report_dir: Annotated[Path, typer.Option(help="Where <model>.<run_id>.json goes.")] = Path("."),
    store: Store = None,
    repo_mirror: Mirror = None,
    sandbox: Sandbox = "auto",
    ray_address: RayAddress = None,
    network: Annotated[
        bool,
        typer.Option(
            "--network", help="Let the tests reach the network (rows graded online); off, every connect goes nowhere."
        ),
    ] = False,
    reuse_containers: Annotated[
        bool,
        typer.Option(
            help="Docker: instances of one environment take turns in one container (read-only but for its emptied "
            "scratch folders), instead of a new container each."
        ),
    ] = True,
) -> None:
    """Apply predictions to instances, run their tests, grade, and report as SWE-bench does."""
    from repoforge.harness import hub
    from repoforge.harness.dataset import DatasetError, load_dataset, load_predictions, sources_beside
    from repoforge.harness.evaluate import EvalOptions
    from repoforge.harness.evaluate import evaluate as run_evaluation

    values = {"store": store} if store is not None else {}
    try:
        opts = EvalOptions(
            run_id=run_id,
            log_dir=log_dir,
            report_dir=report_dir,
            repo_mirror=repo_mirror,
            sandbox=_check_sandbox(sandbox),
            timeout=timeout,
            ray_address=ray_address,
            network=network,
            reuse_containers=reuse_containers,
            **values,
        )
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"].removeprefix("Value error, "), param_hint="--run-id") from None
    try:
        path = hub.download(dataset, opts.store / "datasets") if hub.is_hub_name(dataset) else Path(dataset)
        rows, skipped = load_dataset(path)
        opts.sources_file = sources_beside(path)
        chosen = load_predictions(predictions, rows)
    except DatasetError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    for instance_id, why in skipped.items():
        console.print(f"[yellow]skipping {escape(instance_id)}: {escape(why)}[/yellow]")
    unknown = sorted(set(instance_ids or ()) - {r.instance_id for r in rows} - set(skipped))
    if unknown:
        console.print(f"[red]--instance-ids: not in the dataset: {escape(', '.join(unknown))}[/red]")
        raise typer.Exit(2)
    report, path = run_evaluation(rows, chosen, opts, max_workers, skipped, set(instance_ids) if instance_ids else None)
    table = Table(title=f"eval {run_id}")
    table.add_column("instances")
    table.add_column("count", justify="right")
    for key in ("total", "submitted", "completed", "resolved", "unresolved", "empty_patch", "error"):
        table.add_row(key.replace("_", " "), str(report[f"{key}_instances"]))
    console.print(table)
    console.print(f"report: [bold]{path}[/bold]  logs: {opts.log_dir / run_id}")


ModelName = Annotated[
    Optional[str],
    typer.Option("--model", help="The endpoint's model name, or a local model folder [default: the embedded SmolLM2]."),
]
BaseUrl = Annotated[
    Optional[str],
    typer.Option(help="An OpenAI-compatible endpoint; omitted: the model is served on loopback for the run."),
]


def _served_folder(model: Optional[str], store: Optional[Path]) -> Path:
    from repoforge.pipeline import served_folder

    return served_folder(model, store or forging.default_store())


@app.command()
def serve(
    model: Annotated[Optional[Path], typer.Option(help="A model folder [default: the embedded SmolLM2].")] = None,
    port: Annotated[int, typer.Option(help="The port on 127.0.0.1 [default: a free one].")] = 0,
    store: Store = None,
) -> None:
    """Serve a local model on loopback, OpenAI-compatible (`transformers serve`), until interrupted."""
    from repoforge.llm.serve import Server

    server = Server(_served_folder(str(model) if model else None, store), port or None).start()
    console.print(f"base URL: {server.base_url}\nmodel: {server.model}")
    sys.stdout.flush()  # whoever started us reads the address now, not when we end
    # Ctrl-C or a kill ends us and the server; set here, as a shell ignores SIGINT in what it starts in the background.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda *_: sys.exit(0))
    try:
        server.process.wait()
    finally:
        server.stop()


Engine = Annotated[str, typer.Option(help="openai (an endpoint) | local (in this process, transformers).")]
ApiKeyEnv = Annotated[str, typer.Option(help="The variable holding the endpoint's API key.")]
MaxTokens = Annotated[int, typer.Option(min=1, help="Tokens per answer.")]
ContextTokens = Annotated[int, typer.Option(help="The model's context; the instance's text is cut to fit.")]
PriceInput = Annotated[float, typer.Option(help="US dollars per million prompt tokens.")]
PriceOutput = Annotated[float, typer.Option(help="US dollars per million completion tokens.")]
DatasetFile = Annotated[Path, typer.Option(help="Instances: a JSONL, JSON or parquet file, ours or SWE-bench's.")]
RowWorkers = Annotated[int, typer.Option("--workers", "-w", min=1, help="Instances done at once.")]


def _read_rows(dataset: Path) -> list:
    """The dataset's rows; malformed ones are named and skipped, and a file with no usable row ends the command."""
    from repoforge.harness.dataset import DatasetError, load_dataset

    try:
        rows, skipped = load_dataset(dataset)
    except DatasetError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    for instance_id, why in skipped.items():
        console.print(f"[yellow]skipping {escape(instance_id)}: {escape(why)}[/yellow]")
    return rows


def _model_config(engine: str, model: Optional[str], base_url: Optional[str], store: Path, **settings):
    """The ModelConfig a command asks, as a context: the endpoint at base_url; without one, the local model (the
    embedded one by default) served on loopback for the run, or run in-process (--engine local)."""
    from repoforge.pipeline import served_model

    if engine not in ("openai", "local"):
        raise typer.BadParameter(f"{engine!r}: choose openai or local", param_hint="--engine")
    return served_model(engine, model, base_url, store, **settings)


@app.command()
def label(
    dataset: DatasetFile,
    out: Annotated[Path, typer.Option("--out", "-o", help="The rows with their labels (JSONL).")],
    model: ModelName = None,
    base_url: BaseUrl = None,
    engine: Engine = "openai",
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY",
    samples: Annotated[int, typer.Option(min=1, help="Votes per label.")] = 3,
    attempts: Annotated[int, typer.Option(min=1, help="Requests per vote while answers give no 0-3 score.")] = 3,
    max_tokens: MaxTokens = 256,
    temperature: float = 0.7,
    context_tokens: ContextTokens = 8192,
    price_input: PriceInput = 0.0,
    price_output: PriceOutput = 0.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight per instance.")] = 4,
    prompts: Annotated[Optional[Path], typer.Option(help="Another rubric file like label/prompts.yaml.")] = None,
    workers: RowWorkers = 2,
    store: Store = None,
    repo_mirror: Mirror = None,
    ray_address: RayAddress = None,
) -> None:
    """SPICE's labels (clarity, test validity, difficulty; 0 best, 3 worst) and a no-model difficulty estimate."""
    from repoforge.forge import default_store
    from repoforge.git.locate import RepoPlaces
    from repoforge.harness.dataset import sources_beside, write_rows
    from repoforge.label.run import LabelOptions, label_rows

    store = (store or default_store()).resolve()
    rows = _read_rows(dataset)
    settings = dict(
        api_key_env=api_key_env,
        max_concurrency=concurrency,
        context_tokens=context_tokens,
        price_input=price_input,
        price_output=price_output,
    )
    with _model_config(engine, model, base_url, store, **settings) as config:
        opts = LabelOptions(
            model=config,
            cache=store / "llm-cache",
            samples=samples,
            attempts=attempts,
            max_tokens=max_tokens,
            temperature=temperature,
            places=RepoPlaces(store=store, mirror=repo_mirror, sources_file=sources_beside(dataset)),
            **({"prompts": prompts} if prompts else {}),
        )
        labeled = label_rows(rows, opts, workers, ray_address)
    write_rows(labeled, out)
    _print_labels(labeled)
    console.print(f"labeled rows: [bold]{out}[/bold]")


@app.command()
def describe(
    dataset: DatasetFile,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The rows with their new statements (JSONL); a rerun resumes it.")
    ],
    model: ModelName = None,
    base_url: BaseUrl = None,
    engine: Engine = "openai",
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY",
    attempts: Annotated[
        int, typer.Option(min=1, help="Requests per instance while answers are empty, malformed or give away the fix.")
    ] = 3,
    max_tokens: MaxTokens = 512,
    temperature: float = 0.7,
    context_tokens: ContextTokens = 8192,
    price_input: PriceInput = 0.0,
    price_output: PriceOutput = 0.0,
    prompts: Annotated[Optional[Path], typer.Option(help="Another prompt file like describe/prompts.yaml.")] = None,
    github: Annotated[
        bool,
        typer.Option(
            help="Take the text of the pull request and the issues it closes from GitHub's API where it answers "
            "(token: $GITHUB_TOKEN)."
        ),
    ] = True,
    github_api: Annotated[str, typer.Option(help="GitHub's API, or a GitHub Enterprise server's.")] = (
        "https://api.github.com"
    ),
    workers: RowWorkers = 2,
    store: Store = None,
    ray_address: RayAddress = None,
) -> None:
    """Issue-style problem statements: GitHub's issues (or pull request) where it answers, else written by the model
    from the fix, the tests and their failures, never saying the fix; the old statement moves to hints_text."""
    from repoforge.describe.github import GitHubConfig
    from repoforge.describe.run import DescribeOptions, describe_rows
    from repoforge.forge import default_store

    if out.resolve() == dataset.resolve():
        raise typer.BadParameter("the rows are appended to it as they are done: name another file", param_hint="-o")
    store = (store or default_store()).resolve()
    rows = _read_rows(dataset)
    settings = dict(
        api_key_env=api_key_env, context_tokens=context_tokens, price_input=price_input, price_output=price_output
    )
    with _model_config(engine, model, base_url, store, **settings) as config:
        opts = DescribeOptions(
            model=config,
            cache=store / "llm-cache",
            attempts=attempts,
            max_tokens=max_tokens,
            temperature=temperature,
            github=GitHubConfig(api_url=github_api) if github else None,
            **({"prompts": prompts} if prompts else {}),
        )
        described = describe_rows(rows, opts, out, workers, ray_address)
    _print_descriptions(described)
    console.print(f"described rows: [bold]{out}[/bold]")


agent_app = typer.Typer(help="Run the SWE agent on instances and collect its trajectories.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")


AgentConfigFile = Annotated[
    Optional[Path], typer.Option(help="Prompts, tools and limits: a file like agent/config.yaml, merged over it.")
]
MaxTurns = Annotated[Optional[int], typer.Option(min=1, help="Model answers per rollout.")]
CommandSeconds = Annotated[Optional[float], typer.Option(help="Seconds one shell command may take.")]
TotalSeconds = Annotated[Optional[float], typer.Option(help="Seconds one rollout may take.")]
AgentContext = Annotated[Optional[int], typer.Option(help="The model's context: prompt and answer.")]
ObservationChars = Annotated[Optional[int], typer.Option(help="Characters of a tool output shown.")]
AnswerTokens = Annotated[Optional[int], typer.Option(min=1, help="Tokens per answer.")]
ToolMode = Annotated[
    Optional[str],
    typer.Option(help="auto (tools offered natively, text read too) | text (tools described in the prompt only)."),
]
EvalTimeout = Annotated[float, typer.Option(help="Seconds the test run of one evaluation may take.")]
InstanceIds = Annotated[Optional[list[str]], typer.Option("--instance-ids", "-i", help="Only these instances.")]


def _agent_setup(dataset: Path, out: Path, store: Optional[Path], config: Optional[Path], agent: dict, **evaluation):
    """(store, agent config, EvalOptions) of an agent command; a bad config file or run id ends it."""
    from repoforge.agent.config import load_config
    from repoforge.forge import default_store
    from repoforge.harness.dataset import sources_beside
    from repoforge.harness.evaluate import EvalOptions

    store = (store or default_store()).resolve()
    try:
        sampling = {"max_tokens": agent.pop("max_tokens"), "temperature": agent.pop("temperature", None)}
        agent_config = load_config(config, tool_mode=agent.pop("tool_mode"), sampling=sampling, **agent)
        eval_opts = EvalOptions(
            store=store,
            log_dir=out / "logs" / "run_evaluation",
            report_dir=out,
            sources_file=sources_beside(dataset),
            **evaluation,
        )
    except (OSError, ValueError) as exc:  # a config file that is missing or wrong, a bad run id
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    return store, agent_config, eval_opts


def _chosen_rows(dataset: Path, instance_ids: Optional[list[str]]) -> list:
    rows = _read_rows(dataset)
    if unknown := sorted(set(instance_ids or ()) - {row.instance_id for row in rows}):
        console.print(f"[red]--instance-ids: not in the dataset: {escape(', '.join(unknown))}[/red]")
        raise typer.Exit(2)
    return rows


@agent_app.command("run")
def agent_run(
    dataset: DatasetFile,
    out: Annotated[Path, typer.Option("--out", "-o", help="Trajectories, predictions and reports; a rerun resumes.")],
    model: ModelName = None,
    base_url: BaseUrl = None,
    engine: Engine = "openai",
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY",
    instance_ids: InstanceIds = None,
    samples: Annotated[int, typer.Option(min=1, help="Rollouts per instance (each with its own seed).")] = 1,
    config: AgentConfigFile = None,
    max_turns: MaxTurns = None,
    command_seconds: CommandSeconds = None,
    total_seconds: TotalSeconds = None,
    context_tokens: AgentContext = None,
    observation_chars: ObservationChars = None,
    max_tokens: AnswerTokens = None,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature.")] = None,
    tool_mode: ToolMode = None,
    price_input: PriceInput = 0.0,
    price_output: PriceOutput = 0.0,
    evaluate: Annotated[bool, typer.Option(help="Grade each rollout's patch with the harness as it ends.")] = True,
    run_id: Annotated[str, typer.Option(help="The evaluation's run id (logs and reports).")] = "agent",
    timeout: EvalTimeout = 1800,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Rollouts at once.")] = 2,
    store: Store = None,
    repo_mirror: Mirror = None,
    sandbox: Sandbox = "auto",
    ray_address: RayAddress = None,
) -> None:
    """Roll out a model on every instance (the embedded model, served on loopback, unless --base-url or --model says
    otherwise): OUT/trajectories/<instance_id>/<k>.json, OUT/preds.jsonl for `repoforge eval` or SWE-bench's harness,
    and each rollout graded by the harness (OUT/<model>.<run_id>.json)."""
    from repoforge.agent.run import AgentRunOptions, run_agent

    agent = dict(
        turns=max_turns,
        command_seconds=command_seconds,
        total_seconds=total_seconds,
        context_tokens=context_tokens,
        observation_chars=observation_chars,
        max_tokens=max_tokens,
        temperature=temperature,
        tool_mode=tool_mode,
    )
    store, agent_config, eval_opts = _agent_setup(
        dataset,
        out,
        store,
        config,
        agent,
        run_id=run_id,
        repo_mirror=repo_mirror,
        sandbox=_check_sandbox(sandbox),
        timeout=timeout,
    )
    rows = _chosen_rows(dataset, instance_ids)
    settings = dict(
        api_key_env=api_key_env,
        context_tokens=agent_config.limits.context_tokens,
        price_input=price_input,
        price_output=price_output,
    )
    with _model_config(engine, model, base_url, store, **settings) as model_config:
        opts = AgentRunOptions(
            out=out, model=model_config, config=agent_config, eval=eval_opts, samples=samples, evaluate=evaluate
        )
        summary = run_agent(rows, opts, workers, ray_address, set(instance_ids) if instance_ids else None)
    table = Table(title="agent")
    for name in ("sample", "rollouts", "resolved", "errors", "exit reasons", "cost $"):
        table.add_column(name)
    for name, entry in summary["samples"].items():
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(entry["exit_reasons"].items()))
        resolved, errors = (str(entry.get(key, "-")) for key in ("resolved", "errors"))
        rollouts = str(sum(entry["exit_reasons"].values()))
        table.add_row(escape(name), rollouts, resolved, errors, escape(reasons), f"{entry['cost']:.4f}")
    console.print(table)
    console.print(f"trajectories: [bold]{out / 'trajectories'}[/bold]  predictions: [bold]{out / 'preds.jsonl'}[/bold]")


@app.command("sft-data")
def sft_data(
    trajectories: Annotated[Path, typer.Option(help="An agent run's trajectories folder (OUT/trajectories).")],
    report: Annotated[
        list[Path], typer.Option(help="A run report (<model>.<run_id>.json) of those rollouts; one per sample.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The SFT rows (JSONL).")],
    instances: Annotated[
        Optional[Path], typer.Option(help="Keep only these instances: rows chosen by `repoforge filter`, say.")
    ] = None,
) -> None:
    """The trajectories whose patch resolved, as TRL's SFTTrainer reads them (messages with tool calls; the model's
    turns marked training: true, the tool outputs and the task false)."""
    from repoforge.agent.sftdata import SftDataError, sft_rows

    if not trajectories.is_dir():
        console.print(f"[red]{escape(str(trajectories))} is not a folder of trajectories[/red]")
        raise typer.Exit(2)
    chosen = {row.instance_id for row in _read_rows(instances)} if instances else None
    try:
        rows, found, bad = sft_rows(trajectories, report, chosen)
    except SftDataError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    for problem in bad:
        console.print(f"[yellow]skipping {escape(problem)}[/yellow]")
    forging.write_atomic(out, "".join(json.dumps(row) + "\n" for row in rows))
    console.print(f"kept {len(rows)} of {found} trajectories in [bold]{escape(str(out))}[/bold]")


@app.command("filter")
def filter_rows(
    dataset: Annotated[Path, typer.Option(help="Labeled rows (from repoforge label).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The rows kept (JSONL).")],
    max_clarity: Annotated[Optional[int], typer.Option(help="Keep clarity at most this.")] = None,
    max_test_validity: Annotated[Optional[int], typer.Option(help="Keep test validity at most this.")] = None,
    max_difficulty: Annotated[Optional[int], typer.Option(help="Keep the model's difficulty at most this.")] = None,
    max_difficulty_estimate: Annotated[
        Optional[int], typer.Option(help="Keep the no-model difficulty estimate at most this.")
    ] = None,
    keep_controversial: Annotated[
        bool, typer.Option(help="Keep labels whose votes fall on both sides of 1/2 (SPICE drops them).")
    ] = False,
) -> None:
    """Select rows by their labels (RepoForge's SFT set: --max-clarity 1 --max-test-validity 1 --max-difficulty 1)."""
    from repoforge.harness.dataset import DatasetError, load_dataset, write_rows
    from repoforge.label.select import Bounds, select

    bounds = Bounds(
        clarity=max_clarity,
        test_validity=max_test_validity,
        difficulty=max_difficulty,
        difficulty_estimate=max_difficulty_estimate,
        keep_controversial=keep_controversial,
    )
    try:
        rows, skipped = load_dataset(dataset)
    except DatasetError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    kept, dropped = select(rows, bounds)
    write_rows(kept, out)
    console.print(f"kept {len(kept)} of {len(rows)} rows in [bold]{out}[/bold]")
    for reason, count in dropped.most_common():
        console.print(f"  dropped {count}: {escape(reason)}")
    if skipped:
        console.print(f"  dropped {len(skipped)}: malformed rows")


def _print_labels(rows: list) -> None:
    table = Table(title="label")
    table.add_column("instance")
    for name in ("clarity", "test_validity", "difficulty", "estimate", "tokens", "cost $", "error"):
        table.add_column(name.replace("_", " "))
    for row in rows:
        labels = row.labels
        values = [getattr(labels, name) for name in ("clarity", "test_validity", "difficulty")]
        table.add_row(
            escape(row.instance_id),
            *[("-" if v is None or v.value is None else f"{v.value}{'*' if v.controversial else ''}") for v in values],
            str(labels.difficulty_estimate.value if labels.difficulty_estimate else "-"),
            str(labels.prompt_tokens + labels.completion_tokens),
            f"{labels.cost:.4f}",
            escape(labels.error[:80]),
        )
    console.print(table)
    console.print("[dim]* controversial: votes on both sides of 1/2[/dim]")


def _print_descriptions(rows: list) -> None:
    table = Table(title="describe")
    for name in ("instance", "source", "attempts", "tokens", "cost $", "note"):
        table.add_column(name)
    for row in rows:
        record = row.description
        table.add_row(
            escape(row.instance_id),
            record.source or "-",
            str(record.attempts),
            str(record.prompt_tokens + record.completion_tokens),
            f"{record.cost:.4f}",
            escape((record.error or record.github_error)[:80]),
        )
    console.print(table)


train_app = typer.Typer(
    help="Train the agent's model: SFT on resolved trajectories, RL on the harness's verdicts.", no_args_is_help=True
)
app.add_typer(train_app, name="train")


@train_app.command("sft")
def train_sft(
    data: Annotated[Path, typer.Option(help="SFT rows (JSONL), as `repoforge sft-data` writes them.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Checkpoints, metrics.jsonl, summary.json and the model (OUT/final); a rerun resumes."
        ),
    ],
    model: Annotated[
        Optional[Path], typer.Option(help="The starting model folder (Hugging Face) \\[default: the embedded SmolLM2].")
    ] = None,
    epochs: Annotated[float, typer.Option(min=0, help="Passes over the rows (a fraction stops part way).")] = 1.0,
    learning_rate: Annotated[float, typer.Option("--lr", help="AdamW's peak learning rate, decayed linearly.")] = 2e-5,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per forward pass (per GPU).")] = 1,
    gradient_accumulation: Annotated[
        int, typer.Option("--grad-accum", min=1, help="Forward passes per optimizer step.")
    ] = 1,
    max_length: Annotated[int, typer.Option(min=1, help="Tokens per row; the rest of a longer row is cut.")] = 8192,
    lora: Annotated[bool, typer.Option(help="Train a LoRA adapter (merged into the saved model), not all weights.")] = (
        False
    ),
    lora_rank: Annotated[int, typer.Option(min=1, help="The LoRA adapter's rank.")] = 16,
    seed: Annotated[int, typer.Option(help="Seeds the order of the rows (and LoRA's initialisation).")] = 0,
    store: Store = None,
) -> None:
    """Supervised fine-tuning (TRL) on resolved trajectories, the loss on the model's own turns only (the messages
    marked training), whatever the chat template. On the GPU if there is one (bf16 where it has it), else the CPU.
    Writes OUT/metrics.jsonl (`repoforge plot OUT`), OUT/summary.json and OUT/final, a plain model folder
    (`repoforge serve --model OUT/final`)."""
    from repoforge.llm.embedded import EmbeddedModelError
    from repoforge.train.sft import SFTError, SFTOptions
    from repoforge.train.sft import train_sft as run_sft

    try:
        opts = SFTOptions(
            data=data,
            model=_served_folder(str(model) if model else None, store),
            out=out,
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            gradient_accumulation=gradient_accumulation,
            max_length=max_length,
            lora=lora,
            lora_rank=lora_rank,
            seed=seed,
        )
        summary = run_sft(opts)
    except (SFTError, EmbeddedModelError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    table = Table(title="sft")
    table.add_column("")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), f"{value:.4f}" if isinstance(value, float) else escape(str(value)))
    console.print(table)


@train_app.command("rl")
def train_rl(
    dataset: DatasetFile,
    out: Annotated[Path, typer.Option("--out", "-o", help="Metrics, episodes and checkpoints; a rerun resumes.")],
    model: Annotated[
        Optional[Path], typer.Option(help="The policy's starting model folder [default: the embedded SmolLM2].")
    ] = None,
    instance_ids: InstanceIds = None,
    steps: Annotated[int, typer.Option(min=1, help="Trainer steps (policy versions).")] = 10,
    group_size: Annotated[int, typer.Option(min=2, help="Episodes per instance; advantages leave one out.")] = 4,
    groups_per_step: Annotated[int, typer.Option(min=1, help="Instance groups in one step's batch.")] = 1,
    max_staleness: Annotated[
        int, typer.Option(min=0, help="An episode is trained on only if its policy is at most this many steps old.")
    ] = 1,
    sync: Annotated[
        bool, typer.Option("--sync", help="The synchronous baseline: generate a batch, then train.")
    ] = False,
    learning_rate: Annotated[float, typer.Option("--lr", help="AdamW's learning rate.")] = 1e-5,
    clip: Annotated[float, typer.Option(help="The importance ratio's clip range (1 +- clip).")] = 0.2,
    partial_credit: Annotated[
        bool, typer.Option(help="Reward the share of FAIL_TO_PASS tests that pass, not only 1 for resolved.")
    ] = False,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the episodes.")] = 1.0,
    config: AgentConfigFile = None,
    max_turns: MaxTurns = None,
    command_seconds: CommandSeconds = None,
    total_seconds: TotalSeconds = None,
    context_tokens: AgentContext = None,
    observation_chars: ObservationChars = None,
    max_tokens: AnswerTokens = None,
    tool_mode: ToolMode = None,
    timeout: EvalTimeout = 1800,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Rollout workers.")] = 2,
    store: Store = None,
    repo_mirror: Mirror = None,
    sandbox: Sandbox = "auto",
    ray_address: RayAddress = None,
) -> None:
    """RL of the agent on the dataset's instances: episodes in real sandboxes by the current policy, rewarded by the
    harness's verdict on each final diff, leave-one-out advantages, clipped policy gradient on the model's own
    tokens. Asynchronous (rollouts run ahead of the trainer, at most --max-staleness versions) unless --sync.
    Writes OUT/metrics.jsonl (`repoforge plot OUT`), OUT/rollouts.jsonl and OUT/checkpoints/step-<n>."""
    from repoforge.train.rl import RLError, RLOptions
    from repoforge.train.rl import train_rl as run_rl

    agent = dict(
        turns=max_turns,
        command_seconds=command_seconds,
        total_seconds=total_seconds,
        context_tokens=context_tokens,
        observation_chars=observation_chars,
        max_tokens=max_tokens,
        tool_mode=tool_mode,
    )
    store, agent_config, eval_opts = _agent_setup(
        dataset,
        out,
        store,
        config,
        agent,
        run_id="rl",
        repo_mirror=repo_mirror,
        sandbox=_check_sandbox(sandbox),
        timeout=timeout,
    )
    rows = [row for row in _chosen_rows(dataset, instance_ids) if not instance_ids or row.instance_id in instance_ids]
    opts = RLOptions(
        out=out,
        model=_served_folder(str(model) if model else None, store),
        agent=agent_config,
        eval=eval_opts,
        steps=steps,
        group_size=group_size,
        groups_per_step=groups_per_step,
        max_staleness=max_staleness,
        sync=sync,
        workers=workers,
        learning_rate=learning_rate,
        clip=clip,
        partial_credit=partial_credit,
        temperature=temperature,
        ray_address=ray_address,
    )
    try:
        summary = run_rl(rows, opts)
    except RLError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    console.print(
        f"{summary['steps']} steps; policy: [bold]{summary['checkpoint']}[/bold]; metrics: {summary['metrics']}"
    )


@app.command()
def plot(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN_DIR", help="Training runs' folders, each with its metrics.jsonl; several are overlaid."
        ),
    ],
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Where the PNGs go \\[default: RUN_DIR/plots, the first's].")
    ] = None,
) -> None:
    """Plot training runs (`repoforge train sft|rl`), a PNG per family of metrics present: loss, reward, trainer
    (busy and idle), throughput, staleness, tokens, against the step. Several runs are overlaid, labelled by their
    folders' names: `repoforge plot runs/sync runs/async -o plots`."""
    from repoforge.train.plot import PlotError, plot_runs

    try:
        written = plot_runs(run_dirs, out or run_dirs[0] / "plots")
    except PlotError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    for path in written:
        console.print(escape(str(path)))


store_app = typer.Typer(
    help="Docker images of environments and instances: disk usage and pruning.", no_args_is_help=True
)
app.add_typer(store_app, name="store")


@store_app.command("du")
def store_du(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """Bytes per environment and per instance: apparent (as `docker images` adds up) and unique."""
    usage = _store_call(store.disk_usage)
    if as_json:
        print(usage.model_dump_json(indent=2))
    else:
        console.print(store.format_usage(usage))


@store_app.command("prune")
def store_prune(
    dataset: Annotated[
        Optional[Path], typer.Option(help="Keep only the instance images of this instances.jsonl.")
    ] = None,
) -> None:
    """Remove crashed runs' containers, and images no kept instance needs."""
    keep = None
    if dataset is not None:
        keep = {json.loads(line)["instance_id"] for line in dataset.read_text().splitlines() if line.strip()}
    result = _store_call(lambda: store.prune(keep))
    console.print(
        f"removed {len(result.containers)} containers and {len(result.images)} images, "
        f"freed {store.human(result.freed_bytes)}"
    )


def _store_call(function):
    try:
        return function()
    except store.StoreError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


node_app = typer.Typer(
    help="Ray nodes that run forge and eval items: one per machine, slots per Docker engine.", no_args_is_help=True
)
app.add_typer(node_app, name="node")


@node_app.command("start")
def node_start(
    address: Annotated[Optional[str], typer.Option(help="The head's host:port to join; omitted: start a head.")] = None,
    port: Annotated[int, typer.Option(help="The head's port (when starting a head).")] = 6379,
    slots: Annotated[
        Optional[int], typer.Option(min=1, help="Items this node runs at once \\[default: its cores].")
    ] = None,
    ray_args: Annotated[Optional[list[str]], typer.Argument(help="More `ray start` options, after --.")] = None,
) -> None:
    """`ray start` with this node's resources: SLOTS items, and as many container items if Docker answers."""
    import os
    import sys

    from repoforge.runner import node_resources

    resources = node_resources(slots or os.cpu_count() or 1)
    joining = [f"--address={address}"] if address else ["--head", f"--port={port}", "--include-dashboard=false"]
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        *joining,
        "--resources",
        json.dumps(resources),
        *(ray_args or []),
    ]
    console.print(f"resources: {resources}")
    sys.stdout.flush()
    # Become `ray start`, so that its --block mode receives the signals meant for the node.
    os.execve(command[0], command, {**os.environ, "RAY_AUTH_MODE": "disabled"})


@node_app.command("stop")
def node_stop() -> None:
    """Stop the Ray processes of this machine."""
    import subprocess
    import sys

    raise typer.Exit(subprocess.run([str(Path(sys.executable).parent / "ray"), "stop"]).returncode)


def _mined(out: Path) -> list:
    if not (out / "candidates.jsonl").exists():
        console.print(f"[red]{out} has no candidates.jsonl: run `repoforge mine SOURCE -o {out}` first[/red]")
        raise typer.Exit(2)
    return forging.load_candidates(out)


def _print_report(report: dict) -> None:
    counts = report["counts"]
    table = Table(title="forge")
    table.add_column("stage")
    table.add_column("count", justify="right")
    for key in (
        "commits_scanned",
        "candidates",
        "env_ready",
        "env_fingerprints",
        "env_reused",
        "validated",
        "instances",
        "flaky_tests",
    ):
        table.add_row(key.replace("_", " "), str(counts[key]))
    for stage, reasons in counts["rejected"].items():
        for reason, n in reasons.items():
            table.add_row(f"[dim]rejected at {stage}: {reason}[/dim]", str(n))
    console.print(table)


if __name__ == "__main__":
    app()
