"""The host kernel's side of a real interface: the interface's identity (netlink), tuple
reservations with kernel sockets, the AF_PACKET backend's ingress steering on its own (for
benchmarks), and neighbour resolution. Used by Switch; not needed on the virtual NIC.
"""
from __future__ import annotations

import errno
import ipaddress
import socket
import subprocess
from typing import Any

from ministack.errors import MiniStackError

ECHO = {4: 1, 6: 58}
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


class IngressSteering:
    """The AF_PACKET backend's steering on its own, without a switch: the steering program
    (native/xdp/ministack_steer.bpf.c, the XDP program's rules) at the interface's tc
    ingress, dropping before the host stack the frames addressed to each tuple added. A
    switch on AF_PACKET has its own; benchmarks give a bare packet socket this one, so
    that the kernel does no work on its flow either. Needs root.

    >>> import ministack.kernel as k
    >>> with k.IngressSteering("veth-ms") as g:  # doctest: +SKIP
    ...     g.add("10.0.0.2", 17, 5000)
    """

    def __init__(self, ifname: str) -> None:
        from ministack.binding import ffi, lib

        err = ffi.new("char[]", 512)
        self._g = lib.ms_ingress_new(ifname.encode(), err, 512)
        if self._g == ffi.NULL:
            raise MiniStackError(ffi.string(err).decode())
        self.ifname = ifname

    def _set(self, add: int, ip: str, proto: int, port: int) -> None:
        from ministack.binding import lib, strerror

        addr = ipaddress.ip_address(ip)
        rc = lib.ms_ingress_binding(self._g, add, addr.version, proto, addr.packed, port)
        if rc < 0:
            raise MiniStackError(f"could not {'add' if add else 'remove'} {ip} {proto} "
                                 f"{port} in {self.ifname}'s ingress steering: "
                                 f"{strerror(rc)}")

    def add(self, ip: str, proto: int, port: int) -> None:
        """Drop frames to (ip, IP protocol proto, destination port) before the host stack."""
        self._set(1, ip, proto, port)

    def remove(self, ip: str, proto: int, port: int) -> None:
        self._set(0, ip, proto, port)

    def close(self) -> None:
        """Detach the program from the interface. Idempotent."""
        from ministack.binding import ffi, lib

        if self._g != ffi.NULL:
            lib.ms_ingress_destroy(self._g)
            self._g = ffi.NULL

    def __enter__(self) -> IngressSteering:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tc_ingress_filters(ifname: str) -> str:
    """What `tc filter show dev IFNAME ingress` lists ("" when nothing): a switch's
    steering program while it runs, nothing once it is closed."""
    r = subprocess.run(["tc", "filter", "show", "dev", ifname, "ingress"],
                       capture_output=True, text=True)
    return r.stdout.strip()
