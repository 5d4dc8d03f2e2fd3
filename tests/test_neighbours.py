"""Neighbours and fragments (DESIGN.md): the switch answers a port's ARP and neighbour
solicitations itself, absorbs what needs no answer, drops neighbour spoofing with a reason,
and lets a datagram's later fragments follow its first, in both directions."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import (ICMPv6MLReport2, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA,
                                ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr, IPv6, IPv6ExtHdrFragment,
                                IPv6ExtHdrHopByHop, RouterAlert, fragment6)
from scapy.layers.l2 import ARP, Ether

import ministack as ms
from conftest import APP_PORT, FOREIGN4, IP4, IP6, NIC_MAC, OTHER_MAC, PEER_MAC, REMOTE4, REMOTE6

BCAST = "ff:ff:ff:ff:ff:ff"


def arp(op: int = 1, psrc: str = IP4, pdst: str = REMOTE4, hwsrc: str = NIC_MAC) -> bytes:
    return bytes(Ether(src=NIC_MAC, dst=BCAST) / ARP(op=op, hwsrc=hwsrc, psrc=psrc, pdst=pdst))


def ns(tgt: str = REMOTE6, src: str = IP6, lladdr: str | None = NIC_MAC) -> bytes:
    pkt = Ether(src=NIC_MAC, dst="33:33:ff:00:00:01") / IPv6(src=src, dst="ff02::1:ff00:1",
                                                             hlim=255) / ICMPv6ND_NS(tgt=tgt)
    if lladdr:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=lladdr)
    return bytes(pkt)


@pytest.fixture
def known(sw: ms.Switch) -> ms.Switch:
    sw.wire.add_neighbor(REMOTE4, PEER_MAC)
    sw.wire.add_neighbor(REMOTE6, PEER_MAC)
    return sw


def expect_local(sw: ms.Switch, port: ms.Port, frame: bytes, answered: bool) -> bytes | None:
    """Send frame; it must be handled by the switch: nothing on the wire, no drop, one local
    frame counted, and an answer back to the port exactly when `answered`."""
    v = sw.explain(port.name, frame)
    assert v.action == "local" and v.reason is None, v
    assert (v.to == port.name) == answered, v
    before = port.stats()
    port.send(frame)
    assert sw.wire.capture() == []
    after = port.stats()
    assert after["local"]["frames"] == before["local"]["frames"] + 1
    assert after["local"]["bytes"] == before["local"]["bytes"] + len(frame)
    assert after["drops"] == before["drops"]
    assert after["tx"] == before["tx"]
    reply = port.recv(timeout=0.5 if answered else 0.05)
    assert (reply is not None) == answered
    assert after["local"]["answers"] + (0 if answered else 0) <= port.stats()["local"]["answers"]
    return reply


def test_arp_request_is_answered_from_the_table(known: ms.Switch, app: ms.Port) -> None:
    reply = expect_local(known, app, arp(), answered=True)
    r = Ether(reply)
    assert r.dst == NIC_MAC and r.src == PEER_MAC
    assert r[ARP].op == 2 and r[ARP].hwsrc == PEER_MAC and r[ARP].psrc == REMOTE4
    assert r[ARP].hwdst == NIC_MAC and r[ARP].pdst == IP4
    assert app.stats()["local"]["answers"] == 1
    assert app.stats()["rx"]["frames"] == 1


def test_neighbour_solicitation_is_answered_with_a_valid_advertisement(
        known: ms.Switch, app: ms.Port) -> None:
    reply = expect_local(known, app, ns(), answered=True)
    r = Ether(reply)
    na = r[ICMPv6ND_NA]
    assert r.dst == NIC_MAC and r.src == PEER_MAC
    assert r[IPv6].src == REMOTE6 and r[IPv6].dst == IP6 and r[IPv6].hlim == 255
    assert na.tgt == REMOTE6 and na.S == 1 and na.O == 1 and na.R == 0
    assert na.lladdr == PEER_MAC
    sent = na.cksum
    del na.cksum
    assert Ether(bytes(r))[ICMPv6ND_NA].cksum == sent, "the advertisement's checksum is wrong"


def test_unknown_neighbour_gets_no_answer_until_added(sw: ms.Switch, app: ms.Port) -> None:
    v = sw.explain("app", arp())
    assert "not in sw.wire's neighbour table" in v.detail
    expect_local(sw, app, arp(), answered=False)
    sw.wire.add_neighbor(REMOTE4, PEER_MAC)
    expect_local(sw, app, arp(), answered=True)
    sw.wire.add_neighbor(REMOTE4, None)
    expect_local(sw, app, arp(), answered=False)


def test_host_addresses_resolve_to_the_nic(sw: ms.Switch, app: ms.Port) -> None:
    """Another address of this host is reached through the switch (hairpin): its MAC is the
    NIC's."""
    reply = expect_local(sw, app, arp(pdst="10.0.0.5"), answered=True)
    assert Ether(reply)[ARP].hwsrc == NIC_MAC


