"""The public Python API (DESIGN.md, "Public Python API"): bind refusals and their reasons,
port names, argument errors, lifecycle, accepted frame types, bindings(), stats(), the MAC,
recv()/recv_batch()."""
from __future__ import annotations

import re
import time
from array import array

import pytest
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether

import ministack as ms
from conftest import (ADDRESSES, APP_PORT, FOREIGN4, FOREIGN6, IP4, IP4_B, IP6, NIC_MAC,
                      OTHER_MAC, REMOTE4, expect_deliver, expect_drop, expect_forward, padded,
                      udp4, udp6, v4)

FILTER_REASONS = ["malformed", "oversize", "spoofed-src-mac", "vlan", "not-allowed", "fragment",
                  "unsupported-header", "spoofed-src-ip", "spoofed-protocol",
                  "spoofed-src-port"]


def inbound(dport: int = APP_PORT, payload: bytes = b"in") -> bytes:
    return udp4(53, dport, payload, src=REMOTE4, dst=IP4, mac="02:00:00:00:00:01",
                dst_mac=NIC_MAC)


def refused(port: ms.Port, *args: object) -> ms.BindError:
    """The BindError port.bind(*args) raises; also checks that nothing got bound."""
    before = port._switch.bindings()
    with pytest.raises(ms.BindError) as ei:
        port.bind(*args)  # type: ignore[arg-type]
    assert port._switch.bindings() == before
    assert isinstance(ei.value, ms.MiniStackError)
    return ei.value


# --- bind refusals -----------------------------------------------------------------------


@pytest.mark.parametrize("ip", [FOREIGN4, FOREIGN6, "127.0.0.1", "0.0.0.0", "::",
                                "10.0.0.255", "fe80::2"])
def test_bind_address_not_local(sw: ms.Switch, ip: str) -> None:
    e = refused(sw.port("a"), ip, "udp", 5000)
    assert e.reason == "address-not-local"
    assert ip in str(e)
    assert IP4 in str(e)  # says which addresses can be bound


@pytest.mark.parametrize("ip", ["not-an-ip", "", "10.0.0", "10.0.0.2/24", "fd00::2::1"])
def test_bind_address_not_an_address(sw: ms.Switch, ip: str) -> None:
    e = refused(sw.port("a"), ip, "udp", 5000)
    assert e.reason == "address-not-local"
    assert repr(ip) in str(e) and "not an IP address" in str(e)


def test_bind_in_use_by_another_port(sw: ms.Switch) -> None:
    a, b = sw.port("a"), sw.port("b")
    a.bind(IP4, "udp", 5000)
    e = refused(b, IP4, "udp", 5000)
    assert e.reason == "in-use"
    assert "'a'" in str(e) and "5000" in str(e)
    assert [x.port for x in sw.bindings()] == ["a"]


def test_bind_in_use_by_same_port(sw: ms.Switch) -> None:
    a = sw.port("a")
    a.bind(IP6, "tcp", 443)
    e = refused(a, IP6, "tcp", 443)
    assert e.reason == "in-use"
    assert "this port" in str(e) and "443" in str(e)


@pytest.mark.parametrize("spelling", ["fd00:0:0:0::2", "FD00::2", " fd00::2 "])
def test_bind_in_use_whatever_the_address_spelling(sw: ms.Switch, spelling: str) -> None:
    sw.port("a").bind(IP6, "udp", 5000)
    assert refused(sw.port("b"), spelling, "udp", 5000).reason == "in-use"


def test_in_use_is_per_full_tuple(sw: ms.Switch) -> None:
    """Same number with another protocol, address or family is a different binding."""
    a, b = sw.port("a"), sw.port("b")
    a.bind(IP4, "udp", 5000)
    b.bind(IP4, "tcp", 5000)
    b.bind(IP4_B, "udp", 5000)
    b.bind(IP6, "udp", 5000)
    assert len(sw.bindings()) == 4


