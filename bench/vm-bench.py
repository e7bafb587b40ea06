#!/usr/bin/env python3
"""Helpers of bench/vm-vs-qemu-native.sh (run by it, not by hand).

  vm-bench.py tail OUT SRC_SERIAL DST_SERIAL
      Follows both serial console files (either may not exist yet) with a 2 ms poll and writes every complete
      line to OUT as "<host time> <src|dst> <line>", stamped when it was read: the guest's heartbeats as the host
      saw them arrive. On SIGTERM it also writes each file's unfinished last line ("<t> <tag>+ <text>"), so that a
      line the source began and the destination finished can be joined.

  vm-bench.py wait-hb SERIAL MIN_SEQ TIMEOUT_S
      Until the console file holds heartbeat MIN_SEQ; exit 1 on a WORKLOAD ERROR / ROAM-GUEST FAILED line, 4 on
      timeout.

  vm-bench.py analyse STAMPS T0 T_BEFORE
      The figures of one migration that began at host time T0, from the stamped heartbeats; T_BEFORE: seconds of
      heartbeats before T0 for the baseline. Prints JSON.

  vm-bench.py native SRC_QMP DST_QMP DST_ADDR OUT.json [--downtime-limit MS] [--bandwidth BYTES/S]
                     [--capabilities a,b] [--copy-mode background|write-blocking]
      QEMU's own storage migration, the way libvirt's `virsh migrate --live --copy-storage-all` drives it:
      destination nbd-server-start + nbd-server-add (writable) + migrate-incoming; source blockdev-add of the
      NBD export + blockdev-mirror sync=full; BLOCK_JOB_READY; migrate; when it completed (source paused),
      block-job-cancel (which, after READY, completes the mirror consistently); destination nbd-server-stop and
      cont. Writes the host times of each step and query-migrate's figures to OUT.json.
"""
import json
import os
import re
import signal
import socket
import sys
import time
import zlib

HB = re.compile(r"^HB (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) \*([0-9a-fA-F]{8})\s*$")
RECORD = 4096  # bytes per workload record (guest/workload.c)


def heartbeat(line):
    """(seq, ns, records, errors, mem_passes, mem_errors) of a heartbeat line whose CRC-32 (of the text before " *")
    matches, else None: QEMU's console log duplicates a byte now and then, and such a line is garbled."""
    m = HB.match(line)
    if not m or zlib.crc32(line[: line.rindex(" *")].encode("ascii", "replace")) != int(m.group(7), 16):
        return None
    return tuple(int(x) for x in m.groups()[:6])


# --- tail ----------------------------------------------------------------------------------------------------
def tail(out_path, src, dst):
    files = {"src": [src, None, b""], "dst": [dst, None, b""]}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    with open(out_path, "w", buffering=1) as out:
        while True:
            last_round = bool(stop)
            for tag, st in files.items():
                if st[1] is None:
                    try:
                        st[1] = open(st[0], "rb")
                    except FileNotFoundError:
                        continue
                data = st[1].read()
                if not data:
                    continue
                now = time.time()
                buf = st[2] + data
                *lines, st[2] = buf.split(b"\n")
                for ln in lines:
                    out.write(f"{now:.6f} {tag} {ln.decode('utf-8', 'replace').rstrip(chr(13))}\n")
            if last_round:
                for tag, st in files.items():
                    if st[2]:
                        out.write(f"{time.time():.6f} {tag}+ {st[2].decode('utf-8', 'replace').rstrip(chr(13))}\n")
                return
            time.sleep(0.002)


# --- analyse ---------------------------------------------------------------------------------------------------
def load(stamps):
    """[(t, tag, line)] of complete lines; a line the source began (its unfinished tail) and the destination
    finished is joined and counts as the destination's."""
    rows, partial = [], {}
    with open(stamps, encoding="utf-8", errors="replace") as f:
        for raw in f:
            t, tag, line = (raw.rstrip("\n").split(" ", 2) + [""])[:3]
            if tag.endswith("+"):
                partial[tag[:-1]] = line
            else:
                rows.append((float(t), tag, line))
    if "src" in partial:
        for i, (t, tag, line) in enumerate(rows):
            if tag == "dst":
                rows[i] = (t, tag, partial["src"] + line)
                break
    return rows


