"""What a model's answer asks for: its native tool calls, or else the actions its text writes in the text format
(a ```bash block, a ```tool block or <tool_call> tags holding {"name": ..., "arguments": {...}})."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, Field

from repoforge.llm import ChatResult, ToolCall

FENCE = re.compile(r"```([\w-]*)[ \t]*\n(.*?)```", re.DOTALL)
TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
SHELLS = {"bash", "sh", "shell", "console"}


class Action(BaseModel):
    name: str
    arguments: dict = Field(default_factory=dict)
    error: str | None = None  # why the call cannot run as written (its arguments are not a JSON object, ...)
    call_id: str | None = None  # the native call's id, which its answer must carry; None in the text format


def read_actions(result: ChatResult) -> list[Action]:
    if result.tool_calls:
        return [_native(call) for call in result.tool_calls]
    return text_actions(result.text)


def _native(call: ToolCall) -> Action:
    arguments, error = _arguments(call.arguments)
    return Action(name=call.name, arguments=arguments, error=error, call_id=call.id)


def _arguments(text: str | dict) -> tuple[dict, str | None]:
    if isinstance(text, dict):
        return text, None
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        return {}, f"the arguments are not valid JSON ({exc})"
    return (value, None) if isinstance(value, dict) else ({}, "the arguments are not a JSON object")


def text_actions(text: str) -> list[Action]:
    actions = []
    for language, body in FENCE.findall(text):
        if language.lower() in SHELLS:
            actions.append(Action(name="execute_bash", arguments={"command": body.strip()}))
        elif language.lower() == "tool" or (language.lower() == "json" and _looks_like_call(body)):
            actions.append(_json_call(body))
    actions += [_json_call(body) for body in TAGGED.findall(text)]
    return actions


def _looks_like_call(body: str) -> bool:
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and "name" in value


def _json_call(body: str) -> Action:
    try:
        call = json.loads(body)
    except json.JSONDecodeError as exc:
        return Action(name="?", error=f"the tool call is not valid JSON ({exc})")
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return Action(name="?", error='a tool call is a JSON object {"name": ..., "arguments": {...}}')
    arguments, error = _arguments(call.get("arguments", {}))
    return Action(name=call["name"], arguments=arguments, error=error)
