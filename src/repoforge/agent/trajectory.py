"""A rollout as it is kept: the exact chat, what each step cost, how it ended, and the verdict on its patch."""

from __future__ import annotations

from pydantic import BaseModel, Field

from repoforge.llm import Message, Usage
from repoforge.schema import Prediction


class ActionRecord(BaseModel):
    tool: str
    arguments: dict
    seconds: float
    error: bool  # the call could not run as asked (bad arguments, unknown tool, a command that timed out)


class StepRecord(BaseModel):
    turn: int
    model_seconds: float
    sandbox_seconds: float  # everything the step did outside the model: tools, reading the answer
    usage: Usage
    finish_reason: str
    actions: list[ActionRecord]
    # Where the engine gives them (a local model, vLLM): the generated ids and their log-probabilities.
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    prompt_token_ids: list[int] | None = None


class Verdict(BaseModel):
    run_id: str
    resolved: bool = False
    error: str | None = None  # the harness could not grade the patch (its report.error)
    fail_to_pass: float = 0.0  # the share of FAIL_TO_PASS tests that pass (partial credit for RL)


class Trajectory(BaseModel):
    instance_id: str
    sample: int
    model: str
    messages: list[Message]
    tools: list[dict]  # as offered to the model ([] in the text format, where the prompt describes them)
    steps: list[StepRecord] = Field(default_factory=list)
    exit_reason: str = ""  # submitted | turn_limit | time_limit | context_limit | model_error | sandbox_error | ...
    error: str | None = None
    prediction: Prediction | None = None
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0  # US dollars at the model's prices
    seconds: dict[str, float] = Field(default_factory=dict)  # total, model, sandbox, setup
    # The whole conversation as one token sequence with 1 where the model generated the token: only when every
    # step's prompt extends the last one token for token (else a trainer must tokenize the messages itself).
    token_ids: list[int] | None = None
    loss_mask: list[int] | None = None
    verdict: Verdict | None = None


def token_sequence(steps: list[StepRecord]) -> tuple[list[int], list[int]] | tuple[None, None]:
    """(ids, mask) of the conversation, from the steps' prompt and generated ids; (None, None) if they do not chain."""
    ids: list[int] = []
    mask: list[int] = []
    for step in steps:
        if step.prompt_token_ids is None or step.token_ids is None or step.prompt_token_ids[: len(ids)] != ids:
            return None, None
        new = step.prompt_token_ids[len(ids) :]
        ids += new + step.token_ids
        mask += [0] * len(new) + [1] * len(step.token_ids)
    return (ids, mask) if ids else (None, None)
