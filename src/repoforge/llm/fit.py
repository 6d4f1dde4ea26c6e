"""An instance's text fitted to a model's context: named sections under headings, cut so that the prompt, the
request closing it and the answer fit together."""

from __future__ import annotations

from repoforge.llm.base import Message

CHARS_PER_TOKEN = 3  # code and diffs tokenize densely: a cautious reading of a budget in tokens
RESERVED_TOKENS = 64  # chat template and section headings


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


def fitted_messages(
    system: str, titles: dict[str, str], sections: dict[str, str], request: str, context_tokens: int, max_tokens: int
) -> list[Message]:
    """The system message, and a user message of the sections `titles` names (in its order, under its titles),
    cut to fit, then `request` (the question, with its heading)."""
    fixed = len(system) + len(request) + sum(len(title) + 8 for title in titles.values())
    budget = (context_tokens - max_tokens - RESERVED_TOKENS) * CHARS_PER_TOKEN - fixed
    fitted = fit({name: sections.get(name, "") for name in titles}, max(budget, 0))
    body = "\n\n".join(f"## {title}\n{fitted[name] or '(none)'}" for name, title in titles.items())
    return [{"role": "system", "content": system}, {"role": "user", "content": f"{body}\n\n{request}"}]
