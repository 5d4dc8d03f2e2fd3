"""The ``ministack`` command (also ``python -m ministack``)."""
from __future__ import annotations

import argparse
import sys


def demo(args: argparse.Namespace) -> int:
    """The poster demo on the virtual NIC: ports, bindings, a valid and a spoofed frame,
    a frame from the network, and the counters."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    import ministack as ms

    peer_mac, peer_ip = "02:00:00:00:00:09", "10.0.0.9"
    with ms.Switch(nic="virtual", addresses=["10.0.0.2", "fd00::2"]) as sw:
        print(f"switch on the virtual NIC, MAC {sw.mac}, addresses {', '.join(sw.addresses)}")
        a, b = sw.port("app1"), sw.port("app2")
        for port, udp in ((a, 5000), (b, 6000)):
            print(f"  {port.name} binds {port.bind('10.0.0.2', 'udp', udp)}")

        def frame(src: str, sport: int) -> Ether:
            return (Ether(src=sw.mac, dst=peer_mac) / IP(src=src, dst=peer_ip) /
                    UDP(sport=sport, dport=9) / b"hello")

        attempts = [("valid", a, frame("10.0.0.2", 5000)),
                    ("spoofed source IP", a, frame("10.0.0.77", 5000)),
                    ("another port's binding", a, frame("10.0.0.2", 6000)),
                    ("spoofed source MAC", b, Ether(src="02:aa:bb:cc:dd:ee", dst=peer_mac) /
                     IP(src="10.0.0.2", dst=peer_ip) / UDP(sport=6000, dport=9))]
        print("\nframes the ports send:")
        for label, port, f in attempts:
            v = sw.explain(port.name, f)
            port.send(f)
            print(f"  {port.name} sends {label:<24} -> {v.action:<7} {v.reason or v.to:<16} "
                  f"{v.detail}")
        print(f"  frames on the wire: {len(sw.wire.capture())}")

        print("\nframes from the network:")
        for dport in (6000, 7777):
            f = Ether(src=peer_mac, dst=sw.mac) / IP(src=peer_ip, dst="10.0.0.2") / \
                UDP(sport=9, dport=dport) / b"hi"
            v = sw.explain("nic", f)
            sw.wire.inject(f)
            print(f"  udp to 10.0.0.2:{dport:<5} -> {v.action:<7} {v.reason or v.to:<16} "
                  f"{v.detail}")
        got = b.recv(timeout=1.0)
        print(f"  app2 received {len(got) if got else 0} bytes")

        sw.sync()
        st = sw.stats()
        print("\ncounters:")
        for name, p in st["ports"].items():
            drops = {r: n for r, n in p["drops"].items() if n}
            print(f"  {name}: tx {p['tx']['frames']} rx {p['rx']['frames']} drops {drops}")
        nic = st["nic"]
        print(f"  nic: rx {nic['rx']['frames']} tx {nic['tx']['frames']} drops "
              f"{ {r: n for r, n in nic['drops'].items() if n} }")
        print("\nrecent drops:")
        for d in sw.drops(limit=10):
            print(f"  {d['port']:<5} {d['direction']} {d['reason']:<16} {d['len']} bytes")
    return 0


def topo(args: argparse.Namespace) -> int:
    """Create, remove or show a lab topology: a peer namespace joined by a veth pair."""
    import ministack as ms

    t = ms.Topology(ns=args.ns, host_if=args.host_if, peer_if=args.peer_if,
                    host_addrs=args.host_addr or ["10.0.0.2/24", "fd00::2/64"],
                    peer_addrs=args.peer_addr or ["10.0.0.1/24", "fd00::1/64"])
    try:
        if args.action == "up":
            t.up()
            print(t.show())
            print(f"attach a switch with ms.Switch(nic={t.host_if!r}); remove with "
                  f"'ministack topo down'")
        elif args.action == "down":
            t.down()
            print(f"removed {t.host_if} and namespace {t.ns}")
        else:
            print(t.show())
    except ms.MiniStackError as e:
        print(f"ministack topo {args.action}: {e}", file=sys.stderr)
        return 1
    return 0


def daemon(args: argparse.Namespace) -> int:
    """Run the switch for applications in other processes, serving a UNIX control socket."""
    import logging
    import signal

    from ministack.daemon import Daemon
    from ministack.errors import MiniStackError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        d = Daemon(nic=args.nic, socket_path=args.socket, addresses=args.address or None,
                   group=args.group, backend=args.backend)
        d.listen()
    except (MiniStackError, OSError, KeyError, ValueError) as e:
        print(f"ministack daemon: {e}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: d.close())
    print(f"ministack daemon: switch on {d.switch.nic} ({d.switch.backend}), MAC "
          f"{d.switch.mac}, addresses {', '.join(d.switch.addresses)}; serving "
          f"{args.socket}", flush=True)
    try:
        d.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        d.close()
    return 0


def pktgen(args: argparse.Namespace) -> int:
    """Run ms-pktgen, the C traffic source/sink that attaches to a daemon's port."""
    import os

    exe = os.path.join(os.path.dirname(__file__), "ms-pktgen")
    if not os.path.exists(exe):
        print("ministack pktgen: ms-pktgen was not built with this install", file=sys.stderr)
        return 1
    os.execv(exe, [exe, *args.rest])
    return 0  # not reached


