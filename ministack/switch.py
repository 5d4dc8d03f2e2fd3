"""The public API: Switch, Port, Binding, Verdict and the virtual wire.

Everything here is a thin layer over the C datapath (ministack.binding): the filter, the
bindings table, explain() and the counters all live in C. This module converts arguments,
turns return codes into exceptions with useful messages, and formats results.
"""
from __future__ import annotations

import errno
import functools
import ipaddress
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Self, Sequence

from ministack.binding import ffi, lib, strerror, timeout_ms
from ministack.credentials import SYSCTL, Caller, unprivileged_port_start
from ministack.errors import BindError, MiniStackError, PortError
from ministack.ipproto import protocol_name, protocol_number
from ministack.rings import Frame, PortRings, frame_bytes

log = logging.getLogger("ministack")

RESERVED_NAMES = ("nic", "host")
DEFAULT_ADDRESSES = ("10.0.0.2", "fd00::2")
DEFAULT_MAC = "02:4d:53:00:00:02"

#: Verdict names by number (docs/reasons.md: the numbers never change), from the C table.
REASONS = [ffi.string(lib.ms_reason_name(i)).decode() for i in range(lib.MS_R_COUNT)]
#: Name -> number.
REASON_CODES = {name: i for i, name in enumerate(REASONS)}
#: Ports one switch can have.
MAX_PORTS = lib.MS_MAX_PORTS
#: Frames each of the switch's two logs keeps (its drops; the frames of tapped ports).
LOG_FRAMES = lib.MS_FRAMELOG_LEN
#: What each verdict is, by number: "forward", "drop", "local" or "to-host".
REASON_KINDS = [ffi.string(lib.ms_reason_kind_name(lib.ms_reason_kind(i))).decode()
                for i in range(lib.MS_R_COUNT)]


def reason_sentence(reason: str | int) -> str:
    """The sentence docs/reasons.md gives a reason (by name or number).

    >>> reason_sentence("spoofed-src-ip")
    'its source address is not one the port bound'
    >>> reason_sentence(8) == reason_sentence("spoofed-src-ip")
    True
    """
    code = REASON_CODES[reason] if isinstance(reason, str) else reason
    return ffi.string(lib.ms_reason_sentence(code)).decode()


def reason_detail(reason: str | int, rx: bool = False) -> str:
    """explain()'s template for one frame with this verdict, sent by a port or (rx) from
    the network, from the C table; its fields are filled from the frame ("" where the
    verdict cannot happen).

    >>> reason_detail("spoofed-src-ip")
    'source {src} is not an address {port} bound ({port} holds: {held})'
    """
    code = REASON_CODES[reason] if isinstance(reason, str) else reason
    return ffi.string(lib.ms_reason_detail(code, int(rx))).decode()


_COUNTED = [lib.ms_reason_counted(i) for i in range(lib.MS_R_COUNT)]
#: Reasons a port's counters can show: the TX filter's checks in their order, then the
#: delivery outcomes; and the NIC's.
PORT_DROP_REASONS = ([r for r, c in zip(REASONS, _COUNTED) if c == lib.MS_COUNTED_CHECK] +
                     [r for r, c in zip(REASONS, _COUNTED)
                      if c in (lib.MS_COUNTED_PORT, lib.MS_COUNTED_BOTH)])
NIC_DROP_REASONS = [r for r, c in zip(REASONS, _COUNTED)
                    if c in (lib.MS_COUNTED_NIC, lib.MS_COUNTED_BOTH)]
BIND_REASONS = {
    lib.MS_BIND_ADDRESS_NOT_LOCAL: "address-not-local",
    lib.MS_BIND_IN_USE: "in-use",
    lib.MS_BIND_BAD_PROTOCOL: "bad-protocol",
    lib.MS_BIND_BAD_PORT: "bad-port",
    lib.MS_BIND_NOT_OWNER: "not-owner",
    lib.MS_BIND_NO_SPACE: "in-use",
    lib.MS_BIND_NOT_PERMITTED: "not-permitted",
}


def _ip(address: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip() if isinstance(address, str) else address)
    except (ValueError, TypeError):
        return None


def _ip_text(family: int, raw: bytes) -> str:
    return str(ipaddress.ip_address(bytes(raw[:4] if family == 4 else raw[:16])))


def _mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    try:
        raw = bytes(int(p, 16) for p in parts)
    except ValueError:
        raw = b""
    if len(parts) != 6 or len(raw) != 6:
        raise ValueError(f"{mac!r} is not a MAC address; write it like 02:4d:53:00:00:02")
    return raw


ND_NAMES = {lib.MS_ND_ARP_REQUEST: "an ARP request", lib.MS_ND_ARP_OTHER: "an ARP reply",
            lib.MS_ND_NS: "a neighbour solicitation", lib.MS_ND_NA: "a neighbour advertisement",
            lib.MS_ND_RS: "a router solicitation", lib.MS_ND_RA: "a router advertisement",
            lib.MS_ND_REDIRECT: "an ICMPv6 redirect", lib.MS_ND_MLD: "a multicast listener report"}


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in bytes(raw))


def frame_summary(frame: Frame) -> str:
    """One line on what a frame is, as tcpdump would put it, read by the datapath's own
    parser (nothing else in MiniStack reads headers).

    >>> from ministack.bench import udp_frame
    >>> frame_summary(udp_frame("02:00:00:00:00:01", "10.0.0.2", "10.0.0.9", 5000, 53))
    'udp 10.0.0.2:5000 > 10.0.0.9:53, 64 bytes'
    """
    data = frame_bytes(frame)
    p = ffi.new("struct ms_parsed *")
    lib.ms_parse(data, len(data), p)
    size = f"{p.len} bytes"
    if p.nd in (lib.MS_ND_ARP_REQUEST, lib.MS_ND_ARP_OTHER):
        what = "request" if p.nd == lib.MS_ND_ARP_REQUEST else "reply"
        return (f"arp {what} who-has {_ip_text(4, ffi.buffer(p.nd_target))} tell "
                f"{_ip_text(4, ffi.buffer(p.src_ip))}, {size}")
    if p.family:
        name = protocol_name(p.proto)
        src = _ip_text(p.family, ffi.buffer(p.src_ip))
        dst = _ip_text(p.family, ffi.buffer(p.dst_ip))
        if p.nd:
            return f"{name} {src} > {dst}: {ND_NAMES[p.nd].split(' ', 1)[1]}, {size}"
        if p.has_ports:
            if p.family == 6:
                src, dst = f"[{src}]", f"[{dst}]"
            line = f"{name} {src}:{p.sport} > {dst}:{p.dport}"
        else:
            line = f"{name} {src} > {dst}"
        if p.frag == lib.MS_FRAG_LATER:
            line += f" (later fragment, id {p.frag_id})"
        return f"{line}, {size}"
    if p.problems & (1 << lib.MS_R_MALFORMED) and p.note != ffi.NULL:
        return f"malformed: {ffi.string(p.note).decode()}, {size}"
    return f"ethertype 0x{p.ethertype:04x}, {size}"


