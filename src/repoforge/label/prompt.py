"""The questions asked for an instance: SPICE's rubric (prompts.yaml) with the instance's text, fitted to the
model's context."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from repoforge.git.locate import RepoPlaces, find_repository
from repoforge.git.repo import GitError, git, paths_in_patch
from repoforge.llm.base import Message
from repoforge.schema import TaskInstance

PROMPTS = Path(__file__).with_name("prompts.yaml")
CHARS_PER_TOKEN = 3  # code and diffs tokenize densely: a cautious reading of a budget in tokens
RESERVED_TOKENS = 64  # chat template and section headings


class LabelQuestion(BaseModel):
    question: str


class Prompts(BaseModel):
    version: str
    system: str
    sections: dict[str, str]
    labels: dict[str, LabelQuestion]
    retry: str


def load_prompts(path: Path = PROMPTS) -> Prompts:
    return Prompts.model_validate(yaml.safe_load(path.read_text()))


def instance_sections(row: TaskInstance, places: RepoPlaces | None) -> dict[str, str]:
    """What the model is shown of an instance, by section name."""
    return {
        "problem_statement": row.problem_statement,
        "fail_to_pass": "\n".join(row.FAIL_TO_PASS),
        "patch": row.patch,
        "test_patch": row.test_patch,
        "files": base_files(row, places),
    }


def base_files(row: TaskInstance, places: RepoPlaces | None) -> str:
    """The files the gold patch changes, at the base commit (new files have none); a note if the repository is gone."""
    if places is None:
        return ""
    try:
        repo = find_repository(row.repo, row.base_commit, places)
    except GitError as exc:
        return f"(not available: {exc})"
    shown = []
    for path in paths_in_patch(row.patch):
        try:
            shown.append(f"--- {path}\n{git(repo, 'show', f'{row.base_commit}:{path}')}")
        except GitError:
            continue  # created by the patch
    return "\n".join(shown)


def fit(sections: dict[str, str], budget_chars: int) -> dict[str, str]:
    """Cut sections so that together they fit: short ones whole, the rest sharing what is left equally."""
    fitted = {}
    left = budget_chars
    pending = sorted(sections, key=lambda name: len(sections[name]))
    for index, name in enumerate(pending):
        share = left // (len(pending) - index)
        fitted[name] = cut(sections[name], share)
        left -= len(fitted[name])
    return {name: fitted[name] for name in sections}


def cut(text: str, limit: int) -> str:
    """`text`, or its beginning and end with a note of how much was left out between them."""
    if len(text) <= limit:
        return text
    note = "\n[... {} characters left out ...]\n"
    keep = max(limit - len(note) - 8, 0)
    return text[: keep - keep // 3] + note.format(len(text) - keep) + text[len(text) - keep // 3 :]


def label_messages(
    prompts: Prompts, label: str, sections: dict[str, str], context_tokens: int, max_tokens: int
) -> list[Message]:
    question = prompts.labels[label].question
    fixed = len(prompts.system) + len(question) + sum(len(title) + 8 for title in prompts.sections.values())
    budget = (context_tokens - max_tokens - RESERVED_TOKENS) * CHARS_PER_TOKEN - fixed
    fitted = fit({name: sections.get(name, "") for name in prompts.sections}, max(budget, 0))
    body = "\n\n".join(f"## {title}\n{fitted[name] or '(none)'}" for name, title in prompts.sections.items())
    return [
        {"role": "system", "content": prompts.system},
        {"role": "user", "content": f"{body}\n\n## Question\n{question}"},
    ]
