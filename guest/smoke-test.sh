#!/usr/bin/env bash
# Boots the Roam test guest under QEMU (TCG) and checks the workload end to end.
# usage: guest/smoke-test.sh [file|nbd|memfail|both|all]   (default both: file and nbd; all: the three)
#   file: -drive file=disk.raw,format=raw,if=virtio
#   nbd:  disk.raw served by qemu-nbd on a unix socket, -blockdev driver=nbd,... -device virtio-blk-pci
#   memfail: as file, with roam.mem_selftest_corrupt=1 (the workload spoils one of its checked memory pages after
#         the first pass): passes iff the memory check catches it (a "WORKLOAD ERROR mem page=" line, hb-stats
#         failing with memory errors).
# Env: ROAM_GUEST_DIR (default .cache/guest), HEARTBEATS (default 500), BOOT_TIMEOUT (default 90 s),
#      ACCEL (default tcg; KVM hangs on some hosts), KEEP=1 keeps the work dir.
# Passes iff: "ROAM-GUEST READY", >= HEARTBEATS heartbeats, no "WORKLOAD ERROR"/"ROAM-GUEST FAILED",
# heartbeats consecutive with increasing clock, at least one memory pass and no memory error, and
# `workload --verify disk.raw` finds every record in place.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:-both}"
gdir="${ROAM_GUEST_DIR:-$repo/.cache/guest}"
want="${HEARTBEATS:-500}"
limit="${BOOT_TIMEOUT:-90}"
accel="${ACCEL:-tcg}"

"$repo/scripts/build-guest.sh" "$gdir" >/dev/null
command -v qemu-system-x86_64 >/dev/null || { echo "smoke: qemu-system-x86_64 missing" >&2; exit 1; }

work=$(mktemp -d /tmp/roam-guest-smoke.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] && echo "smoke: kept $work" || rm -rf "$work"
}
trap cleanup EXIT

