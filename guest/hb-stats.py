#!/usr/bin/env python3
"""Checks a Roam guest serial log and prints heartbeat statistics.

usage: hb-stats.py LOG [--min-heartbeats N] [--at SEQ] [--json]

Log lines written by guest/init and guest/workload.c:
  ROAM-GUEST READY ...            init found the disk and is starting the workload
  ROAM-GUEST FAILED: reason       init gave up (the guest powers off)
  WORKLOAD START ...              workload opened the disk (next_seq=... continues after existing records)
  WORKLOAD MEM pages=N ...        the memory checker started (WORKLOAD MEM off: no memory check)
  HB <hb_seq> <monotonic_ns> <records_written> <errors> <mem_passes> <mem_errors> *<crc32>   every 10 ms
                                  crc32: 8 hex digits, CRC-32 (IEEE) of the text before " *"
  WORKLOAD ERROR ...              a record read back or a memory page did not verify, or I/O failed

A heartbeat counts only if its checksum matches. An HB line that does not parse or whose checksum fails is garbled
(QEMU's console log duplicates a byte now and then), counted as garbled_lines: the heartbeat it held is missing, not
a problem, unless garbled lines are more than 1 % of all heartbeat lines (and more than 2).
Checks: READY present, no FAILED / WORKLOAD ERROR lines, at least N heartbeats, heartbeat sequence numbers
consecutive (but for heartbeats lost in garbled lines, or one torn into two fragments, which a migration does when it
stops the guest while the UART is sending a line: the source prints its start and the destination the rest), monotonic
clock and records_written non-decreasing, errors and mem_errors 0, and mem_passes advancing: a memory check that
completes no pass in MEM_STUCK_S (60) seconds of the guest's clock is stuck (the guest's clock, so that a migration's
pause, during which the guest does not run, does not count).
Prints gap stats (ms) between consecutive heartbeats; the max gap is how long the guest (or its heartbeat
thread) did not run, e.g. the stop-and-copy pause of a live migration.
A host-stamped log (roamd's vms/NAME.serial.stamped, `roam vm console NAME --timestamps`: each line prefixed with
the UTC host time at which roamd received it, "2025-01-31T12:34:56.123456Z HB ...") also gives the gaps in host
time (host_gap_*): under TCG the guest's clock stands still while QEMU has it paused, host time does not, so
these show the pause as the guest lived it. --at SEQ: the host-time gap from heartbeat SEQ-1 to SEQ (e.g. the
first heartbeat on a migration's destination; from the last stamped one before to the first stamped one from SEQ on,
when a heartbeat torn across the switch-over has no stamp), as host_gap_ms_at.
Exit status 0 iff all checks pass.
"""
import datetime
import json
import re
import statistics
import sys
import zlib

HB = re.compile(r"^HB (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) \*([0-9a-fA-F]{8})\s*$")
FRAGMENT = re.compile(r"^[0-9a-fA-FHB *]+$")  # what a piece of a heartbeat line can hold
MEM_STUCK_S = 60
GARBLED_SHARE = 0.01


def heartbeat(line):
    """The heartbeat's six numbers if LINE (no host stamp) is one whose checksum matches, else None."""
    m = HB.match(line)
    if not m:
        return None
    text = line[: line.rindex(" *")]
    if zlib.crc32(text.encode("ascii", "replace")) != int(m.group(7), 16):
        return None
    return tuple(int(x) for x in m.groups()[:6])
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})Z (.*)$")


def host_seconds(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc).timestamp()


def host_gap_at(host, at):
    """Host-time gap (ms) from the last stamped heartbeat before AT to the first at or after it: a heartbeat torn
    across a switch-over has no stamp of its own, and then the gap spans it."""
    if at is None:
        return None
    before = [k for k in host if k < at]
    after = [k for k in host if k >= at]
    if not before or not after:
        return None
    return round((host[min(after)] - host[max(before)]) * 1e3, 3)


