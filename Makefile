# Two commands do all set-up on a fresh machine: `make repro` (main job) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
export MLFLOW_TRACKING_URI
# BentoML's store: $BENTOML_HOME (default ~/bentoml). The project sends BentoML no usage statistics.
BENTOML_DO_NOT_TRACK ?= True
export BENTOML_DO_NOT_TRACK
SERVE_PORT ?= 3000
WORKERS ?= $(or $(EXPRFUSION_WORKERS),1)
# Stage commands (`python pipelines/...`) must find the project environment.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install repro test test-fast lint format docs exp-show mlflow-ui serve monitor clean

# torch==2.13.0 goes in first (the CPU build) so that nothing later pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# Debian's prometheus (with promtool) for `make monitor` and the monitoring tests; skipped without apt-get as root.
install: $(STAMP)
	@command -v prometheus >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus; } \
		|| echo "prometheus not installed (needs apt-get as root): the Prometheus tests will skip"

repro: install
	$(BIN)/dvc repro

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The result tables from the files that hold their figures (docs/generate_tables.py), then the manual as a site in
# site/: a broken link or anchor, or a page missing from the nav, fails the build.
docs: install
	$(BIN)/python docs/generate_tables.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# DVC's experiments table with only the searched params (tune.grid.*) and the headline scores (reports/metrics.json):
# every other column is dropped (--drop matches whole column names).
EXP_SCORES := macro_f1|macro_f1_lo|macro_f1_hi|accuracy|single_pass|robustness_auc|baseline|margin|margin_lo|margin_hi
EXP_COLUMNS := Experiment|Created|tune\.grid\..*|$(EXP_SCORES)
exp-show: install
	$(BIN)/dvc exp show --drop '.*' --keep '$(EXP_COLUMNS)'

# Prints the address that opens the experiment on its runs table (MLflow 3's UI otherwise opens the GenAI view).
mlflow-ui: install
	@$(BIN)/exprfusion mlflow-url --port 5000
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --port 5000

# Serves the Bento the package stage built (models/package/bento.json), rebuilt first if this store lacks it.
# WORKERS prediction workers (default 1, or EXPRFUSION_WORKERS), the cores shared out among them; streaming sessions
# live in one streaming worker beside them (docs/serving.md, "Workers").
serve: install
	tag=$$($(BIN)/python serving/bento_tag.py) && EXPRFUSION_WORKERS=$(WORKERS) \
		$(BIN)/bentoml serve "$$tag" --host 127.0.0.1 --port $(SERVE_PORT)

# Prometheus with the shipped rules, scraping `make serve` (127.0.0.1:3000); UI and API on 127.0.0.1:9090.
monitor: install
	prometheus --config.file=monitoring/prometheus.yml --storage.tsdb.path=.prometheus \
		--web.listen-address=127.0.0.1:9090

clean:
	rm -rf data reports models ray_results mlruns mlflow.db .dvc/tmp
