# cellblock: `make run` starts the whole service, `make test` runs every test.
# Both install what is missing first (Debian packages, then .venv with Python 3.11).

SHELL := /bin/bash
VENV := .venv
# Python 3.11: pyenv's if present, else Debian's.
PYTHON ?= $(firstword $(wildcard /root/.pyenv/versions/3.11*/bin/python3.11) \
                     $(shell command -v python3.11 2>/dev/null) /usr/bin/python3.11)
PYTEST_ARGS ?=

.PHONY: run test install host host-extra venv lint bench load clean

run: install
	$(VENV)/bin/cellblock up

# pytest exits 5 when no test ran: make fails on any non-zero status, and we say why.
# The tests cover every language, so they install the extra ones too.
test: host-extra venv
	@set +e; $(VENV)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no test ran (pytest exit 5): failing" >&2; fi; \
	exit $$rc

install: host venv

host:
	bash deploy/install-host-packages.sh

host-extra:
	bash deploy/install-host-packages.sh deploy/debian-packages-extra.txt

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

# The whole tree: ruff (rules and formatting) and mypy --strict (pyproject.toml says what and how).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install
	$(VENV)/bin/python load/bench_service.py

# a fresh stack: 60 s to find its saturation, then DURATION s at 80 % of it (DURATION=600 for the
# 10-minute run); fails if a submission is lost or a 5xx seen; report in load/report/. Then
# hostile clients for DURATION s beside an honest one (load/hostile.py).
DURATION ?= 60
load: install
	$(VENV)/bin/python -m pip install -q -e '.[load]'
	$(VENV)/bin/python load/run_load.py --duration $(DURATION)
	$(VENV)/bin/python load/hostile.py --duration $(DURATION)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
