"""What tests/test_vale.py's guest runs with Python: the public API on backend="vale", over
ministack_vale.ko attached to NIC (argv[1]) whose veth peer WIRE (argv[2]) stands for the
network; argv[3:6] are the port's addresses and the wire's peer, argv[6:8] the
benchmark's seconds and repetitions. It asserts nothing itself; it prints one line,
"=== python " and a JSON object of what each call gave, for the test to compare with
explain() and with what the wire saw.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ministack as ms
from ministack import doctor
from ministack.bench import udp_frame

PEER_MAC = "02:00:00:00:00:99"
ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; the socket module does not name it


def wire_socket() -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((WIRE, 0))
    # Room for a whole batch while this (emulated, slow) guest gets round to reading it.
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    s.settimeout(0.3)
    return s


def heard(s: socket.socket) -> list[str]:
    """Every frame the wire saw since the last call (hex)."""
    out = []
    try:
        while True:
            out.append(s.recv(65536).hex())
    except (TimeoutError, socket.timeout):
        return out


def arp_request(mac: str, sender: str, target: str) -> bytes:
    """Who has `target`? Tell `sender` (at mac)."""
    m = bytes.fromhex(mac.replace(":", ""))
    return (b"\xff" * 6 + m + b"\x08\x06" + bytes.fromhex("0001080006040001") + m +
            socket.inet_aton(sender) + bytes(6) + socket.inet_aton(target))


def main() -> dict[str, Any]:
    out: dict[str, Any] = {}
    wire = wire_socket()
    with ms.Switch(nic=NIC, backend="vale") as sw:
        out["backend"], out["mac"], out["mtu"] = sw.backend, sw.mac, sw.mtu
        a, b = sw.port("pa"), sw.port("pb")
        a.bind(IP4, "udp", 7000)
        b.bind(IP4_B, "udp", 7001)
        heard(wire)
        # Each frame a port sends: explain()'s verdict, what the module counted, the wire.
        frames = {
            "to-the-wire": udp_frame(sw.mac, IP4, PEER, 7000, 9),
            "spoofed-ip": udp_frame(sw.mac, "10.0.0.77", PEER, 7000, 9),
            "spoofed-mac": udp_frame("02:00:00:00:00:66", IP4, PEER, 7000, 9),
            "another-port's-tuple": udp_frame(sw.mac, IP4_B, PEER, 7001, 9),
            "hairpin": udp_frame(sw.mac, IP4, IP4_B, 7000, 7001),
        }
        sent = {}
        for name, f in frames.items():
            v = sw.explain("pa", f)
            before = a.stats()
            a.send(f)
            after = a.stats()
            sent[name] = {
                "frame": f.hex(), "explain": [v.action, v.reason, v.to],
                "forwarded": after["tx"]["frames"] - before["tx"]["frames"],
                "dropped": {r: n - before["drops"][r] for r, n in after["drops"].items()
                            if n != before["drops"][r]},
                "wire": heard(wire),
                "pb": [x.hex() for x in b.recv_batch(8, timeout=0.2)],
            }
        out["sent"] = sent
        # Neighbour resolution: the switch answers for a host address (with the NIC's MAC)
        # and for a neighbour the kernel knows (its MAC), through pa's library.
        subprocess.run(["ip", "neigh", "replace", PEER, "lladdr", PEER_MAC, "dev", NIC],
                       check=True)
        answers = {}
        for target in (IP4_B, PEER):
            req = arp_request(sw.mac, IP4, target)
            before = a.stats()["local"]
            a.send(req)
            answers[target] = {"explain": sw.explain("pa", req).action,
                               "got": [x.hex() for x in a.recv_batch(8, timeout=1)],
                               "local": {k: a.stats()["local"][k] - before[k]
                                         for k in ("frames", "answers")}}
        out["answers"] = answers
        # A batch both ways: 200 frames to the wire, 200 from it to pa.
        batch = [udp_frame(sw.mac, IP4, PEER, 7000, 10000 + i) for i in range(200)]
        nic_tx = sw.stats()["nic"]["tx"]["frames"]
        out["batch_sent"] = a.send_batch(batch, timeout=5)
        out["batch_nic_tx"] = sw.stats()["nic"]["tx"]["frames"] - nic_tx
        out["batch_wire"] = len([h for h in heard(wire) if h in {f.hex() for f in batch}])
        inbound = [udp_frame(PEER_MAC, PEER, IP4, 20000 + i, 7000, dst_mac=sw.mac)
                   for i in range(200)]
        out["inbound_explain"] = sorted({sw.explain("nic", f).to or "-" for f in inbound})
        got: list[bytes] = []
        for f in inbound:
            wire.send(f)
            got += a.recv_batch(256, timeout=0)
        deadline = time.monotonic() + 5
        while len(got) < len(inbound) and time.monotonic() < deadline:
            got += a.recv_batch(256, timeout=0.5)
        out["inbound_received"] = sum(1 for f in got if f in set(inbound))
        # The TAP-like descriptor over netmap rings.
        fd = a.frame_fd()
        wire.send(inbound[0])
        os.set_blocking(fd, True)
        out["frame_fd_read"] = os.read(fd, 65536) == inbound[0]
        os.write(fd, frames["to-the-wire"])
        out["frame_fd_wire"] = frames["to-the-wire"].hex() in heard(wire)
        os.close(fd)
        # The module's refusals, as BindError.
        held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        held.bind((IP4, 7300))
        for name, args in {"host-socket": (IP4, "udp", 7300), "other-port": (IP4_B, "udp", 7001),
                           "not-local": ("10.0.0.77", "udp", 7301)}.items():
            try:
                a.bind(*args)
                out[f"bind_{name}"] = "bound"
            except ms.BindError as e:
                out[f"bind_{name}"] = e.reason
        held.close()
        out["doctor"] = asdict(doctor.check_vale())
        out["stats"] = sw.stats()
        out["drops"] = [[d["port"], d["reason"], d["frame"].hex()] for d in sw.drops()]
        out["bindings"] = [str(x) for x in sw.bindings()]
        with open("/proc/ministack_vale/bindings") as f:
            out["module_bindings_open"] = len(f.read().splitlines()) - 1
        a.close()
        with open("/proc/ministack_vale/bindings") as f:
            out["module_bindings_after_close"] = len(f.read().splitlines()) - 1
    return out


def as_nobody(fn: Any) -> Any:
    """fn() in a forked child as nobody (65534): what it returned, or the error's text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                got: Any = fn()
            except Exception as e:  # reported, not raised: this is a child
                got = f"{type(e).__name__}: {e}"
            os.write(w, json.dumps(got).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        text = f.read()
    os.waitpid(pid, 0)
    return json.loads(text) if text else "the child died"


def through_the_daemon() -> dict[str, Any]:
    """`ministack daemon --backend vale`: an application of another uid gets its port's
    netmap descriptor, binds through the daemon, sends and receives on netmap's rings."""
    from ministack.client import connect
    from ministack.daemon import Daemon

    path = "/run/ministack-vale.sock"
    daemon = Daemon(nic=NIC, socket_path=path, backend="vale")
    daemon.listen()
    threading.Thread(target=daemon.serve_forever, daemon=True).start()
    mac, wire = daemon.switch.mac, wire_socket()
    out: dict[str, Any] = {}
    try:
        def app() -> dict[str, Any]:
            with connect(path) as c:
                got: dict[str, Any] = {"backend": c.status()["switch"]["backend"]}
                p = c.port("dapp")
                got["bound"] = str(p.bind(IP4, "udp", 7400))
                try:
                    p.bind(IP4, "udp", 80)
                except ms.BindError as e:
                    got["below_1024"] = e.reason
                p.send(udp_frame(mac, IP4, PEER, 7400, 9))
                p.send(udp_frame(mac, IP4, PEER, 7401, 9))   # not its port: dropped
                got["received"] = [f.hex() for f in p.recv_batch(8, timeout=3)]
                got["stats"] = p.stats()
                return got
        heard(wire)
        inbound = udp_frame(PEER_MAC, PEER, IP4, 9, 7400, dst_mac=mac)
        threading.Timer(1.5, wire.send, (inbound,)).start()  # once the app is bound
        out["app"] = as_nobody(app)
        out["inbound"] = inbound.hex()
        out["wire"] = heard(wire)
        out["sent"] = udp_frame(mac, IP4, PEER, 7400, 9).hex()
    finally:
        daemon.close()
        wire.close()
    return out


def lab_exercise_4() -> dict[str, Any]:
    """Lab 05's Exercise 4 measuring cell as students get it (the release notebook, after
    its imports cell), run where the module is loaded, as on the course VM."""
    lab = Path(__file__).resolve().parents[1] / "labs/release/05-performance"
    cells = ["".join(c["source"]) for c in
             json.loads((lab / "05-performance.ipynb").read_text())["cells"]
             if c["cell_type"] == "code"]
    (measure,) = [c for c in cells if "vale.attached_nic()" in c]
    scope: dict[str, Any] = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(cells[0], scope)   # noqa: S102 - the lab's own code, run as Jupyter would
        exec(measure, scope)    # noqa: S102
    return {"printed": printed.getvalue(), "vale_rows": scope["vale_rows"]}


if __name__ == "__main__":   # (pytest's doctest collection imports this file too)
    NIC, WIRE, IP4, IP4_B, PEER = sys.argv[1:6]
    BENCH_SECONDS, BENCH_REPS = float(sys.argv[6]), int(sys.argv[7])
    try:
        result = main()
        try:
            result["daemon"] = through_the_daemon()
        except Exception as e:  # the daemon's test shows it
            result["daemon"] = {"app": f"{type(e).__name__}: {e}"}
        # The benchmark's VALE rows, in this kernel (the module is on NIC, a veth).
        from ministack import bench
        try:
            result["bench"] = bench.vale_rows(BENCH_SECONDS, BENCH_REPS)
        except Exception as e:  # the benchmark's test shows it
            result["bench"] = f"{type(e).__name__}: {e}"
        try:
            result["lab"] = lab_exercise_4()
        except Exception as e:  # the lab's test shows it
            result["lab"] = f"{type(e).__name__}: {e}"
    except Exception as e:  # the test shows it
        import traceback
        result = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
    print("=== python " + json.dumps(result), flush=True)
