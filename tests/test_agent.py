"""The SWE agent: its tools in real sandboxes, the loop driven over the OpenAI API by a replaying model (a recorded
sequence of tool calls) and by the embedded model, every limit, and the data it leaves for training."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import REPOFORGE
from openai_double import call, double_model, openai_double, replaying

from repoforge.agent.config import load_config
from repoforge.agent.env import AgentEnv, grade
from repoforge.agent.loop import rollout
from repoforge.harness.evaluate import EvalOptions
from repoforge.llm import make_model
from repoforge.sandbox.docker import engine_answers

pytestmark = pytest.mark.slow
FIX_ID = "example__calcpkg-12"  # add() returned the difference
CALC = "src/calcpkg/calc.py"


# What an agent does to fix FIX_ID: look around, read the history, fix, write a test of its own, finish.
FIX = [
    call("execute_bash", command="git log --all --format=%H"),
    call("str_replace_editor", command="view", path=f"/testbed/{CALC}"),
    call("str_replace_editor", command="str_replace", path=CALC, old_str="return a - b", new_str="return a + b"),
    call("str_replace_editor", command="create", path="tests/test_mine.py", file_text="def test_mine():\n    pass\n"),
    call("finish", message="add() adds"),
]


def environment(forged, **limits) -> AgentEnv:
    tmp, store, _ = forged
    opts = EvalOptions(run_id="agent-test", store=store, log_dir=tmp / "logs", repo_mirror=tmp / "mirror")
    return AgentEnv(load_config(**limits), opts.model_copy(update={"sandbox": "process"}))


def run_rollout(forged, reply, **limits):
    """One rollout of FIX_ID through the real loop and engine, against the double: (trajectory, requests)."""
    with openai_double(reply) as (url, requests):
        trajectory = rollout(environment(forged, **limits), make_model(double_model(url)), forged[2][FIX_ID])
    return trajectory, requests


def observations(trajectory) -> list[str]:
    return [m["content"] for m in trajectory.messages[2:] if m["role"] in ("tool", "user")]


BACKENDS = [
    "process",
    pytest.param("docker", marks=pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers here")),
]


@pytest.mark.parametrize("sandbox", BACKENDS)
def test_a_replayed_fix_becomes_a_prediction_that_eval_resolves(forged, sandbox, tmp_path):
    tmp, store, rows = forged
    dataset = tmp_path / "one.jsonl"
    dataset.write_text(rows[FIX_ID].model_dump_json() + "\n")
    out = tmp_path / "run"
    with openai_double(replaying(FIX)) as (url, requests):
        command = [REPOFORGE, "agent", "run", "--dataset", str(dataset), "-o", str(out), "--base-url", url]
        command += [
            "--model",
            "double",
            "--sandbox",
            sandbox,
            "--store",
            str(store),
            "--repo-mirror",
            str(tmp / "mirror"),
            *("--price-input", "1", "--price-output", "2"),  # US dollars per million tokens
        ]
        ran = subprocess.run(command, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert len(requests) == len(FIX)
        assert [tool["function"]["name"] for tool in requests[0]["tools"]] == [
            "execute_bash",
            "str_replace_editor",
            "finish",
        ]
        again = subprocess.run(command, capture_output=True, text=True)  # resumes: nothing left to do
        assert again.returncode == 0 and len(requests) == len(FIX)

    trajectory = json.loads((out / "trajectories" / FIX_ID / "0.json").read_text())
    assert trajectory["exit_reason"] == "submitted" and trajectory["error"] is None
    assert [m["role"] for m in trajectory["messages"]] == ["system", "user"] + ["assistant", "tool"] * len(FIX)
    history = trajectory["messages"][3]["content"]
    assert history.split() == ["exit", "code:", "0", rows[FIX_ID].base_commit]  # nothing newer than the base
    assert [step["actions"][0]["tool"] for step in trajectory["steps"]] == [c["name"] for c in FIX]
    assert all(step["model_seconds"] > 0 and step["sandbox_seconds"] >= 0 for step in trajectory["steps"])
    assert trajectory["usage"] == {"prompt_tokens": 100 * len(FIX), "completion_tokens": 10 * len(FIX)}
    assert trajectory["cost"] == pytest.approx((100 * 1.0 + 10 * 2.0) * len(FIX) / 1e6)
    assert trajectory["verdict"] == {"run_id": "agent", "resolved": True, "error": None, "fail_to_pass": 1.0}
    patch = trajectory["prediction"]["model_patch"]
    assert "+    return a + b" in patch and "test_mine" not in patch  # the agent's own test is left out

    [prediction] = [json.loads(line) for line in (out / "preds.jsonl").read_text().splitlines()]
    assert prediction == {"instance_id": FIX_ID, "model_name_or_path": "double", "model_patch": patch}
    assert json.loads((out / "double.agent.json").read_text())["resolved_ids"] == [FIX_ID]
    # The predictions file goes straight into `repoforge eval`, run from another folder.
    graded = subprocess.run(
        [REPOFORGE, "eval", "--dataset", str(dataset), "--predictions", str(out / "preds.jsonl"), "--run-id", "again"]
        + ["--sandbox", sandbox, "--store", str(store), "--repo-mirror", str(tmp / "mirror")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert graded.returncode == 0, graded.stdout + graded.stderr
    assert json.loads((tmp_path / "double.again.json").read_text())["resolved_ids"] == [FIX_ID]


def test_sft_data_keeps_exactly_the_resolved_trajectories(forged, tmp_path):
    tmp, store, rows = forged
    out = tmp_path / "run"
    fixes = replaying(FIX)

    def reply(body: dict):  # the fix for FIX_ID; every other instance is given up at once
        if "difference" in body["messages"][1]["content"]:
            return fixes(body)
        return replaying([call("finish")])(body)

    with openai_double(reply) as (url, _):
        command = [REPOFORGE, "agent", "run", "--dataset", str(tmp / "forged" / "instances.jsonl"), "-o", str(out)]
        command += ["--base-url", url, "--model", "double", "--sandbox", "process", "--store", str(store)]
        command += ["--repo-mirror", str(tmp / "mirror"), "--samples", "2"]
        first = subprocess.run(command + ["-i", FIX_ID], capture_output=True, text=True)
        assert first.returncode == 0, first.stdout + first.stderr
        assert [json.loads(line)["instance_id"] for line in (out / "preds.jsonl").read_text().splitlines()] == [FIX_ID]
        ran = subprocess.run(command, capture_output=True, text=True)  # the rest, added to the same folder
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert len(list((out / "trajectories").glob("*/*.json"))) == 2 * len(rows)
    reports = [out / "double.agent.json", out / "double-sample1.agent.json"]
    assert [json.loads(r.read_text())["resolved_ids"] for r in reports] == [[FIX_ID], [FIX_ID]]
    assert len((out / "preds-sample1.jsonl").read_text().splitlines()) == len(rows)

    sft = tmp_path / "sft.jsonl"
    made = subprocess.run(
        [REPOFORGE, "sft-data", "--trajectories", str(out / "trajectories"), "-o", str(sft)]
        + ["--report", str(reports[0])],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    [row] = [json.loads(line) for line in sft.read_text().splitlines()]  # sample 0 of FIX_ID, nothing else
    assert (row["instance_id"], row["sample"]) == (FIX_ID, 0)
    assert [m["role"] for m in row["messages"]] == ["system", "user"] + ["assistant", "tool"] * len(FIX)
    assert [m["training"] for m in row["messages"]] == [False, False] + [True, False] * len(FIX)
    edit = row["messages"][6]["tool_calls"][0]["function"]
    assert edit == {"name": "str_replace_editor", "arguments": FIX[2]["arguments"]}
    assert [tool["function"]["name"] for tool in row["tools"]] == ["execute_bash", "str_replace_editor", "finish"]


def test_the_embedded_model_drives_the_loop_to_a_clean_stop(forged, served, tmp_path):
    tmp, store, rows = forged
    base_url, model = served
    dataset = tmp_path / "one.jsonl"
    dataset.write_text(rows[FIX_ID].model_dump_json() + "\n")
    out = tmp_path / "run"
    ran = subprocess.run(
        [REPOFORGE, "agent", "run", "--dataset", str(dataset), "-o", str(out), "--base-url", base_url, "--model", model]
        + ["--max-turns", "2", "--max-tokens", "48", "--tool-mode", "text", "--sandbox", "process"]
        + ["--store", str(store)]
        + ["--repo-mirror", str(tmp / "mirror")],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    trajectory = json.loads((out / "trajectories" / FIX_ID / "0.json").read_text())
    assert trajectory["exit_reason"] in ("turn_limit", "submitted", "context_limit")
    assert 1 <= len(trajectory["steps"]) <= 2 and trajectory["error"] is None
    assert trajectory["tools"] == [] and '"command": {"type": "string"' in trajectory["messages"][0]["content"]
    assert trajectory["verdict"]["error"] is None
    [prediction] = [json.loads(line) for line in (out / "preds.jsonl").read_text().splitlines()]
    assert prediction["instance_id"] == FIX_ID and prediction["model_name_or_path"] == "SmolLM2-135M-Instruct"
    assert (out / "SmolLM2-135M-Instruct.agent.json").is_file() and model.endswith("/SmolLM2-135M-Instruct")


def test_a_local_engine_gives_the_token_ids_and_loss_mask(forged, model_store, tmp_path):
    tmp, store, rows = forged
    dataset = tmp_path / "one.jsonl"
    dataset.write_text(rows[FIX_ID].model_dump_json() + "\n")
    out = tmp_path / "run"
    folder = model_store / "models" / "SmolLM2-135M-Instruct"
    ran = subprocess.run(
        [REPOFORGE, "agent", "run", "--dataset", str(dataset), "-o", str(out), "--engine", "local"]
        + ["--model", str(folder), "--max-turns", "1", "--max-tokens", "24", "--no-evaluate"]
        + ["--sandbox", "process", "--store", str(store), "--repo-mirror", str(tmp / "mirror")],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    trajectory = json.loads((out / "trajectories" / FIX_ID / "0.json").read_text())
    [step] = trajectory["steps"]
    assert trajectory["exit_reason"] == "turn_limit" and trajectory["verdict"] is None
    assert len(step["token_ids"]) == len(step["logprobs"]) == step["usage"]["completion_tokens"] <= 24
    assert trajectory["token_ids"] == step["prompt_token_ids"] + step["token_ids"]
    assert trajectory["loss_mask"] == [0] * len(step["prompt_token_ids"]) + [1] * len(step["token_ids"])


def test_the_environment_as_a_trainer_drives_it_and_its_reward(forged):
    env = environment(forged)
    rewards = []
    for script in (FIX, [call("finish")]):  # the fix, then nothing: each rollout is graded afresh
        with openai_double(replaying(script)) as (url, _):
            model = make_model(double_model(url))
            first = env.reset(forged[2][FIX_ID])
            assert [m["role"] for m in first] == ["system", "user"] and "difference" in first[1]["content"]
            done = False
            while not done:
                observation, done, info = env.step(model.chat(env.messages, tools=env.tools))
                assert observation == env.messages[-len(observation) :]
        assert info["exit_reason"] == "submitted"
        rewards.append(env.reward())
    env.close()
    assert rewards == [1.0, 0.0]


def test_the_prediction_leaves_out_what_the_agents_commands_left_behind(forged):
    """Running the tests writes bytecode, installing writes egg-info, and a repository need not ignore them; a binary
    file is no patch the harness takes. The prediction is the source change alone, and it resolves."""
    litter = (
        "python -m compileall -q src && "
        "mkdir -p src/calcpkg.egg-info .pytest_cache/v && echo calcpkg > src/calcpkg.egg-info/top_level.txt && "
        "echo {} > .pytest_cache/v/lastfailed && printf 'B\\000I\\001N' > src/calcpkg/table.bin && ls src/calcpkg"
    )
    script = [FIX[2], call("execute_bash", command=litter), call("finish")]
    trajectory, _ = run_rollout(forged, replaying(script))
    assert "__pycache__" in observations(trajectory)[1]  # the bytecode was written
    patch = trajectory.prediction.model_patch
    assert [line for line in patch.splitlines() if line.startswith("diff --git")] == [f"diff --git a/{CALC} b/{CALC}"]
    assert grade(forged[2][FIX_ID], trajectory.prediction, environment(forged).opts).resolved


def test_the_text_format_when_the_model_gives_no_tool_calls(forged):
    script = ["Let me think about it.", *FIX]  # no action at first: told the format, then actions as text
    trajectory, requests = run_rollout(forged, replaying(script, native=False))
    assert trajectory.exit_reason == "submitted"
    first = observations(trajectory)[0]
    assert first.startswith("No action found in your answer.") and "```bash" in first
    assert [m["role"] for m in trajectory.messages[2:]] == ["assistant", "user"] * len(script)
    assert "+    return a + b" in trajectory.prediction.model_patch


def test_a_shell_block_is_a_command_and_two_actions_are_refused(forged):
    both = "```bash\nls\n```\nand\n```bash\npwd\n```"
    script = ["```bash\necho $((6 * 7))\n```", both, '```tool\n{"name": "finish"}\n```']
    trajectory, _ = run_rollout(forged, replaying(script, native=False))
    seen = observations(trajectory)
    assert seen[0] == "exit code: 0\n42\n" and seen[1].startswith("Your answer holds 2 actions")
    assert trajectory.exit_reason == "submitted"


def test_tool_calls_with_bad_arguments_are_answered_and_the_rollout_goes_on(forged):
    script = [
        call("execute_bash", arguments="{not json"),
        {"name": "str_replace_editor", "arguments": '{"command": "view"'},
        call("str_replace_editor", command="view"),
        call("str_replace_editor", command="str_replace", path=CALC, old_str="return", new_str="x"),
        call("str_replace_editor", command="view", path="../../etc/passwd"),
        call("rm_everything", path="/"),
        call("finish"),
    ]
    trajectory, _ = run_rollout(forged, replaying(script))
    seen = observations(trajectory)
    assert (
        seen[0]
        == "error: bad arguments for execute_bash: command: Field required; arguments: Extra inputs are not permitted"
    )
    assert seen[1].startswith("error: the arguments are not valid JSON")
    assert seen[2] == "error: bad arguments for str_replace_editor: path: Field required"
    assert seen[3] == f"error: old_str occurs 2 times in /testbed/{CALC} (at lines 2, 6); it must occur exactly once"
    assert seen[4] == "error: ../../etc/passwd is outside the repository (/testbed)"
    assert seen[5].startswith("error: no tool is named 'rm_everything'")
    assert trajectory.exit_reason == "submitted" and trajectory.prediction.model_patch == ""
    assert [step.actions[0].error for step in trajectory.steps] == [True] * 6 + [False]


def test_editing_inserts_and_undoes(forged):
    script = [
        call("str_replace_editor", command="insert", path=CALC, insert_line=0, new_str="# calc"),
        call("str_replace_editor", command="str_replace", path=CALC, old_str="return a - b", new_str="return a + b"),
        call("str_replace_editor", command="undo_edit", path=CALC),
        call("str_replace_editor", command="create", path=CALC, file_text=""),
        call("str_replace_editor", command="view", path=CALC, view_range=[1, 2]),
        call("finish"),
    ]
    trajectory, _ = run_rollout(forged, replaying(script))
    seen = observations(trajectory)
    assert seen[0].startswith(
        f"edited /testbed/{CALC}; the lines around the edit:\n     1\t# calc\n     2\tdef add(a, b):\n"
    )
    assert seen[2] == f"the last edit of /testbed/{CALC} undone"
    assert seen[3] == f"error: /testbed/{CALC} exists: edit it with str_replace or insert"
    assert seen[4] == "     1\t# calc\n     2\tdef add(a, b):\n"
    added = [line for line in trajectory.prediction.model_patch.splitlines() if line.startswith("+")]
    assert added == [f"+++ b/{CALC}", "+# calc"]


def test_a_command_that_hangs_is_killed_at_command_seconds(forged):
    started = time.monotonic()
    trajectory, _ = run_rollout(
        forged, replaying([call("execute_bash", command="sleep 600"), call("finish")]), command_seconds=2
    )
    assert time.monotonic() - started < 120
    assert observations(trajectory)[0].startswith("The command was killed after 2 seconds")
    assert trajectory.steps[0].actions[0].error and trajectory.exit_reason == "submitted"


def test_turn_limit(forged):
    trajectory, requests = run_rollout(forged, replaying([call("execute_bash", command="true")]), turns=3)
    assert (trajectory.exit_reason, len(trajectory.steps), len(requests)) == ("turn_limit", 3, 3)


def test_total_seconds_limit(forged):
    trajectory, requests = run_rollout(
        forged, replaying([call("execute_bash", command="sleep 30")]), total_seconds=5, command_seconds=60
    )
    assert trajectory.exit_reason == "time_limit" and len(trajectory.steps) == 1
    assert trajectory.seconds["sandbox"] < 25  # the command got what was left of the rollout's seconds, not 30


@pytest.mark.parametrize("command,stops", [("seq 1 500", True), ("true", False)])
def test_context_limit(forged, command, stops):
    # The double counts 100 + 10 tokens per answer, answers are given 2048: the output of seq (~1900 characters,
    # some 630 tokens) does not fit in what is left, that of true does.
    trajectory, _ = run_rollout(
        forged, replaying([call("execute_bash", command=command)]), context_tokens=2458, turns=2
    )
    assert trajectory.exit_reason == ("context_limit" if stops else "turn_limit")
    assert len(trajectory.steps) == (1 if stops else 2)


def test_a_long_output_keeps_its_head_and_tail(forged):
    trajectory, _ = run_rollout(
        forged, replaying([call("execute_bash", command="seq 1 500"), call("finish")]), observation_chars=200
    )
    seen = observations(trajectory)[0]
    assert seen.startswith("exit code: 0\n1\n2\n3\n") and seen.endswith("498\n499\n500\n")
    total = len("exit code: 0\n") + sum(len(f"{n}\n") for n in range(1, 501))
    assert f"characters of output cut: {total} in all" in seen
    assert len(seen) < 200 + 200


def test_an_endpoint_that_fails_mid_run_ends_the_rollout_and_keeps_the_work(forged):
    script = [FIX[2], 500]
    trajectory, requests = run_rollout(forged, replaying(script))
    assert trajectory.exit_reason == "model_error" and "500" in trajectory.error
    assert len(trajectory.steps) == 1 and "+    return a + b" in trajectory.prediction.model_patch


def test_the_tool_schemas_are_valid_json_schema():
    """A description holding a comma once became a key of its own in YAML's flow style ({"run with bash -c.": null})."""
    tools = {tool["function"]["name"]: tool["function"]["parameters"] for tool in load_config().tools}
    assert tools["execute_bash"]["properties"] == {
        "command": {"type": "string", "description": "The command, run with bash -c."}
    }
    for parameters in tools.values():
        for schema in parameters["properties"].values():
            assert None not in schema.values() and set(schema) <= {"type", "description", "enum", "items"}
