"""The ``ministack`` command (also ``python -m ministack``)."""
from __future__ import annotations

import argparse
import sys


def demo(args: argparse.Namespace) -> int:
    """The poster demo: ports, bindings, valid and spoofed frames, frames from the network,
    a burst, the counters. As root in a peer namespace with a real kernel stack behind a
    veth pair (removed afterwards); otherwise, or with --virtual, on the virtual NIC.
    With --stacks (root): lwIP, a TAP-style stack and the host kernel on one interface at
    once, one of them misbehaving."""
    if args.kiosk:
        return kiosk(args)
    if args.stacks:
        from ministack.stacks import run as run_stacks

        return run_stacks()
    from ministack.demo import run

    return run(virtual=True if args.virtual else None)


def kiosk(args: argparse.Namespace) -> int:
    """The demo as a web page for a poster session (Voilà: no code shown). Open the URL
    in a browser in kiosk mode (chromium --kiosk URL) for full screen."""
    import os
    import shutil
    from pathlib import Path

    voila = shutil.which("voila") or str(Path(sys.executable).parent / "voila")
    if not Path(voila).exists():
        print("ministack demo --kiosk: Voilà is not installed: pip install 'ministack[lab]'",
              file=sys.stderr)
        return 1
    page = Path(__file__).resolve().parent / "kiosk.ipynb"
    host = "localhost" if args.ip in ("127.0.0.1", "localhost") else args.ip
    print(f"MiniStack kiosk: open http://{host}:{args.port}/ (full screen: chromium --kiosk "
          f"http://{host}:{args.port}/)", flush=True)
    os.environ.setdefault("BOKEH_RESOURCES", "inline")
    os.execv(voila, [voila, str(page), f"--port={args.port}", f"--Voila.ip={args.ip}",
                     "--no-browser", "--VoilaConfiguration.show_tracebacks=False",
                     "--Voila.port_retries=0"])
    return 0  # not reached


