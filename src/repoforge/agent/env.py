"""The agent's environment, as a trainer drives it: reset(instance) gives the first messages, step(the model's
answer) runs what it asks in the instance's sandbox and gives the observation, whether the rollout is done and what
happened. The reward is the harness's verdict on the final diff (grade)."""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
import time
from typing import NamedTuple

from repoforge.agent.actions import Action, read_actions
from repoforge.agent.config import AgentConfig
from repoforge.agent.tools import Outcome, Tools
from repoforge.agent.trajectory import ActionRecord, StepRecord, Trajectory, Verdict, token_sequence
from repoforge.harness.evaluate import EvalOptions, environment, evaluate_one, instance_log_dir
from repoforge.llm import ChatResult, Message, ModelConfig, Usage
from repoforge.mine import is_test_path
from repoforge.sandbox import SandboxError, get_backend
from repoforge.sandbox.base import NEUTRAL_GIT, Sandbox
from repoforge.schema import Prediction, TaskInstance

CHARS_PER_TOKEN = 3  # a cautious guess of what text not yet tokenized will take
# What running and installing a project leaves in its tree; never part of a fix
LEFT_BY_TOOLS = re.compile(r"(^|/)(__pycache__|\.pytest_cache|\.mypy_cache|\.ruff_cache|\.tox|\.nox|[^/]+\.egg-info)/")


class StepResult(NamedTuple):
    observation: list[Message]
    done: bool
    info: dict


