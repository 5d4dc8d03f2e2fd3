"""A switch on a real interface (a veth pair into a peer namespace the test creates), with
real kernel stacks on the other side. Needs root; CI runs as root."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

import ministack as ms
from ministack import kernel

from conftest import need, real_switch  # noqa: E402

pytestmark = pytest.mark.usefixtures("root")

BACKENDS = ["afpacket", "afxdp"]


def subnet() -> int:
    """A /24 and /64 of our own per test run, so that nothing else on the machine routes
    the same prefix."""
    return 100 + os.getpid() % 100


@pytest.fixture
def topo() -> Iterator[ms.Topology]:
    n = subnet()
    t = ms.Topology(ns=f"ms-t{os.getpid()}", host_if=f"ms{os.getpid()}h",
                    peer_if=f"ms{os.getpid()}p",
                    host_addrs=[f"10.{n}.0.2/24", f"fd00:{n}::2/64"],
                    peer_addrs=[f"10.{n}.0.1/24", f"fd00:{n}::1/64"])
    with t:
        yield t
    assert t.host_if not in os.listdir("/sys/class/net")


@pytest.fixture(params=BACKENDS)
def sw(request: pytest.FixtureRequest, topo: ms.Topology) -> Iterator[ms.Switch]:
    with real_switch(topo.host_if, request.param) as s:
        yield s
    # Detached: no XDP program, no tc ingress filter left on the interface.
    link = subprocess.run(["ip", "link", "show", topo.host_if], capture_output=True,
                          text=True).stdout
    assert "xdp" not in link
    assert not kernel.tc_ingress_filters(topo.host_if)


def peer_python(topo: ms.Topology, code: str) -> subprocess.Popen:
    """Run Python code in the peer namespace, in the background; its stdout is the
    result."""
    return subprocess.Popen(["ip", "netns", "exec", topo.ns, sys.executable, "-c", code],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


CAPTURE = """
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(({ifname!r}, 0))
s.settimeout(0.05)
print("ready", flush=True)
end = time.time() + {seconds}
while time.time() < end:
    try:
        f, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] != socket.PACKET_OUTGOING:
        print(f.hex(), flush=True)
"""


def capture(topo: ms.Topology, seconds: float) -> subprocess.Popen:
    """Frames arriving at the peer's interface, one hex line each, for `seconds`."""
    p = peer_python(topo, CAPTURE.format(ifname=topo.peer_if, seconds=seconds))
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def captured(p: subprocess.Popen) -> list[bytes]:
    out, err = p.communicate(timeout=30)
    return [bytes.fromhex(line) for line in out.split()]


def test_identity_comes_from_the_interface(sw: ms.Switch, topo: ms.Topology) -> None:
    mac = open(f"/sys/class/net/{topo.host_if}/address").read().strip()
    assert sw.mac == mac
    assert sorted(sw.addresses) == sorted(topo.host_ips)
    with pytest.raises(ms.BindError) as e:
        sw.port("a").bind("10.0.0.99", "udp", 5000)
    assert e.value.reason == "address-not-local"


@pytest.mark.parametrize("family", [4, 6])
def test_udp_peer_reaches_port_and_gets_the_reply(sw: ms.Switch, topo: ms.Topology,
                                                 family: int) -> None:
    host, peer = topo.host_ips[family == 6], topo.peer_ips[family == 6]
    a = sw.port("a")
    a.bind(host, "udp", 5000)
    af = "AF_INET" if family == 4 else "AF_INET6"
    p = peer_python(topo, f"""
import socket
s = socket.socket(socket.{af}, socket.SOCK_DGRAM)
s.bind(({peer!r}, 7000))
s.settimeout(5)
s.sendto(b"ping", ({host!r}, 5000))
print(s.recvfrom(100)[0].decode())
""")
    f = a.recv(timeout=5)
    assert f is not None, "the peer's datagram did not reach the port"
    pkt = Ether(f)
    assert bytes(pkt[UDP].payload) == b"ping" and pkt[UDP].dport == 5000
    peer_mac = sw.resolve(peer, timeout=2)
    assert peer_mac == pkt.src
    l3 = IP(src=host, dst=peer) if family == 4 else IPv6(src=host, dst=peer)
    a.send(Ether(src=sw.mac, dst=peer_mac) / l3 / UDP(sport=5000, dport=7000) / b"pong")
    out, err = p.communicate(timeout=10)
    assert out.strip() == "pong", err
    assert sw.stats()["ports"]["a"]["rx"]["frames"] >= 1


