"""Rollout workers: Ray actors that run agent episodes with the current policy in real sandboxes and grade them.

A worker holds one engine (the policy's weights, loaded once) and takes newer weights when the trainer has stepped:
every episode it starts uses the newest weights, and says which version generated it.
"""

from __future__ import annotations

from collections.abc import Callable

import ray
from pydantic import BaseModel

from repoforge.agent.config import AgentConfig
from repoforge.agent.env import AgentEnv, grade
from repoforge.agent.loop import rollout
from repoforge.harness.evaluate import EvalOptions
from repoforge.llm import ChatModel, ModelConfig, make_model
from repoforge.schema import TaskInstance


class Turn(BaseModel):
    """One model answer: the prompt as the engine tokenized it, the ids it generated and their log-probabilities
    (None where the engine gives none: the trainer then scores them with its own weights, ratio 1)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float] | None = None


class Sample(BaseModel):
    instance_id: str
    seed: int  # also the rollout's number in the run
    group: int
    version: int  # the policy version that generated it
    reward: float
    resolved: bool
    exit_reason: str
    error: str | None = None  # why the episode or its grading failed, if it did
    turns: list[Turn]
    seconds: float

    @property
    def tokens(self) -> int:
        return sum(len(turn.completion_ids) for turn in self.turns)


EngineFactory = Callable[[ModelConfig], ChatModel]


class RolloutWorker:
    def __init__(
        self, model: ModelConfig, agent: AgentConfig, opts: EvalOptions, version: int, engine: EngineFactory | None
    ):
        import torch

        torch.set_num_threads(1)  # workers share the cores with the trainer; one thread each keeps them apart
        self.engine = (engine or make_model)(model)
        self.agent, self.opts, self.version = agent, opts, version

    def rollout(self, row: TaskInstance, seed: int, group: int, version: int, weights: list, partial: bool) -> Sample:
        """One graded episode of `row`, by the policy at `version` (its weights, [ObjectRef], loaded first if newer)."""
        if version != self.version:
            self.engine.load_weights(ray.get(weights[0]))
            self.version = version
        trajectory = rollout(AgentEnv(self.agent, self.opts), self.engine, row, seed)
        verdict = grade(row, trajectory.prediction.model_copy(update={"model_name_or_path": f"rl-{seed}"}), self.opts)
        return Sample(
            instance_id=row.instance_id,
            seed=seed,
            group=group,
            version=version,
            reward=verdict.fail_to_pass if partial else float(verdict.resolved),
            resolved=verdict.resolved,
            exit_reason=trajectory.exit_reason,
            error=trajectory.error or verdict.error,
            turns=[
                Turn(prompt_ids=step.prompt_token_ids, completion_ids=step.token_ids, logprobs=step.logprobs)
                for step in trajectory.steps
                if step.prompt_token_ids is not None and step.token_ids
            ],
            seconds=trajectory.seconds.get("total", 0.0),
        )


RemoteWorker = ray.remote(RolloutWorker)
