"""RL: the objective (leave-one-out advantages, the clipped loss on the model's own tokens), the staleness bound,
and short runs on forged instances in real sandboxes, rewarded by the real harness, with a tiny random model."""

from __future__ import annotations

import functools
import json
import subprocess

import pytest
import torch
from conftest import REPOFORGE
from transformers import AutoModelForCausalLM

from repoforge.agent.config import load_config
from repoforge.harness.evaluate import EvalOptions
from repoforge.train.objective import leave_one_out, policy_loss
from repoforge.train.replay import ReplayPolicy
from repoforge.train.rl import Batches, RLOptions, train_rl
from repoforge.train.rollouts import Sample

FIX_ID = "example__calcpkg-12"  # add() returned the difference
FIX = [
    {"name": "str_replace_editor", "arguments": {"command": "view", "path": "src/calcpkg/calc.py"}},
    {
        "name": "str_replace_editor",
        "arguments": {
            "command": "str_replace",
            "path": "src/calcpkg/calc.py",
            "old_str": "return a - b",
            "new_str": "return a + b",
        },
    },
    {"name": "finish", "arguments": {"message": "add() adds"}},
]
GIVE_UP = [{"name": "finish", "arguments": {}}]


def test_leave_one_out_advantages():
    assert leave_one_out([1.0, 0.0, 0.0, 1.0]) == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3])
    assert leave_one_out([1.0, 0.0]) == [1.0, -1.0]
    assert leave_one_out([0.5, 0.5, 0.5]) == [0.0, 0.0, 0.0]
    assert leave_one_out([0.0, 0.25, 1.0]) == pytest.approx([-0.625, -0.25, 0.875])
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out([1.0])


