"""Lab topologies: a peer network namespace joined to the host by a veth pair.

The host end is the interface a Switch attaches to; the peer namespace holds an ordinary
kernel stack to talk to. Needs root (CAP_NET_ADMIN).
"""
from __future__ import annotations

import ipaddress
import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

from ministack.errors import MiniStackError
from ministack.kernel import netlink_call


@dataclass
class Topology:
    """A peer namespace ``ns`` joined by a veth pair (``host_if`` here, ``peer_if`` there),
    with IPv4 and IPv6 addresses on both ends. Everything is removed on close(), also after
    an exception in a ``with`` block.

    >>> import ministack as ms
    >>> topo = ms.Topology(ns="ms-doc")          # nothing is created until up()
    >>> topo.host_if, topo.host_addrs[0], topo.peer_addrs[0]
    ('veth-ms', '10.0.0.2/24', '10.0.0.1/24')
    """

    ns: str = "ms-peer"
    host_if: str = "veth-ms"
    peer_if: str = "veth-peer"
    host_addrs: list[str] = field(default_factory=lambda: ["10.0.0.2/24", "fd00::2/64"])
    peer_addrs: list[str] = field(default_factory=lambda: ["10.0.0.1/24", "fd00::1/64"])
    _up: bool = field(default=False, init=False, repr=False)

    @property
    def host_ips(self) -> list[str]:
        """The host end's addresses without prefix lengths."""
        return [a.split("/")[0] for a in self.host_addrs]

    @property
    def peer_ips(self) -> list[str]:
        """The peer's addresses without prefix lengths."""
        return [a.split("/")[0] for a in self.peer_addrs]

    @netlink_call
    def up(self) -> "Topology":
        """Create the namespace, the veth pair and the addresses."""
        from pyroute2 import IPRoute, NetNS, netns

        if os.geteuid() != 0:
            raise MiniStackError("creating a topology needs root (CAP_NET_ADMIN); run it "
                                 "with sudo")
        for a in self.host_addrs + self.peer_addrs:
            ipaddress.ip_interface(a)  # fail early on a typo
        if self.ns in netns.listnetns():
            raise MiniStackError(f"namespace {self.ns!r} exists already; remove it with "
                                 f"'ministack topo down --ns {self.ns}' or pick another name")
        self._up = True
        try:
            netns.create(self.ns)
            with IPRoute() as ipr:
                if ipr.link_lookup(ifname=self.host_if):
                    raise MiniStackError(f"interface {self.host_if!r} exists already")
                # One queue each way, so that one AF_XDP socket sees every frame.
                # The peer too: native XDP on veth wants no more peer TX queues than RX ones.
                ipr.link("add", ifname=self.host_if, kind="veth",
                         peer={"ifname": self.peer_if, "num_tx_queues": 1,
                               "num_rx_queues": 1},
                         num_tx_queues=1, num_rx_queues=1)
                peer = ipr.link_lookup(ifname=self.peer_if)[0]
                ipr.link("set", index=peer, net_ns_fd=self.ns)
                host = ipr.link_lookup(ifname=self.host_if)[0]
                _addresses(ipr, host, self.host_addrs)
                ipr.link("set", index=host, state="up")
            with NetNS(self.ns) as nsr:
                lo = nsr.link_lookup(ifname="lo")[0]
                nsr.link("set", index=lo, state="up")
                peer = nsr.link_lookup(ifname=self.peer_if)[0]
                _addresses(nsr, peer, self.peer_addrs)
                nsr.link("set", index=peer, state="up")
        except BaseException:
            self.down()
            raise
        return self

    @netlink_call
    def down(self) -> None:
        """Remove the veth pair and the namespace. Idempotent."""
        from pyroute2 import IPRoute, netns

        with IPRoute() as ipr:
            for idx in ipr.link_lookup(ifname=self.host_if):
                ipr.link("del", index=idx)
        if self.ns in netns.listnetns():
            netns.remove(self.ns)
        self._up = False

    def exec(self, *argv: str, **kw: Any) -> subprocess.CompletedProcess:
        """Run a command in the peer namespace (``ip netns exec``)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv], **kw)

    @netlink_call
    def show(self) -> str:
        """A short description of what exists now."""
        from pyroute2 import IPRoute, netns

        lines = []
        with IPRoute() as ipr:
            links = ipr.link_lookup(ifname=self.host_if)
            if links:
                addrs = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                         for a in ipr.get_addr(index=links[0])]
                mac = ipr.get_links(links[0])[0].get_attr("IFLA_ADDRESS")
                lines.append(f"{self.host_if} (host) {mac} {' '.join(addrs)}")
            else:
                lines.append(f"{self.host_if}: absent")
        if self.ns in netns.listnetns():
            r = self.exec("ip", "-brief", "address", "show", "dev", self.peer_if)
            lines.append(f"namespace {self.ns}: {r.stdout.strip() or r.stderr.strip()}")
        else:
            lines.append(f"namespace {self.ns}: absent")
        return "\n".join(lines)

    def __enter__(self) -> "Topology":
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def _addresses(ipr: Any, index: int, addrs: list[str]) -> None:
    for a in addrs:
        iface = ipaddress.ip_interface(a)
        kw: dict[str, Any] = {}
        if iface.version == 6:
            kw["flags"] = 0x02  # IFA_F_NODAD: usable at once, no duplicate detection wait
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen,
                 **kw)
