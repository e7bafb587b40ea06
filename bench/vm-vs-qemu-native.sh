#!/usr/bin/env bash
# The same VM migrated over the same rate-limited link by Roam (`roam vm migrate`) and by QEMU's own storage
# migration (a block mirror of the disk to an NBD server on the destination, then `migrate`, the way libvirt's
# `virsh migrate --live --copy-storage-all` drives QEMU), in one run. MUST RUN AS ROOT: two network namespaces,
# rvq-src (10.79.0.1) and rvq-dst (10.79.0.2), joined by a veth pair limited to RATE each way with tbf, removed
# on exit.
#
# The guest: the demo's (guest/: a Debian kernel and a busybox initramfs whose workload writes checksummed,
# sequence-numbered 4 KiB records to the first 32 MiB of /dev/vda with O_DIRECT, 200 a second, fdatasync every 16,
# checks 64 MiB of its memory page by page (rewriting 32 pages a second), and prints
# "HB <seq> <guest ns> <records> <errors> <memory passes> <memory errors> *<crc32>" on the serial console every
# 10 ms); 256 MiB of memory, one vCPU, TCG. The disk: a DISK-sized sparse raw image, DATA of random bytes written at 32 MiB (past the workload's
# region), the rest never written; both sides start from a copy of that image, and the destination from nothing.
#   QEMU-native: source QEMU on a local raw file (-blockdev file+raw, cache writeback like roamd's page cache);
#     destination QEMU with -S -incoming defer on its own empty sparse file of the same size; destination
#     nbd-server-start + nbd-server-add (writable); source blockdev-add (NBD client) + blockdev-mirror sync=full;
#     BLOCK_JOB_READY; migrate; on completion block-job-cancel (completes the mirror consistently); destination
#     nbd-server-stop, cont (bench/vm-bench.py native).
#   Roam: a roamd in each namespace trusting the other; roam volume import of the image, roam vm create/start on
#     the source, roam vm migrate --to dst.
# Each waits until the workload has run WARMUP seconds, then migrates. Figures, all taken the same way for both:
#   total time       host time from the migration command to the first heartbeat from the destination
#   pause            host time from the last heartbeat received from the source to the first from the destination
#                    (the serial console files are followed with a 2 ms poll, each line stamped on arrival)
#   QEMU's downtime  query-migrate's "downtime" on the source
#   on the wire      the veth counters (tx of each end: Ethernet, IP, TCP and, for Roam, TLS included)
#   throughput       workload records per second (x 4 KiB) over the migration, and over the WARMUP s before it
#   disk stall       the longest time in which the heartbeats' record counter did not advance (host stamps),
#                    within 5 s of the switch-over; also over the whole migration and before it
# and afterwards each destination disk is checked record by record (workload --verify) after the VM ran there.
# Targets (Roam / QEMU-native, one run): time and bytes <= 0.6; pause <= 1 and <= 200 ms; stall <= 500 ms;
# throughput during the migration >= 1.
#
# Usage: sudo bench/vm-vs-qemu-native.sh [disk (1G)] [data (96M)] [rate (100mbit)]
# Env: WARMUP (6 s); ROAM_MIGRATE_ARGS (extra `roam vm migrate` options, e.g. "--downtime-limit 100
# --bandwidth 12M"); QEMU_DOWNTIME_LIMIT (ms) and QEMU_BANDWIDTH (bytes/s) for migrate-set-parameters (unset:
# QEMU's defaults, 300 ms and 128 MiB/s); QEMU_CAPABILITIES (events); QEMU_COPY_MODE (background, libvirt's
# default; write-blocking is virsh's --copy-storage-synchronous-writes; below 50 Mbit/s the default is write-blocking:
# with the workload's 0.8 MB/s of writes a background mirror over 10 Mbit/s never reaches BLOCK_JOB_READY, measured
# here, and libvirt's user would then pick the synchronous mode; and QEMU_CAPABILITIES defaults to events,auto-converge
# there); ONLY=roam|native; KEEP=1 keeps the work
# dir. ROAM_BENCH_SKIP_BUILD=1 skips scripts/bootstrap.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
disk=${1:-1G}
data=${2:-96M}
rate=${3:-100mbit}
warmup=${WARMUP:-6}
[ "$(id -u)" -eq 0 ] || { echo "bench/vm-vs-qemu-native.sh must run as root (network namespaces, tc)" >&2; exit 1; }
source bench/lib.sh
# See QEMU_COPY_MODE above.
rate_mbit=$(python3 -c 'import re,sys; m=re.fullmatch(r"(\d+(?:\.\d+)?)([kmg]?)bit", sys.argv[1].lower()); print(float(m[1])*{"k":1e-3,"":1e-6,"m":1,"g":1e3}[m[2]] if m else 1e9)' "$rate")
if python3 -c "import sys; sys.exit(0 if $rate_mbit < 50 else 1)"; then
  export QEMU_COPY_MODE=${QEMU_COPY_MODE:-write-blocking}
  # At QEMU's default 300 ms the guest's hot ring keeps native's expected downtime at 0.8-1.6 s over 10 Mbit/s: it never
  # converges (15 minutes measured). libvirt's user would add --auto-converge.
  export QEMU_CAPABILITIES=${QEMU_CAPABILITIES:-events,auto-converge}
