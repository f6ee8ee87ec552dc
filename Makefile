# autoq: per-layer quantization search for base7. `make` (or `make help`) lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Variables (any of them on the command line, e.g. `make random TRIALS=5 EPOCHS=2`).
PROFILE ?= quick
SEED ?= 1
CONFIG ?= quantization_config.yaml
SCALE ?= 3
FLOAT_MODEL ?= results/float_$(PROFILE)_x$(SCALE)/float_model.keras
# Unset means "the profile's value" (solvers/config.py: PROFILES).
TRIALS ?=
EPOCHS ?=
RETRAIN_EPOCHS ?=
BATCH ?=
PATCH ?=
STEPS ?=
DATA ?=
LR_DATA ?=
DIV2K_ROOT ?=
TRAIN_IMAGES ?=
VAL_IMAGES ?=
TEST_IMAGES ?=
RUN ?=

PROFILE_OPTS = --profile $(PROFILE) --seed $(SEED) --scale $(SCALE) \
	$(if $(TRIALS),--trials $(TRIALS)) $(if $(EPOCHS),--epochs $(EPOCHS)) \
	$(if $(RETRAIN_EPOCHS),--retrain-epochs $(RETRAIN_EPOCHS)) $(if $(BATCH),--batch-size $(BATCH)) \
	$(if $(PATCH),--patch-size $(PATCH)) $(if $(STEPS),--steps-per-epoch $(STEPS)) \
	$(if $(PATIENCE),--patience $(PATIENCE)) $(if $(filter 1,$(XLA)),--xla) \
	$(if $(DATA),--data $(DATA)) $(if $(LR_DATA),--lr-data $(LR_DATA)) \
	$(if $(DIV2K_ROOT),--div2k-root $(DIV2K_ROOT)) $(if $(TRAIN_IMAGES),--train-images $(TRAIN_IMAGES)) \
	$(if $(VAL_IMAGES),--val-images $(VAL_IMAGES)) $(if $(TEST_IMAGES),--test-images $(TEST_IMAGES))
# SENSITIVITY=path|none: the table for the derived starting points (default: results/sensitivity/
# when it exists); ALLOW_SENSITIVITY_MISMATCH=1 uses a named one that does not fit the run.
SENSITIVITY ?=
# BUDGET=uniform3|35%|<cost>|none: the best validation PSNR at cost <= BUDGET (GOAL=bits|bops|energy
# its unit; BAND=0.9 keeps proposals within [BAND x BUDGET, BUDGET]); FINALISTS=3: the best trials
# retrained to the full budget, the best of them the answer; NO_HAND_RULES=1: no hand-rule start.
GOAL ?=
BUDGET ?=
BAND ?=
FINALISTS ?=
# make gradient: GRADIENT_EPOCHS of width learning (default: the profile's retrain epochs).
GRADIENT_EPOCHS ?=
GOAL_OPTS = $(if $(GOAL),--goal $(GOAL)) $(if $(BUDGET),--budget $(BUDGET)) $(if $(BAND),--band $(BAND)) \
	$(if $(FINALISTS),--finalists $(FINALISTS)) $(if $(filter 1,$(NO_HAND_RULES)),--no-hand-rules)
SEARCH_OPTS = $(PROFILE_OPTS) $(GOAL_OPTS) --config $(CONFIG) $(if $(RUN),--run $(RUN)) \
	$(if $(filter 1,$(FRESH)),--fresh) $(if $(SENSITIVITY),--sensitivity $(SENSITIVITY)) \
	$(if $(GRADIENT_EPOCHS),--gradient-epochs $(GRADIENT_EPOCHS)) \
	$(if $(filter 1,$(ALLOW_SENSITIVITY_MISMATCH)),--allow-sensitivity-mismatch)
# WORKERS=N: the search on N worker processes here (Keras Tuner's distributed mode).
LAUNCH_OPTS = $(if $(WORKERS),--workers $(WORKERS))

