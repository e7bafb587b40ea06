#!/usr/bin/env bash
# Installs what Roam's demo, tests and benchmarks need on a Debian machine, then builds the solution.
# Idempotent: packages already present are not reinstalled. Used by ./demo.sh, ./test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(qemu-system-x86 qemu-utils libnbd-bin nbdkit fio busybox-static iproute2 python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v dotnet >/dev/null; then
  echo "bootstrap: the .NET 10 SDK is required (dotnet not found on PATH)" >&2
  exit 1
fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build Roam.sln -c Release -v quiet -nologo -clp:ErrorsOnly
# The demo's and the VM tests' guest (a Debian kernel and a busybox initramfs), cached in .cache/guest.
scripts/build-guest.sh >/dev/null