fi
bench_bootstrap
GUEST=${ROAM_GUEST_DIR:-$PWD/.cache/guest}
for f in "$GUEST/vmlinuz" "$GUEST/initrd.img" "$GUEST/workload"; do [ -e "$f" ] || { echo "$f missing (scripts/build-guest.sh)" >&2; exit 1; }; done
APPEND='console=ttyS0 quiet panic=-1'
SRC=rvq-src DST=rvq-dst SRC_IP=10.79.0.1 DST_IP=10.79.0.2

work=$(mktemp -d /tmp/roam-vq.XXXXXX)
pids=()        # processes to stop on exit (QEMUs, tails), newest last
roamd_pids=()
cleanup() {
  local rc=$?
  set +e
  trap - INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null; done
  for p in "${roamd_pids[@]}"; do stop_pid "$p"; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  show_logs_on_failure $rc "$work/src.log" "$work/dst.log" "$work/native-src.log" "$work/native-dst.log" \
    "$work/native-src.serial" "$work/native-dst.serial" "$work/src/vms/vm.serial" "$work/dst/vms/vm.serial"
  netns_remove "${NETNS_MADE[@]}"
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Not for processes put in the background: "py ... &" would be a subshell whose python3 outlives a kill of $!.
py() { python3 bench/vm-bench.py "$@"; }
now() { date +%s.%N; }
log() { echo "== $*" >&2; }

netns_link "$SRC" "$SRC_IP" "$DST" "$DST_IP" "$rate"

# The disk both sides start from.
to_mib() { python3 -c 'import sys; s=sys.argv[1].upper(); u={"K":1/1024,"M":1,"G":1024,"T":1<<20}; print(int(float(s[:-1])*u[s[-1]]) if s[-1] in u else int(s)>>20)' "$1"; }
truncate -s "$disk" "$work/base.raw"
dd if=/dev/urandom of="$work/base.raw" bs=1M seek=32 count="$(to_mib "$data")" conv=notrunc status=none
base_alloc=$(( $(stat -c %b "$work/base.raw") * 512 ))
log "disk image: $disk, $(( base_alloc >> 20 )) MiB allocated (random data at 32 MiB; the workload's 32 MiB region at 0 starts empty)"

# run_native: QEMU's own storage migration; its figures in $work/native.*
run_native() {
  local qemu_common=(qemu-system-x86_64 -nodefaults -no-user-config -display none -machine q35 -accel tcg -m 256 -smp 1
    -name vm -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initrd.img" -append "$APPEND" -no-reboot)
  disk_args() { echo "-blockdev driver=file,filename=$1,node-name=proto0 -blockdev driver=raw,file=proto0,node-name=disk0 -device virtio-blk-pci,drive=disk0,id=disk0-dev"; }
  cp --sparse=always "$work/base.raw" "$work/native-src.raw"
  truncate -s "$disk" "$work/native-dst.raw"
  python3 bench/vm-bench.py tail "$work/native.stamps" "$work/native-src.serial" "$work/native-dst.serial" & pids+=($!); local tailer=$!
  # shellcheck disable=SC2046
  ip netns exec "$SRC" "${qemu_common[@]}" -serial "file:$work/native-src.serial" -qmp "unix:$work/native-src.qmp,server=on,wait=off" \
    $(disk_args "$work/native-src.raw") >"$work/native-src.log" 2>&1 & pids+=($!); local qsrc=$!
  wait_socket "$work/native-src.qmp" $qsrc
  log "QEMU-native: source QEMU (pid $qsrc) booting; waiting for $warmup s of workload"
  py wait-hb "$work/native-src.serial" $((warmup * 100)) 180
  # shellcheck disable=SC2046
  ip netns exec "$DST" "${qemu_common[@]}" -S -incoming defer -serial "file:$work/native-dst.serial" \
    -qmp "unix:$work/native-dst.qmp,server=on,wait=off" $(disk_args "$work/native-dst.raw") >"$work/native-dst.log" 2>&1 & pids+=($!); local qdst=$!
  wait_socket "$work/native-dst.qmp" $qdst
  local a0 b0 a1 b1 opts=()
  [ -z "${QEMU_DOWNTIME_LIMIT:-}" ] || opts+=(--downtime-limit "$QEMU_DOWNTIME_LIMIT")
  [ -z "${QEMU_BANDWIDTH:-}" ] || opts+=(--bandwidth "$QEMU_BANDWIDTH")
  [ -z "${QEMU_CAPABILITIES:-}" ] || opts+=(--capabilities "$QEMU_CAPABILITIES")
  [ -z "${QEMU_COPY_MODE:-}" ] || opts+=(--copy-mode "$QEMU_COPY_MODE")
  log "QEMU-native: mirror + migrate over the $rate link ${opts[*]}"
  a0=$(veth_tx $SRC) b0=$(veth_tx $DST)
  py native "$work/native-src.qmp" "$work/native-dst.qmp" "$DST_IP" "$work/native.json" "${opts[@]}"
  a1=$(veth_tx $SRC) b1=$(veth_tx $DST)
  echo "$((a1 - a0)) $((b1 - b0))" >"$work/native.wire"
  py wait-hb "$work/native-dst.serial" 1 30 # the destination runs
  sleep 3
  kill -TERM $tailer; wait $tailer || true
  py analyse "$work/native.stamps" "$(json "$work/native.json" "j['steps']['t0']")" "$warmup" >"$work/native.hb"
  local last_rec; last_rec=$(json "$work/native.hb" "j['records_last']")
  kill -TERM $qsrc $qdst; wait $qsrc 2>/dev/null || true; wait $qdst 2>/dev/null || true
  "$GUEST/workload" --verify "$work/native-dst.raw" >"$work/native.verify" 2>&1 || true
  check_verify native "$last_rec"
  echo $(( $(stat -c %b "$work/native-dst.raw") * 512 )) >"$work/native.alloc"
}

# check_verify SIDE RECORDS: the workload --verify line says OK and reaches the last record the guest reported.
check_verify() {
  local max; max=$(sed -n 's/.*max_seq=\([0-9]*\).*=> OK$/\1/p' "$work/$1.verify")
  if [ -z "$max" ] || [ $((max + 1)) -lt "$2" ]; then
    echo "$1: workload --verify of the destination disk failed (the guest reported $2 records): $(cat "$work/$1.verify")" >&2; exit 1
  fi
  log "$1: destination disk verified: $(cat "$work/$1.verify")"
}

# run_roam: roam vm migrate; its figures in $work/roam.*
run_roam() {
  local a=$work/src b=$work/dst
  ROAM_VM_ACCELERATOR=tcg ip netns exec "$SRC" dotnet "$ROAMD_DLL" --data-dir "$a" --host-name src --peer-listen "$SRC_IP:10810" --vm-network none >"$work/src.log" 2>&1 & roamd_pids+=($!)
  ROAM_VM_ACCELERATOR=tcg ip netns exec "$DST" dotnet "$ROAMD_DLL" --data-dir "$b" --host-name dst --peer-listen "$DST_IP:10810" --vm-network none >"$work/dst.log" 2>&1 & roamd_pids+=($!)
  wait_socket "$a/control.sock" "${roamd_pids[0]}"; wait_socket "$b/control.sock" "${roamd_pids[1]}"
  trust_each_other "$a" src "$b" dst "$SRC_IP:10810" "$DST_IP:10810"
  roam_on "$a" volume import vol "$work/base.raw" >/dev/null
  roam_on "$a" vm create vm --volume vol --memory 256M --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initrd.img" --append "$APPEND" >/dev/null
  python3 bench/vm-bench.py tail "$work/roam.stamps" "$a/vms/vm.serial" "$b/vms/vm.serial" & pids+=($!); local tailer=$!
  roam_on "$a" vm start vm >/dev/null
  log "Roam: VM started on src (volume allocated: $(( $(api_get "$a" v1/volumes/vol | json - "j['allocatedBytes']") >> 20 )) MiB); waiting for $warmup s of workload"
  py wait-hb "$a/vms/vm.serial" $((warmup * 100)) 180
  local a0 b0 a1 b1 t0 t1
  # shellcheck disable=SC2086
  log "Roam: roam vm migrate vm --to dst ${ROAM_MIGRATE_ARGS:-}"
  a0=$(veth_tx $SRC) b0=$(veth_tx $DST)
  t0=$(now)
  # shellcheck disable=SC2086
  roam_on "$a" vm migrate vm --to dst ${ROAM_MIGRATE_ARGS:-} >"$work/roam-cli.out" 2>&1 || { cat "$work/roam-cli.out" >&2; exit 1; }
  t1=$(now)
  a1=$(veth_tx $SRC) b1=$(veth_tx $DST)
  echo "$((a1 - a0)) $((b1 - b0))" >"$work/roam.wire"
  api_get "$a" v1/vms/vm/migration >"$work/roam.json"
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); j["t0"]=float(sys.argv[2]); j["t_cli_end"]=float(sys.argv[3]); json.dump(j,open(sys.argv[1],"w"))' \
    "$work/roam.json" "$t0" "$t1"
  py wait-hb "$b/vms/vm.serial" 1 30
  sleep 3
  kill -TERM $tailer; wait $tailer || true
  py analyse "$work/roam.stamps" "$t0" "$warmup" >"$work/roam.hb"
  local last_rec; last_rec=$(json "$work/roam.hb" "j['records_last']")
  roam_on "$b" vm stop vm --timeout 2 >/dev/null
  echo "$(api_get "$b" v1/volumes/vol | json - "j['allocatedBytes']")" >"$work/roam.alloc"
  "$GUEST/workload" --verify "$b/volumes/vol.raw" >"$work/roam.verify" 2>&1 || true
  check_verify roam "$last_rec"
}

case ${ONLY:-} in
  roam) run_roam ;;
  native) run_native ;;
  *) run_native; run_roam ;;