ALGOS := random bayesian hyperband evolution gradient
.PHONY: help venv div2k baselines study $(ALGOS) $(addprefix pretrained_,$(ALGOS)) float eval test tensorboard clean distclean
.DEFAULT_GOAL := help

help:
	@echo "make venv                               create .venv and install requirements.txt (any target does)"
	@echo "make random | bayesian | hyperband | evolution   search per-layer quantizers from scratch"
	@echo "make pretrained_random | _bayesian | _hyperband | _evolution   search from the float32 model (built once)"
	@echo "make random GOAL=bops BUDGET=uniform3   the best validation PSNR at or under uniform 3-bit's BOPs"
	@echo "make gradient [BUDGET=uniform3 GOAL=bops GRADIENT_EPOCHS=n]   widths learned by gradient descent to the budget (pretrained_gradient: from FLOAT_MODEL)"
	@echo "make random WORKERS=2                   the same search on 2 worker processes"
	@echo "make chief ORACLE=host:port [ALGO=random], make worker ORACLE=host:port ID=k   several machines"
	@echo "make float                              train the float32 reference ($(FLOAT_MODEL))"
	@echo "make baselines [BASELINE_EPOCHS=n]      uniform 2..8-bit and float32 models, as one trial"
	@echo "make sensitivity [FINETUNE_STEPS=n WIDTHS=\"2 4 8\"]   dB lost per layer/kind/width from FLOAT_MODEL: results/sensitivity/"
	@echo "make study [SEEDS=\"1 2 3\" GOALS=bops BUDGETS=\"uniform3 uniform4\" ALGOS=\"random evolution\"]   budgeted searches vs uniform, hand rules and the exact allocation, test images: results/study/"
	@echo "make eval MODEL=path EVAL_DATA=folder    PSNR/SSIM vs bicubic, per image (SCALE LR_DATA FLOAT_MODEL EVAL_OUT SAVE_IMAGES=1)"
	@echo "make report RUN=name [BASELINES=csv]    report.md + plots of a run, judged against matching uniform baselines"
	@echo "make compare RUNS=\"a b\"                 Pareto fronts of several runs: results/compare/"
	@echo "make export RUN=name [MODEL= BACKEND=Vitis IO=io_stream REUSE=1 SIZE=HxW PHOTOS=n EXPORT_OUT=dir]   hls4ml project + bit-exact C simulation: results/<RUN>/hls4ml/"
	@echo "make div2k [DIV2K_ROOT=data/DIV2K]      download DIV2K (x3) from its official site"
	@echo "make test                               run the test suite"
	@echo "make bench [SMOKE=1]                    benchmark (ratios, one run) into results/bench/bench.json"
	@echo "make bench-distributed                  trials/hour: 2 workers x 1 core vs 1 process x 2 cores"
	@echo "make profile-ops                        TensorFlow profiler: self time per op type, float vs quantized step"
	@echo "make tensorboard                        tensorboard --logdir tb_logs"
	@echo "make clean                              delete results/ and tb_logs/ (distclean: and .venv)"
	@echo "variables: PROFILE=quick|paper TRIALS EPOCHS RETRAIN_EPOCHS BATCH PATCH STEPS PATIENCE XLA=1"
	@echo "           SEED SCALE=3"
	@echo "           DATA=folder|div2k LR_DATA=folder DIV2K_ROOT=path TRAIN_IMAGES=n VAL_IMAGES=n TEST_IMAGES=n"
	@echo "           RUN=name FRESH=1 CONFIG=quantization_config.yaml FLOAT_MODEL=path"
	@echo "           SENSITIVITY=path|none ALLOW_SENSITIVITY_MISMATCH=1   the starting points' table"
	@echo "           GOAL=bits|bops|energy BUDGET=uniform3|35%|cost|none BAND=0.9 FINALISTS=3 NO_HAND_RULES=1"

# The virtual environment, created on first use and refreshed when requirements.txt changes.
$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