def test_unbind_then_rebind_elsewhere(sw: ms.Switch) -> None:
    a, b = sw.port("a"), sw.port("b")
    a.unbind(a.bind(IP4, "udp", 5000))
    assert b.bind(IP4, "udp", 5000).port == "b"


BAD_PROTOCOL = [
    (IP4, "nope", "unknown protocol"),
    (IP4, "", "unknown protocol"),
    (IP4, 256, "unknown protocol"),
    (IP4, -1, "unknown protocol"),
    (IP4, "300", "unknown protocol"),
    (IP4, None, "unknown protocol"),
    (IP4, True, "unknown protocol"),
    (IP4, "icmpv6", "icmp"),
    (IP4, 58, "icmp"),
    (IP6, "icmp", "icmpv6"),
    (IP6, 1, "icmpv6"),
    (IP6, 44, "extension header"),
    (IP6, 0, "extension header"),
    (IP6, 43, "extension header"),
    (IP6, 60, "extension header"),
    (IP6, 51, "extension header"),
    (IP6, "esp", "extension header"),
    (IP6, 135, "extension header"),
]


@pytest.mark.parametrize("ip,proto,words", BAD_PROTOCOL,
                         ids=[f"{'v4' if ip == IP4 else 'v6'}-{p!r}" for ip, p, _ in BAD_PROTOCOL])
def test_bind_bad_protocol(sw: ms.Switch, ip: str, proto: object, words: str) -> None:
    e = refused(sw.port("a"), ip, proto, 0)
    assert e.reason == "bad-protocol"
    assert words in str(e)


@pytest.mark.parametrize("proto,port", [("udp", 0), ("tcp", 0), ("sctp", 0), ("dccp", 0),
                                        ("udplite", 0), ("udp", 70000), ("udp", 65536),
                                        ("udp", -1), ("tcp", -5000), ("icmp", 65536),
                                        (253, 5), (47, 1), ("gre", 65535)])
def test_bind_bad_port(sw: ms.Switch, proto: object, port: int) -> None:
    e = refused(sw.port("a"), IP4, proto, port)
    assert e.reason == "bad-port"
    if port == 0:
        assert "1-65535" in str(e)
    elif not 0 <= port <= 65535:
        assert str(port) in str(e) and "65535" in str(e)
    else:
        assert "no ports" in str(e) and "port 0" in str(e)


@pytest.mark.parametrize("port", ["80", 80.0, None, True])
def test_bind_port_not_an_integer(sw: ms.Switch, port: object) -> None:
    e = refused(sw.port("a"), IP4, "udp", port)
    assert e.reason == "bad-port"
    assert repr(port) in str(e)


@pytest.mark.parametrize("ip,proto,port", [
    (IP4, "udp", 1), (IP4, "udp", 65535), (IP4, "icmp", 0), (IP4, "icmp", 65535),
    (IP6, "icmpv6", 0), (IP4, 253, 0), (IP6, 47, 0), (IP4, 44, 0), (IP4, 0, 0),
    (IP6, "sctp", 9), (IP6, "udplite", 9), (IP6, "dccp", 9), (IP4, "UDP", 53),
    (IP4, "17", 54)])
def test_bind_accepts(sw: ms.Switch, ip: str, proto: object, port: int) -> None:
    b = sw.port("a").bind(ip, proto, port)  # type: ignore[arg-type]
    assert b in sw.bindings()
    assert b.local_port == port


def test_unbind_not_owner(sw: ms.Switch) -> None:
    a, b = sw.port("a"), sw.port("b")
    held = b.bind(IP4, "udp", 6000)
    with pytest.raises(ms.BindError) as ei:
        a.unbind(held)
    assert ei.value.reason == "not-owner"
    assert "'b'" in str(ei.value) and "'a'" in str(ei.value)
    # the binding is intact: still listed, still delivered to b
    assert held in sw.bindings()
    expect_deliver(sw, inbound(6000), b)


