"""The questions asked for an instance: SPICE's rubric (prompts.yaml) with the instance's text, fitted to the
model's context."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from repoforge.git.locate import RepoPlaces, find_repository
from repoforge.git.repo import GitError, git, paths_in_patch
from repoforge.llm.base import Message
from repoforge.llm.fit import fitted_messages
from repoforge.schema import TaskInstance

PROMPTS = Path(__file__).with_name("prompts.yaml")


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
        "failures": "\n\n".join(f"{test}\n{text}" for test, text in row.base_failures.items()),
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


def label_messages(
    prompts: Prompts, label: str, sections: dict[str, str], context_tokens: int, max_tokens: int
) -> list[Message]:
    question = f"## Question\n{prompts.labels[label].question}"
    return fitted_messages(prompts.system, prompts.sections, sections, question, context_tokens, max_tokens)
