"""Property tests (hypothesis) for the filter, the demultiplexer, explain() and bindings.

Every test creates one Switch with fixed ports and bindings and runs its hypothesis examples
against it (the switch is not rebuilt per example). Each example drains the wire and the
ports first and compares counter deltas, so examples stay independent even while
hypothesis shrinks a failure.

Frames are built here by hand (struct), from the spec in DESIGN.md, so the test does not
share the datapath's parser: valid UDP/TCP/SCTP/ICMP-echo/port-less frames over IPv4 (with
and without options) and IPv6 (with and without Hop-by-Hop/Destination Options/Routing
headers), then mutated: bit flips, byte overwrites, insertions, deletions, header fields
set to interesting values, truncation, padding past the MTU.

The expectations come from the datapath itself (explain() against what the switch does,
counters against what was sent) and from invariants that need no copy of the filter: a
forwarded frame carries the switch's MAC, fits the MTU and a source tuple the sender
holds; no second copy of the filter's rules lives here.
"""
from __future__ import annotations

import contextlib
import functools
import ipaddress
import struct
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant, precondition, rule,
                                 run_state_machine_as_test)

import ministack as ms
from ministack.binding import lib

# --- the test network -------------------------------------------------------------------

ADDRESSES = ["10.0.0.2", "10.0.0.3", "fd00::2", "fd00::3"]
REMOTE = {4: "10.0.0.1", 6: "fd00::1"}
PEER_MAC = bytes.fromhex("020000000001")
BUF_SIZE = 2048
PROTO = {"icmp": 1, "tcp": 6, "udp": 17, "dccp": 33, "gre": 47, "icmpv6": 58, "sctp": 132,
         "udplite": 136}

# (family, ip, protocol, port) each port holds for the frame properties.
A_BINDS = [
    (4, "10.0.0.2", "udp", 5000),
    (4, "10.0.0.2", "tcp", 80),
    (4, "10.0.0.2", "icmp", 7),
    (4, "10.0.0.2", "sctp", 7000),
    (4, "10.0.0.2", 253, 0),
    (6, "fd00::2", "udp", 5000),
    (6, "fd00::2", "tcp", 443),
    (6, "fd00::2", "icmpv6", 9),
    (6, "fd00::2", "gre", 0),
    (6, "fd00::2", "dccp", 5000),
    (4, "10.0.0.2", "udplite", 5000),
]
B_BINDS = [
    (4, "10.0.0.3", "udp", 6000),
    (4, "10.0.0.2", "udp", 5001),
    (4, "10.0.0.3", "icmp", 7),
    (4, "10.0.0.3", "tcp", 80),
    (6, "fd00::3", "tcp", 8080),
    (6, "fd00::2", "udp", 5001),
    (6, "fd00::3", "icmpv6", 9),
]
B_MTU = 576  # b's frames may be at most 590 bytes, a's 1514
ALL_BINDS = [("a", b) for b in A_BINDS] + [("b", b) for b in B_BINDS]



def pnum(proto: str | int) -> int:
    return proto if isinstance(proto, int) else PROTO[proto]


def has_ports(family: int, proto: int) -> bool:
    """Whether a protocol carries ports (or an echo identifier), as the datapath says."""
    return bool(lib.ms_proto_has_ports(family, proto))


def norm_ip(ip: str) -> str:
    return str(ipaddress.ip_address(ip))


def key(ip: str, proto: str | int, port: int) -> tuple[str, int, int]:
    return (norm_ip(ip), pnum(proto), port)


# --- frame builders ---------------------------------------------------------------------

def csum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(src_mac: bytes, ethertype: int, payload: bytes, dst_mac: bytes = PEER_MAC) -> bytes:
    return dst_mac + src_mac + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, options: bytes = b"") -> bytes:
    assert len(options) % 4 == 0
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(payload), 0x1234,
                      0x4000, 64, proto, 0, ipaddress.IPv4Address(src).packed,
                      ipaddress.IPv4Address(dst).packed) + options
    hdr = hdr[:10] + struct.pack("!H", csum16(hdr)) + hdr[12:]
    return hdr + payload


def _ext(h) -> tuple[int, int, int]:
    """(header number, bytes, fragment offset) of an ext chain entry."""
    if isinstance(h, tuple) and h[0] == "frag":
        return 44, 8, h[1]
    if isinstance(h, tuple):
        return h[0], h[1], 0
    return h, 8, 0


def ext_len(h) -> int:
    return _ext(h)[1]


def ipv6(src: str, dst: str, proto: int, payload: bytes, ext: tuple = ()) -> bytes:
    """ext: extension headers before the upper-layer header, in order: a number (0
    Hop-by-Hop, 43 Routing, 60 Destination Options) for an 8-byte header, (number, bytes)
    for a longer one (a multiple of 8, options padded with Pad1), or ("frag", offset) for
    a Fragment header (more fragments follow)."""
    chain = b""
    nhs = [_ext(h)[0] for h in ext] + [proto]
    for i, h in enumerate(ext):
        num, n, frag_off = _ext(h)
        nxt = nhs[i + 1]
        if num == 44:
            chain += struct.pack("!BBHI", nxt, 0, (frag_off << 3) | 1, 0x12345678)
        elif num == 43:  # Routing, type 0, no segments left
            chain += struct.pack("!BBBB", nxt, n // 8 - 1, 0, 0) + bytes(n - 4)
        else:            # HBH / DestOpts: PadN, then Pad1 to the end
            chain += struct.pack("!BBBB4x", nxt, n // 8 - 1, 1, 4) + bytes(n - 8)
    first = nhs[0]
    payload = chain + payload
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), first, 64,
                       ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
                       ) + payload


