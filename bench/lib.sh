# Shared by the bench/*.sh scripts (sourced, not run). Expects to be sourced from the repository root
# with `set -euo pipefail` on. ROAMD_DLL / ROAM_DLL override the binaries; ROAM_BENCH_SKIP_BUILD=1
# skips scripts/bootstrap.sh (the apt packages and the Release build) when both are known to be there.

ROAMD_DLL=${ROAMD_DLL:-$PWD/src/Roam.Daemon/bin/Release/net10.0/roamd.dll}
ROAM_DLL=${ROAM_DLL:-$PWD/src/Roam.Cli/bin/Release/net10.0/roam.dll}
BENCH_DLL=${BENCH_DLL:-$PWD/bench/Roam.Bench/bin/Release/net10.0/roam-bench.dll}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

bench_bootstrap() {
  if [ -z "${ROAM_BENCH_SKIP_BUILD:-}" ]; then
    scripts/bootstrap.sh
  fi
  command -v fio >/dev/null || { echo "fio missing (apt-get install fio)" >&2; exit 1; }
}

# roam_on DATA_DIR ARGS...: the CLI against the roamd of DATA_DIR.
roam_on() { local dir=$1; shift; dotnet "$ROAM_DLL" --control "$dir/control.sock" "$@"; }

# wait_socket PATH [PID]: until PATH is a socket (10 s), failing early if PID died.
wait_socket() {
  for _ in $(seq 200); do
    [ -S "$1" ] && return 0
    if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "no socket $1" >&2; return 1
}

# json FILE-OR-- PYTHON-EXPRESSION: evaluates the expression with j = the parsed JSON (stdin with -).
json() {
  python3 -c 'import json,sys; f=sys.argv[1]; j=json.load(sys.stdin if f=="-" else open(f)); print(eval(sys.argv[2]))' "$@"
}

# fio_nbd URI OUT.json FIO-ARGS...: one fio job through fio's nbd engine; the JSON goes through a
# file because the engine prints a line of its own on stdout.
fio_nbd() {
  local uri=$1 out=$2; shift 2
  fio --name=b --ioengine=nbd --uri="$uri" --output-format=json --output="$out" "$@" >/dev/null
}

# fio_write_bw OUT.json: "bw_bytes iops runtime_s" of the job's writes; fails (and says so on
# stderr) when fio saw an I/O error, since fio's nbd engine still exits 0 then.
fio_write_bw() {
  python3 -c '
import json,sys
j=json.load(open(sys.argv[1]))["jobs"][0]; w=j["write"]
if j.get("error"): sys.exit("fio: I/O error %d after %d bytes" % (j["error"], w["io_bytes"]))
print(w["bw_bytes"], w["iops"], w["runtime"]/1000)' "$1"
}

# replica_field DATA_DIR VOLUME FIELD: a field of the volume's first replica (empty when none).
replica_field() {
  api_get "$1" "v1/volumes/$2" | json - "(j.get('replication') or {}).get('replicas', [{}])[0].get('$3', '') if (j.get('replication') or {}).get('replicas') else ''"
}

# wait_replica_state DATA_DIR VOLUME STATE [TIMEOUT-S]
wait_replica_state() {
  local deadline=$((SECONDS + ${4:-600})) state=""
  while ((SECONDS < deadline)); do
    state=$(replica_field "$1" "$2" state)
    [ "$state" = "$3" ] && return 0
    sleep 0.2
  done
  echo "replica of $2 still '$state', not $3" >&2; return 1
}

# trust_each_other DIR_A NAME_A DIR_B NAME_B [ADDR_A ADDR_B]: each roamd trusts the other by its
# fingerprint, at its bound peer address (or the given ones).
trust_each_other() {
  local a=$1 an=$2 b=$3 bn=$4 ida idb
  ida=$(roam_on "$a" host id --json); idb=$(roam_on "$b" host id --json)
  local aaddr=${5:-$(json - "j['peerListen']" <<<"$ida")} baddr=${6:-$(json - "j['peerListen']" <<<"$idb")}
  roam_on "$a" host add "$bn" "$baddr" --fingerprint "$(json - "j['fingerprint']" <<<"$idb")" >/dev/null
  roam_on "$b" host add "$an" "$aaddr" --fingerprint "$(json - "j['fingerprint']" <<<"$ida")" >/dev/null
}

# stop_pid PID: SIGTERM, then wait (roamd flushes and exits).
stop_pid() { [ -n "${1:-}" ] || return 0; kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# mbs BYTES SECONDS -> MB/s (10^6)
mbs() { python3 -c 'import sys; print(f"{float(sys.argv[1])/float(sys.argv[2])/1e6:.1f}")' "$1" "$2"; }
ratio() { python3 -c 'import sys; b=float(sys.argv[2]); print(f"{float(sys.argv[1])/b:.2f}" if b else "n/a")' "$1" "$2"; }

# show_logs_on_failure RC LOG...: when RC is not 0, the tail of each log on stderr.
show_logs_on_failure() {
  local rc=$1; shift
  [ "$rc" -eq 0 ] && return 0
  for log in "$@"; do
    if [ -f "$log" ]; then echo "--- $log" >&2; tail -n 30 "$log" >&2; fi
  done
  return 0
}

# api_get DATA_DIR PATH: GET the control API's PATH (e.g. v1/volumes/vol) as JSON on stdout, without
# the CLI's start-up cost (for polling).
api_get() {
  python3 -c '
import http.client, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sys.argv[1])
c = C("roamd"); c.request("GET", "/" + sys.argv[2]); r = c.getresponse(); body = r.read().decode()
if r.status != 200: sys.exit(f"GET {sys.argv[2]}: {r.status} {body}")
print(body)' "$1/control.sock" "$2"
}
