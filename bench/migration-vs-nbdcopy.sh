#!/usr/bin/env bash
# Live migration against nbdcopy over the same rate-limited link, in one run. MUST RUN AS ROOT: it
# makes two network namespaces, roam-a and roam-b, joined by a veth pair (10.77.0.1 <-> 10.77.0.2,
# addresses that exist only inside them), each end limited to RATE with a tbf qdisc, and removes
# them on exit.
#   roamd A runs in roam-a (--peer-listen 10.77.0.1:10810, --nbd-listen 10.77.0.1:10809), roamd B
#   in roam-b (--peer-listen 10.77.0.2:10810); they trust each other. On A, a volume of VOLUME_SIZE
#   gets DATA_SIZE of random data at its start through NBD (fio, 1 MiB writes), the rest is never
#   written.
#   nbdcopy: in roam-b, `nbdcopy --flush nbd://10.77.0.1:10809/vol FILE` into a fresh sparse file
#   (its defaults: 4 connections, holes skipped through base:allocation).
#   migrate: `roam volume migrate vol --to b` (copy, then hand-over; B ends primary).
# For each: the time (the job's elapsedSeconds for the migration; wall time for nbdcopy), the bytes
# on the wire counted by the veth ends (tx of A's end: A->B; tx of B's end: B->A, so Ethernet, IP,
# TCP and TLS headers included), and for the migration the job's bytesOnWire (what roamd sent to the
# peer). Targets: migration time <= 1.05 x nbdcopy's; wire bytes A->B <= 1.05 x DATA_SIZE.
# Usage: sudo bench/migration-vs-nbdcopy.sh [volume size (1G)] [data size (512M)] [rate (100mbit)]
# ROAM_BENCH_SKIP_BUILD=1 skips scripts/bootstrap.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
vol_size=${1:-1G}
data_size=${2:-512M}
rate=${3:-100mbit}
[ "$(id -u)" -eq 0 ] || { echo "bench/migration-vs-nbdcopy.sh must run as root (network namespaces, tc)" >&2; exit 1; }
source bench/lib.sh
bench_bootstrap
command -v nbdcopy >/dev/null || { echo "nbdcopy missing (apt-get install libnbd-bin)" >&2; exit 1; }

work=$(mktemp -d /tmp/roam-bench.XXXXXX)
pid_a=""; pid_b=""
cleanup() {
  local rc=$?
  set +e
  stop_pid "$pid_a"; stop_pid "$pid_b"
  show_logs_on_failure $rc "$work/a.log" "$work/b.log"
  netns_remove "${NETNS_MADE[@]}"
  rm -rf "$work"
}
trap cleanup EXIT

# The link: a veth pair, one end in each namespace, both ends rate-limited.
netns_link roam-a 10.77.0.1 roam-b 10.77.0.2 "$rate"

wire() { echo "$(veth_tx roam-a) $(veth_tx roam-b)"; }   # "A->B B->A"

a=$work/a; b=$work/b
ip netns exec roam-a dotnet "$ROAMD_DLL" --data-dir "$a" --host-name a --peer-listen 10.77.0.1:10810 \
  --nbd-listen 10.77.0.1:10809 >"$work/a.log" 2>&1 & pid_a=$!
ip netns exec roam-b dotnet "$ROAMD_DLL" --data-dir "$b" --host-name b --peer-listen 10.77.0.2:10810 >"$work/b.log" 2>&1 & pid_b=$!
# The control and NBD sockets are files: the CLI and fio reach them from here.
wait_socket "$a/control.sock" "$pid_a"; wait_socket "$b/control.sock" "$pid_b"
trust_each_other "$a" a "$b" b 10.77.0.1:10810 10.77.0.2:10810

