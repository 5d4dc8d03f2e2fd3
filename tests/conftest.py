"""Shared fixtures, frame builders and outcome checks for the MiniStack tests.

Frames are built with scapy and handed to the switch as bytes, so every test states the
exact bytes it sends. Outcomes are always observed through the real switch: what reached
the wire (``sw.wire.capture()``, which first waits until the switch handled every queued
frame), what a port received, ``sw.stats()``, ``sw.drops()`` and ``sw.explain()``.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

import ministack as ms

# --- addresses -------------------------------------------------------------------------

NIC_MAC = "02:4d:53:00:00:02"   # the switch's MAC: the only source MAC ports may use
PEER_MAC = "02:00:00:00:00:01"  # a neighbour on the wire
OTHER_MAC = "02:00:00:00:00:99"  # a MAC that belongs to nobody here

IP4 = "10.0.0.2"     # local, bound by the `app` fixture
IP4_B = "10.0.0.5"   # local, bound by nobody
IP6 = "fd00::2"
IP6_B = "fd00::5"
REMOTE4 = "10.0.0.1"
REMOTE6 = "fd00::1"
FOREIGN4 = "10.0.0.9"  # not an address of the switch
FOREIGN6 = "fd00::9"

ADDRESSES = [IP4, IP4_B, IP6, IP6_B]

#: (protocol, port) pairs the `app` fixture binds on both IP4 and IP6.
APP_PORT = 5000
ECHO_ID = 7
PORTLESS4 = 253  # an experimental protocol number, port-less (IPv4)
PORTLESS6 = 47   # GRE: port-less, and not an IPv6 extension header number

# --- frame builders --------------------------------------------------------------------


def eth(src: str = NIC_MAC, dst: str = PEER_MAC, **kw: Any) -> Packet:
    """An Ethernet header; the source defaults to the switch's MAC."""
    return Ether(src=src, dst=dst, **kw)


def v4(l4: Packet | bytes | None = None, *, src: str = IP4, dst: str = REMOTE4,
       mac: str = NIC_MAC, dst_mac: str = PEER_MAC, **ip: Any) -> Packet:
    """Ether / IPv4 / l4."""
    pkt = eth(mac, dst_mac) / IP(src=src, dst=dst, **ip)
    if l4 is not None:
        pkt = pkt / (Raw(l4) if isinstance(l4, bytes) else l4)
    return pkt


def v6(l4: Packet | bytes | None = None, *, src: str = IP6, dst: str = REMOTE6,
       mac: str = NIC_MAC, dst_mac: str = PEER_MAC, **ip: Any) -> Packet:
    """Ether / IPv6 / l4 (l4 may start with extension headers)."""
    pkt = eth(mac, dst_mac) / IPv6(src=src, dst=dst, **ip)
    if l4 is not None:
        pkt = pkt / (Raw(l4) if isinstance(l4, bytes) else l4)
    return pkt


def padded(pkt: Packet, size: int) -> bytes:
    """``pkt`` with a payload of zeros appended so that the frame is exactly ``size`` bytes
    (IP lengths and checksums are computed over the padding, so the frame stays valid)."""
    n = size - len(bytes(pkt))
    assert n >= 0, f"{pkt.summary()} is already longer than {size} bytes"
    return bytes(pkt / Raw(b"\x00" * n))


def dccp(sport: int, dport: int, extended: bool = True) -> bytes:
    """A DCCP header (RFC 4340): 16 bytes with X=1, 12 bytes with X=0; data offset covers it."""
    if extended:
        # ports, data offset 4 words, CCVal/CsCov, checksum, Res|Type=Request(0)|X=1,
        # reserved, 48-bit sequence number
        return struct.pack("!HHBBHBB6s", sport, dport, 4, 0, 0, 0x01, 0, b"\x00" * 5 + b"\x01")
    return struct.pack("!HHBBHB3s", sport, dport, 3, 0, 0, 0x00, b"\x00\x00\x01")


