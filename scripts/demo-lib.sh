# The mechanics of ./demo.sh (sourced from the repository root, not run): output helpers, the two hosts
# (network namespaces joined by a rate-limited veth pair when root, else loopback), roamd start/stop,
# and a small Python helper for the control API (unix socket), the guest's serial logs and progress.

ROAMD_DLL=${ROAMD_DLL:-$PWD/src/Roam.Daemon/bin/Release/net10.0/roamd.dll}
ROAM_DLL=${ROAM_DLL:-$PWD/src/Roam.Cli/bin/Release/net10.0/roam.dll}
GUEST=${ROAM_GUEST_DIR:-$PWD/.cache/guest}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# --- output --------------------------------------------------------------------------------------------------
if [ -t 1 ]; then B=$'\033[1m' DIM=$'\033[2m' RED=$'\033[31m' GREEN=$'\033[32m' R=$'\033[0m'; else B="" DIM="" RED="" GREEN="" R=""; fi
demo_t0=$(date +%s.%N)
elapsed() { python3 -c 'import sys,time; print(f"{time.time()-float(sys.argv[1]):.1f}")' "$demo_t0"; }
step() { printf '\n%s== %s%s %s(%s s)%s\n' "$B" "$*" "$R" "$DIM" "$(elapsed)" "$R"; }
say() { printf '   %s\n' "$*"; }
ok() { printf '   %s✔%s %s\n' "$GREEN" "$R" "$*"; }
# show HOST ARGS...: prints "HOST$ roam ARGS" and runs the CLI against HOST, its output indented.
show() {
  local host=$1; shift
  local a shown=""
  for a in "$@"; do [[ $a == *" "* ]] && a="'$a'"; shown+=" $a"; done
  printf '   %s%s$ roam%s%s\n' "$DIM" "$host" "$shown" "$R"
  if ! roam_on "$host" "$@" 2>&1 | sed 's/^/     /'; then die "roam $* on $host failed"; fi
}
die() {
  printf '\n%sDEMO FAILED: %s%s\n' "$RED$B" "$*" "$R" >&2
  exit 1
}

