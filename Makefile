# The course's two commands: `make lab` and `make test`. Both create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
QUICK := GRU_COURSE_QUICK=1
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=600

.PHONY: setup lab test unit nbtest run-notebook run-notebooks bench student check clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(f"Python 3.11+ is needed, found {sys.version.split()[0]}" if sys.version_info < (3, 11) else 0)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

# Opens JupyterLab on the chapters (--allow-root only where you are root, as in containers).
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

# Everything: the environment self-check, unit tests, and every notebook executed in quick mode, on every core
# (pytest-xdist; a notebook's cells stay together), beside one Ray head that every study reaches through
# RAY_ADDRESS (the cluster path, with token authentication), with the slowest tests listed at the end. The
# notebooks and the two longest test files (Ray clusters, interrupted runs) come first: the longest files start
# early and the many short unit-test files fill the end.
XDIST ?= auto
test: $(STAMP)
	$(QUICK) $(PY) -m utils.envcheck
	$(QUICK) $(PY) -m utils.runner head -- $(PY) -m pytest -n $(XDIST) --dist loadfile --durations=15 \
		notebooks tests/test_ray_cluster.py tests/test_runner.py tests $(NBVAL) --ignore=notebooks/student

unit: $(STAMP)
	$(QUICK) $(PY) -m pytest tests

# One notebook's tests in quick mode: make nbtest NB=notebooks/03_gru_scratch.ipynb
nbtest: $(STAMP)
	$(QUICK) $(PY) -m pytest $(NBVAL) $(NB)

# Execute a notebook in full mode and store its outputs (one full run at a time on this machine).
run-notebook: $(STAMP)
	$(PY) -m utils.notebooks run $(NB)

run-notebooks: $(STAMP)
	$(PY) -m utils.notebooks run notebooks/[0-9]*.ipynb

# Training throughput of nn.GRU against the from-scratch GRUs (chapter 11): at torch's default thread count,
# then on one thread; each prints a table, the GEMM-only bound (matrix products alone), one training epoch of the
# course's language model end to end and, last, the best ratio.
bench: $(STAMP)
	$(PY) -m utils.bench --threads default
	$(PY) -m utils.bench --threads 1

# Student copies of the chapters with exercises, in notebooks/student/ (FORCE=1 overwrites copies edited since generated).
student: $(STAMP)
	$(PY) -m utils.assignments $(if $(FORCE),--force)

check: $(STAMP)
	$(PY) -m utils.envcheck

clean-venv:
	rm -rf $(VENV)
