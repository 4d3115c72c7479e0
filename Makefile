# cellblock: `make run` starts the whole service, `make test` runs every test.
# Both install what is missing first (Debian packages, then .venv with Python 3.11).

SHELL := /bin/bash
VENV := .venv
# Python 3.11: pyenv's if present, else Debian's.
PYTHON ?= $(firstword $(wildcard /root/.pyenv/versions/3.11*/bin/python3.11) \
                     $(shell command -v python3.11 2>/dev/null) /usr/bin/python3.11)
PYTEST_ARGS ?=

.PHONY: run test test-host test-v2 install host host-extra host-vm host-browser host-test venv web clients lint bench load screenshots clean

run: install
	$(VENV)/bin/cellblock up

# The suite twice: on this host, then on a pure cgroup v2 host (a QEMU VM of this host's own
# root, tests/vm/run.py) with the tests that exercise the jail, the cgroups and the service;
# both backends run for real. Both run whatever the other gave; make fails if either did.
test: host-extra host-vm host-browser host-test venv web clients
	@set +e; $(MAKE) --no-print-directory test-host; host=$$?; \
	$(MAKE) --no-print-directory test-v2; v2=$$?; \
	echo "make test: this host $$([ $$host -eq 0 ] && echo passed || echo FAILED)," \
	     "cgroup v2 VM $$([ $$v2 -eq 0 ] && echo passed || echo FAILED)"; \
	[ $$host -eq 0 ] && [ $$v2 -eq 0 ]

# pytest exits 5 when no test ran: make fails on any non-zero status, and we say why.
# The tests cover every language, so they install the extra ones too.
test-host: host-extra host-browser host-test venv web clients
	@set +e; $(VENV)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no test ran (pytest exit 5): failing" >&2; fi; \
	exit $$rc

# In the VM: TCG only (no KVM on these machines), some 15-20x slower than the host, so the
# per-test hang guard is 600 s there (README: "cgroup v2"). KERNELS: 6.1 (Debian 12's own)
# and 6.12 (its backports: memory.peak resets per run); `make test-v2 KERNELS=6.12` for one.
# V2_PYTEST_ARGS go to the VM's pytest (PYTEST_ARGS to this host's). The guest runs 15-20x
# slower (TCG) and imports everything over 9p, cold: its per-test timeout is 5x the host's,
# and so are the waits for a stack to come up (TESTS_TIME_SCALE, tests/conftest.py).
V2_TESTS ?= tests/jail tests/security tests/e2e/test_judge.py tests/e2e/test_delegated_worker.py
V2_PYTEST_ARGS ?=
KERNELS ?= 6.1 6.12
test-v2: host-vm venv
	@if [ -z "$(strip $(KERNELS))" ]; then echo "make test-v2: KERNELS is empty: nothing would run" >&2; exit 1; fi
	@set +e; failed=0; for kernel in $(KERNELS); do \
	  $(VENV)/bin/python tests/vm/run.py --kernel $$kernel -- \
	    env TESTS_TIME_SCALE=5 $(VENV)/bin/python -m pytest $(V2_TESTS) -p no:cacheprovider -o timeout=600 $(V2_PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test-v2: no test ran in the VM (pytest exit 5): failing" >&2; fi; \
	  if [ $$rc -ne 0 ]; then failed=1; fi; \
	done; exit $$failed

install: host venv web

# The playground's code editor (CodeMirror 6), bundled by esbuild from web/ (its versions pinned
# by web/package-lock.json) into api/static/vendor, which the API serves: the pages load
# nothing from elsewhere at run time. npm comes with Node.js (deploy/debian-packages.txt).
web: api/static/vendor/.built

api/static/vendor/.built: web/package.json web/package-lock.json web/editor.mjs
	@command -v npm >/dev/null || { echo "make web: npm is missing (it builds the playground's editor): apt-get install npm" >&2; exit 1; }
	npm ci --prefix web --no-audit --no-fund
	rm -rf api/static/vendor
	npm run --prefix web --silent build
	touch $@

# The real clients of the APIs cellblock is compatible with, for tests/compat: npm's
# piston-client, exactly as tests/clients/package-lock.json pins it (the judge0 SDK is a
# Python test dependency in pyproject.toml).
clients: tests/clients/node_modules/.installed

tests/clients/node_modules/.installed: tests/clients/package.json tests/clients/package-lock.json
	npm ci --prefix tests/clients --no-audit --no-fund
	touch $@

host:
	bash deploy/install-host-packages.sh

host-extra:
	bash deploy/install-host-packages.sh deploy/debian-packages-extra.txt

host-vm:
	bash deploy/install-host-packages.sh deploy/test-vm-packages.txt

host-browser:
	bash deploy/install-host-packages.sh deploy/test-browser-packages.txt

host-test:
	bash deploy/install-host-packages.sh deploy/test-host-packages.txt

venv: $(VENV)/.installed

# compat: the checkout goes on sys.path by a plain path line in a .pth file. The default
# editable install instead imports a finder (pathlib, re, urllib) at every Python start:
# about 10 ms of every `python -m jail run`.
PIP_EDITABLE = $(VENV)/bin/python -m pip install -q --config-settings editable_mode=compat -e

$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(PIP_EDITABLE) '.[test]'
	@# The jail's bytecode, compiled once: `python -m jail run` then reads it even where
	@# PYTHONDONTWRITEBYTECODE keeps Python from writing it (about 20 ms of every start).
	$(VENV)/bin/python -m compileall -q jail
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
	$(PIP_EDITABLE) '.[load]'
	$(VENV)/bin/python load/run_load.py --duration $(DURATION)
	$(VENV)/bin/python load/hostile.py --duration $(DURATION)

# The pages' tests (tests/web, in headless Chromium) write their screenshots into docs/screenshots,
# which the README shows, instead of var/screenshots.
screenshots: host-browser venv web
	CELLBLOCK_SCREENSHOTS=docs/screenshots $(VENV)/bin/python -m pytest tests/web -p no:cacheprovider

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache api/static/vendor web/node_modules