# --- the Python helper -----------------------------------------------------------------------------------------
# Written once into the work dir; `py SUBCOMMAND ...`.
write_helper() {
  cat >"$work/demo.py" <<'PY'
import http.client, json, os, re, socket, sys, time, zlib

# HB seq ns records errors mem_passes mem_errors *crc32 (of the text before " *"): a line whose checksum fails is
# garbled (QEMU's console log duplicates a byte now and then), not a heartbeat.
HB = re.compile(r"^HB (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) \*([0-9a-fA-F]{8})\s*$")
BAD = ("WORKLOAD ERROR", "ROAM-GUEST FAILED")

def heartbeat(line):
    """The six numbers of a heartbeat line whose checksum matches, else None."""
    m = HB.match(line)
    if not m or zlib.crc32(line[: line.rindex(" *")].encode("ascii", "replace")) != int(m.group(7), 16):
        return None
    return tuple(int(x) for x in m.groups()[:6])

class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("roamd", timeout=10)
        self.unix = path
    def connect(self):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(self.unix)
        self.sock = s

def get(sock, path):
    c = Unix(sock)
    try:
        c.request("GET", "/" + path)
        r = c.getresponse()
        body = r.read().decode()
        return r.status, (json.loads(body) if body else None)
    finally:
        c.close()

def mib(b):
    return f"{int(b) / 2**20:.1f} MiB"

def scan(path):
    """(last complete heartbeat as ints, first bad line or None)"""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return None, None
    for bad in BAD:
        i = text.find(bad)
        if i >= 0:
            return None, text[i:].split("\n", 1)[0].strip()
    text = text[: text.rfind("\n") + 1].replace("\r", "")
    for line in reversed(text.split("\n")):
        hb = heartbeat(line)
        if hb:
            return hb, None
    return None, None

def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "get":  # get SOCK PATH [EXPR]: the control API's JSON (or EXPR of it, j = the JSON)
    st, j = get(args[0], args[1])
    if st != 200:
        sys.exit(f"GET {args[1]}: HTTP {st}: {j}")
    print(eval(args[2]) if len(args) > 2 else json.dumps(j))
elif cmd == "ready":  # ready SOCK PID TIMEOUT: until roamd answers on its control socket
    deadline = time.time() + float(args[2])
    while time.time() < deadline:
        if not alive(int(args[1])):
            sys.exit("roamd exited while starting")
        try:
            if get(args[0], "v1/host")[0] == 200:
                sys.exit(0)
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    sys.exit(f"roamd did not answer on {args[0]} within {args[2]} s")
elif cmd == "hb":  # hb FILE: "seq ns records errors mem_passes mem_errors" of the last complete heartbeat; exit 3 on a bad line
    hb, bad = scan(args[0])
    if bad:
        print(bad)
        sys.exit(3)
    print(" ".join(map(str, hb)) if hb else "")
elif cmd == "wait-hb":  # wait-hb FILE MIN_SEQ TIMEOUT: until a heartbeat >= MIN_SEQ; exit 3 on a bad line, 4 on timeout
    deadline = time.time() + float(args[2])
    while True:
        hb, bad = scan(args[0])
        if bad:
            print(bad)
            sys.exit(3)
        if hb and hb[0] >= int(args[1]):
            print(" ".join(map(str, hb)))
            sys.exit(0)
        if time.time() > deadline:
            print(" ".join(map(str, hb)) if hb else "no heartbeat")
            sys.exit(4)
        time.sleep(0.1)
elif cmd == "progress":  # progress SOCK VM VOLUME SRC_SERIAL DST_SERIAL DST: the VM's migration, a line a second
    sock, name, volume, src_serial, dst_serial, dst = args
    t0, last_phase, last_print, src_last, resumed = time.time(), None, 0.0, None, False
    parent = os.getppid()
    def say(line):
        print(f"     [{time.time() - t0:5.1f} s] {line}", flush=True)
    while True:
        try:
            st, m = get(sock, f"v1/vms/{name}/migration")
        except (OSError, http.client.HTTPException):
            st, m = 0, None
        now = time.time()
        if st == 200 and m:
            ph = m["phase"]
            if ph in ("completed", "failed"):
                break
            if ph == "switchover":
                if ph != last_phase:
                    say("switch-over: the VM is paused, its disk handed over, the last memory pages go")
                    src_last = (scan(src_serial)[0] or (0,))[0]
                elif not resumed:
                    hb = scan(dst_serial)[0]
                    if hb and hb[0] > src_last:
                        say(f"the guest runs on {dst}: heartbeat #{hb[0]} there (roamd is still finishing the job)")
                        resumed = True
                last_phase = ph
            elif ph != last_phase or now - last_print >= 1:
                if ph == "disk":
                    line = f"disk: {mib(m['diskBytesDone'])} of {mib(m['diskBytesTotal'])} copied, {mib(m['diskBytesOnWire'])} sent"
                    try:
                        reps = get(sock, f"v1/volumes/{volume}")[1]["replication"]["replicas"]
                        state = next(r["state"] for r in reps if r["peer"] == dst)
                        if state in ("Connecting", "Disconnected"):
                            line += f" (the replica link to {dst} is {state.lower()}; it reconnects with backoff)"
                    except Exception:
                        pass
                elif m["ramTransferred"] == 0 and m["ramRemaining"] == 0:
                    line = None
                else:
                    passes = m.get("memoryPasses", 0)
                    dirty = f"{m['dirtyPagesRate']} dirty pages/s" if passes >= 2 else "dirty rate after the first pass"
                    line = (f"memory: {mib(m['ramTransferred'])} sent, {mib(m['ramRemaining'])} left, {m.get('mbps', 0):.1f} Mbit/s of pages "
                            f"(link {m.get('linkBytesPerSecond', 0) * 8 / 1e6:.1f} Mbit/s), "
                            f"pass {max(1, passes)}, {dirty}; disk backlog {mib(m.get('diskBacklogBytes', 0))} ({m.get('diskLagMs', 0):.0f} ms)")
                    if m.get("expectedDowntimeMs") is not None:
                        line += f", expected downtime {m['expectedDowntimeMs']} ms"
                if line:
                    say(line)
                    last_phase, last_print = ph, now
        if os.getppid() != parent:  # the demo is gone
            break
        time.sleep(0.1)
elif cmd == "gaps":  # gaps LOG START_SEQ SRC_LAST WINDOW: "switch_ms max_ms max_at max_into_s" in guest time
    # switch_ms: from the source's last heartbeat (SRC_LAST) to the next one, the destination's;
    # max_*: the longest gap from heartbeat START_SEQ (the migration's start) on, and how far into it.
    # WINDOW: LOG from heartbeat START_SEQ on (complete lines), for hb-stats. LOG may be host-stamped (then only WINDOW counts).
    text = open(args[0], "rb").read().decode("utf-8", "replace").replace("\r", "")
    text = text[: text.rfind("\n") + 1]
    i = text.find(f"\nHB {args[1]} ")
    if i < 0:  # a host-stamped log (vms/NAME.serial.stamped): "2025-...Z HB ..."
        m = re.search(rf"\n\S+Z HB {args[1]} ", text)
        i = m.start() if m else -1
    with open(args[3], "w") as f:
        f.write(text[i + 1:] if i >= 0 else text)
    hbs = [hb for hb in map(heartbeat, text.split("\n")) if hb]
    start, src_last = int(args[1]), int(args[2])
    switch, best, start_ns = None, (0.0, None), None
    for a, b in zip(hbs, hbs[1:]):
        if a[0] == start:
            start_ns = a[1]
        gap = (b[1] - a[1]) / 1e6
        if a[0] == src_last:
            switch = gap
        if a[0] >= start and gap > best[0]:
            best = (gap, b)
    into = (best[1][1] - start_ns) / 1e9 if best[1] and start_ns else 0
    print(f"{switch if switch is not None else float('nan'):.0f} {best[0]:.0f} {best[1][0] if best[1] else 0} {into:.1f}")
elif cmd == "json":  # json FILE EXPR
    j = json.load(sys.stdin if args[0] == "-" else open(args[0]))
    print(eval(args[1]))
elif cmd == "mib":
    print(mib(args[0]))
elif cmd == "ratio":
    print(f"{100 * float(args[0]) / float(args[1]):.1f}%")
else:
    sys.exit(f"demo.py: unknown command {cmd}")
PY
}
py() { python3 "$work/demo.py" "$@"; }

