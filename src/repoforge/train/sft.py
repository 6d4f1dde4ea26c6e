"""`repoforge train sft`: supervised fine-tuning on `repoforge sft-data` rows, the loss on the model's own turns only.

We tokenize the rows ourselves, so that any chat template works: the conversation is rendered prefix by prefix and a
message's tokens are what its turn adds (TRL's assistant_only_loss needs {% generation %} markers that most templates,
SmolLM2's among them, lack). TRL's SFTTrainer then trains on the pre-tokenized rows (input_ids + assistant_masks).

torch, transformers and TRL are imported where used: they take seconds to import, and bad input is told at once.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError
from rich.console import Console

from repoforge.forge import write_atomic
from repoforge.schema import AbsolutePath

console = Console(stderr=True, soft_wrap=True)


class SFTError(ValueError):
    pass


class SFTOptions(BaseModel):
    data: Path  # JSONL rows of `repoforge sft-data`
    model: Path  # the starting model: a Hugging Face model folder
    out: AbsolutePath
    epochs: float = 1.0
    learning_rate: float = 2e-5
    batch_size: int = 1  # rows per device per forward pass
    gradient_accumulation: int = 1
    max_length: int = 8192  # tokens per row; the rest of a longer row is cut
    lora: bool = False
    lora_rank: int = 16
    lora_alpha: int = 32
    seed: int = 0


class SFTRow(BaseModel):
    messages: list[dict] = Field(min_length=1)  # each with `training`: whether the loss covers it
    tools: list[dict] | None = None
    instance_id: str = "?"
    sample: int = 0


def read_rows(path: Path) -> list[SFTRow]:
    """The rows of a JSONL file; a malformed line is an error naming it, as is a file with no row."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SFTError(f"{path}: not a readable JSONL file ({exc.__class__.__name__})") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(SFTRow.model_validate_json(line))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise SFTError(f"{path}:{number}: not an SFT row: {where + ': ' if where else ''}{error['msg']}") from None
    if not rows:
        raise SFTError(f"{path}: empty, it holds no rows")
    return rows


def tokenize_row(row: SFTRow, tokenizer, max_length: int) -> dict:
    """{"input_ids", "assistant_masks"} of a row, cut to max_length: the mask is 1 on the tokens of the messages marked
    training, except their header (`<|im_start|>assistant\\n`), which the generation prompt writes, not the model."""
    ids, mask, text = [], [], ""
    for index, message in enumerate(row.messages):
        rendered = _render(tokenizer, row, row.messages[: index + 1])
        pieces = [(rendered, bool(message.get("training")))]
        if message.get("training"):
            header = _render(tokenizer, row, row.messages[:index], add_generation_prompt=True)
            if header.startswith(text) and rendered.startswith(header):
                pieces.insert(0, (header, False))
        for piece, trained in pieces:
            if not piece.startswith(text):
                raise SFTError(
                    f"{row.instance_id} sample {row.sample}: the chat template renders messages 0-{index - 1} "
                    f"differently once message {index} follows: the conversation does not extend token for token"
                )
            added = _tokens(tokenizer, piece[len(text) :])
            ids += added
            mask += [int(trained)] * len(added)
            text = piece
    if _tokens(tokenizer, text) != ids:
        raise SFTError(
            f"{row.instance_id} sample {row.sample}: tokens merge across message boundaries: the conversation's "
            "tokens are not its messages' tokens end to end, so no message's tokens can be told apart"
        )
    return {"input_ids": ids[:max_length], "assistant_masks": mask[:max_length]}