def test_unbind_twice(sw: ms.Switch) -> None:
    a = sw.port("a")
    held = a.bind(IP4, "udp", 6000)
    a.unbind(held)
    with pytest.raises(ms.BindError) as ei:
        a.unbind(held)
    assert ei.value.reason == "not-owner"
    assert "not bound" in str(ei.value)


def test_unbind_needs_a_binding(sw: ms.Switch) -> None:
    a = sw.port("a")
    a.bind(IP4, "udp", 6000)
    with pytest.raises(TypeError):
        a.unbind((IP4, "udp", 6000))  # type: ignore[arg-type]
    assert len(sw.bindings()) == 1


# --- port names --------------------------------------------------------------------------


def test_port_name_taken(sw: ms.Switch) -> None:
    sw.port("app1")
    with pytest.raises(ms.PortError, match="app1"):
        sw.port("app1")
    assert [p.name for p in sw.ports()] == ["app1"]


@pytest.mark.parametrize("name", ["nic", "host"])
def test_port_name_reserved(sw: ms.Switch, name: str) -> None:
    with pytest.raises(ms.PortError, match="reserved"):
        sw.port(name)
    assert sw.ports() == []


@pytest.mark.parametrize("name", ["", "x" * 32, None, 7])
def test_port_name_invalid(sw: ms.Switch, name: object) -> None:
    with pytest.raises(ms.PortError):
        sw.port(name)  # type: ignore[arg-type]


def test_port_name_reusable_after_close(sw: ms.Switch) -> None:
    p = sw.port("app1")
    p.bind(IP4, "udp", 5000)
    p.close()
    q = sw.port("app1")
    assert q.bindings() == []
    q.bind(IP4, "udp", 5000)
    expect_forward(sw, q, udp4())


def test_port_mtu(sw: ms.Switch) -> None:
    assert sw.port("a").mtu == 1500
    assert sw.port("b", mtu=576).mtu == 576
    for bad in (67, 2048 - 13, 100000):
        with pytest.raises(ValueError, match="mtu"):
            sw.port("c", mtu=bad)


def test_switch_default_mtu_applies_to_ports() -> None:
    with ms.Switch(addresses=[IP4], mtu=576) as s:
        p = s.port("p")
        p.bind(IP4, "udp", APP_PORT)
        expect_forward(s, p, padded(v4(UDP(sport=APP_PORT, dport=53)), 590))
        expect_drop(s, p, padded(v4(UDP(sport=APP_PORT, dport=53)), 591), "oversize")


# --- argument errors ---------------------------------------------------------------------


def test_frame_larger_than_port_buffer(sw: ms.Switch, app: ms.Port) -> None:
    big = padded(v4(UDP(sport=APP_PORT, dport=53)), 2049)
    with pytest.raises(ValueError, match="2049"):
        app.send(big)
    with pytest.raises(ValueError, match="frame 1 is 2049 bytes"):
        app.send_batch([udp4(), big, udp4()])
    with pytest.raises(ValueError):
        sw.wire.inject(big)
    with pytest.raises(ValueError):
        sw.wire.inject([inbound(), big])
    # nothing of a refused batch was queued
    assert sw.wire.capture() == []
    s = sw.stats()
    assert s["ports"]["app"]["tx"]["frames"] == 0 and s["nic"]["rx"]["frames"] == 0
    assert app.recv(timeout=0) is None


def test_larger_buffers_allow_larger_frames() -> None:
    with ms.Switch(addresses=[IP4], buf_size=4096, mtu=4000) as s:
        p = s.port("p")
        p.bind(IP4, "udp", APP_PORT)
        expect_forward(s, p, padded(v4(UDP(sport=APP_PORT, dport=53)), 3000))


@pytest.mark.parametrize("obj", [12345, None, "a string frame", 3.5, object(), [b"nested"]],
                         ids=["int", "None", "str", "float", "object", "list"])
