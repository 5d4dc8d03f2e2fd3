"""The kernel's half of a real NIC agrees with the switch. On AF_XDP an XDP program decides,
before the switch sees anything, which frames from the network are taken from the kernel;
every frame it takes must be one the switch delivers to a port (else it is lost to both),
and every frame it leaves to the kernel one the switch would not deliver (else the port
never gets it). Every frame of the filter and RX tests goes through the loaded program
(BPF_PROG_TEST_RUN, Switch.kernel_steers) and through explain("nic"). Needs root."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import ministack as ms

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
def afxdp() -> Iterator[ms.Switch]:
    n = os.getpid()
    # The tests' own addresses, on a veth of our own into a namespace of our own.
    topo = ms.Topology(ns=f"ms-s{n}", host_if=f"ms{n}s", peer_if=f"ms{n}q",
                       host_addrs=[f"{a}/{24 if '.' in a else 64}"
                                   for a in (IP4, IP4_B, REMOTE4, IP6, IP6_B, REMOTE6)],
                       peer_addrs=["10.0.0.99/24", "fd00::99/64"])
    with topo, real_switch(topo.host_if, "afxdp") as sw:
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
