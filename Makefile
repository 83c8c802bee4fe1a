# `make test` and `make demo` build their own environment on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench clean

# pip installs without compiling; compileall then writes the same bytecode on every core instead of
# one (the venv in 48 s instead of 67 s on 2 cores). Like pip, it passes over files that do not compile
# (a torch test helper in Python 3.12 syntax). The bytecode matters: with PYTHONDONTWRITEBYTECODE=1
# set, as on this project's machines, every test process would compile torch's sources again.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -e '.[dev]'
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile  # one worker per core; a test file stays on one worker

demo: $(STAMP)
	$(VENV)/bin/lr-jax demo --out lr_jax_demo

bench: $(STAMP)
	$(PY) bench/run.py --quick

clean:
	rm -rf $(VENV) lr_jax_demo
