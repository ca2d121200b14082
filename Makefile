# crossrank: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CROSSRANK := $(BIN)/crossrank
OPENSEARCH_PORT ?= 9200
PROXY_PORT ?= 8080
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help venv system opensearch models run stop test test-matrix lint typecheck unit eval bench screenshots clean

help:
	@echo "make run    OpenSearch + crossrank proxy + default model + demo data, then example queries"
	@echo "make test   environment, OpenSearch build, ruff, mypy and the whole pytest suite"
	@echo "make test-matrix  make test, then the integration tests on OpenSearch 3.5.0 too"
	@echo "make eval   SciFact test judgments, each arm, report in reports/eval"
	@echo "make bench  benchmarks (results go to docs/benchmarks.md by hand)"
	@echo "make stop   stop the proxy and the OpenSearch node started by make run"
	@echo "make screenshots  with make run serving: the page's two views into docs/ui_*.png"

# Everything (serving core + export/train/eval/dev extras), pinned by constraints.txt.
$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

opensearch: venv
	$(CROSSRANK) opensearch build

# nginx (front-proxy recipe tests) and wrk (benchmarks) from Debian, when missing
system:
	bash scripts/system_packages.sh

models: venv
	$(BIN)/python scripts/prepare_models.py

run: opensearch models
	$(BIN)/python scripts/run_demo.py --opensearch-port $(OPENSEARCH_PORT) --port $(PROXY_PORT)

# The compare page's views as PNGs in docs/, from the running demo (make run) in Chromium.
screenshots: system venv
	$(BIN)/python scripts/ui_screenshots.py --proxy http://127.0.0.1:$(PROXY_PORT)

stop: venv
	-pkill -f "crossrank(\.cli)? serve" || true
	$(CROSSRANK) opensearch stop --port $(OPENSEARCH_PORT)

lint: venv
	$(BIN)/ruff check plugin tests benchmarks scripts

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit -q

test: system opensearch lint typecheck
	$(BIN)/pytest -ra

# The whole suite on 2.19.1 (make test), then the integration suite on each other version.
MATRIX_VERSIONS ?= 3.5.0
test-matrix: test
	for v in $(MATRIX_VERSIONS); do \
	  $(CROSSRANK) opensearch build --version $$v && \
	  CROSSRANK_TEST_OPENSEARCH_VERSION=$$v $(BIN)/pytest tests/integration -ra || exit 1; \
	done

eval: opensearch models
	$(BIN)/python scripts/run_eval.py $(if $(ARGS),-- $(ARGS))

bench: system opensearch models
	$(BIN)/python benchmarks/bench_scorer.py

clean:
	rm -rf $(VENV) .crossrank .pytest_cache .mypy_cache .ruff_cache
