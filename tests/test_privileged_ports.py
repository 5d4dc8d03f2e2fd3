"""No user takes a port Linux would refuse them: below net.ipv4.ip_unprivileged_port_start,
TCP, UDP, SCTP, DCCP and UDP-Lite need root or CAP_NET_BIND_SERVICE, judged on the process
that asks (the daemon's client, through SO_PEERCRED; in process, the caller), never on the
root daemon that does the binding."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

import ministack as ms
from conftest import NOBODY, as_user, serving

CAP_NET_BIND_SERVICE = 10
SERVICE = [("udp", 53), ("tcp", 80), ("tcp", 1023), ("sctp", 1), ("dccp", 100),
           ("udplite", 5)]
#: Not subject to the rule: the first free port, the echo identifier, a port-less protocol.
FREE = [("tcp", 1024), ("icmp", 7), (47, 0)]

pytestmark = pytest.mark.usefixtures("root")  # to be someone else, one must be root first


def try_binds(sw: object, tuples: list[tuple[object, int]], ips: tuple[str, ...] = (
        "10.0.0.2", "fd00::2")) -> dict[str, str]:
    """Bind each tuple on a fresh port; "ok" or "reason: message" for each."""
    out = {}
    p = sw.port(f"p{os.getpid()}")  # type: ignore[attr-defined]
    for ip in ips:
        for proto, port in tuples:
            if proto == "icmp" and ":" in ip:
                proto = "icmpv6"
            try:
                p.bind(ip, proto, port)
                out[f"{proto} {ip}:{port}"] = "ok"
            except ms.BindError as e:
                out[f"{proto} {ip}:{port}"] = f"{e.reason}: {e}"
    return out


def test_through_the_daemon_nobody_gets_no_service_port() -> None:
    with serving(nic="virtual") as dm:
        got = as_user(NOBODY, lambda: try_binds(ms.connect(dm.socket_path), SERVICE + FREE))
        assert "ok" in got, got
        for what, result in got["ok"].items():
            if any(what.startswith(f"{p} ") and what.endswith(f":{n}") for p, n in SERVICE):
                assert result.startswith("not-permitted: "), (what, result)
                assert "net.ipv4.ip_unprivileged_port_start" in result
                assert "user nobody" in result and "CAP_NET_BIND_SERVICE" in result
            else:
                assert result == "ok", (what, result)
        assert not [b for b in dm.switch.bindings() if b.local_port < 1024 and
                    b.protocol in {p for p, _n in SERVICE}]


def test_the_capability_is_enough_and_root_without_it_is_refused() -> None:
    """As Linux judges bind(): by CAP_NET_BIND_SERVICE, not by uid."""
    with serving(nic="virtual") as dm:
        with_cap = as_user(NOBODY, lambda: try_binds(ms.connect(dm.socket_path), [("udp", 53)],
                                                     ("10.0.0.2",)),
                           caps=(CAP_NET_BIND_SERVICE,))
        assert with_cap == {"ok": {"udp 10.0.0.2:53": "ok"}}, with_cap
        root_without = as_user(0, lambda: try_binds(ms.connect(dm.socket_path), [("tcp", 80)],
                                                    ("10.0.0.2",)), caps=())
        assert root_without["ok"]["tcp 10.0.0.2:80"].startswith("not-permitted: "), root_without
        assert "user root" in root_without["ok"]["tcp 10.0.0.2:80"]


def test_the_order_of_refusals_is_linuxs() -> None:
    """bind(2) checks the address (EADDRNOTAVAIL), then the privilege (EACCES), then whether
    the port is taken (EADDRINUSE)."""
    with serving(nic="virtual") as dm:
        with ms.connect(dm.socket_path) as boss:  # root
            boss.port("boss").bind("10.0.0.2", "udp", 53)

            def nobody() -> dict[str, str | None]:
                p = ms.connect(dm.socket_path).port("nobody")
                out: dict[str, str | None] = {}
                for what, args in (("foreign", ("10.0.0.9", "udp", 53)),
                                   ("taken", ("10.0.0.2", "udp", 53)),
                                   ("bad-port", ("10.0.0.2", "tcp", 0))):
                    try:
                        p.bind(*args)
                        out[what] = None
                    except ms.BindError as e:
                        out[what] = e.reason
                return out

            got = as_user(NOBODY, nobody)
        assert got == {"ok": {"foreign": "address-not-local", "taken": "not-permitted",
                              "bad-port": "bad-port"}}, got


def test_in_process_the_calling_process_is_judged() -> None:
    def nobody() -> dict[str, str]:
        with ms.Switch(nic="virtual") as sw:
            return try_binds(sw, SERVICE + FREE, ("10.0.0.2",))

    got = as_user(NOBODY, nobody)
    assert "ok" in got, got
    assert got["ok"]["udp 10.0.0.2:53"].startswith("not-permitted: ")
    assert got["ok"]["sctp 10.0.0.2:1"].startswith("not-permitted: ")
    assert got["ok"]["tcp 10.0.0.2:1024"] == "ok" and got["ok"]["icmp 10.0.0.2:7"] == "ok"
    with ms.Switch(nic="virtual") as sw:  # root here
        assert try_binds(sw, SERVICE, ("10.0.0.2",)) == {
            f"{p} 10.0.0.2:{n}": "ok" for p, n in SERVICE}


DAEMON_IN_NETNS = """
sysctl -qw net.ipv4.ip_unprivileged_port_start=100 && exec "$@"
"""


def test_the_sysctl_of_the_daemons_namespace_decides() -> None:
    """A namespace whose ip_unprivileged_port_start is 100: 100 is free there, 99 is not."""
    d = tempfile.mkdtemp(prefix="ministack-test-", dir="/tmp")
    os.chmod(d, 0o755)
    path = os.path.join(d, "ms.sock")
    p = subprocess.Popen(["unshare", "--net", "sh", "-c", DAEMON_IN_NETNS, "sh",
                          sys.executable, "-m", "ministack", "daemon", "--socket", path],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and "serving" in p.stdout.readline(), p.stderr
        got = as_user(NOBODY, lambda: try_binds(ms.connect(path), [("udp", 99), ("udp", 100)],
                                                ("10.0.0.2",)))
        assert got["ok"]["udp 10.0.0.2:100"] == "ok", got
        refused = got["ok"]["udp 10.0.0.2:99"]
        assert refused.startswith("not-permitted: ") and "ports below 100" in refused, refused
    finally:
        p.terminate()
        p.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def test_on_a_real_interface_no_kernel_socket_is_lent(tmp_path: object) -> None:
    """A root daemon on a veth holds each binding with a kernel socket of its own: nobody's
    refused bind leaves the port free in the kernel, root's takes it."""
    n = 100 + os.getpid() % 100
    topo = ms.Topology(ns=f"ms-pp{os.getpid()}", host_if=f"mspp{os.getpid() % 10000}h",
                       peer_if=f"mspp{os.getpid() % 10000}p", host_addrs=[f"10.{n}.1.2/24"],
                       peer_addrs=[f"10.{n}.1.1/24"])
    with topo, serving(nic=topo.host_if, backend="afpacket") as dm:
        ip = topo.host_ips[0]
        got = as_user(NOBODY, lambda: try_binds(ms.connect(dm.socket_path), [("tcp", 80)], (ip,)))
        assert got["ok"][f"tcp {ip}:80"].startswith("not-permitted: "), got

        def kernel_can_bind() -> bool:
            with socket.socket() as s:
                try:
                    s.bind((ip, 80))
                    return True
                except OSError:
                    return False

        assert kernel_can_bind(), "a refused binding still holds the port in the kernel"
        with ms.connect(dm.socket_path) as c:
            c.port("root").bind(ip, "tcp", 80)
            assert not kernel_can_bind(), "root's binding is not held in the kernel"
