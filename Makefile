# Neuron Warehouse: `make demo`, `make test`, `make bench`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test cluster-test bench soak ui clean

# (Re)install only when the pins or the package metadata change. torch==2.13.0 is first in
# requirements.txt and installed in the same resolution, so nothing can upgrade it.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/nwh demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

# The study on Celery workers with a Redis broker and a PostgreSQL instance (Debian's
# redis-server and postgresql): real servers on free local ports, stopped by PID (docs/cluster.md).
cluster-test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests/cluster -o addopts="-ra"

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -s tests/benchmarks -p no:cacheprovider -o addopts=""

soak: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python tests/soak/soak.py
	HF_HUB_OFFLINE=1 $(BIN)/python -m tests.soak.interrupted

ui: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/nwh ui

clean:
	rm -rf $(VENV) dbt/target dbt/logs
