#!/usr/bin/env bash
# One signed request to the yiqian (医签) API with nothing but openssl and curl — the YQ1
# scheme of docs/api-auth.md, step by step.
#
#   yq1-request.sh [--cacert FILE | -k] [-o OUT] BASE_URL APP_ID KEY_FILE METHOD PATH [BODY_FILE]
#
#   BASE_URL   https://yiqian.example:8443 (no trailing path)
#   APP_ID     the app id shown by `yiqian app create`
#   KEY_FILE   the app's private key (PEM) — SM2 → YQ1-SM2-SM3, P-256 → YQ1-ECDSA-SHA256
#   METHOD     GET, POST, …
#   PATH       path and query exactly as they are to be sent, e.g. /api/v1/whoami
#   BODY_FILE  optional request body, sent as is (Content-Type: $CONTENT_TYPE, default
#              application/json)
#   --cacert FILE  trust this CA certificate for TLS;  -k  do not check the certificate
#   -o OUT     write the response body to OUT byte for byte (a PDF, a bundle) instead of stdout
#
# Prints the response body on stdout and "HTTP <status>" on stderr; exits non-zero (22) on an
# HTTP error status.
set -euo pipefail

usage() {
  sed -n '5,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

tls=() out=()
# Options may come before, between or after the arguments (a shell variable can hold the first ones).
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cacert) [[ $# -ge 2 ]] || usage; tls=(--cacert "$2"); shift 2 ;;
    -k | --insecure) tls=(-k); shift ;;
    -o | --output) [[ $# -ge 2 ]] || usage; out=(-o "$2"); shift 2 ;;
    -h | --help) usage ;;
    --) shift; args+=("$@"); break ;;
    -?*) echo "unknown option: $1" >&2; usage ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- "${args[@]}"
[[ $# -eq 5 || $# -eq 6 ]] || usage
base=${1%/} app=$2 key=$3 method=$4 path=$5 body=${6:-}
[[ $path == /* ]] || { echo "PATH must start with /" >&2; exit 2; }
[[ -z $body || -f $body ]] || { echo "no such body file: $body" >&2; exit 2; }

# 1. The scheme follows the key: SM2 signs with SM3 and the default ID 1234567812345678,
#    P-256 is ECDSA with SHA-256. The same hash is used for the body.
key_text=$(openssl pkey -in "$key" -noout -text)
if grep -q 'ASN1 OID: SM2' <<<"$key_text"; then
  scheme=YQ1-SM2-SM3 hash=-sm3 sigopt=(-sigopt distid:1234567812345678)
elif grep -q 'ASN1 OID: prime256v1' <<<"$key_text"; then
  scheme=YQ1-ECDSA-SHA256 hash=-sha256 sigopt=()
else
  echo "$key is neither an SM2 nor a P-256 private key" >&2
  exit 2
fi

# 2. Timestamp (Unix milliseconds) and a fresh random nonce (32 hex characters).
ts=$(date +%s%3N)
nonce=$(openssl rand -hex 16)

# 3. Hex hash of the body bytes; no body hashes the empty string.
if [[ -n $body ]]; then
  body_hash=$(openssl dgst "$hash" -r "$body" | cut -d' ' -f1)
else
  body_hash=$(printf '' | openssl dgst "$hash" -r | cut -d' ' -f1)
fi

# 4. Sign the canonical string (six lines joined by \n, no trailing newline); base64 the DER.
sig=$(printf 'YQ1\n%s\n%s\n%s\n%s\n%s' "$method" "$path" "$ts" "$nonce" "$body_hash" |
  openssl dgst "$hash" -sign "$key" "${sigopt[@]}" | openssl base64 -A)

auth="$scheme app=$app,ts=$ts,nonce=$nonce,sig=$sig"

# 5. Send it. --path-as-is: curl must not rewrite the path we signed.
args=(-sS --path-as-is --fail-with-body -X "$method" -H "Authorization: $auth" -w '\n%{stderr}HTTP %{http_code}\n')
if [[ -n $body ]]; then
  args+=(-H "Content-Type: ${CONTENT_TYPE:-application/json}" --data-binary "@$body")
fi
exec curl "${tls[@]}" "${out[@]}" "${args[@]}" "$base$path"
