"""`ministack demo --stacks`: several network stacks on one interface at once, the poster's
claim shown. On a veth into a peer namespace (root):

- lwIP (Debian's liblwip-dev, ``ministack lwip-echo``) on port ``lwip``, through the daemon,
  echoing TCP 8080 and UDP 5353;
- a TAP-style stack on ``frame_fd()`` of port ``tapstack`` (raw frames in and out, as a stack
  written for a TAP device does), echoing UDP 7000;
- the host kernel's own sockets, echoing UDP 9999;

and the peer's kernel reaches all three. Then the TAP-style stack misbehaves (it spoofs
lwIP's tuple, spoofs ARP, sends fragments of a datagram it never started), and every bad
frame is counted under its reason while the peer's capture shows none of them. It exits 1
when any check fails."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
from typing import Any

# What the peer's kernel does: connect and echo over TCP, then UDP to each stack.
PEER = """
import os, socket, sys
lwip, host = sys.argv[1], sys.argv[2]
s = socket.create_connection((lwip, 8080), timeout=10)
data = os.urandom(100000)
s.sendall(data)
got = bytearray()
while len(got) < len(data):
    b = s.recv(65536)
    if not b:
        break
    got += b
s.close()
print("tcp-lwip", bytes(got) == data, flush=True)
for name, ip, port in (("udp-lwip", lwip, 5353), ("udp-tap", host, 7000),
                       ("udp-kernel", host, 9999)):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(2)
    msg = name.encode() * 50
    ok = False
    for _ in range(3):
        u.sendto(msg, (ip, port))
        try:
            ok = u.recvfrom(65536)[0] == msg
            break
        except TimeoutError:
            pass
    print(name, ok, flush=True)
"""

CAPTURE = """
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
s.settimeout(0.1)
print("ready", flush=True)
evil = good = 0
end = time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        f = s.recv(65536)
    except TimeoutError:
        continue
    evil += b"EVIL" in f
    good += b"GOOD" in f
print(evil, good, flush=True)
"""


class TapStack(threading.Thread):
    """A tiny stack written against a TAP device: it reads raw frames from a descriptor and
    writes raw frames back, knowing nothing of MiniStack. It echoes UDP datagrams sent to
    its port, replying to the sender's MAC (so it needs no ARP of its own)."""

    def __init__(self, fd: int, udp_port: int) -> None:
        super().__init__(daemon=True)
        self.fd, self.udp_port, self.echoed = fd, udp_port, 0
        self.running = True

    def run(self) -> None:
        import select

        from scapy.layers.inet import IP, UDP
        from scapy.layers.l2 import Ether
        while self.running:
            if not select.select([self.fd], [], [], 0.2)[0]:
                continue
            f = os.read(self.fd, 65536)
            if not f:
                return
            pkt = Ether(f)
            if UDP not in pkt or pkt[UDP].dport != self.udp_port or pkt[IP].frag or \
                    pkt[IP].flags.MF:
                continue
            os.write(self.fd, bytes(Ether(src=pkt.dst, dst=pkt.src) /
                                    IP(src=pkt[IP].dst, dst=pkt[IP].src) /
                                    UDP(sport=pkt[UDP].dport, dport=pkt[UDP].sport) /
                                    bytes(pkt[UDP].payload)))
            self.echoed += 1