def test_not_a_frame(sw: ms.Switch, app: ms.Port, obj: object) -> None:
    with pytest.raises(TypeError, match="frame"):
        app.send(obj)
    with pytest.raises(TypeError):
        app.send_batch([udp4(), obj])
    with pytest.raises(TypeError):
        sw.explain("app", obj)
    with pytest.raises(TypeError):
        sw.explain("nic", obj)
    if not isinstance(obj, list):  # inject() takes a list of frames as a batch
        with pytest.raises(TypeError):
            sw.wire.inject(obj)
    assert sw.wire.capture() == []
    assert sw.stats()["ports"]["app"]["tx"]["frames"] == 0


def test_explain_unknown_port(sw: ms.Switch, app: ms.Port) -> None:
    with pytest.raises(ms.PortError) as ei:
        sw.explain("nobody", udp4())
    assert "nobody" in str(ei.value) and "app" in str(ei.value)
    with pytest.raises(ms.PortError):
        sw.explain("host", udp4())


def test_bad_timeouts(sw: ms.Switch, app: ms.Port) -> None:
    with pytest.raises(ValueError):
        app.recv(timeout=-1)
    with pytest.raises(ValueError):
        app.recv_batch(0)
    with pytest.raises(ValueError):
        app.recv_batch(-3)


@pytest.mark.parametrize("kwargs", [{"ring_slots": 1000}, {"ring_slots": 1},
                                    {"wire_slots": 3}, {"buf_size": 100},
                                    {"buf_size": 2000}, {"mtu": 2040}, {"mtu": 10},
                                    {"backend": "dpdk"}, {"mac": "02:00:00:00:00"},
                                    {"mac": "zz:00:00:00:00:00"},
                                    {"addresses": ["10.0.0.300"]}])
def test_switch_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ms.Switch(**kwargs)  # type: ignore[arg-type]


def test_switch_on_a_missing_interface_names_it() -> None:
    with pytest.raises(ms.MiniStackError, match="no interface 'ms-no-such0'.*topo up"):
        ms.Switch(nic="ms-no-such0")


def test_addresses_are_only_for_the_virtual_nic() -> None:
    with pytest.raises(ValueError, match="addresses come from lo"):
        ms.Switch(nic="lo", addresses=["10.0.0.2"])


def test_resolve_and_wire_are_for_their_own_nics(sw: ms.Switch) -> None:
    with pytest.raises(ms.MiniStackError, match="no neighbours"):
        sw.resolve("10.0.0.1")


# --- lifecycle ---------------------------------------------------------------------------


def test_closed_port(sw: ms.Switch, app: ms.Port) -> None:
    held = app.bindings()
    app.close()
    for call in (lambda: app.send(udp4()), lambda: app.send_batch([udp4()]),
                 lambda: app.recv(timeout=0), lambda: app.recv_batch(4, timeout=0),
                 lambda: app.bind(IP4, "udp", 1), lambda: app.unbind(held[0]),
                 lambda: app.stats()):
        with pytest.raises(ms.PortError, match="closed"):
            call()
    with pytest.raises(ms.PortError):
        sw.explain("app", udp4())
    assert "app" not in sw.stats()["ports"]
    assert sw.bindings() == []
    assert app.bindings() == []


def test_closed_switch(app: ms.Port) -> None:
    s = app._switch
    s.close()
    for call in (lambda: s.port("new"), lambda: s.stats(), lambda: s.drops(),
                 lambda: s.bindings(), lambda: s.explain("app", udp4()),
                 lambda: s.explain("nic", udp4()), lambda: s.wire, lambda: s.sync()):
        with pytest.raises(ms.MiniStackError, match="closed"):
            call()
    for call in (lambda: app.send(udp4()), lambda: app.recv(timeout=0),
                 lambda: app.bind(IP4, "udp", 1)):
        with pytest.raises(ms.MiniStackError, match="closed"):
            call()