venv: $(STAMP)

$(ALGOS): $(STAMP)
	$(PY) autoq.py --algo $@ $(SEARCH_OPTS) $(LAUNCH_OPTS)

$(addprefix pretrained_,$(ALGOS)): pretrained_%: $(FLOAT_MODEL) $(STAMP)
	$(PY) autoq.py --algo $* --float-model $(FLOAT_MODEL) $(SEARCH_OPTS) $(LAUNCH_OPTS)

# Several machines sharing this folder: one `make chief`, then `make worker ID=k` on each machine,
# all with the same ORACLE=host:port (the chief's address) and the same variables.
ALGO ?= random
ORACLE ?=
ID ?= 0
.PHONY: chief worker
chief worker: $(STAMP)
	@if [ -z "$(ORACLE)" ]; then echo "error: make $@ needs ORACLE=host:port" >&2; exit 2; fi
	$(PY) autoq.py --algo $(ALGO) --role $@ --oracle $(ORACLE) $(if $(filter worker,$@),--worker-id $(ID)) \
		$(SEARCH_OPTS)

# A file target: built once per profile and reused by every pretrained_* search.
$(FLOAT_MODEL): | $(STAMP)
	$(PY) autoq.py --train-float --float-model $@ --run float_$(PROFILE)_x$(SCALE) $(PROFILE_OPTS)

float: $(FLOAT_MODEL)

# Per-layer sensitivity (solvers/search/sensitivity.py): the validation PSNR lost when only one
# layer's kernel, bias or activation is quantized, at each width of CONFIG, from FLOAT_MODEL with a
# short fine-tune (FINETUNE_STEPS), into results/sensitivity/ (csv, yaml, heat map png).
FINETUNE_STEPS ?=
WIDTHS ?=
SENSITIVITY_OPTS = --float-model $(FLOAT_MODEL) --config $(CONFIG) --seed $(SEED) --scale $(SCALE) \
	$(if $(FINETUNE_STEPS),--finetune-steps $(FINETUNE_STEPS)) $(if $(WIDTHS),--widths $(WIDTHS)) \
	$(if $(DATA),--data $(DATA)) $(if $(LR_DATA),--lr-data $(LR_DATA)) \
	$(if $(DIV2K_ROOT),--div2k-root $(DIV2K_ROOT)) $(if $(TRAIN_IMAGES),--train-images $(TRAIN_IMAGES)) \
	$(if $(VAL_IMAGES),--val-images $(VAL_IMAGES))
.PHONY: sensitivity
sensitivity: $(FLOAT_MODEL) $(STAMP)
	$(PY) -m solvers.search.sensitivity $(SENSITIVITY_OPTS)

# At a budget, does the search beat uniform quantization, the hand rules and the exact allocation
# (solvers/study.py)? For each of SEEDS, GOALS, BUDGETS and ALGOS (on the command line; else
# STUDY_ALGOS) one budgeted search (--no-hand-rules, the sensitivity table's exact allocation among
# its starting points, FINALISTS retrained RETRAIN_EPOCHS more epochs; TRIALS, EPOCHS: the
# study's defaults when unset, sized to keep 3 seeds within 2 hours on 2 cores; ALGOS may name
# gradient: autoq.py --algo gradient with the same options); per seed the references (uniform
# 2/3/4/8-bit with biases as the limit leaves them, float32, both hand rules, the exact allocation
# alone at each goal and budget) and each search's pick, all trained from scratch for EPOCHS +
# RETRAIN_EPOCHS (same seed and schedule: pick and reference paired per seed); all scored on the held-out
# test images: STUDY_OUT/study.md and study.png. The bits row: make study GOALS=bits BUDGETS=uniform3
# (the same STUDY_OUT shares the references; study.md then covers every search there).
SEEDS ?= 1 2 3
GOALS ?= bops
BUDGETS ?= uniform3 uniform4
STUDY_ALGOS ?= random evolution
STUDY_OUT ?= results/study
# UNIFORM_WIDTHS="3 4": the uniform references (default 2 3 4 8; every uniformN budget's N is added).
UNIFORM_WIDTHS ?=
# The sensitivity table is built first when missing (it gives the exact allocation);
# SENSITIVITY=path|none names another (none: no exact allocation).
SENSITIVITY_CSV := results/sensitivity/sensitivity.csv
$(SENSITIVITY_CSV): | $(FLOAT_MODEL) $(STAMP)
	$(PY) -m solvers.search.sensitivity $(SENSITIVITY_OPTS)

