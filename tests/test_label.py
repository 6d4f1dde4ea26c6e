"""SPICE labels: answers read, retried and extracted; consensus; the cache; the no-model estimate; context fitting.

The model here is a loopback server speaking the OpenAI API (tests/openai_double.py) behind the real `openai`
client, so each malformed answer is exactly the one a test means; test_llm.py runs the same against a real model.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from openai_double import double_model, openai_double, scripted

from repoforge.label.answer import extract_answer, parse_answer
from repoforge.label.consensus import consensus
from repoforge.label.estimate import estimate_difficulty
from repoforge.label.prompt import instance_sections, label_messages, load_prompts
from repoforge.label.run import LabelOptions, ask_vote, label_instance, label_rows
from repoforge.label.select import Bounds, select
from repoforge.llm import ModelConfig, make_model
from repoforge.llm.cache import CachedModel
from repoforge.llm.fit import fit
from repoforge.schema import DifficultyEstimate, InstanceLabels, Label, TaskInstance, Vote

REPOFORGE = str(Path(sys.executable).parent / "repoforge")


@pytest.mark.parametrize(
    "votes, value, controversial",
    [
        ([1, 1, 0], 1, False),
        ([2, 2, 0], 2, True),  # the value given twice wins; 0 and 2 split the votes
        ([0, 1, 3], 1, True),  # no value twice: the median
        ([3, 3, 3], 3, False),
        ([0, 0, 1], 0, False),
        ([2, 3, 2], 2, False),
        ([0, 3], 3, True),  # even and all different: the higher middle, the cautious side for filters
        ([1, 1, 2, 2], 2, True),  # two values twice: the median settles it
        ([2], 2, False),
        ([], None, False),  # every vote failed: no label, and no crash
    ],
)
def test_consensus(votes, value, controversial):
    assert consensus(votes) == (value, controversial)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"explanation": "clear", "score": 1}', (1, "clear")),
        ('Sure!\n```json\n{"explanation": "vague", "score": "2"}\n```', (2, "vague")),
        ('{"score": 3.0, "explanation": "hard"}', (3, "hard")),
        ('{"explanation": "x", "score": 7}', None),  # out of range
        ('{"explanation": "x", "score": -1}', None),
        ('{"explanation": "x", "score": true}', None),
        ('{"explanation": "x"}', None),
        ("", None),
        ("{not json, score: 2", None),
    ],
)
def test_parse_answer(text, expected):
    assert parse_answer(text) == expected


def test_extract_answer_reads_a_named_score_in_range_only():
    assert extract_answer("I would say the Score: 2 since it is vague")[0] == 2
    assert extract_answer('{"explanation": "x", "score": 2')[0] == 2  # JSON cut off by the token limit
    assert extract_answer("score: 9, or rather score = 1")[0] == 1
    assert extract_answer("It takes 2 hours") is None  # a number not named a score is not one
    assert extract_answer("score: 5") is None


def test_difficulty_estimate_grows_with_the_change():
    one_line = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,3 +1,3 @@\n x = 1\n-y = 2\n+y = 3\n"
    small = estimate_difficulty(one_line, ["t.py::test_y"])
    assert (small.value, small.lines, small.files, small.hunks, small.tests) == (0, 2, 1, 1, 1)
    files = "".join(
        f"diff --git a/m{i}.py b/m{i}.py\n--- a/m{i}.py\n+++ b/m{i}.py\n@@ -1 +1,30 @@\n"
        + "".join(f"+line {j}\n" for j in range(30))
        + "@@ -50 +80,2 @@\n+a\n+b\n"
        for i in range(6)
    )
    big = estimate_difficulty(files, [f"t.py::test_{i}" for i in range(10)])
    assert (big.files, big.hunks, big.lines, big.tests) == (6, 12, 192, 10)
    assert big.minutes == 10 + 192 + 5 * 10 + 6 * 2 + 9 * 2 and big.value == 3  # over 4 hours


def test_fit_keeps_short_sections_whole_and_shares_the_rest():
    sections = {"a": "x" * 50, "b": "y" * 5000, "c": "z" * 5000}
    fitted = fit(sections, 2050)
    assert fitted["a"] == sections["a"]
    assert sum(map(len, fitted.values())) <= 2050
    assert abs(len(fitted["b"]) - len(fitted["c"])) < 10
    assert "characters left out" in fitted["b"] and fitted["b"].startswith("y") and fitted["b"].endswith("y")


def test_the_question_shows_the_instance_and_its_files_at_the_base_commit(instance):
    row, places = instance
    prompts = load_prompts()
    [system, user] = label_messages(prompts, "test_validity", instance_sections(row, places), 2048, 128)
    assert "JSON" in system["content"]
    text = user["content"]
    assert row.problem_statement in text and "test_greet_number" in text
    assert "six.text_type" in text  # the gold patch
    assert "--- greeter.py\ndef greet(name):\n    return 'Hello ' + name" in text  # greeter.py before the fix
    assert text.rstrip().endswith(prompts.labels["test_validity"].question.rstrip())
    assert len(system["content"]) + len(text) <= (2048 - 128) * 3


def options(base_url: str, tmp_path, **kwargs) -> LabelOptions:
    return LabelOptions(model=double_model(base_url), cache=tmp_path / "cache", **kwargs)


def test_a_malformed_answer_is_asked_again_saying_what_was_wrong(tmp_path):
    with openai_double(scripted("I think it is fine.", '{"explanation": "clear", "score": 1}')) as (url, requests):
        opts = options(url, tmp_path)
        model = make_model(opts.model)
        vote = ask_vote(model, [{"role": "user", "content": "q"}], load_prompts(), opts, sample=0)
    assert (vote.score, vote.explanation, vote.attempts, vote.extracted) == (1, "clear", 2, False)
    assert requests[1]["messages"][-2] == {"role": "assistant", "content": "I think it is fine."}
    assert "score from 0 to 3" in requests[1]["messages"][-1]["content"]
    assert (vote.prompt_tokens, vote.completion_tokens) == (200, 20)


def test_empty_and_out_of_range_answers_end_in_an_extracted_score_or_none(tmp_path):
    prompts = load_prompts()
    with openai_double(scripted("", '{"explanation": "x", "score": 9}', "My final score: 2.")) as (url, requests):
        opts = options(url, tmp_path)
        vote = ask_vote(make_model(opts.model), [{"role": "user", "content": "q"}], prompts, opts, sample=0)
    assert (vote.score, vote.attempts, vote.extracted) == (2, 3, True)
    with openai_double(scripted("")) as (url, requests):
        opts = options(url, tmp_path, attempts=2)
        vote = ask_vote(make_model(opts.model), [{"role": "user", "content": "q"}], prompts, opts, sample=1)
    assert (vote.score, vote.attempts, vote.extracted) == (None, 2, False)


def test_the_engine_retries_a_failing_endpoint_with_backoff(tmp_path):
    with openai_double(scripted(503, 500, '{"explanation": "ok", "score": 0}')) as (url, requests):
        model = make_model(ModelConfig(model="double", base_url=url, max_retries=2))
        result = model.chat([{"role": "user", "content": "q"}])
    assert parse_answer(result.text) == (0, "ok") and len(requests) == 3
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (100, 10)


def by_label(votes: dict[str, list[str]]):
    """Each label's question gets its own answers, in order (one thread per vote: order within a label only)."""
    words = {"clarity": "How well specified", "test_validity": "Do the tests accept", "difficulty": "How long"}
    pending = {name: list(answers) for name, answers in votes.items()}

    def reply(body):
        question = body["messages"][1]["content"]
        [name] = [name for name, word in words.items() if word in question]
        return pending[name].pop(0)

    return reply


