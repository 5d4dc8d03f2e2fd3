"""The host kernel's side of a real interface: the interface's identity (netlink), tuple
reservations with kernel sockets, nftables ingress steering for the AF_PACKET backend, and
neighbour resolution. Used by Switch; not needed on the virtual NIC.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import re
import shutil
import socket
import subprocess
from typing import Any

from ministack.errors import MiniStackError

ECHO = {4: 1, 6: 58}
PORT_MATCH = {6: "tcp", 17: "udp", 33: "dccp", 132: "sctp", 136: "udplite"}
SOCKET_TYPES = {6: socket.SOCK_STREAM, 17: socket.SOCK_DGRAM, 132: socket.SOCK_STREAM,
                33: 6, 136: socket.SOCK_DGRAM}  # 6: SOCK_DCCP, which Python does not name


def outside_event_loop(fn: Any) -> Any:
    """Run fn() where no asyncio loop is running. pyroute2's synchronous API drives an
    event loop of its own and refuses to run inside one (a Jupyter kernel runs one), so
    netlink work moves to a short-lived thread there."""
    import asyncio
    import concurrent.futures

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
        return ex.submit(fn).result()


def netlink_call(fn: Any) -> Any:
    """Decorator: the function's netlink work happens outside any running event loop."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return outside_event_loop(lambda: fn(*args, **kwargs))
    return wrapper


