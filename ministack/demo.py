"""`ministack demo`: the poster demo from the shell. As root it builds a peer namespace with
a real kernel stack behind a veth pair; otherwise it runs on the virtual NIC.

It ends by checking what it showed (the verdicts, the counters, the frames that arrived) and
exits 1 when any check fails, so it doubles as the course VM's self-test."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

PEER_RX = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9)); s.settimeout(0.3)
print("ready", flush=True)
n, end = 0, time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        n += len([s.recv(2048)])
    except socket.timeout:
        pass
print(n)
"""

PEER_TX = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in map(int, sys.argv[2:]):
    s.sendto(b"hello from the peer's kernel", (sys.argv[1], port))
"""


def run(virtual: bool | None = None) -> int:
    """Run the demo; virtual=None picks a namespace when root, the virtual NIC otherwise."""
    import ministack as ms

    chosen = virtual
    if virtual is None:
        virtual = os.geteuid() != 0
    if virtual:
        print("(on the virtual NIC, as asked)" if chosen else
              "(not root: on the virtual NIC; run as root for a real peer namespace)")
        with ms.Switch(nic="virtual", addresses=["10.0.0.2", "fd00::2"]) as sw:
            return _demo(sw, None, "10.0.0.2", "10.0.0.9")
    topo = ms.Topology(ns="ms-demo", host_if="ms-demo0", peer_if="ms-demo1",
                       host_addrs=["10.77.0.2/24", "fd77::2/64"],
                       peer_addrs=["10.77.0.1/24", "fd77::1/64"])
    with topo:
        print(f"peer namespace {topo.ns}: {topo.peer_if} {', '.join(topo.peer_ips)} <-> "
              f"{topo.host_if} {', '.join(topo.host_ips)}")
        with ms.Switch(nic=topo.host_if) as sw:
            return _demo(sw, topo, topo.host_ips[0], topo.peer_ips[0])


def _demo(sw: Any, topo: Any, host: str, peer: str) -> int:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    print(f"switch on {sw.nic} ({sw.backend}{', ' + sw.xdp_mode + ' XDP' if getattr(sw, 'xdp_mode', None) else ''}), "
          f"MAC {sw.mac}, addresses {', '.join(sw.addresses)}")
    a, b = sw.port("app1"), sw.port("app2")
    for port, udp in ((a, 5000), (b, 6000)):
        print(f"  {port.name} binds {port.bind(host, 'udp', udp)}")
    peer_mac = sw.resolve(peer, timeout=2) if topo else "02:00:00:00:00:09"
    receiver = None
    if topo:
        receiver = subprocess.Popen(["ip", "netns", "exec", topo.ns, sys.executable, "-c",
                                     PEER_RX, peer, "3"], stdout=subprocess.PIPE, text=True)
        assert receiver.stdout is not None
        receiver.stdout.readline()

    def frame(src: str, sport: int, mac: str | None = None) -> Any:
        return (Ether(src=mac or sw.mac, dst=peer_mac) / IP(src=src, dst=peer) /
                UDP(sport=sport, dport=9) / b"hello from a user-space stack")

    checks: list[tuple[str, bool]] = []
    spoof_ip = ".".join(host.split(".")[:3] + ["66"])
    print("\nframes the ports send (the verdict comes from explain() first):")
    for label, port, f, want in [
            ("valid", a, frame(host, 5000), None),
            ("spoofed source IP", a, frame(spoof_ip, 5000), "spoofed-src-ip"),
            ("another port's binding", a, frame(host, 6000), "spoofed-src-port"),
            ("spoofed source MAC", b, frame(host, 6000, "02:aa:bb:cc:dd:ee"), "spoofed-src-mac")]:
        v = sw.explain(port.name, f)
        port.send(f)
        print(f"  {port.name} sends {label:<24} -> {v.action:<7} {v.reason or v.to:<16} "
              f"{v.detail}")
        checks.append((f"{label} frame: {want or 'forwarded'}",
                       v.reason == want and v.action == ("drop" if want else "forward")))

    print("\nframes from the network:")
    if topo:
        subprocess.run(["ip", "netns", "exec", topo.ns, sys.executable, "-c", PEER_TX, host,
                        "6000", "7777"], check=True)
        got = b.recv(timeout=2)
        print(f"  the peer's kernel sent udp to {host}:6000 and :7777; app2 received "
              f"{len(got) if got else 0} bytes, the host stack got the other")
        checks.append(("the peer's datagram to udp 6000 reached app2",
                       bool(got) and b"hello from the peer's kernel" in got))
    else:
        for dport in (6000, 7777):
            f = (Ether(src="02:00:00:00:00:09", dst=sw.mac) / IP(src=peer, dst=host) /
                 UDP(sport=9, dport=dport) / b"hi")
            v = sw.explain("nic", f)
            sw.wire.inject(f)
            print(f"  udp to {host}:{dport:<5} -> {v.action:<7} {v.reason or v.to:<16} "
                  f"{v.detail}")
        got = b.recv(timeout=1.0)
        print(f"  app2 received {len(got) if got else 0} bytes")
        checks.append(("the frame to udp 6000 reached app2", bool(got)))

    n = 100_000
    burst = [bytes(frame(host, 5000))] * 1024
    t0 = time.perf_counter()
    sent = 0
    while sent < n:
        sent += a.send_batch(burst[:min(1024, n - sent)])
    sw.sync(timeout=5)
    dt = time.perf_counter() - t0
    print(f"\nburst: app1 sent {sent} valid frames in {dt:.2f} s ({sent / dt / 1e6:.2f} Mpps "
          f"from Python)")
    if receiver:
        out, _ = receiver.communicate(timeout=30)
        print(f"  the peer's kernel received {out.strip()} of them on udp port 9 (its socket "
              f"buffer overflows at this rate; the rest is the kernel's to drop)")
        checks.append(("the peer's kernel received the burst", int(out.strip() or 0) > 0))
    else:
        on_wire = len(sw.wire.capture())
        print(f"  on the wire: {on_wire} frames (the wire keeps at most 4096)")
        checks.append(("the burst reached the wire", on_wire > 0))

    st = sw.stats()
    print("\ncounters:")
    for name, p in st["ports"].items():
        drops = {r: k for r, k in p["drops"].items() if k}
        print(f"  {name}: tx {p['tx']['frames']} rx {p['rx']['frames']} drops {drops}")
    nic = st["nic"]
    print(f"  nic: rx {nic['rx']['frames']} tx {nic['tx']['frames']} to-host "
          f"{nic['to-host']['frames']} drops {({r: k for r, k in nic['drops'].items() if k})}")
    print("\nrecent drops:")
    for d in sw.drops(limit=10):
        print(f"  {d['port']:<5} {d['direction']} {d['reason']:<16} {d['len']} bytes")

    app1, app2 = st["ports"]["app1"], st["ports"]["app2"]
    checks += [
        ("app1's valid frames all counted", app1["tx"]["frames"] == 1 + n),
        ("app1's spoofs counted by reason",
         app1["drops"]["spoofed-src-ip"] == 1 and app1["drops"]["spoofed-src-port"] == 1),
        ("app2's spoofed MAC counted", app2["drops"]["spoofed-src-mac"] == 1),
        # The virtual wire holds 4,096 frames, so most of its burst is counted ring-full.
        ("every valid frame was sent or counted",
         nic["tx"]["frames"] + nic["drops"]["ring-full"] == 1 + n),
    ]
    print("\nchecks:")
    for label, ok in checks:
        print(f"  {'✓' if ok else '✗'} {label}")
    failed = sum(not ok for _, ok in checks)
    print(f"demo: {len(checks) - failed} of {len(checks)} checks passed")
    return 1 if failed else 0
