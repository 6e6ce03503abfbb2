# The two entry points of the project (see README.md).
#   make book   set up .venv, execute every chapter (cpu profile) into _build/,
#               render the HTML into _build/html; tracked files stay as they are
#   make test   set up .venv, execute the chapters (smoke profile), render their
#               HTML with warnings as errors, run all tests, then run every
#               chapter again through its own install cell in a Colab-like
#               environment (scripts/colab_check.py)
# For maintainers:
#   make notebooks  execute every chapter (cpu profile) and store the outputs in
#                   the tracked book/NN_name.ipynb, then render
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup book notebooks test lint bench
setup:
	bash scripts/setup_env.sh $(VENV)

book: setup
	$(PY) scripts/build_book.py --profile cpu

notebooks: setup
	$(PY) scripts/build_book.py --profile cpu --update-notebooks

test: setup
	$(VENV)/bin/ruff check srvp tests scripts benchmarks
	$(PY) scripts/build_book.py --profile smoke --out _build/smoke --html _build/smoke_html
	$(PY) -m pytest tests _build/smoke --nbval-lax --nbval-current-env -p no:cacheprovider
	$(PY) scripts/colab_check.py

lint: setup
	$(VENV)/bin/ruff check srvp tests scripts benchmarks

bench: setup
	$(PY) benchmarks/bench_model.py
