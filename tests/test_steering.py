"""The kernel's half of a real NIC agrees with the switch. On AF_XDP an XDP program decides,
before the switch sees anything, which frames from the network are taken from the kernel;
every frame it takes must be one the switch delivers to a port (else it is lost to both),
and every frame it leaves to the kernel one the switch would not deliver (else the port
never gets it). Every frame of the filter and RX tests goes through the loaded program
(BPF_PROG_TEST_RUN, Switch.kernel_steers) and through explain("nic"). On AF_PACKET the
switch sees every frame and nftables rules drop the bound ones before the kernel stack:
each frame is sent from the peer namespace, and the rules must have dropped every frame
the switch delivered, and no frame the kernel could use. Needs root."""
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


@pytest.fixture
def afxdp(topo: ms.Topology) -> Iterator[ms.Switch]:
    with real_switch(topo.host_if, "afxdp") as sw:
        yield sw


def test_the_xdp_program_takes_exactly_what_the_switch_delivers(afxdp: ms.Switch) -> None:
    sw = afxdp
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
            wrong[name] = (f"XDP {'takes' if steers else 'passes'} it; switch: "
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


def test_the_nftables_rules_drop_exactly_what_the_switch_delivers(topo: ms.Topology) -> None:
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
                seen, before = sw.stats()["nic"]["rx"]["frames"], kernel.nft_dropped(
                    topo.host_if)
                peer.stdin.write(frame.hex() + "\n")
                peer.stdin.flush()
                assert peer.stdout.readline() == "sent\n"
                # The packet socket sees a frame before the ingress hook runs, in the same
                # pass: once the switch has it, the rules have had it too.
                deadline = time.monotonic() + 5
                while sw.stats()["nic"]["rx"]["frames"] == seen:
                    assert time.monotonic() < deadline, f"{name} never reached the switch"
                    time.sleep(0.002)
                took = kernel.nft_dropped(topo.host_if) > before
                dropped += took
                if took != delivers:
                    wrong[name] = (f"nftables {'drops' if took else 'keeps'} it; switch: "
                                   f"{v.action} {v.reason or ''} {v.to or ''}: {v.detail}")
        finally:
            peer.stdin.close()
            peer.wait(10)
        # nftables cannot check what parse.c checks (option lengths, L4 minimums, how many
        # extension headers): it drops frames for a bound tuple that the switch finds
        # malformed or unsupported. They are lost to both, as they would be anyway: the
        # kernel holds only a reservation on a bound tuple, and would answer them with
        # nothing but an error. Any other disagreement is a bug.
        lost = {k for k, w in wrong.items()
                if w.startswith("nftables drops") and "not plain IP a port can own" in w}
        rest = {k: w for k, w in wrong.items() if k not in lost}
        assert not rest, f"{len(rest)} disagree:\n" + "\n".join(f"{k}: {w}"
                                                              for k, w in rest.items())
        assert dropped >= len(test_rx.DELIVERED), dropped