def test_label_rows_gives_consensus_votes_tokens_and_cost_and_a_rerun_asks_nothing(instance, tmp_path):
    row, places = instance
    answer = lambda score: json.dumps({"explanation": f"because {score}", "score": score})
    votes = {
        "clarity": [answer(1)] * 3,
        "test_validity": [answer(0), answer(3), answer(0)],
        "difficulty": [answer(0), answer(1), answer(3)],
    }
    with openai_double(by_label(votes)) as (url, requests):
        opts = options(url, tmp_path, places=places, max_tokens=64)
        [labeled] = label_rows([row], opts, workers=1)
    labels = labeled.labels
    assert (labels.clarity.value, labels.clarity.controversial) == (1, False)
    assert (labels.test_validity.value, labels.test_validity.controversial) == (0, True)
    assert (labels.difficulty.value, labels.difficulty.controversial) == (1, True)  # no value twice: the median
    assert sorted(v.score for v in labels.difficulty.votes) == [0, 1, 3]
    assert {v.explanation for v in labels.clarity.votes} == {"because 1"}
    assert len(requests) == 9 and {r["max_tokens"] for r in requests} == {64}
    assert (labels.prompt_tokens, labels.completion_tokens) == (900, 90)
    assert labels.cost == pytest.approx((900 * 1.0 + 90 * 2.0) / 1e6)
    assert labels.model == "double" and labels.prompt_version == load_prompts().version
    assert labels.difficulty_estimate.value == 0 and not labels.error

    # The same questions again, with the endpoint gone: every answer comes from the cache.
    again = label_instance(row, options(url, tmp_path, places=places, max_tokens=64))
    assert not again.error
    assert again.model_dump(exclude={"seconds"}) == labels.model_dump(exclude={"seconds"})