esac

# The table.
python3 - "$work" "$disk" "$data" "$rate" "$base_alloc" "${ONLY:-}" "${ROAM_MIGRATE_ARGS:-}" \
  "${QEMU_DOWNTIME_LIMIT:-}" "${QEMU_BANDWIDTH:-}" "${QEMU_CAPABILITIES:-events}" "${QEMU_COPY_MODE:-background}" "$warmup" <<'PY'
import json, os, sys
work, disk, data, rate, base_alloc, only, roam_args, q_dl, q_bw, q_caps, q_copy, warmup = sys.argv[1:]
def load(side):
    if not os.path.exists(f"{work}/{side}.hb"):
        return None
    f = {"hb": json.load(open(f"{work}/{side}.hb")), "own": json.load(open(f"{work}/{side}.json"))}
    f["wire"] = [int(x) for x in open(f"{work}/{side}.wire").read().split()]
    f["alloc"] = int(open(f"{work}/{side}.alloc").read())
    f["verify"] = open(f"{work}/{side}.verify").read().strip()
    return f
n, r = load("native"), load("roam")
MiB = 2**20
def fig(f, side):
    if f is None:
        return {}
    hb, own = f["hb"], f["own"]
    if side == "native":
        qm = own["query_migrate"]; st = own["steps"]
        downtime, own_total = qm.get("downtime"), st["t_cont"] - st["t0"]
        disk_phase = st["t_ready"] - st["t0"]
    else:
        downtime, own_total, disk_phase = own.get("downtimeMs"), own.get("totalSeconds"), None
    return {
        "total": hb["total_s"], "own_total": own_total, "disk_phase": disk_phase,
        "downtime": downtime, "pause": hb["pause_ms"], "gap": hb["gap_ms_max"],
        "ab": f["wire"][0] / MiB, "ba": f["wire"][1] / MiB, "wire": sum(f["wire"]) / MiB,
        "tp_before": hb["rec_per_s_before"], "tp_during": hb["rec_per_s_during"],
        "stall": hb["stall_ms_switch"], "stall_mig": hb["stall_ms_migration"], "stall_before": hb["stall_ms_before"],
        "alloc": f["alloc"] / MiB, "problems": hb["problems"], "verify": f["verify"],
        "mem_errors": hb.get("mem_errors"), "mem_passes": hb.get("mem_passes_last"), "garbled": hb.get("garbled_lines"),
    }
