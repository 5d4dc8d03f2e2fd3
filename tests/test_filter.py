"""The TX filter (DESIGN.md, "The filter: what a port may transmit"), row by row and in
order, through the real switch: every frame is sent on a port, and the test checks the wire,
the counters, the drop log and explain()."""
from __future__ import annotations

import struct
import time

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoRequest,
                                ICMPv6MLQuery, ICMPv6ND_NA, ICMPv6ND_NS,
                                ICMPv6ND_RA, ICMPv6ND_Redirect, ICMPv6ND_RS,
                                ICMPv6PacketTooBig, ICMPv6TimeExceeded, IPv6,
                                IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting, PadN)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q
from scapy.layers.sctp import SCTP
from scapy.packet import Raw

import ministack as ms
from conftest import (APP_PORT, ECHO_ID, FOREIGN4, FOREIGN6, IP4, IP4_B, IP6, IP6_B, L3,
                      NIC_MAC, OTHER_MAC, PEER_MAC, PORTLESS4, PORTLESS6, REMOTE4, REMOTE6,
                      dccp, echo4, echo6, eth, expect_drop, expect_forward, padded, patch,
                      udp4, udp6, v4, v6)

UDP_HDR = bytes(UDP(sport=APP_PORT, dport=53))


def ihl(frame: bytes, words: int) -> bytes:
    """Set the IPv4 IHL (header length in 32-bit words)."""
    return patch(frame, L3, bytes([0x40 | words]))


def tot_len(frame: bytes, n: int) -> bytes:
    """Set the IPv4 total length."""
    return patch(frame, L3 + 2, struct.pack("!H", n))


def plen(frame: bytes, n: int) -> bytes:
    """Set the IPv6 payload length."""
    return patch(frame, L3 + 4, struct.pack("!H", n))


ROUTER_ALERT = IPOption(b"\x94\x04\x00\x00")
OPT = L3 + 20  # first IPv4 option byte
EXT = L3 + 40  # first IPv6 extension header byte


def with_router_alert() -> bytes:
    return bytes(v4(UDP(sport=APP_PORT, dport=53) / Raw(b"x"), options=[ROUTER_ALERT]))


def dest_opts(n: int) -> IPv6ExtHdrDestOpt:
    """A chain of n 8-byte Destination Options headers."""
    chain = IPv6ExtHdrDestOpt()
    for _ in range(n - 1):
        chain = chain / IPv6ExtHdrDestOpt()
    return chain


# --- valid frames forward ----------------------------------------------------------------

VALID = {
    "udp4": udp4(),
    "udp6": udp6(),
    "tcp4": bytes(v4(TCP(sport=APP_PORT, dport=80, flags="S"))),
    "tcp6": bytes(v6(TCP(sport=APP_PORT, dport=80, flags="S"))),
    "tcp4-with-options": bytes(v4(TCP(sport=APP_PORT, dport=80, flags="S",
                                      options=[("MSS", 1460), ("NOP", None),
                                               ("WScale", 7)]))),
    "sctp4": bytes(v4(SCTP(sport=APP_PORT, dport=80))),
    "sctp6": bytes(v6(SCTP(sport=APP_PORT, dport=80))),
    "dccp4": bytes(v4(dccp(APP_PORT, 80), proto=33)),
    "dccp4-short-seq": bytes(v4(dccp(APP_PORT, 80, extended=False), proto=33)),
    "dccp6": bytes(v6(dccp(APP_PORT, 80), nh=33)),
    "udplite4": bytes(v4(UDP(sport=APP_PORT, dport=80) / Raw(b"lite"), proto=136)),
    "udplite6": bytes(v6(bytes(UDP(sport=APP_PORT, dport=80) / Raw(b"lite")), nh=136)),
    "icmp-echo-request": echo4(),
    "icmp-echo-reply": echo4(reply=True),
    "icmpv6-echo-request": echo6(),
    "icmpv6-echo-reply": echo6(reply=True),
    "portless4-253": bytes(v4(b"\x00" * 16, proto=PORTLESS4)),
    "portless6-gre": bytes(v6(b"\x00" * 16, nh=PORTLESS6)),
    "ipv4-router-alert-option": with_router_alert(),
    "ipv4-nop-nop-nop-eol-options": bytes(v4(UDP(sport=APP_PORT, dport=53),
                                             options=[IPOption(b"\x01\x01\x01\x00")])),
    "ipv4-max-ihl-options": bytes(v4(UDP(sport=APP_PORT, dport=53),
                                     options=[IPOption(b"\x01" * 40)])),
    "ipv4-dont-fragment": bytes(v4(UDP(sport=APP_PORT, dport=53), flags="DF")),
    "ipv6-hbh-dst-rt-dst": bytes(v6(IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() /
                                    IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() /
                                    UDP(sport=APP_PORT, dport=53))),
    "ipv6-hbh-then-icmpv6-echo": bytes(v6(IPv6ExtHdrHopByHop() /
                                          ICMPv6EchoRequest(id=ECHO_ID, data=b"ping"))),
    "ipv6-exactly-8-ext-headers": bytes(v6(dest_opts(8) / UDP(sport=APP_PORT, dport=53))),
    "ipv6-ext-headers-exactly-256B": bytes(v6(
        IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\x00" * 244)]) / IPv6ExtHdrDestOpt() /
        UDP(sport=APP_PORT, dport=53))),
    "udp4-header-only": bytes(v4(UDP(sport=APP_PORT, dport=53))),
    "tcp4-header-only-20B": bytes(v4(TCP(sport=APP_PORT, dport=80, flags="A"))),
    "sctp4-header-only-12B": bytes(v4(SCTP(sport=APP_PORT, dport=80))),
    "icmp-echo-header-only-8B": bytes(v4(ICMP(type=8, id=ECHO_ID))),
    "portless4-empty-payload": bytes(v4(None, proto=PORTLESS4)),
    "ethernet-padding-after-ip": udp4(payload=b"") + b"\x00" * 18,
    "max-size-1514": padded(v4(UDP(sport=APP_PORT, dport=53)), 1514),
    "max-size-1514-v6": padded(v6(UDP(sport=APP_PORT, dport=53)), 1514),
}


