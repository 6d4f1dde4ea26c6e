"""`repoforge pipeline`: the whole loop on the bundled example, the model an OpenAI double (tests/openai_double.py)
and the trainee the tiny random model; a failing stage, its reason, a rerun that continues from it, and configs that
cannot be used."""

from __future__ import annotations

import json
import shutil
import subprocess

import calcpkg
import pytest
import yaml
from conftest import REPOFORGE
from openai_double import call, openai_double, replaying, scripted

from repoforge.pipeline import STAGES, ConfigError, load_config

pytestmark = pytest.mark.slow
FIX_ID = "example__calcpkg-12"  # add() returned the difference
CALC = "src/calcpkg/calc.py"
FIX = [
    call("str_replace_editor", command="str_replace", path=CALC, old_str="return a - b", new_str="return a + b"),
    call("finish", message="add() adds"),
]
ADD_ISSUE = "Adding two numbers gives their difference instead of their sum: add(2, 3) returns -1, not 5."
OTHER_ISSUE = "Calling the new function of the calc module fails with an ImportError, as if it did not exist."


def answer(body: dict):
    """describe, label and the agent, told apart by their system prompts: the issue of the add() fix is written,
    labeled clear and fixed; divide()'s is labeled unclear (the filter drops it); the others are given up at once."""
    system, task = body["messages"][0]["content"], body["messages"][1]["content"]
    if "You write GitHub issues" in system:
        return ADD_ISSUE if "test_add_negative" in task else OTHER_ISSUE
    if "reviewing a task" in system:
        return json.dumps({"explanation": "as it says", "score": 3 if "def divide" in task else 1})
    return replaying(FIX if "difference instead of their sum" in task else [call("finish")])(body)


def write_config(folder, **settings) -> str:
    """A config of the example run by the double at base_url and trained from the tiny model; `settings` over it."""
    config = {
        "sources": ["mirror/example__calcpkg"],  # relative: the config file's folder's
        "out": "out",
        "sandbox": "process",
        "timeout": 15,
        "model": {"base_url": "http://127.0.0.1:9/v1", "model": "double", "max_retries": 0},
        "describe": {"github": False, "workers": 1},
        "label": {"samples": 1},
        "forge": {"until": "2023-03-08 23:59"},  # the next commit's test sleeps until the timeout
        "filter": {"max_clarity": 1},
        "agent": {"max_turns": 3, "max_tokens": 16},
        "sft": {"max_length": 2048},
        "rl": {"steps": 1, "group_size": 2, "workers": 1},
    }
    for key, value in settings.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def pipeline(config: str) -> subprocess.CompletedProcess:
    ran = subprocess.run([REPOFORGE, "pipeline", config], capture_output=True, text=True)
    assert "Traceback" not in ran.stdout + ran.stderr
    return ran


def statuses(out) -> dict[str, str]:
    return {stage: record["status"] for stage, record in json.loads((out / "pipeline.json").read_text()).items()}


@pytest.fixture(scope="module")
def example(tmp_path_factory, store, tiny_model):
    """(folder, the configs' common settings, OUT/forge of the example forged by the pipeline): the repository under
    folder/mirror; OUT/forge copied into a test's own OUT, each test continues from it."""
    folder = tmp_path_factory.mktemp("pipeline")
    calcpkg.build(folder / "mirror" / "example__calcpkg")
    common = {"store": str(store), "sft": {"model": str(tiny_model)}}
    ran = pipeline(write_config(folder, stages=["forge"], **common))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return folder, common, folder / "out" / "forge"


def continuing(example, tmp_path) -> dict:
    """The common settings, in tmp_path: the repository and forge's output (done) there as in the example."""
    folder, common, forged = example
    shutil.copytree(folder / "mirror", tmp_path / "mirror")
    shutil.copytree(forged, tmp_path / "out" / "forge")
    return common


def test_a_source_that_is_not_there_fails_forge_saying_why(example, tmp_path):
    ran = pipeline(write_config(tmp_path, sources=["no/such/repo"], **example[1]))
    assert ran.returncode == 1
    [line] = [line for line in ran.stdout.splitlines() if "forge failed" in line]
    assert line.startswith(f"[1/9] forge failed: no usable source: {tmp_path}/no/such/repo: ")
    assert line.endswith("no/such/repo: no such file or directory")
    assert statuses(tmp_path / "out") == {"forge": "failed"}
    # Nothing mined is kept: a rerun mines the sources its config gives then.
    assert not (tmp_path / "out" / "forge" / "done.json").exists()
    assert not (tmp_path / "out" / "forge" / "candidates.jsonl").exists()


