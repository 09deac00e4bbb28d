#!/usr/bin/env bash
# Everything OneCard needs on a fresh Debian machine: system packages (as root), a virtualenv and the
# Python packages. Idempotent and quiet when there is nothing to do; both README commands call it.
set -euo pipefail
cd "$(dirname "$0")/.."

# pcscd, the vsmartcard virtual reader and libpcsclite (pyscard builds against it) for the card tests;
# Chromium and a CJK font (pages are bilingual) for the browser tests; SoftHSM for the PKCS#11 key backend.
DEBIAN_PACKAGES=(pcscd vsmartcard-vpcd libpcsclite-dev swig chromium fonts-wqy-microhei softhsm2)

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
