# The two commands of the README: `make quickstart` (the whole pipeline on this CPU)
# and `make test`. Both build .venv from the project's own files first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: quickstart test clean-venv

$(VENV)/.installed: pyproject.toml setup.py requirements-ci.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-ci.txt
	touch $@

# --force replaces an earlier quickstart in runs/quickstart (only a quickstart's own folder, never other files):
# the README's command runs again as written
quickstart: $(VENV)/.installed
	$(PY) -m edgebranchy quickstart --out runs/quickstart --force

test: $(VENV)/.installed
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
