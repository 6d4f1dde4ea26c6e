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

demo: setup
	$(PY) examples/calcpkg.py demo-out/calcpkg
	$(VENV)/bin/repoforge forge demo-out/calcpkg -o demo-out/forged --timeout 30
	$(VENV)/bin/repoforge eval --dataset demo-out/forged/instances.jsonl --predictions gold --run-id demo \
		--log-dir demo-out/logs/run_evaluation --report-dir demo-out
	$(VENV)/bin/repoforge agent run --dataset demo-out/forged/instances.jsonl -o demo-out/agent \
		--tool-mode text --max-turns 2 --max-tokens 64

test: setup lint
	$(VENV)/bin/python -m pytest -q -ra

lint: setup
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)

clean:
	rm -rf $(VENV) demo-out
