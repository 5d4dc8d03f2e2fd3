"""What the NIC receives (DESIGN.md, "What the NIC receives"): frames injected on the virtual
wire are demultiplexed on (protocol, destination IP, destination port, family) to the port
that bound it; everything else is dropped as no-binding on the virtual NIC; a full port
ring drops with ring-full on that port."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA,
                                IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                                IPv6ExtHdrHopByHop, IPv6ExtHdrRouting)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Raw

import ministack as ms
from conftest import (ADDRESSES, APP_PORT, ECHO_ID, FOREIGN4, FOREIGN6, IP4, IP4_B, IP6,
                      IP6_B, L3, NIC_MAC, PEER_MAC, PORTLESS4, PORTLESS6, REMOTE4, REMOTE6,
                      dccp, echo4, echo6, eth, expect_deliver, expect_no_binding, patch, v4, v6)

# Frames from the network: from a remote peer to our addresses (destination port APP_PORT).


def in4(l4, **kw) -> bytes:  # type: ignore[no-untyped-def]
    kw.setdefault("src", REMOTE4)
    kw.setdefault("dst", IP4)
    kw.setdefault("mac", PEER_MAC)
    kw.setdefault("dst_mac", NIC_MAC)
    return bytes(v4(l4, **kw))


def in6(l4, **kw) -> bytes:  # type: ignore[no-untyped-def]
    kw.setdefault("src", REMOTE6)
    kw.setdefault("dst", IP6)
    kw.setdefault("mac", PEER_MAC)
    kw.setdefault("dst_mac", NIC_MAC)
    return bytes(v6(l4, **kw))


def udp_in4(dport: int = APP_PORT, sport: int = 53, **kw) -> bytes:  # type: ignore[no-untyped-def]
    return in4(UDP(sport=sport, dport=dport) / Raw(b"data"), **kw)


def udp_in6(dport: int = APP_PORT, sport: int = 53, **kw) -> bytes:  # type: ignore[no-untyped-def]
    return in6(UDP(sport=sport, dport=dport) / Raw(b"data"), **kw)


DELIVERED = {
    "udp4": udp_in4(),
    "udp6": udp_in6(),
    "udp4-source-port-irrelevant": udp_in4(sport=APP_PORT + 1),
    "udp4-any-source-address": udp_in4(src=FOREIGN4),
    "tcp4": in4(TCP(sport=40000, dport=APP_PORT, flags="S")),
    "tcp6": in6(TCP(sport=40000, dport=APP_PORT, flags="SA")),
    "sctp4": in4(SCTP(sport=40000, dport=APP_PORT)),
    "sctp6": in6(SCTP(sport=40000, dport=APP_PORT)),
    "dccp4": in4(dccp(40000, APP_PORT), proto=33),
    "dccp6": in6(dccp(40000, APP_PORT), nh=33),
    "udplite4": in4(UDP(sport=40000, dport=APP_PORT), proto=136),
    "udplite6": in6(bytes(UDP(sport=40000, dport=APP_PORT)), nh=136),
    "icmp-echo-request": echo4(src=REMOTE4, dst=IP4, mac=PEER_MAC, dst_mac=NIC_MAC),
    "icmp-echo-reply": echo4(reply=True, src=REMOTE4, dst=IP4, mac=PEER_MAC, dst_mac=NIC_MAC),
    "icmpv6-echo-request": echo6(src=REMOTE6, dst=IP6, mac=PEER_MAC, dst_mac=NIC_MAC),
    "icmpv6-echo-reply": echo6(reply=True, src=REMOTE6, dst=IP6, mac=PEER_MAC,
                               dst_mac=NIC_MAC),
    "portless4-253": in4(b"\x00" * 8, proto=PORTLESS4),
    "portless6-gre": in6(b"\x00" * 8, nh=PORTLESS6),
    "ipv4-with-options": in4(UDP(sport=53, dport=APP_PORT),
                             options=[IPOption(b"\x94\x04\x00\x00")]),
    "ipv6-with-ext-headers": in6(IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() /
                                 IPv6ExtHdrDestOpt() / UDP(sport=53, dport=APP_PORT)),
    "ethernet-padding": udp_in4() + b"\x00" * 20,
    "broadcast-destination-mac": udp_in4(dst_mac="ff:ff:ff:ff:ff:ff"),
}


@pytest.mark.parametrize("frame", DELIVERED.values(), ids=DELIVERED.keys())
def test_delivered_to_binding_port(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    v = expect_deliver(sw, frame, app)
    assert "'app'" in v.detail


NO_BINDING = {
    "udp4-unbound-port": udp_in4(APP_PORT + 1),
    "udp6-unbound-port": udp_in6(APP_PORT + 1),
    "udp4-bound-port-as-source-only": udp_in4(9999, sport=APP_PORT),
    "udp4-unbound-local-address": udp_in4(dst=IP4_B),
    "udp6-unbound-local-address": udp_in6(dst=IP6_B),
    "udp4-non-local-address": udp_in4(dst=FOREIGN4),
    "udp6-non-local-address": udp_in6(dst=FOREIGN6),
    "udp4-broadcast-address": udp_in4(dst="255.255.255.255"),
    "udp4-multicast-address": udp_in4(dst="224.0.0.251"),
    "udp6-multicast-address": udp_in6(dst="ff02::fb"),
    "udp6-v4-mapped-local": udp_in6(dst="::ffff:10.0.0.2"),
    "gre4-unbound-protocol": in4(b"\x00" * 8, proto=47),
    "icmp-echo-other-id": echo4(ECHO_ID + 1, src=REMOTE4, dst=IP4, mac=PEER_MAC,
                                dst_mac=NIC_MAC),
    "icmpv6-echo-other-id": echo6(ECHO_ID + 1, src=REMOTE6, dst=IP6, mac=PEER_MAC,
                                  dst_mac=NIC_MAC),
    "icmp-dest-unreachable-about-bound-flow": in4(
        ICMP(type=3, code=3) / IP(src=IP4, dst=REMOTE4) / UDP(sport=APP_PORT, dport=53)),
    "icmpv6-dest-unreachable": in6(ICMPv6DestUnreach() / IPv6(src=IP6, dst=REMOTE6) /
                                   UDP(sport=APP_PORT, dport=53)),
    "arp-request": bytes(eth(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") /
                         ARP(op=1, hwsrc=PEER_MAC, psrc=REMOTE4, pdst=IP4)),
    "arp-reply": bytes(eth(src=PEER_MAC, dst=NIC_MAC) /
                       ARP(op=2, hwsrc=PEER_MAC, psrc=REMOTE4, hwdst=NIC_MAC, pdst=IP4)),
    "icmpv6-neighbour-solicitation": in6(ICMPv6ND_NS(tgt=IP6), dst="ff02::1:ff00:2"),
    "icmpv6-neighbour-advert": in6(ICMPv6ND_NA(tgt=REMOTE6)),
    "icmpv6-router-advert": in6(ICMPv6ND_RA(), dst="ff02::1"),
    "ipv4-later-fragment": in4(b"x" * 32, proto=17, frag=4),
    "ipv6-later-fragment": in6(IPv6ExtHdrFragment(m=1, offset=3, nh=17) / Raw(b"x" * 16)),
    "ipv6-ah": in6(b"\x11\x01" + b"\x00" * 14 + bytes(UDP(sport=53, dport=APP_PORT)), nh=51),
    "vlan-802.1q": bytes(eth(src=PEER_MAC, dst=NIC_MAC) / Dot1Q(vlan=10) /
                         IP(src=REMOTE4, dst=IP4) / UDP(sport=53, dport=APP_PORT)),
    "vlan-802.1ad": bytes(eth(src=PEER_MAC, dst=NIC_MAC) / Dot1AD(vlan=10) / Dot1Q(vlan=5) /
                          IPv6(src=REMOTE6, dst=IP6) / UDP(sport=53, dport=APP_PORT)),
    "malformed-short-udp": in4(bytes(UDP(sport=53, dport=APP_PORT))[:6], proto=17),
    "malformed-ihl-4": patch(udp_in4(), L3, b"\x44"),
    "malformed-total-length": patch(udp_in4(), L3 + 2, b"\x05\xdc"),
    "malformed-ipv6-payload-length": patch(udp_in6(), L3 + 4, b"\x05\xdc"),
    "malformed-tcp-data-offset": in4(TCP(sport=53, dport=APP_PORT, dataofs=3)),
    "malformed-13B": udp_in4()[:13],
    "other-ethertype": bytes(eth(src=PEER_MAC, dst=NIC_MAC, type=0x88CC) / Raw(b"\x00" * 46)),
}


@pytest.mark.parametrize("frame", NO_BINDING.values(), ids=NO_BINDING.keys())
def test_no_binding_dropped_on_virtual_nic(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    v = expect_no_binding(sw, frame)
    assert "no-binding" in v.detail
    assert app.recv(timeout=0) is None


FIRST_FRAGMENTS = {
    "ipv4-first-fragment": in4(UDP(sport=53, dport=APP_PORT) / Raw(b"x" * 32), flags="MF"),
    "ipv6-first-fragment": in6(IPv6ExtHdrFragment(m=1) / UDP(sport=53, dport=APP_PORT)),
}


@pytest.mark.parametrize("frame", FIRST_FRAGMENTS.values(), ids=FIRST_FRAGMENTS.keys())
def test_first_fragment_is_demultiplexed(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    """A first fragment carries the ports: it goes where its tuple is bound."""
    expect_deliver(sw, frame, app)


def test_no_binding_detail_names_the_tuple(sw: ms.Switch, app: ms.Port) -> None:
    v = sw.explain("nic", udp_in4(APP_PORT + 1))
    assert f"udp {IP4}:{APP_PORT + 1}" in v.detail


def test_demux_picks_the_port_by_full_tuple(sw: ms.Switch) -> None:
    """Same port number, different protocol / address / family: four different ports."""
    p_udp4, p_tcp4, p_udp4b, p_udp6 = (sw.port(n) for n in ("udp4", "tcp4", "udp4b", "udp6"))
    p_udp4.bind(IP4, "udp", 7000)
    p_tcp4.bind(IP4, "tcp", 7000)
    p_udp4b.bind(IP4_B, "udp", 7000)
    p_udp6.bind(IP6, "udp", 7000)
    expect_deliver(sw, udp_in4(7000), p_udp4)
    expect_deliver(sw, in4(TCP(sport=1, dport=7000)), p_tcp4)
    expect_deliver(sw, udp_in4(7000, dst=IP4_B), p_udp4b)
    expect_deliver(sw, udp_in6(7000), p_udp6)
    expect_no_binding(sw, udp_in6(7000, dst=IP6_B))
    expect_no_binding(sw, in6(TCP(sport=1, dport=7000)))


def test_batch_of_mixed_frames(sw: ms.Switch, app: ms.Port) -> None:
    """One inject() of many frames: each goes to its port or is dropped, in order."""
    b = sw.port("b")
    b.bind(IP6, "udp", 6000)
    to_app = [in4(UDP(sport=53, dport=APP_PORT) / Raw(bytes([i]))) for i in range(10)]
    to_b = [in6(UDP(sport=53, dport=6000) / Raw(bytes([i]))) for i in range(10)]
    junk = [udp_in4(1234), NO_BINDING["arp-request"], NO_BINDING["ipv4-later-fragment"]]
    frames = [f for triple in zip(to_app, to_b, junk * 4) for f in triple]
    n_junk = len(frames) - 20
    assert sw.wire.inject(frames) == len(frames)
    assert sw.wire.capture() == []
    assert collect(app, 10) == to_app
    assert collect(b, 10) == to_b
    s = sw.stats()
    assert s["nic"]["rx"]["frames"] == len(frames)
    assert s["nic"]["rx"]["bytes"] == sum(map(len, frames))
    assert s["nic"]["drops"]["no-binding"] == n_junk
    assert s["ports"]["app"]["rx"]["frames"] == 10
    assert s["ports"]["b"]["rx"]["frames"] == 10
    log = sw.drops()
    assert len(log) == n_junk
    assert all((r["port"], r["direction"], r["reason"]) == ("nic", "rx", "no-binding")
               for r in log)


def collect(port: ms.Port, n: int, timeout: float = 2.0) -> list[bytes]:
    """Receive until n frames arrived (or a recv times out)."""
    out: list[bytes] = []
    while len(out) < n:
        got = port.recv_batch(n - len(out), timeout=timeout)
        if not got:
            break
        out += got
    return out


def test_unbind_and_close_release_delivery(sw: ms.Switch) -> None:
    a, b = sw.port("a"), sw.port("b")
    binding = a.bind(IP4, "udp", 8000)
    expect_deliver(sw, udp_in4(8000), a)
    a.unbind(binding)
    expect_no_binding(sw, udp_in4(8000))
    b.bind(IP4, "udp", 8000)
    expect_deliver(sw, udp_in4(8000), b)
    b.close()
    expect_no_binding(sw, udp_in4(8000))
    assert a.recv(timeout=0) is None


def test_port_without_bindings_receives_nothing(sw: ms.Switch, app: ms.Port) -> None:
    bare = sw.port("bare")
    for frame in (udp_in4(), udp_in4(1), NO_BINDING["arp-request"]):
        sw.wire.inject(frame)
    sw.wire.capture()
    assert bare.recv(timeout=0.05) is None
    assert sw.stats()["ports"]["bare"]["rx"]["frames"] == 0


# --- ring-full ---------------------------------------------------------------------------


@pytest.fixture
def small_sw() -> Iterator[ms.Switch]:
    s = ms.Switch(addresses=ADDRESSES, mac=NIC_MAC, ring_slots=8)
    try:
        yield s
    finally:
        s.close()


def numbered(n: int, dport: int = APP_PORT) -> list[bytes]:
    return [in4(UDP(sport=53, dport=dport) / Raw(i.to_bytes(2, "big"))) for i in range(n)]


@pytest.mark.parametrize("one_call", [True, False], ids=["one-inject", "one-by-one"])
def test_ring_full(small_sw: ms.Switch, one_call: bool) -> None:
    sw = small_sw
    slow = sw.port("slow")
    slow.bind(IP4, "udp", APP_PORT)
    frames = numbered(20)
    if one_call:
        assert sw.wire.inject(frames) == 20
    else:
        for f in frames:
            assert sw.wire.inject(f) == 1
    assert sw.wire.capture() == []
    s = sw.stats()
    delivered = s["ports"]["slow"]["rx"]["frames"]
    ring_full = s["ports"]["slow"]["drops"]["ring-full"]
    assert delivered == 8
    assert ring_full == 12
    assert delivered + ring_full == len(frames)
    assert s["nic"]["rx"]["frames"] == 20
    assert s["nic"]["drops"]["no-binding"] == 0
    assert s["nic"]["drops"]["ring-full"] == 0
    log = sw.drops()
    assert [(r["port"], r["direction"], r["reason"]) for r in log] == \
        [("slow", "rx", "ring-full")] * 12
    assert [r["frame"] for r in log] == frames[8:]
    # the port got the first 8, in order, and has room again once drained
    assert collect(slow, 20, timeout=0.2) == frames[:8]
    expect_deliver(sw, frames[0], slow)


def test_ring_full_counts_only_on_the_full_port(small_sw: ms.Switch) -> None:
    sw = small_sw
    slow, fast = sw.port("slow"), sw.port("fast")
    slow.bind(IP4, "udp", APP_PORT)
    fast.bind(IP4, "udp", 6000)
    got: list[bytes] = []
    to_fast = numbered(24, 6000)
    for i in range(3):
        sw.wire.inject(numbered(8) + to_fast[i * 8:(i + 1) * 8])
        sw.wire.capture()
        got += collect(fast, 8, timeout=1.0)
    assert got == to_fast
    s = sw.stats()
    assert s["ports"]["fast"]["drops"]["ring-full"] == 0
    assert s["ports"]["fast"]["rx"]["frames"] == 24
    assert s["ports"]["slow"]["rx"]["frames"] == 8
    assert s["ports"]["slow"]["drops"]["ring-full"] == 16


def test_hairpin_into_a_full_ring(small_sw: ms.Switch) -> None:
    sw = small_sw
    sender, slow = sw.port("sender"), sw.port("slow")
    sender.bind(IP4, "udp", 6000)
    slow.bind(IP4_B, "udp", APP_PORT)
    frames = [bytes(v4(UDP(sport=6000, dport=APP_PORT) / Raw(bytes([i])), dst=IP4_B))
              for i in range(12)]
    assert sender.send_batch(frames) == 12
    assert sw.wire.capture() == []
    s = sw.stats()
    assert s["ports"]["sender"]["tx"]["frames"] == 12
    assert s["ports"]["slow"]["rx"]["frames"] == 8
    assert s["ports"]["slow"]["drops"]["ring-full"] == 4
    assert [(r["port"], r["direction"], r["reason"]) for r in sw.drops()] == \
        [("slow", "rx", "ring-full")] * 4
    assert collect(slow, 12, timeout=0.2) == frames[:8]


def test_a_datagram_beyond_the_ports_mtu_is_cut_or_dropped(sw: ms.Switch) -> None:
    """A port with MTU 576: a larger TCP segment from the network is cut into segments
    that fit, with correct checksums and sequence numbers; a larger UDP datagram cannot be
    cut and is dropped as oversize on the port, as explain() says."""
    small = sw.port("small", mtu=576)
    small.bind(IP4, "tcp", 7100)
    small.bind(IP4, "udp", 7100)
    payload = bytes(range(256)) * 5
    seg = bytes(Ether(src=PEER_MAC, dst=NIC_MAC) / IP(src=REMOTE4, dst=IP4) /
                TCP(sport=80, dport=7100, seq=1000, flags="PA") / Raw(payload))
    assert sw.explain("nic", seg).to == "small"
    sw.wire.inject(seg)
    sw.sync()
    got = small.recv_batch(16, timeout=1.0)
    assert len(got) == 3 and all(len(f) <= 576 + 14 for f in got)
    data = b""
    for f in got:
        pkt = Ether(f)
        assert pkt[TCP].seq == 1000 + len(data)
        sent_ip, sent_tcp = pkt[IP].chksum, pkt[TCP].chksum
        del pkt[IP].chksum, pkt[TCP].chksum
        again = Ether(bytes(pkt))
        assert (again[IP].chksum, again[TCP].chksum) == (sent_ip, sent_tcp)
        data += bytes(pkt[TCP].payload)
    assert data == payload
    assert [str(Ether(f)[TCP].flags) for f in got] == ["A", "A", "PA"]
    dgram = bytes(Ether(src=PEER_MAC, dst=NIC_MAC) / IP(src=REMOTE4, dst=IP4) /
                  UDP(sport=80, dport=7100) / Raw(payload))
    v = sw.explain("nic", dgram)
    assert (v.action, v.reason) == ("drop", "oversize") and "small" in v.detail, v
    sw.wire.inject(dgram)
    sw.sync()
    assert small.recv(timeout=0.05) is None
    assert sw.stats()["ports"]["small"]["drops"]["oversize"] == 1
    assert sw.stats()["nic"]["offload"]["super-frames-cut"] == 1
