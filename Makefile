# The two entry points of the project (see README.md).
#   make book   set up .venv, execute every chapter (cpu profile), render the HTML
#   make test   set up .venv, execute the chapters (smoke profile), run all tests
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup book test lint bench
setup:
	bash scripts/setup_env.sh $(VENV)

book: setup
	$(PY) scripts/build_book.py --profile cpu

test: setup
	$(VENV)/bin/ruff check srvp tests scripts benchmarks
	$(PY) scripts/build_book.py --profile smoke --out _build/smoke
	$(PY) -m pytest tests _build/smoke --nbval-lax --nbval-current-env -p no:cacheprovider

lint: setup
	$(VENV)/bin/ruff check srvp tests scripts benchmarks

bench: setup
	$(PY) benchmarks/bench_model.py