def analyse(stamps, t0, before_s):
    rows = load(stamps)
    bad = [ln for _, _, ln in rows if "WORKLOAD ERROR" in ln or "ROAM-GUEST FAILED" in ln]
    hbs, garbled = [], 0
    for t, tag, ln in rows:
        hb = heartbeat(ln)
        if hb:
            seq, ns, rec, err, mpass, merr = hb
            hbs.append((t, tag, seq, rec, err, mpass, merr))
        elif ln.startswith("HB"):
            garbled += 1
    src = [h for h in hbs if h[1] == "src"]
    dst = [h for h in hbs if h[1] == "dst"]
    problems = list(bad[:5])
    if not src or not dst:
        return {"problems": problems + [f"heartbeats: {len(src)} from the source, {len(dst)} from the destination"]}
    last_src, first_dst = src[-1], dst[0]
    seq = [h[2] for h in src] + [h[2] for h in dst]
    jumps = [(a, b) for a, b in zip(seq, seq[1:]) if b != a + 1]
    # One heartbeat can be lost at the switch when the console line it was printing was split across the two
    # QEMUs' serial files and garbled; more is a problem.
    if any(b - a > 2 or b <= a for a, b in jumps):
        problems.append(f"heartbeat sequence jumps: {jumps[:5]}")
    if max(h[4] for h in hbs):
        problems.append(f"the workload counts {max(h[4] for h in hbs)} errors")
    if max(h[6] for h in hbs):
        problems.append(f"the workload counts {max(h[6] for h in hbs)} memory errors")
    if garbled > 2 and garbled > 0.01 * (len(hbs) + garbled):
        problems.append(f"{garbled} of {len(hbs) + garbled} heartbeat lines garbled")

    t_switch, t_run = last_src[0], first_dst[0]
    seq_hbs = src + dst  # source first, then destination, each in arrival order

    def rate(a, b):
        w = [h for h in seq_hbs if a <= h[0] <= b]
        if len(w) < 2 or w[-1][0] <= w[0][0]:
            return None
        return (w[-1][3] - w[0][3]) / (w[-1][0] - w[0][0])

    def advances(a, b):
        """Host times at which the record counter was seen to advance, within [a, b] (plus the one before a)."""
        times, prev = [], None
        for h in seq_hbs:
            if prev is not None and h[3] > prev[3]:
                times.append(h[0])
            prev = h
        inside = [t for t in times if a <= t <= b]
        before = [t for t in times if t < a]
        return ([before[-1]] if before else []) + inside

    def longest(ts):
        if len(ts) < 2:
            return None, None
        g = max(range(len(ts) - 1), key=lambda i: ts[i + 1] - ts[i])
        return ts[g + 1] - ts[g], ts[g]

    def longest_gap(a, b):
        w = [h for h in seq_hbs if a <= h[0] <= b]
        return longest([h[0] for h in w])

    stall_switch, stall_switch_at = longest(advances(t_switch - 5, t_switch + 5))
    stall_mig, stall_mig_at = longest(advances(t0, t_run + 2))
    stall_base, _ = longest(advances(t0 - before_s, t0))
    gap_mig, gap_mig_at = longest_gap(t0, t_run + 2)
    gap_base, _ = longest_gap(t0 - before_s, t0)
    rec_t0 = max((h for h in seq_hbs if h[0] <= t0), key=lambda h: h[0], default=seq_hbs[0])
    ms = lambda s: None if s is None else round(s * 1000, 1)
    rel = lambda t: None if t is None else round(t - t0, 2)
    return {
        "t_switch": t_switch,
        "t_running": t_run,
        "total_s": round(t_run - t0, 3),
        "pause_ms": ms(t_run - t_switch),
        "switch_seq": [last_src[2], first_dst[2]],
        "gap_ms_max": ms(gap_mig),
        "gap_max_at_s": rel(gap_mig_at),
        "gap_ms_max_before": ms(gap_base),
        "stall_ms_switch": ms(stall_switch),
        "stall_switch_at_s": rel(stall_switch_at),
        "stall_ms_migration": ms(stall_mig),
        "stall_migration_at_s": rel(stall_mig_at),
        "stall_ms_before": ms(stall_base),
        "rec_per_s_before": rate(t0 - before_s, t0),
        "rec_per_s_during": (first_dst[3] - rec_t0[3]) / (t_run - rec_t0[0]) if t_run > rec_t0[0] else None,
        "records_during": first_dst[3] - rec_t0[3],
        "records_last": hbs[-1][3],
        "heartbeats": len(hbs),
        "garbled_lines": garbled,
        "mem_errors": max(h[6] for h in hbs),
        "mem_passes_last": hbs[-1][5],
        "mem_passes_at_switch": [last_src[5], first_dst[5]],
        "problems": problems,
    }


