#!/usr/bin/env bash
# Replication throughput on loopback against its ceiling, in one run. Two roamds on 127.0.0.1 (A
# primary, B replica, TLS 1.3 peer link); fio writes SIZE sequentially (1 MiB blocks, QD8, one
# connection, fsync at the end) through A's NBD export into:
#   local   a volume with no replica (what the NBD path alone does on this machine);
#   sync    a volume with a sync replica on B, in sync before fio starts: every write completes only
#           once B has it, so fio's rate is the replication rate;
#   async   a volume with an async replica on B: the rate is SIZE over the time from fio's start until
#           B holds every write (pendingBytes 0, InSync);
# and the ceiling: roam-bench tls-ceiling pushes the same SIZE of random bytes one way over a
# loopback TLS 1.3 SslStream (ECDSA P-256 certificates, mutual authentication, the same OpenSSL and
# cipher as the peer link), reading and discarding them. Prints MB/s and ratio to the ceiling
# (target: sync >= 0.80).
# Usage: bench/replication-throughput.sh [size (default 1G)]
# ROAM_BENCH_SKIP_BUILD=1 skips scripts/bootstrap.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1G}
source bench/lib.sh
bench_bootstrap
[ -f "$BENCH_DLL" ] || dotnet build bench/Roam.Bench/Roam.Bench.csproj -c Release -v quiet -nologo -clp:ErrorsOnly
work=$(mktemp -d /tmp/roam-bench.XXXXXX)
pid_a=""; pid_b=""
cleanup() { local rc=$?; set +e; stop_pid "$pid_a"; stop_pid "$pid_b"; show_logs_on_failure $rc "$work/a.log" "$work/b.log"; rm -rf "$work"; }
trap cleanup EXIT

a=$work/a; b=$work/b
dotnet "$ROAMD_DLL" --data-dir "$a" --host-name a --peer-listen 127.0.0.1:0 >"$work/a.log" 2>&1 & pid_a=$!
dotnet "$ROAMD_DLL" --data-dir "$b" --host-name b --peer-listen 127.0.0.1:0 >"$work/b.log" 2>&1 & pid_b=$!
wait_socket "$a/control.sock" "$pid_a"; wait_socket "$b/control.sock" "$pid_b"
trust_each_other "$a" a "$b" b
bytes=$(python3 -c 'import sys; s=sys.argv[1].upper(); u={"K":1<<10,"M":1<<20,"G":1<<30,"T":1<<40}; print(int(s[:-1])*u[s[-1]] if s[-1] in u else int(s))' "$size")

seq_write() { # VOLUME -> "bw_bytes iops runtime_s"
  fio_nbd "nbd+unix:///$1?socket=$a/nbd.sock" "$work/$1.json" --rw=write --bs=1M --iodepth=8 --size="$bytes" \
    --refill_buffers --end_fsync=1
  fio_write_bw "$work/$1.json"
}

echo "local: fio write 1M QD8, $size, no replica" >&2
roam_on "$a" volume create local --size "$bytes" >/dev/null
r=$(seq_write local); read -r local_bw _ _ <<<"$r"

echo "sync:  fio write 1M QD8, $size, sync replica on b" >&2
roam_on "$a" volume create sync --size "$bytes" >/dev/null
roam_on "$a" volume replicate sync --to b --mode sync >/dev/null
wait_replica_state "$a" sync InSync 60
sent0=$(replica_field "$a" sync bytesSent)
r=$(seq_write sync); read -r sync_bw _ _ <<<"$r"
sync_sent=$(( $(replica_field "$a" sync bytesSent) - sent0 ))
sync_state=$(replica_field "$a" sync state)

echo "async: fio write 1M QD8, $size, async replica on b, until b holds it all" >&2
roam_on "$a" volume create async --size "$bytes" >/dev/null
roam_on "$a" volume replicate async --to b --mode async >/dev/null
wait_replica_state "$a" async InSync 60
start=$(date +%s.%N)
r=$(seq_write async); read -r async_fio_bw _ _ <<<"$r"
deadline=$((SECONDS + 600))
while ((SECONDS < deadline)); do
  read -r pending state < <(api_get "$a" v1/volumes/async | json - "'%d %s' % (j['replication']['replicas'][0]['pendingBytes'], j['replication']['replicas'][0]['state'])")
  [ "$pending" = 0 ] && [ "$state" = InSync ] && break
  sleep 0.02
done
async_s=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$(date +%s.%N)")
async_bw=$(python3 -c "import sys; print(int(float(sys.argv[1]) / float(sys.argv[2])))" "$bytes" "$async_s")

echo "ceiling: TLS 1.3 SslStream on loopback, $size" >&2
ceiling_json=$(dotnet "$BENCH_DLL" tls-ceiling "$bytes")
ceiling_bw=$(json - "j['bytesPerSecond']" <<<"$ceiling_json")
cipher=$(json - "j['cipher']" <<<"$ceiling_json")

overhead=$(python3 -c "import sys; print(f'{(int(sys.argv[1])/int(sys.argv[2])-1)*100:+.1f}%')" "$sync_sent" "$bytes")
printf '\n| %s sequential 1 MiB writes, QD8, loopback | MB/s | ratio to TLS ceiling |\n|---|---:|---:|\n' "$size"
printf '| plain TLS 1.3 stream (%s), the ceiling | %s | 1.00 |\n' "$cipher" "$(mbs "$ceiling_bw" 1)"
printf '| roamd, sync replica (replica %s, peer bytes sent %s of written) | %s | %s |\n' "$sync_state" "$overhead" "$(mbs "$sync_bw" 1)" "$(ratio "$sync_bw" "$ceiling_bw")"
printf '| roamd, async replica (until the replica holds every write; fio alone: %s MB/s) | %s | %s |\n' "$(mbs "$async_fio_bw" 1)" "$(mbs "$async_bw" 1)" "$(ratio "$async_bw" "$ceiling_bw")"
printf '| roamd, no replica (local NBD path) | %s | %s |\n' "$(mbs "$local_bw" 1)" "$(ratio "$local_bw" "$ceiling_bw")"
