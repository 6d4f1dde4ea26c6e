"""The agent's tools, run in the instance's sandbox: execute_bash, str_replace_editor and finish.

The editor reads and writes through the Sandbox protocol only (bounded reads that refuse symlinks, writes the
backend confines to the sandbox), so nothing an agent names is touched on the host.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from repoforge.agent.actions import Action
from repoforge.agent.config import AgentConfig
from repoforge.sandbox.base import Sandbox

SNIPPET_LINES = 4  # lines shown around an edit
COMMAND_OUTPUT_BYTES = 1_000_000  # kept of one command's output before the observation is cut to its limit


class ToolError(Exception):
    """A tool call that cannot be done as asked; the message goes back to the model."""


@dataclass
class Outcome:
    text: str
    seconds: float = 0.0
    finished: bool = False
    error: bool = False


class BashArgs(BaseModel, extra="forbid"):
    command: str


class EditorArgs(BaseModel, extra="forbid"):
    command: str
    path: str
    file_text: str | None = None
    old_str: str | None = None
    new_str: str | None = None
    insert_line: int | None = None
    view_range: list[int] | None = None


class FinishArgs(BaseModel, extra="forbid"):
    message: str = ""


class Tools:
    def __init__(self, sandbox: Sandbox, config: AgentConfig):
        self.sandbox, self.config = sandbox, config
        self.history: dict[str, list[str]] = {}  # path -> its contents before each edit, for undo_edit

    def run(self, action: Action, seconds_left: float) -> Outcome:
        try:
            if action.error:
                raise ToolError(action.error)
            if action.name == "execute_bash":
                return self.bash(BashArgs.model_validate(action.arguments).command, seconds_left)
            if action.name == "str_replace_editor":
                return Outcome(self.cut(self.edit(EditorArgs.model_validate(action.arguments))))
            if action.name == "finish":
                FinishArgs.model_validate(action.arguments)
                return Outcome("finished", finished=True)
            raise ToolError(f"no tool is named {action.name!r}; the tools are {', '.join(self.config.tool_names())}")
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            return Outcome(f"error: bad arguments for {action.name}: {problems}", error=True)
        except (ToolError, OSError) as exc:  # OSError: a file the sandbox will not read or write
            return Outcome(f"error: {exc}", error=True)

    def bash(self, command: str, seconds_left: float) -> Outcome:
        timeout = max(1.0, min(self.config.limits.command_seconds, seconds_left))
        result = self.sandbox.exec(command, timeout=timeout, max_output=COMMAND_OUTPUT_BYTES)
        if result.timed_out:
            note = self.config.prompts.timed_out.format(seconds=round(timeout))
            return Outcome(self.cut(f"{note}\n{result.output}"), result.seconds, error=True)
        return Outcome(self.cut(f"exit code: {result.exit_code}\n{result.output}"), result.seconds)

    def cut(self, text: str) -> str:
        """At most observation_chars: the head and the tail, with a note of what was cut between."""
        limit = self.config.limits.observation_chars
        if len(text) <= limit:
            return text
        note = self.config.prompts.truncated.format(cut=len(text) - limit, total=len(text))
        return text[: limit // 2] + note + text[len(text) - limit // 2 :]

    # --- str_replace_editor ---------------------------------------------------------------------

    def edit(self, args: EditorArgs) -> str:
        path = self.resolve(args.path)
        if args.command == "view":
            return self.view(path, args.view_range)
        if args.command == "create":
            return self.create(path, _required(args.file_text, "file_text"))
        if args.command == "str_replace":
            return self.replace(path, _required(args.old_str, "old_str"), args.new_str or "")
        if args.command == "insert":
            return self.insert(path, _required(args.insert_line, "insert_line"), _required(args.new_str, "new_str"))
        if args.command == "undo_edit":
            return self.undo(path)
        raise ToolError(f"unknown command {args.command!r}: view, create, str_replace, insert or undo_edit")

    def resolve(self, path: str) -> str:
        """The path in the repository, as the sandbox sees it; one that leads out of it is refused."""
        root = self.sandbox.root
        full = posixpath.normpath(posixpath.join(root, path))
        if full != root and not full.startswith(root.rstrip("/") + "/"):
            raise ToolError(f"{path} is outside the repository ({root})")
        return full

    def view(self, path: str, view_range: list[int] | None) -> str:
        start, end = view_range if view_range and len(view_range) == 2 else (1, -1)
        if view_range is not None and len(view_range) != 2:
            raise ToolError("view_range is [start, end]")
        quoted = shlex.quote(path)
        listing = f"find {quoted} -maxdepth 2 -not -path '*/.*' | sort"
        numbered = f"awk -v s={int(start)} -v e={int(end)} 'NR>=s && (e<0 || NR<=e) {{printf \"%6d\\t%s\\n\", NR, $0}}'"
        command = f"if [ -d {quoted} ]; then {listing}; elif [ -f {quoted} ]; then {numbered} {quoted}; else exit 3; fi"
        result = self.sandbox.exec(command, timeout=60, max_output=COMMAND_OUTPUT_BYTES)
        if result.exit_code == 3:
            raise ToolError(f"{path} does not exist")
        return result.output

    def create(self, path: str, text: str) -> str:
        if self.sandbox.exec(f"test -e {shlex.quote(path)}", timeout=60).exit_code == 0:
            raise ToolError(f"{path} exists: edit it with str_replace or insert")
        self.sandbox.write_file(path, text)
        return f"created {path}"

    def replace(self, path: str, old: str, new: str) -> str:
        text = self.sandbox.read_file(path)
        starts = [text.count("\n", 0, match.start()) + 1 for match in re.finditer(re.escape(old), text)] if old else []
        if len(starts) != 1:
            where = f" (at lines {', '.join(map(str, starts[:20]))})" if starts else ""
            raise ToolError(f"old_str occurs {len(starts)} times in {path}{where}; it must occur exactly once")
        after = text.replace(old, new)
        self.save(path, text, after)
        return self.snippet(path, after, starts[0], new.count("\n") + 1)

    def insert(self, path: str, after: int, new: str) -> str:
        text = self.sandbox.read_file(path)
        lines = text.splitlines(keepends=True)
        if not 0 <= after <= len(lines):
            raise ToolError(f"insert_line {after} is not in 0..{len(lines)}")
        added = new if new.endswith("\n") else new + "\n"
        if after and not lines[after - 1].endswith("\n"):
            added = "\n" + added
        edited = "".join(lines[:after]) + added + "".join(lines[after:])
        self.save(path, text, edited)
        return self.snippet(path, edited, after + 1, new.count("\n") + 1)

    def undo(self, path: str) -> str:
        if not self.history.get(path):
            raise ToolError(f"no edit of {path} to undo")
        self.sandbox.write_file(path, self.history[path].pop())
        return f"the last edit of {path} undone"

    def save(self, path: str, before: str, after: str) -> None:
        self.sandbox.write_file(path, after)
        self.history.setdefault(path, []).append(before)

    def snippet(self, path: str, text: str, first: int, count: int) -> str:
        """The edited lines and a few around them, numbered as `view` numbers them (from the text just written)."""
        lines = text.splitlines()
        start, end = max(1, first - SNIPPET_LINES), min(len(lines), first + count + SNIPPET_LINES - 1)
        shown = "".join(f"{n:6d}\t{lines[n - 1]}\n" for n in range(start, end + 1))
        return f"edited {path}; the lines around the edit:\n{shown}"


def _required(value, name: str):
    if value is None:
        raise ToolError(f"this command needs {name}")
    return value