def l4(family: int, proto: int, sport: int, dport: int, payload: bytes, reply: bool = False
       ) -> bytes:
    if proto in (17, 136):
        return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if proto == 6:
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload
    if proto == 132:
        return struct.pack("!HHII", sport, dport, 0xdeadbeef, 0) + payload
    if proto == 33:  # DCCP, X=1: 16-byte generic header
        return struct.pack("!HHBBHBBHI", sport, dport, 4, 0, 0, 0x01, 0, 0, 1) + payload
    if (family, proto) in ((4, 1), (6, 58)):  # echo: the identifier is the port
        typ = {4: (8, 0), 6: (128, 129)}[family][reply]
        body = struct.pack("!BBHHH", typ, 0, 0, sport, 1) + payload
        return body[:2] + struct.pack("!H", csum16(body)) + body[4:]
    return payload  # a port-less protocol


def frame(src_mac: bytes, family: int, src: str, dst: str, proto: int, sport: int,
          dport: int, payload: bytes = b"", opts: bytes = b"", ext: tuple[int, ...] = (),
          reply: bool = False, dst_mac: bytes = PEER_MAC) -> tuple[bytes, dict]:
    """A frame and the offsets of its header fields: name -> (offset, width)."""
    seg = l4(family, proto, sport, dport, payload, reply)
    if family == 4:
        body = ipv4(src, dst, proto, seg, opts)
        l4off = 14 + 20 + len(opts)
        fields = {"ver_ihl": (14, 1), "tot_len": (16, 2), "frag": (20, 2), "proto": (23, 1),
                  "src_ip4": (26, 4), "dst_ip4": (30, 4)}
        if opts:
            fields["opt"] = (34, 2)
        et = 0x0800
    else:
        body = ipv6(src, dst, proto, seg, ext)
        l4off = 14 + 40 + sum(map(ext_len, ext))
        fields = {"ver_ihl": (14, 1), "plen": (18, 2), "proto": (20, 1), "src_ip6": (22, 16),
                  "dst_ip6": (38, 16)}
        if ext:
            fields["ext"] = (54, 2)
            fields["ext_opt"] = (56, 2)
        fields["chain"] = tuple(ext)  # not an offset: which chain the frame carries
        et = 0x86DD
    f = eth(src_mac, et, body, dst_mac)
    fields["tuple"] = (family, proto)  # not an offset either
    fields.update({"dst_mac": (0, 6), "src_mac": (6, 6), "ethertype": (12, 2)})
    if has_ports(family, proto):
        if proto in (1, 58):
            fields.update({"icmp_type": (l4off, 1), "sport": (l4off + 4, 2),
                           "dport": (l4off + 4, 2)})
        else:
            fields.update({"sport": (l4off, 2), "dport": (l4off + 2, 2)})
        if proto == 6:
            fields["tcp_doff"] = (l4off + 12, 1)
        if proto == 33:
            fields.update({"dccp_doff": (l4off + 4, 1), "dccp_x": (l4off + 8, 1)})
    return f, fields


def ip4(s: str) -> int:
    return int(ipaddress.IPv4Address(s))


def ip6(s: str) -> int:
    return int(ipaddress.IPv6Address(s))


# IPv6 extension header chains: none, the usual ones, and at and past the limits of
# DESIGN.md (8 headers, 256 bytes).
EXT_CHAINS = [(), (), (), (0,), (60,), (43,), (0, 43, 60), (0,) + (60,) * 7, (0,) + (60,) * 8,
              ((0, 256),), ((0, 264),), ((0, 128), (43, 64), (60, 64)),
              ((0, 128), (43, 64), (60, 72)), (60, 0),
              (("frag", 0),), (("frag", 1),), (0, ("frag", 0), 60), (("frag", 185),)]
# Chains the spec refuses (or leaves open: Hop-by-Hop not first).
BAD_CHAINS = {(0,) + (60,) * 8, ((0, 264),), ((0, 128), (43, 64), (60, 72)), (60, 0),
              (("frag", 0),), (("frag", 1),), (0, ("frag", 0), 60), (("frag", 185),)}

FIELD_VALUES = {
    "ethertype": [0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8, 0x9100, 0x88CC, 0],
    "ver_ihl": [0x45, 0x46, 0x44, 0x4F, 0x65, 0x60, 0x40, 0x55],
    "tot_len": [0, 19, 20, 21, 27, 28, 40, 1500, 0xFFFF],
    "plen": [0, 1, 7, 8, 20, 0xFFFF],
    "frag": [0x2000, 0x0001, 0x4000, 0x0000, 0x3FFF, 0x8000],
    "proto": [0, 1, 6, 17, 33, 43, 44, 47, 50, 51, 58, 59, 60, 132, 135, 136, 253, 255],
    "src_ip4": [ip4("10.0.0.3"), ip4("10.0.0.2"), ip4("10.0.0.9"), ip4("10.0.0.1")],
    "dst_ip4": [ip4("10.0.0.3"), ip4("10.0.0.2"), ip4("10.0.0.1")],
    "src_ip6": [ip6("fd00::3"), ip6("fd00::2"), ip6("fd00::9"), ip6("fd00::1")],
    "dst_ip6": [ip6("fd00::3"), ip6("fd00::2"), ip6("fd00::1")],
    "sport": [0, 7, 9, 80, 443, 5000, 5001, 6000, 7000, 8080, 0xFFFF],
    "dport": [0, 7, 9, 80, 443, 5000, 5001, 6000, 7000, 8080, 0xFFFF],
    "icmp_type": [0, 3, 5, 8, 11, 128, 129, 133, 134, 135, 136],
    "tcp_doff": [0x00, 0x40, 0x50, 0x60, 0xF0],
    "dccp_doff": [0, 2, 3, 4, 5, 6, 255],
    "dccp_x": [0x00, 0x01, 0x02, 0x03],
    "src_mac": [0x024D53000002, 0x024D53000003, 0xFFFFFFFFFFFF, 0],
    "dst_mac": [0xFFFFFFFFFFFF, 0x024D53000002],
    "opt": [0x0000, 0x0101, 0x9400, 0x9401, 0x9402, 0x9404, 0x9405, 0x44FF],
    "ext": [0x0000, 0x3A00, 0x1100, 0x2C00, 0x3300, 0x0001, 0x00FF, 0x0600, 0x3C00],
    "ext_opt": [0x0104, 0x0105, 0x0000, 0x01FF, 0xC204],
}
FIELD_WIDTH = {"ethertype": 2, "ver_ihl": 1, "tot_len": 2, "plen": 2, "frag": 2, "proto": 1,
               "src_ip4": 4, "dst_ip4": 4, "src_ip6": 16, "dst_ip6": 16, "sport": 2,
               "dport": 2, "icmp_type": 1, "tcp_doff": 1, "dccp_doff": 1, "dccp_x": 1, "src_mac": 6, "dst_mac": 6,
               "opt": 2, "ext": 2, "ext_opt": 2}


