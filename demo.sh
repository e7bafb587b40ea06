#!/usr/bin/env bash
# Roam's main job, end to end, on a fresh Debian machine with no configuration: a person's VM follows them
# between two hosts, "office" and "car", by live migration, its disk on each host's local storage.
#
#   1. scripts/bootstrap.sh: apt packages, the Release build, the guest (a Debian kernel + a busybox initrd
#      whose workload writes checksummed records to its disk and prints a heartbeat every 10 ms)
#   2. two hosts: as root, two network namespaces (roam-office 10.78.0.1, roam-car 10.78.0.2) joined by a
#      veth pair limited to 100 Mbit/s each way; otherwise two roamds on loopback. They trust each other.
#   3. a volume and a VM on office; the workload starts writing
#   4. roam vm migrate vm --to car while it writes: total time, QEMU's downtime, the guest-visible pause (host time),
#      disk and memory bytes on the wire
#   5. office goes away entirely; the VM keeps writing on car
#   6. office comes back and the VM returns: only the delta of the disk moves
#   7. the VM stops; every record on the final volume is checked (workload --verify)
#
# Env: ROAM_VM_ACCELERATOR (default tcg; kvm, or empty for roamd's probe), ROAM_DEMO_VOLUME_SIZE (256M),
# ROAM_DEMO_RATE (100mbit), ROAM_DEMO_NETNS=0 (loopback even as root), ROAM_DEMO_KEEP=1 (keep the work dir),
# ROAM_DEMO_DIR (the work dir), ROAM_DEMO_SKIP_BUILD=1 (no bootstrap: the tests run the demo on their own build).
# Exits non-zero, saying why, when any step fails.
set -Eeuo pipefail
cd "$(dirname "$0")"
source scripts/demo-lib.sh

VOLUME_SIZE=${ROAM_DEMO_VOLUME_SIZE:-256M}
RATE=${ROAM_DEMO_RATE:-100mbit}
export ROAM_VM_ACCELERATOR=${ROAM_VM_ACCELERATOR-tcg}
work=""
done_ok=""