run() { # $1 = file|nbd|memfail
  local v="$1" d="$work/$1" qpid npid="" t0 tready="" n append='console=ttyS0 quiet panic=-1'
  [ "$v" = memfail ] && append+=" roam.mem_selftest_corrupt=1"
  mkdir -p "$d"
  truncate -s 64M "$d/disk.raw"
  local disk=(-drive "file=$d/disk.raw,format=raw,if=virtio")
  if [ "$v" = nbd ]; then
    command -v qemu-nbd >/dev/null || { echo "smoke[nbd]: qemu-nbd missing (apt-get install qemu-utils)" >&2; return 1; }
    qemu-nbd -f raw -k "$d/nbd.sock" -x vol0 -t "$d/disk.raw" 2>"$d/qemu-nbd.err" &
    npid=$!; pids+=("$npid")
    for _ in $(seq 100); do [ -S "$d/nbd.sock" ] && break; sleep 0.1; done
    [ -S "$d/nbd.sock" ] || { echo "smoke[nbd]: qemu-nbd did not start: $(cat "$d/qemu-nbd.err")" >&2; return 1; }
    disk=(-blockdev "driver=nbd,server.type=unix,server.path=$d/nbd.sock,export=vol0,node-name=d0"
          -device virtio-blk-pci,drive=d0)
  fi
  t0=$(date +%s.%N)
  timeout "$limit" qemu-system-x86_64 -accel "$accel" -m 256 -nodefaults -display none -no-reboot \
    -kernel "$gdir/vmlinuz" -initrd "$gdir/initrd.img" -append "$append" \
    -serial "file:$d/serial.log" "${disk[@]}" 2>"$d/qemu.err" &
  qpid=$!; pids+=("$qpid")
  while kill -0 "$qpid" 2>/dev/null; do
    if [ -z "$tready" ] && grep -q "ROAM-GUEST READY" "$d/serial.log" 2>/dev/null; then tready=$(date +%s.%N); fi
    if [ -n "$tready" ]; then
      n=$(grep -c '^HB ' "$d/serial.log" || true)
      [ "$n" -ge "$want" ] && break
    fi
    grep -q "ROAM-GUEST FAILED" "$d/serial.log" 2>/dev/null && break
    [ "$v" = memfail ] && grep -aq "WORKLOAD ERROR mem " "$d/serial.log" 2>/dev/null && { sleep 0.2; break; }
    sleep 0.1
  done
  kill "$qpid" 2>/dev/null || true
  wait "$qpid" 2>/dev/null || true
  if [ -n "$npid" ]; then kill "$npid" 2>/dev/null || true; wait "$npid" 2>/dev/null || true; fi

  local ok=0
  if [ -n "$tready" ]; then
    echo "smoke[$v]: boot to READY $(awk -v a="$t0" -v b="$tready" 'BEGIN { printf "%.2f", b - a }') s (wall, accel=$accel), guest: $(grep -a -m1 'ROAM-GUEST READY' "$d/serial.log" | tr -d '\r')"
  else
    echo "smoke[$v]: no ROAM-GUEST READY; serial log tail:" >&2; tail -n 20 "$d/serial.log" >&2 || true
    tail -n 5 "$d/qemu.err" >&2 || true
    ok=1
  fi
  if [ "$v" = memfail ]; then
    local st=0 out
    out=$(python3 "$repo/guest/hb-stats.py" "$d/serial.log") || st=$?
    sed "s/^/smoke[$v]: /" <<<"$out"
    if [ "$st" = 1 ] && grep -q "memory errors" <<<"$out" && grep -aq "WORKLOAD ERROR mem page=" "$d/serial.log"; then
      echo "smoke[$v]: the spoilt page was caught: $(grep -a -m1 'WORKLOAD ERROR mem' "$d/serial.log" | tr -d '\r')"
    else
      echo "smoke[$v]: FAIL the memory check did not report the spoilt page" >&2; ok=1
    fi
    [ "$ok" = 0 ] && echo "smoke[$v]: PASS" || echo "smoke[$v]: FAIL (logs in $d; KEEP=1 to keep)"
    return "$ok"
  fi
  python3 "$repo/guest/hb-stats.py" "$d/serial.log" --min-heartbeats "$want" | sed "s/^/smoke[$v]: /" || ok=1
  local passes
  passes=$(python3 "$repo/guest/hb-stats.py" "$d/serial.log" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["mem_passes"] or 0)')
  if [ "${passes:-0}" -lt 1 ]; then echo "smoke[$v]: FAIL no memory pass completed" >&2; ok=1; fi
  local vout
  vout=$("$gdir/workload" --verify "$d/disk.raw") || ok=1
  echo "smoke[$v]: $vout"
  # every record the guest reported written must be on the disk
  local written maxseq
  written=$(grep -a '^HB ' "$d/serial.log" | tail -n 2 | head -n 1 | awk '{print $4}')
  maxseq=$(sed -n 's/.*max_seq=\([0-9]*\).*/\1/p' <<<"$vout")
  if [ -n "$written" ] && [ -n "$maxseq" ] && [ "$((maxseq + 1))" -lt "$written" ]; then
    echo "smoke[$v]: FAIL guest reported $written records written but disk ends at seq $maxseq" >&2; ok=1
  fi
  [ "$ok" = 0 ] && echo "smoke[$v]: PASS" || echo "smoke[$v]: FAIL (logs in $d; KEEP=1 to keep)"
  return "$ok"
}

rc=0
case "$mode" in
  file) run file || rc=1 ;;
  nbd) run nbd || rc=1 ;;
  memfail) run memfail || rc=1 ;;
  both) run file || rc=1; run nbd || rc=1 ;;
  all) run file || rc=1; run nbd || rc=1; run memfail || rc=1 ;;
  *) echo "usage: $0 [file|nbd|memfail|both|all]" >&2; exit 2 ;;
esac
exit "$rc"