def lab(args: argparse.Namespace) -> int:
    """Start JupyterLab on the MiniStack labs and print the URL to open.

    By default on the student versions, copied on first use into $MINISTACK_LABS
    (~/ministack-labs when unset), where the student's answers stay; --solutions opens the
    instructor's versions in labs/source/ (edit them there, then regenerate the student
    versions: docs/teaching.md); --dir DIR opens DIR as it is. The token is $JUPYTER_TOKEN
    when set, a random one otherwise."""
    import os
    import secrets
    import shutil
    import tempfile
    from pathlib import Path

    course = Path(__file__).resolve().parent.parent / "labs"
    if args.dir:
        labs = Path(args.dir)
    elif not (course / "release").is_dir():
        print(f"ministack lab: no labs/release/ next to the package ({course}); pass --dir",
              file=sys.stderr)
        return 1
    elif args.solutions:
        labs = course / "source"
    else:
        labs = Path(os.environ.get("MINISTACK_LABS") or Path.home() / "ministack-labs")
        from ministack.course import release_notebooks, student_labs

        copied = student_labs(release_notebooks(course / "release"), labs)
        if copied:
            # stderr: the first line on stdout is the URL, which services read
            print(f"MiniStack lab: copied {len(copied)} lab(s) into {labs}", file=sys.stderr)
    if not labs.is_dir():
        print(f"ministack lab: {labs} is not a folder", file=sys.stderr)
        return 1
    if shutil.which("jupyter") is None and not (Path(sys.executable).parent / "jupyter").exists():
        print("ministack lab: JupyterLab is not installed: pip install 'ministack[lab]'",
              file=sys.stderr)
        return 1
    # A fixed token from the environment lets a service print a URL that survives restarts
    # (the course VM does); otherwise a fresh one each time.
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_hex(16)
    # Its own workspace: tabs restored from another session would confuse a fresh lab.
    workspaces = tempfile.mkdtemp(prefix="ministack-lab-")
    host = "localhost" if args.ip in ("127.0.0.1", "localhost") else args.ip
    print(f"MiniStack lab: open http://{host}:{args.port}/lab?token={token}", flush=True)
    argv = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={labs}",
            f"--ServerApp.port={args.port}", f"--ServerApp.ip={args.ip}",
            f"--IdentityProvider.token={token}", f"--LabApp.workspaces_dir={workspaces}",
            "--ServerApp.port_retries=0", "--ServerApp.allow_root=True"]
    if args.no_browser:
        argv.append("--no-browser")
    os.environ.setdefault("BOKEH_RESOURCES", "inline")
    os.execv(sys.executable, argv)
    return 0  # not reached


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

    from ministack.daemon import Daemon, Limits
    from ministack.errors import MiniStackError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        limits = Limits(connections=args.max_connections_per_user,
                        ports=args.max_ports_per_user, bindings=args.max_bindings_per_user)
        d = Daemon(nic=args.nic, socket_path=args.socket, addresses=args.address or None,
                   group=args.group, backend=args.backend, limits=limits)
        d.listen()
    except (MiniStackError, OSError, KeyError, ValueError) as e:
        print(f"ministack daemon: {e}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: d.close())
    print(f"ministack daemon: switch on {d.switch.nic} ({d.switch.backend}), MAC "
          f"{d.switch.mac}, addresses {', '.join(d.switch.addresses)}; serving "
          f"{args.socket}; each user but root may hold {limits.connections} connections, "
          f"{limits.ports} ports, {limits.bindings} bindings", flush=True)
    try:
        d.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        d.close()
    return 0


def _run_c_program(command: str, exe_name: str, rest: list[str], why: str) -> int:
    """exec one of the C programs installed with the package."""
    import os

    exe = os.path.join(os.path.dirname(__file__), exe_name)
    if not os.path.exists(exe):
        print(f"ministack {command}: {exe_name} was not built with this install ({why}); "
              f"run ./setup.sh", file=sys.stderr)
        return 1
    os.execv(exe, [exe, *rest])
    return 0  # not reached


def pktgen(args: argparse.Namespace) -> int:
    """Run ms-pktgen, the C traffic source/sink that attaches to a daemon's port."""
    return _run_c_program("pktgen", "ms-pktgen", args.rest, "a C compiler was missing")


def lwip_echo(args: argparse.Namespace) -> int:
    """Run lwIP (Debian's liblwip-dev) on a daemon's port, echoing TCP and UDP:
    ministack lwip-echo --socket SOCK --ip IP[/LEN] [--ip6 IP6] --tcp PORT --udp PORT
    [--port NAME]. It prints "ready" once it serves."""
    return _run_c_program("lwip-echo", "ms-lwip-echo", args.rest,
                          "liblwip-dev was missing at install")


def bench(args: argparse.Namespace) -> int:
    """Run the benchmark (same as python -m ministack.bench)."""
    from ministack import bench as b
    return b.main(args.rest)


def doctor(args: argparse.Namespace) -> int:
    """Say what works on this machine and what does not, with the command that fixes it."""
    from ministack import doctor as d
    return d.main(args.rest)


COURSE_ENV = "/opt/ministack-course"


def course(args: argparse.Namespace) -> int:
    """A class on one machine: `env` makes the students' environment, `serve` runs
    JupyterHub for local accounts on it (root; docs/teaching.md)."""
    from pathlib import Path

    from ministack import course as c

    try:
        if args.action == "env":
            c.make_env(Path(args.dir), args.python)
            c.check_env(Path(args.dir))
            print(f"MiniStack course: the students' environment is ready at {args.dir}")
            return 0
        return c.serve(Path(args.env), Path(args.state), args.ip, args.port, args.group)
    except c.CourseError as e:
        print(f"ministack course: {e}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    from ministack.daemon import Limits

    ap = argparse.ArgumentParser(
        prog="ministack",
        description="MiniStack: user-space network stacks on a shared NIC, with a filtering "
                    "software switch between the NIC and application ports.")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
    p = sub.add_parser("demo", help="run the poster demo (a peer namespace when root)",
                       description=demo.__doc__)
    p.add_argument("--virtual", action="store_true", help="use the virtual NIC even as root")
    p.add_argument("--stacks", action="store_true",
                   help="several stacks at once: lwIP, a TAP-style stack, the host kernel")
    p.add_argument("--kiosk", action="store_true",
                   help="serve the demo as a web page a visitor drives (Voilà)")
    p.add_argument("--port", type=int, default=8866, help="--kiosk: port (default 8866)")
    p.add_argument("--ip", default="127.0.0.1", help="--kiosk: address to listen on")
    p.set_defaults(func=demo)
    p = sub.add_parser("lab", help="start JupyterLab on the labs (prints the URL)",
                       description=lab.__doc__)
    p.add_argument("--port", type=int, default=8888, help="port (default 8888)")
    p.add_argument("--ip", default="127.0.0.1",
                   help="address to listen on (0.0.0.0 in a VM with a forwarded port)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--dir", help="open this folder as it is")
    p.add_argument("--solutions", action="store_true",
                   help="the instructor's versions, with solutions and hidden tests "
                        "(labs/source/)")
    p.set_defaults(func=lab)
    p = sub.add_parser("daemon", help="run the switch for applications in other processes",
                       description=daemon.__doc__)
    p.add_argument("--nic", default="virtual", help="interface, or 'virtual' (default)")
    p.add_argument("--socket", default="/run/ministack.sock", help="control socket path")
    p.add_argument("--address", action="append", metavar="IP",
                   help="an address of the virtual NIC (repeatable)")
    p.add_argument("--group", help="only members of this group may connect")
    p.add_argument("--backend", default="auto", choices=["auto", "afxdp", "afpacket", "vale"])
    dl = Limits()
    for what, default in (("connections", dl.connections), ("ports", dl.ports),
                          ("bindings", dl.bindings)):
        p.add_argument(f"--max-{what}-per-user", type=int, default=default, metavar="N",
                       help=f"{what} one user other than root may hold (default {default})")
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
    p = sub.add_parser("course", help="a class on one machine: JupyterHub for local users",
                       description=course.__doc__)
    csub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = csub.add_parser("env", help="make the students' environment (pip, needs a network)")
    q.add_argument("dir", nargs="?", default=COURSE_ENV,
                   help=f"where (default {COURSE_ENV}; outside any user's home)")
    q.add_argument("--python", default="/usr/bin/python3",
                   help="a Python every user can run (default /usr/bin/python3)")
    q = csub.add_parser("serve", help="run JupyterHub for the class (root)")
    q.add_argument("--env", default=COURSE_ENV, help="the students' environment")
    q.add_argument("--state", default="/var/lib/ministack-course",
                   help="the hub's database and secrets (default /var/lib/ministack-course)")
    q.add_argument("--ip", default="127.0.0.1",
                   help="address to listen on (0.0.0.0 for a class on a network)")
    q.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    q.add_argument("--group", help="only members of this Unix group may log in")
    p.set_defaults(func=course)
    from ministack.inspection import add_parsers

    add_parsers(sub)  # status, bindings, drops, explain, stats, capture: of a running daemon
    p = sub.add_parser("pktgen", help="C traffic source/sink on a daemon's port (-h)",
                       add_help=False, description=pktgen.__doc__)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=pktgen)
    p = sub.add_parser("lwip-echo", help="lwIP on a daemon's port, echoing TCP and UDP",
                       add_help=False, description=lwip_echo.__doc__)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=lwip_echo)
    p = sub.add_parser("bench", help="measure forwarding rates (see --help)", add_help=False,
                       description=bench.__doc__)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=bench)
    p = sub.add_parser("doctor", help="what works on this machine, and how to fix what does "
                       "not (--json)", add_help=False, description=doctor.__doc__)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=doctor)
    argv = sys.argv[1:] if argv is None else argv
    # These hand every argument, options included, to their own parsers.
    own = {"pktgen": pktgen, "lwip-echo": lwip_echo, "bench": bench, "doctor": doctor}
    if argv and argv[0] in own:
        return own[argv[0]](argparse.Namespace(rest=argv[1:]))
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