@dataclass(frozen=True)
class Binding:
    """A (local IP, protocol, local port) tuple held by a port.

    >>> import ministack as ms
    >>> with ms.Switch() as sw:
    ...     sw.port("app1").bind("10.0.0.2", "udp", 5000)
    Binding(port='app1', ip='10.0.0.2', protocol='udp', local_port=5000)
    """

    port: str
    ip: str
    protocol: str
    local_port: int

    @property
    def proto(self) -> int:
        """The IP protocol number."""
        return protocol_number(self.protocol)  # type: ignore[return-value]

    @property
    def family(self) -> int:
        """4 or 6."""
        return ipaddress.ip_address(self.ip).version

    def __str__(self) -> str:
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.protocol} {ip}:{self.local_port}"


@dataclass(frozen=True)
class Verdict:
    """What the switch does with a frame: see Switch.explain().

    ``action`` is "forward", "drop" or "local" (the switch handles the frame itself: a
    port's ARP or neighbour discovery); ``reason`` the drop reason (None otherwise); ``to``
    is "wire", "host" or a port name (for "local": the sending port when the switch
    answers it, else None; None when dropped); ``detail`` a sentence that names the binding
    checked.

    >>> import ministack as ms
    >>> from ministack.bench import udp_frame
    >>> with ms.Switch() as sw:
    ...     _ = sw.port("app1").bind("10.0.0.2", "udp", 5000)
    ...     v = sw.explain("app1", udp_frame(sw.mac, "10.0.0.66", "10.0.0.9", 5000, 53))
    >>> v.action, v.reason
    ('drop', 'spoofed-src-ip')
    >>> v.detail
    'source 10.0.0.66 is not an address app1 bound (app1 holds: udp 10.0.0.2:5000)'
    """

    action: str
    reason: str | None
    to: str | None
    detail: str
    #: The verdict's number (docs/reasons.md): the drop reason's, 13 local, 14 to-host,
    #: 0 forwarded.
    code: int = 0
    #: A spoofed frame, or one from the network no port bound: the binding it came
    #: closest to and what differed ("udp 10.0.0.2:5000 held by app1: source port 5001 ≠
    #: 5000"); None when there is no binding to compare with.
    nearest: str | None = None
    #: For a drop a bind could prevent: the bind that would have allowed the frame, or
    #: why none can (``app1.bind("10.0.0.2", "udp", 5001)``); None otherwise.
    fix: str | None = None


class Wire(PortRings):
    """The far end of the virtual NIC: the network, as seen from outside the switch. It is
    a port-shaped region, so it sends and receives exactly as a port's owner does.

    >>> import ministack as ms
    >>> with ms.Switch() as sw:
    ...     sw.wire.capture()
    []
    """

    name = "wire"

    def __init__(self, switch: "Switch") -> None:
        self._switch = switch
        app = lib.ms_switch_wire(switch._sw)
        if app == ffi.NULL:
            raise MiniStackError("could not open the virtual wire")
        self._init_rings(app)
        self._slots = lib.ms_app_slots(app)

    def _check_open(self) -> None:
        self._switch._check_open()

    def inject(self, frames: Frame | Sequence[Frame], timeout: float | None = 1.0) -> int:
        """Deliver one frame, or a list of frames, to the switch as if from the network.

        Returns how many were queued (all of them unless the switch stayed busy for
        ``timeout`` seconds).
        """
        if not isinstance(frames, (list, tuple)):
            frames = [frames]
        return self.send_batch(frames, timeout)

    def add_neighbor(self, ip: str, mac: str | None) -> None:
        """Say that ``ip`` is at ``mac`` on the virtual network, so that the switch answers
        ports' ARP requests and neighbour solicitations for it (on a real interface it
        answers from the kernel's table). ``mac`` None forgets the neighbour.

        >>> import ministack as ms
        >>> with ms.Switch() as sw:
        ...     sw.wire.add_neighbor("10.0.0.1", "02:00:00:00:00:01")
        """
        addr = ipaddress.ip_address(ip)
        raw = ffi.NULL if mac is None else bytes.fromhex(mac.replace(":", ""))
        if raw is not ffi.NULL and len(raw) != 6:
            raise ValueError(f"{mac!r} is not a MAC address (six bytes, 02:00:00:00:00:01)")
        rc = lib.ms_switch_add_neighbor(self._switch._sw, addr.version, addr.packed, raw)
        if rc < 0:
            raise MiniStackError(f"could not add neighbour {ip}: the table holds 256 at most")

    def capture(self, timeout: float = 0.1) -> list[bytes]:
        """Frames that reached the wire since the last call, oldest first.

        Waits up to ``timeout`` seconds for the switch to finish with every frame already
        sent, so a capture right after send() sees that frame's outcome. Frames beyond the
        wire ring's capacity (4096 by default) are dropped and counted as NIC ring-full.
        """
        self._switch.sync(timeout)
        out: list[bytes] = []
        while got := self.recv_batch(self._slots, timeout=0):
            out += got
        return out


def _frame_record(r: Any) -> dict[str, Any]:
    """A struct ms_frame_record (a drop, or a tapped frame) as drops() and Tap.read()
    return it."""
    return {
        "seq": r.seq,
        "port": ffi.string(r.port_name).decode(),
        "direction": "rx" if r.direction else "tx",
        "reason": REASONS[r.reason],
        "code": r.reason,
        "peer": ffi.string(r.peer_name).decode() or None,
        "time": r.time_ns / 1e9,
        "len": r.len,
        "frame": bytes(ffi.buffer(r.frame, r.caplen)),
    }


