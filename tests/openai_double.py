"""A loopback HTTP server speaking the OpenAI chat API, answering what a test tells it to: the way to feed the
real client and engine the malformed answers and failures a real model or endpoint gives now and then."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import contextmanager

from http_double import Request, json_service

from repoforge.llm import ModelConfig

# A reply: the assistant's text, its whole message (with tool_calls, say), or an HTTP status the endpoint fails with.
Reply = Callable[[dict], "str | dict | int"]


def scripted(*answers) -> Reply:
    """Replies given in order, the last one for ever after."""
    answers = list(answers)
    return lambda body: answers.pop(0) if len(answers) > 1 else answers[0]


def double_model(base_url: str) -> ModelConfig:
    """The double as a model: no retries of the client's own (tests count requests), prices that make costs exact."""
    return ModelConfig(model="double", base_url=base_url, max_retries=0, price_input=1.0, price_output=2.0)


def completion(reply: str | dict, model: str) -> dict:
    message = reply if isinstance(reply, dict) else {"role": "assistant", "content": reply}
    return {
        "id": "chatcmpl-double",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
    }


@contextmanager
def openai_double(reply: Reply):
    """Yields (base_url, requests): every chat request's body is appended to `requests` as it comes."""
    requests: list[dict] = []
    lock = threading.Lock()

    def answer(request: Request) -> tuple[int, object]:
        with lock:
            requests.append(request.body)
        text = reply(request.body)
        if isinstance(text, int):
            return text, {"error": {"message": "failing"}}
        return 200, completion(text, request.body["model"])

    with json_service(answer) as url:
        yield f"{url}/v1", requests


def call(name: str, **arguments) -> dict:
    return {"name": name, "arguments": arguments}


def replaying(script: list[dict], native: bool = True):
    """A model that answers the n-th request of a rollout with the script's n-th call (the last one ever after):
    stateless, so rollouts in parallel each get the whole script."""

    def reply(body: dict) -> dict | str | int:
        turn = sum(m["role"] == "assistant" for m in body["messages"])
        step = script[min(turn, len(script) - 1)]
        if not isinstance(step, dict):
            return step  # a status code, or text
        if not native:
            return f"Next:\n```tool\n{json.dumps(step)}\n```"
        arguments = step["arguments"] if isinstance(step["arguments"], str) else json.dumps(step["arguments"])
        tool_call = {
            "id": f"call_{turn}",
            "type": "function",
            "function": {"name": step["name"], "arguments": arguments},
        }
        return {"role": "assistant", "content": "", "tool_calls": [tool_call]}

    return reply