def _names(fields: dict) -> tuple[str, ...]:
    return tuple(sorted(n for n in fields if n in FIELD_VALUES))


# Strategies are built once per frame layout (building them per draw is slow).
@functools.lru_cache(maxsize=None)
def _field_op(names: tuple[str, ...]):
    return st.one_of([
        st.tuples(st.just("field"), st.just(n),
                  st.one_of(st.sampled_from(FIELD_VALUES[n]),
                            st.integers(0, (1 << (8 * FIELD_WIDTH[n])) - 1)))
        for n in names])


def field_op(fields: dict):
    """Set one of the frame's own header fields to an interesting or a random value."""
    return _field_op(_names(fields))


POS = st.integers(0, 4095)


@functools.lru_cache(maxsize=None)
def _mutations(names: tuple[str, ...]):
    fop = _field_op(names)
    return st.one_of(
        st.tuples(st.just("flip"), POS, st.integers(0, 7)),
        st.tuples(st.just("set"), POS, st.integers(0, 255)),
        st.tuples(st.just("ins"), POS, st.binary(min_size=1, max_size=4)),
        st.tuples(st.just("del"), POS, st.integers(1, 4)),
        fop,
        fop,
        fop,
        st.tuples(st.just("steal"), st.integers(0, len(ALL_BINDS) - 1)),
        st.tuples(st.just("trunc"), POS),
        st.tuples(st.just("pad"), st.integers(1, 600)),
        # to a length around a port's limit (MTU + 14: 1514 for a, 590 for b) or the
        # buffer's
        st.tuples(st.just("padto"), st.one_of(st.sampled_from([589, 590, 591, 1513, 1514,
                                                               1515, 2048]),
                                              st.integers(500, 2048))),
    )


def mutations(fields: dict):
    """Mutations of one frame; field ops and "steal" (take the source tuple of any
    binding of the same family and protocol, the other port's included) use the frame's
    own layout."""
    return _mutations(_names(fields))


@functools.lru_cache(maxsize=None)
def _ops_for(names: tuple[str, ...]):
    return st.one_of(
        st.just(()),
        st.tuples(_field_op(names)),
        st.lists(_mutations(names), min_size=1, max_size=3).map(tuple),
    )


def ops_for(fields: dict):
    """No mutation, one header field set (the sharpest probe of each check), or up to
    three mutations of any kind."""
    return _ops_for(_names(fields))


def mutate(f: bytes, fields: dict, ops) -> bytes:
    b = bytearray(f)
    for op in ops:
        kind = op[0]
        if kind == "field":
            _, name, value = op
            if name in FIELD_WIDTH and name in fields:
                off, width = fields[name]
                if off + width <= len(b):
                    b[off:off + width] = value.to_bytes(width, "big")
        elif kind == "steal":
            family, proto = fields["tuple"]
            same = [bd for _o, bd in ALL_BINDS if bd[0] == family and pnum(bd[2]) == proto]
            if same:
                _fam, ip, _pr, port = same[op[1] % len(same)]
                for name, value in ((f"src_ip{family}", int(ipaddress.ip_address(ip))),
                                    ("sport", port)):
                    if name in fields:
                        off, width = fields[name]
                        if off + width <= len(b):
                            b[off:off + width] = value.to_bytes(width, "big")
        elif kind == "trunc":
            del b[op[1] % (len(b) + 1):]
        elif kind == "pad":
            b += bytes(op[1])
        elif kind == "padto":
            b += bytes(max(0, op[1] - len(b)))
        elif kind == "ins":
            pos = op[1] % (len(b) + 1)
            b[pos:pos] = op[2]
        elif b:  # flip / set / del need a byte to work on
            pos = op[1] % len(b)
            if kind == "flip":
                b[pos] ^= 1 << op[2]
            elif kind == "set":
                b[pos] = op[2]
            else:
                del b[pos:pos + op[2]]
    return bytes(b[:BUF_SIZE])


# --- frame strategies -------------------------------------------------------------------

def _ports_of(binds, family, proto):
    return [p for (fam, _ip, pr, p) in binds if fam == family and pnum(pr) == proto]


