#!/usr/bin/env bash
# Installs the Debian packages ponder needs to build and test. Idempotent: installs only what is missing.
set -euo pipefail
packages=(cmake g++ make clang libomp-dev libclang-rt-dev nlohmann-json3-dev libpcre2-dev libcli11-dev
          libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev python3
          libopenmpi-dev openmpi-bin  # data-parallel training: mpirun -np R ponder train ...
          chromium)  # chromium: the web page test of `ponder serve` (headless, driven by playwright-core)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm run the test client of `ponder serve` (the openai SDK); a machine may have them
# from elsewhere (NodeSource), so Debian's packages are installed only when the commands are missing.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

# The test clients of `ponder serve` (the openai SDK, playwright-core) at the versions
# package-lock.json pins, when not installed yet.
sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/node"
if [ ! -f "$sdk/node_modules/openai/package.json" ] || [ "$sdk/package-lock.json" -nt "$sdk/node_modules/.package-lock.json" ]; then
  echo "install-deps: npm ci in tests/node (test clients of the server: openai SDK, playwright-core)" >&2
  (cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error)
fi