ABSORBED = {
    "arp-probe": arp(psrc="0.0.0.0", pdst=IP4),
    "arp-announcement": arp(psrc=IP4, pdst=IP4),
    "nd-duplicate-address-detection": ns(tgt=IP6, src="::", lladdr=None),
    "nd-announcement-of-own-address": ns(tgt=IP6, src=IP6),
    "router-solicitation": bytes(Ether(src=NIC_MAC, dst="33:33:00:00:00:02") /
                                 IPv6(src="fe80::1", dst="ff02::2", hlim=255) / ICMPv6ND_RS()),
    "mld-report": bytes(Ether(src=NIC_MAC, dst="33:33:00:00:00:16") /
                        IPv6(src="fe80::1", dst="ff02::16", hlim=1) /
                        IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLReport2()),
}


@pytest.mark.parametrize("frame", ABSORBED.values(), ids=ABSORBED.keys())
def test_probes_announcements_and_reports_are_absorbed(known: ms.Switch, app: ms.Port,
                                                      frame: bytes) -> None:
    expect_local(known, app, frame, answered=False)


SPOOFED = {
    "arp-reply": (arp(op=2), "not-allowed"),
    "arp-for-unbound-sender": (arp(psrc=FOREIGN4), "spoofed-src-ip"),
    "arp-other-sender-mac": (arp(hwsrc=OTHER_MAC), "spoofed-src-mac"),
    "nd-from-unbound-address": (ns(src="fd00::99"), "spoofed-src-ip"),
    "nd-dad-for-unbound-address": (ns(tgt="fd00::99", src="::", lladdr=None), "spoofed-src-ip"),
    "nd-other-link-layer-address": (ns(lladdr=OTHER_MAC), "spoofed-src-mac"),
    "nd-advertisement": (bytes(Ether(src=NIC_MAC) / IPv6(src=IP6, dst="ff02::1", hlim=255) /
                               ICMPv6ND_NA(tgt=IP6)), "not-allowed"),
    "nd-router-advertisement": (bytes(Ether(src=NIC_MAC) / IPv6(src=IP6, dst="ff02::1") /
                                      ICMPv6ND_RA()), "not-allowed"),
}


@pytest.mark.parametrize("frame,reason", SPOOFED.values(), ids=SPOOFED.keys())
def test_neighbour_spoofing_is_dropped_with_a_reason(known: ms.Switch, app: ms.Port,
                                                     frame: bytes, reason: str) -> None:
    from conftest import expect_drop
    v = expect_drop(known, app, frame, reason)
    assert v.detail and "dropped because" not in v.detail, v.detail
    assert app.recv(timeout=0.05) is None


def test_neighbour_frames_from_the_network_are_not_for_ports(sw: ms.Switch, app: ms.Port) -> None:
    """ARP and neighbour discovery arriving from the NIC belong to the host, never a port,
    even one that bound ICMPv6 echo identifier 0."""
    app.bind(IP6, "icmpv6", 0)
    for frame in (bytes(Ether(src=PEER_MAC, dst=BCAST) /
                        ARP(hwsrc=PEER_MAC, psrc=REMOTE4, pdst=IP4)),
                  bytes(Ether(src=PEER_MAC, dst=NIC_MAC) / IPv6(src=REMOTE6, dst=IP6) /
                        ICMPv6ND_NS(tgt=IP6))):
        v = sw.explain("nic", frame)
        assert v.action == "drop" and "belongs to the host" in v.detail, v


# --- fragments --------------------------------------------------------------------------

def datagram4(size: int = 3000, src: str = IP4, ident: int = 4242) -> list[bytes]:
    pkt = IP(src=src, dst=REMOTE4, id=ident) / UDP(sport=APP_PORT, dport=53) / (b"x" * size)
    return [bytes(Ether(src=NIC_MAC, dst=PEER_MAC) / f) for f in fragment(pkt, 1480)]