# --- hosts ---------------------------------------------------------------------------------------------------
HOSTS=(office car)
declare -A DIR PID NS ADDR PORT
NETNS=""  # 1: each roamd in its own network namespace

# roam_on HOST ARGS...: the CLI against HOST's roamd.
roam_on() { local host=$1; shift; dotnet "$ROAM_DLL" --control "${DIR[$host]}/control.sock" "$@"; }
api() { py get "${DIR[$1]}/control.sock" "${@:2}"; }

# Processes still in a namespace (a roamd's QEMUs, or leftovers of a killed earlier run) are killed by pid.
kill_ns_pids() {
  local pids
  pids=$(ip netns pids "$1" 2>/dev/null || true)
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  for _ in $(seq 50); do [ -z "$(ip netns pids "$1" 2>/dev/null)" ] && break; sleep 0.1; done
}

remove_stale_namespaces() {
  local ns
  for ns in roam-office roam-car; do
    if ip netns list 2>/dev/null | grep -qw "$ns"; then
      say "removing network namespace $ns left by an earlier run (and its processes)"
      kill_ns_pids "$ns"
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}

# setup_hosts RATE: namespaces + veth when root (and possible), else loopback ports.
setup_hosts() {
  local rate=$1 h i=1
  for h in "${HOSTS[@]}"; do DIR[$h]=$work/$h; mkdir -p "${DIR[$h]}"; done
  if [ "$(id -u)" -eq 0 ] && [ "${ROAM_DEMO_NETNS:-1}" != 0 ] && command -v ip >/dev/null && command -v tc >/dev/null; then
    remove_stale_namespaces
    NETNS=1
    if ! { ip netns add roam-office && ip netns add roam-car &&
           ip link add veth-office netns roam-office type veth peer name veth-car netns roam-car; } 2>"$work/netns.err"; then
      say "network namespaces unavailable here ($(head -n1 "$work/netns.err")); using loopback instead"
      ip netns del roam-office 2>/dev/null || true; ip netns del roam-car 2>/dev/null || true
      NETNS=""
    fi
  fi
  if [ -n "$NETNS" ]; then
    for h in "${HOSTS[@]}"; do
      NS[$h]=roam-$h ADDR[$h]=10.78.0.$i PORT[$h]=10810
      ip -n "${NS[$h]}" addr add "${ADDR[$h]}/24" dev "veth-$h"
      ip -n "${NS[$h]}" link set lo up
      ip -n "${NS[$h]}" link set "veth-$h" up
      ip netns exec "${NS[$h]}" tc qdisc add dev "veth-$h" root tbf rate "$rate" burst 32kbit latency 50ms
      i=$((i + 1))
    done
    say "office: network namespace roam-office, ${ADDR[office]}   car: roam-car, ${ADDR[car]}"
    say "one veth link between them, $rate each way (tbf); these addresses exist only inside the namespaces"
  else
    read -r PORT[office] PORT[car] < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
    for h in "${HOSTS[@]}"; do ADDR[$h]=127.0.0.1; done
    say "not root: office and car are two roamds on loopback (127.0.0.1:${PORT[office]}, 127.0.0.1:${PORT[car]}), no link limit"
  fi
}