def misbehave(fd: int, mac: str, host: str, lwip: str, peer: str,
              peer_mac: str) -> dict[str, int]:
    """The TAP-style stack turns bad (it holds udp 7000 on `host`): what it sends, by the
    reason the switch must give."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import ARP, Ether

    evil = b"EVIL" * 10
    eth = Ether(src=mac, dst=peer_mac)
    sent = {
        # lwIP's own tuple, udp 5353 on lwIP's address, which this stack never bound; and
        # an ARP reply claiming the peer's address.
        "spoofed-src-ip": [eth / IP(src=lwip, dst=peer) / UDP(sport=5353, dport=9) / evil,
                           eth / ARP(op=2, hwsrc=mac, psrc=peer, hwdst=peer_mac, pdst=peer) /
                           evil],
        # Its own address, but TCP, or another UDP port.
        "spoofed-protocol": [eth / IP(src=host, dst=peer) / TCP(sport=7000, dport=9) / evil],
        "spoofed-src-port": [eth / IP(src=host, dst=peer) / UDP(sport=5353, dport=9) / evil],
        # An ARP reply for its own address (a port only asks), and a request in another
        # MAC's name.
        "not-allowed": [eth / ARP(op=2, hwsrc=mac, psrc=host, hwdst=peer_mac, pdst=peer) /
                        evil],
        "spoofed-src-mac": [Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") /
                            ARP(op=1, hwsrc="02:ee:ee:ee:ee:ee", psrc=host, pdst=peer) / evil],
        # Later fragments of a datagram whose first fragment it never sent.
        "fragment": [eth / IP(src=host, dst=peer, id=4242, proto=17, flags="MF", frag=k) / evil
                     for k in (185, 370)],
    }
    for frames in sent.values():
        for f in frames:
            os.write(fd, bytes(f))
    return {reason: len(frames) for reason, frames in sent.items()}


def run() -> int:
    """Run the demo; root only (it needs a peer namespace and a real kernel)."""
    import ministack as ms
    from ministack.daemon import Daemon

    if os.geteuid() != 0:
        print("ministack demo --stacks: needs root (a peer namespace with a real kernel)",
              file=sys.stderr)
        return 2
    result = run_checks(ms, Daemon)
    for label, ok in result["checks"]:
        print(f"  {'✓' if ok else '✗'} {label}")
    failed = sum(not ok for _, ok in result["checks"])
    print(f"demo --stacks: {len(result['checks']) - failed} of {len(result['checks'])} "
          f"checks passed")
    return 1 if failed else 0


def run_checks(ms: Any, daemon_cls: Any, ns: str = "ms-stacks") -> dict[str, Any]:
    """The demo, returning {"checks": [(label, ok)], "stats": the switch's stats(),
    "misbehaved": {reason: frames sent}}."""
    topo = ms.Topology(ns=ns, host_if=f"{ns}0", peer_if=f"{ns}1",
                       host_addrs=["10.78.0.2/24", "10.78.0.3/24"],
                       peer_addrs=["10.78.0.1/24"])
    checks: list[tuple[str, bool]] = []
    with topo, tempfile.TemporaryDirectory(prefix="ministack-stacks-") as d:
        lwip_ip, host = topo.host_ips
        peer = topo.peer_ips[0]
        dm = daemon_cls(nic=topo.host_if, socket_path=os.path.join(d, "ms.sock"))
        dm.listen()
        threading.Thread(target=dm.serve_forever, daemon=True).start()
        sw = dm.switch
        print(f"switch on {sw.nic} ({sw.backend}); peer namespace {topo.ns} at {peer}")
        kernel = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        kernel.bind((host, 9999))
        kernel.settimeout(0.2)
        stop = threading.Event()

        def kernel_echo() -> None:
            while not stop.is_set():
                try:
                    data, addr = kernel.recvfrom(65536)
                    kernel.sendto(data, addr)
                except TimeoutError:
                    pass
        echo = threading.Thread(target=kernel_echo, daemon=True)
        echo.start()
        lwip = subprocess.Popen([sys.executable, "-m", "ministack", "lwip-echo", "--socket",
                                 dm.socket_path, "--ip", f"{lwip_ip}/24", "--tcp", "8080",
                                 "--udp", "5353", "--port", "lwip"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        client = ms.connect(dm.socket_path)
        tap = None
        try:
            ready = lwip.stdout.readline().strip() if lwip.stdout else ""
            checks.append(("lwIP started on port lwip (tcp 8080, udp 5353)", ready == "ready"))
            print(f"  lwIP on port lwip: {lwip_ip} tcp 8080, udp 5353")
            port = client.port("tapstack")
            port.bind(host, "udp", 7000)
            fd = port.frame_fd()
            tap = TapStack(fd, 7000)
            tap.start()
            print(f"  a TAP-style stack on frame_fd() of port tapstack: {host} udp 7000")
            print(f"  the host kernel's own socket: {host} udp 9999")
            out = subprocess.run(["ip", "netns", "exec", topo.ns, sys.executable, "-c", PEER,
                                  lwip_ip, host], capture_output=True, text=True, timeout=60)
            answers = dict(line.split() for line in out.stdout.splitlines() if line.strip())
            for key, label in (("tcp-lwip", "the peer's TCP connection to lwIP echoed 100 kB"),
                               ("udp-lwip", "the peer's UDP datagram to lwIP came back"),
                               ("udp-tap", "the peer's UDP datagram to the TAP stack came back"),
                               ("udp-kernel", "the peer's UDP datagram to the host kernel came "
                                              "back")):
                checks.append((label, answers.get(key) == "True"))
            capture = subprocess.Popen(["ip", "netns", "exec", topo.ns, sys.executable, "-c",
                                        CAPTURE, topo.peer_if, "1.5"],
                                       stdout=subprocess.PIPE, text=True)
            assert capture.stdout is not None
            capture.stdout.readline()
            peer_mac = sw.resolve(peer, timeout=2)
            before = client.stats()["ports"]["tapstack"]["drops"]
            bad = misbehave(fd, sw.mac, host, lwip_ip, peer, peer_mac)
            print("\nthe TAP-style stack misbehaves: " +
                  ", ".join(f"{n} x {r}" for r, n in bad.items()))
            # One good frame after the bad ones: the capture must see it, or it proves nothing.
            from scapy.layers.inet import IP, UDP
            from scapy.layers.l2 import Ether
            os.write(fd, bytes(Ether(src=sw.mac, dst=peer_mac) / IP(src=host, dst=peer) /
                               UDP(sport=7000, dport=9) / (b"GOOD" * 10)))
            evil, good = map(int, (capture.communicate(timeout=10)[0].split() + ["-1", "-1"])[:2])
            after = client.stats()["ports"]["tapstack"]["drops"]
            for reason, n in bad.items():
                checks.append((f"{n} bad frame(s) counted as {reason}",
                               after[reason] - before[reason] == n))
            checks.append(("the peer's capture saw the good frame sent after them", good >= 1))
            checks.append(("none of the bad frames reached the peer", evil == 0))
            stats = sw.stats()
        finally:
            stop.set()
            if tap:
                tap.running = False
            lwip.kill()
            lwip.wait()
            client.close()
            dm.close()
            echo.join()
            kernel.close()
    print("\ncounters:")
    for name, p in stats["ports"].items():
        drops = {r: k for r, k in p["drops"].items() if k}
        print(f"  {name}: tx {p['tx']['frames']} rx {p['rx']['frames']} local "
              f"{p['local']['frames']} drops {drops}")
    return {"checks": checks, "stats": stats, "misbehaved": bad}