def datagram6(size: int = 3000, ident: int = 77) -> list[bytes]:
    pkt = (IPv6(src=IP6, dst=REMOTE6) / IPv6ExtHdrFragment(id=ident) /
           UDP(sport=APP_PORT, dport=53) / (b"y" * size))
    return [bytes(Ether(src=NIC_MAC, dst=PEER_MAC) / f) for f in fragment6(pkt, 1400)]


@pytest.mark.parametrize("make", [datagram4, datagram6], ids=["ipv4", "ipv6"])
def test_later_fragments_follow_the_first_to_the_wire(sw: ms.Switch, app: ms.Port,
                                                      make) -> None:
    frags = make()
    assert len(frags) >= 3
    assert sw.explain("app", frags[1]).reason == "fragment"  # nothing sent yet
    app.send_batch(frags)
    assert sw.wire.capture() == frags
    assert app.stats()["drops"]["fragment"] == 0
    v = sw.explain("app", frags[1])
    assert v.action == "forward" and v.to == "wire" and "follows" in v.detail, v
    f = sw.stats()["nic"]["fragments"]
    assert f["datagrams"] == 1 and f["followed"] == len(frags) - 1 and f["active"] == 1


def test_another_port_cannot_ride_on_a_datagram(sw: ms.Switch, app: ms.Port) -> None:
    intruder = sw.port("intruder")
    frags = datagram4()
    app.send(frags[0])
    assert sw.wire.capture() == frags[:1]
    intruder.send_batch(frags[1:])
    assert sw.wire.capture() == []
    assert intruder.stats()["drops"]["fragment"] == len(frags) - 1


def test_a_spoofed_first_fragment_lets_nothing_follow(sw: ms.Switch, app: ms.Port) -> None:
    frags = datagram4(src=FOREIGN4)
    app.send_batch(frags)
    assert sw.wire.capture() == []
    d = app.stats()["drops"]
    assert d["spoofed-src-ip"] == 1 and d["fragment"] == len(frags) - 1


def test_fragments_from_the_network_follow_their_first_to_its_port(sw: ms.Switch,
                                                                   app: ms.Port) -> None:
    other = sw.port("other")
    pkt = IP(src=REMOTE4, dst=IP4, id=99) / UDP(sport=53, dport=APP_PORT) / (b"z" * 4000)
    frags = [bytes(Ether(src=PEER_MAC, dst=NIC_MAC) / f) for f in fragment(pkt, 1480)]
    assert sw.explain("nic", frags[1]).reason == "no-binding"
    sw.wire.inject(frags)
    sw.sync()
    got = app.recv_batch(10, timeout=1.0)
    assert got == frags
    assert other.recv(timeout=0.05) is None
    v = sw.explain("nic", frags[2])
    assert v.to == "app" and "follows its first fragment" in v.detail, v
    # A later fragment of a datagram whose first fragment never came goes nowhere.
    stray = IP(src=REMOTE4, dst=IP4, id=100) / UDP(sport=53, dport=APP_PORT) / (b"z" * 4000)
    later = [bytes(Ether(src=PEER_MAC, dst=NIC_MAC) / f) for f in fragment(stray, 1480)][1:]
    sw.wire.inject(later)
    sw.sync()
    assert app.recv(timeout=0.05) is None
    assert sw.stats()["nic"]["drops"]["no-binding"] == len(later)


def test_fragment_table_is_bounded(sw: ms.Switch, app: ms.Port) -> None:
    cap = sw.stats()["nic"]["fragments"]["capacity"]
    firsts = [datagram4(size=1600, ident=i)[0] for i in range(cap + 500)]
    for i in range(0, len(firsts), 256):
        app.send_batch(firsts[i:i + 256])
        sw.wire.capture()
    f = sw.stats()["nic"]["fragments"]
    assert f["datagrams"] == cap + 500
    assert f["active"] <= cap and f["evicted"] >= 500
    # The newest datagram is remembered.
    last = datagram4(size=1600, ident=cap + 499)
    assert sw.explain("app", last[1]).action == "forward"


def test_closing_a_port_forgets_its_datagrams(sw: ms.Switch, app: ms.Port) -> None:
    frags = datagram4()
    app.send(frags[0])
    sw.wire.capture()
    assert sw.stats()["nic"]["fragments"]["active"] == 1
    app.close()
    assert sw.stats()["nic"]["fragments"]["active"] == 0