class Closing:
    """Something close() releases: a context manager, also closed when it is collected."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit anything may be gone
            pass


class Tap(Closing):
    """Frames recorded for some ports since the tap opened (Switch.tap()). The switch keeps
    the last 1,024 recorded frames of all taps: read often, or count ``lost``.

    Each frame is a dict as in Switch.drops(), with reason "ok" for a forwarded frame,
    "local", "to-host" or a drop's reason, and ``peer``: where a port's frame went ("nic"
    for the wire, or the port it was delivered to) or where a frame for a port came from
    ("nic", the sending port, or "switch" for the switch's own answer); "host" for one the
    host stack took; None for one that went nowhere.

    >>> import ministack as ms
    >>> with ms.Switch() as sw, sw.tap("nic") as t:
    ...     _ = sw.wire.send(b"\\x00" * 60)
    ...     _ = sw.sync()
    ...     [f["reason"] for f in t.read()], t.lost
    (['no-binding'], 0)
    """

    def __init__(self, sw: "Switch", ports: list[str] | None, targets: list[int]) -> None:
        self.ports = ports
        self.lost = 0  # frames recorded (for any tap) that were overwritten before read()
        self._sw = sw
        self._buf: Any = None
        self._ids: list[int] = []
        self._since = 0
        seq = ffi.new("uint64_t *")
        try:
            for i, t in enumerate(targets):
                tid = sw._tap_call(lib.ms_tap_open, t, seq)
                if tid < 0:
                    raise MiniStackError(f"cannot open a tap: {strerror(tid)}" +
                                         (f" ({lib.MS_MAX_TAPS} are open on this switch; "
                                          f"close one)" if tid == -errno.ENOSPC else ""))
                self._ids.append(tid)
                if i == 0:
                    self._since = seq[0]
        except BaseException:
            self.close()
            raise

    def read(self, limit: int = 1024) -> list[dict[str, Any]]:
        """The frames recorded for this tap's ports since the last read (at most
        ``limit`` of the log's records are looked at), oldest first."""
        limit = max(1, min(int(limit), lib.MS_FRAMELOG_LEN))
        if self._buf is None or len(self._buf) < limit:
            self._buf = ffi.new("struct ms_frame_record[]", limit)
        if not self._ids:
            return []
        n = self._sw._tap_call(lib.ms_tapped, self._since, self._buf, limit)
        recs = self._buf[0:n]
        if n:
            self.lost += recs[0].seq - self._since - 1
            self._since = recs[n - 1].seq
        out = [_frame_record(r) for r in recs]
        if self.ports is None:
            return out
        return [f for f in out if f["port"] in self.ports or f["peer"] in self.ports]

    def close(self) -> None:
        """Stop recording. Idempotent."""
        ids, self._ids = self._ids, []
        for tid in ids:
            self._sw._tap_call(lib.ms_tap_close, tid)


def _locked(method: Any) -> Any:
    """Run a Switch method under the switch's lock, on an open switch."""
    @functools.wraps(method)
    def wrapper(self: "Switch", *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._check_open()
            return method(self, *args, **kwargs)
    return wrapper


class Port(PortRings):
    """A switch port: its own packet memory (TX and RX rings), its own bindings.

    >>> import ministack as ms
    >>> with ms.Switch() as sw:
    ...     a = sw.port("app1")
    ...     b = a.bind("10.0.0.2", "udp", 5000)
    ...     a.bindings()
    [Binding(port='app1', ip='10.0.0.2', protocol='udp', local_port=5000)]
    """

    def __init__(self, switch: "Switch", name: str, pid: int, mtu: int) -> None:
        self._switch = switch
        self.name = name
        self.mtu = mtu
        self._id = pid
        #: on backend="vale": the port's netmap descriptor (valems:NAME), else -1
        self.netmap_fd = -1
        #: on backend="vale": (size of its netmap memory, offset of its interface there)
        self.netmap_region = (0, 0)
        if switch.backend == "vale":
            from ministack import vale

            self.netmap_fd, *region = vale.open_port(name)
            self.netmap_region = (region[0], region[1])
            app = lib.ms_app_open_netmap(self.netmap_fd, *self.netmap_region)
        else:
            app = lib.ms_switch_app(switch._sw, pid)
        if app == ffi.NULL:
            if self.netmap_fd >= 0:
                os.close(self.netmap_fd)
            raise PortError(f"could not map the memory of port {name!r}")
        self._init_rings(app)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"mtu={self.mtu}"
        return f"<Port {self.name!r} {state}>"

    @property
    def id(self) -> int:
        """The port's number in its switch, as the C datapath and the drop log name it.

        >>> import ministack as ms
        >>> with ms.Switch() as sw:
        ...     sw.port("a").id, sw.port("b").id
        (0, 1)
        """
        return self._id

    def _check_open(self) -> None:
        self._switch._check_open()
        if self._closed:
            raise PortError(f"port {self.name!r} is closed; create a new one with "
                            f"sw.port({self.name!r})")

    # --- bindings -------------------------------------------------------------------

    def bind(self, ip: str, protocol: str | int, port: int = 0, *,
             caller: Caller | None = None) -> Binding:
        """Hold (ip, protocol, port) for this port: frames from the NIC addressed to it come
        here, and this port may send from it.

        ``protocol`` is a name ("udp", "tcp", "sctp", "dccp", "udplite", "icmp", "icmpv6")
        or any IP protocol number; ``port`` is 0 for port-less protocols and the echo
        identifier for ICMP. Raises BindError with ``reason`` when refused. As Linux's
        bind(), a port below ``net.ipv4.ip_unprivileged_port_start`` needs root or
        CAP_NET_BIND_SERVICE (``not-permitted``): this process's, and also ``caller``'s
        when the switch binds for another process (the daemon passes its client).

        >>> import ministack as ms
        >>> with ms.Switch() as sw:
        ...     a = sw.port("app1")
        ...     a.bind("10.0.0.2", "udp", 5000)
        ...     a.bind("10.0.0.2", 253)
        Binding(port='app1', ip='10.0.0.2', protocol='udp', local_port=5000)
        Binding(port='app1', ip='10.0.0.2', protocol='253', local_port=0)
        """
        addr, proto, l4port = self._switch._tuple(ip, protocol, port)
        # A switch never lends its own rights: both this process and the one it binds for
        # must hold them.
        callers = [Caller.this_process()] + ([caller] if caller is not None else [])
        judged = [(c, c.privileged_below()) for c in callers]
        below = max(b for _c, b in judged)
        with self._switch._lock:
            self._check_open()
            rc = lib.ms_bind(self._switch._sw, self._id, addr.version, addr.packed, proto,
                             l4port, below)
            if rc == lib.MS_BIND_OK:
                held = None
                try:
                    held = self._switch._host_bind(self, addr, proto, l4port)
                finally:
                    if held != "held":  # refused by the kernel, or steering failed: undo
                        lib.ms_unbind(self._switch._sw, self._id, addr.version, addr.packed,
                                      proto, l4port)
                if held == "in-use":
                    raise BindError("in-use", f"{protocol_name(proto)} {addr}:{l4port} is "
                                    f"held by a kernel socket on this host; pick another port")
                if held == "not-permitted":
                    rc = lib.MS_BIND_NOT_PERMITTED
        if rc == lib.MS_BIND_OK:
            return Binding(self.name, str(addr), protocol_name(proto), l4port)
        if rc < 0:
            self._check_open()
            raise MiniStackError(f"bind failed: {strerror(rc)}")
        who = next((c for c, b in reversed(judged) if b), callers[-1])
        raise self._switch._bind_error(rc, self.name, addr, proto, l4port, who)

    def unbind(self, binding: Binding) -> None:
        """Release a binding this port holds.

        >>> import ministack as ms
        >>> with ms.Switch() as sw:
        ...     a = sw.port("app1")
        ...     a.unbind(a.bind("10.0.0.2", "tcp", 80))
        ...     a.bindings()
        []
        """
        self._check_open()
        if not isinstance(binding, Binding):
            raise TypeError(f"unbind() takes a Binding returned by bind(), not "
                            f"{type(binding).__name__}")
        addr = ipaddress.ip_address(binding.ip)
        with self._switch._lock:
            self._check_open()
            rc = lib.ms_unbind(self._switch._sw, self._id, addr.version, addr.packed,
                               binding.proto, binding.local_port)
            if rc == 0:
                self._switch._host_unbind(self, str(addr), binding.proto,
                                          binding.local_port)
        if rc == lib.MS_BIND_NOT_OWNER:
            raise BindError("not-owner", f"{binding} is bound by port {binding.port!r}, not "
                            f"{self.name!r}; call unbind() on port {binding.port!r}")
        if rc < 0:
            raise BindError("not-owner", f"{binding} is not bound by port {self.name!r} "
                            f"(already unbound?); its bindings: "
                            f"{', '.join(map(str, self.bindings())) or 'none'}")

    def bindings(self) -> list[Binding]:
        """This port's bindings."""
        return [b for b in self._switch.bindings() if b.port == self.name]


    def descriptors(self) -> tuple[int, int, int]:
        """The port's memory (a sealed memfd), the switch's doorbell and the port's wake-up
        eventfd: what an application in another process needs to attach (the daemon
        passes them over its socket). The switch keeps owning them: duplicate, never close.
        """
        with self._switch._lock:
            self._check_open()
            if self.netmap_fd >= 0:
                raise MiniStackError(f"port {self.name!r} is a VALE port: its netmap "
                                     f"descriptor is port.netmap_fd")
            fds = [ffi.new("int *") for _ in range(3)]
            lib.ms_port_fds(self._switch._sw, self._id, fds[0], fds[1], fds[2])
            return fds[0][0], fds[1][0], fds[2][0]

    def stats(self) -> dict[str, Any]:
        """This port's counters (the same dict as in Switch.stats()["ports"])."""
        with self._switch._lock:
            self._check_open()
            return self._switch._port_stats(self._id)

    def close(self) -> None:
        """Release the port: its bindings, its memory. Idempotent."""
        with self._switch._lock:
            if self._closed:
                return
            self._closed = True
            self._release_rings()
            if not self._switch._closed:
                mine = self.bindings()  # the switch's lock is reentrant
                lib.ms_port_destroy(self._switch._sw, self._id)
                for b in mine:
                    self._switch._host_unbind(self, b.ip, b.proto, b.local_port)
                self._switch._ports.pop(self.name, None)
            if self.netmap_fd >= 0:  # the VALE port goes, and the module forgets it
                os.close(self.netmap_fd)
                self.netmap_fd = -1

    def __enter__(self) -> "Port":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Switch(Closing):
    """A MiniStack switch between a NIC and application ports.

    ``nic="virtual"`` (the default) is an in-memory wire that needs no privileges: reach
    its far end through ``sw.wire``. ``addresses`` are the host addresses ports may bind
    (default 10.0.0.2 and fd00::2).

    >>> import ministack as ms
    >>> with ms.Switch(nic="virtual", addresses=["10.0.0.2", "fd00::2"]) as sw:
    ...     a = sw.port("app1")
    ...     _ = a.bind("10.0.0.2", "udp", 5000)
    ...     sw.stats()["ports"]["app1"]["tx"]
    {'frames': 0, 'bytes': 0}
    """

    def __init__(self, nic: str = "virtual", addresses: Sequence[str] | None = None, *,
                 mac: str = DEFAULT_MAC, backend: str = "auto", mtu: int = 1500,
                 ring_slots: int = 1024, buf_size: int = 2048, wire_slots: int = 4096,
                 max_bindings: int = 16384) -> None:
        self._sw: Any = ffi.NULL
        self._closed = True
        self._reservations: Any = None
        # Held around every call that uses the C switch, so close() from one thread never
        # frees it under a call in another.
        self._lock = threading.RLock()
        self._ports: dict[str, Port] = {}
        self._wire: Wire | None = None
        self._vale: Any = None   # ministack.vale.Control on backend="vale"
        if backend not in ("auto", "afxdp", "afpacket", "vale"):
            raise ValueError(f"backend must be 'auto', 'afxdp', 'afpacket' or 'vale', not "
                             f"{backend!r}")
        for name, v in (("ring_slots", ring_slots), ("wire_slots", wire_slots)):
            if v < 2 or v & (v - 1):
                raise ValueError(f"{name} must be a power of two >= 2, not {v}")
        if buf_size < 128 or buf_size % 64 or buf_size > 65536:
            raise ValueError(f"buf_size must be a multiple of 64 in 128..65536, not {buf_size}")
        if not 68 <= mtu <= buf_size - 14:
            raise ValueError(f"mtu must be in 68..{buf_size - 14} (buf_size - 14), not {mtu}")
        self.nic = nic
        self.mtu = mtu
        #: "virtual", "afxdp", "afpacket" or "vale"
        self.backend = "virtual"
        #: why backend="auto" did not use AF_XDP (None when it did, or was not asked)
        self.fallback_reason: str | None = None
        if nic != "virtual":
            from ministack import kernel

            if addresses is not None:
                raise ValueError(f"addresses come from {nic} itself; leave addresses out "
                                 f"(they are only for nic='virtual')")
            mac, addresses = kernel.interface_identity(nic)
            if backend == "vale":
                self._open_vale(nic)
                # The module filters and forwards; this switch's table mirrors its
                # bindings for explain(), so its ports need no rings to speak of.
                ring_slots = wire_slots = 2
                with open(f"/sys/class/net/{nic}/mtu") as f:
                    self.mtu = mtu = int(f.read())
        self.mac = _mac_text(_mac_bytes(mac))
        addrs = list(DEFAULT_ADDRESSES if addresses is None else addresses)
        parsed = []
        for a in addrs:
            ip = _ip(a)
            if ip is None:
                raise ValueError(f"{a!r} is not an IP address (addresses=[...] takes strings "
                                 f"like '10.0.0.2' or 'fd00::2')")
            parsed.append(ip)
        self.addresses: list[str] = [str(ip) for ip in parsed]

        cfg = ffi.new("struct ms_config *")
        cfg.mac = list(_mac_bytes(self.mac))
        cfg.ring_slots, cfg.buf_size = ring_slots, buf_size
        cfg.wire_slots, cfg.max_bindings = wire_slots, max_bindings
        out = ffi.new("ms_switch **")
        rc = lib.ms_switch_create(cfg, out)
        if rc < 0:
            raise MiniStackError(f"could not create the switch: {strerror(rc)}")
        self._sw = out[0]
        self._closed = False
        for ip in parsed:
            lib.ms_switch_add_address(self._sw, ip.version, ip.packed)
        try:
            if nic == "virtual":
                if lib.ms_switch_attach_virtual(self._sw) < 0:
                    raise MiniStackError("could not create the virtual wire")
            elif backend != "vale":
                self._attach(nic, backend)
            if self._vale is None and lib.ms_switch_start(self._sw) < 0:
                raise MiniStackError("could not start the switch thread")
        except BaseException:
            self.close()
            raise
        if nic == "virtual":
            self._wire = Wire(self)

    def _attach(self, nic: str, backend: str) -> None:
        from ministack import kernel

        err = ffi.new("char[]", 512)
        for b in (["afxdp", "afpacket"] if backend == "auto" else [backend]):
            if lib.ms_switch_attach(self._sw, nic.encode(), b.encode(), err, 512) == 0:
                self.backend = b
                break
            why = ffi.string(err).decode()
            if backend != "auto" or b == "afpacket":
                raise MiniStackError(why)
            self.fallback_reason = why
            log.info("ministack: AF_XDP unavailable on %s, using AF_PACKET: %s", nic, why)
        self._reservations = kernel.Reservations()
        #: "native" or "generic" XDP with the afxdp backend, else None
        self.xdp_mode = ffi.string(lib.ms_switch_xdp_mode(self._sw)).decode() or None

    def _open_vale(self, nic: str) -> None:
        from ministack import vale

        ok, why = vale.available(nic)
        if not ok:
            raise MiniStackError(f"backend='vale' on {nic}: {why}")
        self.backend = "vale"
        self._vale = vale.Control()

    def _not_on_vale(self, what: str, why: str) -> None:
        if self._vale is not None:
            raise MiniStackError(f"{what} is not available on backend='vale': {why}")

    def _host_bind(self, port: Port, addr: Any, proto: int, l4port: int) -> str:
        """Reserve a new binding in the host kernel (the NIC's steering program, which
        keeps its flow from the kernel stack, gets it in C; on backend="vale" the module
        binds it, and reserves it itself): "held", or why the kernel refused it
        ("in-use", "not-permitted")."""
        if self._vale is not None:
            return self._vale_bind(port, addr, proto, l4port)
        if self._reservations is None:
            return "held"
        return self._reservations.reserve(str(addr), proto, l4port)

    def _host_unbind(self, port: Port, ip: str, proto: int, l4port: int) -> None:
        if self._vale is not None:
            addr = ipaddress.ip_address(ip)
            self._vale.bind(port.netmap_fd, addr.version, addr.packed, proto, l4port,
                            unbind=True)
        elif self._reservations is not None:
            self._reservations.release(ip, proto, l4port)

    def _vale_bind(self, port: Port, addr: Any, proto: int, l4port: int) -> str:
        """The module's answer for a tuple this switch's own table has just accepted: the
        same rules in the same order, so it refuses only what the kernel knows and this
        process cannot (a kernel socket holds it, or another process's VALE port does)."""
        try:
            rc = self._vale.bind(port.netmap_fd, addr.version, addr.packed, proto, l4port)
        except OSError as e:
            if e.errno == errno.EXDEV:
                raise MiniStackError(f"port {port.name!r} shares its packet memory with "
                                     f"another VALE port; the module binds only on ports "
                                     f"whose memory is their own") from None
            raise
        if rc == lib.MS_BIND_OK:
            return "held"
        if rc == lib.MS_BIND_IN_USE:
            return "in-use"
        if rc == lib.MS_BIND_NOT_PERMITTED:
            return "not-permitted"
        raise self._bind_error(rc, port.name, addr, proto, l4port, Caller.this_process())

    # --- lifecycle ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise MiniStackError("the switch is closed; create a new ms.Switch(...)")

    def close(self) -> None:
        """Stop the switch and release every port. Idempotent."""
        with self._lock:
            if self._closed:
                return
            for p in list(self._ports.values()):
                p.close()
            if self._wire is not None:
                self._wire._release_rings()
            self._closed = True
            if self._sw != ffi.NULL:
                lib.ms_switch_destroy(self._sw)
            self._sw = ffi.NULL
            if self._vale is not None:
                self._vale.close()
            # After the NIC is detached: no socket left behind.
            if self._reservations is not None:
                self._reservations.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._ports)} ports"
        return f"<Switch nic={self.nic!r} mac={self.mac} {state}>"

    @property
    def handle(self) -> Any:
        """The C switch itself (an ``ms_switch *`` of ministack.binding), for C code that
        drives it directly, as the benchmark's drivers (native/tools/) do.

        >>> import ministack as ms
        >>> from ministack.binding import ffi
        >>> with ms.Switch() as sw:
        ...     ffi.typeof(sw.handle).cname
        'struct ms_switch *'
        """
        self._check_open()
        return self._sw

    def pin(self, cpu: int) -> None:
        """Run the switch's forwarding thread on CPU ``cpu`` only (benchmarks pin it so
        that runs are placed alike).

        >>> import ministack as ms
        >>> with ms.Switch() as sw:
        ...     sw.pin(0)
        """
        self._check_open()
        self._not_on_vale("pin()", "the module forwards in the sending thread")
        rc = lib.ms_switch_pin(self._sw, cpu)
        if rc < 0:
            raise MiniStackError(f"cannot pin the switch's thread to CPU {cpu}: "
                                 f"{strerror(rc)} (CPUs here: {sorted(os.sched_getaffinity(0))})")

    @property
    def wire(self) -> Wire:
        """The far end of the virtual NIC (nic="virtual" only)."""
        self._check_open()
        if self._wire is None:
            raise MiniStackError(f"sw.wire exists only with nic='virtual'; this switch is on "
                                 f"{self.nic}, whose far end is a real network")
        return self._wire

    def resolve(self, ip: str, timeout: float = 1.0) -> str | None:
        """The MAC of neighbour ``ip`` from the kernel's neighbour table, asking the kernel
        to resolve it when needed (ports never send ARP or NDP themselves); None when no
        answer came within ``timeout`` seconds."""
        self._check_open()
        if self.nic == "virtual":
            raise MiniStackError("the virtual NIC has no neighbours to resolve; address "
                                 "frames to any MAC, the wire takes them all")
        self._not_on_vale("resolve()", "the module answers ports' solicitations from the "
                          "kernel's neighbour table itself (`ip neigh` shows it)")
        # The switch's own neighbour lookup, the one that answers ports' ARP and NDP.
        addr = ipaddress.ip_address(ip)
        mac = ffi.new("uint8_t[6]")
        end = time.monotonic() + timeout
        resolve = 1
        while lib.ms_switch_neighbor(self._sw, addr.version, addr.packed, mac, resolve) != 1:
            if time.monotonic() > end:
                return None
            resolve = 0  # asked once; the kernel answers the neighbour's reply
            time.sleep(0.01)
        return _mac_text(ffi.buffer(mac))

    # --- ports and bindings ---------------------------------------------------------

    @_locked
    def port(self, name: str, mtu: int | None = None) -> Port:
        """Create a port with its own memory. Raises PortError on a taken or reserved name.

        >>> import ministack as ms
        >>> with ms.Switch() as sw:
        ...     sw.port("app1")
        <Port 'app1' mtu=1500>
        """
        if not isinstance(name, str) or not name or len(name.encode()) >= lib.MS_NAME_MAX:
            raise PortError(f"a port name is a non-empty string of at most "
                            f"{lib.MS_NAME_MAX - 1} bytes, not {name!r}")
        if name in RESERVED_NAMES:
            raise PortError(f"{name!r} is reserved (it names the NIC side in explain() and "
                            f"stats()); choose another port name")
        if name in self._ports:
            raise PortError(f"port {name!r} already exists on this switch; choose another "
                            f"name or close it first")
        mtu = self.mtu if mtu is None else mtu
        if not 68 <= mtu <= lib.ms_switch_buf_size(self._sw) - 14:
            raise ValueError(f"mtu must be in 68..{lib.ms_switch_buf_size(self._sw) - 14}, "
                             f"not {mtu}")
        pid = lib.ms_port_create(self._sw, name.encode(), mtu)
        if pid < 0:
            if pid == -17:  # EEXIST
                raise PortError(f"port {name!r} already exists on this switch")
            if pid == -28:  # ENOSPC
                raise PortError(f"this switch already has {lib.MS_MAX_PORTS} ports; close "
                                f"one first")
            raise PortError(f"could not create port {name!r}: {strerror(pid)}")
        p = Port(self, name, pid, mtu)
        self._ports[name] = p
        return p

    def ports(self) -> list[Port]:
        """The open ports."""
        return list(self._ports.values())

    def _port_name(self, pid: int) -> str:
        for p in self._ports.values():
            if p._id == pid:
                return p.name
        return f"#{pid}"

    @_locked
    def bindings(self) -> list[Binding]:
        """Every binding on the switch, with the port that holds it."""
        n = lib.ms_bindings(self._sw, ffi.NULL, 0)
        buf = ffi.new("struct ms_binding_info[]", max(n, 1))
        n = lib.ms_bindings(self._sw, buf, n)
        out = [Binding(self._port_name(b.port), _ip_text(b.family, ffi.buffer(b.ip)),
                       protocol_name(b.proto), b.l4port) for b in buf[0:n]]
        return sorted(out, key=lambda b: (b.port, b.family, b.ip, b.proto, b.local_port))

    def _tuple(self, ip: Any, protocol: str | int, port: int) -> tuple[Any, int, int]:
        """Validate bind() arguments that need no switch state; raise BindError."""
        addr = _ip(ip)
        if addr is None:
            raise BindError("address-not-local",
                            f"{ip!r} is not an IP address; bind one of this switch's "
                            f"addresses ({', '.join(self.addresses)})")
        proto = protocol_number(protocol)
        if proto is None:
            raise BindError("bad-protocol",
                            f"unknown protocol {protocol!r}; use a name (tcp, udp, sctp, "
                            f"dccp, udplite, icmp, icmpv6) or a number 0-255")
        if isinstance(port, bool) or not isinstance(port, int):
            raise BindError("bad-port", f"the port must be an integer 0-65535, not {port!r}")
        if not 0 <= port <= 65535:
            raise BindError("bad-port", f"port {port} is outside 0..65535")
        return addr, proto, port

    def _bind_error(self, rc: int, port: str, addr: Any, proto: int, l4port: int,
                    caller: Caller) -> BindError:
        reason = BIND_REASONS.get(rc, "in-use")
        name = protocol_name(proto)
        what = f"{name} {addr}:{l4port}"
        if reason == "not-permitted":
            start = unprivileged_port_start()
            msg = (f"{what}: ports below {start} ({SYSCTL}) need root or "
                   f"CAP_NET_BIND_SERVICE, which {caller.name} lacks; bind port {start} or "
                   f"above, or have the administrator lower {SYSCTL}")
        elif reason == "address-not-local":
            msg = (f"{addr} is not an address of {self.nic} (addresses: "
                   f"{', '.join(self.addresses)})")
        elif reason == "in-use" and rc == lib.MS_BIND_NO_SPACE:
            msg = "the bindings table is full; unbind something first"
        elif reason == "in-use":
            holder = next((b.port for b in self.bindings() if b.ip == str(addr)
                           and b.proto == proto and b.local_port == l4port), "?")
            who = "this port" if holder == port else f"port {holder!r}"
            msg = f"{what} is already bound by {who}; pick another port number"
        elif reason == "bad-protocol":
            if addr.version == 6 and lib.ms_ipv6_is_ext_header(proto):
                msg = (f"protocol {proto} is an IPv6 extension header, not an upper-layer "
                       f"protocol; it cannot be bound")
            else:
                other = "icmpv6" if proto == 1 else "icmp"
                msg = (f"protocol {name} ({proto}) does not exist for IPv{addr.version} "
                       f"address {addr}; bind {other!r} instead")
        else:  # bad-port
            if lib.ms_proto_has_ports(addr.version, proto):
                msg = (f"{name} needs a port 1-65535; port 0 means 'any' to sockets and is "
                       f"never a source port")
            else:
                msg = f"protocol {name} has no ports; bind it with port 0"
        return BindError(reason, msg)

    # --- verdicts -------------------------------------------------------------------

    @_locked
    def explain(self, port: str, frame: Frame) -> Verdict:
        """What would happen to ``frame``, sent by port ``port`` or, with port "nic",
        arriving from the NIC. Runs the datapath's own parser and filter; nothing is sent.

        >>> import ministack as ms
        >>> with ms.Switch() as sw:
        ...     a = sw.port("app1")
        ...     sw.explain("app1", b"\\x00" * 10).reason
        'malformed'
        """
        data = frame_bytes(frame)
        if port == "nic":
            pid = -1
        elif port in self._ports:
            pid = self._ports[port]._id
        else:
            raise PortError(f"no port {port!r} on this switch (ports: "
                            f"{', '.join(self._ports) or 'none'}; 'nic' for NIC input)")
        v = ffi.new("struct ms_verdict *")
        rc = lib.ms_explain(self._sw, pid, data, len(data), v)
        if rc < 0:
            raise PortError(f"port {port!r} is closed")
        reason = None if v.reason in (lib.MS_R_OK, lib.MS_R_LOCAL) else REASONS[v.reason]
        to = {lib.MS_TO_WIRE: "wire", lib.MS_TO_HOST: "host",
              lib.MS_TO_PORT: self._port_name(v.to_port)}.get(v.dest)
        action = ("drop", "forward", "local")[v.action]
        code = (v.reason if action != "forward" else
                lib.MS_R_TO_HOST if to == "host" else lib.MS_R_OK)
        return Verdict(action, reason, to, self._detail(port, v, reason, to), code,
                       self._nearest(port, v), self._fix(port, v, reason))

    def _fix(self, port: str, v: Any, reason: str | None) -> str | None:
        """The bind that would have let the frame through (the frame's own tuple), or why
        no bind can."""
        p = v.parsed
        if reason == "spoofed-src-mac" and not p.nd:
            return f"none: send from the NIC's MAC {self.mac}, the only source MAC a port may use"
        spoof = reason in ("spoofed-src-ip", "spoofed-protocol", "spoofed-src-port")
        if not (spoof or reason == "no-binding") or not p.family or p.nd:
            return None
        ip = _ip_text(p.family, ffi.buffer(p.src_ip if spoof else p.dst_ip))
        l4port = (p.sport if spoof else p.dport) if p.has_ports else 0
        if ip not in self.addresses:
            return (f"none: {ip} is not an address of this switch "
                    f"({', '.join(self.addresses)})")
        if spoof and v.near == 0:
            holder = self._port_name(v.nearest.port)
            return (f"none for {port}: {protocol_name(p.proto)} {ip}:{l4port} is bound by "
                    f"{holder}; only {holder} may send from it")
        if l4port == 0 and lib.ms_proto_has_ports(p.family, p.proto):
            return f"none: {protocol_name(p.proto)} port 0 cannot be bound; use another port"
        who = port if spoof else "a port"
        return f'{who}.bind("{ip}", "{protocol_name(p.proto)}", {l4port})'

    def _nearest(self, port: str, v: Any) -> str | None:
        """The sentence on the nearest binding the C table found (ms_table_nearest)."""
        if v.near < 0:
            return None
        b, p = v.nearest, v.parsed
        held = Binding(self._port_name(b.port), _ip_text(b.family, ffi.buffer(b.ip)),
                       protocol_name(b.proto), b.l4port)
        if v.near == 0:
            return f"{held} is held by {held.port}, not {port}"
        side = "destination" if port == "nic" else "source"
        ip = _ip_text(p.family, ffi.buffer(p.dst_ip if port == "nic" else p.src_ip))
        l4port = (p.dport if port == "nic" else p.sport) if p.has_ports else 0
        differ = []
        if v.near & lib.MS_NEAR_IP:
            differ.append(f"{side} address {ip} ≠ {held.ip}")
        if v.near & lib.MS_NEAR_PROTO:
            differ.append(f"protocol {protocol_name(p.proto)} ≠ {held.protocol}")
        if v.near & lib.MS_NEAR_PORT:
            differ.append(f"{side} port {l4port} ≠ {held.local_port}")
        return f"{held} held by {held.port}: {', '.join(differ)}"

    def _local_detail(self, port: str, v: Any) -> str:
        """The sentence for a frame the switch handles itself."""
        p = v.parsed
        nd = p.nd
        arp = nd == lib.MS_ND_ARP_REQUEST
        family = 4 if arp else 6
        src = _ip_text(family, ffi.buffer(p.src_ip))
        target = _ip_text(family, ffi.buffer(p.nd_target))
        if nd == lib.MS_ND_RS:
            return "a router solicitation: the switch absorbs it (routers are the host's)"
        if nd == lib.MS_ND_MLD:
            return ("a multicast listener report: the switch absorbs it (group membership "
                    "is the host's)")
        what = ND_NAMES[nd]
        if src in ("0.0.0.0", "::"):
            return (f"a duplicate address probe for {target}, which {port} bound: the host "
                    f"owns the address, so there is no conflict; no answer")
        if src == target:
            return f"an announcement of {port}'s own address {target}: absorbed, no answer"
        if v.dest == lib.MS_TO_PORT:
            return (f"{what} for {target}: the switch answers {port} that {target} is at "
                    f"{_mac_text(ffi.buffer(v.answer_mac))} and nothing reaches the wire")
        table = ("the kernel's neighbour table" if self.backend != "virtual"
                 else "sw.wire's neighbour table (sw.wire.add_neighbor)")
        return (f"{what} for {target}: {target} is not in {table} yet, so no answer now; "
                f"nothing reaches the wire")

    def _detail(self, port: str, v: Any, reason: str | None, to: str | None) -> str:
        """explain()'s sentence on this frame: its verdict's template in the C table
        (ms_reasons.h, tx_detail or rx_detail) with the frame's fields filled in. Frames the
        switch handles itself, neighbour messages and later fragments get sentences of
        their own, which say what kind of frame it is before the verdict."""
        p = v.parsed
        if v.action == 2:
            return self._local_detail(port, v)
        f: dict[str, Any] = {
            "port": port, "len": p.len, "nic_mac": self.mac, "to": to or "",
            "note": ffi.string(p.note).decode() if p.note != ffi.NULL else "",
            "src_mac": _mac_text(ffi.buffer(p.src_mac)), "proto": "", "src": "", "dst": "",
            "sport": 0, "dport": 0, "where": "", "why": "", "held": ""}
        if p.family:
            f.update(proto=protocol_name(p.proto), src=_ip_text(p.family, ffi.buffer(p.src_ip)),
                     dst=_ip_text(p.family, ffi.buffer(p.dst_ip)))
            if p.has_ports:
                f.update(sport=p.sport, dport=p.dport)
        nd = ND_NAMES.get(p.nd)
        if nd and p.nd in (lib.MS_ND_ARP_REQUEST, lib.MS_ND_ARP_OTHER):
            f["src"] = _ip_text(4, ffi.buffer(p.src_ip))
        later = p.frag == lib.MS_FRAG_LATER
        if port == "nic":
            if reason == "oversize":
                code = lib.MS_R_OVERSIZE
                f["to"] = self._port_name(v.to_port)
            elif reason is None and to != "host":
                if later:
                    return (f"a later fragment of {f['proto']} {f['src']} -> {f['dst']} "
                            f"(identification {p.frag_id}): it follows its first fragment "
                            f"to port {to!r}")
                code = lib.MS_R_OK
            else:
                if nd:
                    f["why"] = f"it is {nd}, which belongs to the host stack"
                elif later:
                    f["why"] = ("it is a later fragment of a datagram whose first fragment "
                                "reached no port")
                else:
                    f["why"] = (f"it is not plain IP a port can own: {f['note']}" if f["note"]
                                else f"no port bound {f['proto']} {f['dst']}:{f['dport']}")
                code = lib.MS_R_TO_HOST if to == "host" else lib.MS_R_NO_BINDING
            return reason_detail(code, rx=True).format(**f)
        f["held"] = ", ".join(str(b) for b in self.bindings() if b.port == port) or "nothing"
        if reason is None:
            f["where"] = ("leaves through the NIC" if to == "wire"
                          else f"is delivered to port {to!r}")
            if later:
                return (f"a later fragment of a datagram whose first fragment {port} sent "
                        f"({f['proto']} {f['src']} -> {f['dst']}, identification "
                        f"{p.frag_id}); it follows it and {f['where']}")
            return reason_detail(lib.MS_R_OK).format(**f)
        if nd and reason == "spoofed-src-mac" and p.has_lladdr:
            return (f"{nd} claiming link-layer address {_mac_text(ffi.buffer(p.nd_lladdr))}, "
                    f"not the NIC's MAC {self.mac}")
        if nd and reason == "spoofed-src-ip":
            return (f"{nd} from {f['src']}, which is not an address {port} bound ({port} "
                    f"holds: {f['held']})")
        if nd and reason == "not-allowed":
            return (f"{nd}: a port may only ask (ARP request, neighbour solicitation); "
                    f"answers, advertisements and redirects are the host's and its "
                    f"neighbours' to send")
        return (reason_detail(REASON_CODES[reason]) or "dropped because {note}").format(**f)

    # --- observation ----------------------------------------------------------------

    def _port_stats(self, pid: int) -> dict[str, Any]:
        if self._vale is not None:
            port = next(p for p in self._ports.values() if p._id == pid)
            v = self._vale.stats(port.netmap_fd)
            return {
                "tx": {"frames": v.frames[lib.MS_R_OK], "bytes": v.tx_bytes},
                "rx": {"frames": v.rx_frames, "bytes": v.rx_bytes},
                "local": {"frames": v.frames[lib.MS_R_LOCAL], "bytes": v.local_bytes,
                          "answers": v.answers},
                "drops": {r: v.frames[REASONS.index(r)] for r in PORT_DROP_REASONS},
            }
        s = ffi.new("struct ms_port_stats *")
        lib.ms_port_stats(self._sw, pid, s)
        return {
            "tx": {"frames": s.tx.frames, "bytes": s.tx.bytes},
            "rx": {"frames": s.rx.frames, "bytes": s.rx.bytes},
            "local": {"frames": s.local.frames, "bytes": s.local.bytes,
                      "answers": s.answers},
            "drops": {r: s.drops[REASONS.index(r)] for r in PORT_DROP_REASONS},
        }

    @_locked
    def stats(self) -> dict[str, Any]:
        """Counters per port and for the NIC; they only grow.

        ``{"ports": {name: {"tx": {"frames", "bytes"}, "rx": {...}, "local": {"frames",
        "bytes", "answers"}, "drops": {reason: n}}}, "nic": {"rx": {...}, "tx": {...},
        "to-host": {...}, "kept-from-host": {...}, "drops": {reason: n}, "offload":
        {"checksums-completed",
        "super-frames-cut"}, "fragments": {"datagrams", "followed", "expired", "evicted",
        "active", "capacity"}}}``. ``local`` counts the ARP and neighbour discovery the
        switch handled itself (``answers``: replies it gave back). ``kept-from-host``:
        frames from the network that the kernel's steering program (AF_XDP's XDP program,
        AF_PACKET's at tc ingress) took from the host stack because a port bound them.
        """
        ports = {name: self._port_stats(p._id) for name, p in self._ports.items()}
        if self._vale is not None:
            v = self._vale.stats(-1)
            return {"ports": ports, "nic": {
                "rx": {"frames": v.nic_rx_frames, "bytes": v.nic_rx_bytes},
                "tx": {"frames": v.nic_tx_frames, "bytes": v.nic_tx_bytes},
                "to-host": {"frames": v.to_host_frames, "bytes": v.to_host_bytes},
                "kept-from-host": {"frames": v.kept_frames, "bytes": v.kept_bytes},
                # the module sends every frame from the NIC a port did not bind to the host
                "drops": {r: 0 for r in NIC_DROP_REASONS},
            }}
        n = ffi.new("struct ms_nic_stats *")
        lib.ms_nic_stats(self._sw, n)
        nic = {
            "rx": {"frames": n.rx.frames, "bytes": n.rx.bytes},
            "tx": {"frames": n.tx.frames, "bytes": n.tx.bytes},
            "to-host": {"frames": n.to_host.frames, "bytes": n.to_host.bytes},
            "kept-from-host": {"frames": n.kept.frames, "bytes": n.kept.bytes},
            "drops": {r: n.drops[REASONS.index(r)] for r in NIC_DROP_REASONS},
            "offload": {"checksums-completed": n.csum_completed,
                        "super-frames-cut": n.segmented},
            "fragments": {"datagrams": n.frags.datagrams, "followed": n.frags.followed,
                          "expired": n.frags.expired, "evicted": n.frags.evicted,
                          "active": n.frags.active, "capacity": n.frags.capacity},
        }
        return {"ports": ports, "nic": nic}

    @_locked
    def drops(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent drops (at most ``limit``, newest last; the switch keeps 1,024):
        dicts with seq (1, 2, ... in the order they happened), port, direction ("tx" |
        "rx"), reason and its code (docs/reasons.md), time (seconds since the epoch), len
        and frame (bytes)."""
        limit = max(0, min(int(limit), lib.MS_FRAMELOG_LEN))
        if limit == 0:
            return []
        if self._vale is not None:
            return self._vale_drops(limit)
        recs = ffi.new("struct ms_frame_record[]", limit)
        n = lib.ms_drops(self._sw, recs, limit)
        return [_frame_record(r) for r in recs[0:n]]

    def _vale_drops(self, limit: int) -> list[dict[str, Any]]:
        """drops() from the module's log: each port's own, merged by sequence number."""
        out = []
        for p in self._ports.values():
            for d in self._vale.drops(p.netmap_fd):
                out.append({"seq": d["seq"] + 1, "port": p.name, "direction": "tx",
                            "reason": REASONS[d["reason"]], "code": d["reason"],
                            "peer": None, "time": d["time_ns"] / 1e9, "len": d["len"],
                            "frame": d["head"]})
        return sorted(out, key=lambda d: d["seq"])[-limit:]

    def tap(self, ports: str | Sequence[str] | None = None) -> "Tap":
        """Start recording every frame the switch handles for ``ports`` (a port's name,
        "nic", or a list of them; None: every port and the NIC) with its verdict: what
        `ministack capture` writes. Read with Tap.read(); close it when done (while a tap
        is open the switch copies each of those frames once more).

        >>> import ministack as ms
        >>> with ms.Switch() as sw:
        ...     a = sw.port("app1")
        ...     with sw.tap("app1") as t:
        ...         a.send(b"\\x00" * 10)
        ...         _ = sw.sync()
        ...         [(f["port"], f["reason"]) for f in t.read()]
        [('app1', 'malformed')]
        """
        names = [ports] if isinstance(ports, str) else list(ports or [])
        with self._lock:
            self._check_open()
            self._not_on_vale("tap()", "capture on the NIC with tcpdump instead")
            targets = []
            for name in names or [None]:
                if name is None:
                    targets.append(lib.MS_TAP_ALL)
                elif name == "nic":
                    targets.append(lib.MS_TAP_NIC)
                elif name in self._ports:
                    targets.append(self._ports[name]._id)
                else:
                    raise PortError(f"no port {name!r} on this switch (ports: "
                                    f"{', '.join(self._ports) or 'none'}; 'nic' for the NIC)")
            return Tap(self, names or None, targets)

    def _tap_call(self, fn: Any, *args: Any) -> int:
        """A tap's call into the C switch, under the lock (0 after close)."""
        with self._lock:
            return 0 if self._closed else fn(self._sw, *args)

    @_locked
    def kernel_steers(self, frame: Frame) -> bool | None:
        """Whether the kernel would take a frame arriving from the network away from the
        host stack for the switch: its steering program decides (the XDP program on
        AF_XDP, before the switch sees anything; on AF_PACKET the one at tc ingress, after
        the switch's packet socket has its copy), and this runs it on ``frame``
        (BPF_PROG_TEST_RUN; nothing is sent, though a first fragment's datagram is then
        remembered as if it had arrived). True: the switch alone gets it; False: the host
        stack does (on AF_XDP, only the host stack). None on the virtual NIC.

        >>> import ministack as ms
        >>> with ms.Switch() as sw:
        ...     sw.kernel_steers(b"\\x00" * 60) is None
        True
        """
        data = frame_bytes(frame)
        r = lib.ms_switch_kernel_steers(self._sw, data, len(data))
        if r == -errno.ENOTSUP:
            return None
        if r < 0:
            raise MiniStackError(f"could not run the steering program on the frame: "
                                 f"{strerror(r)}")
        return bool(r)

    def drop_nearest(self, drop: dict[str, Any]) -> str | None:
        """The binding a drop of drops() came closest to (Verdict.nearest), against the
        bindings as they are now: they may have changed since the drop."""
        try:
            return self.explain("nic" if drop["direction"] == "rx" else drop["port"],
                                drop["frame"]).nearest
        except PortError:  # the port has gone since
            return None

    @_locked
    def sync(self, timeout: float | None = 1.0) -> bool:
        """Wait until the switch has handled every frame queued so far; False on timeout."""
        if self._vale is not None:
            return True  # the module handles a port's frames within its send()
        return lib.ms_switch_sync(self._sw, timeout_ms(timeout)) == 0