def test_a_failing_endpoint_then_every_stage_to_a_trained_policy_then_nothing_again(example, tmp_path):
    common, out = continuing(example, tmp_path), tmp_path / "out"

    # The model an endpoint that fails: forge is done already, describe fails with the endpoint's answer.
    with openai_double(scripted(500)) as (url, requests):
        ran = pipeline(write_config(tmp_path, model={"base_url": url}, **common))
    assert ran.returncode == 1 and len(requests) == 3  # one request per instance, no retries
    assert "forge already done" in ran.stdout and "describe failed: 3 of 3 rows: no answer: " in ran.stdout
    assert statuses(out) == {"forge": "done", "describe": "failed"}
    record = json.loads((out / "pipeline.json").read_text())
    assert record["forge"]["summary"] == {"commits_scanned": 5, "candidates": 3, "instances": 3}
    assert record["describe"]["reason"].startswith("3 of 3 rows: no answer: InternalServerError: Error code: 500")

    # The model fixed: the run continues from describe to the trained policy; a rerun runs nothing and asks nothing.
    with openai_double(answer) as (url, requests):
        ran = pipeline(write_config(tmp_path, model={"base_url": url}, **common))
        assert ran.returncode == 0, ran.stdout + ran.stderr
        asked = len(requests)
        again = pipeline(write_config(tmp_path, model={"base_url": url}, **common))
        assert again.returncode == 0 and len(requests) == asked
    assert [line.split()[1] for line in again.stdout.splitlines() if "already done" in line] == list(STAGES)
    assert statuses(out) == dict.fromkeys(STAGES, "done")
    record = json.loads((out / "pipeline.json").read_text())
    assert record["describe"]["summary"] == {"rows": 3, "by_model": 3, "from_github": 0, "kept": 0}
    assert record["label"]["summary"] == {"rows": 3, "labels_scored": 9, "labels_asked": 9}
    assert record["filter"]["summary"] == {"rows": 3, "kept": 2, "dropped": {"clarity above 1": 1}}
    assert record["agent"]["summary"] == {"rollouts": 2, "exit_reasons": {"submitted": 2}}
    assert record["eval"]["summary"] == {"gold_resolved": 3, "gold_total": 3, "submitted": 2, "resolved": 1, "error": 0}
    assert record["sft-data"]["summary"] == {"rows": 1, "trajectories": 2}
    sft, rl = record["sft"]["summary"], record["rl"]["summary"]
    assert (sft["rows"], sft["start"], sft["checkpoint"]) == (1, common["sft"]["model"], str(out / "sft" / "final"))
    assert (rl["steps"], rl["start"]) == (1, sft["checkpoint"])  # RL goes on from what SFT trained

    described = [json.loads(line) for line in (out / "describe" / "instances.jsonl").read_text().splitlines()]
    assert sorted(row["problem_statement"] for row in described) == [ADD_ISSUE, OTHER_ISSUE, OTHER_ISSUE]
    kept = [json.loads(line)["instance_id"] for line in (out / "filter" / "instances.jsonl").read_text().splitlines()]
    assert FIX_ID in kept and len(kept) == 2
    assert sorted(p.name for p in (out / "eval").glob("*.*.json")) == ["double.agent.json", "gold.gold.json"]
    [sft_row] = [json.loads(line) for line in (out / "sft-data" / "sft.jsonl").read_text().splitlines()]
    assert sft_row["instance_id"] == FIX_ID
    assert (out / "sft" / "final" / "config.json").is_file() and (out / "rl" / "metrics.jsonl").is_file()
    for stage in STAGES:
        assert json.loads((out / stage / "done.json").read_text())["status"] == "done"


