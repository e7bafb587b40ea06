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

# netns_link NS_A ADDR_A NS_B ADDR_B RATE: two network namespaces joined by a veth pair (veth-NS_A in NS_A,
# veth-NS_B in NS_B; names at most 10 characters), ADDR/24 on each end, both ends limited to RATE with a tbf qdisc.
# Fails when either namespace exists already (another run, or a killed one: netns_remove NS). The namespaces it
# made are in NETNS_MADE (for the caller's cleanup: netns_remove "${NETNS_MADE[@]}").
NETNS_MADE=()
netns_link() {
  local na=$1 aa=$2 nb=$3 ab=$4 rate=$5 ns
  for ns in "$na" "$nb"; do
    if ip netns list | grep -qw "$ns"; then
      echo "network namespace $ns exists already (another run, or a killed one: ip netns del $ns)" >&2; return 1
    fi
  done
  ip netns add "$na"; NETNS_MADE+=("$na")
  ip netns add "$nb"; NETNS_MADE+=("$nb")
  ip link add "veth-$na" type veth peer name "veth-$nb"
  ip link set "veth-$na" netns "$na"; ip link set "veth-$nb" netns "$nb"
  ip -n "$na" addr add "$aa/24" dev "veth-$na"; ip -n "$nb" addr add "$ab/24" dev "veth-$nb"
  for ns in "$na" "$nb"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "veth-$ns" up
    ip netns exec "$ns" tc qdisc add dev "veth-$ns" root tbf rate "$rate" burst 32kbit latency 50ms
  done
}

# netns_remove NS...: SIGKILL to whatever still runs in each namespace (by pid), then the namespace goes.
netns_remove() {
  local ns pids
  [ $# -gt 0 ] || return 0
  for ns in "$@"; do
    ip netns list 2>/dev/null | grep -qw "$ns" || continue
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    for _ in $(seq 50); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
    ip netns del "$ns" 2>/dev/null || true
  done
}

# veth_tx NS: bytes sent by NS's end of its netns_link veth (Ethernet, IP and TCP headers included).
veth_tx() { ip netns exec "$1" cat "/sys/class/net/veth-$1/statistics/tx_bytes"; }
