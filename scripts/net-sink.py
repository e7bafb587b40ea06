#!/usr/bin/env python3
"""Roam's stream sink: accepts connections, counts the bytes received in each interval, and ends with one line
    sink: bytes B, longest gap G ms, resets R, connections C
where the longest gap is the longest run of intervals with no byte, between the first byte and the last one (a quiet
tail after the sender stopped is reported apart, as "idle at end"), resets counts connections that ended with an
error (ECONNRESET, ETIMEDOUT...) rather than a clean close, and connections counts those accepted.

usage: net-sink.py --listen ADDR:PORT [--mptcp] [--interval-ms 10] [--csv FILE] [--duration S]
  --mptcp   listen on an IPPROTO_MPTCP (262) socket; plain TCP clients are accepted too (the kernel falls back).
  --csv     one row per interval: t_ms,bytes,connections (t_ms since the sink started; connections open then).
  --duration  stop after S seconds (0, the default: run until SIGTERM/SIGINT). Either way the summary is printed.
Per-connection events go to stderr (sink: open/closed/RESET ...). stdlib only.
"""
import argparse
import errno
import os
import selectors
import signal
import socket
import sys
import time

IPPROTO_MPTCP = 262


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="ADDR:PORT")
    ap.add_argument("--mptcp", action="store_true")
    ap.add_argument("--interval-ms", type=float, default=10.0)
    ap.add_argument("--csv")
    ap.add_argument("--duration", type=float, default=0.0)
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    if not host or not port.isdigit():
        ap.error("--listen wants ADDR:PORT")

    try:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP if a.mptcp else socket.IPPROTO_TCP)
    except OSError as e:
        print(f"sink: cannot open {'an MPTCP' if a.mptcp else 'a TCP'} socket: {e}", file=sys.stderr)
        return 1
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(16)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)

    stop = []
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.append(1))

    csv = open(a.csv, "w", buffering=1 << 16) if a.csv else None
    if csv:
        csv.write("t_ms,bytes,connections\n")
    step = a.interval_ms / 1000.0
    t0 = time.monotonic()
    # t0 in wall-clock ms, so a caller can place the CSV's t_ms among its own events.
    print(f"sink: listening on {a.listen} ({'mptcp' if a.mptcp else 'tcp'}), t0_epoch_ms {time.time_ns() // 1000000}",
          file=sys.stderr, flush=True)
    end = t0 + a.duration if a.duration > 0 else None
    nxt = t0 + step
    idx = 0
    total = resets = conns = 0
    cur = 0                     # bytes in the current interval
    first_seen = False
    run = 0                     # zero intervals since the last byte (after the first)
    longest = 0
    open_conns = {}             # socket -> peer
    buf = bytearray(1 << 18)

    def close_conn(s, why):
        nonlocal resets
        peer = open_conns.pop(s)
        sel.unregister(s)
        s.close()
        if why:
            resets += 1
            print(f"sink: RESET {peer[0]}:{peer[1]} ({why})", file=sys.stderr, flush=True)
        else:
            print(f"sink: closed {peer[0]}:{peer[1]}", file=sys.stderr, flush=True)

    def tick():
        nonlocal cur, idx, run, longest, first_seen
        idx += 1
        if csv:
            csv.write(f"{idx * a.interval_ms:.0f},{cur},{len(open_conns)}\n")
        if cur:
            if first_seen:
                longest = max(longest, run)
            first_seen = True
            run = 0
        elif first_seen:
            run += 1
        cur = 0

    while not stop:
        now = time.monotonic()
        while now >= nxt:       # a late wake-up still writes every interval it covered
            tick()
            nxt += step
        if end is not None and now >= end:
            break
        for key, _ in sel.select(timeout=max(0.0, nxt - now)):
            s = key.fileobj
            if s is ls:
                try:
                    c, peer = ls.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    print(f"sink: accept failed: {e}", file=sys.stderr, flush=True)
                    continue
                c.setblocking(False)
                open_conns[c] = peer
                sel.register(c, selectors.EVENT_READ, None)
                conns += 1
                print(f"sink: open {peer[0]}:{peer[1]}", file=sys.stderr, flush=True)
                continue
            try:
                n = s.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                close_conn(s, f"errno={e.errno} {os.strerror(e.errno) if e.errno else e}")
                continue
            if n == 0:
                close_conn(s, None)
            else:
                cur += n
                total += n

    now = time.monotonic()
    while now >= nxt:
        tick()
        nxt += step
    for s in list(open_conns):
        close_conn(s, None)
    if csv:
        csv.close()
    idle = run * a.interval_ms if first_seen else 0
    print(f"sink: bytes {total}, longest gap {longest * a.interval_ms:.0f} ms, resets {resets}, "
          f"connections {conns}, idle at end {idle:.0f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
