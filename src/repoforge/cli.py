"""The `repoforge` command line: parse, call one function, print."""

from __future__ import annotations

import json
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from repoforge import forge as pipeline
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


def _options(out: Path, store: Optional[Path], **kwargs) -> pipeline.ForgeOptions:
    values = {k: v for k, v in kwargs.items() if v is not None}
    if store is not None:
        values["store"] = store
    return pipeline.ForgeOptions(out=out, **values)


def _check_sandbox(sandbox: str) -> str:
    if sandbox not in ("auto", "process", "docker"):
        raise typer.BadParameter(f"{sandbox!r}: choose auto, process or docker", param_hint="--sandbox")
    return sandbox


@app.command()
def forge(
    sources: Annotated[list[str], typer.Argument(help="Local git repositories, bundles or git URLs.")],
    out: Out,
    max_candidates: Annotated[Optional[int], typer.Option(help="Stop mining after this many candidates.")] = None,
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
    report = pipeline.forge(sources, opts)
    _print_report(report)
    if not report["sources"]:
        console.print("[red]no usable source: nothing was forged[/red]")
        raise typer.Exit(1)
    console.print(f"instances: [bold]{out / 'instances.jsonl'}[/bold]  report: {out / 'forge_report.json'}")


@app.command()
def mine(
    sources: Annotated[list[str], typer.Argument(help="Local git repositories, bundles or git URLs.")],
    out: Out,
    max_candidates: Annotated[Optional[int], typer.Option(help="Keep at most this many candidates.")] = None,
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
    candidates = pipeline.mine_sources(sources, opts)
    console.print(f"{len(candidates)} candidates in {out / 'candidates.jsonl'}")


@app.command()
def build(
    out: Out, workers: Workers = 2, store: Store = None, sandbox: Sandbox = "auto", ray_address: RayAddress = None
) -> None:
    """Only build the environments of OUT's candidates: write OUT/builds/<id>.json."""
    opts = _options(out, store, workers=workers)
    candidates = _mined(out)
    name = get_backend(_check_sandbox(sandbox)).name
    pipeline.run_all(
        candidates, lambda c: pipeline.build_one(c, opts, get_backend(name)), opts.workers, "build", ray_address, name
    )
    _print_report(pipeline.assemble(opts, time.monotonic()))


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
    pipeline.run_all(
        candidates,
        lambda c: pipeline.forge_one(c, opts, get_backend(name)),
        opts.workers,
        "validate",
        ray_address,
        name,
    )
    _print_report(pipeline.assemble(opts, time.monotonic()))


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
    from repoforge.forge import default_store
    from repoforge.llm.embedded import model_folder

    return Path(model).resolve() if model else model_folder(store or default_store())


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


@contextmanager
def _model_config(engine: str, model: Optional[str], base_url: Optional[str], store: Path, **settings):
    """The ModelConfig a command asks: the endpoint at base_url; without one, the local model (the embedded one by
    default) served on loopback for the run, or run in-process (--engine local)."""
    from repoforge.llm import ModelConfig
    from repoforge.llm.serve import Server

    if engine not in ("openai", "local"):
        raise typer.BadParameter(f"{engine!r}: choose openai or local", param_hint="--engine")
    folder = _served_folder(model, store) if base_url is None else None
    server = Server(folder, log=store / "serve.log") if folder and engine == "openai" else None
    with server or nullcontext():
        yield ModelConfig(
            engine=engine,
            model=server.model if server else str(folder or model or ""),
            base_url=server.base_url if server else base_url,
            **settings,
        )


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


@agent_app.command("run")
def agent_run(
    dataset: DatasetFile,
    out: Annotated[Path, typer.Option("--out", "-o", help="Trajectories, predictions and reports; a rerun resumes.")],
    model: ModelName = None,
    base_url: BaseUrl = None,
    engine: Engine = "openai",
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY",
    instance_ids: Annotated[
        Optional[list[str]], typer.Option("--instance-ids", "-i", help="Only these instances.")
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Rollouts per instance (each with its own seed).")] = 1,
    config: Annotated[
        Optional[Path], typer.Option(help="Prompts, tools and limits: a file like agent/config.yaml, merged over it.")
    ] = None,
    max_turns: Annotated[Optional[int], typer.Option(min=1, help="Model answers per rollout.")] = None,
    command_seconds: Annotated[Optional[float], typer.Option(help="Seconds one shell command may take.")] = None,
    total_seconds: Annotated[Optional[float], typer.Option(help="Seconds one rollout may take.")] = None,
    context_tokens: Annotated[Optional[int], typer.Option(help="The model's context: prompt and answer.")] = None,
    observation_chars: Annotated[Optional[int], typer.Option(help="Characters of a tool output shown.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(min=1, help="Tokens per answer.")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature.")] = None,
    tool_mode: Annotated[
        Optional[str],
        typer.Option(help="auto (tools offered natively, text read too) | text (tools described in the prompt only)."),
    ] = None,
    price_input: PriceInput = 0.0,
    price_output: PriceOutput = 0.0,
    evaluate: Annotated[bool, typer.Option(help="Grade each rollout's patch with the harness as it ends.")] = True,
    run_id: Annotated[str, typer.Option(help="The evaluation's run id (logs and reports).")] = "agent",
    timeout: Annotated[float, typer.Option(help="Seconds the test run of one evaluation may take.")] = 1800,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Rollouts at once.")] = 2,
    store: Store = None,
    repo_mirror: Mirror = None,
    sandbox: Sandbox = "auto",
    ray_address: RayAddress = None,
) -> None:
    """Roll out a model on every instance (the embedded model, served on loopback, unless --base-url or --model says
    otherwise): OUT/trajectories/<instance_id>/<k>.json, OUT/preds.jsonl for `repoforge eval` or SWE-bench's harness,
    and each rollout graded by the harness (OUT/<model>.<run_id>.json)."""
    from repoforge.agent.config import load_config
    from repoforge.agent.run import AgentRunOptions, run_agent
    from repoforge.forge import default_store
    from repoforge.harness.dataset import sources_beside
    from repoforge.harness.evaluate import EvalOptions

    store = (store or default_store()).resolve()
    limits = dict(
        turns=max_turns,
        command_seconds=command_seconds,
        total_seconds=total_seconds,
        context_tokens=context_tokens,
        observation_chars=observation_chars,
    )
    try:
        sampling = {"max_tokens": max_tokens, "temperature": temperature}
        agent_config = load_config(config, tool_mode=tool_mode, sampling=sampling, **limits)
        eval_opts = EvalOptions(
            run_id=run_id,
            store=store,
            log_dir=out / "logs" / "run_evaluation",
            report_dir=out,
            repo_mirror=repo_mirror,
            sources_file=sources_beside(dataset),
            sandbox=_check_sandbox(sandbox),
            timeout=timeout,
        )
    except (OSError, ValueError) as exc:  # a config file that is missing or wrong, a bad run id
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    rows = _read_rows(dataset)
    if unknown := sorted(set(instance_ids or ()) - {row.instance_id for row in rows}):
        console.print(f"[red]--instance-ids: not in the dataset: {escape(', '.join(unknown))}[/red]")
        raise typer.Exit(2)
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
    from repoforge.agent.sftdata import SftDataError, kept, resolved_by, sft_row
    from repoforge.agent.sftdata import trajectories as read_trajectories

    if not trajectories.is_dir():
        console.print(f"[red]{escape(str(trajectories))} is not a folder of trajectories[/red]")
        raise typer.Exit(2)
    try:
        resolved = resolved_by(report)
    except SftDataError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    found, bad = read_trajectories(trajectories)
    for problem in bad:
        console.print(f"[yellow]skipping {escape(problem)}[/yellow]")
    chosen = {row.instance_id for row in _read_rows(instances)} if instances else None
    rows = [sft_row(t) for t in found if kept(t, resolved) and (chosen is None or t.instance_id in chosen)]
    pipeline.write_atomic(out, "".join(json.dumps(row) + "\n" for row in rows))
    console.print(f"kept {len(rows)} of {len(found)} trajectories in [bold]{escape(str(out))}[/bold]")


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
    return pipeline.load_candidates(out)


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
