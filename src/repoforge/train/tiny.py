"""A tiny causal LM, randomly initialised, with a byte-level BPE tokenizer trained on the spot: a model folder any
engine, trainer and server loads, made in seconds with no hub, so training runs end to end on a CPU (tests, bench)."""

from __future__ import annotations

from pathlib import Path

# ChatML with tools, as Qwen and Hermes templates write them: the tools listed in the system turn, a call as
# <tool_call>{"name", "arguments"}</tool_call> in the assistant's turn (what llm/local.py reads back).
CHAT_TEMPLATE = """{%- for message in messages -%}
{%- if loop.first and tools -%}
<|im_start|>system
{{ message['content'] if message['role'] == 'system' else '' }}
# Tools
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}<|im_end|>
{% endif -%}
{%- if not (loop.first and tools and message['role'] == 'system') -%}
<|im_start|>{{ message['role'] }}
{% if message['content'] %}{{ message['content'] }}{% endif %}
{%- for call in message.get('tool_calls') or [] %}
<tool_call>{"name": "{{ call['function']['name'] }}", "arguments": {{ call['function']['arguments'] | tojson \
if call['function']['arguments'] is mapping else call['function']['arguments'] }}}</tool_call>
{%- endfor %}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}<|im_start|>assistant
{% endif -%}"""

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# What the tokenizer learns its merges from: the words of agent conversations.
CORPUS = [
    "You are a software engineer. Fix the issue in the repository at /testbed.",
    "execute_bash str_replace_editor view create str_replace insert undo_edit finish command path old_str new_str",
    '<tool_call>{"name": "execute_bash", "arguments": {"command": "git diff"}}</tool_call>',
    "def add(a, b):\n    return a + b\n\nclass Test:\n    def test_add(self):\n        assert add(1, 2) == 3\n",
    "diff --git a/src/calc.py b/src/calc.py\n--- a/src/calc.py\n+++ b/src/calc.py\n@@ -1,2 +1,2 @@\n",
    'Traceback (most recent call last):\n  File "test.py", line 3, in <module>\nAssertionError\n',
]


def make_tiny_model(folder: Path, hidden: int = 64, layers: int = 2, vocab: int = 512, seed: int = 0) -> Path:
    """Write a random Llama-architecture model of `layers` x `hidden` and its tokenizer to `folder`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16384,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.do_sample = True
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
