"""The request for an instance's problem statement: prompts.yaml with the instance's text, fitted to the model's
context, and after a rejected answer, the reason it was not taken."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from repoforge.llm.base import Message
from repoforge.llm.fit import fitted_messages

PROMPTS = Path(__file__).with_name("prompts.yaml")


class DescribePrompts(BaseModel):
    version: str
    system: str
    sections: dict[str, str]
    task: str
    retry: str


def load_prompts(path: Path = PROMPTS) -> DescribePrompts:
    return DescribePrompts.model_validate(yaml.safe_load(path.read_text()))


def describe_messages(
    prompts: DescribePrompts, sections: dict[str, str], rejected: str | None, context_tokens: int, max_tokens: int
) -> list[Message]:
    """The request; `rejected` is why the previous answer was not taken, if one was not."""
    task = f"## Task\n{prompts.task}"
    if rejected:
        task += "\n" + prompts.retry.replace("{reason}", rejected)  # not format(): braces of a reason are text
    return fitted_messages(prompts.system, prompts.sections, sections, task, context_tokens, max_tokens)