cleanup() {
  local rc=$?
  set +eE
  trap - ERR
  [ -n "$done_ok" ] && step "Cleanup"
  stop_poller
  for h in car office; do [ -n "${PID[$h]:-}" ] && stop_roamd "$h" >/dev/null 2>&1; done
  for h in car office; do [ -n "${DIR[$h]:-}" ] && kill_dir_qemus "${DIR[$h]}"; done  # VMs outlive roamd
  if [ -n "$NETNS" ]; then
    for h in office car; do kill_ns_pids "roam-$h"; ip netns del "roam-$h" 2>/dev/null; done
  fi
  if [ "$rc" != 0 ] && [ -n "$work" ] && [ -d "$work" ]; then
    for f in "$work/office.log" "$work/car.log"; do
      [ -f "$f" ] && { echo "--- last lines of $f" >&2; tail -n 15 "$f" >&2; }
    done
    for h in office car; do
      f="$work/$h/vms/vm.serial"
      [ -f "$f" ] && { echo "--- last lines of $h's serial console" >&2; tail -n 5 "$f" | tr -d '\r' >&2; }
    done
  fi
  if [ -n "$work" ]; then
    if [ "${ROAM_DEMO_KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
  fi
  [ -n "$done_ok" ] && say "roamds and QEMUs stopped${NETNS:+, namespaces removed}$([ "${ROAM_DEMO_KEEP:-0}" = 1 ] || echo ', temporary files removed')"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'if [ "$BASHPID" = "$$" ]; then die "line $LINENO: $BASH_COMMAND"; fi' ERR

# ------------------------------------------------------------------------------------------------------------
step "1. Bootstrap: apt packages, Release build, the guest (kernel, initrd, workload)"
if [ "${ROAM_DEMO_SKIP_BUILD:-0}" = 1 ]; then
  say "skipped (ROAM_DEMO_SKIP_BUILD=1): using the build and the guest already there"
else
  scripts/bootstrap.sh 2>&1 | sed -e '/^[[:space:]]*$/d' -e 's/^/   /' || die "scripts/bootstrap.sh failed"
fi
for f in "$ROAMD_DLL" "$ROAM_DLL" "$GUEST/vmlinuz" "$GUEST/initrd.img" "$GUEST/workload"; do
  [ -e "$f" ] || die "$f is missing after scripts/bootstrap.sh"
done
ok "built; guest kernel $(cat "$GUEST/kernel-version" 2>/dev/null || echo '?'), VMs run under ${ROAM_VM_ACCELERATOR:-the accelerator probe}"

work=${ROAM_DEMO_DIR:-$(mktemp -d /tmp/roam-demo.XXXXXX)}
mkdir -p "$work"
write_helper

# ------------------------------------------------------------------------------------------------------------
step "2. Two hosts, office and car"
setup_hosts "$RATE"
for h in "${HOSTS[@]}"; do
  start_roamd "$h"
  say "roamd $h: pid ${PID[$h]}, data dir ${DIR[$h]}, peers on ${ADDR[$h]}:${PORT[$h]}"
done
trust office car
trust car office

# ------------------------------------------------------------------------------------------------------------
step "3. A VM on office, its disk a $VOLUME_SIZE volume on office's local storage"
show office volume create vol --size "$VOLUME_SIZE"
show office vm create vm --volume vol --memory 256M --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initrd.img" \
  --append 'console=ttyS0 quiet panic=-1'
t_start=$(date +%s.%N)
show office vm start vm
wait_hb office 100 120 "booting the guest"
say "guest up after $(python3 -c "import time; print(f'{time.time()-$t_start:.1f}')") s: $(grep -a -m1 'ROAM-GUEST READY' "$(serial office)" | tr -d '\r')"
say "its workload writes checksummed 4 KiB records to /dev/vda, checks $(grep -a -m1 '^WORKLOAD MEM' "$(serial office)" | sed -n 's/.*pages=\([0-9]*\) dirty=\([0-9]*\).*/\1 pages of its memory (rewriting \2 a second)/p'),"
say "and prints a heartbeat every 10 ms:"
say "  console: $(grep -a '^HB ' "$(serial office)" | tail -n 2 | head -n 1 | tr -d '\r')"
say "  (HB <#> <guest clock ns> <records> <errors> <memory passes> <memory errors> *<CRC-32 of the line>)"
hb_line office
sleep 1
hb_line office

# ------------------------------------------------------------------------------------------------------------
declare -A FIG
# figures SRC DST LOG LINK_SRC LINK_DST KEY START_SEQ SRC_LAST: prints one migration's figures, keeps them in
# FIG[KEY.*]. LOG: both serial logs; START_SEQ: the heartbeat when it began; SRC_LAST: the source's last one.
figures() {
  local src=$1 dst=$2 log=$3 key=$6 start=$7 src_last=$8 m="$work/migration-$1-$2.json" stats hstats
  read -r _ <<<"$(py gaps "$log" "$start" "$src_last" "$log.window")"
  # hb-stats over both serial logs from the migration's start: they do not hold the guest's READY and START lines.
  stats=$(hb_stats "$log.window")
  local problems; problems=$(py json - "'; '.join(p for p in j['problems'] if not p.startswith(\"no '\"))" <<<"$stats")
  [ -z "$problems" ] || die "heartbeats across the migration $src -> $dst: $problems"
  # The same heartbeats in host time: each roamd stamps every console line as it receives it (LOG.stamped).
  py gaps "$log.stamped" "$start" "$src_last" "$log.stamped.window" >/dev/null
  hstats=$(python3 guest/hb-stats.py "$log.stamped.window" --at $((src_last + 1)) --json || true)
  FIG[$key.switch]=$(py json - "f\"{j['host_gap_ms_at']:.0f} ms\"" <<<"$hstats")
  FIG[$key.gap]=$(py json - "f\"{j['host_gap_ms_max']:.0f} ms\"" <<<"$hstats")
  FIG[$key.gapat]=$(py json - "j['host_gap_max_at_hb']" <<<"$hstats")
  FIG[$key.median]=$(py json - "f\"{j['host_gap_ms_median']:.1f} ms\"" <<<"$hstats")
  FIG[$key.total]=$(py json "$m" "f\"{j['totalSeconds']:.2f} s\"")
  FIG[$key.downtime]=$(py json "$m" "f\"{j['downtimeMs']} ms\"")
  FIG[$key.pause]=$(py json "$m" "f\"{j['writePauseMs']:.1f} ms\"")
  FIG[$key.diskb]=$(py json "$m" "j['diskBytesOnWire']")
  FIG[$key.disk]=$(py mib "${FIG[$key.diskb]}")
  FIG[$key.ram]=$(py json "$m" "f\"{j['ramTransferred']/2**20:.1f} MiB\"")
  FIG[$key.tunnel]=$(py json "$m" "f\"{j['tunnelBytes']/2**20:.1f} MiB\"")
  FIG[$key.link]=""
  [ -z "$NETNS" ] || FIG[$key.link]="$(py mib "$4") ($(py mib "$5") back)"
  say "total time             ${FIG[$key.total]}"
  say "QEMU's downtime        ${FIG[$key.downtime]}   (disk hand-over inside it: ${FIG[$key.pause]})"
  say "guest-visible pause    ${FIG[$key.switch]}   (host time from heartbeat #$src_last on $src to #$((src_last + 1)) on $dst, each line stamped"
  say "                       by its roamd on receipt: the guest's own clock stands still while QEMU has it paused)"
  say "heartbeat gap          longest ${FIG[$key.gap]}, before heartbeat #${FIG[$key.gapat]} (median ${FIG[$key.median]}; host time, both consoles"
  say "                       from heartbeat #$start, the migration's start)"
  say "disk on the wire       ${FIG[$key.disk]}   (volume $VOLUME_SIZE: only written blocks that $dst lacked when the migration began)"
  say "memory on the wire     ${FIG[$key.ram]}   (QEMU's count; ${FIG[$key.tunnel]} through roamd's TLS tunnel)"
  [ -z "$NETNS" ] || say "on the link            ${FIG[$key.link]}   (veth counters: disk, memory, TLS and TCP/IP headers)"
}

step "4. Live migration office -> car while the workload writes"
say "roamd mirrors the disk to car, then QEMU's memory goes through the roamds' mutual-TLS peer link"
read_hb office; start=$HB_SEQ
tx0_office=$(link_tx office) tx0_car=$(link_tx car)
migrate office car
tx1_office=$(link_tx office) tx1_car=$(link_tx car)
cp "$(serial office)" "$work/office-1.serial"   # office's QEMU is gone; its console log is final
cp "$(serial office).stamped" "$work/office-1.serial.stamped"
[ "$(api car v1/vms/vm "j['state']")" = running ] || die "the VM is not running on car after the migration"
read_hb office; last_office=$HB_SEQ
wait_hb car $((last_office + 100)) 60 "the guest after the migration"
cat "$work/office-1.serial" "$(serial car)" >"$work/m1.log"
cat "$work/office-1.serial.stamped" "$(serial car).stamped" >"$work/m1.log.stamped"
figures office car "$work/m1.log" $((tx1_office - tx0_office)) $((tx1_car - tx0_car)) m1 "$start" "$last_office"
hb_line car
say "office: no VM any more; it keeps vol as a warm $(api office v1/volumes/vol "j['replication']['role']") of car's"

# ------------------------------------------------------------------------------------------------------------
step "5. office goes away entirely; the VM keeps writing on car"
office_pid=${PID[office]}
rc=0; stop_roamd office || rc=$?
say "SIGTERM to roamd office (pid $office_pid): exited with $rc${NETNS:+; no process left in roam-office}"
[ "$rc" = 0 ] || die "roamd office exited with $rc on SIGTERM"
read_hb car; rec0=$HB_REC seq0=$HB_SEQ
for _ in 1 2 3 4; do sleep 1; hb_line car; done
[ "$HB_REC" -gt "$rec0" ] && [ "$HB_SEQ" -gt $((seq0 + 300)) ] || die "the workload on car stalled without office (records $rec0 -> $HB_REC)"
ok "$((HB_REC - rec0)) more records written on car without office, 0 errors"
say "car tracks what office misses: replica $(api car v1/volumes/vol \
  "f\"{j['replication']['replicas'][0]['state']}, {j['replication']['replicas'][0]['bytesOutOfSync']/2**20:.1f} MiB out of sync\"")"

# ------------------------------------------------------------------------------------------------------------
step "6. office comes back; the VM returns car -> office"
replica() { api car v1/volumes/vol "next(r['$1'] for r in j['replication']['replicas'] if r['peer'] == 'office')"; }
resynced0=$(replica bytesResynced)
tx0_office=$(link_tx office) tx0_car=$(link_tx car)
start_roamd office
say "roamd office is back: pid ${PID[office]}, same data dir and identity"
t_back=$(date +%s.%N)
for _ in $(seq 300); do [ "$(replica state)" = InSync ] && break; sleep 0.1; done
[ "$(replica state)" = InSync ] || die "car did not get its replica link to office back in sync within 30 s ($(replica state))"
resync=$(( $(replica bytesResynced) - resynced0 ))
say "car reconnected to office after $(python3 -c "import time; print(f'{time.time()-$t_back:.1f}')") s (with backoff) and resynced the delta it had tracked: $(py mib "$resync")"
read_hb car; start=$HB_SEQ
migrate car office
tx1_office=$(link_tx office) tx1_car=$(link_tx car)
[ "$(api office v1/vms/vm "j['state']")" = running ] || die "the VM is not running on office after the migration back"
read_hb car; last_car=$HB_SEQ
wait_hb office $((last_car + 100)) 60 "the guest after the migration back"
cat "$(serial car)" "$(serial office)" >"$work/m2.log"
cat "$(serial car).stamped" "$(serial office).stamped" >"$work/m2.log.stamped"
figures car office "$work/m2.log" $((tx1_car - tx0_car)) $((tx1_office - tx0_office)) m2 "$start" "$last_car"
vol_bytes=$(api office v1/volumes/vol "j['size']")
delta=$((resync + ${FIG[m2.diskb]}))
[ "$delta" -lt $((vol_bytes / 4)) ] || die "$(py mib "$delta") of disk went back to office: not just the delta"
ok "only the delta moved back: $(py mib "$delta") of disk ($(py mib "$resync") resynced on reconnect + ${FIG[m2.disk]} during the migration),"
say "  $(py ratio "$delta" "$vol_bytes") of the $VOLUME_SIZE volume (the first trip, to an empty car: ${FIG[m1.disk]}, the blocks ever written)"
FIG[m2.disk]="$(py mib "$delta") (the delta)"
hb_line office

# ------------------------------------------------------------------------------------------------------------
step "7. Stopping the VM and checking every record on office's volume"
sleep 1
hb_line office
written=$HB_REC
show office vm stop vm --timeout 2
cat "$work/office-1.serial" "$(serial car)" "$(serial office)" >"$work/all.log"
cat "$work/office-1.serial.stamped" "$(serial car).stamped" "$(serial office).stamped" >"$work/all.log.stamped"
stats=$(hb_stats "$work/all.log")
host_max=$(py json - "f\"{j['host_gap_ms_max']:.0f} ms (host time)\"" <<<"$(hb_stats "$work/all.log.stamped")")
problems=$(py json - "'; '.join(j['problems'])" <<<"$stats")
[ -z "$problems" ] || die "heartbeats over the whole run: $problems"
ok "$(py json - "f\"{j['heartbeats']} heartbeats over {j['span_s']:.1f} s, consecutive across both migrations, {j['records_written']} records, errors {j['errors']}, memory passes {j['mem_passes']}, memory errors {j['mem_errors']}\"" <<<"$stats")"
verify=$("$GUEST/workload" --verify "${DIR[office]}/volumes/vol.raw" 2>&1) || die "workload --verify on office's volume: $verify"
max_seq=$(sed -n 's/.*max_seq=\([0-9]*\).*/\1/p' <<<"$verify")
[ -n "$max_seq" ] && [ $((max_seq + 1)) -ge "$written" ] || die "the guest reported $written records written but the volume ends at record $max_seq"
ok "workload --verify office/volumes/vol.raw: ${verify#verify: }"