# --- QMP ---------------------------------------------------------------------------------------------------------
class Qmp:
    def __init__(self, path, name):
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        self.read()  # greeting
        self.cmd("qmp_capabilities")

    def read(self, timeout=None):
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise IOError(f"{self.name}: QMP closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self.read(60)
            if "event" in r:
                r["host_time"] = time.time()
                self.events.append(r)
            elif "error" in r:
                raise RuntimeError(f"{self.name} {name}: {r['error'].get('desc')}")
            else:
                return r.get("return")

    def wait_event(self, pred, timeout, poll=None, every=1.0):
        """The first event (kept or new) for which pred is true; poll() every `every` s meanwhile."""
        deadline, next_poll = time.time() + timeout, time.time() + every
        while True:
            for i, e in enumerate(self.events):
                if pred(e):
                    return self.events.pop(i)
            now = time.time()
            if now > deadline:
                raise TimeoutError(f"{self.name}: no such event within {timeout} s")
            if poll and now >= next_poll:
                poll()
                next_poll = now + every
                continue
            try:
                r = self.read(min(0.05, max(0.001, next_poll - now)))
            except socket.timeout:
                continue
            if "event" in r:
                r["host_time"] = time.time()
                self.events.append(r)


def native(src_qmp, dst_qmp, dst_addr, out, opts):
    src, dst = Qmp(src_qmp, "source"), Qmp(dst_qmp, "destination")
    job, nbd_port, mig_port = "mirror-disk0", 10809, 49152
    log = lambda msg: print(f"     [{time.time() - t0:6.2f} s] {msg}", file=sys.stderr, flush=True)
    caps = [c for c in opts.get("capabilities", "events").split(",") if c]
    for q in (src, dst):
        q.cmd("migrate-set-capabilities", capabilities=[{"capability": c, "state": True} for c in caps])
    params = {}
    if opts.get("downtime_limit"):
        params["downtime-limit"] = int(opts["downtime_limit"])
    if opts.get("bandwidth"):
        params["max-bandwidth"] = int(opts["bandwidth"])
    if params:
        src.cmd("migrate-set-parameters", **params)
    # The destination: its disk exported (writable) for the mirror, then waiting for the memory.
    dst.cmd("nbd-server-start", addr={"type": "inet", "data": {"host": dst_addr, "port": str(nbd_port)}})
    dst.cmd("nbd-server-add", device="disk0", writable=True)
    dst.cmd("migrate-incoming", uri=f"tcp:{dst_addr}:{mig_port}")

    t0 = time.time()
    steps = {"t0": t0}
    src.cmd("blockdev-add", **{"driver": "nbd", "node-name": "mirror-target", "export": "disk0",
                               "server": {"type": "inet", "host": dst_addr, "port": str(nbd_port)}})
    src.cmd("blockdev-mirror", **{"job-id": job, "device": "disk0", "target": "mirror-target", "sync": "full",
                                  "copy-mode": opts.get("copy_mode", "background")})
    log(f"blockdev-mirror {job} (sync full, copy-mode {opts.get('copy_mode', 'background')}) to nbd://{dst_addr}:{nbd_port}/disk0")

    def job_progress():
        for j in src.cmd("query-block-jobs"):
            if j["device"] == job:
                log(f"mirror: {j['offset'] / 2**20:.1f} of {j['len'] / 2**20:.1f} MiB")

    src.wait_event(lambda e: e["event"] == "BLOCK_JOB_READY" and e["data"]["device"] == job, 3600, job_progress, 2.0)
    steps["t_ready"] = time.time()
    log("BLOCK_JOB_READY: the disk is in sync, the mirror goes on mirroring writes")

    src.cmd("migrate", uri=f"tcp:{dst_addr}:{mig_port}")
    steps["t_migrate"] = time.time()
    log("migrate")

    def mig_progress():
        m = src.cmd("query-migrate")
        ram = m.get("ram", {})
        if ram:
            log(f"memory: {ram.get('transferred', 0) / 2**20:.1f} MiB sent, {ram.get('remaining', 0) / 2**20:.1f} MiB left, "
                f"{ram.get('dirty-pages-rate', 0)} dirty pages/s, expected downtime {m.get('expected-downtime')} ms")

    final = ("completed", "failed", "cancelled")
    ev = src.wait_event(lambda e: e["event"] == "MIGRATION" and e["data"]["status"] in final, 3600, mig_progress, 1.0)
    steps["t_migrated"] = ev["host_time"]
    status = ev["data"]["status"]
    info = src.cmd("query-migrate")
    if status != "completed":
        raise RuntimeError(f"migration {status}: {info.get('error-desc')}")
    log(f"migration completed (the source is paused): QEMU's downtime {info.get('downtime')} ms")

    # libvirt's way to end the mirror consistently once the source is paused: cancel after READY = complete.
    src.cmd("block-job-cancel", device=job)
    ev = src.wait_event(lambda e: e["event"] in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED") and e["data"]["device"] == job, 600)
    steps["t_mirror_done"] = ev["host_time"]
    if ev["event"] != "BLOCK_JOB_COMPLETED" or ev["data"].get("error"):
        raise RuntimeError(f"the mirror ended with {ev['event']} {ev['data'].get('error', '')}")
    log(f"block-job-cancel: {ev['event']} (mirror offset {ev['data']['offset'] / 2**20:.1f} MiB)")

    # The destination: incoming migration done (it waits paused, started with -S), its NBD server goes, then cont.
    dst.wait_event(lambda e: e["event"] == "MIGRATION" and e["data"]["status"] in final, 60,
                   lambda: None if dst.cmd("query-migrate").get("status") != "completed" else
                   dst.events.append({"event": "MIGRATION", "data": {"status": "completed"}, "host_time": time.time()}))
    dst.cmd("nbd-server-stop")
    dst.cmd("cont")
    steps["t_cont"] = time.time()
    st = dst.cmd("query-status")
    log(f"destination nbd-server-stop, cont: {st['status']}")
    json.dump({"steps": steps, "query_migrate": info, "capabilities": caps, "parameters": params,
               "copy_mode": opts.get("copy_mode", "background"),
               "destination_status": st["status"]}, open(out, "w"), indent=1)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "tail":
        tail(*args)
    elif cmd == "wait-hb":
        deadline = time.time() + float(args[2])
        while True:
            try:
                text = open(args[0], "rb").read().decode("utf-8", "replace").replace("\r", "")
            except FileNotFoundError:
                text = ""
            for bad in ("WORKLOAD ERROR", "ROAM-GUEST FAILED"):
                if bad in text:
                    sys.exit(f"the guest reports: {text[text.index(bad):].splitlines()[0]}")
            last = [h for h in map(heartbeat, text[: text.rfind("\n") + 1].split("\n")) if h]
            if last and last[-1][0] >= int(args[1]):
                sys.exit(0)
            if time.time() > deadline:
                print(f"no heartbeat #{args[1]} in {args[0]} within {args[2]} s", file=sys.stderr)
                sys.exit(4)
            time.sleep(0.1)
    elif cmd == "analyse":
        print(json.dumps(analyse(args[0], float(args[1]), float(args[2]))))
    elif cmd == "native":
        pos, opts, i = [], {}, 0
        while i < len(args):
            if args[i].startswith("--"):
                opts[args[i][2:].replace("-", "_")] = args[i + 1]
                i += 2
            else:
                pos.append(args[i])
                i += 1
        native(*pos, opts)
    else:
        sys.exit(f"vm-bench.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
