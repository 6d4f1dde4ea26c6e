"""The agent's settings: limits, sampling, prompts and tool schemas, from config.yaml (or a user's copy of it)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from repoforge.llm import Sampling

DEFAULT = Path(__file__).with_name("config.yaml")


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt limit is an error, not ignored

    turns: int = Field(gt=0)
    command_seconds: float = Field(gt=0)
    total_seconds: float = Field(gt=0)
    context_tokens: int = Field(gt=0)
    observation_chars: int = Field(gt=0)


class Prompts(BaseModel):
    system: str
    text_format: str
    instance: str
    format_error: str
    too_many_actions: str
    truncated: str
    timed_out: str


class AgentConfig(BaseModel):
    limits: Limits
    sampling: Sampling
    tool_mode: Literal["auto", "text"]
    prompts: Prompts
    tools: list[dict]

    def tool_names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.tools]


def load_config(
    path: Path | None = None, *, tool_mode: str | None = None, sampling: dict | None = None, **limits
) -> AgentConfig:
    """The bundled config, a user's file merged over it key by key, then what the command line gives (None: not
    given)."""
    values = yaml.safe_load(DEFAULT.read_text())
    if path is not None:
        try:
            override = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not YAML: {exc}") from None
        if not isinstance(override, dict):
            raise ValueError(f"{path} holds no mapping of settings")
        _merge(values, override)
    values["limits"].update({name: value for name, value in limits.items() if value is not None})
    values["sampling"].update({name: value for name, value in (sampling or {}).items() if value is not None})
    if tool_mode is not None:
        values["tool_mode"] = tool_mode
    return AgentConfig.model_validate(values)


def _merge(into: dict, override: dict) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
