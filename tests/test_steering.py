"""The kernel's half of a real NIC agrees with the switch. One steering program, in two
forms, decides which frames from the network are taken from the host stack: on AF_XDP
the XDP program, before the switch sees anything; on AF_PACKET the same rules at tc
ingress, after the switch's packet socket has its copy. Every frame it takes must be one
the switch delivers to a port (else it is lost to both, or on AF_PACKET the kernel never
hears of a frame it could use), and every frame it leaves to the kernel one the switch
would not deliver (else the port never gets it, or the kernel answers a port's flow).
Every frame of the filter and RX tests goes through the loaded program
(BPF_PROG_TEST_RUN, Switch.kernel_steers) and through explain("nic"), on both backends;
on AF_PACKET each is also sent from the peer namespace, through the attached hook. Needs
root."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import ministack as ms
from ministack import kernel

import test_filter
import test_neighbours
import test_rx
from conftest import (ECHO_ID, IP4, IP4_B, IP6, IP6_B, PORTLESS4, PORTLESS6,
                      REMOTE4, REMOTE6, bind_app, real_switch)

pytestmark = pytest.mark.usefixtures("root")


def corpus() -> dict[str, bytes]:
    """Every frame of the filter, neighbour and RX tests, by test name. The filter's are a
    port's frames to REMOTE4/REMOTE6 port 53: arriving from the network they are for a
    port that bound that tuple (see bound()), so their headers decide."""
    frames: dict[str, bytes] = {}
    for module in (test_filter, test_neighbours, test_rx):
        for table, rows in vars(module).items():
            if table.isupper() and isinstance(rows, dict):
                frames.update({f"{module.__name__}.{table}.{k}": v for k, v in rows.items()
                               if isinstance(v, bytes)})
    # Later fragments first: running a first fragment through the program makes it
    # remember that datagram, which explain() (which changes nothing) would not.
    return dict(sorted(frames.items(), key=lambda kv: not later_fragment(kv[1])))


def later_fragment(frame: bytes) -> bool:
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6ExtHdrFragment
    from scapy.layers.l2 import Ether

    try:
        pkt = Ether(frame)
    except Exception:  # noqa: BLE001 - too short for scapy: no fragment either
        return False
    return bool((IP in pkt and pkt[IP].frag) or
                (IPv6ExtHdrFragment in pkt and pkt[IPv6ExtHdrFragment].offset))


def bound(sw: ms.Switch) -> None:
    """The RX tests' port (bind_app on IP4 and IP6), and one that bound what the filter
    tests' frames are sent to."""
    bind_app(sw.port("app"))
    far = sw.port("far")
    for ip in (REMOTE4, REMOTE6):
        for proto in ("udp", "tcp", "sctp", "dccp", "udplite"):
            far.bind(ip, proto, 53)
        far.bind(ip, "icmpv6" if ":" in ip else "icmp", ECHO_ID)
        far.bind(ip, PORTLESS6 if ":" in ip else PORTLESS4, 0)


@pytest.fixture
def topo() -> Iterator[ms.Topology]:
    n = os.getpid()
    # The tests' own addresses, on a veth of our own into a namespace of our own.
    t = ms.Topology(ns=f"ms-s{n}", host_if=f"ms{n}s", peer_if=f"ms{n}q",
                    host_addrs=[f"{a}/{24 if '.' in a else 64}"
                                for a in (IP4, IP4_B, REMOTE4, IP6, IP6_B, REMOTE6)],
                    peer_addrs=["10.0.0.99/24", "fd00::99/64"])
    with t:
        yield t


@pytest.fixture(params=["afxdp", "afpacket"])
def steered(request: pytest.FixtureRequest, topo: ms.Topology) -> Iterator[ms.Switch]:
    with real_switch(topo.host_if, request.param) as sw:
        yield sw


