# The two commands of the README. Both do their own set-up (scripts/setup.sh).
.PHONY: run test lint setup

setup:
	@bash scripts/setup.sh

run: setup
	@.venv/bin/onecard demo run

test: setup
	@bash scripts/test.sh

lint: setup
	@.venv/bin/ruff check . && .venv/bin/lint-imports && .venv/bin/mypy sdk reader_bridge idp wallet