# ------------------------------------------------------------------------------------------------------------
step "Summary"
row() { printf '   %-24s %-26s %s\n' "$@"; }
row "" "office -> car" "car -> office"
row "total time" "${FIG[m1.total]}" "${FIG[m2.total]}"
row "QEMU's downtime" "${FIG[m1.downtime]}" "${FIG[m2.downtime]}"
row "guest-visible pause" "${FIG[m1.switch]}" "${FIG[m2.switch]}"
row "heartbeat gap, longest" "${FIG[m1.gap]} (#${FIG[m1.gapat]})" "${FIG[m2.gap]} (#${FIG[m2.gapat]})"
row "disk on the wire" "${FIG[m1.disk]}" "${FIG[m2.disk]}"
row "memory on the wire" "${FIG[m1.ram]}" "${FIG[m2.ram]}"
[ -z "$NETNS" ] || row "on the link (veth)" "${FIG[m1.link]}" "${FIG[m2.link]}"
say ""
link="loopback"; [ -z "$NETNS" ] || link="a $RATE link"
say "volume $VOLUME_SIZE, VM 256 MiB (${ROAM_VM_ACCELERATOR:-accelerator by probe}), $link; office was down in between"
say "workload: $(py json - "f\"{j['records_written']} records, {j['errors']} errors, {j['mem_passes']} memory passes, {j['mem_errors']} memory errors, heartbeats consecutive ({j['garbled_lines']} garbled console lines)\"" <<<"$stats"), max gap $host_max; verify OK"
say "whole demo: $(elapsed) s"
done_ok=1
