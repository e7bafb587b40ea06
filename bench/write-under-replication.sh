#!/usr/bin/env bash
# Small random writes on a primary, alone and while it replicates, in one run. Two roamds on
# 127.0.0.1 (A primary, B peer). fio writes 4 KiB blocks at random offsets in the first REGION of a
# volume (QD16, one connection, SECONDS after a 2 s ramp) through A's NBD export, every volume's
# REGION written with random data beforehand so every case overwrites allocated blocks:
#   (a) no replica;
#   (b) during a sync-mode migration: the volume holds MIGRATE_FILL of random data; `roam volume
#       migration prepare vol --to b` starts copying it to B (writes are mirrored synchronously
#       meanwhile) and fio starts at once; the table says which phase the migration was in when fio
#       ended (Copying means the whole run overlapped the copy: raise MIGRATE_FILL if not) and how
#       much it copied meanwhile; then the migration is aborted (A stays primary);
#   (c) with an async replica on B, in sync before fio starts.
# Prints IOPS, MB/s, mean and p99 completion latency of each, and ratios to (a).
# Usage: bench/write-under-replication.sh [seconds (20)] [region (1G)] [migrate fill (4G)]
# ROAM_BENCH_SKIP_BUILD=1 skips scripts/bootstrap.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
runtime=${1:-20}
region=${2:-1G}
fill=${3:-4G}
source bench/lib.sh
bench_bootstrap
work=$(mktemp -d /tmp/roam-bench.XXXXXX)
pid_a=""; pid_b=""
cleanup() { local rc=$?; set +e; stop_pid "$pid_a"; stop_pid "$pid_b"; show_logs_on_failure $rc "$work/a.log" "$work/b.log"; rm -rf "$work"; }
trap cleanup EXIT

a=$work/a; b=$work/b
dotnet "$ROAMD_DLL" --data-dir "$a" --host-name a --peer-listen 127.0.0.1:0 >"$work/a.log" 2>&1 & pid_a=$!
dotnet "$ROAMD_DLL" --data-dir "$b" --host-name b --peer-listen 127.0.0.1:0 >"$work/b.log" 2>&1 & pid_b=$!
wait_socket "$a/control.sock" "$pid_a"; wait_socket "$b/control.sock" "$pid_b"
trust_each_other "$a" a "$b" b
to_bytes() { python3 -c 'import sys; s=sys.argv[1].upper(); u={"K":1<<10,"M":1<<20,"G":1<<30,"T":1<<40}; print(int(s[:-1])*u[s[-1]] if s[-1] in u else int(s))' "$1"; }
region_bytes=$(to_bytes "$region"); fill_bytes=$(to_bytes "$fill")
((fill_bytes >= region_bytes)) || { echo "migrate fill ($fill) must be at least the region ($region)" >&2; exit 1; }

make_volume() { # NAME SIZE-BYTES FILL-BYTES
  roam_on "$a" volume create "$1" --size "$2" >/dev/null
  echo "  writing $(( $3 >> 20 )) MiB of random data to $1" >&2
  fio_nbd "nbd+unix:///$1?socket=$a/nbd.sock" "$work/fill-$1.json" --rw=write --bs=1M --iodepth=8 --size="$3" \
    --refill_buffers --end_fsync=1
  fio_write_bw "$work/fill-$1.json" >/dev/null
}
rand_write() { # VOLUME -> "bw_bytes iops mean_us p99_us"
  fio_nbd "nbd+unix:///$1?socket=$a/nbd.sock" "$work/$1.json" --rw=randwrite --bs=4k --iodepth=16 --size="$region_bytes" \
    --refill_buffers --norandommap --randrepeat=0 --time_based --runtime="$runtime" --ramp_time=2
  fio_write_bw "$work/$1.json" >/dev/null
  python3 -c 'import json,sys; w=json.load(open(sys.argv[1]))["jobs"][0]["write"]; c=w["clat_ns"]; print(w["bw_bytes"], w["iops"], c["mean"]/1e3, c["percentile"]["99.000000"]/1e3)' "$work/$1.json"
}

echo "(a) no replica" >&2
make_volume plain "$region_bytes" "$region_bytes"
echo "  fio randwrite 4k QD16 ${runtime}s" >&2
r=$(rand_write plain); read -r a_bw a_iops a_mean a_p99 <<<"$r"

echo "(b) during a sync-mode migration" >&2
make_volume mig "$fill_bytes" "$fill_bytes"
roam_on "$a" volume migration prepare mig --to b >/dev/null
status() { roam_on "$a" volume migration status mig --json | json - "'%s %d %d' % (j['phase'], j['bytesDone'], j['bytesOnWire'])"; }
read -r _ done0 wire0 <<<"$(status)"
echo "  fio randwrite 4k QD16 ${runtime}s" >&2
r=$(rand_write mig); read -r b_bw b_iops b_mean b_p99 <<<"$r"
read -r b_phase done1 wire1 <<<"$(status)"
roam_on "$a" volume migration abort mig >/dev/null
b_copied=$(( (done1 - done0) >> 20 )); b_wire=$(( (wire1 - wire0) >> 20 ))

echo "(c) async replica" >&2
make_volume async "$region_bytes" "$region_bytes"
roam_on "$a" volume replicate async --to b --mode async >/dev/null
wait_replica_state "$a" async InSync 600
echo "  fio randwrite 4k QD16 ${runtime}s" >&2
r=$(rand_write async); read -r c_bw c_iops c_mean c_p99 <<<"$r"
c_state=$(replica_field "$a" async state); c_pending=$(replica_field "$a" async pendingBytes)

row() { python3 -c '
import sys
name, bw, iops, mean, p99, base = sys.argv[1], *map(float, sys.argv[2:])
print(f"| {name} | {iops:,.0f} | {bw/1e6:,.1f} | {mean:,.0f} | {p99:,.0f} | {iops/base:.2f} |")' "$@"; }
printf '\n| 4 KiB random writes, QD16, %s s, over %s | IOPS | MB/s | mean latency (us) | p99 (us) | ratio to (a) |\n|---|---:|---:|---:|---:|---:|\n' "$runtime" "$region"
row "(a) no replica" "$a_bw" "$a_iops" "$a_mean" "$a_p99" "$a_iops"
row "(b) during a sync migration (phase at the end: $b_phase; copied $b_copied MiB of $fill meanwhile, $b_wire MiB on the wire)" "$b_bw" "$b_iops" "$b_mean" "$b_p99" "$a_iops"
row "(c) async replica (at the end: $c_state, $(( c_pending >> 10 )) KiB pending)" "$c_bw" "$c_iops" "$c_mean" "$c_p99" "$a_iops"
