#!/usr/bin/env bash
# Install the Debian/Ubuntu packages of .ci/apt-packages.txt that are missing (as root, or with sudo);
# without either, say which are missing and what that disables, and go on (those tests skip).
set -uo pipefail
cd "$(dirname "$0")/.."
mapfile -t wanted < <(grep -v '^#' .ci/apt-packages.txt | sed '/^\s*$/d')
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
else
  echo "system-deps: not a Debian/Ubuntu system; install the equivalents of: ${wanted[*]}"; exit 0
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo"
else
  echo "system-deps: missing ${missing[*]} (no root or sudo to install them)."
  echo "  chromium: browser tests skip; fonts-noto-*, libpango*, libharfbuzz-subset0, fontconfig: PDF export"
  echo "  fonts and PDF tests; poppler-utils (pdftotext): PDF text checks skip; postgresql: the registry-on-PostgreSQL"
  echo "  tests skip. Install them with:"
  echo "  sudo apt-get install -y ${missing[*]}"
  exit 0
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "system-deps: apt-get failed; the tests that need ${missing[*]} will skip"
exit 0
