"""A loopback HTTP server speaking the OpenAI chat API, answering what a test tells it to: the way to feed the
real client and engine the malformed answers and failures a real model or endpoint gives now and then."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

from http_double import Request, json_service

from repoforge.llm import ModelConfig

# A reply: the assistant's text, or an HTTP status the endpoint fails with.
Reply = Callable[[dict], "str | int"]


def scripted(*answers) -> Reply:
    """Replies given in order, the last one for ever after."""
    answers = list(answers)
    return lambda body: answers.pop(0) if len(answers) > 1 else answers[0]


def double_model(base_url: str) -> ModelConfig:
    """The double as a model: no retries of the client's own (tests count requests), prices that make costs exact."""
    return ModelConfig(model="double", base_url=base_url, max_retries=0, price_input=1.0, price_output=2.0)


def completion(text: str, model: str) -> dict:
    return {
        "id": "chatcmpl-double",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
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
