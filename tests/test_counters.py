"""Counters equal the traffic exactly after a million frames, in both directions.

Port -> NIC: a port sends 1,000,000 precomposed 64-byte frames (per 5: 3 valid, 1 with a
spoofed source IP, 1 with a spoofed source port) with send_batch; the wire is drained often
enough that its ring (4,096 frames) never fills. NIC -> port: the far end injects 1,000,000
frames (per 5: 3 for port a, 1 for port b, 1 nobody bound) and the ports drain their rings
after every batch. Every counter, the captured/received frames and the drop log must then
match the traffic exactly.
"""
from __future__ import annotations

import ipaddress
import struct

import pytest

import ministack as ms

N = 1_000_000
BATCH = 1024
FRAME_LEN = 64
PEER_MAC = bytes.fromhex("020000000001")


def udp4(src_mac: bytes, dst_mac: bytes, src: str, dst: str, sport: int, dport: int) -> bytes:
    """A 64-byte Ethernet/IPv4/UDP frame (22 bytes of payload)."""
    payload = bytes(f"{sport}>{dport}".ljust(FRAME_LEN - 42, "."), "ascii")
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    f = dst_mac + src_mac + b"\x08\x00" + ip + udp
    assert len(f) == FRAME_LEN
    return f


def batches_of(pattern: list[bytes]) -> list[list[bytes]]:
    """The batch that starts at frame index k is batches[k % len(pattern)]: frame i of the
    whole stream is pattern[i % len(pattern)]."""
    p = len(pattern)
    return [[pattern[(o + j) % p] for j in range(BATCH)] for o in range(p)]


def zero_drops(drops: dict, **expected: int) -> dict:
    return {r: expected.get(r.replace("-", "_"), 0) for r in drops}