def analyse(text, min_hb, at=None):
    problems = []
    lines = text.replace("\r", "").split("\n")
    if text and not text.endswith("\n"):
        lines = lines[:-1]  # QEMU killed mid-line
    hbs = []
    torn = set()  # heartbeat seqs right after a fragment: a line cut in two by a migration (source half, destination half)
    lost = {}  # heartbeat seq -> how many heartbeats garbled lines just before it may have held
    garbled = 0
    pending = None  # an unfinished-looking HB line (it failed): garbled, unless the next line is its torn rest
    fragment = False
    host = {}  # heartbeat seq -> host time (s), from a stamped log
    ready = start = None
    mem_on = False
    for ln in lines:
        st = STAMP.match(ln)
        if st:
            ln = st.group(2)
        hb = heartbeat(ln.strip())
        rest = ln.strip()
        if hb:
            if pending is not None:
                garbled += 1
            pending = None
            hbs.append(hb)
            if fragment:
                torn.add(hb[0])
            if missing := lost.pop(None, 0):
                lost[hb[0]] = missing
            fragment = False
            if st:
                host[hb[0]] = host_seconds(st.group(1))
        elif rest.startswith("HB") or (rest and "HB ".startswith(rest)):
            if pending is not None:
                garbled += 1
            pending = rest  # garbled, or the source's half of a heartbeat torn at a switch-over
            lost[None] = lost.get(None, 0) + max(1, rest.count("HB"))
        elif (FRAGMENT.match(rest) and rest) or (st and not rest):
            # the rest of a line whose start the other host printed (stamped: maybe just its newline)
            if pending is None and rest:
                garbled += 1  # no start before it: a garbled line
                lost[None] = lost.get(None, 0) + 1
            pending = None
            fragment = True
        else:
            if pending is not None:
                garbled += 1
            pending = None
            if ln.startswith("ROAM-GUEST READY"):
                ready = ln
            elif ln.startswith("WORKLOAD START"):
                start = ln
            elif ln.startswith("WORKLOAD MEM pages="):
                mem_on = True
        if "ROAM-GUEST FAILED" in ln or "WORKLOAD ERROR" in ln:
            problems.append(ln.strip())
    if pending is not None:
        garbled += 1
    hb_lines = len(hbs) + garbled
    if garbled > 2 and garbled > GARBLED_SHARE * hb_lines:
        problems.append(f"{garbled} of {hb_lines} heartbeat lines garbled (> {GARBLED_SHARE:.0%})")
    if ready is None:
        problems.append("no 'ROAM-GUEST READY' line")
    if start is None:
        problems.append("no 'WORKLOAD START' line")
    if len(hbs) < min_hb:
        problems.append(f"only {len(hbs)} heartbeats (< {min_hb})")
    gaps = []
    for a, b in zip(hbs, hbs[1:]):
        # Heartbeats in garbled lines, or one torn in two at a switch-over (the UART's bytes leave from both hosts),
        # are not a gap.
        if b[0] != a[0] + 1 and not (a[0] < b[0] <= a[0] + 1 + max(lost.get(b[0], 0), 1 if b[0] in torn else 0)):
            problems.append(f"heartbeat seq jumps {a[0]} -> {b[0]}")
        if b[1] <= a[1]:
            problems.append(f"heartbeat clock not increasing at seq {b[0]}")
        if b[2] < a[2]:
            problems.append(f"records_written decreased at seq {b[0]}")
        gaps.append((b[1] - a[1]) / 1e6)
    host_gaps = [((host[b[0]] - host[a[0]]) * 1e3, b[0]) for a, b in zip(hbs, hbs[1:]) if a[0] in host and b[0] in host]
    if hbs and hbs[-1][3] != 0:
        problems.append(f"workload reports {hbs[-1][3]} errors")
    if hbs and hbs[-1][5] != 0:
        problems.append(f"workload reports {hbs[-1][5]} memory errors")
    # The memory check completes a pass every ~2 s of the guest's time. Windows of the guest's clock (it stands still
    # while the guest is paused) without a new pass; a clock going back (a reboot in the log) starts a new window.
    mem_on = mem_on or any(h[4] for h in hbs)
    since = hbs[0] if hbs else None
    for a, b in zip(hbs, hbs[1:]):
        if b[1] < a[1] or b[4] != since[4]:
            since = b
        elif mem_on and (b[1] - since[1]) / 1e9 > MEM_STUCK_S:
            problems.append(f"memory check stuck: mem_passes {since[4]} from heartbeat {since[0]} to {b[0]} "
                            f"({(b[1] - since[1]) / 1e9:.0f} s of guest time)")
            since = b
    res = {
        "heartbeats": len(hbs),
        "torn_lines": len(torn),
        "garbled_lines": garbled,
        "records_written": hbs[-1][2] if hbs else 0,
        "errors": hbs[-1][3] if hbs else None,
        "mem_passes": hbs[-1][4] if hbs else None,
        "mem_errors": hbs[-1][5] if hbs else None,
        "gap_ms_median": round(statistics.median(gaps), 3) if gaps else None,
        "gap_ms_p99": round(sorted(gaps)[int(0.99 * (len(gaps) - 1))], 3) if gaps else None,
        "gap_ms_max": round(max(gaps), 3) if gaps else None,
        "gap_max_at_hb": (hbs[gaps.index(max(gaps)) + 1][0] if gaps else None),
        "span_s": round((hbs[-1][1] - hbs[0][1]) / 1e9, 3) if len(hbs) > 1 else 0,
        "host_gap_ms_median": round(statistics.median(g for g, _ in host_gaps), 3) if host_gaps else None,
        "host_gap_ms_max": round(max(host_gaps)[0], 3) if host_gaps else None,
        "host_gap_max_at_hb": max(host_gaps)[1] if host_gaps else None,
        "host_gap_ms_at": host_gap_at(host, at),
        "problems": problems[:50],
    }
    return res


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    min_hb, as_json, path, at = 1, False, None, None
    i = 0
    while i < len(args):
        if args[i] == "--min-heartbeats":
            min_hb = int(args[i + 1])
            i += 2
        elif args[i] == "--at":
            at = int(args[i + 1])
            i += 2
        elif args[i] == "--json":
            as_json, i = True, i + 1
        else:
            path, i = args[i], i + 1
    with open(path, "r", errors="replace") as f:
        res = analyse(f.read(), min_hb, at)
    if as_json:
        print(json.dumps(res))
    else:
        print(
            f"heartbeats={res['heartbeats']} span={res['span_s']}s records_written={res['records_written']} "
            f"errors={res['errors']} mem_passes={res['mem_passes']} mem_errors={res['mem_errors']} "
            f"garbled_lines={res['garbled_lines']} gap_ms: median={res['gap_ms_median']} p99={res['gap_ms_p99']} "
            f"max={res['gap_ms_max']} (before HB {res['gap_max_at_hb']})"
        )
        if res["host_gap_ms_max"] is not None:
            print(
                f"host time gap_ms: median={res['host_gap_ms_median']} max={res['host_gap_ms_max']} (before HB {res['host_gap_max_at_hb']})"
                + (f" at HB {at}: {res['host_gap_ms_at']}" if at is not None else "")
            )
        for p in res["problems"]:
            print(f"PROBLEM: {p}")
    return 1 if res["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
