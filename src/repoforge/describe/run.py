"""`repoforge describe`: an issue-style problem statement for every instance, from GitHub where it answers, else
written by the model; each instance a Ray task, every answer cached, every row written as it is done."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, ValidationError

from repoforge.describe.answer import read_statement, rejection
from repoforge.describe.github import GitHubConfig, GitHubError, github_statement
from repoforge.describe.leak import fix_lines
from repoforge.describe.prompt import PROMPTS, describe_messages, load_prompts
from repoforge.label.prompt import instance_sections
from repoforge.llm import ChatModel, ModelConfig, Sampling, make_model
from repoforge.llm.cache import CachedModel
from repoforge.schema import AbsolutePath, Description, TaskInstance


class DescribeOptions(BaseModel):
    model: ModelConfig
    cache: AbsolutePath  # answers kept by question: a rerun asks nothing it asked before
    prompts: AbsolutePath = PROMPTS
    attempts: int = 3  # requests per instance while answers are empty, malformed or give away the fix
    temperature: float = 0.7
    max_tokens: int = 512
    github: GitHubConfig | None = None  # None: the model writes every statement


def write_statement(row: TaskInstance, model: ChatModel, opts: DescribeOptions, record: Description) -> str | None:
    """The model's statement, asked again (saying why) while an answer is not one; None when no attempt gave one.
    Never raises for what the model writes; `record` counts the requests, tokens and rejections."""
    prompts = load_prompts(opts.prompts)
    record.model, record.prompt_version = opts.model.model, prompts.version
    sections = instance_sections(row, places=None)  # no repository needed: the statement is written from the diffs
    fix = fix_lines(row.patch, row.test_patch)
    why_not = None
    for attempt in range(opts.attempts):
        messages = describe_messages(prompts, sections, why_not, opts.model.context_tokens, opts.max_tokens)
        sampling = Sampling(temperature=opts.temperature, max_tokens=opts.max_tokens, seed=attempt)
        result = model.chat(messages, sampling=sampling)
        record.attempts += 1
        record.prompt_tokens += result.usage.prompt_tokens
        record.completion_tokens += result.usage.completion_tokens
        statement = read_statement(result.text)
        why_not = rejection(statement, fix)
        if why_not is None:
            return statement
        record.rejected.append(why_not)
    return None


def statement_of(row: TaskInstance, opts: DescribeOptions, record: Description) -> str | None:
    """GitHub's text where it answers, else the model's statement; None (and record.error) when neither gave one."""
    if opts.github is not None:
        try:
            statement, record.urls = github_statement(row, opts.github)
            record.source = "github"
            return statement
        except GitHubError as exc:
            record.github_error = str(exc)
    if not row.patch.strip():
        record.error = "no gold patch to write a statement from"
        return None
    try:
        statement = write_statement(row, CachedModel(make_model(opts.model), opts.cache), opts, record)
    except Exception as exc:  # the endpoint cannot be reached or refuses: the row says so, the run goes on
        record.error = f"{type(exc).__name__}: {exc}"
        return None
    finally:
        record.cost = opts.model.cost_of(record.prompt_tokens, record.completion_tokens)
    if statement is None:
        record.error = f"no answer taken (attempts: {record.attempts}): the original statement is kept"
    else:
        record.source = "model"
    return statement


def describe_instance(row: TaskInstance, opts: DescribeOptions) -> TaskInstance:
    """The row with its new problem statement, the old one moved to hints_text (and kept in `description`); or
    as it was, with `description.error` saying why."""
    started = time.monotonic()
    record = Description(original_problem_statement=row.problem_statement, original_hints_text=row.hints_text)
    statement = statement_of(row, opts, record)
    record.seconds = time.monotonic() - started
    if statement is None:
        return row.model_copy(update={"description": record})
    hints = "\n\n".join(text for text in (row.problem_statement, row.hints_text) if text.strip())
    return row.model_copy(update={"problem_statement": statement, "hints_text": hints, "description": record})


def described(row: TaskInstance) -> bool:
    return row.description is not None and bool(row.description.source)


def done_before(rows: list[TaskInstance], out: Path) -> dict[str, TaskInstance]:
    """The rows described already, by instance_id: in the dataset itself, or in `out` from an earlier run (its last
    line of an instance wins; a line cut short by a crash is passed over). Their statements are not asked again."""
    done = {row.instance_id: row for row in rows if described(row)}
    wanted = {row.instance_id for row in rows}
    for line in out.read_text().splitlines() if out.is_file() else []:
        try:
            row = TaskInstance.model_validate_json(line)
        except ValidationError:
            continue
        if row.instance_id in wanted and described(row):
            done[row.instance_id] = row
    return done


def describe_rows(
    rows: list[TaskInstance], opts: DescribeOptions, out: Path, workers: int = 2, ray_address: str | None = None
) -> list[TaskInstance]:
    """Every row, described, in the given order, written to `out`: the rows described before are kept, the others
    are one Ray task each, appended to `out` as each is described (a crash loses only the rows in flight); `out` is
    then rewritten whole, in order, atomically."""
    from repoforge.harness.dataset import write_rows
    from repoforge.runner import run_each

    done = done_before(rows, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as progress:

        def keep(row: TaskInstance, outcome) -> None:
            if isinstance(outcome, TaskInstance) and described(outcome):
                progress.write(outcome.model_dump_json() + "\n")
                progress.flush()

        fresh = run_each(
            lambda row: describe_instance(row, opts),
            [row for row in rows if row.instance_id not in done],
            # The task itself died (a worker lost): said on the row, which keeps its statement.
            lambda row, exc: row.model_copy(update={"description": Description(error=f"{type(exc).__name__}: {exc}")}),
            key=lambda row: row.instance_id,
            workers=workers,
            ray_address=ray_address,
            label="describe",
            on_done=keep,
        )
    done |= {row.instance_id: row for row in fresh}
    result = [done[row.instance_id] for row in rows]
    write_rows(result, out)
    return result
