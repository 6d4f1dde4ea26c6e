"""`repoforge label`: SPICE's three labels for every instance, each a Ray task, every answer cached."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from repoforge.git.locate import RepoPlaces
from repoforge.label.answer import extract_answer, parse_answer
from repoforge.label.consensus import consensus
from repoforge.label.estimate import estimate_difficulty
from repoforge.label.prompt import PROMPTS, Prompts, instance_sections, label_messages, load_prompts
from repoforge.llm import ChatModel, ModelConfig, Sampling, make_model
from repoforge.llm.cache import CachedModel
from repoforge.schema import AbsolutePath, InstanceLabels, Label, TaskInstance, Vote

LABELS = ("clarity", "test_validity", "difficulty")


class LabelOptions(BaseModel):
    model: ModelConfig
    cache: AbsolutePath  # answers kept by question: a rerun asks nothing it asked before
    prompts: AbsolutePath = PROMPTS
    samples: int = 3  # votes per label (SPICE: 3)
    attempts: int = 3  # requests per vote: the first, and retries of answers that give no 0-3 score
    temperature: float = 0.7
    max_tokens: int = 256
    places: RepoPlaces | None = None  # where repositories are found, for the changed files at the base commit


def ask_vote(model: ChatModel, messages: list[dict], prompts: Prompts, opts: LabelOptions, sample: int) -> Vote:
    """One vote: ask, and ask again (saying what was wrong) while the answer gives no 0-3 score as JSON; then
    read a score out of the answers' text, if any says one. Never raises for what the model writes."""
    vote = Vote()
    answers = []
    conversation = list(messages)
    for _ in range(opts.attempts):
        sampling = Sampling(temperature=opts.temperature, max_tokens=opts.max_tokens, seed=sample)
        result = model.chat(conversation, sampling=sampling)
        vote.attempts += 1
        vote.prompt_tokens += result.usage.prompt_tokens
        vote.completion_tokens += result.usage.completion_tokens
        if parsed := parse_answer(result.text):
            vote.score, vote.explanation = parsed
            return vote
        answers.append(result.text)
        conversation += [{"role": "assistant", "content": result.text}, {"role": "user", "content": prompts.retry}]
    for text in reversed(answers):  # the latest answer was asked most insistently
        if extracted := extract_answer(text):
            vote.score, vote.explanation = extracted
            vote.extracted = True
            return vote
    vote.explanation = answers[-1] if answers else ""
    return vote


def label_instance(row: TaskInstance, opts: LabelOptions) -> InstanceLabels:
    """The row's labels: SPICE's three (or the error that kept the model from being asked) and the estimate."""
    started = time.monotonic()
    prompts = load_prompts(opts.prompts)
    labels = InstanceLabels(
        model=opts.model.model,
        prompt_version=prompts.version,
        difficulty_estimate=estimate_difficulty(row.patch, row.FAIL_TO_PASS),
    )
    try:
        model = CachedModel(make_model(opts.model), opts.cache)
        sections = instance_sections(row, opts.places)
        questions = {
            name: label_messages(prompts, name, sections, opts.model.context_tokens, opts.max_tokens) for name in LABELS
        }
        asks = [(name, sample) for name in LABELS for sample in range(opts.samples)]
        with ThreadPoolExecutor(max_workers=opts.model.max_concurrency) as pool:
            votes = list(pool.map(lambda ask: ask_vote(model, questions[ask[0]], prompts, opts, ask[1]), asks))
    except Exception as exc:  # the endpoint cannot be reached or refuses: the row says so, the run goes on
        labels.error = f"{type(exc).__name__}: {exc}"
        labels.seconds = time.monotonic() - started
        return labels
    for name in LABELS:
        mine = [vote for (label, _), vote in zip(asks, votes, strict=True) if label == name]
        value, controversial = consensus([vote.score for vote in mine if vote.score is not None])
        setattr(labels, name, Label(value=value, controversial=controversial, votes=mine))
    labels.prompt_tokens = sum(vote.prompt_tokens for vote in votes)
    labels.completion_tokens = sum(vote.completion_tokens for vote in votes)
    labels.cost = opts.model.cost_of(labels.prompt_tokens, labels.completion_tokens)
    labels.seconds = time.monotonic() - started
    return labels


def label_rows(
    rows: list[TaskInstance], opts: LabelOptions, workers: int = 2, ray_address: str | None = None
) -> list[TaskInstance]:
    """Every row with its labels: one Ray task per instance, in the given order."""
    from repoforge.runner import run_each

    return run_each(
        lambda row: row.model_copy(update={"labels": label_instance(row, opts)}),
        rows,
        # The task itself died (a worker lost): said on the row.
        lambda row, exc: row.model_copy(
            update={"labels": InstanceLabels(model=opts.model.model, error=f"{type(exc).__name__}: {exc}")}
        ),
        key=lambda row: row.instance_id,
        workers=workers,
        ray_address=ray_address,
        label="label",
    )
