#!/usr/bin/env bash
# Installs the Debian packages the appliance and its tests need, only those missing.
# Idempotent and quiet when everything is there (one dpkg-query, no apt-get).
set -euo pipefail
# package            why
PACKAGES=(
  softhsm2           # the development and CI HSM (PKCS#11)
  opensc             # pkcs11-tool, to inspect tokens by hand
  openssl            # CLI peer for SM2/ECDSA/RSA interop tests
  libbcprov-java     # BouncyCastle: the peer that verifies SM2 (tests)
  libbcpkix-java
  libbcutil-java
  default-jdk-headless  # javac/java for the BouncyCastle checks
  gpsd               # GPS time source; tests run a private gpsd fed with NMEA over TCP
  gpsd-clients       # gpspipe/cgps, to look at a receiver by hand
  chrony             # NTP status (chronyc tracking); tests run private chronyd -x pairs
  poppler-utils      # pdfsig: the peer that checks signed evidence reports (tests)
  libnss3-tools      # certutil: the NSS trust store pdfsig reads (tests)
  fonts-wqy-microhei # CJK TrueType font embedded (subset) in evidence reports
  make
  g++                # node-gyp builds the native addons
  python3
  wrk                # C load generator for `make bench` (a Node client would share the 2 cores)
)
missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
# Java may come from a JDK not installed by that name: accept any working javac.
if command -v javac >/dev/null && command -v java >/dev/null; then
  kept=()
  for p in ${missing[@]+"${missing[@]}"}; do [[ "$p" == default-jdk-headless ]] || kept+=("$p"); done
  missing=(${kept[@]+"${kept[@]}"})
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${missing[*]} — install them as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
