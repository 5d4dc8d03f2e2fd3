"""Looking into a running daemon from the shell, as `ss`, `dropwatch`, `watch` and `tcpdump`
do for the kernel: ``ministack status``, ``bindings``, ``drops``, ``explain``, ``stats``
and ``capture``. Each talks to the daemon's control socket (``--socket``) and prints a
table, or with ``--json`` the daemon's own answer; every reason carries its name and its
number (docs/reasons.md). An ordinary user sees their own ports; root sees every port.

    $ ministack bindings
    Proto  Local Address:Port   Port   User   PID
    udp    10.0.0.2:5000        app1   alice  4242
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from ministack.client import DEFAULT_SOCKET, Client, connect
from ministack.errors import MiniStackError
from ministack.switch import LOG_FRAMES, PORT_DROP_REASONS, REASON_CODES, frame_summary


def _table(rows: list[list[str]], head: list[str]) -> str:
    """Columns padded to their widest cell, the way ss and ip print."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in [head, *rows])


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=None, sort_keys=False)


# --- the commands ------------------------------------------------------------------------

def status(c: Client, args: argparse.Namespace) -> int:
    st = c.status()
    if args.json:
        print(_dumps(st))
        return 0
    sw = st["switch"]
    print(f"MiniStack switch on {sw['nic']} (backend {sw['backend']}), MAC {sw['mac']}, "
          f"addresses {', '.join(sw['addresses'])}; socket {sw['socket']}")
    rows = []
    for p in st["ports"]:
        s = p["stats"] or {}
        drops = sum((s.get("drops") or {}).values())
        rows.append([p["name"], p["user"], str(p["pid"]), str(p["mtu"]), str(p["bindings"]),
                     str(s.get("tx", {}).get("frames", 0)),
                     str(s.get("rx", {}).get("frames", 0)), str(drops)])
    print(_table(rows, ["Port", "User", "PID", "MTU", "Bindings", "TX", "RX", "Drops"]))
    if st["other_ports"]:
        print(f"({st['other_ports']} port(s) of other users not shown; root sees all)")
    nic = st["nic"]
    nd = ", ".join(f"{r} {n}" for r, n in nic["drops"].items())
    print(f"nic: rx {nic['rx']['frames']}, tx {nic['tx']['frames']}, to-host "
          f"{nic['to-host']['frames']}; drops: {nd}")
    if sw["captures"]:  # each costs the switch a copy of every frame it sees
        print(f"{sw['captures']} capture(s) running (ministack capture)")
    return 0


def bindings(c: Client, args: argparse.Namespace) -> int:
    owners = c.owners()
    rows = []
    for b in c.bindings():
        o = owners.get(b.port, {})
        address = f"[{b.ip}]" if ":" in b.ip else b.ip
        rows.append({"protocol": b.protocol, "ip": b.ip, "local_port": b.local_port,
                     "port": b.port, "user": o.get("user"), "uid": o.get("uid"),
                     "pid": o.get("pid"), "local": f"{address}:{b.local_port}"})
    if args.json:
        print(_dumps([{k: v for k, v in r.items() if k != "local"} for r in rows]))
        return 0
    print(_table([[r["protocol"], r["local"], r["port"], str(r["user"]), str(r["pid"])]
                  for r in rows], ["Proto", "Local Address:Port", "Port", "User", "PID"]))
    return 0


def _drop_line(d: dict[str, Any]) -> str:
    when = datetime.fromtimestamp(d["time"]).strftime("%H:%M:%S.%f")
    reason = f"{d['reason']}({d['code']})"
    line = f"{when}  {d['port']:<10} {d['direction']}  {reason:<22} {frame_summary(d['frame'])}"
    return line + (f"  [nearest: {d['nearest']}]" if d.get("nearest") else "")