data_bytes=$(python3 -c 'import sys; s=sys.argv[1].upper(); u={"K":1<<10,"M":1<<20,"G":1<<30,"T":1<<40}; print(int(s[:-1])*u[s[-1]] if s[-1] in u else int(s))' "$data_size")
roam_on "$a" volume create vol --size "$vol_size" >/dev/null
echo "Writing $data_size of random data to the start of the $vol_size volume..." >&2
fio_nbd "nbd+unix:///vol?socket=$a/nbd.sock" "$work/fill.json" --rw=write --bs=1M --iodepth=8 --size="$data_bytes" \
  --refill_buffers --end_fsync=1
fio_write_bw "$work/fill.json" >/dev/null

echo "nbdcopy over the $rate link..." >&2
truncate -s "$vol_size" "$work/copy.raw"
read -r ta0 tb0 <<<"$(wire)"
t0=$(date +%s.%N)
ip netns exec roam-b nbdcopy --flush nbd://10.77.0.1:10809/vol "$work/copy.raw"
t1=$(date +%s.%N)
read -r ta1 tb1 <<<"$(wire)"
copy_s=$(python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$t0" "$t1")
copy_ab=$((ta1 - ta0)); copy_ba=$((tb1 - tb0))
copy_alloc=$(( $(stat -c %b "$work/copy.raw") * 512 ))
rm -f "$work/copy.raw"

echo "roam volume migrate vol --to b over the $rate link..." >&2
read -r ta0 tb0 <<<"$(wire)"
t0=$(date +%s.%N)
roam_on "$a" volume migrate vol --to b --json >"$work/migrate.json"
t1=$(date +%s.%N)
read -r ta1 tb1 <<<"$(wire)"
mig_wall=$(python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$t0" "$t1")
mig_ab=$((ta1 - ta0)); mig_ba=$((tb1 - tb0))
read -r mig_state mig_s mig_onwire mig_pause mig_primary < <(json "$work/migrate.json" \
  "'%s %s %s %s %s' % (j['state'], j['elapsedSeconds'], j.get('bytesOnWire', 0), j.get('writePauseMs', 0), j.get('newPrimary'))")
[ "$mig_state" = succeeded ] || { echo "migration $mig_state: $(json "$work/migrate.json" "j.get('error')")" >&2; exit 1; }
b_role=$(roam_on "$b" volume show vol --json | json - "j['replication']['role']")
b_alloc=$(roam_on "$b" volume show vol --json | json - "j['allocatedBytes']")

mib() { python3 -c 'import sys; print(f"{int(sys.argv[1])/2**20:,.1f}")' "$1"; }
printf '\n| %s volume, %s written, %s link | time (s) | A->B on the wire (MiB) | B->A (MiB) | roamd bytesOnWire (MiB) | allocated at the destination (MiB) |\n|---|---:|---:|---:|---:|---:|\n' \
  "$vol_size" "$data_size" "$rate"
printf '| nbdcopy (4 connections, sparse) | %.2f | %s | %s | | %s |\n' "$copy_s" "$(mib $copy_ab)" "$(mib $copy_ba)" "$(mib $copy_alloc)"
printf '| roam volume migrate (write pause %s ms; CLI wall %.2f s) | %.2f | %s | %s | %s | %s |\n' \
  "$(printf '%.1f' "$mig_pause")" "$mig_wall" "$mig_s" "$(mib $mig_ab)" "$(mib $mig_ba)" "$(mib $mig_onwire)" "$(mib $b_alloc)"
printf '| **migrate / nbdcopy** (target time <= 1.05) | **%s** | %s | %s | | |\n' "$(ratio "$mig_s" "$copy_s")" "$(ratio $mig_ab $copy_ab)" "$(ratio $mig_ba $copy_ba)"
printf '| **migrate / %s written** (target A->B <= 1.05) | | **%s** | | %s | |\n' "$data_size" "$(ratio $mig_ab $data_bytes)" "$(ratio $mig_onwire $data_bytes)"
printf '| nbdcopy / %s written (for reference: Ethernet+IP+TCP headers alone are ~4.5%% at MTU 1500) | | %s | | | |\n' "$data_size" "$(ratio $copy_ab $data_bytes)"
echo "(b is now $b_role of vol, new primary per the job: $mig_primary)"