N, R = fig(n, "native"), fig(r, "roam")
def v(d, k, fmt):
    x = d.get(k)
    return "" if x is None else fmt.format(x)
def ratio(k):
    if not N or not R or N.get(k) in (None, 0) or R.get(k) is None:
        return ""
    return f"{R[k] / N[k]:.2f}"
rows = [
    ("total time, command to first heartbeat at the destination (s)", "total", "{:.2f}"),
    ("  the tool's own total (Roam: totalSeconds; native: mirror start to cont) (s)", "own_total", "{:.2f}"),
    ("  native: disk mirror until BLOCK_JOB_READY (s)", "disk_phase", "{:.2f}"),
    ("downtime, QEMU's own figure (ms)", "downtime", "{}"),
    ("guest-visible pause, host-stamped heartbeats src -> dst (ms)", "pause", "{:.0f}"),
    ("longest heartbeat gap during the migration (ms)", "gap", "{:.0f}"),
    ("on the wire src -> dst (MiB)", "ab", "{:.1f}"),
    ("on the wire dst -> src (MiB)", "ba", "{:.1f}"),
    ("on the wire, both directions (MiB)", "wire", "{:.1f}"),
    (f"workload writes before the migration ({warmup} s), records/s (x 4 KiB)", "tp_before", "{:.0f}"),
    ("workload writes during the migration, records/s (x 4 KiB)", "tp_during", "{:.0f}"),
    ("longest disk stall within 5 s of the switch-over (ms)", "stall", "{:.0f}"),
    ("longest disk stall over the whole migration (ms)", "stall_mig", "{:.0f}"),
    (f"longest disk stall in the {warmup} s before (ms)", "stall_before", "{:.0f}"),
    ("allocated on the destination disk afterwards (MiB)", "alloc", "{:.1f}"),
    ("guest memory errors (64 MiB checked page by page)", "mem_errors", "{}"),
    ("guest memory passes completed, at the end", "mem_passes", "{}"),
    ("garbled heartbeat lines (checksum failed)", "garbled", "{}"),
]
print(f"\n| {disk} disk ({int(base_alloc) / MiB:.0f} MiB allocated), 256 MiB VM (TCG), {rate} link | QEMU-native | Roam | Roam / native |")
print("|---|---:|---:|---:|")
for label, k, fmt in rows:
    print(f"| {label} | {v(N, k, fmt)} | {v(R, k, fmt)} | {ratio(k)} |")
