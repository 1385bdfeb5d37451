# The two Quick start commands: `make demo` and `make test`. Both create .venv on first use and reuse it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.usvid-installed
PYTEST_ARGS ?=

.PHONY: setup demo test test-all bench clean

setup: $(STAMP)

# pip (not uv/poetry) so torch 2.14.1 / torchvision 0.29.1 come from the local wheel cache, not a multi-GB download.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-cache-dir --disable-pip-version-check -e '.[export,dicom,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/usvid demo --out demo_out

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	for b in benchmarks/[!_]*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) demo_out build dist *.egg-info
