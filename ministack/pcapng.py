"""Captures that keep the switch's verdicts: pcapng (RFC draft-ietf-opsawg-pcapng), which
Wireshark and tshark read, with one interface per port (and "nic"), and every frame's
verdict, direction, port and the binding it was checked against in the packet's comment
(`tshark -T fields -e frame.comment`), its direction in the packet flags, and what became
of it in the verdict option, as xdpdump records an XDP program's action (`frame.verdict`).

>>> import io
>>> out = io.BytesIO()
>>> w = PcapngWriter(out)
>>> w.packet("app1", b"\\x00" * 60, 1.5, comment="dropped: malformed(1)", direction="tx")
>>> len(out.getvalue()) > 60
True
"""
from __future__ import annotations

import struct
from typing import BinaryIO

from ministack.switch import REASON_KINDS

_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
_OPT_END, _OPT_COMMENT = 0, 1
_SHB_USERAPPL = 4
_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL = 2, 3, 9
_EPB_FLAGS, _EPB_VERDICT = 2, 7
_VERDICT_XDP = 2  # the verdict's type octet: a Linux XDP action follows
# The XDP action that does what the switch did: drop, pass to the kernel's stack, or
# redirect (to a port or to the wire). `local` (the switch answers) has no XDP equivalent.
XDP_ACTION = {"drop": 1, "to-host": 2, "forward": 4}
_LINKTYPE_ETHERNET = 1
# epb_flags bits 0-1: 01 inbound, 10 outbound. A frame a port sends is outbound on its
# interface; one arriving from the network is inbound.
_DIRECTION = {"rx": 1, "tx": 2}


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    size = 12 + len(body)
    return struct.pack("<II", kind, size) + body + struct.pack("<I", size)


class PcapngWriter:
    """Writes one section to ``f``: interfaces appear as their first packet does."""

    def __init__(self, f: BinaryIO, application: str = "MiniStack") -> None:
        self._f = f
        self._ifaces: dict[str, int] = {}
        options = _option(_SHB_USERAPPL, application.encode()) + _option(_OPT_END, b"")
        # Byte-order magic, version 1.0, section length unknown (-1).
        f.write(_block(_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + options))

    def _interface(self, name: str) -> int:
        if name not in self._ifaces:
            what = "the NIC (frames from the network)" if name == "nic" else f"port {name}"
            options = (_option(_IF_NAME, name.encode()) +
                       _option(_IF_DESCRIPTION, f"MiniStack {what}".encode()) +
                       _option(_IF_TSRESOL, bytes([9])) +  # nanoseconds
                       _option(_OPT_END, b""))
            self._f.write(_block(_IDB, struct.pack("<HHI", _LINKTYPE_ETHERNET, 0, 0) + options))
            self._ifaces[name] = len(self._ifaces)
        return self._ifaces[name]

    def packet(self, interface: str, frame: bytes, time: float, comment: str | None = None,
               direction: str | None = None, length: int | None = None,
               xdp_action: int | None = None) -> None:
        """One frame on ``interface`` (a port's name or "nic") at ``time`` (seconds since
        the epoch); ``length``: its length on the wire when ``frame`` is cut short;
        ``xdp_action``: the verdict option (XDP_ACTION)."""
        iface = self._interface(interface)
        ns = int(round(time * 1e9))
        options = b""
        if comment:
            options += _option(_OPT_COMMENT, comment.encode())
        if direction in _DIRECTION:
            options += _option(_EPB_FLAGS, struct.pack("<I", _DIRECTION[direction]))
        if xdp_action is not None:
            options += _option(_EPB_VERDICT, struct.pack("<BQ", _VERDICT_XDP, xdp_action))
        if options:
            options += _option(_OPT_END, b"")
        body = struct.pack("<IIIII", iface, ns >> 32, ns & 0xFFFFFFFF, len(frame),
                           length if length is not None else len(frame))
        self._f.write(_block(_EPB, body + frame + b"\0" * (-len(frame) % 4) + options))
        self._f.flush()  # a capture stopped with ^C is still a whole file


def frame_comment(f: dict) -> str:
    """The comment a recorded frame (a drop, or a tapped frame) carries: verdict,
    direction, port, where it went or came from, and for a drop the binding it was checked
    against (the nearest one, when the daemon found one).

    >>> frame_comment({"reason": "ok", "code": 0, "direction": "tx", "port": "app1",
    ...                "peer": "nic"})
    'forwarded: ok(0), tx, sent by app1 to the wire'
    """
    kind = REASON_KINDS[f["code"]]
    verb = {"forward": "forwarded", "drop": "dropped"}.get(kind, kind)
    text = f"{verb}: {f['reason']}({f['code']}), {f['direction']}, "
    peer = f.get("peer")
    if kind == "to-host":
        text += "from the network, left to the host's stack"
    elif f["direction"] == "tx":
        text += f"sent by {f['port']}"
        text += f" to {'the wire' if peer == 'nic' else peer}" if peer else ""
        text += ", handled by the switch" if kind == "local" else ""
    else:
        source = {None: "the network", "nic": "the network", "switch": "the switch"}
        text += f"from {source.get(peer, peer)} for {f['port']}"
    if f.get("nearest"):
        text += f"; checked against {f['nearest']}"
    return text


def packet_of(out: PcapngWriter, f: dict, interface: str | None = None) -> None:
    """Write a recorded frame on ``interface`` (default its port), with the direction it
    has seen from there: a port's frame delivered to another port is outbound on the
    sender's interface and inbound on the receiver's."""
    interface = interface or f["port"]
    direction = f["direction"]
    if interface != f["port"] and f.get("peer") == interface and interface != "nic":
        direction = "tx" if direction == "rx" else "rx"
    out.packet(interface, f["frame"], f["time"], frame_comment(f), direction, f["len"],
               XDP_ACTION.get(REASON_KINDS[f["code"]]))
