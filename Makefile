# homeport — the two commands:  make demo  (sandbox host: bootstrap, deploy, status, backup)   make test  (everything)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
# three scenarios at a time on two cores; tests/run-molecule.sh prints how much CPU stayed idle (13 % of the stage's
# core-seconds in the clean-clone run of 99698b1, mostly its tail, when fewer than three scenarios are left)
MOLECULE_JOBS ?= 3
# unit tests: three workers on two cores, each test file in one worker (its fixtures and containers stay together).
# With two, the run of 2026-12-07 05:06 left 488 of the unit stage's 2137 core-seconds idle; lint (160 s) and compat
# (382 s) ended long before the unit tests (1080 s), so the idle time fell after them. With three, the clean-clone
# run of 99698b1 left 247 idle (unit stage 909 s)
UNIT_JOBS ?= 3
SCENARIO ?=

.PHONY: help setup collection-link tools images lint lint-ruff lint-yaml lint-ansible lint-types unit compat molecule test demo bootstrap bench role-docs clean

help:
	@echo "make demo        sandbox host in Docker: bootstrap, deploy a small stack, status, backup (needs only Docker)"
	@echo "make test        images + lint + unit tests + every molecule scenario + the oldest-versions lane (timed)"
	@echo "make bootstrap   first setup of the Mac Mini in inventory/ (after 'homeport init')"
	@echo "make bench       speed benchmarks over an emulated far link (BENCH_MODE=short for CI)"
	@echo "make molecule SCENARIO=name   one molecule scenario"

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed collection-link

collection-link:
	@mkdir -p .cache/collections/ansible_collections/homeport
	@ln -sfn "$(CURDIR)" .cache/collections/ansible_collections/homeport/homeport

images: setup
	src/homeport/images/build.sh

# the tools the unit tests run that need no system install (promtool, amtool), unpacked from Debian's packages into
# .cache/tools/bin; instant when present. It names any system tool that is missing (.ci/run installs those). Under
# CI=true a unit test whose tool is missing fails (tests/unit/conftest.py: need_tool)
tools:
	@tests/tools.sh

# Python programs without a .py name (host scripts, the macOS-sim doubles, image boot steps): found by their shebang
PY_SCRIPTS = $(shell grep -lsE '^\#!.*python' roles/*/files/* tests/doubles/bin/* src/homeport/images/* 2>/dev/null)

# `make lint` = these four; .pre-commit-config.yaml runs the same targets (without `setup`, which may install)
RUFF_PATHS = src tests molecule bench plugins roles $(PY_SCRIPTS)
lint: setup lint-ruff lint-yaml lint-ansible lint-types

lint-ruff:
	@echo "ruff: $$($(BIN)/ruff check --show-files $(RUFF_PATHS) | wc -l) files (the .py files under src tests molecule bench plugins roles, and $(words $(PY_SCRIPTS)) extensionless Python scripts)"
	$(BIN)/ruff check $(RUFF_PATHS)
	$(BIN)/ruff format --check $(RUFF_PATHS)

lint-yaml:
	@echo "yamllint: $$($(BIN)/yamllint --list-files . | wc -l) files"
	$(BIN)/yamllint -s .

lint-ansible:  # ansible-lint prints the number of files it checked ("... on N files")
	$(BIN)/ansible-lint --offline

lint-types:  # mypy on src/ and plugins/ ([tool.mypy] in pyproject.toml); prints "... in N source files"
	$(BIN)/mypy

# a second sandbox bootstrapped from scratch would repeat what test_demo's sandbox already holds (a fresh and a
# no-change bootstrap; tests/unit/sandbox_checks.py has the checks both run): this test runs in the compat lane only
COMPAT_ONLY := test_sandbox_bootstrap_is_idempotent
unit: setup tools
	@$(BIN)/python -c "import ansible.release, mitogen; print('unit tests on ansible-core', ansible.release.__version__, 'with mitogen', '.'.join(map(str, mitogen.__version__)))"
	@echo "unit: tests/unit/test_sandbox.py::$(COMPAT_ONLY) runs in the compat lane (make compat), on the oldest versions; its checks run here in test_demo, on the demo's sandbox"
	@rm -rf .cache/unit-files
	$(BIN)/pytest -n $(UNIT_JOBS) --dist loadfile tests/unit --deselect tests/unit/test_sandbox.py::$(COMPAT_ONLY); \
	  rc=$$?; $(BIN)/python tests/unit/file_costs.py 30; exit $$rc

# the version-sensitive tests again on the oldest ansible-core / ansible-runner / Mitogen that pyproject.toml allows
compat: setup images
	tests/compat.sh

molecule: setup images
	tests/run-molecule.sh $(SCENARIO)

# `make test`: each stage as `make STAGE`, in this order, timed; at the end a table of the stage times (with the CPU
# they used and left idle) and a WARNING for each stage past its share of the 30-minute budget (seconds; the shares
# add up to the budget). A+B+C+D: they run side by side. The unit tests first (their end, or only one
# of their workers left, opens the gate: tests/unit/molecule_gate.py), lint and
# the oldest-versions lane (compat) beside them, and the molecule stage: one scenario at a time (the heaviest first,
# molecule/ORDER) while the unit tests run, then MOLECULE_JOBS at a time (tests/run-molecule.sh, MOLECULE_GATE).
# Until 2026-12-07 the molecule stage came after the unit tests: the clean-clone run of 99698b1 left 247 idle
# core-seconds in the unit stage and 370 in the molecule stage, mostly their tails (test_demo; the stack scenario
# alone at the end). All scenarios at once beside the unit tests was slower: the clean-clone run of 2026-12-06 23:08
# had its molecule scenarios 2.4-3.4 times as long as alone (stack 2044 s, backup 1724 s). The compat lane's venv
# (pip, mostly waiting on PyPI) is built in the background from the end of `setup`; `make compat` waits for it
TEST_BUDGET := 1800
TEST_STAGES := setup=60 tools=15 images=150 unit+lint+compat+molecule=1575
test:
	@MAKE="$(MAKE)" TEST_BACKGROUND="tests/compat.sh --venv-only" tests/stage-times.sh $(TEST_BUDGET) $(TEST_STAGES)

demo: setup
	$(BIN)/homeport sandbox demo

bootstrap: setup
	$(BIN)/homeport bootstrap

bench: setup
	$(BIN)/python bench/run.py --mode $${BENCH_MODE:-full}

role-docs: setup
	$(BIN)/python -m homeport.roledocs --write

clean:
	rm -rf .cache/molecule-logs .pytest_cache .ruff_cache
