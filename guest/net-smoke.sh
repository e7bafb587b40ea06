#!/usr/bin/env bash
# Proves the guest's networking (roam.net=dhcp, roam.stream=...) without roamd, as root, with network namespaces:
#
#   rn-vm:     QEMU (TCG) and its tap in bridge br0: the VM's L2 segment. Two veth "cables": vm-o to office's
#              bridge, vm-c to car's; only one is in br0 at a time, and the move swaps them (ip link set nomaster /
#              master: instant; moving a veth to another namespace instead would leave the new bridge port blocked
#              until the kernel's linkwatch runs, up to a second later, and the guest's first DHCP DISCOVER lost).
#   rn-office: br0 10.1.0.1/24, dnsmasq on it; uplink 172.16.1.2/30 to the router
#   rn-car:    br0 10.2.0.1/24, dnsmasq on it; uplink 172.16.2.2/30 to the router
#   rn-router: forwards between office, car and rn-server; tbf on its links (RATE, default 10mbit; RATE=none: off)
#   rn-server: 10.9.0.2/24, runs scripts/net-sink.py --mptcp on :5201 (the tcp run: :5202)
#
# mptcp run: the guest boots on office with roam.stream_proto=mptcp and streams to the sink; then it moves to car
#   and back: the VM is paused (HMP stop), its cable swapped, it resumes (cont), and its link goes down and up (HMP
#   set_link n0 off, then on once the guest printed "ROAM-NET LINK down": what roamd does after a cross-subnet
#   migration). Passes iff the guest takes an address on 10.2.0.0/24, then on 10.1.0.0/24 again, the sink counts 0
#   resets and 1 connection, bytes arrive after the last move, and the guest printed no STREAM RESET.
# tcp run: roam.stream_proto=tcp and a same-subnet move: paused with the cable out, plugged back into office's
#   bridge, the link left up: 0 resets, 1 connection, bytes after, the address kept.
# tcp-flap run (in "all"): the same with the link down and up too: the guest re-leases, keeps its address (it asks
#   for it again), and plain TCP survives.
# usage: guest/net-smoke.sh [mptcp|tcp|tcp-flap|both|all]  (default both: mptcp and tcp). Env: ROAM_GUEST_DIR (default .cache/guest),
#   RATE (tbf rate, default 10mbit), STREAM_S (seconds streamed before and after the move, default 8),
#   BOOT_TIMEOUT (s, default 180), PAUSE_MS (the VM's pause, default 300), LINK_DOWN_MS (set_link off -> on: once
#   the guest printed "ROAM-NET LINK down", at most this, default 1000: too quick an on and the guest sees no change),
#   KEEP=1 keeps the work dir. Prints each run's sink summary line and the guest's ROAM-NET lines.
# Everything it made (namespaces, processes, temp files) goes on exit, also on failure.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:-both}"
gdir="${ROAM_GUEST_DIR:-$repo/.cache/guest}"
rate="${RATE:-10mbit}"
stream_s="${STREAM_S:-8}"
boot_limit="${BOOT_TIMEOUT:-180}"
pause_ms="${PAUSE_MS:-300}"
down_ms="${LINK_DOWN_MS:-1000}"
NS=(rn-vm rn-office rn-car rn-router rn-server)

[ "$(id -u)" = 0 ] || { echo "net-smoke: needs root (network namespaces, taps)" >&2; exit 1; }
command -v dnsmasq >/dev/null || {
  echo "net-smoke: installing dnsmasq-base (dnsmasq without its system service)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dnsmasq-base >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dnsmasq-base >/dev/null; }
}
for t in qemu-system-x86_64 dnsmasq python3 ip tc busybox; do
  command -v "$t" >/dev/null || { echo "net-smoke: $t missing (apt-get install qemu-system-x86 dnsmasq-base python3 iproute2)" >&2; exit 1; }
done
for n in "${NS[@]}"; do
  [ ! -e "/run/netns/$n" ] || { echo "net-smoke: namespace $n exists (another run? remove it: ip netns del $n)" >&2; exit 1; }