def udp4(sport: int = APP_PORT, dport: int = 53, payload: bytes = b"hello", **kw: Any) -> bytes:
    """A valid IPv4 UDP frame from IP4:sport (the `app` fixture's binding) by default."""
    return bytes(v4(UDP(sport=sport, dport=dport) / Raw(payload), **kw))


def udp6(sport: int = APP_PORT, dport: int = 53, payload: bytes = b"hello", **kw: Any) -> bytes:
    """A valid IPv6 UDP frame from [IP6]:sport by default."""
    return bytes(v6(UDP(sport=sport, dport=dport) / Raw(payload), **kw))


def echo4(ident: int = ECHO_ID, reply: bool = False, **kw: Any) -> bytes:
    return bytes(v4(ICMP(type=0 if reply else 8, id=ident, seq=1) / Raw(b"ping"), **kw))


def echo6(ident: int = ECHO_ID, reply: bool = False, **kw: Any) -> bytes:
    cls = ICMPv6EchoReply if reply else ICMPv6EchoRequest
    return bytes(v6(cls(id=ident, seq=1, data=b"ping"), **kw))


def patch(frame: bytes, offset: int, value: bytes) -> bytes:
    """``frame`` with ``value`` written at ``offset`` (to break a header on purpose)."""
    b = bytearray(frame)
    b[offset:offset + len(value)] = value
    return bytes(b)


# Offsets into an untagged Ethernet frame.
L3 = 14


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def sw() -> Iterator[ms.Switch]:
    """A switch on the virtual NIC with two IPv4 and two IPv6 host addresses."""
    s = ms.Switch(nic="virtual", addresses=ADDRESSES, mac=NIC_MAC)
    try:
        yield s
    finally:
        s.close()


def bind_app(port: ms.Port, ips: tuple[str, ...] = (IP4, IP6)) -> list[ms.Binding]:
    """Bind every port-based protocol on APP_PORT, the echo id and a port-less protocol."""
    out = []
    for ip in ips:
        v6_ = ":" in ip
        for proto in ("udp", "tcp", "sctp", "dccp", "udplite"):
            out.append(port.bind(ip, proto, APP_PORT))
        out.append(port.bind(ip, "icmpv6" if v6_ else "icmp", ECHO_ID))
        out.append(port.bind(ip, PORTLESS6 if v6_ else PORTLESS4, 0))
    return out


@pytest.fixture
def app(sw: ms.Switch) -> ms.Port:
    """Port "app", bound (see bind_app) on IP4 and IP6, nothing on IP4_B / IP6_B."""
    p = sw.port("app")
    bind_app(p)
    return p


# --- outcome checks --------------------------------------------------------------------


def _all_rx(stats: dict[str, Any]) -> dict[str, int]:
    return {name: s["rx"]["frames"] for name, s in stats["ports"].items()}


def expect_drop(sw: ms.Switch, port: ms.Port, frame: bytes, reason: str) -> ms.Verdict:
    """Send ``frame`` on ``port``; assert it was dropped with ``reason`` and nothing else
    happened: no wire frame, no delivery, exactly one drop counted and logged, and explain()
    gives the same verdict."""
    frame = bytes(frame)
    v = sw.explain(port.name, frame)
    assert (v.action, v.reason, v.to) == ("drop", reason, None), \
        f"explain() says {v} for a frame expected to drop as {reason}"
    before = sw.stats()
    port.send(frame)
    assert sw.wire.capture() == [], f"a frame expected to drop as {reason} reached the wire"
    after = sw.stats()
    ps0, ps1 = before["ports"][port.name], after["ports"][port.name]
    counted = {r: ps1["drops"][r] - ps0["drops"][r] for r in ps1["drops"]}
    assert counted == {r: int(r == reason) for r in counted}, \
        f"expected one {reason} drop, counters moved by {counted}"
    assert ps1["tx"] == ps0["tx"], "a dropped frame was counted as transmitted"
    assert after["nic"]["tx"] == before["nic"]["tx"]
    assert after["nic"]["rx"] == before["nic"]["rx"], "a port's frame was taken as NIC input"
    assert _all_rx(after) == _all_rx(before), "a dropped frame was delivered to a port"
    last = sw.drops(1)[-1]
    assert last["port"] == port.name
    assert last["direction"] == "tx"
    assert last["reason"] == reason
    assert last["frame"] == frame[:2048]
    return v


