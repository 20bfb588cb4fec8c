# Two commands matter: `make up` and `make test`. Everything they need is installed from here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEPS := $(VENV)/.deps-installed

.PHONY: up test lint plan-demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall when the declared or pinned dependencies change.
$(DEPS): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

## up: install, prepare the embedded model, and run the main job
up: $(DEPS)
	@echo "== Embedded model (Gemma 3 270M Q4_K_M) on this CPU with llama.cpp"
	$(BIN)/llmhost plan "$$($(BIN)/python -m llmhost.engines.weights)" --gpu cpu --context 4096 --measure-host
	@echo "== Cluster scenario: Llama 3.1 70B, 50M tokens/day, TTFT under 2 s"
	$(BIN)/llmhost plan llama-3.1-70b --tokens-per-day 50000000 --ttft 2 --markdown

## test: lint, type-check and run every test
test: $(DEPS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy llmhost
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