def bench(args: argparse.Namespace) -> int:
    """Run the benchmark (same as python -m ministack.bench)."""
    from ministack import bench as b
    return b.main(args.rest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ministack",
        description="MiniStack: user-space network stacks on a shared NIC, with a filtering "
                    "software switch between the NIC and application ports.")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
    p = sub.add_parser("demo", help="run the poster demo on the virtual NIC",
                       description=demo.__doc__)
    p.set_defaults(func=demo)
    p = sub.add_parser("daemon", help="run the switch for applications in other processes",
                       description=daemon.__doc__)
    p.add_argument("--nic", default="virtual", help="interface, or 'virtual' (default)")
    p.add_argument("--socket", default="/run/ministack.sock", help="control socket path")
    p.add_argument("--address", action="append", metavar="IP",
                   help="an address of the virtual NIC (repeatable)")
    p.add_argument("--group", help="only members of this group may connect")
    p.add_argument("--backend", default="auto", choices=["auto", "afxdp", "afpacket"])
    p.set_defaults(func=daemon)
    p = sub.add_parser("topo", help="create, remove or show a lab topology (root)",
                       description=topo.__doc__)
    p.add_argument("action", choices=["up", "down", "show"])
    p.add_argument("--ns", default="ms-peer", help="peer namespace (default ms-peer)")
    p.add_argument("--host-if", default="veth-ms", help="host end (default veth-ms)")
    p.add_argument("--peer-if", default="veth-peer", help="peer end (default veth-peer)")
    p.add_argument("--host-addr", action="append", metavar="IP/LEN",
                   help="host end address (repeatable; default 10.0.0.2/24, fd00::2/64)")
    p.add_argument("--peer-addr", action="append", metavar="IP/LEN",
                   help="peer address (repeatable; default 10.0.0.1/24, fd00::1/64)")
    p.set_defaults(func=topo)
    p = sub.add_parser("pktgen", help="C traffic source/sink on a daemon's port (-h)",
                       add_help=False, description=pktgen.__doc__)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=pktgen)
    p = sub.add_parser("bench", help="measure forwarding rates (see --help)", add_help=False,
                       description=bench.__doc__)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=bench)
    argv = sys.argv[1:] if argv is None else argv
    # These hand every argument, options included, to their own parsers.
    if argv and argv[0] in ("pktgen", "bench"):
        return {"pktgen": pktgen, "bench": bench}[argv[0]](argparse.Namespace(rest=argv[1:]))
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
