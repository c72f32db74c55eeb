# movierec: `make demo` to see it work, `make test` to check it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYSPARK_PYTHON ?= $(abspath $(PY))

.PHONY: install system-deps lint test test-quick demo data clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,airflow,bench]'
	touch $@

system-deps:
	bash scripts/install-system-deps.sh

# static checks: lint and format (ruff) over the tree, types (mypy) over movierec/ and serving/
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install system-deps lint
	$(VENV)/bin/pytest -q --durations=30

test-quick: install
	$(VENV)/bin/pytest -q -m "not slow and not airflow and not browser and not postgres"

# MovieLens ml-latest-small into data/, unless MOVIEREC_DATA_DIR already points at a copy
data: install
	@if [ -n "$$MOVIEREC_DATA_DIR" ] && [ -f "$$MOVIEREC_DATA_DIR/ratings.csv" ]; then \
	  echo "using MOVIEREC_DATA_DIR=$$MOVIEREC_DATA_DIR"; \
	else $(VENV)/bin/movierec download; fi

# the whole pipeline into var/movierec.db, then the API on http://127.0.0.1:$(API_PORT)/
API_PORT ?= 8000
demo: install data
	$(VENV)/bin/movierec pipeline
	@echo "store: var/movierec.db   warehouse: var/warehouse   runs: $(VENV)/bin/movierec runs"
	@echo "API and page: http://127.0.0.1:$(API_PORT)/   (Ctrl-C stops it)"
	$(VENV)/bin/movierec serve --bind 127.0.0.1:$(API_PORT)

clean:
	rm -rf var/warehouse var/movierec.db* var/reports

# --- Airflow: the DAG in dags/, `make airflow` to run it locally, `make e2e` to check it end to end
JOBS_ZIP     ?= var/dist/movierec.zip
AIRFLOW_PORT ?= 8080
.PHONY: airflow e2e jobs-zip

# the movierec package as spark-submit --py-files, built once here (never by a task); rebuilt when the library changes
jobs-zip: $(JOBS_ZIP)

$(JOBS_ZIP): $(shell find movierec -name '*.py' -o -name '*.html') | $(VENV)/.installed
	$(PY) -m movierec.spark.package $@

# Airflow 3 standalone on 127.0.0.1:$(AIRFLOW_PORT), AIRFLOW_HOME=var/airflow, SQLite metadata
airflow: install jobs-zip
	AIRFLOW_PORT=$(AIRFLOW_PORT) VENV=$(abspath $(VENV)) MOVIEREC_JOBS_ZIP=$(abspath $(JOBS_ZIP)) bash scripts/airflow-standalone.sh

# airflow standalone + REST trigger + API read, on generated data (also part of `make test`)
e2e: install system-deps
	$(VENV)/bin/pytest -q tests/dags/test_e2e.py