def test_peer_still_pings_the_host_stack(sw: ms.Switch, topo: ms.Topology) -> None:
    a = sw.port("a")
    a.bind(topo.host_ips[0], "udp", 5000)
    a.bind(topo.host_ips[1], "tcp", 80)
    for ip in topo.host_ips:
        r = topo.exec("ping", "-c", "2", "-W", "2", ip)
        assert r.returncode == 0, r.stdout + r.stderr
    assert sw.stats()["nic"]["to-host"]["frames"] >= 2


@pytest.mark.parametrize("family", [4, 6])
def test_tcp_syn_reaches_port_and_kernel_sends_no_rst(sw: ms.Switch, topo: ms.Topology,
                                                      family: int) -> None:
    host = topo.host_ips[family == 6]
    a = sw.port("a")
    a.bind(host, "tcp", 8080)
    cap = capture(topo, 3.0)
    af = "AF_INET" if family == 4 else "AF_INET6"
    conn = peer_python(topo, f"""
import socket
s = socket.socket(socket.{af}); s.settimeout(1)
try:
    s.connect(({host!r}, 8080)); print("connected")
except Exception as e:
    print(type(e).__name__)
""")
    f = a.recv(timeout=5)
    assert f is not None and Ether(f)[TCP].flags == "S", "the SYN did not reach the port"
    conn.communicate(timeout=10)
    frames = [Ether(x) for x in captured(cap)]
    rsts = [x for x in frames if TCP in x and x[TCP].flags & 0x04]
    assert not rsts, f"the host kernel answered a bound flow: {[x.summary() for x in rsts]}"


@pytest.mark.parametrize("family", [4, 6])
def test_spoofed_frames_never_reach_the_peer(sw: ms.Switch, topo: ms.Topology,
                                            family: int) -> None:
    host, peer = topo.host_ips[family == 6], topo.peer_ips[family == 6]
    a = sw.port("a")
    a.bind(host, "udp", 5000)
    peer_mac = sw.resolve(peer, timeout=2)
    assert peer_mac
    l3 = IP if family == 4 else IPv6
    good = Ether(src=sw.mac, dst=peer_mac) / l3(src=host, dst=peer) / UDP(sport=5000,
                                                                       dport=9) / b"good"
    bad_ip = Ether(src=sw.mac, dst=peer_mac) / l3(src=peer, dst=peer) / UDP(sport=5000,
                                                                         dport=9) / b"bad1"
    bad_port = Ether(src=sw.mac, dst=peer_mac) / l3(src=host, dst=peer) / UDP(sport=5001,
                                                                           dport=9) / b"bad2"
    bad_mac = Ether(src="02:66:66:66:66:66", dst=peer_mac) / l3(src=host, dst=peer) / \
        UDP(sport=5000, dport=9) / b"bad3"
    cap = capture(topo, 1.5)
    for f in (bad_ip, bad_port, bad_mac, good):
        a.send(f)
    payloads = [bytes(Ether(x)[UDP].payload) for x in captured(cap) if UDP in Ether(x)]
    assert b"good" in payloads
    assert not {b"bad1", b"bad2", b"bad3"} & set(payloads), payloads
    drops = sw.stats()["ports"]["a"]["drops"]
    assert (drops["spoofed-src-ip"], drops["spoofed-src-port"], drops["spoofed-src-mac"]) == \
        (1, 1, 1)


def test_kernel_socket_makes_a_tuple_in_use_and_unbind_releases(sw: ms.Switch,
                                                               topo: ms.Topology) -> None:
    import socket

    host = topo.host_ips[0]
    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held.bind((host, 6000))
    a = sw.port("a")
    with pytest.raises(ms.BindError) as e:
        a.bind(host, "udp", 6000)
    assert e.value.reason == "in-use" and "kernel socket" in str(e.value)
    held.close()
    b = a.bind(host, "udp", 6000)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(OSError):  # the port's reservation holds it against the kernel
        probe.bind((host, 6000))
    a.unbind(b)
    probe.bind((host, 6000))
    probe.close()


