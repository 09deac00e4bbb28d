#!/usr/bin/env bash
# Extract the catalogues' messages (pybabel extract) and merge them into the Chinese catalogues (pybabel
# update); `make messages` runs it. The source language is English: the msgids are the English texts.
# Then translate what is new or fuzzy in each */translations/zh_Hans_CN/LC_MESSAGES/messages.po with the
# words of docs/glossary.md; tests/test_i18n_catalogues.py fails while a message has no translation.
set -euo pipefail
cd "$(dirname "$0")/.."
PYBABEL=.venv/bin/pybabel
LOCALE=zh_Hans_CN

# catalogue directory | babel config | input paths
CATALOGUES=(
  "idp/translations|idp/babel.cfg|idp sdk/errors.py"
  "wallet/translations|wallet/babel.cfg|wallet"
  "halls/translations|halls/babel.cfg|halls"
  "examples/portal/translations|examples/portal/babel.cfg|examples/portal"
  "reader_bridge/translations|reader_bridge/babel.cfg|reader_bridge"
)

templates=$(mktemp -d)
trap 'rm -rf "$templates"' EXIT
for entry in "${CATALOGUES[@]}"; do
  IFS="|" read -r directory config inputs <<<"$entry"
  pot="$templates/$(echo "$directory" | tr / _).pot"  # the template is an intermediate: not kept
  # shellcheck disable=SC2086 # the inputs are several paths
  "$PYBABEL" -q extract -F "$config" -k lazy_gettext --no-location --sort-output --project OneCard -o "$pot" $inputs
  if [ -f "$directory/$LOCALE/LC_MESSAGES/messages.po" ]; then
    "$PYBABEL" -q update --no-fuzzy-matching --ignore-obsolete -i "$pot" -d "$directory" -l "$LOCALE"
  else
    "$PYBABEL" -q init -i "$pot" -d "$directory" -l "$LOCALE"
  fi
done