def test_the_steering_program_takes_exactly_what_the_switch_delivers(
        steered: ms.Switch) -> None:
    sw = steered
    bound(sw)
    frames = corpus()
    assert len(frames) > 150, len(frames)
    wrong, taken = {}, 0
    for name, frame in frames.items():
        v = sw.explain("nic", frame)
        delivers = v.action == "forward" and v.to not in (None, "host")
        steers = sw.kernel_steers(frame)
        taken += bool(steers)
        if steers != delivers:
            wrong[name] = (f"{sw.backend}: the program {'takes' if steers else 'passes'} "
                           f"it; switch: "
                           f"{v.action} {v.reason or ''} {v.to or ''}: {v.detail}")
    assert not wrong, f"{len(wrong)} disagree:\n" + "\n".join(f"{k}: {w}"
                                                            for k, w in wrong.items())
    assert taken >= len(test_rx.DELIVERED), taken


def datagrams_in_fragments() -> list[tuple[str, bytes]]:
    """A UDP datagram to the RX tests' port in three fragments, over IPv4 and IPv6: the
    later ones follow the first (once the switch has let the first through)."""
    from scapy.layers.inet import IP, UDP, fragment
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    from conftest import APP_PORT, NIC_MAC, PEER_MAC

    eth = Ether(src=PEER_MAC, dst=NIC_MAC)
    v4 = fragment(IP(src=REMOTE4, dst=IP4, id=4242) / UDP(sport=53, dport=APP_PORT) /
                  Raw(b"x" * 120), fragsize=48)
    v6 = fragment6(IPv6(src=REMOTE6, dst=IP6) / IPv6ExtHdrFragment(id=4242) /
                   UDP(sport=53, dport=APP_PORT) / Raw(b"y" * 200), 120)
    return [(f"fragmented-ipv{n}-{i}", bytes(eth / f))
            for n, frags in ((4, v4), (6, v6)) for i, f in enumerate(frags)]


INJECT = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(({ifname!r}, 0))
print("ready", flush=True)
for line in sys.stdin:
    s.send(bytes.fromhex(line))
    print("sent", flush=True)
"""


def test_the_ingress_hook_drops_exactly_what_the_switch_delivers(topo: ms.Topology) -> None:
    """The program attached at tc ingress, on frames that really arrive: the switch's
    count of frames kept from the host stack grows for exactly those it delivers."""
    with real_switch(topo.host_if, "afpacket") as sw:
        bound(sw)
        peer = subprocess.Popen(["ip", "netns", "exec", topo.ns, sys.executable, "-c",
                                 INJECT.format(ifname=topo.peer_if)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        assert peer.stdout is not None and peer.stdin is not None
        assert peer.stdout.readline() == "ready\n"
        wrong, dropped = {}, 0
        try:
            for name, frame in [*corpus().items(), *datagrams_in_fragments()]:
                if len(frame) < 14 or len(frame) > 1514:
                    continue  # no Ethernet interface carries it
                v = sw.explain("nic", frame)
                delivers = v.action == "forward" and v.to not in (None, "host")
                seen, before = sw.stats()["nic"]["rx"]["frames"], kept(sw)
                peer.stdin.write(frame.hex() + "\n")
                peer.stdin.flush()
                assert peer.stdout.readline() == "sent\n"
                # The packet socket sees a frame before the ingress hook runs, in the same
                # pass: once the switch has it, the rules have had it too.
                deadline = time.monotonic() + 5
                while sw.stats()["nic"]["rx"]["frames"] == seen:
                    assert time.monotonic() < deadline, f"{name} never reached the switch"
                    time.sleep(0.002)
                took = kept(sw) > before
                dropped += took
                if took != delivers:
                    wrong[name] = (f"the hook {'drops' if took else 'keeps'} it; switch: "
                                   f"{v.action} {v.reason or ''} {v.to or ''}: {v.detail}")
        finally:
            peer.stdin.close()
            peer.wait(10)
        assert not wrong, f"{len(wrong)} disagree:\n" + "\n".join(f"{k}: {w}"
                                                                for k, w in wrong.items())
        assert dropped >= len(test_rx.DELIVERED), dropped
    assert not kernel.tc_ingress_filters(topo.host_if), "the program outlived its switch"


def kept(sw: ms.Switch) -> int:
    return sw.stats()["nic"]["kept-from-host"]["frames"]
