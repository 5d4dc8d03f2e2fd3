"""Taps (Switch.tap(), `ministack capture`): while a port is tapped the switch records
every frame it handles for it, with the verdict the datapath gave, and nothing else; a
closed tap, or one whose port has gone, costs nothing and records nothing."""
from __future__ import annotations

import pytest

import ministack as ms
from scapy.layers.inet import UDP
from scapy.layers.l2 import ARP

from conftest import (APP_PORT, FOREIGN4, IP4, IP4_B, NIC_MAC, PEER_MAC, REMOTE4, eth, udp4,
                      udp6, v4)
from ministack.switch import LOG_FRAMES


def seen(tap: ms.switch.Tap) -> list[tuple[str, str, str, str | None]]:
    return [(f["port"], f["direction"], f["reason"], f["peer"]) for f in tap.read()]


def from_wire(dport: int, dst: str = IP4) -> bytes:
    return bytes(eth(PEER_MAC, NIC_MAC) / v4(UDP(sport=53, dport=dport), src=REMOTE4,
                                             dst=dst)[1])


def test_a_tap_sees_its_ports_frames_and_their_verdicts(sw: ms.Switch, app: ms.Port) -> None:
    other = sw.port("other")
    other.bind(IP4, "udp", 6000)
    with sw.tap("app") as t, sw.tap("nic") as tn, sw.tap() as every:
        app.send_batch([udp4(),                                          # to the wire
                        udp4(dport=6000, dst=IP4, dst_mac=NIC_MAC),      # hairpin to other
                        udp4(sport=APP_PORT + 1),                        # spoofed
                        bytes(eth(NIC_MAC, "ff:ff:ff:ff:ff:ff") /
                              ARP(hwsrc=NIC_MAC, psrc=IP4, pdst=REMOTE4))])  # local
        sw.wire.send_batch([from_wire(APP_PORT), from_wire(6000), from_wire(9, IP4_B)])
        assert sw.sync()
        assert seen(t) == [("app", "tx", "ok", "nic"), ("other", "rx", "ok", "app"),
                           ("app", "tx", "spoofed-src-port", None),
                           ("app", "tx", "local", None), ("app", "rx", "ok", "nic")]
        assert seen(tn) == [("app", "tx", "ok", "nic"), ("app", "rx", "ok", "nic"),
                            ("other", "rx", "ok", "nic"), ("nic", "rx", "no-binding", None)]
        assert seen(every) == [("app", "tx", "ok", "nic"), ("other", "rx", "ok", "app"),
                               ("app", "tx", "spoofed-src-port", None),
                               ("app", "tx", "local", None), ("app", "rx", "ok", "nic"),
                               ("other", "rx", "ok", "nic"), ("nic", "rx", "no-binding", None)]
        assert t.lost == tn.lost == every.lost == 0


def test_a_tap_records_the_verdicts_explain_gives(sw: ms.Switch, app: ms.Port) -> None:
    """One rule: what a tap records is what explain() says of the same frame."""
    sent = [udp4(), udp4(sport=1), udp4(src=IP4_B), udp6(), udp4(mac=PEER_MAC), b"\x00" * 20,
            udp4(dst=FOREIGN4, payload=b"x" * 2000)]
    with sw.tap("app") as t:
        for frame in sent:
            want = sw.explain("app", frame).code
            app.send(frame)
            assert sw.sync()
            got = t.read()
            assert [f["code"] for f in got] == [want], (frame.hex(), got)
            assert got[0]["frame"] == frame


def test_a_slow_reader_counts_what_it_lost(sw: ms.Switch, app: ms.Port) -> None:
    with sw.tap("app") as t:
        for _ in range(3):
            app.send_batch([udp4()] * (LOG_FRAMES // 2))
            assert sw.sync()
        got = t.read()
    assert len(got) == LOG_FRAMES and t.lost == LOG_FRAMES // 2


def test_closed_taps_and_gone_ports_record_nothing(sw: ms.Switch, app: ms.Port) -> None:
    sw.tap("app").close()
    gone = sw.port("gone")
    on_gone = sw.tap("gone")
    gone.close()
    again = sw.port("gone")  # may take the closed port's id: it is not tapped for that
    for _ in range(3):
        app.send_batch([udp4()] * (LOG_FRAMES // 2))
        again.send_batch([b"\x00" * 60] * (LOG_FRAMES // 2))
        assert sw.sync()
    # Had the switch recorded any of them, the log would have wrapped, and the tap still
    # open on the gone port would count what it lost.
    assert on_gone.read() == [] and on_gone.lost == 0
    on_gone.close()
    with sw.tap("gone") as fresh:
        again.send(b"\x00" * 60)
        assert sw.sync()
        assert seen(fresh) == [("gone", "tx", "spoofed-src-mac", None)] and fresh.lost == 0


def test_taps_are_limited_and_name_the_port(sw: ms.Switch, app: ms.Port) -> None:
    with pytest.raises(ms.PortError, match="no port 'nope'.*'nic' for the NIC"):
        sw.tap("nope")
    taps = [sw.tap("app") for _ in range(64)]
    with pytest.raises(ms.MiniStackError, match="64 are open on this switch; close one"):
        sw.tap(["app", "nic"])
    for t in taps:
        t.close()
    sw.tap(["app", "nic"]).close()
