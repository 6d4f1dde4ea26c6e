"""The one protocol every chat model speaks, and the data it takes and gives.

Messages are OpenAI-style dicts (`role`, `content`, and `tool_calls`/`tool_call_id` for tools), tools
are OpenAI function schemas: every engine and every server in the field reads them, so an agent's
history goes to any engine unchanged.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

Message = dict  # {"role": "system" | "user" | "assistant" | "tool", "content": str, ...}


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it: the caller decides what a malformed one means


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatResult(BaseModel):
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str = ""
    model: str = ""
    seconds: float = 0.0
    # Where the engine gives them: the generated token ids and their log-probabilities (training uses
    # these, never a re-tokenized chat), and the prompt's token ids.
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    prompt_token_ids: list[int] | None = None


class Sampling(BaseModel):
    temperature: float = 0.7
    max_tokens: int = 512
    seed: int | None = None  # also tells apart repeated samples of one prompt (and their cache entries)
    logprobs: bool = False


class ModelConfig(BaseModel):
    """Which model, through which engine, at what price."""

    engine: Literal["openai", "local"] = "openai"
    model: str = ""  # the endpoint's model name, or a local model folder
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 600.0
    max_retries: int = 3  # the openai client's, with exponential backoff on connection errors, 429 and 5xx
    max_concurrency: int = 4  # requests of one process in flight at once
    context_tokens: int = 8192
    # US dollars per million tokens, to report what a run cost (0 for a local model)
    price_input: float = 0.0
    price_output: float = 0.0

    @property
    def short_name(self) -> str:
        """The model's name in predictions and reports: a local folder's own name, else the endpoint's model name."""
        return self.model.rstrip("/").rsplit("/", 1)[-1] if self.model.startswith("/") else self.model or "model"

    def cost_of(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_input + completion_tokens * self.price_output) / 1e6


@runtime_checkable
class ChatModel(Protocol):
    config: ModelConfig

    def chat(
        self, messages: list[Message], tools: list[dict] | None = None, sampling: Sampling | None = None
    ) -> ChatResult:
        """One completion of `messages`; raises only when the engine cannot be reached or refuses the request."""
        ...