class AgentEnv:
    """One rollout at a time in one sandbox; `opts` says where environments, repositories and logs are."""

    def __init__(self, config: AgentConfig, opts: EvalOptions):
        self.config, self.opts = config, opts
        self.sandbox: Sandbox | None = None
        self.row: TaskInstance | None = None
        self.done = True

    @property
    def tools(self) -> list[dict] | None:
        """The tool schemas to offer the model natively (none in the text format)."""
        return self.config.tools if self.config.tool_mode == "auto" else None

    def reset(self, row: TaskInstance) -> list[Message]:
        """Start a rollout on `row`: its sandbox at the base commit, and the system and instance messages."""
        self.close()
        self.row, self.messages, self.steps = row, [], []
        self.turn, self.done, self.exit_reason, self.error, self.patch = 0, False, "", None, ""
        self.started, self.rollout_id, self.setup_seconds = time.monotonic(), secrets.token_hex(6), 0.0
        backend = get_backend(self.opts.sandbox)
        repo, _, env_ref = environment(row, self.opts, backend, [])
        self.sandbox = backend.instance_sandbox(
            repo, row.base_commit, env_ref, row.instance_id, self.opts.store / "work"
        )
        self.toolbox = Tools(self.sandbox, self.config)
        self.clock = time.monotonic()  # the rollout's seconds count from here: a first build is not the agent's
        self.setup_seconds = self.clock - self.started
        prompts, root = self.config.prompts, self.sandbox.root
        system = prompts.system.format(root=root, command_seconds=round(self.config.limits.command_seconds))
        if self.config.tool_mode == "text":
            system += "\n" + self.text_format()
        instance = prompts.instance.format(problem_statement=row.problem_statement, repo=row.repo, root=root)
        self.messages = [{"role": "system", "content": system}, {"role": "user", "content": instance}]
        return list(self.messages)

    def step(self, output: ChatResult) -> StepResult:
        """Run the actions of the model's answer; the rollout ends on `finish` or at a limit."""
        if self.done:
            raise RuntimeError("the rollout has ended: reset the environment first")
        begun = time.monotonic()
        self.turn += 1
        actions = read_actions(output)
        self.messages.append(_assistant_message(output))
        records: list[ActionRecord] = []
        try:
            observation, finished = self._act(actions, bool(output.tool_calls), records)
        except SandboxError as exc:
            observation, finished = [], False
            self.stop("sandbox_error", str(exc))
        self.messages += observation
        self.steps.append(
            StepRecord(
                turn=self.turn,
                model_seconds=output.seconds,
                sandbox_seconds=round(time.monotonic() - begun, 4),
                usage=output.usage,
                finish_reason=output.finish_reason,
                actions=records,
                token_ids=output.token_ids,
                logprobs=output.logprobs,
                prompt_token_ids=output.prompt_token_ids,
            )
        )
        if not self.done and (reason := "submitted" if finished else self._limit(output, observation)):
            self.stop(reason)
        return StepResult(observation, self.done, {"turn": self.turn, "exit_reason": self.exit_reason})

    def _act(self, actions: list[Action], native: bool, records: list[ActionRecord]) -> tuple[list[Message], bool]:
        if native:  # every call gets its answer, as the chat format requires; none runs after `finish`
            messages, finished = [], False
            for action in actions:
                outcome = Outcome("not run: `finish` ended the work") if finished else self._run(action, records)
                finished = finished or outcome.finished
                messages.append({"role": "tool", "tool_call_id": action.call_id, "content": outcome.text})
            return messages, finished
        if len(actions) != 1:
            prompts = self.config.prompts
            note = prompts.too_many_actions if actions else prompts.format_error
            text = note.format(count=len(actions), text_format=self.text_format())
            return [{"role": "user", "content": text}], False
        outcome = self._run(actions[0], records)
        return [{"role": "user", "content": outcome.text}], outcome.finished

    def _run(self, action: Action, records: list[ActionRecord]) -> Outcome:
        left = self.config.limits.total_seconds - (time.monotonic() - self.clock)
        outcome = self.toolbox.run(action, left)
        records.append(
            ActionRecord(tool=action.name, arguments=action.arguments, seconds=outcome.seconds, error=outcome.error)
        )
        return outcome

    def _limit(self, output: ChatResult, observation: list[Message]) -> str | None:
        limits = self.config.limits
        if self.turn >= limits.turns:
            return "turn_limit"
        if time.monotonic() - self.clock >= limits.total_seconds:
            return "time_limit"
        used = output.usage.prompt_tokens + output.usage.completion_tokens
        if not used:  # an engine that counts nothing: all the text so far, guessed
            used = (
                sum(len(str(m.get("content") or "")) for m in self.messages[: -len(observation) or None])
                // CHARS_PER_TOKEN
            )
        coming = sum(len(m["content"]) for m in observation) // CHARS_PER_TOKEN + self.config.sampling.max_tokens
        return "context_limit" if used + coming > limits.context_tokens else None

    def stop(self, reason: str, error: str | None = None) -> None:
        """End the rollout (the loop's reasons: the model failed, ...); the working tree's diff is its patch."""
        self.done, self.exit_reason, self.error = True, reason, error
        if self.sandbox is not None:
            try:
                self.patch = self.final_diff()
            except SandboxError as exc:
                self.error = self.error or f"the diff could not be read: {exc}"

    def final_diff(self) -> str:
        """The working tree against the base commit: the source the agent changed, without the test files it wrote,
        the binary files and the caches its commands left (bytecode, egg-info: a repository need not ignore them)."""
        base = shlex.quote(self.row.base_commit)
        listed = self.sandbox.exec(
            f"{NEUTRAL_GIT}git add -A 2>/dev/null; git diff --cached --numstat -z --no-renames {base}", timeout=120
        )
        entries = [entry.split("\t", 2) for entry in listed.output.split("\0") if entry.count("\t") >= 2]
        kept = [
            path
            for added, _, path in entries
            if added != "-" and not is_test_path(path) and not LEFT_BY_TOOLS.search(path)
        ]
        if listed.exit_code != 0 or not kept:
            return ""
        paths = " ".join(shlex.quote(path) for path in kept)
        diff = "git --literal-pathspecs diff --cached --no-color --no-ext-diff --no-textconv --no-renames"
        result = self.sandbox.exec(f"{NEUTRAL_GIT}{diff} {base} -- {paths} 2>/dev/null", timeout=120)
        return result.output if result.exit_code == 0 else ""

    def text_format(self) -> str:
        tools = "\n".join(
            f"- {t['function']['name']}: {t['function']['description'].strip()} "
            f"Arguments: {json.dumps(t['function']['parameters'])}"
            for t in self.config.tools
        )
        return self.config.prompts.text_format.format(tools=tools)

    def trajectory(self, sample: int, model: ModelConfig) -> Trajectory:
        usage = Usage(
            prompt_tokens=sum(s.usage.prompt_tokens for s in self.steps),
            completion_tokens=sum(s.usage.completion_tokens for s in self.steps),
        )
        token_ids, loss_mask = token_sequence(self.steps)
        name = model.short_name
        return Trajectory(
            instance_id=self.row.instance_id,
            sample=sample,
            model=name,
            messages=self.messages,
            tools=self.tools or [],
            steps=self.steps,
            exit_reason=self.exit_reason,
            error=self.error,
            prediction=Prediction(
                instance_id=self.row.instance_id, model_name_or_path=sample_name(name, sample), model_patch=self.patch
            ),
            usage=usage,
            cost=model.cost_of(usage.prompt_tokens, usage.completion_tokens),
            seconds={
                "total": round(time.monotonic() - self.started, 3),
                "setup": round(self.setup_seconds, 3),
                "model": round(sum(s.model_seconds for s in self.steps), 3),
                "sandbox": round(sum(s.sandbox_seconds for s in self.steps), 3),
            },
            token_ids=token_ids,
            loss_mask=loss_mask,
        )

    def reward(self) -> float:
        """1 if the harness resolves the rollout's patch, else 0 (logs under opts.log_dir, as `agent-<rollout id>`)."""
        name = f"agent-{self.rollout_id}"
        prediction = Prediction(instance_id=self.row.instance_id, model_name_or_path=name, model_patch=self.patch)
        return float(grade(self.row, prediction, self.opts).resolved)

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None


def sample_name(model: str, sample: int) -> str:
    """The predictions' model_name_or_path of sample k: the model's name, then `-sample<k>` after the first."""
    return model if sample == 0 else f"{model}-sample{sample}"


def grade(row: TaskInstance, prediction: Prediction, opts: EvalOptions) -> Verdict:
    """The harness's verdict on a prediction, its logs under opts.log_dir as for `repoforge eval`: graded afresh,
    whatever an earlier patch of the same name left there."""
    shutil.rmtree(instance_log_dir(opts, prediction, row.instance_id), ignore_errors=True)
    report = evaluate_one(row, prediction, opts)
    passed, required = len(report.tests_status["FAIL_TO_PASS"].success), len(row.FAIL_TO_PASS)
    share = passed / required if required and not report.error and not report.tampering else 0.0
    return Verdict(run_id=opts.run_id, resolved=report.resolved, error=report.error or None, fail_to_pass=share)


def _assistant_message(output: ChatResult) -> Message:
    message: Message = {"role": "assistant", "content": output.text}
    if output.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in output.tool_calls
        ]
    return message