def test_topo_command_up_show_down() -> None:
    n = subnet() + 1
    args = ["--ns", f"ms-c{os.getpid()}", "--host-if", f"mc{os.getpid()}h", "--peer-if",
            f"mc{os.getpid()}p", "--host-addr", f"10.{n}.0.2/24", "--peer-addr",
            f"10.{n}.0.1/24"]
    cmd = [sys.executable, "-m", "ministack", "topo"]
    try:
        up = subprocess.run(cmd + ["up"] + args, capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
        assert f"10.{n}.0.2/24" in up.stdout
        show = subprocess.run(cmd + ["show"] + args, capture_output=True, text=True)
        assert f"10.{n}.0.1/24" in show.stdout
        again = subprocess.run(cmd + ["up"] + args, capture_output=True, text=True)
        assert again.returncode == 1 and "exists already" in again.stderr
    finally:
        down = subprocess.run(cmd + ["down"] + args, capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert f"mc{os.getpid()}h" not in os.listdir("/sys/class/net")


def test_topology_is_removed_after_an_exception() -> None:
    n = subnet() + 2
    t = ms.Topology(ns=f"ms-e{os.getpid()}", host_if=f"me{os.getpid()}h",
                    peer_if=f"me{os.getpid()}p", host_addrs=[f"10.{n}.0.2/24"],
                    peer_addrs=[f"10.{n}.0.1/24"])
    with pytest.raises(RuntimeError):
        with t:
            assert t.host_if in os.listdir("/sys/class/net")
            raise RuntimeError("boom")
    assert t.host_if not in os.listdir("/sys/class/net")
    assert t.ns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                      text=True).stdout


def test_auto_prefers_afxdp_and_says_why_it_falls_back(topo: ms.Topology,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    with ms.Switch(nic=topo.host_if) as sw:
        if sw.backend == "afxdp":
            assert sw.xdp_mode in ("native", "generic")
            assert sw.fallback_reason is None
        else:  # this build or machine has no AF_XDP: the reason is recorded
            assert sw.fallback_reason
    # An XDP mode that does not exist fails AF_XDP only (AF_PACKET needs the same steering
    # program, at tc ingress).
    monkeypatch.setenv("MINISTACK_XDP_MODE", "none")
    caplog.set_level("INFO", logger="ministack")
    with ms.Switch(nic=topo.host_if) as sw:
        assert sw.backend == "afpacket" and sw.xdp_mode is None
        assert sw.fallback_reason
        assert any("using AF_PACKET" in r.getMessage() for r in caplog.records)


def test_close_releases_reservations(topo: ms.Topology) -> None:
    import socket

    host = topo.host_ips[0]
    sw = ms.Switch(nic=topo.host_if)
    a = sw.port("a")
    a.bind(host, "udp", 6100)
    sw.port("b").bind(host, "tcp", 6101)
    a.close()  # a port's close releases its tuples...
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((host, 6100))
    probe.close()
    sw.close()  # ...and the switch's close everything else
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind((host, 6101))
    probe.close()


def installed_clangs() -> dict[str, int]:
    """clang and every clang-N on this machine, with their major versions."""
    import glob
    import re
    import shutil

    found: dict[str, int] = {}
    names = [shutil.which("clang") or "", *sorted(glob.glob("/usr/bin/clang-[0-9]*"))]
    for path in names:
        if not re.fullmatch(r".*/clang(-\d+)?", path):
            continue
        v = subprocess.run([path, "-dumpversion"], capture_output=True, text=True).stdout
        if v.strip() and int(v.split(".")[0]) not in found.values():
            found[path] = int(v.split(".")[0])
    return found


def test_the_steering_program_loads_and_steers_with_every_installed_clang(
        topo: ms.Topology, tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """The verifier accepts what clang emits only as long as every packet read follows a
    bounds check clang kept; newer clangs drop checks they can prove redundant. Each
    installed clang's build must attach, as XDP and at tc ingress, and deliver a peer's
    datagram to a port."""
    from pathlib import Path

    from ministack import _build

    clangs = installed_clangs()
    if os.environ.get("CI"):  # setup.sh installs a newer clang next to Debian 12's 14
        assert max(clangs.values(), default=0) >= 18, f"only {clangs} here"
    failed = {}
    for (clang, version), backend in itertools.product(clangs.items(), BACKENDS):
        obj = Path(str(tmp_path)) / f"xdp-{version}.o"
        if not obj.exists():
            _build.compile_steering_program(obj, clang)
        monkeypatch.setenv("MINISTACK_STEER_OBJ", str(obj))
        try:
            with ms.Switch(nic=topo.host_if, backend=backend) as sw:
                a = sw.port("a")
                a.bind(topo.host_ips[0], "udp", 5000)
                p = peer_python(topo, f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"hi", ({topo.host_ips[0]!r}, 5000))
""")
                p.communicate(timeout=10)
                if a.recv(timeout=5) is None:
                    failed[clang, backend] = ("attached, but the peer's datagram did not "
                                              "reach the port")
                elif not sw.stats()["nic"]["kept-from-host"]["frames"]:
                    failed[clang, backend] = "the datagram was not kept from the host stack"
        except ms.MiniStackError as e:
            need("not available" not in str(e),
                 f"the AF_XDP backend (libxdp-dev, which ./setup.sh installs): {e}")
            failed[clang, backend] = str(e)[:300]
    assert not failed, failed