def drops(c: Client, args: argparse.Namespace) -> int:
    if args.reason and args.reason not in REASON_CODES:
        print(f"ministack drops: no reason {args.reason!r} (reasons: "
              f"{', '.join(PORT_DROP_REASONS + ['no-binding'])})", file=sys.stderr)
        return 2

    def wanted(d: dict[str, Any]) -> bool:
        return (not args.port or d["port"] == args.port) and \
            (not args.reason or d["reason"] == args.reason)

    since, shown = 0, 0
    while True:
        batch = c.drops(1024, since=since)
        for d in batch:
            since = max(since, d["seq"])
            if not wanted(d):
                continue
            if args.json:
                print(_dumps({**d, "frame": d["frame"].hex(),
                              "summary": frame_summary(d["frame"])}), flush=True)
            else:
                print(_drop_line(d), flush=True)
            shown += 1
            if args.count and shown >= args.count:
                return 0
        if not args.follow:
            return 0
        time.sleep(args.interval)


def _frame_arg(text: str) -> bytes:
    """FRAME: hex (spaces and colons allowed), or a pcap/pcapng file's first packet."""
    path = Path(text)
    if path.exists():
        from scapy.utils import rdpcap

        packets = rdpcap(str(path), count=1)
        if not packets:
            raise MiniStackError(f"{text} holds no packets")
        return bytes(packets[0])
    cleaned = text.replace(" ", "").replace(":", "").replace("\n", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise MiniStackError(f"{text!r} is neither a file nor hex bytes (a frame as hex, "
                             f"like 02004d530002..., or a pcap file)") from None


def explain(c: Client, args: argparse.Namespace) -> int:
    frame = _frame_arg(args.frame)
    v = c.explain(args.port, frame, inspect=True)
    if args.json:
        print(_dumps({"action": v.action, "reason": v.reason, "code": v.code, "to": v.to,
                      "detail": v.detail, "nearest": v.nearest, "fix": v.fix,
                      "summary": frame_summary(frame)}))
        return 0
    print(frame_summary(frame))
    verdict = v.action if v.reason is None else f"{v.action} {v.reason}({v.code})"
    where = f" -> {v.to}" if v.to else ""
    print(f"{verdict}{where}: {v.detail}")
    if v.nearest:
        print(f"nearest binding: {v.nearest}")
    if v.fix:
        print(f"fix: {v.fix}")
    return 0


def capture(c: Client, args: argparse.Namespace) -> int:
    from ministack.pcapng import PcapngWriter, packet_of

    what = "dropped frames" if args.drops else "frames"
    where = f" of {args.target}" if args.target else ""
    if args.drops:
        last = c.drops(1)
        since = last[-1]["seq"] if last else 0
        tap = None
    else:
        tap = c.tap([args.target] if args.target else None)
    print(f"ministack capture: writing {what}{where} to {args.write}; ^C stops",
          file=sys.stderr, flush=True)
    written = 0
    with open(args.write, "wb") as f:
        out = PcapngWriter(f)
        try:
            while not args.count or written < args.count:
                if tap is None:
                    got = c.drops(1024, since=since)
                    since = max([since] + [d["seq"] for d in got])
                    got = [d for d in got if not args.target or d["port"] == args.target]
                else:
                    got = tap.read()
                for frame in got[:args.count - written if args.count else None]:
                    packet_of(out, frame, args.target)
                    written += 1
                if not got:
                    time.sleep(0.05)
        except KeyboardInterrupt:
            pass
    lost = tap.lost if tap is not None else 0
    print(f"ministack capture: {written} {what} written"
          + (f"; {lost} lost: the switch keeps the last {LOG_FRAMES} frames of "
             f"every capture, and this one read too slowly (capture fewer ports)"
             if lost else ""), file=sys.stderr)
    return 0


def _counts(st: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Port (and "nic") -> counter -> value: tx, rx and each reason."""
    out = {}
    for name, s in [*st["ports"].items(), ("nic", st["nic"])]:
        row = {"tx": s["tx"]["frames"], "rx": s["rx"]["frames"]}
        row.update(s["drops"])
        out[name] = row
    return out


def stats(c: Client, args: argparse.Namespace) -> int:
    before, t0 = _counts(c.stats()), time.monotonic()
    if not args.watch:
        if args.json:
            print(_dumps(c.stats()))
        else:
            _print_rates(before, None)
        return 0
    shown = 0
    while not args.count or shown < args.count:
        time.sleep(args.interval)
        now, t1 = _counts(c.stats()), time.monotonic()
        rates = {p: {k: round((v - before.get(p, {}).get(k, 0)) / (t1 - t0), 1)
                     for k, v in row.items()} for p, row in now.items()}
        if args.json:
            print(_dumps({"interval": round(t1 - t0, 3), "per_second": rates}), flush=True)
        else:
            if sys.stdout.isatty():
                print("\033[H\033[J", end="")  # in place, as watch(1) does
            _print_rates(now, rates)
        before, t0, shown = now, t1, shown + 1
    return 0


def _print_rates(counts: dict[str, dict[str, int]],
                 rates: dict[str, dict[str, float]] | None) -> None:
    """One row per port and reason that is not zero, with its rate per second."""
    rows = []
    for port, row in counts.items():
        for k, v in row.items():
            r = rates[port][k] if rates else None
            if v or r:
                code = "" if k in ("tx", "rx") else f"({REASON_CODES[k]})"
                rows.append([port, f"{k}{code}", str(v), "" if r is None else f"{r:.1f}"])
    head = ["Port", "Counter", "Total", "Per second" if rates else ""]
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"MiniStack counters at {stamp}" + (" (rates over the last interval)" if rates else ""))
    print(_table(rows, head))


COMMANDS: dict[str, tuple[Callable[[Client, argparse.Namespace], int], str]] = {
    "status": (status, "the switch, its ports with their owners, and the counters"),
    "bindings": (bindings, "every binding with its port, user and process (like ss -lnp)"),
    "drops": (drops, "recent drops, one line each (like dropwatch); -f follows"),
    "explain": (explain, "what the switch does with a frame, and why"),
    "stats": (stats, "counters per port and reason; --watch: rates, refreshed in place"),
    "capture": (capture, "a port's frames with their verdicts into a pcapng file (Wireshark)"),
}


def add_parsers(sub: Any) -> None:
    """The commands above, for cli.main()."""
    for name, (_fn, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=f"{help_}. {__doc__.splitlines()[0]}")
        p.add_argument("--socket", default=DEFAULT_SOCKET,
                       help=f"the daemon's control socket (default {DEFAULT_SOCKET})")
        if name != "capture":
            p.add_argument("--json", action="store_true", help="JSON instead of a table")
        if name == "drops":
            p.add_argument("-f", "--follow", action="store_true", help="keep printing new drops")
            p.add_argument("--port", help="only this port's drops ('nic' for the NIC's)")
            p.add_argument("--reason", help="only this reason's drops")
            p.add_argument("-c", "--count", type=int, default=0, help="stop after N drops")
            p.add_argument("--interval", type=float, default=0.2, help=argparse.SUPPRESS)
        if name == "explain":
            p.add_argument("port", help="the port that sends the frame, or 'nic' for a "
                                        "frame from the network")
            p.add_argument("frame", help="the frame: hex bytes, or a pcap/pcapng file (its "
                                         "first packet)")
        if name == "stats":
            p.add_argument("-w", "--watch", action="store_true",
                           help="rates per second, refreshed every --interval")
            p.add_argument("-n", "--interval", type=float, default=1.0,
                           help="seconds between refreshes (default 1)")
            p.add_argument("-c", "--count", type=int, default=0, help="stop after N refreshes")
        if name == "capture":
            p.add_argument("target", nargs="?", metavar="PORT|nic",
                           help="this port's frames, or the NIC's (default: every port you "
                                "hold; as root, everything)")
            p.add_argument("--drops", action="store_true",
                           help="only the dropped frames (from the drop log: nothing is "
                                "tapped)")
            p.add_argument("-w", "--write", required=True, metavar="FILE.pcapng",
                           help="the file to write")
            p.add_argument("-c", "--count", type=int, default=0,
                           help="stop after N frames (default: at ^C)")
        p.set_defaults(func=run, inspect=name)


def run(args: argparse.Namespace) -> int:
    fn = COMMANDS[args.inspect][0]
    try:
        with connect(args.socket) as c:
            return fn(c, args)
    except MiniStackError as e:  # the client's own: what failed and what to do
        print(f"ministack {args.inspect}: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1