def test_with_nothing_resolved_sft_is_skipped_and_rl_starts_from_the_base_model(example, tmp_path):
    common, out = continuing(example, tmp_path), tmp_path / "out"
    stages = ["agent", "eval", "sft-data", "sft", "rl"]
    with openai_double(replaying([call("finish")])) as (url, _):
        ran = pipeline(write_config(tmp_path, stages=stages, model={"base_url": url}, eval={"gold": False}, **common))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert statuses(out) == {
        **dict.fromkeys(["forge", "describe", "label", "filter"], "skipped"),
        **dict.fromkeys(["agent", "eval", "sft-data"], "done"),
        "sft": "skipped",
        "rl": "done",
    }
    record = json.loads((out / "pipeline.json").read_text())
    assert record["describe"]["reason"] == "switched off (not in the config's stages)"
    assert record["agent"]["summary"]["rollouts"] == 3  # forge's rows: no row stage runs in between
    assert record["eval"]["summary"] == {"submitted": 3, "resolved": 0, "error": 0}
    assert record["sft"]["reason"] == "no resolved trajectory to train on"
    assert not (out / "sft" / "done.json").exists()
    assert (record["rl"]["summary"]["steps"], record["rl"]["summary"]["start"]) == (1, common["sft"]["model"])


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("missing.yaml", None, "missing.yaml: cannot be read"),
        ("bad.yaml", "sources: [a\nout: x\n", "bad.yaml: not valid YAML: "),
        ("bad.toml", "sources = [\n", "bad.toml: not valid TOML: "),
        ("list.yaml", "- a\n- b\n", "list.yaml: holds no mapping of settings"),
        ("config.json", "{}", "config.json: not a .yaml, .yml or .toml file"),
        ("typo.yaml", "sources: [a]\nout: x\ndescribe: {votes: 3}\n", "typo.yaml: describe.votes: unknown key"),
        ("top.yaml", "sources: [a]\nouts: x\n", "top.yaml: out: Field required; outs: unknown key"),
        ("stage.yaml", "sources: [a]\nout: x\nstages: [forge, train]\n", "stage.yaml: stages.1: Input should be"),
        ("sft.yaml", "sources: [a]\nout: x\nsft: {epoch: 2}\n", "sft.yaml: sft.epoch: unknown key"),
        ("rl.yaml", "sources: [a]\nout: x\nrl: {steps: many}\n", "rl.yaml: rl.steps: Input should be a valid integer"),
    ],
)
def test_a_config_that_cannot_be_used_names_the_problem(tmp_path, name, text, message):
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / name)
    assert str(raised.value).startswith(str(tmp_path) + "/") and message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_command_line_says_what_is_wrong_with_a_config_in_one_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("sources: [a\nout: x\n")
    (tmp_path / "typo.yaml").write_text("sources: [a]\nout: x\nlabel: {votes: 3}\n")
    for name, message in [("bad.yaml", "not valid YAML"), ("typo.yaml", "label.votes: unknown key")]:
        ran = subprocess.run([REPOFORGE, "pipeline", str(tmp_path / name)], capture_output=True, text=True)
        assert ran.returncode == 2 and "Traceback" not in ran.stdout + ran.stderr
        [line] = ran.stdout.splitlines()
        assert line.startswith(f"{tmp_path / name}: ") and message in line
    assert not (tmp_path / "x").exists()  # nothing ran


def test_yaml_and_toml_say_the_same_and_relative_paths_are_the_config_file_s_folder_s(tmp_path):
    (tmp_path / "conf").mkdir()
    yaml_file, toml_file = tmp_path / "conf" / "run.yaml", tmp_path / "conf" / "run.toml"
    yaml_file.write_text(
        "sources: [../repo, https://github.com/o/n]\nout: ../out\nstages: [forge, sft]\n"
        "model: {model: ../models/m}\nagent: {max_turns: 2, tool_mode: text}\nsft: {epochs: 2, model: ../base}\n"
    )
    toml_file.write_text(
        'sources = ["../repo", "https://github.com/o/n"]\nout = "../out"\nstages = ["forge", "sft"]\n'
        '[model]\nmodel = "../models/m"\n[agent]\nmax_turns = 2\ntool_mode = "text"\n[sft]\nepochs = 2\nmodel = "../base"\n'
    )
    config = load_config(yaml_file)
    assert config == load_config(toml_file)
    assert config.sources == [str(tmp_path / "repo"), "https://github.com/o/n"]
    assert (config.out, config.model.model) == (tmp_path / "out", str(tmp_path / "models" / "m"))
    assert config.sft == {"epochs": 2.0, "model": tmp_path / "base"} and config.base_model() == tmp_path / "base"
    assert config.rows_of("agent") == tmp_path / "out" / "forge" / "instances.jsonl"  # no row stage in between
    assert config.agent_config().limits.turns == 2 and config.agent_config().tool_mode == "text"
    with pytest.raises(ConfigError, match="model.engine: Input should be 'openai' or 'local'"):
        yaml_file.write_text("sources: [a]\nout: x\nmodel: {engine: vllm}\n")
        load_config(yaml_file)