def test_wire_of_closed_switch(sw: ms.Switch) -> None:
    wire = sw.wire
    sw.close()
    with pytest.raises(ms.MiniStackError, match="closed"):
        wire.inject(inbound())
    with pytest.raises(ms.MiniStackError, match="closed"):
        wire.capture()


def test_close_is_idempotent(sw: ms.Switch) -> None:
    p = sw.port("p")
    p.close()
    p.close()
    q = sw.port("q")
    sw.close()
    sw.close()
    q.close()
    p.close()
    assert "closed" in repr(sw) and "closed" in repr(q)


def test_switch_context_manager() -> None:
    with ms.Switch(addresses=ADDRESSES, mac=NIC_MAC) as s:
        p = s.port("p")
        p.bind(IP4, "udp", APP_PORT)
        expect_forward(s, p, udp4())
    with pytest.raises(ms.MiniStackError):
        s.stats()
    with pytest.raises(ms.MiniStackError):
        p.send(udp4())


def test_switch_context_manager_closes_on_error() -> None:
    with pytest.raises(RuntimeError):
        with ms.Switch() as s:
            raise RuntimeError("boom")
    with pytest.raises(ms.MiniStackError):
        s.port("p")


def test_port_context_manager(sw: ms.Switch) -> None:
    with sw.port("p") as p:
        p.bind(IP4, "udp", APP_PORT)
        expect_forward(sw, p, udp4())
    with pytest.raises(ms.PortError):
        p.send(udp4())
    assert sw.bindings() == []
    assert sw.port("p").bind(IP4, "udp", APP_PORT).port == "p"


def test_many_switches_are_independent() -> None:
    with ms.Switch(addresses=[IP4], mac=NIC_MAC) as s1, \
            ms.Switch(addresses=[IP4], mac=NIC_MAC) as s2:
        a1, a2 = s1.port("a"), s2.port("a")
        a1.bind(IP4, "udp", APP_PORT)
        a2.bind(IP4, "udp", APP_PORT)  # the same tuple on another switch is free
        a1.send(udp4())
        assert s1.wire.capture() == [udp4()]
        assert s2.wire.capture() == []


def test_port_id_reuse_starts_from_zero(sw: ms.Switch) -> None:
    """A new port that takes a closed port's slot inherits neither its counters nor its
    bindings."""
    old = sw.port("old")
    old.bind(IP4, "udp", APP_PORT)
    old.send_batch([udp4(), udp4(mac=OTHER_MAC)])
    sw.wire.inject(inbound())
    sw.wire.capture()
    assert old.recv(timeout=1.0) == inbound()
    old.close()
    new = sw.port("new")
    s = new.stats()
    assert s["tx"] == {"frames": 0, "bytes": 0} and s["rx"] == {"frames": 0, "bytes": 0}
    assert all(n == 0 for n in s["drops"].values())
    assert new.bindings() == []
    expect_drop(sw, new, udp4(), "spoofed-src-ip")
    assert sw.explain("nic", inbound()).reason == "no-binding"


def test_bindings_table_full() -> None:
    with ms.Switch(addresses=[IP4], max_bindings=4) as s:
        p = s.port("p")
        for n in range(1, 5):
            p.bind(IP4, "udp", n)
        with pytest.raises(ms.BindError) as ei:
            p.bind(IP4, "udp", 5)
        assert ei.value.reason in ("address-not-local", "in-use", "bad-protocol", "bad-port",
                                   "not-owner")
        assert "full" in str(ei.value)
        p.unbind(p.bindings()[0])
        p.bind(IP4, "udp", 5)


