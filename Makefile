# The two commands: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: demo test venv test-install docs bench gpu-check lint clean slow replicate-smoke

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files record which extras are installed, so re-running is instant.
$(VENV)/.installed-core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,crosscheck,data,parallel]"
	touch $@ $(VENV)/.installed-core

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[docs,test]"
	touch $@

venv: $(VENV)/.installed-core

demo: $(VENV)/.installed-core
	$(BIN)/npcell demo --out figures

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	# One pytest run, so its summary line counts every test; the gpu tests in it
	# skip with a reason when CuPy or a GPU is absent (-rs prints the reason).
	TQDM_DISABLE=1 $(BIN)/python -m pytest -m "not slow" -q -rs

slow: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m slow -q

docs: $(VENV)/.installed-docs
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench.py --out benchmarks/results

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .hypothesis

# The replication of docs/results.md at toy size (minutes): the whole pipeline, nothing in
# docs/ or figures/ changes. `scripts/replicate.sh full` is the recorded run (hours).
replicate-smoke: $(VENV)/.installed-test
	PYTHON=$(abspath $(BIN)/python) scripts/replicate.sh smoke
