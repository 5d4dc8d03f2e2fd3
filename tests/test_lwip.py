"""lwIP, a TCP/IP stack nobody here wrote (Debian's liblwip-dev), runs unmodified on a
MiniStack port through the daemon, and the peer namespace's kernel talks to it with its
offloads at their defaults: TCP (1 MiB echoed), UDP (a 4,000-byte datagram, fragmented at
MTU 1500, echoed whole), IPv4 and IPv6, both backends. Needs root; CI runs as root."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

import ministack as ms
from ministack.daemon import Daemon

from conftest import need, peer_namespace, serving  # noqa: E402

pytestmark = pytest.mark.usefixtures("root")

EXE = os.path.join(os.path.dirname(ms.__file__), "ms-lwip-echo")

PEER_CLIENT = """
import os, socket, sys, threading
host, tcp, udp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.create_connection((host, tcp), timeout=10)
data = os.urandom(1 << 20)
t = threading.Thread(target=s.sendall, args=(data,))
t.start()
got = bytearray()
while len(got) < len(data):
    b = s.recv(1 << 16)
    if not b:
        break
    got += b
t.join()
s.close()
u = socket.socket(fam, socket.SOCK_DGRAM)
u.settimeout(5)
msg = os.urandom(4000)
for _ in range(3):  # the first may wait on neighbour resolution
    u.sendto(msg, (host, udp))
    try:
        back, _ = u.recvfrom(65536)
        break
    except TimeoutError:
        back = b""
print(len(got), bytes(got) == data, len(back), back == msg, flush=True)
"""


@pytest.fixture
def topo() -> Iterator[ms.Topology]:
    with peer_namespace("l", 2) as t:
        yield t


@pytest.fixture(params=["afpacket", "afxdp"])
def daemon(request: pytest.FixtureRequest, topo: ms.Topology) -> Iterator[Daemon]:
    with serving(nic=topo.host_if, backend=request.param) as dm:
        yield dm


def lwip(daemon: Daemon, topo: ms.Topology, name: str = "lwip") -> subprocess.Popen:
    need(os.path.exists(EXE), "ms-lwip-echo (liblwip-dev, which ./setup.sh installs)")
    h4, h6 = topo.host_ips
    p = subprocess.Popen([sys.executable, "-m", "ministack", "lwip-echo", "--socket",
                          daemon.socket_path, "--ip", f"{h4}/24", "--ip6", h6, "--tcp", "8080",
                          "--udp", "5353", "--port", name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    assert line == "ready", (line, p.stderr.read() if p.poll() is not None else "")
    return p


def test_lwip_serves_the_peers_kernel_over_tcp_and_udp(daemon: Daemon,
                                                       topo: ms.Topology) -> None:
    offl = subprocess.run(["ip", "netns", "exec", topo.ns, "ethtool", "-k", topo.peer_if],
                          capture_output=True, text=True, check=True).stdout
    assert "tx-checksumming: on" in offl, offl
    if daemon.switch.backend == "afpacket":  # native XDP on a veth turns its peer's TSO off
        assert "tcp-segmentation-offload: on" in offl, offl
    stack = lwip(daemon, topo)
    try:
        for host in topo.host_ips:
            out = subprocess.run(["ip", "netns", "exec", topo.ns, sys.executable, "-c",
                                  PEER_CLIENT, host, "8080", "5353"],
                                 capture_output=True, text=True, timeout=60)
            assert out.stdout.split() == [str(1 << 20), "True", "4000", "True"], (
                host, out.stdout, out.stderr[-2000:])
        st = daemon.switch.stats()
        port = st["ports"]["lwip"]
        # lwIP resolved its peer through the switch, and nothing it sent was refused.
        assert port["local"]["answers"] >= 2, port
        assert sum(port["drops"].values()) == 0, port["drops"]
        assert st["nic"]["fragments"]["followed"] >= 4, st["nic"]["fragments"]
    finally:
        stack.kill()
        stack.wait()