def test_wire_ring_full_on_transmit() -> None:
    """More forwarded frames than the wire ring holds, before anyone captures: the rest are
    dropped as NIC ring-full (direction tx), and the counts add up."""
    with ms.Switch(addresses=[IP4], mac=NIC_MAC, wire_slots=8) as s:
        p = s.port("p")
        p.bind(IP4, "udp", APP_PORT)
        frames = [udp4(payload=bytes([i])) for i in range(20)]
        assert p.send_batch(frames) == 20
        assert s.sync()
        st = s.stats()
        assert st["nic"]["tx"]["frames"] + st["nic"]["drops"]["ring-full"] == 20
        assert st["nic"]["tx"]["frames"] == 8
        assert [(r["port"], r["direction"], r["reason"]) for r in s.drops()] == \
            [("nic", "tx", "ring-full")] * 12
        assert s.wire.capture() == frames[:8]
        assert st["ports"]["p"]["drops"]["ring-full"] == 0


# --- frame types -------------------------------------------------------------------------

FRAME_KINDS = {
    "bytes": lambda f: f,
    "bytearray": bytearray,
    "memoryview": memoryview,
    "memoryview-slice": lambda f: memoryview(b"\xff\xff" + f + b"\xff")[2:-1],
    "memoryview-of-uint16-array": lambda f: memoryview(array("H", f)),
    "scapy": lambda f: Ether(f),
}


@pytest.mark.parametrize("kind", FRAME_KINDS.values(), ids=FRAME_KINDS.keys())
def test_frame_kinds(sw: ms.Switch, app: ms.Port, kind) -> None:  # type: ignore[no-untyped-def]
    out = udp4(payload=b"even-length!")
    assert len(out) % 2 == 0  # so that it fits an array of uint16
    inb = inbound(payload=b"even-length!")
    assert len(inb) % 2 == 0
    assert sw.explain("app", kind(out)).to == "wire"
    assert sw.explain("nic", kind(inb)).to == "app"
    app.send(kind(out))
    assert sw.wire.capture() == [out]
    assert app.send_batch([kind(out), kind(out)]) == 2
    assert app.send_batch(iter([kind(out)])) == 1
    assert sw.wire.capture() == [out] * 3
    assert sw.wire.inject(kind(inb)) == 1
    assert sw.wire.inject([kind(inb), kind(inb)]) == 2
    sw.wire.capture()
    got: list[bytes] = []
    while len(got) < 3 and (batch := app.recv_batch(8, timeout=1.0)):
        got += batch
    assert got == [inb] * 3
    s = sw.stats()["ports"]["app"]
    assert s["tx"] == {"frames": 4, "bytes": 4 * len(out)}
    assert s["rx"] == {"frames": 3, "bytes": 3 * len(inb)}


def test_scapy_packet_object_unbuilt(sw: ms.Switch, app: ms.Port) -> None:
    pkt = v4(UDP(sport=APP_PORT, dport=53) / b"scapy")
    app.send(pkt)
    assert sw.wire.capture() == [bytes(pkt)]
    assert sw.explain("app", pkt).action == "forward"


def test_send_batch_empty(sw: ms.Switch, app: ms.Port) -> None:
    assert app.send_batch([]) == 0
    assert sw.wire.inject([]) == 0
    assert sw.wire.capture() == []


def test_send_returns_none(sw: ms.Switch, app: ms.Port) -> None:
    assert app.send(udp4()) is None


# --- bindings() --------------------------------------------------------------------------


