# Every target sets up what it needs from nothing; see README.md.
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
LINTED := src tests bench examples scripts

.PHONY: setup demo test lint bench clean

$(VENV)/.ready: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(PYTHON) $(VENV)
	touch $@

setup: $(VENV)/.ready

# The whole loop on the bundled example (examples/pipeline.yaml): forge, describe, label, filter, agent, eval (the
# gold patches of what forge made, and the agent's), sft-data, sft, rl; then the RL run's figures.
demo: setup
	$(PY) examples/calcpkg.py demo-out/calcpkg
	$(VENV)/bin/repoforge pipeline examples/pipeline.yaml
	$(VENV)/bin/repoforge plot demo-out/pipeline/rl -o demo-out/plots

test: setup lint
	$(VENV)/bin/python -m pytest -q -ra

lint: setup
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)

clean:
	rm -rf $(VENV) demo-out
