#!/usr/bin/env bash
# DEVELOPMENT ONLY. Makes the secrets deploy/compose.yaml mounts, with fresh random values:
#
#   deploy/make-dev-secrets.sh [OUT_DIR]       # default: deploy/dev (git-ignored)
#
#   kek                 ONECARD_KEK_FILE: one key-encryption key, base64url of 32 random bytes
#   onecard.toml        ONECARD_CONFIG_FILE: database_url and redis_url (with their passwords), pairwise_salt
#   postgres-password   POSTGRES_PASSWORD_FILE of the postgres service
#   redis.conf          the redis service's configuration (requirepass)
#
# In production these come from the secrets manager, and the KEK is backed up apart from the database
# (docs/deploy.md, "Backups"): a database backup without its KEK cannot be read. Existing files are kept, so
# running it again never replaces a KEK that already wrapped keys.
set -euo pipefail
out=${1:-"$(dirname "$0")/dev"}
mkdir -p "$out"
chmod 700 "$out"

random_b64url() { python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode())'; }
random_hex() { python3 -c 'import secrets; print(secrets.token_hex(24))'; }
write_once() {  # write_once FILE CONTENT: only if FILE does not exist yet
  if [ ! -e "$1" ]; then
    printf '%s\n' "$2" >"$1"
    # Bind-mounted secrets keep their mode; the nodes read them as uid 10001, so the files are readable,
    # while OUT_DIR itself (700) keeps other users of this machine out.
    chmod 644 "$1"
  fi
}

write_once "$out/kek" "$(random_b64url)"
write_once "$out/postgres-password" "$(random_hex)"
write_once "$out/redis-password" "$(random_hex)"
db_password=$(cat "$out/postgres-password")
redis_password=$(cat "$out/redis-password")
write_once "$out/redis.conf" "requirepass $redis_password"
write_once "$out/onecard.toml" "# ONECARD_CONFIG_FILE of the OneCard nodes: the settings that hold secrets.
database_url = \"postgresql://onecard:$db_password@postgres:5432/onecard\"
redis_url = \"redis://:$redis_password@redis:6379/0\"
pairwise_salt = \"$(random_hex)\""
echo "development secrets in $out"
