"""repoforge describe: statements from GitHub's issues, else written by the model; answers that give away the fix,
empty or malformed ones asked again; the cache and the resumable output.

The model is a loopback server speaking the OpenAI API (tests/openai_double.py), GitHub one speaking its REST API
(tests/github_double.py), each behind the real client; test_llm.py runs describe against a real model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from github_double import github_double
from openai_double import double_model, openai_double, scripted

from repoforge.describe.github import GitHubConfig, closed_issues
from repoforge.describe.leak import fix_lines, leaked_line
from repoforge.describe.run import DescribeOptions, describe_instance, describe_rows
from repoforge.schema import TaskInstance
from repoforge.validate import base_failures

REPOFORGE = str(Path(sys.executable).parent / "repoforge")
COMMIT_MESSAGE = "Greet text types via six (#3)"  # the instance fixture's statement: its commit message
FIX_LINE = "return 'Hello ' + six.text_type(name)"
CLEAN = (
    'greet() fails for numbers\n\nCalling greet(3) raises TypeError: can only concatenate str (not "int") to str.\n'
    "To reproduce: from greeter import greet; greet(3). Expected: 'Hello 3'."
)


def options(base_url: str, tmp_path: Path, **kwargs) -> DescribeOptions:
    return DescribeOptions(model=double_model(base_url), cache=tmp_path / "cache", **kwargs)


def unanswered(body):
    raise AssertionError("the model was asked")


def test_the_fix_lines_are_the_added_lines_only_the_fix_knows():
    patch = (
        "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,4 +1,7 @@\n"
        "+import six\n"  # trivial: too short to say anything of the fix
        "-    value = compute(a, b)\n"
        "+        value = compute(a, b)\n"  # re-indented: the base commit has it
        "+        return six.text_type(value)\n"
        "+    }\n"
        "+        expected = compute(1, 2)\n"  # a line of the test patch too
        "+        return six.text_type(value)\n"
    )
    test_patch = "--- a/t.py\n+++ b/t.py\n@@ -1 +1,2 @@\n+def test_it():\n+    expected = compute(1, 2)\n"
    lines = fix_lines(patch, test_patch)
    assert lines == ["return six.text_type(value)"]
    assert leaked_line("It should return six.text_type(other)", lines) is None  # not the same code
    assert leaked_line("I used `return six.text_type(value)` as a workaround", lines) == lines[0]
    assert leaked_line("Fixed it:\nreturn\tsix.text_type(value)", lines) == lines[0]  # whitespace set aside


def test_a_statement_giving_away_the_fix_is_rejected_and_written_again(instance, tmp_path):
    row, _ = instance
    leaking = (
        "greet(3) raises TypeError. I changed greeter.py to\n    return 'Hello '  +  six.text_type(name)\nplease merge."
    )
    with openai_double(scripted(leaking, CLEAN)) as (url, requests):
        described = describe_instance(row, options(url, tmp_path))
    record = described.description
    assert described.problem_statement == CLEAN
    assert described.hints_text == COMMIT_MESSAGE == record.original_problem_statement
    assert (record.source, record.attempts, record.error) == ("model", 2, "")
    reason = f"it gives away the fix: it contains the fix's line `{FIX_LINE}`"
    assert record.rejected == [reason]
    assert (record.model, record.prompt_version) == ("double", "describe-1")
    assert (record.prompt_tokens, record.completion_tokens) == (200, 20)
    assert record.cost == pytest.approx((200 * 1.0 + 20 * 2.0) / 1e6)
    [first, second] = [request["messages"][1]["content"] for request in requests]
    assert "test_greeter.py::test_greet_number" in first and FIX_LINE in first  # the failing test, the fix
    assert COMMIT_MESSAGE not in first  # the old statement is no source: it may say the fix
    assert "not used" not in first
    assert f"Your previous answer was not used: {reason}." in second
    assert [request["seed"] for request in requests] == [0, 1]


def test_empty_and_malformed_answers_are_asked_again_then_the_original_is_kept(instance, tmp_path):
    row, _ = instance
    hunk = "diff --git a/greeter.py b/greeter.py\n@@ -1,2 +1,5 @@\n-def greet(name):\n+def greet(name: str):"
    with openai_double(scripted("", "Sure!", hunk, f"```markdown\n{CLEAN}\n```")) as (url, requests):
        described = describe_instance(row, options(url, tmp_path, attempts=4))
    record = described.description
    assert described.problem_statement == CLEAN  # taken out of the code block wrapping it
    assert record.rejected == [
        "the answer was empty",
        "it is too short to be an issue (words: 1)",
        "it shows a diff, where an issue reports a problem",
    ]
    assert (record.attempts, record.source, len(requests)) == (4, "model", 4)

    with openai_double(scripted("", "   \n")) as (url, requests):
        kept = describe_instance(row, options(url, tmp_path / "other", attempts=2))
    record = kept.description
    assert (kept.problem_statement, kept.hints_text) == (row.problem_statement, row.hints_text)
    assert record.rejected == ["the answer was empty"] * 2 and record.attempts == 2
    assert record.error == "no answer taken (attempts: 2): the original statement is kept"
    assert record.source == "" and record.original_problem_statement == COMMIT_MESSAGE


def test_the_statement_comes_from_the_issue_the_pull_request_closes(instance, tmp_path, monkeypatch):
    row, _ = instance
    issue = {
        "title": "greet() fails for numbers",
        "body": "greet(3) raises TypeError; I expected 'Hello 3'.",
        "html_url": "https://github.com/example/greeter/issues/2",
    }
    pull = {
        "title": "Greet text types via six",
        "body": "Fixes #2. Also mentions #4, which it does not close.",
        "html_url": "https://github.com/example/greeter/pull/3",
        "merged_at": "2021-05-10T09:00:00Z",
    }
    resources = {"/repos/example/greeter/pulls/3": pull, "/repos/example/greeter/issues/2": issue}
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    with github_double(resources) as (api, asked), openai_double(unanswered) as (url, _):
        described = describe_instance(row, options(url, tmp_path, github=GitHubConfig(api_url=api)))
    record = described.description
    assert (
        described.problem_statement == "greet() fails for numbers\ngreet(3) raises TypeError; I expected 'Hello 3'.\n"
    )
    assert described.hints_text == COMMIT_MESSAGE == record.original_problem_statement
    assert (record.source, record.urls, record.github_error) == ("github", [issue["html_url"]], "")
    assert (record.model, record.attempts, record.prompt_tokens) == ("", 0, 0)
    assert [request.path for request in asked] == ["/repos/example/greeter/pulls/3", "/repos/example/greeter/issues/2"]
    assert {request.headers["Authorization"] for request in asked} == {"Bearer t0ken"}


def test_a_forged_commit_s_pull_request_gives_its_own_text_when_it_closes_no_issue(instance, tmp_path):
    row, _ = instance
    row = row.model_copy(update={"instance_id": "example__greeter-abc1234"})  # forge's id of a commit naming no PR
    sha = "abc1234" + "0" * 33
    pull = {"title": "Greet numbers", "body": "greet(3) failed.", "html_url": "https://github.com/x/pull/9"}
    resources = {
        "/repos/example/greeter/commits/abc1234": {"sha": sha, "parents": [{"sha": row.base_commit}]},
        f"/repos/example/greeter/commits/{sha}/pulls": [{**pull, "merged_at": None}, {**pull, "merged_at": "2021"}],
    }
    with github_double(resources) as (api, _), openai_double(unanswered) as (url, _):
        described = describe_instance(row, options(url, tmp_path, github=GitHubConfig(api_url=api)))
    assert described.problem_statement == "Greet numbers\ngreet(3) failed.\n"
    assert (described.description.source, described.description.urls) == ("github", [pull["html_url"]])


@pytest.mark.parametrize("github", ["unreachable", "not found"])
def test_without_github_s_text_the_model_writes_the_statement_and_the_row_says_why(instance, tmp_path, github):
    row, _ = instance
    with github_double({}) as (api, _):
        pass  # closed: nothing listens there any more
    with github_double({}) as (found_nothing, _), openai_double(scripted(CLEAN)) as (url, requests):
        config = GitHubConfig(api_url=api if github == "unreachable" else found_nothing, timeout=5)
        described = describe_instance(row, options(url, tmp_path, github=config))
    record = described.description
    assert (described.problem_statement, record.source, record.attempts) == (CLEAN, "model", 1)
    expected = {
        "unreachable": f"GitHub's API at {api} cannot be reached: [Errno 111] Connection refused",
        "not found": "example/greeter has no pull request 3 on GitHub",
    }
    assert record.github_error == expected[github]


def test_closing_keywords_name_the_issues_closed():
    text = "Fixes #2, closes other/repo#5 and resolves https://github.com/o/r/issues/9.\nFIXED: #2; see #7; prefix#8"
    assert closed_issues(text, "example/greeter") == [("example/greeter", 2), ("other/repo", 5), ("o/r", 9)]


def test_the_failures_at_the_base_commit_are_kept_short_and_shown_to_the_model(instance, tmp_path):
    failures = {f"t.py::test_{i}": f"AssertionError {i}\n" + "x" * 5000 for i in range(8)}
    failures["t.py::test_passing_later"] = ""
    kept = base_failures(failures, ["t.py::test_passing_later", *sorted(failures)])
    assert list(kept) == [f"t.py::test_{i}" for i in range(5)]
    assert all(text.startswith("AssertionError") and len(text) <= 1500 for text in kept.values())

    row, _ = instance
    row = row.model_copy(update={"base_failures": {"test_greeter.py::test_greet_number": "TypeError: can only concat"}})
    with openai_double(scripted(CLEAN)) as (url, requests):
        describe_instance(row, options(url, tmp_path))
    shown = requests[0]["messages"][1]["content"]
    assert "## How those tests failed before the change\ntest_greeter.py::test_greet_number\nTypeError" in shown


def test_describe_rows_records_bad_rows_resumes_and_a_rerun_asks_nothing(instance, tmp_path):
    row, _ = instance
    empty = row.model_copy(update={"instance_id": "example__greeter-99", "patch": ""})
    out = tmp_path / "described.jsonl"
    with openai_double(scripted(CLEAN)) as (url, requests):
        first = describe_rows([row, empty], options(url, tmp_path), out, workers=1)
        assert [r.instance_id for r in first] == [row.instance_id, empty.instance_id]
        assert first[0].problem_statement == CLEAN and first[0].description.source == "model"
        assert (first[1].problem_statement, first[1].description.error) == (
            COMMIT_MESSAGE,
            "no gold patch to write a statement from",
        )
        assert [TaskInstance.model_validate_json(line) for line in out.read_text().splitlines()] == first
        assert len(requests) == 1

        # Another output, the same cache: every answer comes from it.
        again = describe_rows([row, empty], options(url, tmp_path), tmp_path / "again.jsonl", workers=1)
        assert [r.model_dump(exclude={"description": {"seconds"}}) for r in again] == [
            r.model_dump(exclude={"description": {"seconds"}}) for r in first
        ]
        assert len(requests) == 1

        # The same output after a crash that cut a line short, and no cache: the described row is kept as it was.
        with out.open("a") as cut:
            cut.write('{"repo": "example/gre')
        resumed = describe_rows([row, empty], options(url, tmp_path / "no-cache"), out, workers=1)
        assert resumed[0] == first[0] and len(requests) == 1
        assert resumed[1].description.error == "no gold patch to write a statement from"
        assert [TaskInstance.model_validate_json(line) for line in out.read_text().splitlines()] == resumed


def test_the_command_line_skips_malformed_rows_and_refuses_to_write_over_its_dataset(instance, tmp_path):
    row, _ = instance
    dataset, out = tmp_path / "instances.jsonl", tmp_path / "described.jsonl"
    malformed = {**json.loads(row.model_dump_json()), "instance_id": "example__greeter-4", "FAIL_TO_PASS": 7}
    dataset.write_text(row.model_dump_json() + "\n" + json.dumps(malformed) + "\n")
    with openai_double(scripted(CLEAN)) as (url, requests):
        model = ["--base-url", url, "--model", "double", "--no-github", "--store", str(tmp_path / "store"), "-w", "1"]
        run = subprocess.run(
            [REPOFORGE, "describe", "--dataset", str(dataset), "-o", str(out), *model], capture_output=True, text=True
        )
    assert run.returncode == 0, run.stderr
    assert "skipping example__greeter-4: malformed row 2: FAIL_TO_PASS" in run.stdout
    [described] = [json.loads(line) for line in out.read_text().splitlines()]
    assert (described["problem_statement"], described["hints_text"]) == (CLEAN, COMMIT_MESSAGE)
    assert described["description"]["source"] == "model" and len(requests) == 1

    wide = {**os.environ, "COLUMNS": "200"}  # the error's box is as wide as the terminal: the message on one line
    same = subprocess.run(
        [REPOFORGE, "describe", "--dataset", str(dataset), "-o", str(dataset), *model],
        capture_output=True,
        text=True,
        env=wide,
    )
    assert same.returncode == 2 and "name another file" in same.stderr
