#!/usr/bin/env bash
# A streamed evidence file upload to the yiqian (医签) API with openssl and curl: the YQ1
# signature of docs/api-auth.md over the body hash declared in X-YQ1-Body-Hash (§ "Streamed
# uploads"), so the appliance checks the signature before it reads a byte and the file is sent
# from disk, never held in memory by curl.
#
#   yq1-upload.sh [--cacert FILE | -k] [--signature CMS_FILE] BASE_URL APP_ID KEY_FILE PATH FILE
#
#   PATH       /api/v1/evidence/files with the metadata as its query, exactly as it is to be
#              sent (percent-encoded), e.g. '/api/v1/evidence/files?documentType=ct&fileName=a.dcm'
#   FILE       the file to keep as evidence
#   --signature CMS_FILE  a detached CMS over FILE (DER or base64): sent with FILE as
#              multipart/form-data (parts "file" and "signature"); the form is built in a
#              temporary file first, because the signature covers the body as sent
#   --cacert FILE  trust this CA certificate for TLS;  -k  do not check the certificate
#
# Prints the response body on stdout and "HTTP <status>" on stderr; exits non-zero (22) on an
# HTTP error status.
set -euo pipefail

usage() {
  sed -n '7,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

tls=() signature=''
# Options may come before, between or after the arguments (a shell variable can hold the first ones).
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cacert) [[ $# -ge 2 ]] || usage; tls=(--cacert "$2"); shift 2 ;;
    -k | --insecure) tls=(-k); shift ;;
    --signature) [[ $# -ge 2 ]] || usage; signature=$2; shift 2 ;;
    -h | --help) usage ;;
    --) shift; args+=("$@"); break ;;
    -?*) echo "unknown option: $1" >&2; usage ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- "${args[@]}"
[[ $# -eq 5 ]] || usage
base=${1%/} app=$2 key=$3 path=$4 file=$5
[[ $path == /* ]] || { echo "PATH must start with /" >&2; exit 2; }
[[ -f $file ]] || { echo "no such file: $file" >&2; exit 2; }

# 1. The scheme follows the key, as in yq1-request.sh: SM2 → SM3, P-256 → SHA-256.
key_text=$(openssl pkey -in "$key" -noout -text)
if grep -q 'ASN1 OID: SM2' <<<"$key_text"; then
  scheme=YQ1-SM2-SM3 hash=-sm3 sigopt=(-sigopt distid:1234567812345678)
elif grep -q 'ASN1 OID: prime256v1' <<<"$key_text"; then
  scheme=YQ1-ECDSA-SHA256 hash=-sha256 sigopt=()
else
  echo "$key is neither an SM2 nor a P-256 private key" >&2
  exit 2
fi

# 2. The body: the file itself, or a multipart/form-data form (RFC 7578) with the signature.
body=$file type=application/octet-stream
if [[ -n $signature ]]; then
  [[ -f $signature ]] || { echo "no such signature file: $signature" >&2; exit 2; }
  boundary="yq1-$(openssl rand -hex 12)"
  body=$(mktemp)
  trap 'rm -f "$body"' EXIT
  {
    printf -- '--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\nContent-Type: application/octet-stream\r\n\r\n' "$boundary" "$(basename "$file")"
    cat "$file"
    printf '\r\n--%s\r\nContent-Disposition: form-data; name="signature"\r\n\r\n' "$boundary"
    cat "$signature"
    printf '\r\n--%s--\r\n' "$boundary"
  } >"$body"
  type="multipart/form-data; boundary=$boundary"
fi

# 3. The declared body hash (hex, lower case) and the usual YQ1 canonical string over it.
body_hash=$(openssl dgst "$hash" -r "$body" | cut -d' ' -f1)
ts=$(date +%s%3N)
nonce=$(openssl rand -hex 16)
sig=$(printf 'YQ1\n%s\n%s\n%s\n%s\n%s' POST "$path" "$ts" "$nonce" "$body_hash" |
  openssl dgst "$hash" -sign "$key" "${sigopt[@]}" | openssl base64 -A)

# 4. Stream it: -T sends the file from disk with its Content-Length (no chunked encoding).
curl "${tls[@]}" -sS --path-as-is --fail-with-body -X POST -T "$body" \
  -H "Authorization: $scheme app=$app,ts=$ts,nonce=$nonce,sig=$sig" \
  -H "X-YQ1-Body-Hash: $body_hash" -H "Content-Type: $type" -H 'Expect:' \
  -w '\n%{stderr}HTTP %{http_code}\n' "$base$path"