@pytest.mark.slow
def test_port_to_nic_counters_exact_after_a_million_frames():
    with ms.Switch(nic="virtual", addresses=["10.0.0.2", "10.0.0.3"]) as sw:
        mac = bytes.fromhex(sw.mac.replace(":", ""))
        a = sw.port("a")
        a.bind("10.0.0.2", "udp", 5000)
        sw.port("other").bind("10.0.0.3", "udp", 5000)  # the spoofed source IP's holder
        valid = [udp4(mac, PEER_MAC, "10.0.0.2", "10.0.0.1", 5000, 53 + i) for i in range(3)]
        spoof_ip = udp4(mac, PEER_MAC, "10.0.0.3", "10.0.0.1", 5000, 53)
        spoof_port = udp4(mac, PEER_MAC, "10.0.0.2", "10.0.0.1", 5001, 53)
        pattern = valid + [spoof_ip, spoof_port]
        assert [sw.explain("a", f).reason for f in pattern] == [
            None, None, None, "spoofed-src-ip", "spoofed-src-port"]
        batches = batches_of(pattern)

        captured = captured_bytes = 0
        mismatches = 0

        def drain() -> None:
            nonlocal captured, captured_bytes, mismatches
            for f in sw.wire.capture(timeout=10.0):
                if f != valid[captured % 3]:
                    mismatches += 1
                captured += 1
                captured_bytes += len(f)

        sent = 0
        while sent < N:
            n = min(BATCH, N - sent)
            batch = batches[sent % len(pattern)]
            assert a.send_batch(batch if n == BATCH else batch[:n], timeout=10.0) == n
            sent += n
            # At most 4 batches (4,096 frames, 2,458 of them valid) between drains, and
            # capture() waits until the switch has handled all of them: the 4,096-slot
            # wire ring cannot fill.
            if (sent // BATCH) % 4 == 0:
                drain()
        drain()

        n_valid, n_spoof = N * 3 // 5, N // 5
        assert captured == n_valid and captured_bytes == n_valid * FRAME_LEN
        assert mismatches == 0, "the wire carried frames other than the valid ones, in order"
        s = sw.stats()
        pa = s["ports"]["a"]
        assert pa["tx"] == {"frames": n_valid, "bytes": n_valid * FRAME_LEN}
        assert pa["rx"] == {"frames": 0, "bytes": 0}
        assert pa["drops"] == zero_drops(pa["drops"], spoofed_src_ip=n_spoof,
                                         spoofed_src_port=n_spoof)
        assert pa["tx"]["frames"] + sum(pa["drops"].values()) == N
        assert s["ports"]["other"]["tx"]["frames"] == 0
        assert s["ports"]["other"]["rx"]["frames"] == 0
        assert s["nic"]["tx"] == {"frames": n_valid, "bytes": n_valid * FRAME_LEN}
        assert s["nic"]["rx"] == {"frames": 0, "bytes": 0}
        assert s["nic"]["to-host"] == {"frames": 0, "bytes": 0}
        assert s["nic"]["drops"] == {"ring-full": 0, "no-binding": 0}
        # The drop log ends with the last two frames of the stream (indexes 3 and 4 of the
        # pattern, as N is a multiple of 5).
        log = sw.drops(limit=2)
        assert [(d["port"], d["direction"], d["reason"], d["frame"]) for d in log] == [
            ("a", "tx", "spoofed-src-ip", spoof_ip), ("a", "tx", "spoofed-src-port", spoof_port)]


@pytest.mark.slow
def test_nic_to_port_counters_exact_after_a_million_frames():
    with ms.Switch(nic="virtual", addresses=["10.0.0.2"]) as sw:
        mac = bytes.fromhex(sw.mac.replace(":", ""))
        a, b = sw.port("a"), sw.port("b")
        a.bind("10.0.0.2", "udp", 5000)
        b.bind("10.0.0.2", "udp", 6000)
        to_a = [udp4(PEER_MAC, mac, "10.0.0.1", "10.0.0.2", 40000 + i, 5000) for i in range(3)]
        to_b = udp4(PEER_MAC, mac, "10.0.0.1", "10.0.0.2", 40000, 6000)
        nobody = udp4(PEER_MAC, mac, "10.0.0.1", "10.0.0.2", 40000, 7000)
        pattern = to_a + [to_b, nobody]
        assert [sw.explain("nic", f).to for f in pattern] == ["a", "a", "a", "b", None]
        batches = batches_of(pattern)

        got = {"a": [0, 0, 0], "b": [0, 0, 0]}  # frames, bytes, out-of-order/foreign frames

        def drain(port: ms.Port, expect: list[bytes]) -> None:
            c = got[port.name]
            while True:
                frames = port.recv_batch(BATCH, timeout=0)
                for f in frames:
                    if f != expect[c[0] % len(expect)]:
                        c[2] += 1
                    c[0] += 1
                    c[1] += len(f)
                if len(frames) < BATCH:
                    return

        sent = 0
        while sent < N:
            n = min(BATCH, N - sent)
            batch = batches[sent % len(pattern)]
            assert sw.wire.inject(batch if n == BATCH else batch[:n], timeout=10.0) == n
            sent += n
            # Once the switch has handled the batch, at most 615 frames wait in a's
            # 1,024-slot ring: draining after every batch keeps ring-full at zero.
            assert sw.sync(timeout=10.0)
            drain(a, to_a)
            drain(b, [to_b])

        n_a, n_b, n_nobody = N * 3 // 5, N // 5, N // 5
        assert got["a"] == [n_a, n_a * FRAME_LEN, 0]
        assert got["b"] == [n_b, n_b * FRAME_LEN, 0]
        s = sw.stats()
        for name, n_rx in (("a", n_a), ("b", n_b)):
            ps = s["ports"][name]
            assert ps["rx"] == {"frames": n_rx, "bytes": n_rx * FRAME_LEN}, name
            assert ps["tx"] == {"frames": 0, "bytes": 0}, name
            assert ps["drops"] == zero_drops(ps["drops"]), name
        assert s["nic"]["rx"] == {"frames": N, "bytes": N * FRAME_LEN}
        assert s["nic"]["tx"] == {"frames": 0, "bytes": 0}
        assert s["nic"]["to-host"] == {"frames": 0, "bytes": 0}
        assert s["nic"]["drops"] == {"ring-full": 0, "no-binding": n_nobody}
        assert sw.wire.capture() == []
        last = sw.drops(limit=1)[-1]
        assert (last["port"], last["direction"], last["reason"], last["frame"]) == (
            "nic", "rx", "no-binding", nobody)


@pytest.mark.slow
def test_ring_full_is_counted_exactly_when_nobody_keeps_up():
    """The same million frames each way, drained too rarely (the wire) or racing the switch
    with small rings (the ports): every frame is still accounted for, as delivered or as
    ring-full, and the rest of the counters do not move."""
    with ms.Switch(nic="virtual", addresses=["10.0.0.2"], ring_slots=128) as sw:
        mac = bytes.fromhex(sw.mac.replace(":", ""))
        a = sw.port("a")
        a.bind("10.0.0.2", "udp", 5000)
        valid = udp4(mac, PEER_MAC, "10.0.0.2", "10.0.0.1", 5000, 53)
        spoof = udp4(mac, PEER_MAC, "10.0.0.2", "10.0.0.1", 5001, 53)
        batches = batches_of([valid, valid, valid, valid, spoof])

        # Port -> wire, draining the 4,096-slot wire ring only every 13 batches (13,312
        # frames, 10,650 of them valid): most valid frames find it full.
        captured = 0
        sent = 0
        while sent < N:
            n = min(BATCH, N - sent)
            batch = batches[sent % 5]
            assert a.send_batch(batch if n == BATCH else batch[:n], timeout=10.0) == n
            sent += n
            if (sent // BATCH) % 13 == 0:
                captured += len(sw.wire.capture(timeout=10.0))
        captured += len(sw.wire.capture(timeout=10.0))
        s = sw.stats()
        n_valid = N * 4 // 5
        full = s["nic"]["drops"]["ring-full"]
        assert full > 0, "the wire was never full: the test did not test anything"
        assert s["ports"]["a"]["tx"] == {"frames": n_valid, "bytes": n_valid * FRAME_LEN}
        assert s["ports"]["a"]["drops"] == zero_drops(s["ports"]["a"]["drops"],
                                                      spoofed_src_port=N // 5)
        assert s["nic"]["tx"] == {"frames": captured, "bytes": captured * FRAME_LEN}
        assert captured + full == n_valid
        assert s["nic"]["drops"]["no-binding"] == 0

        # Wire -> port a with a 128-slot RX ring, drained without waiting for the switch.
        to_a = udp4(PEER_MAC, mac, "10.0.0.1", "10.0.0.2", 40000, 5000)
        nobody = udp4(PEER_MAC, mac, "10.0.0.1", "10.0.0.2", 40000, 5001)
        batches = batches_of([to_a, to_a, to_a, to_a, nobody])
        received = received_bytes = 0
        sent = 0
        while sent < N:
            n = min(BATCH, N - sent)
            batch = batches[sent % 5]
            assert sw.wire.inject(batch if n == BATCH else batch[:n], timeout=10.0) == n
            sent += n
            got = a.recv_batch(BATCH, timeout=0)
            received += len(got)
            received_bytes += sum(map(len, got))
        assert sw.sync(timeout=10.0)
        while got := a.recv_batch(BATCH, timeout=0):
            received += len(got)
            received_bytes += sum(map(len, got))
        s2 = sw.stats()
        pa = s2["ports"]["a"]
        n_to_a = N * 4 // 5
        assert pa["drops"]["ring-full"] > 0, "port a never overflowed: nothing was tested"
        assert pa["rx"] == {"frames": received, "bytes": received_bytes}
        assert received + pa["drops"]["ring-full"] == n_to_a
        assert received_bytes == received * FRAME_LEN
        assert pa["tx"] == s["ports"]["a"]["tx"]  # unchanged since the first half
        assert s2["nic"]["rx"] == {"frames": N, "bytes": N * FRAME_LEN}
        assert s2["nic"]["drops"] == {"ring-full": full, "no-binding": N // 5}
        assert s2["nic"]["tx"] == s["nic"]["tx"]
        assert [(d["port"], d["direction"]) for d in sw.drops(limit=1)] in (
            [("nic", "rx")], [("a", "rx")])