def _render(tokenizer, row: SFTRow, messages: list[dict], add_generation_prompt: bool = False) -> str:
    if not messages:
        return ""
    return tokenizer.apply_chat_template(
        messages, tools=row.tools or None, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def _tokens(tokenizer, text: str) -> list[int]:
    # The template writes every special token itself (a BOS among them): the tokenizer must add none.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def train_sft(opts: SFTOptions) -> dict:
    """Train, resuming from OUT's last checkpoint; save the model to OUT/final and return (and write) the summary:
    {"rows", "skipped", "steps", "loss_first", "loss_last", "checkpoint"}."""
    final, summary_file = opts.out / "final", opts.out / "summary.json"
    if (final / "config.json").is_file() and summary_file.is_file():
        console.print(f"{final} exists: training is done, its summary is kept")
        return json.loads(summary_file.read_text())
    rows = read_rows(opts.data)
    tokenizer = _tokenizer(opts.model)
    tokenized = [tokenize_row(row, tokenizer, opts.max_length) for row in rows]
    trained = [row for row in tokenized if 1 in row["assistant_masks"]]
    if not trained:
        raise SFTError(f"{opts.data}: no row has a message marked training within its first {opts.max_length} tokens")
    trainer = _trainer(opts, tokenizer, trained)
    checkpoint = _last_checkpoint(opts.out)
    if checkpoint:
        console.print(f"resuming from {checkpoint}")
    trainer.train(resume_from_checkpoint=checkpoint)
    _save(trainer, tokenizer, final, opts.lora)
    losses = [row["loss"] for row in _metrics(opts.out / "metrics.jsonl")]
    summary = {
        "rows": len(trained),
        "skipped": len(rows) - len(trained),  # rows whose trained messages all lie past max_length
        "steps": trainer.state.global_step,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "checkpoint": str(final),
    }
    write_atomic(summary_file, json.dumps(summary, indent=2))
    return summary


def _tokenizer(model: Path):
    if not (model / "config.json").is_file():
        raise SFTError(f"{model}: not a Hugging Face model folder (no config.json)")
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise SFTError(f"{model}: its tokenizer does not load: {str(exc).splitlines()[0]}") from None
    if not tokenizer.chat_template:
        raise SFTError(f"{model}: its tokenizer has no chat template")
    return tokenizer


def _trainer(opts: SFTOptions, tokenizer, rows: list[dict]):
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, ProgressCallback
    from transformers.utils import logging
    from trl import SFTConfig, SFTTrainer

    # Only the training bar: TRL's passes over our rows (labels) and the loads and saves of weights are instant.
    datasets.disable_progress_bars()
    logging.disable_progress_bar()
    # On a GPU that has it, bf16 weights and autocast; on a CPU, fp32. TrainingArguments picks the device itself.
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        model = AutoModelForCausalLM.from_pretrained(opts.model, dtype=torch.bfloat16 if bf16 else torch.float32)
    except (OSError, ValueError) as exc:
        raise SFTError(f"{opts.model}: the model does not load: {str(exc).splitlines()[0]}") from None
    config = SFTConfig(
        output_dir=str(opts.out),
        num_train_epochs=opts.epochs,
        learning_rate=opts.learning_rate,
        per_device_train_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.gradient_accumulation,
        max_length=None,  # the rows are cut to max_length already
        bf16=bf16,
        activation_checkpointing=True,  # long rows fit in memory: activations are recomputed in the backward pass
        seed=opts.seed,
        dataloader_pin_memory=torch.cuda.is_available(),
        logging_steps=1,
        save_strategy="steps",
        save_steps=0.1,  # a tenth of the run: a crash loses little, and large models are not saved every step
        save_total_limit=2,
        report_to="tensorboard" if importlib.util.find_spec("tensorboard") else "none",
        log_level="warning",
        disable_tqdm=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=_lora(opts) if opts.lora else None,
    )
    trainer.remove_callback(ProgressCallback)  # ours prints no line per logged step
    for callback in _callbacks(opts.out / "metrics.jsonl"):
        trainer.add_callback(callback)
    return trainer


def _lora(opts: SFTOptions):
    from peft import LoraConfig

    return LoraConfig(r=opts.lora_rank, lora_alpha=opts.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM")


def _last_checkpoint(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out)) if out.is_dir() else None


def _save(trainer, tokenizer, final: Path, lora: bool) -> None:
    """A plain model folder any loader reads: a LoRA adapter is merged into the weights first."""
    from repoforge.llm.local import save_model_folder

    model = trainer.model.merge_and_unload() if lora else trainer.model
    model.config.use_cache = True  # training turned it off (gradient checkpointing); a served model wants it
    save_model_folder(model, tokenizer, final)


def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _callbacks(metrics: Path) -> list:
    """A TrainerCallback that appends every logged step to `metrics` (the file `repoforge plot` reads), and the progress
    bar, with the last loss on it instead of a line printed per logged step."""
    from transformers import ProgressCallback, TrainerCallback

    class MetricsFile(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            # A resumed run trains again the steps past its checkpoint: their rows go.
            kept = [row for row in _metrics(metrics) if row["step"] <= state.global_step]
            write_atomic(metrics, "".join(json.dumps(row) + "\n" for row in kept))
            self.offset = kept[-1]["elapsed_seconds"] if kept else 0.0
            self.start = time.monotonic()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or "loss" not in (logs or {}):
                return  # the last log is the run's totals, with no loss of a step
            row = {
                "step": state.global_step,
                "loss": logs["loss"],
                "learning_rate": logs.get("learning_rate"),
                "epoch": state.epoch,
                "elapsed_seconds": round(self.offset + time.monotonic() - self.start, 3),
            }
            with metrics.open("a") as handle:
                handle.write(json.dumps(row) + "\n")

    class Progress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.training_bar is not None and "loss" in (logs or {}):
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4g}")

    return [MetricsFile(), Progress()]
