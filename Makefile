# The two commands of the README. Both do their own set-up (scripts/setup.sh).
.PHONY: run test lint setup

setup:
	@bash scripts/setup.sh

run: setup
	@.venv/bin/onecard db upgrade
	@.venv/bin/onecard demo seed
	@.venv/bin/onecard serve --host 127.0.0.1 --port 8000

test: setup
	@bash scripts/test.sh

lint: setup
	@.venv/bin/ruff check . && .venv/bin/lint-imports && .venv/bin/mypy sdk reader_bridge idp wallet