def loss_and_grad(mask: list[int], old: list[float], advantage: float, seed: int = 0):
    """The loss over 6 tokens of a 10-word vocabulary, and its gradient with respect to the logits."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(6, 10, generator=generator, requires_grad=True)
    ids = torch.tensor([1, 4, 2, 7, 3, 9])
    loss = policy_loss(logits, ids, torch.tensor(mask), torch.tensor(old), advantage, clip=0.2, scale=1 / 3)
    loss.backward()
    return loss, logits.grad


def test_masked_tokens_get_no_gradient():
    mask = [0, 0, 1, 1, 0, 1]  # a prompt, two generated tokens, a tool's output token, a generated one
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        logits = torch.randn(6, 10, generator=generator)
        own = logits[:-1].log_softmax(-1).gather(1, torch.tensor([[4], [2], [7], [3], [9]])).squeeze(1)
    old = own[[1, 2, 4]]  # the generating policy's log-probabilities: this one's (ratio 1)
    loss, grad = loss_and_grad(mask, old.tolist(), advantage=1.0)
    # logits[t] predicts ids[t+1]: only rows 1, 2 and 4 predict generated tokens
    assert [bool(row.abs().sum()) for row in grad] == [False, True, True, False, True, False]
    # at ratio 1 the loss is -advantage x the number of marked tokens x scale
    assert loss.item() == pytest.approx(-1.0)


def test_the_importance_ratio_is_clipped():
    # The generating policy gave these tokens far lower probabilities: ratio > 1 + clip, so a positive advantage
    # has nothing more to gain and no gradient; a negative one still pushes the ratio down.
    mask = [0, 0, 1, 1, 0, 1]
    _, pushed_up = loss_and_grad(mask, [-30.0, -30.0, -30.0], advantage=1.0)
    assert pushed_up.abs().sum() == 0
    _, pushed_down = loss_and_grad(mask, [-30.0, -30.0, -30.0], advantage=-1.0)
    assert pushed_down.abs().sum() > 0


def sample(group: int, seed: int, version: int, reward: float = 0.0) -> Sample:
    return Sample(
        instance_id="i",
        seed=seed,
        group=group,
        version=version,
        reward=reward,
        resolved=bool(reward),
        exit_reason="submitted",
        turns=[],
        seconds=0.0,
    )


def test_a_group_staler_than_k_is_never_trained_on():
    batches = Batches(group_size=2)
    for group, versions in enumerate([(0, 0), (1, 3), (2, 2), (3, 3), (3, 2)]):
        for k, version in enumerate(versions):
            batches.add(sample(group, 2 * group + k, version))
    assert batches.take(1, version=3, max_staleness=1) == [[sample(2, 4, 2), sample(2, 5, 2)]]
    assert batches.dropped == 2  # versions 0 and 1 (a group is as old as its oldest episode)
    assert [[s.version for s in g] for g in batches.take(2, version=3, max_staleness=1)] == [[3, 3], [3, 2]]
    assert batches.take(1, version=3, max_staleness=1) is None
    batches.add(sample(5, 10, 3))  # half a group is not a group
    assert batches.take(1, version=3, max_staleness=1) is None and batches.dropped == 2


def options(forged, out, tiny_model, **settings) -> RLOptions:
    tmp, store, _ = forged
    eval_opts = EvalOptions(run_id="rl", store=store, log_dir=out / "logs", repo_mirror=tmp / "mirror")
    agent = load_config(tool_mode="text", turns=4, sampling={"max_tokens": 8})
    settings = dict(steps=2, group_size=2, workers=2, learning_rate=1e-3) | settings
    return RLOptions(
        out=out, model=tiny_model, agent=agent, eval=eval_opts.model_copy(update={"sandbox": "process"}), **settings
    )


def weights(folder) -> dict:
    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def test_a_short_rl_run_of_the_tiny_model_on_forged_instances(forged, tiny_model, tmp_path):
    opts = options(forged, tmp_path / "rl", tiny_model, max_staleness=1)
    summary = train_rl(list(forged[2].values()), opts)
    assert summary["steps"] == 2 and summary["checkpoint"] == str(tmp_path / "rl" / "checkpoints" / "step-2")
    metrics = [json.loads(line) for line in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in metrics] == [1, 2]
    assert all(set(row["staleness"]) <= {"0", "1"} and sum(row["staleness"].values()) == 2 for row in metrics)
    episodes = [json.loads(line) for line in (tmp_path / "rl" / "rollouts.jsonl").read_text().splitlines()]
    for episode in episodes:  # each reward is the harness's verdict, its report on disk
        report = tmp_path / "rl" / "logs" / "rl" / f"rl-{episode['seed']}" / episode["instance_id"] / "report.json"
        assert json.loads(report.read_text())[episode["instance_id"]]["resolved"] is episode["resolved"] is False
        assert episode["reward"] == 0.0 and episode["turns"] >= 1
    loaded = AutoModelForCausalLM.from_pretrained(summary["checkpoint"])
    assert loaded.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=3, do_sample=False).shape == (1, 6)
    assert (tmp_path / "rl" / "checkpoints" / "step-2" / "optimizer.pt").is_file()

    # a rerun asking for one more step resumes from step 2: two episodes more, one metrics row more
    summary = train_rl(list(forged[2].values()), opts.model_copy(update={"steps": 3}))
    assert summary["steps"] == 3
    assert len((tmp_path / "rl" / "rollouts.jsonl").read_text().splitlines()) >= len(episodes) + 2
    assert [json.loads(line)["step"] for line in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
        3,
    ]
    assert sorted(p.name for p in (tmp_path / "rl" / "checkpoints").iterdir()) == ["step-2", "step-3"]


@pytest.mark.parametrize("partial_credit", [False, True])
def test_sync_and_async_give_the_same_loss_on_the_same_episodes(forged, tiny_model, tmp_path, partial_credit):
    """One worker, one group of a fix (even seeds) and a give-up (odd seeds): both modes train their first step on
    exactly these two episodes, rewarded 1 and 0 by the harness, so the loss and the new weights are the same."""
    replay = functools.partial(ReplayPolicy, scripts=[FIX, GIVE_UP])
    rows = [forged[2][FIX_ID]]
    runs = {}
    for mode in ("sync", "async"):
        opts = options(
            forged, tmp_path / mode, tiny_model, steps=1, workers=1, sync=mode == "sync", partial_credit=partial_credit
        )
        train_rl(rows, opts, engine=replay)
        runs[mode] = json.loads((tmp_path / mode / "metrics.jsonl").read_text())
        episodes = [json.loads(line) for line in (tmp_path / mode / "rollouts.jsonl").read_text().splitlines()]
        assert [(e["seed"], e["reward"], e["exit_reason"]) for e in episodes[:2]] == [
            (0, 1.0, "submitted"),
            (1, 0.0, "submitted"),
        ]
    assert runs["sync"]["reward"] == runs["async"]["reward"] == 0.5
    assert runs["sync"]["loss"] == pytest.approx(runs["async"]["loss"], abs=1e-6) and runs["sync"]["loss"] != 0
    start, sync, asynchronous = (
        weights(f)
        for f in (
            tiny_model,
            tmp_path / "sync" / "checkpoints" / "step-1",
            tmp_path / "async" / "checkpoints" / "step-1",
        )
    )
    assert all(torch.allclose(sync[name], asynchronous[name], atol=1e-6) for name in start)
    assert any(not torch.equal(start[name], sync[name]) for name in start)


def test_train_rl_refuses_a_group_of_one(forged, tiny_model, tmp_path):
    dataset = forged[0] / "forged" / "instances.jsonl"
    result = subprocess.run(
        [
            REPOFORGE,
            "train",
            "rl",
            "--dataset",
            str(dataset),
            "-o",
            str(tmp_path),
            "--model",
            str(tiny_model),
            "--group-size",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and "--group-size" in result.stderr
