# movierec: `make demo` to see it work, `make test` to check it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYSPARK_PYTHON ?= $(abspath $(PY))

.PHONY: install system-deps test test-quick demo data clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,airflow]'
	touch $@

system-deps:
	bash scripts/install-system-deps.sh

test: install system-deps
	$(VENV)/bin/pytest -q

test-quick: install
	$(VENV)/bin/pytest -q -m "not slow and not airflow and not browser and not postgres"

data: install
	$(VENV)/bin/movierec download

demo: install data
	$(VENV)/bin/movierec pipeline
	@echo "store: var/movierec.db   warehouse: var/warehouse"

clean:
	rm -rf var/warehouse var/movierec.db* var/reports
