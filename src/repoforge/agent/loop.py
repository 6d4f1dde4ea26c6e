"""The agent loop: the environment plus a model, until the rollout ends."""

from __future__ import annotations

from repoforge.agent.env import AgentEnv
from repoforge.agent.trajectory import Trajectory
from repoforge.env.build import BuildFailed
from repoforge.git.repo import GitError
from repoforge.llm import ChatModel
from repoforge.sandbox import SandboxError
from repoforge.schema import TaskInstance

SETUP_ERRORS = (GitError, SandboxError, BuildFailed, OSError)


def rollout(env: AgentEnv, model: ChatModel, row: TaskInstance, sample: int = 0) -> Trajectory:
    """One rollout of `model` on `row`; every way it can end (a failing endpoint, a sandbox that dies, an
    environment that cannot be built) is its exit_reason, never an exception."""
    sampling = env.config.sampling.model_copy(update={"seed": sample})  # samples of one prompt differ
    try:
        try:
            env.reset(row)
        except SETUP_ERRORS as exc:
            env.stop(
                "environment_error", f"{type(exc).__name__}: {exc.summary() if isinstance(exc, BuildFailed) else exc}"
            )
        while not env.done:
            try:
                output = model.chat(env.messages, tools=env.tools, sampling=sampling)
            except Exception as exc:  # whatever the engine raised once its retries were spent
                env.stop("model_error", f"{type(exc).__name__}: {exc}")
                break
            env.step(output)
        return env.trajectory(sample, model.config)
    finally:
        env.close()