def test_an_unreachable_endpoint_is_the_rows_error_not_a_crash(instance, tmp_path):
    row, places = instance
    with openai_double(scripted("")) as (url, _):
        pass  # closed: nothing listens there any more
    labels = label_instance(row, options(url, tmp_path / "empty", places=places))
    assert re.search(r"APIConnectionError", labels.error)
    assert labels.clarity is None and labels.difficulty_estimate is not None


def test_the_cache_key_is_the_question_not_the_address(tmp_path):
    with openai_double(scripted('{"explanation": "a", "score": 2}')) as (url, requests):
        first = CachedModel(make_model(ModelConfig(model="m", base_url=url)), tmp_path)
        first.chat([{"role": "user", "content": "q"}])
    other = CachedModel(make_model(ModelConfig(model="m", base_url="http://127.0.0.1:9/v1", max_retries=0)), tmp_path)
    assert parse_answer(other.chat([{"role": "user", "content": "q"}]).text) == (2, "a")
    assert (first.asked, other.asked, len(requests)) == (1, 0, 1)


def labeled(row, clarity, validity, difficulty, estimate=0, controversial=False) -> TaskInstance:
    label = lambda value: Label(value=value, controversial=controversial, votes=[Vote(score=value)])
    labels = InstanceLabels(
        clarity=label(clarity),
        test_validity=label(validity),
        difficulty=label(difficulty),
        difficulty_estimate=DifficultyEstimate(value=estimate, minutes=0, lines=0, files=0, hunks=0, tests=0),
    )
    return row.model_copy(update={"instance_id": f"r{clarity}{validity}{difficulty}{estimate}", "labels": labels})


def test_filter_keeps_rows_within_bounds_and_says_why_the_others_went(instance, tmp_path):
    row, _ = instance
    rows = [
        labeled(row, 0, 1, 1),
        labeled(row, 2, 0, 0),
        labeled(row, 1, 1, 3),
        labeled(row, 1, 0, 0, controversial=True),
        labeled(row, 0, 0, 0, estimate=2),
        row.model_copy(update={"instance_id": "unlabeled"}),
    ]
    dataset, out = tmp_path / "labeled.jsonl", tmp_path / "kept.jsonl"
    dataset.write_text("".join(r.model_dump_json() + "\n" for r in rows))
    bounds = ["--max-clarity", "1", "--max-test-validity", "1", "--max-difficulty", "1"]
    run = subprocess.run(
        [REPOFORGE, "filter", "--dataset", str(dataset), "-o", str(out), *bounds],
        capture_output=True,
        text=True,
        check=True,
    )
    kept = [json.loads(line)["instance_id"] for line in out.read_text().splitlines()]
    assert kept == ["r0110", "r0002"]
    for reason in ("clarity above 1", "difficulty above 1", "clarity: controversial", "clarity: no label"):
        assert f"dropped 1: {reason}" in run.stdout
    assert [r.instance_id for r in select(rows, Bounds(difficulty_estimate=1))[0]] == [
        "r0110",
        "r2000",
        "r1130",
        "r1000",
    ]
    assert select(rows, Bounds(clarity=1, keep_controversial=True))[0][2].instance_id == "r1000"