done
"$repo/scripts/build-guest.sh" "$gdir" >/dev/null

work=$(mktemp -d /tmp/roam-net-smoke.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "$work"/*.dnsmasq.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  for p in "${NS[@]}"; do ip netns del "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "net-smoke: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "net-smoke: $*" >&2; }
nsx() { local n=$1; shift; ip netns exec "$n" "$@"; }
ms_now() { date +%s%3N; }
sleep_ms() { sleep "$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')"; }

# --- topology ------------------------------------------------------------------------------------------------------
for n in "${NS[@]}"; do ip netns add "$n"; nsx "$n" ip link set lo up; done
veth() { # ns1 if1 ns2 if2
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  nsx "$1" ip link set "$2" up; nsx "$3" ip link set "$4" up
}
veth rn-office o-up rn-router r-office
veth rn-car c-up rn-router r-car
veth rn-server s-up rn-router r-server
nsx rn-router ip addr add 172.16.1.1/30 dev r-office
nsx rn-router ip addr add 172.16.2.1/30 dev r-car
nsx rn-router ip addr add 10.9.0.1/24 dev r-server
nsx rn-router ip route add 10.1.0.0/24 via 172.16.1.2
nsx rn-router ip route add 10.2.0.0/24 via 172.16.2.2
nsx rn-router sysctl -qw net.ipv4.ip_forward=1
nsx rn-server ip addr add 10.9.0.2/24 dev s-up
nsx rn-server ip route add default via 10.9.0.1
# The sink's side takes the joins of the guest's subflows.
nsx rn-server ip mptcp limits set subflow 4 add_addr_accepted 4
site() { # ns subnet-prefix uplink-addr router-addr uplink-dev
  nsx "$1" ip link add br0 type bridge
  nsx "$1" ip addr add "$2.1/24" dev br0
  nsx "$1" ip link set br0 up
  nsx "$1" ip addr add "$3/30" dev "$5"
  nsx "$1" ip route add default via "$4"
  nsx "$1" sysctl -qw net.ipv4.ip_forward=1
  : >"$work/$1.leases"
  # Background processes through `ip netns exec` itself (it execs them), not nsx: $! must be their own pid.
  ip netns exec "$1" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=br0 --bind-interfaces --except-interface=lo \
    --dhcp-range="$2.50,$2.150,255.255.255.0,1h" --dhcp-authoritative --no-ping --dhcp-leasefile="$work/$1.leases" \
    --pid-file="$work/$1.dnsmasq.pid" --user=root --group=root --log-dhcp --log-facility="$work/$1.dnsmasq.log" \
    2>>"$work/$1.dnsmasq.err" &
  pids+=($!)
}
site rn-office 10.1.0 172.16.1.2 172.16.1.1 o-up
site rn-car 10.2.0 172.16.2.2 172.16.2.1 c-up
if [ "$rate" != none ]; then
  for l in r-office r-car r-server; do
    nsx rn-router tc qdisc add dev "$l" root tbf rate "$rate" burst 32kb latency 50ms
  done
fi
nsx rn-vm ip link add br0 type bridge
nsx rn-vm ip link set br0 up
nsx rn-vm ip tuntap add dev vmtap0 mode tap
nsx rn-vm ip link set vmtap0 master br0 up
veth rn-vm vm-o rn-office vm-o-p
veth rn-vm vm-c rn-car vm-c-p
nsx rn-office ip link set vm-o-p master br0
nsx rn-car ip link set vm-c-p master br0
nsx rn-vm ip link set vm-o master br0
sleep 0.5
for n in rn-office rn-car; do
  kill -0 "$(cat "$work/$n.dnsmasq.pid" 2>/dev/null || echo 0)" 2>/dev/null ||
    { say "dnsmasq in $n did not start: $(cat "$work/$n.dnsmasq.err" "$work/$n.dnsmasq.log" 2>/dev/null | tail -n 3)"; exit 1; }
done
nsx rn-office busybox ping -c1 -W2 10.9.0.2 >/dev/null || { say "office cannot reach the server through the router"; exit 1; }
nsx rn-car busybox ping -c1 -W2 10.9.0.2 >/dev/null || { say "car cannot reach the server through the router"; exit 1; }
say "topology up (office 10.1.0.0/24, car 10.2.0.0/24, server 10.9.0.2, tbf ${rate})"

steps() { # $1 = HMP socket, then steps: "hmp:CMD", "sh:COMMAND", "sleep:MS"; one process, so the timing is the
  # steps' own; prints "host_ms host: step" as each completes
  python3 - "$@" <<'EOF'
import socket, subprocess, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
def upto_prompt():
    b = b""
    while not b.endswith(b"(qemu) "):
        c = s.recv(4096)
        if not c: raise SystemExit("HMP closed")
        b += c
    return b.decode(errors="replace")
upto_prompt()
for st in sys.argv[2:]:
    kind, _, arg = st.partition(":")
    if kind == "hmp":
        s.sendall(arg.encode() + b"\n")
        out = [l for l in upto_prompt().replace("\r", "").split("\n")[1:] if l.strip() and not l.startswith("(qemu)")]
        if out: print(f"HMP {arg}: {' '.join(out)}", file=sys.stderr)
    elif kind == "sh":
        subprocess.run(arg, shell=True, check=True)
    elif kind == "sleep":
        time.sleep(int(arg) / 1000)
        continue
    elif kind == "waitlog":     # waitlog:MS:FILE:TEXT: until TEXT appears in FILE after this point, at most MS
        ms, path, text = arg.split(":", 2)
        f = open(path, "rb"); f.seek(0, 2); seen = b""; end = time.monotonic() + int(ms) / 1000
        while text.encode() not in seen and time.monotonic() < end:
            seen = seen[-200:] + f.read(); time.sleep(0.002)
        arg = f"{'saw' if text.encode() in seen else 'timed out waiting for'} {text}"
    print(f"{time.time_ns() // 1000000} host: {arg}", flush=True)
EOF
}

wait_log() { # $1 = file, $2 = ERE, $3 = timeout s, $4 = qemu pid: true once a line matches
  local end=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    grep -aEq "$2" "$1" 2>/dev/null && return 0
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

fails=0
move() { # $1 = run dir, $2 = cable out, $3 = cable in (the same: unplugged and plugged back), $4 = flap|"" (the
  # link down and up after the VM runs again, as roamd does after a cross-subnet migration), $5 = ERE of the
  # address expected after it ("": the address must stay), $6 = where the VM is then
  local d=$1 n0 n1 a
  n0=$(grep -ac 'ROAM-NET ADDR' "$d/serial.log" || true)
  local st=(hmp:stop "sh:ip -n rn-vm link set $2 nomaster" "sleep:$pause_ms" "sh:ip -n rn-vm link set $3 master br0" hmp:cont)
  [ "$4" = flap ] && st+=("hmp:set_link n0 off" "waitlog:$down_ms:$d/serial.log:ROAM-NET LINK down" "hmp:set_link n0 on")
  steps "$d/hmp.sock" "${st[@]}" >>"$d/host-marks"
  if [ -n "$5" ]; then
    # A new ADDR line (beyond the n0 before the move) on the expected subnet.
    local end=$(( $(date +%s) + 60 ))
    a=""
    while [ "$(date +%s)" -lt "$end" ] && kill -0 "$qpid" 2>/dev/null; do
      a=$(grep -aoE 'ROAM-NET ADDR [0-9./]+' "$d/serial.log" | tail -n +"$((n0 + 1))" | grep -E " $5" | tail -n1 |
          awk '{print $3}' || true)
      [ -z "$a" ] || break
      sleep 0.2
    done
    [ -n "$a" ] || { say "[$run_kind] FAIL: no new address matching $5 within 60 s"; return 1; }
    say "[$run_kind] moved to $6: the guest's new address $a"
  else
    [ "$4" = flap ] && { wait_log "$d/serial.log" "ROAM-NET LINK up" 10 "$qpid" || true; sleep 3; }
    n1=$(grep -ac 'ROAM-NET ADDR' "$d/serial.log" || true)
    [ "$n1" = "$n0" ] || { say "[$run_kind] FAIL: the guest's address changed on a same-subnet move"; return 1; }
    say "[$run_kind] paused ${pause_ms} ms with the cable out, back on $6's bridge${4:+, link down and up}; address kept"
  fi
}

run() { # $1 = mptcp|tcp|tcp-flap
  local run_kind=$1 proto=${1%-flap} d="$work/$1" qpid spid t_sink t_move ok=1 sum addr1 mpid port=5201
  mkdir -p "$d"
  # Each run its own port: a previous run's orphaned server-side subflow is not listed.
  case "$run_kind" in tcp) port=5202 ;; tcp-flap) port=5203 ;; esac
  : >"$d/host-marks"
  truncate -s 64M "$d/disk.raw"
  t_sink=$(ms_now)
  ip netns exec rn-server python3 "$repo/scripts/net-sink.py" --listen "10.9.0.2:$port" --mptcp --interval-ms 10 \
    --csv "$d/sink.csv" >"$d/sink.out" 2>"$d/sink.err" &
  spid=$!; pids+=("$spid")
  ip netns exec rn-vm qemu-system-x86_64 -accel tcg -m 256 -nodefaults -display none -no-reboot \
    -kernel "$gdir/vmlinuz" -initrd "$gdir/initrd.img" \
    -append "console=ttyS0 quiet panic=-1 roam.hb_ms=100 roam.mem_mib=16 roam.net=dhcp roam.stream=10.9.0.2:$port roam.stream_proto=$proto" \
    -serial "file:$d/serial.log" -monitor "unix:$d/hmp.sock,server,nowait" \
    -drive "file=$d/disk.raw,if=virtio,format=raw" \
    -netdev tap,id=n0,ifname=vmtap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:52:0a:01 \
    2>"$d/qemu.err" &
  qpid=$!; pids+=("$qpid")
  # The guest's markers with the host's clock (ms), for the move's timeline.
  python3 - "$d/serial.log" >"$d/marks" <<'EOF' &
import sys, time
# Polls the console file every 5 ms: a ROAM-NET line gets the host's time it was read at.
f = None; buf = b""
while True:
    if f is None:
        try: f = open(sys.argv[1], "rb")
        except OSError: time.sleep(0.05); continue
    c = f.read()
    if not c: time.sleep(0.005); continue
    buf += c
    *lines, buf = buf.split(b"\n")
    for l in lines:
        if b"ROAM-NET" in l or b"udhcpc" in l:
            print(time.time_ns() // 1000000, l.decode(errors="replace").strip(), flush=True)
EOF
  mpid=$!; pids+=("$mpid")
  if ! wait_log "$d/serial.log" "ROAM-NET STREAM connected" "$boot_limit" "$qpid"; then
    say "[$run_kind] no 'ROAM-NET STREAM connected' within ${boot_limit}s; serial tail:"
    grep -av '^HB ' "$d/serial.log" | tail -n 20 >&2 || true; tail -n 5 "$d/qemu.err" >&2 || true
    fails=$((fails + 1)); kill "$qpid" "$spid" 2>/dev/null || true; return
  fi
  addr1=$(grep -aoE 'ROAM-NET ADDR [0-9./]+' "$d/serial.log" | tail -n1 | awk '{print $3}' || true)
  say "[$run_kind] guest on office as $addr1, streaming; ${stream_s}s before the move"
  sleep "$stream_s"
  case "$run_kind" in
    mptcp) move "$d" vm-o vm-c flap "10\.2\.0\." car || ok=0; sleep "$stream_s"
           move "$d" vm-c vm-o flap "10\.1\.0\." office || ok=0 ;;
    tcp) move "$d" vm-o vm-o "" "" office || ok=0 ;;
    tcp-flap) move "$d" vm-o vm-o flap "" office || ok=0 ;;
  esac
  sleep "$stream_s"
  echo "net-smoke[$run_kind]: the sink's subflows/connections now:"
  nsx rn-server ss -tnH state established "( sport = :$port )" | awk '{ print "net-smoke[" p "]:   " $3 " <- " $4 }' p="$run_kind"
  kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true
  kill -TERM "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
  sleep 0.1; kill "$mpid" 2>/dev/null || true; wait "$mpid" 2>/dev/null || true
  sum=$(grep '^sink:' "$d/sink.out" | tail -n1 || true)
  echo "net-smoke[$run_kind]: $sum"
  grep -a 'ROAM-NET' "$d/serial.log" | grep -v 'STREAM stats' | tr -d '\r' | sed "s/^/net-smoke[$run_kind] guest: /"
  t_sink=$(awk '/t0_epoch_ms/ { print $NF }' "$d/sink.err")
  local stops t_next
  stops=$(awk '/host: stop/ { print $1 }' "$d/host-marks")
  for t_move in $stops; do
    t_next=$(awk -v t="$t_move" '/host: stop/ && $1 > t { print $1; exit }' "$d/host-marks")
    echo "net-smoke[$run_kind]: move timeline (ms from the VM's pause; guest lines when the host read them on the console):"
    sort -n -s -k1,1 "$d/marks" "$d/host-marks" |
      awk -v t="$t_move" -v n="${t_next:-0}" '$1 >= t && (n == 0 || $1 < n) && !/STREAM stats/ { $1 = sprintf("%+6d", $1 - t); print }' |
      sed "s/^/net-smoke[$run_kind]:   /"
    awk -F, -v t0="$t_sink" -v tm="$t_move" 'NR > 1 { if ($2 > 0) { if (z && st * 10 + t0 >= tm - 1000 && st * 10 + t0 < tm + 5000) printf "%d %d\n", st * 10 + t0 - tm, z * 10; z = 0 } else { if (!z) st = NR - 1; z++ } }' \
      "$d/sink.csv" | sort -k2,2nr | head -n 1 | while read -r at len; do
        echo "net-smoke[$run_kind]:   the sink's longest gap around this move: $len ms, from ${at} ms"; done
  done
  local after
  after=$(awk -F, -v t="$(( t_move - t_sink + 1000 ))" 'NR > 1 && $1 > t { s += $2 } END { print s + 0 }' "$d/sink.csv")
  echo "net-smoke[$run_kind]: bytes received from 1 s after the last move on: $after"
  [[ "$sum" =~ resets\ 0, ]] || { say "[$run_kind] FAIL: the sink counted resets"; ok=0; }
  [[ "$sum" =~ connections\ 1(,|$) ]] || { say "[$run_kind] FAIL: not exactly one connection (a reconnect?)"; ok=0; }
  [ "$after" -gt 0 ] || { say "[$run_kind] FAIL: no bytes after the move"; ok=0; }
  ! grep -aq 'ROAM-NET STREAM RESET' "$d/serial.log" || { say "[$run_kind] FAIL: the guest's stream was reset"; ok=0; }
  ! grep -aq 'ROAM-NET FAILED' "$d/serial.log" || { say "[$run_kind] FAIL: ROAM-NET FAILED on the guest"; ok=0; }
  ! grep -aq 'ROAM-GUEST FAILED\|WORKLOAD ERROR' "$d/serial.log" || { say "[$run_kind] FAIL: the workload failed"; ok=0; }
  if [ "$ok" = 1 ]; then echo "net-smoke[$run_kind]: PASS"; else echo "net-smoke[$run_kind]: FAIL"; fails=$((fails + 1)); fi
  # The next run starts from office again.
  nsx rn-vm ip link set vm-c nomaster
  nsx rn-vm ip link set vm-o master br0
}

case "$mode" in
  mptcp | tcp | tcp-flap) run "$mode" ;;
  both) run mptcp; run tcp ;;
  all) run mptcp; run tcp; run tcp-flap ;;
  *) echo "usage: $0 [mptcp|tcp|tcp-flap|both|all]" >&2; exit 2 ;;
esac
[ "$fails" = 0 ] && echo "net-smoke: PASS" || { echo "net-smoke: FAIL ($fails)"; exit 1; }
