"""The MiniStack benchmark: ``python -m ministack.bench [--json] [--seconds S] [--batch N]``.

Measures 64-byte frames per second through the switch on the virtual NIC, next to a
plain copy-only memfd SPSC ring between two threads measured in the same run:

- port->wire: a port transmits, the filter checks every frame, the wire drains;
- wire->port: the wire injects, demux over 1,000 bindings delivers to the port;
- port->port: hairpin from one port to another's binding;
- python_send_batch: Port.send_batch() of precomposed frames from Python.

Traffic for the first three is generated and drained by a C driver thread (bench.c), so
the figures measure the switch, not the interpreter. Targets live in the issues; a timed
unit test never asserts them.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time
from typing import Any

from ministack._native import ffi, lib
from ministack.switch import Switch

FRAME = 64
SRC_IP, DST_IP = "10.0.0.2", "10.0.0.9"


def udp_frame(src_mac: str, src: str, dst: str, sport: int, dport: int,
              size: int = FRAME, dst_mac: str = "02:00:00:00:00:09") -> bytes:
    """A minimal Ethernet/IPv4/UDP frame of ``size`` bytes (no FCS, checksums zero).

    >>> len(udp_frame("02:4d:53:00:00:02", "10.0.0.2", "10.0.0.9", 5000, 9))
    64
    """
    payload = bytes(size - 14 - 20 - 8)
    eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    return eth + b"\x08\x00" + ip + udp + payload


def _run(sw: Switch, src: int, dst: int, frames: list[bytes], batch: int,
         seconds: float) -> float:
    data = b"".join(frames)
    lens = ffi.new("uint32_t[]", [len(f) for f in frames])
    res = ffi.new("struct ms_bench_result *")
    rc = lib.ms_bench_run(sw._sw, src, dst, data, lens, len(frames), batch, seconds, res)
    if rc < 0:
        raise RuntimeError(f"benchmark driver failed: {os.strerror(-rc)}")
    return res.mpps


def baseline(batch: int, seconds: float) -> float:
    """Mpps of a copy-only SPSC memfd ring between two threads, 64-byte frames."""
    res = ffi.new("struct ms_bench_result *")
    lib.ms_bench_baseline(FRAME, batch, seconds, res)
    return res.mpps


def port_to_wire(batch: int, seconds: float) -> float:
    with Switch() as sw:
        a = sw.port("tx")
        a.bind(SRC_IP, "udp", 5000)
        frames = [udp_frame(sw.mac, SRC_IP, DST_IP, 5000, 9 + i) for i in range(64)]
        return _run(sw, a._id, -1, frames, batch, seconds)


def wire_to_port(batch: int, seconds: float, bindings: int) -> float:
    with Switch(max_bindings=max(bindings, 16)) as sw:
        b = sw.port("rx")
        for i in range(bindings):
            b.bind(SRC_IP, "udp", 10000 + i)
        frames = [udp_frame("02:00:00:00:00:09", DST_IP, SRC_IP, 9, 10000 + i,
                            dst_mac=sw.mac) for i in range(bindings)]
        return _run(sw, -1, b._id, frames, batch, seconds)


def port_to_port(batch: int, seconds: float) -> float:
    with Switch() as sw:
        a, b = sw.port("a"), sw.port("b")
        a.bind(SRC_IP, "udp", 5000)
        b.bind(SRC_IP, "udp", 6000)
        frames = [udp_frame(sw.mac, SRC_IP, SRC_IP, 5000, 6000, dst_mac=sw.mac)]
        return _run(sw, a._id, b._id, frames, batch, seconds)


def python_send_batch(batch: int, seconds: float) -> float:
    """Mpps that Port.send_batch() of precomposed frames sustains from Python."""
    with Switch(wire_slots=65536) as sw:
        a = sw.port("py")
        a.bind(SRC_IP, "udp", 5000)
        frames = [udp_frame(sw.mac, SRC_IP, DST_IP, 5000, 9)] * batch
        lib.ms_bench_sink_start(sw._sw)
        sent = 0
        t0 = time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end:
            sent += a.send_batch(frames)
        t = time.perf_counter() - t0
        sw.sync(2.0)
        lib.ms_bench_sink_stop(sw._sw)
        return sent / t / 1e6


def run(seconds: float = 1.0, batch: int = 256, bindings: int = 1000) -> dict[str, Any]:
    """Run every measurement; returns the --json object."""
    base = baseline(batch, seconds)
    rows = [
        ("port->wire", 1, port_to_wire(batch, seconds)),
        ("wire->port", bindings, wire_to_port(batch, seconds, bindings)),
        ("port->port", 2, port_to_port(batch, seconds)),
    ]
    return {
        "baseline_mpps": round(base, 3),
        "results": [{"path": p, "frame": FRAME, "bindings": n, "batch": batch,
                     "mpps": round(m, 3), "ratio": round(m / base, 3) if base else None}
                    for p, n, m in rows],
        "python_send_batch_mpps": round(python_send_batch(batch, seconds), 3),
        "cores": os.cpu_count(),
        "switch_threads": 1,
        "seconds": seconds,
    }


def table(r: dict[str, Any]) -> str:
    """The human-readable form of run()'s result."""
    lines = [f"MiniStack benchmark: {FRAME}-byte frames, batch {r['results'][0]['batch']}, "
             f"1 switch thread, {r['cores']} cores, {r['seconds']} s per row",
             f"{'path':<22}{'bindings':>9}{'Mpps':>9}{'x baseline':>12}",
             f"{'baseline (memfd ring)':<22}{'-':>9}{r['baseline_mpps']:>9.2f}{1:>12.2f}"]
    for row in r["results"]:
        lines.append(f"{row['path']:<22}{row['bindings']:>9}{row['mpps']:>9.2f}"
                     f"{row['ratio']:>12.2f}")
    lines.append(f"{'python send_batch':<22}{1:>9}{r['python_send_batch_mpps']:>9.2f}"
                 f"{r['python_send_batch_mpps'] / r['baseline_mpps']:>12.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ministack.bench",
                                 description="Measure MiniStack's forwarding rates (Mpps).")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--seconds", type=float, default=2.0, help="measuring time per row")
    ap.add_argument("--batch", type=int, default=256, help="frames per ring batch")
    ap.add_argument("--bindings", type=int, default=1000, help="bindings for wire->port")
    a = ap.parse_args(argv)
    r = run(a.seconds, a.batch, a.bindings)
    print(json.dumps(r) if a.json else table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
