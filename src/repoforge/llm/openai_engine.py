"""Any OpenAI-compatible endpoint (vLLM, SGLang, `transformers serve`, hosted APIs) through the `openai` client."""

from __future__ import annotations

import os
import threading
import time

from repoforge.llm.base import ChatResult, Message, ModelConfig, Sampling, ToolCall, Usage


class OpenAIEngine:
    def __init__(self, config: ModelConfig):
        from openai import OpenAI

        self.config = config
        # A local server wants no key, but the client insists on one.
        api_key = os.environ.get(config.api_key_env) or "none"
        self._client = OpenAI(
            base_url=config.base_url, api_key=api_key, timeout=config.timeout, max_retries=config.max_retries
        )
        self._slots = threading.BoundedSemaphore(config.max_concurrency)

    def chat(
        self, messages: list[Message], tools: list[dict] | None = None, sampling: Sampling | None = None
    ) -> ChatResult:
        sampling = sampling or Sampling()
        extra = {"tools": tools} if tools else {}
        if sampling.seed is not None:
            extra["seed"] = sampling.seed
        if sampling.logprobs:
            extra["logprobs"] = True
        started = time.monotonic()
        with self._slots:
            response = self._client.chat.completions.create(
                model=self.config.model,
                messages=messages,
                temperature=sampling.temperature,
                max_tokens=sampling.max_tokens,
                **extra,
            )
        return _result(response, time.monotonic() - started)


def _result(response, seconds: float) -> ChatResult:
    choice = response.choices[0] if response.choices else None
    message = choice.message if choice else None
    calls = [
        ToolCall(id=call.id or "", name=call.function.name, arguments=call.function.arguments or "")
        for call in (message.tool_calls or [] if message else [])
        if getattr(call, "function", None)
    ]
    usage = response.usage
    logprobs = choice.logprobs.content if choice and choice.logprobs and choice.logprobs.content else None
    return ChatResult(
        text=(message.content or "") if message else "",
        tool_calls=calls,
        usage=Usage(
            prompt_tokens=usage.prompt_tokens if usage else 0, completion_tokens=usage.completion_tokens if usage else 0
        ),
        finish_reason=(choice.finish_reason or "") if choice else "",
        model=response.model or "",
        seconds=seconds,
        logprobs=[entry.logprob for entry in logprobs] if logprobs else None,
        # vLLM's extension (return_token_ids): the ids as generated, kept where the server sends them.
        token_ids=getattr(choice, "token_ids", None) if choice else None,
        prompt_token_ids=getattr(response, "prompt_token_ids", None),
    )
