"""A policy that replays scripted episodes, tokenized by a real model's tokenizer: RL's machinery (workers,
sandboxes, the harness's rewards, the trainer's steps on those tokens) run and measured without the cost or the
randomness of generation. Episode k of a run replays script k mod the number of scripts."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from repoforge.llm import ChatResult, Message, ModelConfig, Sampling, ToolCall, Usage


class ReplayPolicy:
    def __init__(
        self, config: ModelConfig, scripts: list[list[dict]], tokenizer: Path | None = None, answer_seconds: float = 0
    ):
        """scripts: episodes, each a list of tool calls {"name", "arguments"}; the tokenizer of config.model unless
        another folder is given. Each answer takes answer_seconds, as one from an inference server would (a benchmark's
        stand-in for generation on hardware of its own: it waits, it does not use this machine's cores)."""
        from transformers import AutoTokenizer

        self.config, self.scripts, self.answer_seconds = config, scripts, answer_seconds
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or config.model)

    def load_weights(self, state: dict) -> None:
        """Nothing to load: the script, not the weights, decides what is said."""

    def chat(
        self, messages: list[Message], tools: list[dict] | None = None, sampling: Sampling | None = None
    ) -> ChatResult:
        started = time.monotonic()
        time.sleep(self.answer_seconds)
        script = self.scripts[(sampling.seed or 0) % len(self.scripts)]
        turn = sum(message["role"] == "assistant" for message in messages)
        call = script[min(turn, len(script) - 1)]
        arguments = json.dumps(call["arguments"])
        text = f'<tool_call>{{"name": "{call["name"]}", "arguments": {arguments}}}</tool_call>'
        prompt = self.tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, return_dict=True)
        prompt = prompt["input_ids"]
        completion = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        return ChatResult(
            tool_calls=[ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", name=call["name"], arguments=arguments)],
            usage=Usage(prompt_tokens=len(prompt), completion_tokens=len(completion)),
            finish_reason="tool_calls",
            model=self.config.model,
            seconds=time.monotonic() - started,
            token_ids=completion,
            prompt_token_ids=list(prompt),
        )