@netlink_call
def interface_identity(ifname: str) -> tuple[str, list[str]]:
    """The interface's MAC and its addresses (IPv6 link-local ones left out).

    Raises MiniStackError when the interface does not exist."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            names = sorted(link.get_attr("IFLA_IFNAME") for link in ipr.get_links())
            raise MiniStackError(f"no interface {ifname!r} (interfaces: {', '.join(names)}); "
                                 f"'ministack topo up' creates a lab pair")
        mac = ipr.get_links(idx[0])[0].get_attr("IFLA_ADDRESS")
        addrs = []
        for a in ipr.get_addr(index=idx[0]):
            ip = ipaddress.ip_address(a.get_attr("IFA_ADDRESS"))
            if not ip.is_link_local:
                addrs.append(str(ip))
    return mac, addrs


class Reservations:
    """Kernel sockets that hold each bound tuple, as MultiStack required: the kernel then
    refuses the tuple to its own applications, and a tuple a kernel socket already holds is
    refused to ports (``in-use``)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, int, int], socket.socket] = {}

    def reserve(self, ip: str, proto: int, port: int) -> str:
        """Hold the tuple: "held"; "in-use" when a kernel socket holds it already;
        "not-permitted" when the kernel refuses this process the port (below
        ip_unprivileged_port_start without CAP_NET_BIND_SERVICE). Protocols the kernel cannot
        bind here (no module, port-less, ICMP without ping sockets) hold nothing: "held"."""
        family = ipaddress.ip_address(ip).version
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        echo = proto in ECHO.values()
        if echo:
            sock = _try_socket(af, socket.SOCK_DGRAM, proto)
        elif proto in SOCKET_TYPES:
            sock = _try_socket(af, SOCKET_TYPES[proto], proto)
        else:
            return "held"
        if sock is None:
            return "held"
        try:
            sock.bind((ip, port))
        except OSError as e:
            sock.close()
            if e.errno == errno.EADDRINUSE:
                return "in-use"
            if e.errno == errno.EACCES and not echo:
                return "not-permitted"
            return "held"  # e.g. EACCES for ping sockets outside ping_group_range
        self._held[(ip, proto, port)] = sock
        return "held"

    def release(self, ip: str, proto: int, port: int) -> None:
        sock = self._held.pop((ip, proto, port), None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        for sock in self._held.values():
            sock.close()
        self._held.clear()


def _try_socket(af: int, kind: int, proto: int) -> socket.socket | None:
    try:
        return socket.socket(af, kind, proto)
    except OSError:
        return None


def nft_match(ip: str, proto: int, port: int) -> str:
    """The nftables match for frames addressed to a binding.

    >>> nft_match("10.0.0.2", 17, 5000)
    'ether type ip ip daddr 10.0.0.2 udp dport 5000'
    >>> nft_match("fd00::2", 58, 7)
    'ether type ip6 ip6 daddr fd00::2 icmpv6 type { echo-request, echo-reply } icmpv6 id 7'
    """
    family = ipaddress.ip_address(ip).version
    # `ether type` reads the frame as it came, VLAN tag included (nft rebuilds it when the
    # driver has stripped it): a tagged frame is not a port's (DESIGN.md) but the host's.
    dst = f"ether type ip ip daddr {ip}" if family == 4 else f"ether type ip6 ip6 daddr {ip}"
    if proto in PORT_MATCH:
        return f"{dst} {PORT_MATCH[proto]} dport {port}"
    if proto == ECHO[family]:
        icmp = "icmp" if family == 4 else "icmpv6"
        return f"{dst} {icmp} type {{ echo-request, echo-reply }} {icmp} id {port}"
    return f"{dst} meta l4proto {proto}"


#: A datagram, as nftables names its fragments: source, destination, protocol, id.
_DATAGRAM = {4: "ip saddr . ip daddr . ip protocol . ip id",
             6: "ip6 saddr . ip6 daddr . frag nexthdr . frag id"}
#: A first fragment: more fragments follow, and it is at offset 0 (the match above reads
#: its ports, which only a first fragment has).
_FIRST = {4: "ip frag-off & 0x2000 != 0", 6: "frag more-fragments 1"}
#: A later fragment (offset above 0).
_LATER = {4: "ether type ip ip frag-off & 0x1fff != 0", 6: "ether type ip6 frag frag-off != 0"}


def nft_rules(ip: str, proto: int, port: int) -> list[str]:
    """The rules for a binding: frames addressed to it are dropped (and counted: `nft list
    table netdev ministack_IFNAME`; the tests read the counts), and a first fragment's
    datagram is remembered so that its later fragments, which carry no ports, are dropped
    too (the switch sends them where the first went, DESIGN.md).

    >>> nft_rules("10.0.0.2", 17, 5000)[1]
    'ether type ip ip daddr 10.0.0.2 udp dport 5000 counter drop'
    """
    family, match = ipaddress.ip_address(ip).version, nft_match(ip, proto, port)
    return [f"{match} {_FIRST[family]} update @frags{family} {{ {_DATAGRAM[family]} }}",
            f"{match} counter drop"]


class NftSteering:
    """An nftables netdev ingress table on the interface that drops each bound flow before
    the kernel stack sees it (AF_PACKET sockets have seen it already), so the kernel answers
    no bound flow with a RST or an ICMP unreachable. The table is rewritten whole, in one
    transaction, on every change; close() deletes it."""

    def __init__(self, ifname: str) -> None:
        if shutil.which("nft") is None:
            raise MiniStackError("the AF_PACKET backend needs nftables to keep bound flows "
                                 "from the kernel: apt-get install nftables")
        self.ifname = ifname
        self.table = nft_table(ifname)
        self._rules: dict[tuple[str, int, int], list[str]] = {}
        self._apply()

    def add(self, ip: str, proto: int, port: int) -> None:
        self._rules[(ip, proto, port)] = nft_rules(ip, proto, port)
        self._apply()

    def remove(self, ip: str, proto: int, port: int) -> None:
        if self._rules.pop((ip, proto, port), None) is not None:
            self._apply()

    def _apply(self) -> None:
        # Later fragments first: they carry no ports, only their datagram, which the rule
        # of the binding their first fragment matched has remembered (for 30 s, as the
        # switch and Linux's reassembly do). The sets go with the table, which every
        # change of the bindings rewrites: datagrams in flight across a bind or an unbind
        # are forgotten, and the kernel then sees (and in time discards) their later
        # fragments while the switch still delivers them.
        sets = "".join(f"  set frags{f} {{ typeof {_DATAGRAM[f]}; flags dynamic,timeout; "
                       f"timeout 30s; size 4096; }}\n" for f in (4, 6))
        later = [f"{_LATER[f]} {_DATAGRAM[f]} @frags{f} counter drop" for f in (4, 6)]
        rules = "\n".join(f"    {r}" for r in later + [r for rs in self._rules.values()
                                                      for r in rs])
        text = (f"table netdev {self.table}\ndelete table netdev {self.table}\n"
                f"table netdev {self.table} {{\n{sets}  chain ingress {{\n"
                f"    type filter hook ingress device \"{self.ifname}\" priority -500; "
                f"policy accept;\n{rules}\n  }}\n}}\n")
        _nft(text)

    def close(self) -> None:
        _nft(f"table netdev {self.table}\ndelete table netdev {self.table}\n")


def _nft(text: str) -> None:
    r = subprocess.run(["nft", "-f", "-"], input=text, capture_output=True, text=True)
    if r.returncode != 0:
        raise MiniStackError(f"nftables refused the steering table: {r.stderr.strip()}")


def nft_table(ifname: str) -> str:
    """The name of the steering table of an interface.

    >>> nft_table("veth-ms")
    'ministack_veth_ms'
    """
    return "ministack_" + re.sub(r"[^A-Za-z0-9_]", "_", ifname)


def nft_dropped(ifname: str) -> int:
    """Frames the steering rules of an interface have dropped so far, all rules together."""
    r = subprocess.run(["nft", "-j", "list", "table", "netdev", nft_table(ifname)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise MiniStackError(f"nftables could not list the steering table of {ifname}: "
                             f"{r.stderr.strip()}")
    return sum(x["counter"]["packets"] for e in json.loads(r.stdout)["nftables"]
               if "rule" in e for x in e["rule"]["expr"] if "counter" in x)


def nft_tables() -> list[str]:
    """Names of the netdev tables that exist now (for tests and 'topo show')."""
    r = subprocess.run(["nft", "list", "tables", "netdev"], capture_output=True, text=True)
    return [line.split()[-1] for line in r.stdout.splitlines() if line.startswith("table")]
