"""`repoforge train sft` on the tiny random model (tests/conftest.py), and `repoforge plot`."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch
from conftest import REPOFORGE
from transformers import AutoModelForCausalLM, AutoTokenizer

from repoforge.train.plot import PlotError, plot_runs
from repoforge.train.sft import SFTError, SFTOptions, SFTRow, read_rows, tokenize_row, train_sft

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "execute_bash",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
    }
]
CALL = {"type": "function", "id": "c1", "function": {"name": "execute_bash", "arguments": {"command": "git diff"}}}
# What the tiny model's template renders of the two assistant turns of row(): their tokens, and only theirs, are trained.
TRAINED_TEXT = (
    'I will look.<tool_call>{"name": "execute_bash", "arguments": {"command": "git diff"}}</tool_call><|im_end|>\n'
    "The fix: def add(a, b): return a + b<|im_end|>\n"
)


def row(index: int = 0, rehearsed: bool = False) -> dict:
    """A resolved trajectory as `repoforge sft-data` writes it; `rehearsed` adds an assistant turn marked training
    false (a turn the model did not write)."""
    messages = [
        {"role": "system", "content": "You are a software engineer.", "training": False},
        {"role": "user", "content": f"Fix issue {index} in the repository at /testbed.", "training": False},
        {"role": "assistant", "content": "I will look.", "tool_calls": [CALL], "training": True},
        {"role": "tool", "content": "diff --git a/src/calc.py b/src/calc.py", "tool_call_id": "c1", "training": False},
        {"role": "assistant", "content": "The fix: def add(a, b): return a + b", "training": True},
    ]
    if rehearsed:
        messages.insert(2, {"role": "assistant", "content": "Traceback (most recent call last):", "training": False})
    return {"messages": messages, "tools": TOOLS, "instance_id": f"calc__calc-{index}", "sample": 0}


def write_rows(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def assistant_loss(folder, rows) -> float:
    """The mean loss of a model on the tokens of the messages marked training: a plain forward pass per row."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    losses = []
    for r in rows:
        tokens = tokenize_row(SFTRow.model_validate(r), tokenizer, 8192)
        ids = torch.tensor([tokens["input_ids"]])
        labels = ids.masked_fill(torch.tensor([tokens["assistant_masks"]]) == 0, -100)
        with torch.no_grad():
            losses.append(model(input_ids=ids, labels=labels).loss.item())
    return sum(losses) / len(losses)


def test_the_mask_covers_the_trained_turns_exactly(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    data = SFTRow.model_validate(row(rehearsed=True))
    tokens = tokenize_row(data, tokenizer, 8192)
    ids, mask = tokens["input_ids"], tokens["assistant_masks"]
    rendered = tokenizer.apply_chat_template(data.messages, tools=TOOLS, tokenize=False)
    assert tokenizer.decode(ids) == rendered
    assert len(mask) == len(ids) and set(mask) == {0, 1}
    assert tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m]) == TRAINED_TEXT
    # the assistant turn marked false is rendered, and not trained
    assert "Traceback" in rendered and "Traceback" not in TRAINED_TEXT
    cut = tokenize_row(data, tokenizer, 20)
    assert cut == {"input_ids": ids[:20], "assistant_masks": mask[:20]}


def test_a_template_whose_turns_do_not_extend_token_for_token_is_an_error_naming_the_row(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    # Only the last turn ends with <|im_end|>: a conversation's text is then not its prefix's text continued.
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['content'] }}{% if loop.last %}<|im_end|>{% endif %}{% endfor %}"
    )
    with pytest.raises(SFTError, match=r"calc__calc-3 sample 0: .*message 1 follows.*token for token"):
        tokenize_row(SFTRow.model_validate(row(3)), tokenizer, 8192)
    # Turns written back to back: "a" then "dd" are one token, "add", which neither message owns.
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    merged = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "dd", "training": True}]}
    with pytest.raises(SFTError, match=r"\? sample 0: tokens merge across message boundaries"):
        tokenize_row(SFTRow.model_validate(merged), tokenizer, 8192)


