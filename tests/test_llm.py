"""The embedded model for real: converted from its GGUF, served by `transformers serve`, asked by the `openai`
client, `repoforge label` and `repoforge describe`, and run in-process. Kept tiny: a few short answers of a 135M
model on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from openai import OpenAI

from repoforge.llm import ModelConfig, Sampling, make_model
from repoforge.llm.embedded import model_folder
from repoforge.llm.serve import Server

REPOFORGE = str(Path(sys.executable).parent / "repoforge")


def test_repoforge_serve_answers_the_openai_client(served):
    base_url, model = served
    assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
    client = OpenAI(base_url=base_url, api_key="none")
    assert model in [entry.id for entry in client.models.list().data]
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
    )
    assert response.choices[0].message.content.strip()
    assert 0 < response.usage.completion_tokens <= 8


def test_the_server_ends_with_the_process_that_started_it(model_store):
    """Killed outright (as Ray's SIGTERM handler ends a worker: at once) in the middle of a long answer, `repoforge
    serve` leaves no server behind, answering or not."""
    serve = subprocess.Popen([REPOFORGE, "serve", "--store", str(model_store)], stdout=subprocess.PIPE, text=True)
    lines = [serve.stdout.readline() for _ in range(2)]
    [base_url] = [line.split(": ", 1)[1].strip() for line in lines if line.startswith("base URL:")]
    [model] = [line.split(": ", 1)[1].strip() for line in lines if line.startswith("model:")]
    assert Server.answering(base_url)
    servers = Path(f"/proc/{serve.pid}/task/{serve.pid}/children").read_text().split()
    assert servers
    client = OpenAI(base_url=base_url, api_key="none", max_retries=0)
    long_answer = dict(model=model, messages=[{"role": "user", "content": "Count to 10000."}], max_tokens=4000)
    threading.Thread(
        target=lambda: _ignoring_errors(client.chat.completions.create, **long_answer), daemon=True
    ).start()
    time.sleep(5)  # generating
    serve.kill()
    serve.wait()
    deadline = time.monotonic() + 30
    while any(map(_running, servers)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(map(_running, servers))


def _running(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ignoring_errors(function, **arguments) -> None:
    try:
        function(**arguments)
    except Exception:
        pass  # the server was killed under the request: what the test does


def test_describe_end_to_end_with_the_embedded_model(served, instance, tmp_path):
    base_url, model = served
    row, _ = instance
    dataset, out = tmp_path / "instances.jsonl", tmp_path / "described.jsonl"
    dataset.write_text(row.model_dump_json() + "\n")
    # One short answer (rejections and retries are tested against the double): the model reads slowly here.
    small = ["--attempts", "1", "--max-tokens", "48", "--context-tokens", "1024", "-w", "1", "--no-github"]
    endpoint = ["--base-url", base_url, "--model", model, "--store", str(tmp_path / "store")]
    subprocess.run([REPOFORGE, "describe", "--dataset", str(dataset), "-o", str(out), *endpoint, *small], check=True)
    [described] = [json.loads(line) for line in out.read_text().splitlines()]
    record = described["description"]
    assert (record["model"], record["prompt_version"], record["attempts"]) == (model, "describe-1", 1)
    assert record["prompt_tokens"] > 100 and 0 < record["completion_tokens"] <= 48
    assert record["original_problem_statement"] == row.problem_statement
    if record["source"] == "model":  # a 135M model's issue, whatever it says, taken: the commit message is a hint
        assert described["problem_statement"].strip() and described["hints_text"] == row.problem_statement
    else:  # or not taken, for a reason said: the row keeps its statement
        assert len(record["rejected"]) == 1 and record["error"].startswith("no answer taken (attempts: 1)")
        assert described["problem_statement"] == row.problem_statement


def test_label_end_to_end_with_the_embedded_model_and_a_rerun_asks_nothing(model_store, instance, tmp_path):
    row, places = instance
    dataset, out = tmp_path / "instances.jsonl", tmp_path / "labeled.jsonl"
    dataset.write_text(row.model_dump_json() + "\n")
    common = ["--dataset", str(dataset), "--store", str(model_store), "--repo-mirror", str(places.mirror)]
    # One short vote per label (retries are tested against the double): a 135M model on 2 busy cores reads about
    # 40 prompt tokens a second.
    small = ["--samples", "1", "--attempts", "1", "--max-tokens", "16", "--context-tokens", "512", "-w", "1"]
    subprocess.run([REPOFORGE, "label", *common, *small, "-o", str(out)], check=True)
    [labeled] = [json.loads(line) for line in out.read_text().splitlines()]
    labels = labeled["labels"]
    assert not labels["error"] and labels["model"] == str(model_folder(model_store))
    for name in ("clarity", "test_validity", "difficulty"):
        [vote] = labels[name]["votes"]
        assert vote["attempts"] == 1
        assert vote["score"] in (None, 0, 1, 2, 3) and labels[name]["value"] == vote["score"]
    assert labels["prompt_tokens"] > 100 and labels["completion_tokens"] > 0
    assert labels["difficulty_estimate"]["value"] == 0

    # The endpoint named is gone: every answer must come from the cache.
    gone = ["--base-url", "http://127.0.0.1:9/v1", "--model", labels["model"]]
    again = tmp_path / "again.jsonl"
    subprocess.run([REPOFORGE, "label", *common, *small, *gone, "-o", str(again)], check=True)
    [relabeled] = [json.loads(line) for line in again.read_text().splitlines()]
    assert not relabeled["labels"]["error"]
    for name in ("clarity", "test_validity", "difficulty"):
        assert relabeled["labels"][name] == labels[name]


def test_the_local_engine_gives_token_ids_and_logprobs(model_store):
    model = make_model(ModelConfig(engine="local", model=str(model_folder(model_store))))
    result = model.chat(
        [{"role": "user", "content": "Count to three."}], sampling=Sampling(temperature=0, max_tokens=6)
    )
    assert result.usage.completion_tokens == len(result.token_ids) == len(result.logprobs) <= 6
    assert all(logprob <= 0 for logprob in result.logprobs)
    assert len(result.prompt_token_ids) == result.usage.prompt_tokens
    assert result.text == model._tokenizer.decode(result.token_ids, skip_special_tokens=True)