# Bytes sent by HOST's end of the link (Ethernet/IP/TCP/TLS included); 0 without namespaces.
link_tx() { if [ -n "$NETNS" ]; then ip netns exec "${NS[$1]}" cat "/sys/class/net/veth-$1/statistics/tx_bytes"; else echo 0; fi; }

start_roamd() {
  local h=$1
  local cmd=(dotnet "$ROAMD_DLL" --data-dir "${DIR[$h]}" --host-name "$h" --peer-listen "${ADDR[$h]}:${PORT[$h]}" --sync-timeout 2
             --vm-network "${ROAM_DEMO_VM_NETWORK:-none}")
  if [ -n "$NETNS" ]; then cmd=(ip netns exec "${NS[$h]}" "${cmd[@]}"); fi
  "${cmd[@]}" >>"$work/$h.log" 2>&1 &
  PID[$h]=$!
  py ready "${DIR[$h]}/control.sock" "${PID[$h]}" 30 || { tail -n 20 "$work/$h.log" >&2; die "roamd $h did not start"; }
}

# running PID: the process exists and is not a zombie (our exited child, not reaped yet).
running() { local st; st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1; [ -n "$st" ] && [ "$st" != Z ]; }

# kill_dir_qemus DIR: the QEMUs of a data dir (their NBD/QMP socket paths name it) are killed; they outlive roamd.
kill_dir_qemus() {
  local pids p
  pids=$(pgrep -f -- "qemu-system[^ ]* .*$1/" 2>/dev/null || true)
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  for p in $pids; do for _ in $(seq 50); do running "$p" || break; sleep 0.1; done; done
}

# stop_roamd HOST: SIGTERM (roamd flushes and exits, leaving its VMs running: that is what a roamd restart needs),
# SIGKILL after 30 s; then the host is switched off: its QEMUs and whatever is left in its namespace are killed.
stop_roamd() {
  local h=$1 pid=${PID[$1]:-} rc=0
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then kill -KILL "$pid" 2>/dev/null; say "roamd $h did not stop within 30 s of SIGTERM: killed"; fi
    wait "$pid" 2>/dev/null || rc=$?
    PID[$h]=""
  fi
  kill_dir_qemus "${DIR[$h]}"
  if [ -n "$NETNS" ]; then kill_ns_pids "${NS[$h]}"; fi
  return "$rc"
}

# trust HOST PEER: HOST trusts PEER by the fingerprint PEER reports.
trust() {
  local id fp
  id=$(roam_on "$2" host id --json)
  fp=$(py json - "j['fingerprint']" <<<"$id")
  roam_on "$1" host add "$2" "${ADDR[$2]}:${PORT[$2]}" --fingerprint "$fp" >/dev/null
  say "$1 trusts $2 at ${ADDR[$2]}:${PORT[$2]} (fingerprint ${fp:0:23}…)"
}