.PHONY: study
study: $(if $(SENSITIVITY),,$(SENSITIVITY_CSV)) $(STAMP)
	$(PY) -m solvers.study --seeds $(SEEDS) --goals $(GOALS) --budgets $(BUDGETS) \
		--algos $(if $(filter command line,$(origin ALGOS)),$(ALGOS),$(STUDY_ALGOS)) \
		--profile $(PROFILE) --config $(CONFIG) --scale $(SCALE) --out $(STUDY_OUT) \
		--sensitivity $(or $(SENSITIVITY),$(SENSITIVITY_CSV)) $(if $(TRIALS),--trials $(TRIALS)) \
		$(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(STEPS),--steps-per-epoch $(STEPS)) \
		$(if $(RETRAIN_EPOCHS),--retrain-epochs $(RETRAIN_EPOCHS)) \
		$(if $(FINALISTS),--finalists $(FINALISTS)) $(if $(BAND),--band $(BAND)) \
		$(if $(UNIFORM_WIDTHS),--uniform-widths $(UNIFORM_WIDTHS))

# Uniform-width references for the report, trained like one search trial (BASELINE_EPOCHS: longer),
# into results/baselines/<RUN, else PROFILE plus what differs from the defaults, e.g.
# quick_div2k_seed2_x4>/ with baselines.yaml (solvers/search/baselines.py: default_name). A report
# compares a run only with a set whose baselines.yaml matches it (data, scale, seed, search space,
# budget of a trial), so run this with the search's variables.
baselines: $(STAMP)
	$(PY) autoq.py --baselines $(SEARCH_OPTS) $(if $(BASELINE_EPOCHS),--baseline-epochs $(BASELINE_EPOCHS))

# Scores a saved model per image against bicubic (solvers/evaluate.py) into <model dir>/eval/ or
# EVAL_OUT. FLOAT_MODEL has a default, so its column is added only when given on the command line.
MODEL ?=
EVAL_DATA ?=
EVAL_OUT ?=
SAVE_IMAGES ?=
EVAL_OPTS = --model $(MODEL) --data $(EVAL_DATA) --scale $(SCALE) \
	$(if $(LR_DATA),--lr-data $(LR_DATA)) $(if $(EVAL_OUT),--out $(EVAL_OUT)) \
	$(if $(filter command line,$(origin FLOAT_MODEL)),--float-model $(FLOAT_MODEL)) \
	$(if $(filter 1,$(SAVE_IMAGES)),--save-images)

eval: $(STAMP)
	@if [ -z "$(MODEL)" ]; then echo "error: make eval needs MODEL=path/to/model.keras" >&2; exit 2; fi
	@if [ -z "$(EVAL_DATA)" ]; then echo "error: make eval needs EVAL_DATA=folder" >&2; exit 2; fi
	$(PY) -m solvers.evaluate $(EVAL_OPTS)

# Results to look at (solvers/report/report_md.py): report.md and PNGs in results/<RUN>/, the same
# images in TensorBoard under tb_logs/<RUN>/report; compare: results/compare/compare.md and .png.
# report: the baselines are a set of results/baselines/*/ matching the run
# (BASELINES=path/baselines.csv forces one; the verdict then names any difference).
RUNS ?=
BASELINES ?=
.PHONY: report compare

