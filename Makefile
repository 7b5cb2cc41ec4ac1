# geobench: `make reproduce` runs the main job, `make test` the tests (both create .venv).
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= quick
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-verl
VERL_VERSION ?= 0.9.1
CISPO := examples/cispo/geobench_cispo.py

.PHONY: install reproduce test figures leaderboard warmstart bench clean

# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The tests also check parity with verl's reference losses and the verl plugin: verl without its
# CUDA-bound dependencies, plus the few packages its import needs (the `verl` extra); the TRL
# engine (the `trl` extra); reasoning-gym's procedural tasks (the `reasoning-gym` extra); and read
# back what --report-to wrote to TensorBoard and W&B (trackio, which pins pillow<13, is left out:
# its tests skip without it).
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --no-deps verl==$(VERL_VERSION)
	$(BIN)/pip install --quiet -e '.[dev,verl,trl,tensorboard,wandb,reasoning-gym]'
	touch $(TEST_STAMP)

# Every experiment of the profile (see geobench/reproduce.py for the stages), every figure
# and table, and results/REPORT.md; rerunning after an interruption resumes.
reproduce: $(STAMP)
	$(BIN)/geobench reproduce --profile $(PROFILE)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

figures: $(STAMP)
	$(BIN)/geobench figures

# The committed leaderboard: every registered objective (the CISPO plugin example included) through
# the battery at the quick budget, into results/leaderboard/ and one card per objective; the committed
# quick runs are its baselines and every finished cell is reused, so a rerun after a change computes
# only what the change touched. The CISPO card keeps its figures; REPORT.md links the leaderboard.
leaderboard: $(STAMP)
	$(BIN)/geobench leaderboard --plugin $(CISPO)
	$(BIN)/geobench battery --algo cispo --plugin $(CISPO) --quiet
	$(BIN)/geobench figures

# The committed warm start (experiments/llm/warmstart/<task>), rebuilt deliberately from the quick LLM
# profile's settings; runs only ever read it, and build their own under --out when settings differ.
warmstart: $(STAMP)
	$(BIN)/python -c "from geobench.experiments import LLM; from geobench.llm.warmstart import build_warmstart; \
	build_warmstart(LLM.load('quick').warmstart_config())"

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[trl]'
	$(BIN)/python benchmarks/toy_saturation.py
	$(BIN)/python benchmarks/bandits_batched.py
	$(BIN)/python benchmarks/llm_update_time.py
	$(BIN)/python benchmarks/llm_rollout.py
	$(BIN)/python benchmarks/llm_step_breakdown.py
	$(BIN)/python benchmarks/llm_vs_trl.py

clean:
	rm -rf $(VENV) build *.egg-info
