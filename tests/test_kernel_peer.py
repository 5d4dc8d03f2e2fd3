"""What a real stack on a port needs from the kernel on the other end of a veth, whose
offloads are left at their defaults (checksum offload, TSO, GSO): neighbours resolved by
the switch from the kernel's table, complete checksums, frames no larger than the port's
MTU, and fragments both ways. Both backends. Needs root; CI runs as root."""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

import ministack as ms

from conftest import peer_namespace, real_switch  # noqa: E402

pytestmark = pytest.mark.usefixtures("root")


@pytest.fixture
def topo() -> Iterator[ms.Topology]:
    with peer_namespace("k", 1) as t:
        yield t


@pytest.fixture(params=["afpacket", "afxdp"])
def sw(request: pytest.FixtureRequest, topo: ms.Topology) -> Iterator[ms.Switch]:
    with real_switch(topo.host_if, request.param) as s:
        yield s


def peer(topo: ms.Topology, code: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", topo.ns, sys.executable, "-c", code],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def offloads(topo: ms.Topology) -> str:
    return subprocess.run(["ip", "netns", "exec", topo.ns, "ethtool", "-k", topo.peer_if],
                          capture_output=True, text=True).stdout


def resolve(sw: ms.Switch, port: ms.Port, request: bytes) -> bytes:
    """Ask as a stack does, once a second as Linux and lwIP retry, until answered."""
    end = time.time() + 5
    while time.time() < end:
        port.send(request)
        reply = port.recv(timeout=1.0)
        if reply is not None:
            return reply
    raise AssertionError(f"no answer in 5 s: {sw.stats()['ports'][port.name]}")


def peer_mac(topo: ms.Topology) -> str:
    out = subprocess.run(["ip", "netns", "exec", topo.ns, "cat",
                          f"/sys/class/net/{topo.peer_if}/address"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_arp_and_neighbour_discovery_are_answered_from_the_kernels_table(
        sw: ms.Switch, topo: ms.Topology) -> None:
    host4, host6 = topo.host_ips
    peer4, peer6 = topo.peer_ips
    app = sw.port("app")
    app.bind(host4, "udp", 7000)
    app.bind(host6, "udp", 7000)
    pmac = peer_mac(topo)
    r = Ether(resolve(sw, app, bytes(Ether(src=sw.mac, dst="ff:ff:ff:ff:ff:ff") /
                                     ARP(hwsrc=sw.mac, psrc=host4, pdst=peer4))))
    assert r[ARP].op == 2 and r[ARP].hwsrc == pmac and r[ARP].psrc == peer4
    r = Ether(resolve(sw, app, bytes(Ether(src=sw.mac, dst="33:33:ff:00:00:01") /
                                     IPv6(src=host6, dst="ff02::1:ff00:1", hlim=255) /
                                     ICMPv6ND_NS(tgt=peer6) /
                                     ICMPv6NDOptSrcLLAddr(lladdr=sw.mac))))
    assert r[ICMPv6ND_NA].tgt == peer6 and r[ICMPv6ND_NA].lladdr == pmac
    s = app.stats()
    assert s["local"]["answers"] == 2 and sum(s["drops"].values()) == 0


def tcp_ok(frame: bytes) -> bool:
    pkt = Ether(frame)
    sent = pkt[TCP].chksum
    del pkt[TCP].chksum
    return Ether(bytes(pkt))[TCP].chksum == sent


def test_kernel_tcp_reaches_a_port_with_complete_checksums_and_within_the_mtu(
        sw: ms.Switch, topo: ms.Topology) -> None:
    """A minimal TCP responder on the port: it accepts the kernel's connection and takes
    the first flight of a bulk send, which the kernel (TSO/GSO on, checksum offload on)
    hands over as partial-checksum super-frames."""
    assert "tx-checksumming: on" in offloads(topo)
    host4, peer4 = topo.host_ips[0], topo.peer_ips[0]
    app = sw.port("app")
    app.bind(host4, "tcp", 8080)
    pmac = peer_mac(topo)
    client = peer(topo, f"""
import socket, time
s = socket.create_connection(({host4!r}, 8080), timeout=5)
s.sendall(b"m" * 200000)
time.sleep(2)
""")
    try:
        syn = None
        end = time.time() + 5
        while syn is None and time.time() < end:
            f = app.recv(timeout=0.5)
            if f and TCP in Ether(f) and Ether(f)[TCP].flags == "S":
                syn = f
        assert syn is not None, "no SYN reached the port"
        assert tcp_ok(syn), "the SYN's checksum is not complete"
        s = Ether(syn)
        app.send(bytes(Ether(src=sw.mac, dst=pmac) / IP(src=host4, dst=peer4) /
                       TCP(sport=8080, dport=s[TCP].sport, flags="SA", seq=1000,
                           ack=s[TCP].seq + 1, window=65535,
                           options=[("MSS", 1460), ("WScale", 7)])))
        data = []
        end = time.time() + 3
        while time.time() < end and sum(len(Ether(f)[TCP].payload) for f in data) < 14000:
            for f in app.recv_batch(64, timeout=0.2):
                if TCP in Ether(f) and len(Ether(f)[TCP].payload):
                    data.append(f)
        assert data, "no data segment reached the port"
        assert all(len(f) <= 1514 for f in data), [len(f) for f in data]
        assert all(tcp_ok(f) for f in data), "a data segment's checksum is not complete"
        nic = sw.stats()["nic"]["offload"]
        assert nic["checksums-completed"] + nic["super-frames-cut"] > 0, nic
        if sw.backend == "afpacket":  # XDP on a veth turns the peer's GSO off; AF_PACKET not
            assert nic["super-frames-cut"] > 0, nic
    finally:
        client.kill()
        client.wait()


def test_fragmented_datagrams_cross_both_ways(sw: ms.Switch, topo: ms.Topology) -> None:
    host4, peer4 = topo.host_ips[0], topo.peer_ips[0]
    app = sw.port("app")
    app.bind(host4, "udp", 9000)
    pmac = peer_mac(topo)
    server = peer(topo, f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(({peer4!r}, 9001))
s.settimeout(5)
print("ready", flush=True)
data, addr = s.recvfrom(65535)
print(len(data), set(data), flush=True)
s.sendto(b"r" * 4000, ({host4!r}, 9000))
""")
    try:
        assert server.stdout.readline().strip() == "ready"
        pkt = IP(src=host4, dst=peer4, id=555) / UDP(sport=9000, dport=9001) / (b"q" * 4000)
        app.send_batch([bytes(Ether(src=sw.mac, dst=pmac) / f) for f in fragment(pkt, 1480)])
        assert server.stdout.readline().split()[0] == "4000"
        got = []
        end = time.time() + 5
        while time.time() < end and sum(len(f) for f in got) < 4000:
            got += app.recv_batch(8, timeout=0.5)
        assert len(got) == 3, [Ether(f).summary() for f in got]
        assert all(Ether(f)[IP].id == Ether(got[0])[IP].id for f in got)
        assert sw.stats()["nic"]["fragments"]["followed"] >= 4
        assert app.stats()["drops"]["fragment"] == 0
    finally:
        server.kill()
        server.wait()
