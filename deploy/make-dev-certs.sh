#!/usr/bin/env bash
# DEVELOPMENT ONLY. Makes a throw-away certificate authority and a TLS certificate signed by it, for the
# compose topology on one machine (deploy/compose.yaml). Production uses a certificate from the operator's
# CA or a public one; never this.
#
#   deploy/make-dev-certs.sh [OUT_DIR] [HOSTNAME]      # defaults: deploy/dev, localhost
#
# Writes OUT_DIR/ca.crt (trust it in the test client: curl --cacert, requests verify=), OUT_DIR/tls.crt
# (leaf, then the CA) and OUT_DIR/tls.key. The certificate names HOSTNAME, localhost and 127.0.0.1, and
# lasts 30 days. The CA's key is deleted once it has signed: nothing else can be issued under it.
set -euo pipefail
out=${1:-"$(dirname "$0")/dev"}
host=${2:-localhost}
mkdir -p "$out"
chmod 700 "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 30 \
  -subj "/CN=OneCard development CA (not for production)" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$work/ca.key" -out "$out/ca.crt" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "/CN=$host" \
  -keyout "$out/tls.key" -out "$work/tls.csr" 2>/dev/null
names="DNS:localhost,IP:127.0.0.1"
[ "$host" = localhost ] || names="DNS:$host,$names"
cat >"$work/leaf.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$names
EXT
openssl x509 -req -in "$work/tls.csr" -CA "$out/ca.crt" -CAkey "$work/ca.key" \
  -CAserial "$work/ca.srl" -CAcreateserial \
  -days 30 -sha256 -extfile "$work/leaf.ext" -out "$work/leaf.crt" 2>/dev/null
cat "$work/leaf.crt" "$out/ca.crt" >"$out/tls.crt"
# Mounted into the proxy container as compose secrets (bind mounts keep these modes): nginx's master
# process reads them as root.
chmod 600 "$out/tls.key"
chmod 644 "$out/tls.crt" "$out/ca.crt"
echo "development TLS certificate for $host in $out (trust $out/ca.crt)"