def test_valid_frames_are_well_formed_by_construction() -> None:
    """The boundary cases above are the sizes they claim to be."""
    assert len(VALID["ipv6-exactly-8-ext-headers"]) == 14 + 40 + 8 * 8 + 8
    assert len(VALID["ipv6-ext-headers-exactly-256B"]) == 14 + 40 + 256 + 8
    assert VALID["ipv4-max-ihl-options"][L3] == 0x4F


@pytest.mark.parametrize("frame", VALID.values(), ids=VALID.keys())
def test_valid_frame_forwards_to_wire(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    v = expect_forward(sw, app, frame)
    assert "app" in v.detail and "matches" in v.detail


def test_forward_detail_names_the_binding(sw: ms.Switch, app: ms.Port) -> None:
    v = sw.explain("app", udp4())
    assert f"udp {IP4}:{APP_PORT}" in v.detail


# --- malformed ---------------------------------------------------------------------------

MALFORMED = {
    "empty": b"",
    "ethernet-1B": udp4()[:1],
    "ethernet-13B": udp4()[:13],
    "ipv4-ethertype-nothing-after": udp4()[:L3],
    "ipv4-shorter-than-20B": udp4()[:L3 + 19],
    "ipv4-ihl-0": ihl(udp4(), 0),
    "ipv4-ihl-4": ihl(udp4(), 4),
    "ipv4-ihl-beyond-frame": ihl(udp4(payload=b""), 15),
    "ipv4-ihl-6-beyond-frame": ihl(udp4(payload=b"")[:L3 + 20 + 2], 6),
    "ipv4-total-length-beyond-frame": tot_len(udp4(), len(udp4()) - L3 + 1),
    "ipv4-total-length-65535": tot_len(udp4(), 65535),
    "ipv4-total-length-below-ihl": tot_len(udp4(), 19),
    "ipv4-ethertype-with-version-6": bytes(eth(type=0x0800) / IPv6(src=IP6, dst=REMOTE6) /
                                           UDP(sport=APP_PORT, dport=53)),
    "ipv4-ethertype-with-version-5": patch(udp4(), L3, b"\x55"),
    "ipv6-ethertype-with-version-4": padded(eth(type=0x86DD) / IP(src=IP4, dst=REMOTE4) /
                                            UDP(sport=APP_PORT, dport=53), L3 + 60),
    "ipv6-ethertype-nothing-after": udp6()[:L3],
    "ipv6-shorter-than-40B": udp6()[:L3 + 39],
    "ipv6-header-only-20B": udp6()[:L3 + 20],
    "ipv6-payload-length-beyond-frame": plen(udp6(), len(udp6()) - L3 - 40 + 1),
    "ipv6-payload-length-65535": plen(udp6(), 65535),
    # L4 headers shorter than their protocol's minimum
    "udp4-4B": bytes(v4(UDP_HDR[:4], proto=17)),
    "udp4-7B": bytes(v4(UDP_HDR[:7], proto=17)),
    "udp6-7B": bytes(v6(UDP_HDR[:7], nh=17)),
    "udp4-truncated-by-total-length": tot_len(udp4(payload=b""), 20 + 4),
    "udplite4-4B": bytes(v4(UDP_HDR[:4], proto=136)),
    "udplite6-4B": bytes(v6(UDP_HDR[:4], nh=136)),
    "tcp4-12B": bytes(v4(bytes(TCP(sport=APP_PORT, dport=80))[:12], proto=6)),
    "tcp4-19B": bytes(v4(bytes(TCP(sport=APP_PORT, dport=80))[:19], proto=6)),
    "tcp6-19B": bytes(v6(bytes(TCP(sport=APP_PORT, dport=80))[:19], nh=6)),
    "tcp4-data-offset-4": bytes(v4(TCP(sport=APP_PORT, dport=80, dataofs=4))),
    "tcp4-data-offset-0": bytes(v4(TCP(sport=APP_PORT, dport=80, dataofs=0))),
    "tcp6-data-offset-4": bytes(v6(TCP(sport=APP_PORT, dport=80, dataofs=4))),
    "tcp4-data-offset-beyond-packet": bytes(v4(TCP(sport=APP_PORT, dport=80, dataofs=6))),
    "sctp4-8B": bytes(v4(bytes(SCTP(sport=APP_PORT, dport=80))[:8], proto=132)),
    "sctp4-11B": bytes(v4(bytes(SCTP(sport=APP_PORT, dport=80))[:11], proto=132)),
    "sctp6-11B": bytes(v6(bytes(SCTP(sport=APP_PORT, dport=80))[:11], nh=132)),
    "dccp4-8B": bytes(v4(dccp(APP_PORT, 80)[:8], proto=33)),
    "dccp4-11B": bytes(v4(dccp(APP_PORT, 80, extended=False)[:11], proto=33)),
    "dccp6-11B": bytes(v6(dccp(APP_PORT, 80, extended=False)[:11], nh=33)),
    "dccp4-data-offset-2": bytes(v4(patch(dccp(APP_PORT, 80, extended=False), 4, b"\x02"),
                                    proto=33)),
    "dccp4-data-offset-beyond-packet": bytes(v4(patch(dccp(APP_PORT, 80), 4, b"\x0a"),
                                                proto=33)),
    "dccp4-extended-12B": bytes(v4(dccp(APP_PORT, 80)[:12], proto=33)),
    "icmp4-4B": bytes(v4(b"\x08\x00\x00\x00", proto=1)),
    "icmp4-7B": bytes(v4(bytes(ICMP(type=8, id=ECHO_ID))[:7], proto=1)),
    "icmpv6-4B": bytes(v6(b"\x80\x00\x00\x00", nh=58)),
    # IPv4 options
    "ipv4-option-length-0": patch(with_router_alert(), OPT + 1, b"\x00"),
    "ipv4-option-length-1": patch(with_router_alert(), OPT + 1, b"\x01"),
    "ipv4-option-length-past-header": patch(with_router_alert(), OPT + 1, b"\x05"),
    "ipv4-option-without-length-byte": patch(with_router_alert(), OPT, b"\x01\x01\x01\x94"),
    # IPv6 extension headers
    "ipv6-hbh-past-payload": patch(bytes(v6(IPv6ExtHdrHopByHop() /
                                            UDP(sport=APP_PORT, dport=53))),
                                   EXT + 1, b"\x04"),
    "ipv6-dstopt-shorter-than-8B": bytes(v6(b"\x11\x00\x01\x00", nh=60)),
    "ipv6-routing-past-payload": patch(bytes(v6(IPv6ExtHdrRouting() /
                                                UDP(sport=APP_PORT, dport=53))),
                                       EXT + 1, b"\x02"),
    "ipv6-second-ext-header-past-payload": patch(
        bytes(v6(IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP(sport=APP_PORT, dport=53))),
        EXT + 8 + 1, b"\x03"),
    "ipv6-ext-header-option-past-header": bytes(v6(b"\x11\x00\x01\x0a\x00\x00\x00\x00" +
                                                   UDP_HDR, nh=0)),
    "ipv6-udp-after-ext-header-4B": bytes(v6(b"\x11\x00\x01\x04\x00\x00\x00\x00" +
                                             UDP_HDR[:4], nh=60)),
    # lengths come from the IP header, not from the frame: Ethernet padding is no header
    "ipv6-payload-ends-after-ext-header": plen(bytes(v6(b"\x11\x00\x01\x04\x00\x00\x00\x00"
                                                      + UDP_HDR, nh=60)), 8),
    "tcp4-data-offset-into-ethernet-padding": bytes(v4(TCP(sport=APP_PORT, dport=80,
                                                           dataofs=6))) + b"\x00" * 4,
    "udp4-header-in-ethernet-padding": tot_len(udp4(payload=b""), 20),
}


@pytest.mark.parametrize("frame", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    v = expect_drop(sw, app, frame, "malformed")
    assert v.detail.startswith("dropped because") and len(v.detail) > len("dropped because ")


# --- oversize ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1515, 1600, 2048])
@pytest.mark.parametrize("family", [4, 6])
def test_oversize_default_mtu(sw: ms.Switch, app: ms.Port, size: int, family: int) -> None:
    base = v4(UDP(sport=APP_PORT, dport=53)) if family == 4 else v6(UDP(sport=APP_PORT,
                                                                        dport=53))
    v = expect_drop(sw, app, padded(base, size), "oversize")
    assert str(size) in v.detail


def test_small_mtu_port(sw: ms.Switch) -> None:
    small = sw.port("small", mtu=100)
    small.bind(IP4_B, "udp", 6000)
    base = v4(UDP(sport=6000, dport=53), src=IP4_B)
    expect_forward(sw, small, padded(base, 114))
    expect_drop(sw, small, padded(base, 115), "oversize")
    expect_drop(sw, small, padded(base, 1514), "oversize")


def test_mtu_is_per_port(sw: ms.Switch, app: ms.Port) -> None:
    """The same 200-byte frame size passes on a 1500-MTU port and not on a 100-MTU one."""
    small = sw.port("small", mtu=100)
    small.bind(IP4_B, "udp", 6000)
    expect_forward(sw, app, padded(v4(UDP(sport=APP_PORT, dport=53)), 200))
    expect_drop(sw, small, padded(v4(UDP(sport=6000, dport=53), src=IP4_B), 200), "oversize")


# --- spoofed-src-mac ---------------------------------------------------------------------

SPOOFED_MAC = {
    "other-mac-v4": udp4(mac=OTHER_MAC),
    "other-mac-v6": udp6(mac=OTHER_MAC),
    "peer-mac": udp4(mac=PEER_MAC),
    "broadcast": udp4(mac="ff:ff:ff:ff:ff:ff"),
    "zero": udp4(mac="00:00:00:00:00:00"),
    "nic-mac-last-bit-flipped": udp4(mac="02:4d:53:00:00:03"),
    "nic-mac-first-bit-flipped": udp4(mac="03:4d:53:00:00:02"),
    "echo-v6": echo6(mac=OTHER_MAC),
}


@pytest.mark.parametrize("frame", SPOOFED_MAC.values(), ids=SPOOFED_MAC.keys())
def test_spoofed_src_mac(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    v = expect_drop(sw, app, frame, "spoofed-src-mac")
    assert NIC_MAC in v.detail


# --- vlan --------------------------------------------------------------------------------

INNER4 = IP(src=IP4, dst=REMOTE4) / UDP(sport=APP_PORT, dport=53)
VLAN = {
    "802.1q": bytes(eth() / Dot1Q(vlan=10) / INNER4),
    "802.1q-v6": bytes(eth() / Dot1Q(vlan=10) / IPv6(src=IP6, dst=REMOTE6) /
                       UDP(sport=APP_PORT, dport=53)),
    "802.1q-vlan-0-priority-tag": bytes(eth() / Dot1Q(vlan=0, prio=5) / INNER4),
    "802.1ad-qinq": bytes(eth() / Dot1AD(vlan=100) / Dot1Q(vlan=10) / INNER4),
    "802.1ad-single": bytes(eth(type=0x88A8) / Dot1Q(vlan=100) / INNER4),
    "0x9100-qinq": bytes(eth(type=0x9100) / Dot1Q(vlan=100) / INNER4),
    "802.1q-tag-only": bytes(eth(type=0x8100)) + b"\x00\x0a",
}


@pytest.mark.parametrize("frame", VLAN.values(), ids=VLAN.keys())
def test_vlan(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    expect_drop(sw, app, frame, "vlan")


# --- not-allowed -------------------------------------------------------------------------

EMBEDDED4 = IP(src=REMOTE4, dst=IP4) / UDP(sport=53, dport=APP_PORT)
EMBEDDED6 = IPv6(src=REMOTE6, dst=IP6) / UDP(sport=53, dport=APP_PORT)
NOT_ALLOWED = {
    "arp-reply": bytes(eth() / ARP(op=2, hwsrc=NIC_MAC, psrc=IP4, hwdst=PEER_MAC,
                                   pdst=REMOTE4)),
    "rarp": bytes(eth(type=0x8035) / Raw(b"\x00" * 28)),
    "lldp": bytes(eth(dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x02\x07\x04" + b"\x00" * 40)),
    "mpls": bytes(eth(type=0x8847) / Raw(b"\x00\x01\x01\x40") / INNER4),
    "ethertype-0x1234": bytes(eth(type=0x1234) / Raw(b"\x00" * 46)),
    "ieee-802.3-length-field": bytes(eth(type=46) / Raw(b"\xaa\xaa\x03" + b"\x00" * 43)),
    "ethernet-header-only": bytes(eth(type=0x1234)),
    "icmp-dest-unreachable": bytes(v4(ICMP(type=3, code=3) / EMBEDDED4)),
    "icmp-redirect": bytes(v4(ICMP(type=5, code=1, gw=REMOTE4) / EMBEDDED4)),
    "icmp-time-exceeded": bytes(v4(ICMP(type=11) / EMBEDDED4)),
    "icmp-source-quench": bytes(v4(ICMP(type=4) / EMBEDDED4)),
    "icmp-timestamp": bytes(v4(ICMP(type=13, id=ECHO_ID))),
    "icmp-router-solicitation": bytes(v4(ICMP(type=10))),
    "icmp-echo-type-with-id-of-binding-but-type-9": bytes(v4(ICMP(type=9, id=ECHO_ID))),
    "icmpv6-neighbour-advert": bytes(v6(ICMPv6ND_NA(tgt=IP6))),
    "icmpv6-router-advert": bytes(v6(ICMPv6ND_RA(), dst="ff02::1")),
    "icmpv6-redirect": bytes(v6(ICMPv6ND_Redirect(tgt=REMOTE6, dst=REMOTE6))),
    "icmpv6-dest-unreachable": bytes(v6(ICMPv6DestUnreach() / EMBEDDED6)),
    "icmpv6-packet-too-big": bytes(v6(ICMPv6PacketTooBig(mtu=1280) / EMBEDDED6)),
    "icmpv6-time-exceeded": bytes(v6(ICMPv6TimeExceeded() / EMBEDDED6)),
    "icmpv6-mld-query": bytes(v6(ICMPv6MLQuery())),
}


@pytest.mark.parametrize("frame", NOT_ALLOWED.values(), ids=NOT_ALLOWED.keys())
def test_not_allowed(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    expect_drop(sw, app, frame, "not-allowed")


# --- fragment ----------------------------------------------------------------------------

# A later fragment whose first fragment this port did not send (tests/test_neighbours.py
# has the datagrams whose later fragments follow).
FRAGMENT = {
    "ipv4-offset-1": bytes(v4(b"x" * 16, proto=17, frag=1)),
    "ipv4-offset-and-mf": bytes(v4(b"x" * 16, proto=17, frag=100, flags="MF")),
    "ipv4-last-fragment": bytes(v4(b"x" * 16, proto=17, frag=8191)),
    "ipv4-df-and-offset": bytes(v4(b"x" * 16, proto=17, frag=2, flags="DF")),
    "ipv6-fragment-not-first": bytes(v6(IPv6ExtHdrFragment(m=0, offset=10, nh=17) /
                                        Raw(b"x" * 16))),
    "ipv6-fragment-not-first-more": bytes(v6(IPv6ExtHdrFragment(m=1, offset=1, nh=17) /
                                             Raw(b"x" * 16))),
}

# A first fragment carries the L4 header: it is checked like any frame.
FIRST_FRAGMENT = {
    "ipv4-mf-first-fragment": bytes(v4(UDP(sport=APP_PORT, dport=53) / Raw(b"x" * 16),
                                       flags="MF")),
    "ipv4-fragment-with-options": bytes(v4(UDP(sport=APP_PORT, dport=53), flags="MF",
                                           options=[ROUTER_ALERT])),
    "ipv6-fragment-header": bytes(v6(IPv6ExtHdrFragment(m=1, offset=0) /
                                     UDP(sport=APP_PORT, dport=53))),
    "ipv6-atomic-fragment": bytes(v6(IPv6ExtHdrFragment(m=0, offset=0) /
                                     UDP(sport=APP_PORT, dport=53))),
    "ipv6-hbh-then-fragment": bytes(v6(IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(m=1) /
                                       UDP(sport=APP_PORT, dport=53))),
}


@pytest.mark.parametrize("frame", FIRST_FRAGMENT.values(), ids=FIRST_FRAGMENT.keys())
def test_first_fragment_is_checked_like_any_frame(sw: ms.Switch, app: ms.Port,
                                                  frame: bytes) -> None:
    expect_forward(sw, app, frame)


@pytest.mark.parametrize("frame", FRAGMENT.values(), ids=FRAGMENT.keys())
def test_fragment(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    expect_drop(sw, app, frame, "fragment")


# --- unsupported-header ------------------------------------------------------------------


def ext_then_udp(nh: int) -> bytes:
    """IPv6 whose first extension header is protocol number ``nh`` (16 bytes, then UDP)."""
    return bytes(v6(b"\x11\x01" + b"\x00" * 14 + UDP_HDR, nh=nh))


UNSUPPORTED = {
    "ah": ext_then_udp(51),
    "esp": bytes(v6(b"\x00\x00\x10\x00\x00\x00\x00\x01" + b"\x00" * 24, nh=50)),
    "mobility": ext_then_udp(135),
    "hip": ext_then_udp(139),
    "shim6": ext_then_udp(140),
    "experimental-253": ext_then_udp(253),
    "experimental-254": ext_then_udp(254),
    "ah-after-hbh": bytes(v6(IPv6ExtHdrHopByHop(nh=51) /
                             Raw(b"\x11\x01" + b"\x00" * 14 + UDP_HDR))),
    "9-ext-headers": bytes(v6(dest_opts(9) / UDP(sport=APP_PORT, dport=53))),
    "hbh-and-8-more": bytes(v6(IPv6ExtHdrHopByHop() / dest_opts(8) /
                               UDP(sport=APP_PORT, dport=53))),
    "16-ext-headers": bytes(v6(dest_opts(16) / UDP(sport=APP_PORT, dport=53))),
    "one-ext-header-264B": bytes(v6(
        IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 254), PadN(optdata=b"")]) /
        UDP(sport=APP_PORT, dport=53))),
    "ext-headers-264B-in-two": bytes(v6(
        IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\x00" * 244)]) / dest_opts(2) /
        UDP(sport=APP_PORT, dport=53))),
    "hbh-second": bytes(v6(IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() /
                           UDP(sport=APP_PORT, dport=53))),
    "hbh-twice": bytes(v6(IPv6ExtHdrHopByHop() / IPv6ExtHdrHopByHop() /
                          UDP(sport=APP_PORT, dport=53))),
    "hbh-after-routing": bytes(v6(IPv6ExtHdrRouting() / IPv6ExtHdrHopByHop() /
                                  UDP(sport=APP_PORT, dport=53))),
}


def test_unsupported_cases_are_the_sizes_they_claim() -> None:
    assert len(UNSUPPORTED["one-ext-header-264B"]) == 14 + 40 + 264 + 8
    assert len(UNSUPPORTED["ext-headers-264B-in-two"]) == 14 + 40 + 264 + 8


@pytest.mark.parametrize("frame", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_unsupported_header(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    expect_drop(sw, app, frame, "unsupported-header")


# --- binding checks: spoofed-src-ip, spoofed-protocol, spoofed-src-port ----------------

SPOOFED_SRC_IP = {
    "udp4-foreign": udp4(src=FOREIGN4),
    "udp6-foreign": udp6(src=FOREIGN6),
    "udp4-local-but-unbound": udp4(src=IP4_B),
    "udp6-local-but-unbound": udp6(src=IP6_B),
    "tcp4-remote-address": bytes(v4(TCP(sport=APP_PORT, dport=80), src=REMOTE4, dst=IP4)),
    "echo4-foreign": echo4(src=FOREIGN4),
    "echo6-local-but-unbound": echo6(src=IP6_B),
    "portless4-unbound-address": bytes(v4(b"\x00" * 8, proto=PORTLESS4, src=IP4_B)),
    "udp4-zero-source": udp4(src="0.0.0.0"),
    "udp4-broadcast-source": udp4(src="255.255.255.255"),
    "udp6-v4-mapped-local": udp6(src="::ffff:10.0.0.2"),
    "udp6-unspecified": udp6(src="::"),
}


@pytest.mark.parametrize("frame", SPOOFED_SRC_IP.values(), ids=SPOOFED_SRC_IP.keys())
def test_spoofed_src_ip(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    v = expect_drop(sw, app, frame, "spoofed-src-ip")
    assert "app holds" in v.detail and f"udp {IP4}:{APP_PORT}" in v.detail


@pytest.mark.parametrize("frame", [udp4(), udp6(), echo4(), echo6()],
                         ids=["udp4", "udp6", "echo4", "echo6"])
def test_port_without_bindings_sends_nothing(sw: ms.Switch, frame: bytes) -> None:
    bare = sw.port("bare")
    v = expect_drop(sw, bare, frame, "spoofed-src-ip")
    assert "nothing" in v.detail


def test_unbind_revokes_the_right_to_send(sw: ms.Switch) -> None:
    a = sw.port("a")
    b = a.bind(IP4, "udp", APP_PORT)
    expect_forward(sw, a, udp4())
    a.unbind(b)
    expect_drop(sw, a, udp4(), "spoofed-src-ip")


SPOOFED_PROTOCOL = {
    "gre4": bytes(v4(b"\x00" * 8, proto=47)),
    "pim6": bytes(v6(b"\x00" * 8, nh=103)),
    "igmp4": bytes(v4(b"\x11\x64\xee\x9b\x00\x00\x00\x00", proto=2)),
    "ipv4-icmp-proto-on-v6": bytes(v6(bytes(ICMP(type=8, id=ECHO_ID)), nh=1)),
    "ipv6-icmpv6-proto-on-v4": bytes(v4(bytes(ICMP(type=8, id=ECHO_ID)), proto=58)),
    "ipip4": bytes(v4(INNER4, proto=4)),
}


@pytest.mark.parametrize("frame", SPOOFED_PROTOCOL.values(), ids=SPOOFED_PROTOCOL.keys())
def test_spoofed_protocol(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    v = expect_drop(sw, app, frame, "spoofed-protocol")
    assert "but not for" in v.detail


@pytest.mark.parametrize("family", [4, 6])
def test_spoofed_protocol_udp_port_sends_tcp(sw: ms.Switch, family: int) -> None:
    u = sw.port("udponly")
    ip = IP4_B if family == 4 else IP6_B
    u.bind(ip, "udp", 6000)
    build = v4 if family == 4 else v6
    expect_forward(sw, u, bytes(build(UDP(sport=6000, dport=53), src=ip)))
    expect_drop(sw, u, bytes(build(TCP(sport=6000, dport=80), src=ip)), "spoofed-protocol")
    expect_drop(sw, u, bytes(build(SCTP(sport=6000, dport=80), src=ip)), "spoofed-protocol")
    echo = echo4 if family == 4 else echo6
    expect_drop(sw, u, echo(6000, src=ip), "spoofed-protocol")


SPOOFED_SRC_PORT = {
    "udp4": udp4(sport=APP_PORT + 1),
    "udp6": udp6(sport=APP_PORT + 1),
    "udp4-port-0": udp4(sport=0),
    "tcp4": bytes(v4(TCP(sport=APP_PORT + 1, dport=80))),
    "tcp6": bytes(v6(TCP(sport=65535, dport=80))),
    "tcp4-right-port-as-destination": bytes(v4(TCP(sport=80, dport=APP_PORT))),
    "sctp4": bytes(v4(SCTP(sport=APP_PORT + 1, dport=80))),
    "dccp4": bytes(v4(dccp(APP_PORT + 1, 80), proto=33)),
    "dccp6": bytes(v6(dccp(APP_PORT + 1, 80), nh=33)),
    "udplite4": bytes(v4(UDP(sport=APP_PORT + 1, dport=80), proto=136)),
    "echo4-request-other-id": echo4(ECHO_ID + 1),
    "echo4-reply-other-id": echo4(ECHO_ID + 1, reply=True),
    "echo6-request-other-id": echo6(ECHO_ID + 1),
    "echo6-reply-id-0": echo6(0, reply=True),
}


@pytest.mark.parametrize("frame", SPOOFED_SRC_PORT.values(), ids=SPOOFED_SRC_PORT.keys())
def test_spoofed_src_port(sw: ms.Switch, app: ms.Port, frame: bytes) -> None:
    v = expect_drop(sw, app, frame, "spoofed-src-port")
    assert "but not port" in v.detail


def test_icmp_echo_identifier_is_the_port(sw: ms.Switch) -> None:
    """ICMP echo is checked on its identifier, not on anything else in the header."""
    p = sw.port("pinger")
    p.bind(IP4, "icmp", 4242)
    p.bind(IP6, "icmpv6", 4242)
    expect_forward(sw, p, bytes(v4(ICMP(type=8, id=4242, seq=99))))
    expect_forward(sw, p, bytes(v4(ICMP(type=0, id=4242, seq=1))))
    expect_forward(sw, p, echo6(4242))
    expect_drop(sw, p, bytes(v4(ICMP(type=8, id=4243, seq=4242))), "spoofed-src-port")
    expect_drop(sw, p, echo6(4243), "spoofed-src-port")


# --- the MultiStack flaw: TX is checked against the SENDING port --------------------------


@pytest.fixture
def other(sw: ms.Switch) -> ms.Port:
    """Port "b", holding udp/tcp 6000 and icmp(v6) echo id 99 on IP4 and IP6."""
    b = sw.port("b")
    for ip in (IP4, IP6):
        b.bind(ip, "udp", 6000)
        b.bind(ip, "tcp", 6000)
        b.bind(ip, "icmp" if ip == IP4 else "icmpv6", 99)
    return b


@pytest.mark.parametrize("frame", [
    udp4(6000), udp6(6000), bytes(v4(TCP(sport=6000, dport=80))),
    bytes(v6(TCP(sport=6000, dport=80))), echo4(99), echo6(99)],
    ids=["udp4", "udp6", "tcp4", "tcp6", "echo4", "echo6"])
def test_cannot_send_with_another_ports_binding(sw: ms.Switch, other: ms.Port,
                                                frame: bytes) -> None:
    """MultiStack let a port send with any registered 3-tuple; here a port that bound
    nothing on that IP is refused as spoofed-src-ip, while the owner may send it."""
    intruder = sw.port("intruder")
    intruder.bind(IP4_B, "udp", 6000)  # holds something, but on another address
    expect_drop(sw, intruder, frame, "spoofed-src-ip")
    expect_forward(sw, other, frame)
    assert sw.stats()["ports"]["b"]["drops"]["spoofed-src-ip"] == 0


def test_another_ports_binding_on_a_shared_address(sw: ms.Switch, app: ms.Port,
                                                   other: ms.Port) -> None:
    """app holds udp/tcp 5000 on IP4 and b holds udp/tcp 6000 there: app may not use 6000."""
    expect_drop(sw, app, udp4(6000), "spoofed-src-port")
    expect_drop(sw, app, bytes(v6(TCP(sport=6000, dport=80))), "spoofed-src-port")
    expect_drop(sw, app, echo4(99), "spoofed-src-port")
    expect_forward(sw, other, udp4(6000))


def test_another_ports_protocol_on_a_shared_address(sw: ms.Switch, other: ms.Port) -> None:
    s = sw.port("sctponly")
    s.bind(IP4, "sctp", 6000)
    expect_drop(sw, s, udp4(6000), "spoofed-protocol")


# --- hairpin -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_hairpin_to_another_port(sw: ms.Switch, app: ms.Port, other: ms.Port,
                                 family: int) -> None:
    frame = (udp4(APP_PORT, 6000, dst=IP4, dst_mac=NIC_MAC) if family == 4
             else udp6(APP_PORT, 6000, dst=IP6, dst_mac=NIC_MAC))
    v = sw.explain("app", frame)
    assert (v.action, v.reason, v.to) == ("forward", None, "b")
    assert "'b'" in v.detail
    before = sw.stats()
    app.send(frame)
    assert sw.wire.capture() == []
    assert other.recv(timeout=2.0) == frame
    assert app.recv(timeout=0) is None
    after = sw.stats()
    assert after["ports"]["app"]["tx"]["frames"] == before["ports"]["app"]["tx"]["frames"] + 1
    assert after["ports"]["b"]["rx"] == {
        "frames": before["ports"]["b"]["rx"]["frames"] + 1,
        "bytes": before["ports"]["b"]["rx"]["bytes"] + len(frame)}
    assert after["nic"]["tx"] == before["nic"]["tx"]
    assert after["nic"]["rx"] == before["nic"]["rx"]


def test_hairpin_to_another_local_address(sw: ms.Switch, app: ms.Port) -> None:
    c = sw.port("c")
    c.bind(IP4_B, "tcp", 443)
    frame = bytes(v4(TCP(sport=APP_PORT, dport=443, flags="S"), dst=IP4_B))
    app.send(frame)
    assert sw.wire.capture() == []
    assert c.recv(timeout=2.0) == frame


def test_hairpin_icmp_echo_to_self(sw: ms.Switch, app: ms.Port) -> None:
    frame = echo4(dst=IP4)
    assert sw.explain("app", frame).to == "app"
    app.send(frame)
    assert sw.wire.capture() == []
    assert app.recv(timeout=2.0) == frame


def test_hairpin_goes_by_destination_binding(sw: ms.Switch, app: ms.Port,
                                             other: ms.Port) -> None:
    """A frame to b's address but a port b did not bind is not delivered to b."""
    frame = udp4(APP_PORT, 6001, dst=IP4)
    assert sw.explain("app", frame).to != "b"
    app.send(frame)
    sw.wire.capture()
    assert other.recv(timeout=0.05) is None


def test_spoofed_frame_is_not_hairpinned(sw: ms.Switch, other: ms.Port) -> None:
    """A frame dropped by the filter is not delivered even if its destination is bound."""
    intruder = sw.port("intruder")
    frame = udp4(6000, 6000, dst=IP4)  # "from" b's binding, to b's binding
    expect_drop(sw, intruder, frame, "spoofed-src-ip")
    assert other.recv(timeout=0.05) is None


# --- order: a frame with several faults is dropped with the earliest -----------------------

ORDER = {
    # (frame, reason)
    "malformed+spoofed-mac": (ihl(udp4(mac=OTHER_MAC), 4), "malformed"),
    "malformed+oversize": (ihl(padded(v4(UDP(sport=APP_PORT, dport=53)), 1600), 4),
                           "malformed"),
    "malformed+oversize+spoofed-mac": (
        tot_len(padded(v4(UDP(sport=APP_PORT, dport=53), mac=OTHER_MAC), 1600), 1700),
        "malformed"),
    "malformed+spoofed-src-ip": (bytes(v4(UDP_HDR[:4], proto=17, src=FOREIGN4)),
                                 "malformed"),
    "malformed+fragment(bad-option)": (patch(bytes(v4(UDP(sport=APP_PORT, dport=53),
                                                      flags="MF", options=[ROUTER_ALERT])),
                                             OPT + 1, b"\x01"), "malformed"),
    "malformed+not-allowed(short-icmp-error)": (bytes(v4(b"\x03\x03\x00\x00", proto=1)),
                                                "malformed"),
    "oversize+spoofed-mac": (padded(v4(UDP(sport=APP_PORT, dport=53), mac=OTHER_MAC), 1515),
                             "oversize"),
    "oversize+vlan": (padded(eth() / Dot1Q(vlan=3) / INNER4, 1600), "oversize"),
    "oversize+not-allowed": (padded(eth(type=0x1234), 1600), "oversize"),
    "oversize+spoofed-src-ip": (padded(v4(UDP(sport=APP_PORT, dport=53), src=FOREIGN4),
                                       1515), "oversize"),
    "spoofed-mac+vlan": (bytes(eth(src=OTHER_MAC) / Dot1Q(vlan=10) / INNER4),
                         "spoofed-src-mac"),
    "spoofed-mac+arp": (bytes(eth(src=OTHER_MAC, dst="ff:ff:ff:ff:ff:ff") /
                              ARP(hwsrc=OTHER_MAC, psrc=IP4, pdst=REMOTE4)),
                        "spoofed-src-mac"),
    "spoofed-mac+fragment": (bytes(v4(b"x" * 16, proto=17, frag=5, mac=OTHER_MAC)),
                             "spoofed-src-mac"),
    "spoofed-mac+unsupported": (bytes(v6(b"\x11\x01" + b"\x00" * 14 + UDP_HDR, nh=51,
                                         mac=OTHER_MAC)), "spoofed-src-mac"),
    "spoofed-mac+spoofed-src-ip": (udp4(src=FOREIGN4, mac=OTHER_MAC), "spoofed-src-mac"),
    "vlan+arp": (bytes(eth() / Dot1Q(vlan=10) / ARP(hwsrc=NIC_MAC, psrc=IP4)), "vlan"),
    "not-allowed+spoofed-src-ip": (bytes(v4(ICMP(type=3, code=3) / EMBEDDED4, src=FOREIGN4)),
                                   "not-allowed"),
    "nd-solicitation+spoofed-src-ip-v6": (bytes(v6(ICMPv6ND_NS(tgt=REMOTE6), src="fe80::1")),
                                          "spoofed-src-ip"),
    "nd-advert+spoofed-src-ip-v6": (bytes(v6(ICMPv6ND_NA(tgt=REMOTE6), src="fe80::1")),
                                    "not-allowed"),
    "arp-sender-mac+sender-ip": (bytes(eth(dst="ff:ff:ff:ff:ff:ff") /
                                       ARP(hwsrc=OTHER_MAC, psrc=FOREIGN4, pdst=REMOTE4)),
                                 "spoofed-src-mac"),
    "arp-sender-ip+reply": (bytes(eth() / ARP(op=2, hwsrc=NIC_MAC, psrc=FOREIGN4,
                                              pdst=REMOTE4)), "spoofed-src-ip"),
    "arp-short+sender-mac": (bytes(eth(dst="ff:ff:ff:ff:ff:ff") /
                                   ARP(hwsrc=OTHER_MAC, psrc=IP4, pdst=REMOTE4))[:30],
                             "malformed"),
    "not-allowed+first-fragment": (bytes(v4(ICMP(type=3, code=3) / EMBEDDED4,
                                            flags="MF")), "not-allowed"),
    "first-fragment+spoofed-src-ip": (bytes(v4(UDP(sport=APP_PORT, dport=53), flags="MF",
                                               src=FOREIGN4)), "spoofed-src-ip"),
    "first-fragment+unsupported-header": (bytes(v6(IPv6ExtHdrFragment(m=1, nh=51) /
                                                   Raw(b"\x11\x01" + b"\x00" * 14 + UDP_HDR))),
                                          "unsupported-header"),
    "first-fragment+spoofed-src-ip-v6": (bytes(v6(IPv6ExtHdrFragment(m=1) /
                                                  UDP(sport=APP_PORT, dport=53), src=FOREIGN6)),
                                         "spoofed-src-ip"),
    "later-fragment+spoofed-src-ip": (bytes(v4(b"x" * 16, proto=17, frag=3, src=FOREIGN4)),
                                      "fragment"),
    "ext-headers-then-fragment": (bytes(v6(dest_opts(8) / IPv6ExtHdrFragment(m=1) /
                                           UDP(sport=APP_PORT, dport=53))),
                                  "unsupported-header"),
    "unsupported-header+spoofed-src-ip": (bytes(v6(b"\x11\x01" + b"\x00" * 14 + UDP_HDR,
                                                   nh=51, src=FOREIGN6)),
                                          "unsupported-header"),
    "spoofed-src-ip+spoofed-protocol": (bytes(v4(b"\x00" * 8, proto=47, src=IP4_B)),
                                        "spoofed-src-ip"),
    "spoofed-src-ip+spoofed-port": (udp6(APP_PORT + 1, src=IP6_B), "spoofed-src-ip"),
    "spoofed-protocol+other-port": (bytes(v4(TCP(sport=1, dport=80), proto=47)),
                                    "spoofed-protocol"),
    # A truncated Fragment header is an extension header running past the payload.
    "malformed+fragment(truncated-fragment-header)": (bytes(v6(b"\x11\x00\x00\x01", nh=44)),
                                                      "malformed"),
}


@pytest.mark.parametrize("frame,reason", ORDER.values(), ids=ORDER.keys())
def test_order_earliest_reason_wins(sw: ms.Switch, app: ms.Port, frame: bytes,
                                    reason: str) -> None:
    expect_drop(sw, app, frame, reason)


# --- the drop log and counters -----------------------------------------------------------


def test_drops_are_logged_in_order_with_frames(sw: ms.Switch, app: ms.Port) -> None:
    cases = [(udp4()[:10], "malformed"), (udp4(mac=OTHER_MAC), "spoofed-src-mac"),
             (NOT_ALLOWED["arp-reply"], "not-allowed"), (udp4(src=FOREIGN4), "spoofed-src-ip"),
             (udp4(sport=1), "spoofed-src-port")]
    t0 = time.time()
    app.send_batch([f for f, _ in cases])
    assert sw.wire.capture() == []
    log = sw.drops()
    assert len(log) == len(cases)
    for rec, (frame, reason) in zip(log, cases):
        assert rec["port"] == "app"
        assert rec["direction"] == "tx"
        assert rec["reason"] == reason
        assert rec["frame"] == frame
        assert rec["len"] == len(frame)
        assert t0 - 5 <= rec["time"] <= time.time() + 5
    assert [r["reason"] for r in sw.drops(limit=2)] == ["spoofed-src-ip", "spoofed-src-port"]
    drops = sw.stats()["ports"]["app"]["drops"]
    for _, reason in cases:
        assert drops[reason] == 1
    assert sum(drops.values()) == len(cases)


def test_forwarded_and_dropped_interleaved(sw: ms.Switch, app: ms.Port) -> None:
    """A batch mixing good and bad frames: the good ones reach the wire in order."""
    good = [udp4(payload=bytes([i])) for i in range(5)]
    bad = [udp4(sport=9, payload=bytes([i])) for i in range(5)]
    batch = [f for pair in zip(good, bad) for f in pair]
    assert app.send_batch(batch) == len(batch)
    assert sw.wire.capture() == good
    s = sw.stats()["ports"]["app"]
    assert s["tx"] == {"frames": 5, "bytes": sum(map(len, good))}
    assert s["drops"]["spoofed-src-port"] == 5
    assert [r["frame"] for r in sw.drops()] == bad


def test_drops_of_one_port_are_not_counted_on_another(sw: ms.Switch, app: ms.Port,
                                                      other: ms.Port) -> None:
    expect_drop(sw, app, udp4(mac=OTHER_MAC), "spoofed-src-mac")
    assert sum(sw.stats()["ports"]["b"]["drops"].values()) == 0
    assert sw.drops(1)[-1]["port"] == "app"


def test_explain_does_not_send_or_count(sw: ms.Switch, app: ms.Port) -> None:
    before = sw.stats()
    for frame in (udp4(), udp4(src=FOREIGN4), udp4(mac=OTHER_MAC)):
        sw.explain("app", frame)
    assert sw.wire.capture() == []
    assert sw.stats() == before
    assert sw.drops() == []


# --- the bindings table behind the checks ------------------------------------------------


def test_unbinding_one_of_several_keeps_the_others(sw: ms.Switch) -> None:
    """Per-address and per-protocol knowledge is reference counted: releasing one binding
    turns its frames into the next reason down, not into a false pass or a wrong reason."""
    a = sw.port("a")
    u1 = a.bind(IP4, "udp", 5000)
    u2 = a.bind(IP4, "udp", 5001)
    t = a.bind(IP4, "tcp", 80)
    a.unbind(u1)
    expect_drop(sw, a, udp4(5000), "spoofed-src-port")
    expect_forward(sw, a, udp4(5001))
    a.unbind(u2)
    expect_drop(sw, a, udp4(5001), "spoofed-protocol")
    expect_forward(sw, a, bytes(v4(TCP(sport=80, dport=1234))))
    a.unbind(t)
    expect_drop(sw, a, bytes(v4(TCP(sport=80, dport=1234))), "spoofed-src-ip")


def test_many_bindings_and_churn(sw: ms.Switch) -> None:
    """Hundreds of bindings over two ports (the table grows and deletes by shifting):
    every frame still gets the verdict of its own port's bindings."""
    a, b = sw.port("a"), sw.port("b")
    held: dict[int, ms.Binding] = {}
    for n in range(1, 401):
        held[n] = (a if n % 2 else b).bind(IP4 if n % 3 else IP6, "udp", n)
    for n in range(1, 401, 4):  # release a quarter of them
        (a if n % 2 else b).unbind(held.pop(n))
    assert len(sw.bindings()) == len(held)

    def frame(n: int) -> bytes:
        return udp4(n) if n % 3 else udp6(n)

    for n in range(1, 401):
        owner, other_ = ("a", "b") if n % 2 else ("b", "a")
        v_owner, v_other = sw.explain(owner, frame(n)), sw.explain(other_, frame(n))
        if n in held:
            assert v_owner.action == "forward", (n, v_owner)
        else:
            assert v_owner.reason == "spoofed-src-port", (n, v_owner)
        assert v_other.reason == "spoofed-src-port", (n, v_other)
    sent = [frame(n) for n in range(1, 401, 2)]  # port a's numbers
    a.send_batch(sent)
    assert sw.wire.capture() == [frame(n) for n in range(1, 401, 2) if n in held]
    assert sw.stats()["ports"]["a"]["drops"]["spoofed-src-port"] == \
        sum(1 for n in range(1, 401, 2) if n not in held)