@pytest.fixture(scope="module")
def sft_run(tiny_model, tmp_path_factory):
    """Two rows trained 6 epochs at a high learning rate: 12 steps."""
    tmp = tmp_path_factory.mktemp("sft")
    rows = [row(0), row(1)]
    write_rows(tmp / "sft.jsonl", rows)
    opts = SFTOptions(data=tmp / "sft.jsonl", model=tiny_model, out=tmp / "run", epochs=6, learning_rate=1e-3)
    return opts, rows, train_sft(opts)


def test_sft_lowers_the_loss_of_the_trained_turns(sft_run, tiny_model):
    opts, rows, summary = sft_run
    final = opts.out / "final"
    assert summary["rows"] == 2 and summary["steps"] == 12 and summary["checkpoint"] == str(final)
    assert json.loads((opts.out / "summary.json").read_text()) == summary
    assert assistant_loss(final, rows) < assistant_loss(tiny_model, rows) - 0.1
    metrics = [json.loads(line) for line in (opts.out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 13))
    assert all(isinstance(m["loss"], float) and m["elapsed_seconds"] >= 0 for m in metrics)
    assert (summary["loss_first"], summary["loss_last"]) == (metrics[0]["loss"], metrics[-1]["loss"])
    assert summary["loss_last"] < summary["loss_first"]
    assert len(list(opts.out.glob("checkpoint-*"))) == 2

    tokenizer = AutoTokenizer.from_pretrained(final)
    model = AutoModelForCausalLM.from_pretrained(final)
    assert model.config.use_cache
    prompt = tokenizer.apply_chat_template(rows[0]["messages"][:2], add_generation_prompt=True, return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > prompt["input_ids"].shape[1]


def test_a_rerun_keeps_a_finished_run_and_resumes_an_interrupted_one(sft_run, tmp_path):
    opts, _, summary = sft_run
    metrics = (opts.out / "metrics.jsonl").read_text()
    assert train_sft(opts) == summary and (opts.out / "metrics.jsonl").read_text() == metrics

    # Interrupted after step 10: its last checkpoint is checkpoint-10, and no model is saved yet.
    copy = opts.model_copy(update={"out": tmp_path / "run"})
    shutil.copytree(opts.out, copy.out)
    for done in ("final", "summary.json", "checkpoint-12"):
        shutil.rmtree(copy.out / done, ignore_errors=True)
        (copy.out / done).unlink(missing_ok=True)
    resumed = train_sft(copy)
    assert resumed["steps"] == 12 and resumed["loss_last"] == pytest.approx(summary["loss_last"], abs=1e-4)
    steps = [json.loads(line)["step"] for line in (copy.out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))
    assert sorted(p.name for p in copy.out.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-12"]


def test_lora_saves_a_merged_plain_model(tiny_model, tmp_path):
    write_rows(tmp_path / "sft.jsonl", [row()])
    opts = SFTOptions(
        data=tmp_path / "sft.jsonl", model=tiny_model, out=tmp_path / "run", epochs=2, learning_rate=1e-2, lora=True
    )
    summary = train_sft(opts)
    final = opts.out / "final"
    assert summary["steps"] == 2
    assert not list(final.glob("adapter*"))
    base = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    merged = AutoModelForCausalLM.from_pretrained(final).state_dict()
    assert merged.keys() == base.keys()
    changed = [name for name in base if not torch.equal(base[name], merged[name])]
    assert "model.layers.0.self_attn.q_proj.weight" in changed
    assert all("norm" not in name for name in changed)  # only the adapted linear layers move


def test_bad_rows_are_errors_naming_them(tmp_path, tiny_model):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(row()) + "\n{not json\n")
    with pytest.raises(SFTError, match=r"bad\.jsonl:2: not an SFT row"):
        read_rows(bad)
    bad.write_text(json.dumps({"messages": []}) + "\n")
    with pytest.raises(SFTError, match=r"bad\.jsonl:1: not an SFT row: messages: "):
        read_rows(bad)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(SFTError, match="empty, it holds no rows"):
        read_rows(tmp_path / "empty.jsonl")
    with pytest.raises(SFTError, match="missing.jsonl: not a readable JSONL file"):
        read_rows(tmp_path / "missing.jsonl")
    write_rows(tmp_path / "good.jsonl", [row()])
    opts = SFTOptions(data=tmp_path / "good.jsonl", model=tmp_path, out=tmp_path / "run")
    with pytest.raises(SFTError, match="not a Hugging Face model folder"):
        train_sft(opts)
    short = opts.model_copy(update={"model": tiny_model, "max_length": 8})
    with pytest.raises(SFTError, match="no row has a message marked training within its first 8 tokens"):
        train_sft(short)


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([REPOFORGE, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("text", "message"),
    [(json.dumps(row()) + "\n[1, 2]\n", "data.jsonl:2: not an SFT row"), ("", "data.jsonl: empty, it holds no rows")],
)
def test_the_cli_tells_bad_data_in_one_line(tmp_path, tiny_model, text, message):
    (tmp_path / "data.jsonl").write_text(text)
    done = run_cli("train", "sft", "--data", tmp_path / "data.jsonl", "--model", tiny_model, "-o", tmp_path / "out")
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2
    assert message in output and "\n" not in output and "Traceback" not in output
    assert not (tmp_path / "out").exists()


def rl_metrics(step: int, idle: float) -> dict:
    return {
        "step": step,
        "elapsed_seconds": 30.0 * step,
        "reward": 0.1 * step,
        "resolved_rate": 0.05 * step,
        "loss": 1.0 / step,
        "trainer_busy_seconds": 10.0,
        "trainer_idle_seconds": 10.0 * idle,
        "idle_fraction": idle / (1 + idle),
        "rollouts_per_minute": 4.0 / (1 + idle),
        "staleness": {"0": 3, "1": 1},
        "tokens": 1000 + step,
        "dropped_stale": 0,
    }


PNG = b"\x89PNG\r\n\x1a\n"
FAMILIES = {"loss.png", "reward.png", "trainer.png", "throughput.png", "staleness.png", "tokens.png"}


@pytest.fixture
def runs(tmp_path):
    for name, idle in (("sync", 1.0), ("async", 0.1)):
        (tmp_path / name).mkdir()
        write_rows(tmp_path / name / "metrics.jsonl", [rl_metrics(step, idle) for step in range(1, 6)])
    return tmp_path / "sync", tmp_path / "async"


def assert_pngs(folder, names) -> None:
    assert {p.name for p in folder.iterdir()} == names
    for name in names:
        data = (folder / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000


def test_plot_overlays_runs_one_png_per_family(runs, tmp_path):
    written = plot_runs(list(runs), tmp_path / "plots")
    assert {p.name for p in written} == FAMILIES
    assert_pngs(tmp_path / "plots", FAMILIES)

    sft = tmp_path / "sft"
    sft.mkdir()
    lines = [json.dumps({"step": s, "loss": 2.0 / s, "learning_rate": 1e-3}) for s in (1, 2, 3)]
    (sft / "metrics.jsonl").write_text("\n".join([*lines, "{torn"]) + "\n")
    assert [p.name for p in plot_runs([sft], sft / "plots")] == ["loss.png"]


def test_plot_tells_a_folder_without_metrics(tmp_path):
    with pytest.raises(PlotError, match="nowhere: no metrics.jsonl"):
        plot_runs([tmp_path / "nowhere"], tmp_path / "plots")
    (tmp_path / "metrics.jsonl").write_text("{torn\n[]\n")
    with pytest.raises(PlotError, match=r"no usable row, 2 malformed lines \(the first: line 1\)"):
        plot_runs([tmp_path], tmp_path / "plots")


def test_plot_cli(runs, tmp_path):
    done = run_cli("plot", *runs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_pngs(runs[0] / "plots", FAMILIES)
    done = run_cli("plot", runs[0], tmp_path / "nowhere", "-o", tmp_path / "plots")
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2
    assert "nowhere: no metrics.jsonl" in output and "\n" not in output and "Traceback" not in output