# --- the guest -------------------------------------------------------------------------------------------------
serial() { echo "${DIR[$1]}/vms/vm.serial"; }

# read_hb HOST: HB_SEQ HB_NS HB_REC HB_ERR HB_MPASS HB_MERR from the guest's last complete heartbeat on HOST (empty
# when none; HB_MPASS/HB_MERR: memory passes and errors); dies on a WORKLOAD ERROR / ROAM-GUEST FAILED line.
read_hb() {
  local out rc=0
  out=$(py hb "$(serial "$1")") || rc=$?
  [ "$rc" = 0 ] || die "the guest on $1 reports: $out"
  read -r HB_SEQ HB_NS HB_REC HB_ERR HB_MPASS HB_MERR <<<"$out" || true
}

# wait_hb HOST MIN_SEQ TIMEOUT WHAT: until heartbeat MIN_SEQ on HOST; then as read_hb.
wait_hb() {
  local out rc=0
  out=$(py wait-hb "$(serial "$1")" "$2" "$3") || rc=$?
  case $rc in
    0) read -r HB_SEQ HB_NS HB_REC HB_ERR HB_MPASS HB_MERR <<<"$out" ;;
    3) die "the guest on $1 reports: $out" ;;
    *) tail -n 5 "$(serial "$1")" >&2 2>/dev/null || true; die "$4: no heartbeat #$2 on $1 within $3 s (last: $out)" ;;
  esac
}

# hb_line HOST: one readable line about the workload's last heartbeat on HOST; dies unless its error counts are 0.
hb_line() {
  read_hb "$1"
  [ -n "${HB_SEQ:-}" ] || die "no heartbeat from the guest on $1"
  [ "$HB_ERR" = 0 ] || die "the workload on $1 counts $HB_ERR errors"
  [ "$HB_MERR" = 0 ] || die "the workload on $1 counts $HB_MERR memory errors"
  printf '   %-7s heartbeat #%-6s guest clock %7.2f s   %6s records written   %s errors   memory: %4s passes, %s errors\n' \
    "$1" "$HB_SEQ" "$(python3 -c "print($HB_NS/1e9)")" "$HB_REC" "$HB_ERR" "$HB_MPASS" "$HB_MERR"
}

# hb_stats LOG: guest/hb-stats.py's JSON on LOG (the heartbeats as the guest saw them).
hb_stats() { python3 guest/hb-stats.py "$1" --json || true; }

POLLER=""
stop_poller() { if [ -n "$POLLER" ]; then kill "$POLLER" 2>/dev/null || true; wait "$POLLER" 2>/dev/null || true; POLLER=""; fi; }

# migrate SOURCE DEST: roam vm migrate with its progress (the CLI's bar at a terminal, else polled lines);
# the migration's final figures land in $work/migration-SOURCE-DEST.json.
migrate() {
  local src=$1 dst=$2 rc=0
  printf '   %s%s$ roam vm migrate vm --to %s%s\n' "$DIM" "$src" "$dst" "$R"
  if [ -t 1 ]; then
    roam_on "$src" vm migrate vm --to "$dst" || rc=1   # a person at a terminal: the CLI's own progress bar
  else
    # (python3 directly, not through py: the poller's parent is then this shell, and it stops when the demo is gone)
    python3 "$work/demo.py" progress "${DIR[$src]}/control.sock" vm vol "$(serial "$src")" "$(serial "$dst")" "$dst" & POLLER=$!
    roam_on "$src" vm migrate vm --to "$dst" 2>&1 | sed 's/^/     /' || rc=1
  fi
  stop_poller
  [ "$rc" = 0 ] || die "roam vm migrate vm --to $dst failed on $src"
  api "$src" v1/vms/vm/migration >"$work/migration-$src-$dst.json"
  [ "$(py json "$work/migration-$src-$dst.json" "j['phase']")" = completed ] || die "the migration to $dst did not complete: $(cat "$work/migration-$src-$dst.json")"
}
