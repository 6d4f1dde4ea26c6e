"""A model folder run in this process by transformers (CPU or GPU): for tests and for training, which need
the generated token ids and their log-probabilities."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from repoforge.llm.base import ChatResult, Message, ModelConfig, Sampling, ToolCall, Usage

# The tool-call format most chat templates teach their models (Hermes, Qwen): a JSON object in tags.
TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


class TransformersEngine:
    def __init__(self, config: ModelConfig):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(config.model)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model = AutoModelForCausalLM.from_pretrained(config.model).to(device).eval()
        self._lock = threading.Lock()  # one generation at a time: a model is not shared by threads safely

    def load_weights(self, state: dict) -> None:
        """A trainer's new weights (RL: after every step), for the generations that follow."""
        with self._lock:
            self._model.load_state_dict(state)

    def chat(
        self, messages: list[Message], tools: list[dict] | None = None, sampling: Sampling | None = None
    ) -> ChatResult:
        sampling = sampling or Sampling()
        prompt = self._tokenizer.apply_chat_template(
            messages, tools=tools, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self._model.device)
        prompt_ids = prompt["input_ids"][0]
        started = time.monotonic()
        with self._lock:
            if sampling.seed is not None:
                self._torch.manual_seed(sampling.seed)
            output = self._generate(prompt, sampling)
        generated = output.sequences[0][len(prompt_ids) :]
        scores = self._torch.stack(output.scores).log_softmax(-1)[:, 0, :]
        logprobs = scores.gather(1, generated[: len(scores)].unsqueeze(1)).squeeze(1)
        ended = bool(len(generated)) and int(generated[-1]) == self._tokenizer.eos_token_id
        text = self._tokenizer.decode(generated, skip_special_tokens=True)
        return ChatResult(
            text=TOOL_CALL.sub("", text).strip() if tools else text,
            tool_calls=_tool_calls(text) if tools else [],
            usage=Usage(prompt_tokens=len(prompt_ids), completion_tokens=len(generated)),
            finish_reason="stop" if ended else "length",
            model=self.config.model,
            seconds=time.monotonic() - started,
            token_ids=generated.tolist(),
            logprobs=logprobs.tolist(),
            prompt_token_ids=prompt_ids.tolist(),
        )

    def _generate(self, prompt, sampling: Sampling):
        sample = sampling.temperature > 0
        with self._torch.no_grad():
            return self._model.generate(
                **prompt,
                max_new_tokens=sampling.max_tokens,
                do_sample=sample,
                temperature=sampling.temperature if sample else None,
                top_p=None,
                top_k=None,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id,
            )


def save_model_folder(model, tokenizer, folder: Path, extra: Callable[[Path], None] | None = None) -> None:
    """model and tokenizer (and what `extra` writes) as a Hugging Face folder, in place at once: a crash leaves the
    old folder or none, never half of one."""
    partial = folder.with_name(folder.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if extra is not None:
        extra(partial)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def _tool_calls(text: str) -> list[ToolCall]:
    calls = []
    for match in TOOL_CALL.finditer(text):
        try:
            call = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue  # left in no call: the caller sees the text and may say what was wrong
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            arguments = call.get("arguments", {})
            arguments = arguments if isinstance(arguments, str) else json.dumps(arguments)
            calls.append(ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", name=call["name"], arguments=arguments))
    return calls
