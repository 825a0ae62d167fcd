# vramfit developer commands. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench bench-seeds fuzz soak cluster cluster-down cluster-status binaries promtool clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

## demo: plan capacity for the built-in InferenceServices, then replay the morning burst
demo: $(STAMP)
	$(BIN)/python -m planner.demo

## test: all tests (unit, HTTP, and the real control plane), building its binaries if absent
test: $(STAMP) binaries promtool chromium
	$(BIN)/python -m pytest

## lint: ruff, mypy --strict, import-linter contracts
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: benchmarks; JSON results under bench/results/
bench: $(STAMP) binaries
	$(BIN)/python -m bench
	$(BIN)/python -m bench.readme_table

## bench-seeds: every built-in scenario over seeds 1-20 under every policy; fails on a missed
## target (bench/results/seeds.json and seeds.md)
bench-seeds: $(STAMP)
	nice $(BIN)/python -m bench seeds

## soak: the end-to-end fault tests, many trials each (SOAK_TRIALS: NAME=N pairs, or one N for
## all); the table is printed, and the figures written to bench/results/faults.json
SOAK_TRIALS ?= extender-sigkill=20,apiserver-restart=5,leader-failover=5,node-recreate=3
soak: $(STAMP) binaries
	VRAMFIT_FAULT_TRIALS="$(SOAK_TRIALS)" VRAMFIT_FAULTS_JSON=bench/results/faults.json \
		$(BIN)/python -m pytest -p no:cacheprovider tests/e2e/test_faults.py

## fuzz: hostile requests (10,000, or REQUESTS=n; SEED=n draws others) against the real
## extender server on loopback: status codes, reply sizes and the server's memory, checked
fuzz: $(STAMP)
	$(BIN)/python -m tests.extender.fuzz $(if $(REQUESTS),--requests $(REQUESTS),) \
		$(if $(SEED),--seed $(SEED),)

## binaries: build etcd, kube-apiserver, kube-scheduler, kubectl, helm and Karpenter (kwok) once
## (cached by version)
binaries: $(STAMP)
	$(BIN)/python -m controlplane.binaries ensure
	$(BIN)/python -m controlplane.helm ensure
	$(BIN)/python -m controlplane.karpenterbin ensure

## promtool: install Prometheus' promtool (Debian package) when it is missing
promtool:
	@command -v promtool >/dev/null 2>&1 || tools/install-promtool.sh

## chromium: install headless Chromium (Debian package) when it is missing; the HTML report
## tests render the reports in it
chromium:
	@command -v chromium >/dev/null 2>&1 || tools/install-chromium.sh

## screenshots: render the HTML reports in Chromium, check their layout, and keep the
## screenshots in docs/screenshots
screenshots: $(STAMP) chromium
	VRAMFIT_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q \
		tests/planner/test_html_in_browser.py tests/simulator/test_html_in_browser.py

## cluster: a local control plane with simulated GPU nodes, agents, extender and scheduler
cluster: $(STAMP) binaries
	$(BIN)/python -m controlplane.cluster up --agents --extender $(if $(NODES),--nodes $(NODES),)

## cluster-down: stop the local cluster started by `make cluster`
cluster-down: $(STAMP)
	$(BIN)/python -m controlplane.cluster down

## cluster-status: what `make cluster` is running
cluster-status: $(STAMP)
	$(BIN)/python -m controlplane.cluster status

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