def expect_forward(sw: ms.Switch, port: ms.Port, frame: bytes) -> ms.Verdict:
    """Send ``frame`` on ``port``; assert it reached the wire unchanged, was counted as
    transmitted, dropped nothing, and that explain() agrees."""
    frame = bytes(frame)
    v = sw.explain(port.name, frame)
    assert (v.action, v.reason, v.to) == ("forward", None, "wire"), \
        f"explain() says {v} for a frame expected to reach the wire"
    before = sw.stats()
    port.send(frame)
    assert sw.wire.capture() == [frame]
    after = sw.stats()
    ps0, ps1 = before["ports"][port.name], after["ports"][port.name]
    assert ps1["tx"] == {"frames": ps0["tx"]["frames"] + 1,
                         "bytes": ps0["tx"]["bytes"] + len(frame)}
    assert ps1["drops"] == ps0["drops"], "a forwarded frame was counted as a drop"
    assert after["nic"]["tx"] == {"frames": before["nic"]["tx"]["frames"] + 1,
                                  "bytes": before["nic"]["tx"]["bytes"] + len(frame)}
    return v


def expect_deliver(sw: ms.Switch, frame: bytes, port: ms.Port) -> ms.Verdict:
    """Inject ``frame`` from the network; assert it arrives at ``port`` (and only there)."""
    frame = bytes(frame)
    v = sw.explain("nic", frame)
    assert (v.action, v.reason, v.to) == ("forward", None, port.name), \
        f"explain('nic') says {v} for a frame expected to go to {port.name!r}"
    before = sw.stats()
    assert sw.wire.inject(frame) == 1
    assert sw.wire.capture() == []
    assert port.recv(timeout=2.0) == frame
    after = sw.stats()
    rx0, rx1 = _all_rx(before), _all_rx(after)
    assert rx1 == {n: c + (n == port.name) for n, c in rx0.items()}
    assert after["ports"][port.name]["rx"]["bytes"] == \
        before["ports"][port.name]["rx"]["bytes"] + len(frame)
    assert after["nic"]["rx"]["frames"] == before["nic"]["rx"]["frames"] + 1
    assert after["nic"]["drops"] == before["nic"]["drops"]
    return v


def expect_no_binding(sw: ms.Switch, frame: bytes) -> ms.Verdict:
    """Inject ``frame``; assert the virtual NIC dropped it as no-binding, delivering it to
    no port, and that explain('nic') agrees."""
    frame = bytes(frame)
    v = sw.explain("nic", frame)
    assert (v.action, v.reason, v.to) == ("drop", "no-binding", None), \
        f"explain('nic') says {v} for a frame expected to drop as no-binding"
    before = sw.stats()
    assert sw.wire.inject(frame) == 1
    assert sw.wire.capture() == []
    after = sw.stats()
    nd0, nd1 = before["nic"]["drops"], after["nic"]["drops"]
    assert nd1["no-binding"] == nd0["no-binding"] + 1
    assert {r: n for r, n in nd1.items() if r != "no-binding"} == \
        {r: n for r, n in nd0.items() if r != "no-binding"}
    assert after["nic"]["rx"] == {"frames": before["nic"]["rx"]["frames"] + 1,
                                  "bytes": before["nic"]["rx"]["bytes"] + len(frame)}
    assert after["nic"]["to-host"] == before["nic"]["to-host"]
    assert _all_rx(after) == _all_rx(before), "a no-binding frame was delivered to a port"
    last = sw.drops(1)[-1]
    assert (last["port"], last["direction"], last["reason"]) == ("nic", "rx", "no-binding")
    assert last["frame"] == frame[:2048]
    return v
