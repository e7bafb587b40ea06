#!/usr/bin/env bash
# Installs what Roam's demo, tests and benchmarks need on a Debian machine, then builds the solution.
# Idempotent: packages already present are not reinstalled. Used by ./demo.sh, ./test.sh and .ci/run.
#
# QEMU: Roam runs on QEMU 10.0, which Debian 12 (bookworm) has in its backports suite: on bookworm this script adds
# that suite (an apt sources entry) and pins QEMU's packages to it, and nothing else. Debian 7.2 loses TCG guests after
# long migrations (kernel panics right after arrival, with QEMU's own migration too; see the README). Debian 13 (trixie)
# has 10.0 in its main suite. ROAM_QEMU=distro keeps the distribution's QEMU (7.2 on bookworm: supported, not
# recommended).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
apt_install() {
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null   # (sudo resets the env)
}

qemu_packages=(qemu-system-x86 qemu-utils)
packages=(libnbd-bin nbdkit fio busybox-static iproute2 python3 dnsmasq-base nftables)
updated=""
update() { [ -n "$updated" ] || { $sudo apt-get update -qq; updated=1; }; }

codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ "$codename" = bookworm ] && [ "${ROAM_QEMU:-backports}" != distro ]; then
  sources=/etc/apt/sources.list.d/roam-bookworm-backports.sources
  pin=/etc/apt/preferences.d/roam-qemu
  # Files apt reads (*.list, *.sources), lines not commented out; a "bookworm-backports-sloppy" entry does not count.
  if ! grep -Eqs '^[^#]*bookworm-backports([[:space:]]|$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
      /etc/apt/sources.list.d/*.sources; then
    echo "bootstrap: adding Debian's bookworm-backports suite for QEMU 10.0 ($sources)" >&2
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' | $sudo tee "$sources" >/dev/null
    updated=""
  fi
  if [ ! -f "$pin" ]; then
    # Only QEMU (and the firmware it is built against) comes from backports; everything else stays on bookworm.
    printf '%s\n' '# Roam: QEMU 10.0 from bookworm-backports (scripts/bootstrap.sh)' \
      'Package: qemu-* seabios' 'Pin: release n=bookworm-backports' 'Pin-Priority: 990' | $sudo tee "$pin" >/dev/null
  fi
  have=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || true)
  if ! installed qemu-system-x86 || ! installed qemu-utils || ! dpkg --compare-versions "${have:-0}" ge 1:10.0; then
    echo "bootstrap: installing QEMU 10.0 from bookworm-backports (${have:+replacing $have})" >&2
    update
    apt_install -t bookworm-backports "${qemu_packages[@]}"
  fi
else
  packages+=("${qemu_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}" >&2
  update
  apt_install "${missing[@]}"
fi

if ! command -v dotnet >/dev/null; then
  echo "bootstrap: the .NET 10 SDK is required (dotnet not found on PATH)" >&2
  exit 1
fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build Roam.sln -c Release -v quiet -nologo -clp:ErrorsOnly
# The demo's and the VM tests' guest (a Debian kernel and a busybox initramfs), cached in .cache/guest.
scripts/build-guest.sh >/dev/null
