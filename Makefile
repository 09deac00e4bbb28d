# The two commands of the README. Both do their own set-up (scripts/setup.sh).
.PHONY: run test lint setup bench-peer bench bench-smoke messages

setup:
	@bash scripts/setup.sh

# The complete demo (demo/): IdP + wallet on :8000, example portal on :8001, reader bridge with a virtual
# card on :47400; migrates and seeds first; Ctrl-C stops everything.
run: setup
	@.venv/bin/onecard demo run

test: setup
	@bash scripts/test.sh

lint: setup
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports && .venv/bin/mypy sdk reader_bridge idp wallet halls demo

# The message catalogues (DESIGN.md §11): extract every text the pages, scripts and the bridge show into each
# package's messages.pot and merge it into its Chinese .po, which a person then translates (docs/glossary.md);
# scripts/setup.sh compiles the .mo files, which are never committed.
messages: setup
	@bash scripts/messages.sh

# OneCard beside node-oidc-provider 9 on the token endpoint, discovery and JWKS (bench/side_by_side.py):
# wrk from Debian, the peer from bench/peer/package-lock.json.
bench-peer: setup bench-tools
	@.venv/bin/python -m bench.side_by_side

# Issue #16's figures table from one command (bench/table.py): every figure, with the peer and the ratio.
# Run it on a quiet machine; `--record` after it writes bench/recorded.json.
bench: setup bench-tools
	@.venv/bin/python -m bench.table --postgres

# A few seconds per figure; fails if one is worse than half of bench/recorded.json. Not part of `make test`:
# it measures, and a shared machine's load is no test failure.
bench-smoke: setup bench-tools
	@.venv/bin/python -m bench.table --quick --check

.PHONY: bench-tools
bench-tools:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; }
	@[ -d bench/peer/node_modules/oidc-provider ] || ! command -v npm >/dev/null || \
		(cd bench/peer && npm ci --no-audit --no-fund --silent)
