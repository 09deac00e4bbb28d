#!/usr/bin/env bash
# The whole test suite: lint, types, layering contracts, then pytest (which starts pcscd, Chromium, server
# processes itself, and uses PostgreSQL and Redis where they are reachable — required when CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --no-cache
.venv/bin/mypy sdk reader_bridge idp wallet halls demo examples tests bench scripts
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