def test_bindings(sw: ms.Switch) -> None:
    a, b = sw.port("a"), sw.port("b")
    assert sw.bindings() == [] and a.bindings() == []
    ba = [a.bind(IP4, "udp", 5000), a.bind(IP6, "tcp", 80), a.bind(IP4, 253)]
    bb = [b.bind("FD00:0::2", "ICMPV6", 7), b.bind(IP4_B, 17, 53)]
    assert ba[0] == ms.Binding("a", IP4, "udp", 5000)
    assert ba[1] == ms.Binding("a", IP6, "tcp", 80)
    assert ba[2] == ms.Binding("a", IP4, "253", 0)
    assert bb[0] == ms.Binding("b", IP6, "icmpv6", 7)
    assert bb[1] == ms.Binding("b", IP4_B, "udp", 53)
    assert sorted(sw.bindings(), key=str) == sorted(ba + bb, key=str)
    assert sorted(a.bindings(), key=str) == sorted(ba, key=str)
    assert sorted(b.bindings(), key=str) == sorted(bb, key=str)
    assert {x.port for x in sw.bindings()} == {"a", "b"}
    assert str(ba[0]) == f"udp {IP4}:5000" and str(ba[1]) == f"tcp [{IP6}]:80"
    assert (ba[0].proto, ba[0].family, ba[1].family) == (17, 4, 6)
    a.unbind(ba[0])
    assert ba[0] not in sw.bindings()
    assert len(sw.bindings()) == 4


def test_bindings_survive_other_ports_closing(sw: ms.Switch) -> None:
    a, b = sw.port("a"), sw.port("b")
    keep = [a.bind(IP4, "udp", n) for n in range(1000, 1050)]
    for n in range(2000, 2050):
        b.bind(IP4, "udp", n)
    b.close()
    assert sorted(sw.bindings(), key=lambda x: x.local_port) == keep
    expect_forward(sw, a, udp4(1049))
    expect_deliver(sw, inbound(1000), a)


# --- stats(), drops(), mac ---------------------------------------------------------------


def test_stats_shape(sw: ms.Switch, app: ms.Port) -> None:
    sw.port("other")
    s = sw.stats()
    assert set(s) == {"ports", "nic"}
    assert set(s["ports"]) == {"app", "other"}
    for ps in s["ports"].values():
        assert set(ps) == {"tx", "rx", "local", "drops"}
        assert ps["local"] == {"frames": 0, "bytes": 0, "answers": 0}
        assert ps["tx"] == {"frames": 0, "bytes": 0}
        assert ps["rx"] == {"frames": 0, "bytes": 0}
        assert set(FILTER_REASONS + ["ring-full"]) <= set(ps["drops"])
        assert all(n == 0 for n in ps["drops"].values())
    nic = s["nic"]
    assert set(nic) == {"rx", "tx", "to-host", "kept-from-host", "drops", "offload",
                        "fragments"}
    assert nic["offload"] == {"checksums-completed": 0, "super-frames-cut": 0}
    assert nic["fragments"] == {"datagrams": 0, "followed": 0, "expired": 0, "evicted": 0,
                                "active": 0, "capacity": 4096}
    for k in ("rx", "tx", "to-host", "kept-from-host"):
        assert nic[k] == {"frames": 0, "bytes": 0}
    assert {"no-binding", "ring-full"} <= set(nic["drops"])
    assert all(n == 0 for n in nic["drops"].values())
    assert app.stats() == s["ports"]["app"]


def _leaves(d: dict, prefix: str = "") -> dict[str, int]:  # type: ignore[type-arg]
    out: dict[str, int] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_counters_only_grow(sw: ms.Switch, app: ms.Port) -> None:
    last = _leaves(sw.stats())
    traffic = [lambda: app.send(udp4()), lambda: app.send(udp4(mac=OTHER_MAC)),
               lambda: sw.wire.inject(inbound()), lambda: sw.wire.inject(inbound(1)),
               lambda: app.recv(timeout=1.0), lambda: app.send(udp6(1))]
    for step in traffic:
        step()
        sw.wire.capture()
        now = _leaves(sw.stats())
        assert set(now) == set(last)
        assert all(isinstance(v, int) and v >= last[k] for k, v in now.items())
        last = now
    assert last["nic/tx/frames"] == 1 and last["nic/rx/frames"] == 2
    assert last["ports/app/drops/spoofed-src-mac"] == 1
    assert last["ports/app/drops/spoofed-src-port"] == 1


