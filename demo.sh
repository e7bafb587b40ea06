#!/usr/bin/env bash
# Roam's main job, on an embedded default with no configuration: start a roamd, make a volume,
# write and read it back through real NBD clients, and show how to connect to it.
# (The live migration of a running VM between hosts replaces this demo once it exists.)
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
roamd="dotnet $PWD/src/Roam.Daemon/bin/Release/net10.0/roamd.dll"
roam="dotnet $PWD/src/Roam.Cli/bin/Release/net10.0/roam.dll"
dir=${ROAM_DEMO_DIR:-$(mktemp -d /tmp/roam-demo.XXXXXX)}
export ROAM_CONTROL=$dir/control.sock
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting roamd on data dir $dir"
$roamd --data-dir "$dir" >"$dir/roamd.log" 2>&1 &
pid=$!
cleanup() { kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; }
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$ROAM_CONTROL" ] && break; sleep 0.1; done
[ -S "$ROAM_CONTROL" ] || { cat "$dir/roamd.log"; echo "roamd did not start" >&2; exit 1; }

step "roam volume create demo --size 1G"
$roam volume create demo --size 1G
uri="nbd+unix:///demo?socket=$dir/nbd.sock"

step "Writing patterns through NBD with qemu-io"
qemu-io -f raw "$uri" -c 'write -P 0xa5 0 4M' -c 'write -P 0x5a 512M 1M' -c 'write -z 100M 8M' -c flush | grep -v '^[0-9]'
step "Reading them back and verifying"
qemu-io -f raw "$uri" -c 'read -P 0xa5 0 4M' -c 'read -P 0x5a 512M 1M' -c 'read -P 0 100M 8M' | grep -v '^[0-9]'

step "The export as nbdinfo sees it (allocation map: only what was written takes space)"
nbdinfo "$uri" | grep -E 'export-size|can_multi_conn|can_fua|block_size_max'
nbdinfo --map "$uri"

step "roam volume list"
$roam volume list

step "How to connect"
$roam export demo
echo "  qemu-system-x86_64 ... -drive file=$uri,format=raw,if=virtio"
echo "  roam --control $ROAM_CONTROL volume show demo"

if [ -t 0 ] && [ -z "${CI:-}" ]; then
  echo; echo "roamd keeps serving; press Enter to stop it (its log: $dir/roamd.log)."
  read -r _
fi
step "Stopping roamd (SIGTERM: clients are disconnected cleanly, data flushed)"