@st.composite
def tx_base(draw, sender: str, mac: bytes):
    """A valid frame `sender` may send: its MAC, one of its bindings as the source."""
    binds = A_BINDS if sender == "a" else B_BINDS
    family, src, proto, sport = draw(st.sampled_from(binds))
    proto = pnum(proto)
    dst = draw(st.sampled_from([REMOTE[family]] + [a for a in ADDRESSES
                                                  if ipaddress.ip_address(a).version == family]))
    if proto in (1, 58):
        dport = sport  # echo: one identifier
    elif has_ports(family, proto):
        dport = draw(st.one_of(
            st.sampled_from(_ports_of(A_BINDS + B_BINDS, family, proto) or [1]),
            st.integers(1, 65535)))
    else:
        dport = 0
    payload = draw(st.one_of(st.just(b""), st.binary(max_size=64)))
    opts = ext = None
    if family == 4:
        opts = draw(st.sampled_from([b"", b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00"]))
    else:
        ext = draw(st.sampled_from(EXT_CHAINS))
    reply = draw(st.booleans())
    f, fields = frame(mac, family, src, dst, proto, sport, dport, payload,
                      opts=opts or b"", ext=ext or (), reply=reply)
    return f, fields, (family, src, proto, sport, dst, dport)


@st.composite
def tx_frame(draw, sender: str, mac: bytes):
    """(frame, mutations): a valid frame, mutated a little or not at all; sometimes random
    bytes."""
    if draw(st.integers(0, 9)) == 0:
        raw = draw(st.binary(max_size=200))
        return raw, ("random",)
    f, fields, _ = draw(tx_base(sender, mac))
    ops = draw(ops_for(fields))
    f = mutate(f, fields, ops)
    if fields.get("chain") in BAD_CHAINS:
        ops += (("bad extension chain",),)  # not a frame the sender may send unchanged
    return f, ops


@st.composite
def nic_base(draw):
    """A valid frame from the network addressed to a bound tuple (or to an unbound one):
    the frame, its fields, and the port it belongs to (None: nobody)."""
    if draw(st.booleans()):
        owner, (family, dst, proto, dport) = draw(st.sampled_from(ALL_BINDS))
        proto = pnum(proto)
    else:
        owner = None
        family = draw(st.sampled_from([4, 6]))
        proto = draw(st.sampled_from([17, 6, 1 if family == 4 else 58, 132]))
        dst = draw(st.sampled_from([a for a in ADDRESSES + [REMOTE[family]]
                                    if ipaddress.ip_address(a).version == family]))
        dport = draw(st.integers(1, 65535))
        bound = {key(ip, pr, p) for (_o, (fam, ip, pr, p)) in ALL_BINDS}
        if key(dst, proto, dport) in bound:
            owner = next(o for (o, (fam, ip, pr, p)) in ALL_BINDS
                         if key(ip, pr, p) == key(dst, proto, dport))
    src = REMOTE[family] if draw(st.booleans()) else {4: "192.0.2.7", 6: "2001:db8::7"}[family]
    sport = dport if proto in (1, 58) else draw(st.integers(1, 65535))
    payload = draw(st.one_of(st.just(b""), st.binary(max_size=64)))
    opts = ext = None
    if family == 4:
        opts = draw(st.sampled_from([b"", b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00"]))
    else:
        ext = draw(st.sampled_from(EXT_CHAINS))
    f, fields = frame(PEER_MAC, family, src, dst, proto, sport, dport, payload,
                      opts=opts or b"", ext=ext or (), reply=draw(st.booleans()),
                      dst_mac=bytes.fromhex(ms.switch.DEFAULT_MAC.replace(":", "")))
    if proto in (1, 58):  # the receiver's identifier is in the frame's own "sport" slot
        fields["dport"] = fields["sport"]
    return f, fields, owner


@st.composite
def nic_frame(draw):
    """(frame, expected owner or "?" when mutated, mutations)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200)), "?", ("random",)
    f, fields, owner = draw(nic_base())
    ops = draw(ops_for(fields))
    if fields.get("chain") in BAD_CHAINS:
        owner = "?"  # goes to the host (no-binding), whatever its destination
    return mutate(f, fields, ops), (owner if not ops else "?"), ops


# --- reading forwarded frames ------------------------------------------------------------

def ip_tuples(f: bytes) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
    """(source, destination) as (IP, protocol, port) of a frame the switch forwarded: only
    fixed offsets and the extension header lengths are read, no verdict is made (scapy was
    tried here and misreads long Hop-by-Hop headers). The echo identifier is the port for
    ICMP echo, 0 for protocols without ports."""
    if f[12:14] == b"\x08\x00":
        family, proto = 4, f[23]
        src, dst = f[26:30], f[30:34]
        l4 = f[14 + (f[14] & 15) * 4:]
    else:
        family, proto, off = 6, f[20], 54
        src, dst = f[22:38], f[38:54]
        while proto in (0, 43, 60, 44):  # a Fragment header (44) is 8 bytes, no length field
            proto, off = f[off], off + (8 if proto == 44 else (f[off + 1] + 1) * 8)
        l4 = f[off:]
    sport = dport = 0
    if proto in (1, 58) and has_ports(family, proto):
        sport = dport = struct.unpack("!H", l4[4:6])[0]
    elif has_ports(family, proto):
        sport, dport = struct.unpack("!HH", l4[:4])
    return ((str(ipaddress.ip_address(src)), proto, sport),
            (str(ipaddress.ip_address(dst)), proto, dport))


def fragment(f: bytes) -> tuple[str | None, tuple[bytes, ...]]:
    """("first" | "later" | None, the datagram's (source, destination, identification))
    of a forwarded frame, read at fixed offsets as ip_tuples() reads."""
    if f[12:14] == b"\x08\x00":
        flags = struct.unpack("!H", f[20:22])[0]
        key = (f[26:30], f[30:34], f[18:20])
        return ("later" if flags & 0x1FFF else "first" if flags & 0x2000 else None), key
    proto, off = f[20], 54
    while proto in (0, 43, 60):
        proto, off = f[off], off + (f[off + 1] + 1) * 8
    if proto != 44:
        return None, ()
    fo = struct.unpack("!H", f[off + 2:off + 4])[0]
    key = (f[22:38], f[38:54], f[off + 4:off + 8])
    return ("later" if fo >> 3 else "first" if fo & 1 else None), key


# --- the switch under test --------------------------------------------------------------

class Env:
    """One switch with ports a (MTU 1500) and b (MTU 576) holding A_BINDS and B_BINDS."""

    def __init__(self, sw: ms.Switch) -> None:
        self.sw = sw
        self.mac = bytes.fromhex(sw.mac.replace(":", ""))
        self.ports = {"a": sw.port("a"), "b": sw.port("b", mtu=B_MTU)}
        self.mtu = {"a": 1500, "b": B_MTU}
        self.binds: dict[str, set] = {"a": set(), "b": set()}
        self.owners: dict[tuple, str] = {}
        for name, binds in (("a", A_BINDS), ("b", B_BINDS)):
            for (_fam, ip, proto, port) in binds:
                self.ports[name].bind(ip, proto, port)
                self.binds[name].add(key(ip, proto, port))
                self.owners[key(ip, proto, port)] = name
        self.sent = {"a": 0, "b": 0}

    def recv_all(self, name: str) -> list[bytes]:
        out: list[bytes] = []
        while True:
            got = self.ports[name].recv_batch(256, timeout=0)
            out += got
            if len(got) < 256:
                return out

    def drain(self) -> None:
        self.sw.wire.capture()
        for n in self.ports:
            self.recv_all(n)

    def counters(self) -> dict[str, int]:
        """Every counter, flattened: 'a.tx.frames', 'a.drops.malformed', 'nic.rx.bytes', ..."""
        out = {}
        s = self.sw.stats()
        for name, ps in s["ports"].items():
            for k in ("tx", "rx"):
                for m in ("frames", "bytes"):
                    out[f"{name}.{k}.{m}"] = ps[k][m]
            for r, n in ps["drops"].items():
                out[f"{name}.drops.{r}"] = n
        for k in ("rx", "tx", "to-host"):
            for m in ("frames", "bytes"):
                out[f"nic.{k}.{m}"] = s["nic"][k][m]
        for r, n in s["nic"]["drops"].items():
            out[f"nic.drops.{r}"] = n
        return out

    def send(self, name: str, frames: list[bytes]):
        """Send, then collect what happened: (wire frames, {port: received}, counter
        deltas)."""
        self.drain()
        before = self.counters()
        assert self.ports[name].send_batch(frames, timeout=5.0) == len(frames)
        self.sent[name] += len(frames)
        wire = self.sw.wire.capture(timeout=5.0)
        got = {n: self.recv_all(n) for n in self.ports}
        after = self.counters()
        delta = {k: after[k] - before[k] for k in after}
        return wire, got, delta

    def check_alive(self) -> None:
        """A known good frame still leaves: the switch thread survived."""
        f, _ = frame(self.mac, 4, "10.0.0.2", REMOTE[4], 17, 5000, 53, b"canary")
        self.drain()
        self.ports["a"].send(f, timeout=5.0)
        assert self.sw.wire.capture(timeout=5.0) == [f]


@contextlib.contextmanager
def env() -> Iterator[Env]:
    with ms.Switch(nic="virtual", addresses=ADDRESSES) as sw:
        yield Env(sw)


PROPERTY = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow],
                database=None)


def drop_sum(delta: dict, port: str) -> int:
    return sum(v for k, v in delta.items() if k.startswith(f"{port}.drops."))


# --- 1. mutated frames never crash the switch and are all accounted for -----------------

def test_mutated_tx_frames_are_all_accounted_for():
    with env() as e:
        @settings(max_examples=250, **PROPERTY)
        @given(sender=st.sampled_from(["a", "b"]), data=st.data())
        def prop(sender, data):
            items = data.draw(st.lists(tx_frame(sender, e.mac), min_size=1, max_size=8),
                              label="frames")
            frames = [f for f, _ in items]
            note("frames: " + " ".join(f.hex() for f in frames))
            wire, got, d = e.send(sender, frames)
            other = "b" if sender == "a" else "a"
            # Every frame is either transmitted or dropped with exactly one reason.
            assert d[f"{sender}.tx.frames"] + drop_sum(d, sender) == len(frames), d
            # Transmitted frames went to the wire or were hairpinned; nothing was lost.
            hairpinned = got["a"] + got["b"]
            assert d[f"{sender}.tx.frames"] == len(wire) + len(hairpinned), d
            assert d[f"{sender}.tx.bytes"] == sum(map(len, wire + hairpinned)), d
            assert d["nic.tx.frames"] == len(wire) and d["nic.tx.bytes"] == sum(map(len, wire))
            assert d["nic.drops.ring-full"] == 0 and d[f"{sender}.drops.ring-full"] == 0
            assert drop_sum(d, other) == 0 and d[f"{other}.tx.frames"] == 0
            assert d["nic.rx.frames"] == 0
        prop()
        s = e.sw.stats()["ports"]
        for name in ("a", "b"):
            assert s[name]["tx"]["frames"] + sum(s[name]["drops"].values()) == e.sent[name]
        e.check_alive()


# --- 2. nothing leaves with a source tuple the sender did not bind ----------------------

def test_only_bound_source_tuples_leave():
    with env() as e:
        # A later fragment has no ports of its own: it may leave only after its datagram's
        # first fragment left from the same sender, in this example or an earlier one (the
        # switch's fragment table outlives an example).
        firsts: set[tuple[object, ...]] = set()

        @settings(max_examples=250, **PROPERTY)
        @given(sender=st.sampled_from(["a", "b"]), data=st.data())
        def prop(sender, data):
            items = data.draw(st.lists(tx_frame(sender, e.mac), min_size=1, max_size=8),
                              label="frames")
            frames = [f for f, _ in items]
            wire, got, _ = e.send(sender, frames)
            local = {norm_ip(a) for a in ADDRESSES}
            out_all = [("wire", wire), ("a", got["a"]), ("b", got["b"])]
            firsts.update((sender, *fragment(f)[1]) for _, out in out_all for f in out
                          if fragment(f)[0] == "first")
            for to, out in out_all:
                for f in out:
                    note(f"forwarded to {to}: {f.hex()}")
                    assert f in frames
                    assert f[6:12] == e.mac, "a forwarded frame has a foreign source MAC"
                    assert len(f) <= e.mtu[sender] + 14, "an oversize frame was forwarded"
                    kind, key = fragment(f)
                    if kind == "later":
                        assert (sender, *key) in firsts, f"a later fragment with no first: {f.hex()}"
                        continue
                    src, dst = ip_tuples(f)
                    assert src in e.binds[sender], (
                        f"{sender} sent from {src}, which it does not hold "
                        f"({sorted(e.binds[sender])}): {f.hex()}")
                    if to == "wire":  # a destination bound here is hairpinned, never wired
                        assert dst not in e.owners or dst[0] not in local, (dst, f.hex())
                    else:             # hairpinned to the port that holds the destination
                        assert dst[0] in local and e.owners.get(dst) == to, (dst, to, f.hex())
        prop()
        e.check_alive()


# --- 3. explain() agrees with what the datapath does ------------------------------------

def check_tx(e: Env, sender: str, items: list) -> None:
    """Send items [(frame, mutations)] from `sender`; hold explain() to what the switch
    did."""
    frames = [f for f, _ in items]
    # One frame at a time, each explained just before it is sent: a later fragment's verdict
    # depends on the fragment table, which the frames before it (in this batch or an
    # earlier one) change.
    verdicts: list = []
    wire: list[bytes] = []
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    d: dict[str, int] = {}
    for f in frames:
        verdicts.append(e.sw.explain(sender, f))
        note(f"{f.hex()} -> {verdicts[-1]}")
        w1, g1, d1 = e.send(sender, [f])
        wire += w1
        for port in got:
            got[port] += g1[port]
        for k, n in d1.items():
            d[k] = d.get(k, 0) + n
    to_wire = [f for f, v in zip(frames, verdicts) if v.action == "forward" and v.to == "wire"]
    dropped = [(v.reason, f) for f, v in zip(frames, verdicts) if v.action == "drop"]
    assert wire == to_wire
    # A neighbour message the switch handles (local) may be answered: the answer is the
    # switch's own frame, delivered to the sender, and not one of those sent.
    answers = sum(1 for v in verdicts if v.action == "local" and v.to == sender)
    for port in ("a", "b"):
        sent_here = [f for f in got[port] if f in frames]
        assert sent_here == [f for f, v in zip(frames, verdicts)
                             if v.action == "forward" and v.to == port]
        assert len(got[port]) - len(sent_here) == (answers if port == sender else 0)
    for f, v in zip(frames, verdicts):
        assert v.action in ("forward", "drop", "local")
        if v.action == "forward":
            assert v.reason is None and v.to in ("wire", "a", "b"), v
        elif v.action == "local":
            assert v.reason is None and v.to in (None, sender) and v.code == 13, v
        else:
            assert v.reason in ms.switch.PORT_DROP_REASONS and v.to is None, v
        assert isinstance(v.detail, str) and v.detail
    # Unmutated frames built from the sender's own bindings always pass.
    for (f, ops), v in zip(items, verdicts):
        if ops == ():
            assert v.action == "forward", (f.hex(), v)
    # Each drop is counted under explain()'s reason and logged with the frame.
    for r in ms.switch.PORT_DROP_REASONS:
        assert d[f"{sender}.drops.{r}"] == sum(1 for rr, _ in dropped if rr == r), r
    if dropped:
        log = e.sw.drops(limit=len(dropped))
        assert [(x["port"], x["direction"], x["reason"], x["frame"], x["len"])
                for x in log] == [(sender, "tx", r, f, len(f)) for r, f in dropped]
        assert e.sw.drops(limit=1)[-1]["reason"] == dropped[-1][0]
        assert e.sw.drops(limit=1)[-1]["frame"] == dropped[-1][1]


def check_nic(e: Env, items: list) -> None:
    """Inject items [(frame, expected owner or "?", mutations)] from the wire; hold
    explain("nic", ...) to what the switch did."""
    frames = [f for f, _, _ in items]
    e.drain()
    before = e.counters()
    # One frame at a time, explained just before it arrives: a later fragment follows a
    # first fragment that may be earlier in this very batch (as in check_tx).
    verdicts: list = []
    got: dict[str, list[bytes]] = {n: [] for n in e.ports}
    wire: list[bytes] = []
    for f in frames:
        verdicts.append(e.sw.explain("nic", f))
        note(f"{f.hex()} -> {verdicts[-1]}")
        assert e.sw.wire.inject([f], timeout=5.0) == 1
        assert e.sw.sync(timeout=5.0)
        for n in e.ports:
            got[n] += e.recv_all(n)
        wire += e.sw.wire.capture()
    after = e.counters()
    d = {k: after[k] - before[k] for k in after}
    assert wire == []
    for port in ("a", "b"):
        expect = [f for f, v in zip(frames, verdicts) if v.to == port]
        assert got[port] == expect, port
        assert d[f"{port}.rx.frames"] == len(expect)
        assert d[f"{port}.rx.bytes"] == sum(map(len, expect))
    unbound = [f for f, v in zip(frames, verdicts) if v.reason == "no-binding"]
    oversize = [f for f, v in zip(frames, verdicts) if v.reason == "oversize"]
    for (f, owner, _ops), v in zip(items, verdicts):
        if v.action == "forward":
            assert v.reason is None and v.to in ("a", "b"), v
        elif v.reason == "oversize":  # bound, but beyond the port's MTU and not cuttable
            assert v.to is None and len(f) > min(e.mtu.values()) + 14, v
        else:
            assert (v.reason, v.to) == ("no-binding", None), v
        if owner != "?":  # unmutated: where it was built to go
            assert v.to == owner, (f.hex(), v, owner)
    assert d["nic.drops.no-binding"] == len(unbound)
    assert d["a.drops.oversize"] + d["b.drops.oversize"] == len(oversize)
    assert d["nic.rx.frames"] == len(frames)
    assert d["nic.rx.bytes"] == sum(map(len, frames))
    assert d["nic.to-host.frames"] == 0 and d["nic.drops.ring-full"] == 0
    if unbound and not oversize:
        log = e.sw.drops(limit=len(unbound))
        assert [(x["port"], x["direction"], x["reason"], x["frame"]) for x in log] == [
            ("nic", "rx", "no-binding", f) for f in unbound]


@settings(max_examples=1, database=None)
@given(st.just(None))  # check_nic() notes what it sees, which hypothesis allows in a test
def test_a_later_fragment_follows_its_first_in_the_same_batch(_: None) -> None:
    """Found by hypothesis in CI: a first fragment (IPv4 options, MF) and a later one of
    the same datagram arrive in one batch; explain() of the later one must be asked after
    the first has gone through, as the datapath sees it."""
    first = bytes.fromhex("024d530000020200000000010800460000201234200040117f920a000001"
                          "0a0000029404000001cc138900080000")  # options, MF
    later = bytes.fromhex("024d5300000202000000000108004500001d123400014011149a0a000001"
                          "0a000002693a1d54000900002c")  # offset 8
    with env() as e:
        check_nic(e, [(first, "?", ()), (later, "?", ())])
        assert e.sw.stats()["nic"]["fragments"]["followed"] == 1


def test_explain_agrees_with_tx_datapath():
    with env() as e:
        @settings(max_examples=250, **PROPERTY)
        @given(sender=st.sampled_from(["a", "b"]), data=st.data())
        def prop(sender, data):
            check_tx(e, sender, data.draw(st.lists(tx_frame(sender, e.mac), min_size=1,
                                                   max_size=6), label="frames"))
        prop()
        e.check_alive()


def test_explain_agrees_with_nic_datapath():
    with env() as e:
        @settings(max_examples=250, **PROPERTY)
        @given(items=st.lists(nic_frame(), min_size=1, max_size=6))
        def prop(items):
            check_nic(e, items)
        prop()
        e.check_alive()


@st.composite
def tx_edit(draw, sender: str, mac: bytes):
    """A valid frame with exactly one header field set."""
    f, fields, _ = draw(tx_base(sender, mac))
    op = draw(field_op(fields))
    ops = (op,) + ((("bad extension chain",),) if fields.get("chain") in BAD_CHAINS else ())
    return mutate(f, fields, (op,)), ops


@st.composite
def nic_edit(draw):
    f, fields, _owner = draw(nic_base())
    op = draw(field_op(fields))
    return mutate(f, fields, (op,)), "?", (op,)


def test_single_header_edits_explain_agrees():
    """One header field of a valid frame set to a boundary or random value, in both
    directions, many frames per example: explain() and the datapath agree on each."""
    with env() as e:
        @settings(max_examples=250, **PROPERTY)
        @given(sender=st.sampled_from(["a", "b"]), data=st.data())
        def prop(sender, data):
            check_tx(e, sender, data.draw(st.lists(tx_edit(sender, e.mac), min_size=1,
                                                   max_size=16), label="tx"))
            check_nic(e, data.draw(st.lists(nic_edit(), min_size=1, max_size=16),
                                   label="nic"))
        prop()
        e.check_alive()


# --- 4. bindings: a state machine against a Python model --------------------------------

POOL_IPS = ["10.0.0.2", "10.0.0.3", "fd00::2", "fd00::3", "10.0.0.9"]
POOL_PROTOS = ["udp", "tcp", "icmp", "icmpv6", "sctp", "gre", 253]
POOL_PORTS = [0, 1, 5000, 5001]
BIND_REASONS = {"address-not-local", "in-use", "bad-protocol", "bad-port", "not-owner"}
TUPLES = st.tuples(st.sampled_from(POOL_IPS), st.sampled_from(POOL_PROTOS),
                   st.sampled_from(POOL_PORTS))


class BindingMachine(RuleBasedStateMachine):
    NAMES = ("p0", "p1", "p2")

    def __init__(self, sw: ms.Switch, ports: dict) -> None:
        super().__init__()
        self.sw = sw
        self.ports = ports
        self.mac = bytes.fromhex(sw.mac.replace(":", ""))
        self.local = {norm_ip(a) for a in sw.addresses}
        for b in sw.bindings():  # start every run from an empty table
            self.ports[b.port].unbind(b)
        self.sw.wire.capture()
        self.model: dict[tuple[str, int, int], str] = {}

    def port_tuple_frame(self, ip: str, proto: int, port: int) -> bytes:
        family = ipaddress.ip_address(ip).version
        f, _ = frame(self.mac, family, ip, REMOTE[family], proto, port, port if proto in (1, 58)
                     else 53, b"state")
        return f

    def may_send(self, name: str, ip: str, proto: int, port: int) -> bool:
        """Whether `name` holds the tuple a frame from (ip, proto, port) carries."""
        family = ipaddress.ip_address(ip).version
        eff = (norm_ip(ip), proto, port if has_ports(family, proto) else 0)
        return self.model.get(eff) == name

    def check_send(self, name: str, ip: str, proto: int, port: int) -> None:
        f = self.port_tuple_frame(ip, proto, port)
        allowed = self.may_send(name, ip, proto, port)
        v = self.sw.explain(name, f)
        assert (v.action == "forward") == allowed, (name, ip, proto, port, v,
                                                     sorted(self.model.items()))
        self.ports[name].send(f, timeout=5.0)
        wire = self.sw.wire.capture(timeout=5.0)
        if allowed:
            assert wire == [f]
        else:
            assert wire == []
            last = self.sw.drops(limit=1)[-1]
            assert (last["port"], last["reason"], last["frame"]) == (name, v.reason, f)

    @rule(name=st.sampled_from(NAMES), t=TUPLES)
    def bind(self, name, t):
        ip, proto, port = t
        proto = pnum(proto)
        k = key(ip, proto, port)
        # Which tuples are refused and why is tested case by case in test_api.py; here the
        # model only tracks who holds what.
        try:
            b = self.ports[name].bind(ip, proto, port)
        except ms.BindError as exc:
            assert exc.reason in BIND_REASONS, (t, exc.reason)
            if k in self.model:
                assert exc.reason == "in-use", (t, exc.reason, self.model)
            return
        assert norm_ip(ip) in self.local, (t, "bound although not a local address")
        assert k not in self.model, (t, "bound twice: already held by", self.model.get(k))
        assert (norm_ip(b.ip), b.proto, b.local_port, b.port) == k + (name,)
        self.model[k] = name

    @rule(name=st.sampled_from(NAMES), t=TUPLES)
    def unbind(self, name, t):
        ip, proto, port = t
        k = key(ip, proto, port)
        holder = self.model.get(k)
        b = ms.Binding(name, norm_ip(ip), ms.ipproto.protocol_name(k[1]), port)
        if holder == name:
            self.ports[name].unbind(b)
            del self.model[k]
            # Unbound: the port may no longer send from that tuple.
            self.check_send(name, ip, k[1], port)
        else:
            with pytest.raises(ms.BindError) as exc:
                self.ports[name].unbind(b)
            if holder is not None:
                assert exc.value.reason == "not-owner"

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def unbind_held(self, data):
        k, name = data.draw(st.sampled_from(sorted(self.model.items())))
        b = next(b for b in self.sw.bindings() if key(b.ip, b.proto, b.local_port) == k)
        assert b.port == name
        self.ports[name].unbind(b)
        del self.model[k]
        self.check_send(name, *k)

    @rule(name=st.sampled_from(NAMES), t=TUPLES)
    def send_from(self, name, t):
        ip, proto, port = t
        if norm_ip(ip) not in self.local:
            return
        self.check_send(name, norm_ip(ip), pnum(proto), port)

    @rule(name=st.sampled_from(NAMES), ip=st.sampled_from(ADDRESSES[:4]),
          proto=st.sampled_from(["udp", "tcp", "sctp"]),
          ports=st.lists(st.integers(1, 400), max_size=80))
    def bind_many(self, name, ip, proto, ports):
        """Many bindings at once: the table grows, probe runs get long and wrap."""
        for port in ports:
            k = key(ip, proto, port)
            if k in self.model:
                with pytest.raises(ms.BindError) as exc:
                    self.ports[name].bind(ip, proto, port)
                assert exc.value.reason == "in-use"
            else:
                self.ports[name].bind(ip, proto, port)
                self.model[k] = name

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def unbind_many(self, data):
        """Many removals: backward-shift deletion moves the entries left behind."""
        held = sorted(self.model.items())
        for k, name in data.draw(st.lists(st.sampled_from(held), unique=True,
                                          max_size=len(held))):
            self.ports[name].unbind(ms.Binding(name, k[0], ms.ipproto.protocol_name(k[1]),
                                               k[2]))
            del self.model[k]

    @rule()
    def every_lookup_agrees(self):
        """Each held tuple is found: its owner may send from it, another port may not,
        and frames from the NIC addressed to it reach its owner."""
        for (ip, proto, port), name in sorted(self.model.items()):
            family = ipaddress.ip_address(ip).version
            assert self.sw.explain(name, self.port_tuple_frame(ip, proto, port)).reason is None
            other = next(n for n in self.NAMES if n != name)
            assert (self.sw.explain(other, self.port_tuple_frame(ip, proto, port)).action
                    == "drop")
            rx, _ = frame(PEER_MAC, family, REMOTE[family], ip, proto,
                          port if proto in (1, 58) else 40000, port, b"in",
                          dst_mac=self.mac)
            assert self.sw.explain("nic", rx).to == name, (ip, proto, port, name)

    @rule(name=st.sampled_from(NAMES))
    def reopen(self, name):
        """Closing a port releases its bindings; the name can be used again."""
        self.ports[name].close()
        self.model = {k: o for k, o in self.model.items() if o != name}
        self.ports[name] = self.sw.port(name)

    @invariant()
    def bindings_match_model(self):
        got = [(key(b.ip, b.proto, b.local_port), b.port) for b in self.sw.bindings()]
        tuples = [k for k, _ in got]
        assert len(tuples) == len(set(tuples)), f"a tuple is held twice: {got}"
        assert dict(got) == self.model
        for name in self.NAMES:
            mine = {key(b.ip, b.proto, b.local_port) for b in self.ports[name].bindings()}
            assert mine == {k for k, o in self.model.items() if o == name}


def test_bindings_state_machine():
    with ms.Switch(nic="virtual", addresses=ADDRESSES[:4]) as sw:
        ports = {n: sw.port(n) for n in BindingMachine.NAMES}
        run_state_machine_as_test(
            lambda: BindingMachine(sw, ports),
            settings=settings(max_examples=150, stateful_step_count=30, **PROPERTY))