def test_drop_log_limit(sw: ms.Switch, app: ms.Port) -> None:
    assert sw.drops() == []
    frames = [udp4(sport=1, payload=i.to_bytes(2, "big")) for i in range(1100)]
    assert app.send_batch(frames) == 1100
    sw.wire.capture()
    assert sw.stats()["ports"]["app"]["drops"]["spoofed-src-port"] == 1100
    assert len(sw.drops()) == 100
    assert [r["frame"] for r in sw.drops()] == frames[-100:]
    everything = sw.drops(limit=5000)
    assert len(everything) == 1024
    assert [r["frame"] for r in everything] == frames[-1024:]
    assert sw.drops(limit=0) == []
    assert [r["frame"] for r in sw.drops(limit=1)] == frames[-1:]
    times = [r["time"] for r in everything]
    assert times == sorted(times)


def test_mac(sw: ms.Switch) -> None:
    assert sw.mac == NIC_MAC
    with ms.Switch() as s:
        assert re.fullmatch(r"02(:[0-9a-f]{2}){5}", s.mac), s.mac
    with ms.Switch(addresses=[IP4], mac="02:AA:bb:CC:dd:EE") as s:
        assert s.mac == "02:aa:bb:cc:dd:ee"
        p = s.port("p")
        p.bind(IP4, "udp", APP_PORT)
        expect_forward(s, p, udp4(mac="02:aa:bb:cc:dd:ee"))
        expect_drop(s, p, udp4(), "spoofed-src-mac")


def test_default_addresses() -> None:
    with ms.Switch() as s:
        p = s.port("p")
        p.bind("10.0.0.2", "udp", 1)
        p.bind("fd00::2", "udp", 1)
        with pytest.raises(ms.BindError):
            p.bind(IP4_B, "udp", 1)


def test_verdict_fields(sw: ms.Switch, app: ms.Port) -> None:
    v = sw.explain("app", udp4())
    assert isinstance(v, ms.Verdict)
    assert (v.action, v.reason, v.to) == ("forward", None, "wire")
    assert isinstance(v.detail, str) and v.detail
    d = sw.explain("app", udp4(src=FOREIGN4))
    assert (d.action, d.reason, d.to) == ("drop", "spoofed-src-ip", None)


# --- recv --------------------------------------------------------------------------------


def test_recv_timeout_returns_none(sw: ms.Switch, app: ms.Port) -> None:
    t0 = time.monotonic()
    assert app.recv(timeout=0.1) is None
    assert time.monotonic() - t0 >= 0.09
    assert app.recv(timeout=0) is None
    assert app.recv_batch(8, timeout=0.05) == []


def test_recv_waits_for_a_frame(sw: ms.Switch, app: ms.Port) -> None:
    import threading

    timer = threading.Timer(0.05, lambda: sw.wire.inject(inbound()))
    timer.start()
    try:
        assert app.recv(timeout=5.0) == inbound()
    finally:
        timer.cancel()


def test_recv_batch(sw: ms.Switch, app: ms.Port) -> None:
    frames = [inbound(payload=bytes([i])) for i in range(5)]
    assert sw.wire.inject(frames) == 5
    sw.wire.capture()
    assert app.recv_batch(3, timeout=1.0) == frames[:3]
    assert app.recv_batch(10, timeout=1.0) == frames[3:]
    assert app.recv_batch(10, timeout=0) == []
    assert app.recv(timeout=0) is None


def test_recv_batch_larger_than_the_ring(sw: ms.Switch, app: ms.Port) -> None:
    frames = [inbound(payload=i.to_bytes(2, "big")) for i in range(1024)]
    assert sw.wire.inject(frames) == 1024
    sw.wire.capture()
    got: list[bytes] = []
    while len(got) < 1024:
        batch = app.recv_batch(4096, timeout=1.0)
        if not batch:
            break
        got += batch
    assert got == frames
    assert sw.stats()["ports"]["app"]["drops"]["ring-full"] == 0
