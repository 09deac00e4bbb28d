#!/usr/bin/env bash
# Everything OneCard needs on a fresh Debian machine: system packages (as root), a virtualenv and the
# Python packages. Idempotent and quiet when there is nothing to do; both README commands call it.
set -euo pipefail
cd "$(dirname "$0")/.."

# pcscd, the vsmartcard virtual reader and libpcsclite (pyscard builds against it) for the card tests;
# Chromium and a CJK font (pages are bilingual) for the browser tests; SoftHSM for the PKCS#11 key backend;
# nginx, the TLS proxy of the deployment topology (tests/test_deploy.py runs deploy/nginx/onecard.conf).
DEBIAN_PACKAGES=(pcscd vsmartcard-vpcd libpcsclite-dev swig chromium fonts-wqy-microhei softhsm2 nginx)
# npm installs what the browser tests inject into the pages (axe-core, tests/browser/package-lock.json) and
# the FAPI tests' relying party (openid-client, tests/node/package-lock.json); a
# Node.js that brings its own npm (NodeSource's) needs nothing more.
command -v npm >/dev/null || DEBIAN_PACKAGES+=(npm)

missing=()
if command -v dpkg-query >/dev/null; then
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: please install as root: apt-get install ${missing[*]}" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Reinstall only when the project's metadata changed since the last install.
stamp=.venv/.onecard-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
# The message catalogues: the committed .po files compiled to .mo (never committed) on every run, so no
# compiled catalogue is ever older than its source. `make messages` extracts and merges new messages.
for catalogue in idp/translations wallet/translations halls/translations examples/portal/translations reader_bridge/translations; do
  .venv/bin/pybabel -q compile -d "$catalogue"
done
# The tests' npm packages, exactly as locked; again when a lock file changes: axe-core for the browser tests'
# accessibility checks (tests/browser), openid-client, the certified relying party of the FAPI tests
# (tests/node).
for node_tests in tests/browser tests/node; do
  if command -v npm >/dev/null && { [ ! -f "$node_tests/node_modules/.package-lock.json" ] \
      || [ "$node_tests/package-lock.json" -nt "$node_tests/node_modules/.package-lock.json" ]; }; then
    (cd "$node_tests" && npm ci --no-audit --no-fund --silent)
  fi
done
# A local wheelhouse for tests/test_sdk_wheel.py, which installs the built SDK wheel into a fresh virtualenv
# with --no-index (tests never reach a package index): the base dependencies and those of the portal-flask
# and gate extras, as wheels, read from pyproject.toml. Refilled, like the install, when pyproject changed.
wheelhouse=.venv/wheelhouse
if [ ! -f "$wheelhouse/.complete" ] || [ pyproject.toml -nt "$wheelhouse/.complete" ]; then
  rm -rf "$wheelhouse"
  mkdir -p "$wheelhouse"
  .venv/bin/python - > "$wheelhouse/requirements.txt" <<'EOF'
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
print("\n".join(project["dependencies"] + extras["portal-flask"] + extras["gate"]))
EOF
  .venv/bin/python -m pip wheel -q --wheel-dir "$wheelhouse" -r "$wheelhouse/requirements.txt"
  touch "$wheelhouse/.complete"
fi