report: $(STAMP)
	@if [ -z "$(RUN)" ]; then echo "error: make report needs RUN=name" >&2; exit 2; fi
	$(PY) -m solvers.report.report_md --run-dir results/$(RUN) \
		$(if $(BASELINES),--baselines $(BASELINES)) --tb-dir tb_logs/$(RUN)

compare: $(STAMP)
	@if [ -z "$(strip $(RUNS))" ]; then echo "error: make compare needs RUNS=\"run1 run2 ...\"" >&2; exit 2; fi
	$(PY) -m solvers.report.report_md --compare $(addprefix results/,$(RUNS)) --out results/compare

# Needs internet access (about 3.8 GB for x3); never run by the tests.
div2k: $(STAMP)
	$(PY) -m solvers.data.div2k --root $(or $(DIV2K_ROOT),data/DIV2K) --scale $(SCALE)

# What the tests need, installed first (the stamps' rules are below, hence the literal paths): xprof,
# so test_profile_ops converts a real profile, and hls4ml, so test_export builds and C-simulates a
# real design (its negative control included). -rs names every skipped test and why.
test: $(STAMP) $(VENV)/.profile-installed $(VENV)/.export-installed
	$(PY) -m pytest -q -rs --durations=25 tests

# Speed ratios measured in one run (solvers/bench/speed.py): quantized vs float, XLA, pipeline, search
# overhead. SMOKE=1: 1 repeat at tiny shapes (what the test suite runs).
.PHONY: bench
.PHONY: bench-distributed
bench-distributed: $(STAMP)
	$(PY) -m solvers.bench.distributed

bench: $(STAMP)
	$(PY) -m solvers.bench.speed $(if $(filter 1,$(SMOKE)),--smoke)

# Self time per TensorFlow op type of float / quantized train steps (solvers/bench/profile_ops.py), from
# the TensorFlow profiler. Installs xprof, the profiler's back end, on first use: pinned in
# requirements-profile.txt, without its dependencies (Cloud Storage, a web server), which reading
# a local capture does not need.
PROFILE_STAMP = $(VENV)/.profile-installed
.PHONY: profile-ops
$(PROFILE_STAMP): requirements-profile.txt $(STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q --no-deps -r requirements-profile.txt
	touch $@

profile-ops: $(PROFILE_STAMP)
	$(PY) -m solvers.bench.profile_ops

# A run's chosen model as an hls4ml project, verified bit for bit by C simulation (g++) against
# Keras on the run's validation photos (solvers/export): results/<RUN>/hls4ml/ with export.md.
# Installs hls4ml on first use (requirements-export.txt, without dependencies: its own are listed
# there, and the pinned stack must not move). SIZE=HxW: the design's LR frame (default: the run's
# goal input_hw); PHOTOS=n: verify on the first n validation photos only; EXPORT_OUT=folder: write
# there instead (another MODEL= then leaves the run's own export alone).
EXPORT_STAMP = $(VENV)/.export-installed
BACKEND ?= Vitis
IO ?= io_stream
REUSE ?=
SIZE ?=
PHOTOS ?=
EXPORT_OUT ?=
.PHONY: export
$(EXPORT_STAMP): requirements-export.txt $(STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q --no-deps -r requirements-export.txt
	touch $@

export: $(EXPORT_STAMP)
	@if [ -z "$(RUN)" ]; then echo "error: make export needs RUN=name (a folder in results/)" >&2; exit 2; fi
	$(PY) -m solvers.export.cli --run-dir results/$(RUN) $(if $(MODEL),--model $(MODEL)) \
		--backend $(BACKEND) --io $(IO) $(if $(REUSE),--reuse $(REUSE)) $(if $(SIZE),--size $(SIZE)) \
		$(if $(PHOTOS),--photos $(PHOTOS)) $(if $(EXPORT_OUT),--out $(EXPORT_OUT))

tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir tb_logs

clean:
	rm -rf results tb_logs .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