print(f"\nQEMU-native: blockdev-mirror sync=full copy-mode={q_copy}, capabilities {q_caps}, "
      f"downtime-limit {q_dl or 'default (300)'} ms, max-bandwidth {q_bw or 'default (128 MiB/s)'}; Roam: roam vm migrate {roam_args or '(defaults)'}")
for name, d in (("QEMU-native", N), ("Roam", R)):
    if d:
        print(f"{name}: verify: {d['verify']}; memory errors: {d['mem_errors']}; heartbeat problems: {'; '.join(d['problems']) or 'none'}")
if N and R:
    def chk(ok):
        return "met" if ok else "NOT met"
    t = [
        (f"total time <= 0.6 x native ({ratio('total')})", R["total"] <= 0.6 * N["total"]),
        (f"bytes on the wire <= 0.6 x native ({ratio('wire')})", R["wire"] <= 0.6 * N["wire"]),
        (f"guest-visible pause <= native's ({R['pause']:.0f} vs {N['pause']:.0f} ms)", R["pause"] <= N["pause"]),
        (f"guest-visible pause <= 200 ms ({R['pause']:.0f} ms)", R["pause"] <= 200),
        (f"disk stall around the switch <= 500 ms ({R['stall']:.0f} ms)", R["stall"] <= 500),
        (f"write throughput during the migration >= native's ({ratio('tp_during')})", R["tp_during"] >= N["tp_during"]),
    ]
    print("\nTargets:")
    for text, ok in t:
        print(f"- {text}: {chk(ok)}")
PY
