"""A chat model that answers from disk what it was asked before: a rerun asks nothing twice.

The key is the question (model name, messages, tools, sampling, seed included), never the address of the
server: a rerun against the same model served on another port still finds its answers.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from repoforge.llm.base import ChatModel, ChatResult, Message, Sampling


class CachedModel:
    def __init__(self, model: ChatModel, folder: Path):
        self.config = model.config
        self.model = model
        self.folder = folder
        self.asked = 0  # requests that reached the model (not answered from the cache)

    def key(self, messages: list[Message], tools: list[dict] | None, sampling: Sampling) -> str:
        question = {"model": self.config.model, "messages": messages, "tools": tools, "sampling": sampling.model_dump()}
        return hashlib.sha256(json.dumps(question, sort_keys=True).encode()).hexdigest()

    def chat(
        self, messages: list[Message], tools: list[dict] | None = None, sampling: Sampling | None = None
    ) -> ChatResult:
        sampling = sampling or Sampling()
        path = self.folder / f"{self.key(messages, tools, sampling)}.json"
        if path.is_file():
            return ChatResult.model_validate_json(path.read_text())
        result = self.model.chat(messages, tools, sampling)
        self.asked += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        # Atomic, under a name of this writer's own: a crash or a concurrent writer leaves no half answer to read.
        with tempfile.NamedTemporaryFile("w", dir=self.folder, suffix=".part", delete=False) as partial:
            partial.write(result.model_dump_json())
        Path(partial.name).replace(path)
        return result
