#!/usr/bin/env bash
# Installs the Debian packages ponder needs to build and test. Idempotent: installs only what is missing.
set -euo pipefail
packages=(cmake g++ make clang libomp-dev libclang-rt-dev nlohmann-json3-dev libpcre2-dev libcli11-dev
          libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
$sudo_cmd apt-get update -qq || true
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
