#!/usr/bin/env bash
# Serves the same allocated raw file with roamd and with qemu-nbd (both through the page cache:
# qemu-nbd --cache=writeback --aio=threads) and runs the same fio jobs (fio's nbd engine, one
# connection) against each, in one run. Prints IOPS and MB/s for both and roamd / qemu-nbd.
# Usage: bench/nbd-vs-qemu-nbd.sh [seconds-per-job (default 20)] [file size (default 1G)]
set -euo pipefail
cd "$(dirname "$0")/.."
runtime=${1:-20}
size=${2:-1G}
scripts/bootstrap.sh
command -v qemu-nbd >/dev/null || { echo "qemu-nbd missing (apt-get install qemu-utils)" >&2; exit 1; }
work=$(mktemp -d /tmp/roam-bench.XXXXXX)
roamd_pid=""; qnbd_pid=""
cleanup() {
  [ -n "$roamd_pid" ] && kill "$roamd_pid" 2>/dev/null && wait "$roamd_pid" 2>/dev/null || true
  [ -n "$qnbd_pid" ] && kill "$qnbd_pid" 2>/dev/null && wait "$qnbd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
roamd="dotnet src/Roam.Daemon/bin/Release/net10.0/roamd.dll"
roam="dotnet src/Roam.Cli/bin/Release/net10.0/roam.dll --control $work/data/control.sock"

$roamd --data-dir "$work/data" >"$work/roamd.log" 2>&1 &
roamd_pid=$!
for _ in $(seq 100); do [ -S "$work/data/control.sock" ] && break; sleep 0.1; done
$roam volume create bench --size "$size" >/dev/null
file=$work/data/volumes/bench.raw
roam_uri="nbd+unix:///bench?socket=$work/data/nbd.sock"
echo "Allocating $size with random data..." >&2
fio --name=fill --ioengine=nbd --uri="$roam_uri" --rw=write --bs=1M --iodepth=8 --size="$size" \
    --refill_buffers --output=/dev/null

jobs=("randread 4k 32" "randwrite 4k 32" "read 1M 8" "write 1M 8")
run_fio() { # uri rw bs depth -> "iops bw_bytes"
  fio --name=b --ioengine=nbd --uri="$1" --rw="$2" --bs="$3" --iodepth="$4" --size="$size" \
      --time_based --runtime="$runtime" --ramp_time=2 --output-format=json --output="$work/fio.json" >/dev/null
  # The nbd engine prints a line of its own on stdout, so the JSON goes through a file.
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]; s=j["read"] if j["read"]["io_bytes"] else j["write"]; print(s["iops"], s["bw_bytes"])' "$work/fio.json"
}
declare -A roam_res qemu_res
for j in "${jobs[@]}"; do
  set -- $j
  echo "roamd:    fio $1 bs=$2 iodepth=$3 (${runtime}s)" >&2
  roam_res[$j]=$(run_fio "$roam_uri" "$@")
done
kill "$roamd_pid"; wait "$roamd_pid" 2>/dev/null || true; roamd_pid=""

qemu-nbd -f raw --cache=writeback --aio=threads --persistent --shared=8 -x bench \
  -k "$work/qemu.sock" "$file" >"$work/qemu-nbd.log" 2>&1 &
qnbd_pid=$!
for _ in $(seq 100); do [ -S "$work/qemu.sock" ] && break; sleep 0.1; done
qemu_uri="nbd+unix:///bench?socket=$work/qemu.sock"
for j in "${jobs[@]}"; do
  set -- $j
  echo "qemu-nbd: fio $1 bs=$2 iodepth=$3 (${runtime}s)" >&2
  qemu_res[$j]=$(run_fio "$qemu_uri" "$@")
done

printf '\n| job | roamd IOPS | roamd MB/s | qemu-nbd IOPS | qemu-nbd MB/s | ratio roamd/qemu-nbd |\n|---|---:|---:|---:|---:|---:|\n'
for j in "${jobs[@]}"; do
  read -r ri rb <<<"${roam_res[$j]}"; read -r qi qb <<<"${qemu_res[$j]}"
  set -- $j
  python3 -c "import sys; ri,rb,qi,qb=map(float,sys.argv[2:]); print(f'| {sys.argv[1]} | {ri:,.0f} | {rb/1e6:,.1f} | {qi:,.0f} | {qb/1e6:,.1f} | {ri/qi:.2f} |')" \
    "$1 $2 QD$3" "$ri" "$rb" "$qi" "$qb"
done
