"""Chat models behind one protocol (base.ChatModel): an OpenAI-compatible endpoint, or a local transformers model."""

from __future__ import annotations

from repoforge.llm.base import ChatModel, ChatResult, Message, ModelConfig, Sampling, ToolCall, Usage


def make_model(config: ModelConfig) -> ChatModel:
    """The engine the config names; the model packages are imported only here, when a model is wanted."""
    if config.engine == "local":
        from repoforge.llm.local import TransformersEngine

        return TransformersEngine(config)
    from repoforge.llm.openai_engine import OpenAIEngine

    return OpenAIEngine(config)


__all__ = ["ChatModel", "ChatResult", "Message", "ModelConfig", "Sampling", "ToolCall", "Usage", "make_model"]
