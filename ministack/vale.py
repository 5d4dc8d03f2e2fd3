"""The VALE backend: ``ms.Switch(nic=IFNAME, backend="vale")`` over the kernel module
ministack_vale.ko (native/vale/), which filters and forwards in the kernel.

A port is a port of the module's VALE switch (``valems:NAME``), opened through netmap with
packet memory of its own; its send/recv run over netmap's rings (native/app_netmap.c).
Bindings go to the module, which checks them against the kernel's own addresses and
reserves them with kernel sockets; the Switch keeps a copy of them in its user-space table
only so that explain() answers from the same C code the module runs.

>>> from ministack import vale
>>> ok, why = vale.available("eth0")
>>> ok or bool(why)
True
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from ministack.binding import ffi, lib
from ministack.errors import MiniStackError

SWITCH = ffi.string(lib.ms_vale_switch).decode()     # "valems:"
DEVICE = ffi.string(lib.ms_vale_device).decode()     # "/dev/ministack_vale"
MODULE = Path("/sys/module/ministack_vale")


def attached_nic() -> str | None:
    """The interface the loaded module was given (``nic=``), "" for none, None when the
    module is not loaded."""
    try:
        return (MODULE / "parameters" / "nic").read_text().strip()
    except OSError:
        return None


def available(nic: str | None = None) -> tuple[bool, str]:
    """Whether ``backend="vale"`` works here (for ``nic``, when given); if not, why and what
    to do."""
    why = ffi.new("char[]", 512)
    if not lib.ms_vale_built(why, 512):
        return False, ffi.string(why).decode()
    attached = attached_nic()
    if attached is None or not os.path.exists(DEVICE):
        return False, ("the kernel module ministack_vale is not loaded (./setup.sh --netmap "
                       "builds netmap and the module and loads both)")
    if nic is not None and attached != nic:
        return False, (f"ministack_vale is attached to {attached or 'no interface'}, not "
                       f"{nic}: rmmod ministack_vale, then load it with nic={nic}")
    if not os.access("/dev/netmap", os.R_OK | os.W_OK):
        return False, "/dev/netmap is root's only: open VALE ports as root (or through the daemon)"
    return True, ""


def open_port(name: str) -> tuple[int, int, int]:
    """Open ``valems:NAME`` with packet memory of its own: (netmap descriptor, memory size,
    offset of its interface in that memory), what ms_app_open_netmap() maps."""
    fd, size, offset = ffi.new("int *"), ffi.new("uint64_t *"), ffi.new("uint32_t *")
    rc = lib.ms_vale_open_port((SWITCH + name).encode(), fd, size, offset)
    if rc < 0:
        raise MiniStackError(f"netmap could not open the VALE port {SWITCH}{name}: "
                             f"{os.strerror(-rc)}")
    return fd[0], size[0], offset[0]


class Control:
    """The module's device, /dev/ministack_vale: bind, unbind, counters and drops of the
    port a netmap descriptor is registered on (holding the descriptor is the proof of
    owning the port)."""

    def __init__(self) -> None:
        try:
            self.fd = os.open(DEVICE, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise MiniStackError(f"could not open {DEVICE} ({e.strerror}); is ministack_vale "
                                 f"loaded? ({available()[1]})") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _ioctl(self, request: int, arg: Any) -> None:
        fcntl.ioctl(self.fd, request, ffi.buffer(arg), True)

    def bind(self, netmap_fd: int, family: int, ip: bytes, proto: int, port: int,
             unbind: bool = False) -> int:
        """The module's enum ms_bind_result for the tuple (OSError on EXDEV: the port's
        memory is shared with another port)."""
        req = ffi.new("struct ms_vale_bind *")
        req.netmap_fd, req.family, req.proto, req.port = netmap_fd, family, proto, port
        req.ip = list(ip.ljust(16, b"\0"))
        self._ioctl(lib.MS_VALE_UNBIND if unbind else lib.MS_VALE_BIND, req)
        return req.result

    def stats(self, netmap_fd: int) -> Any:
        """The port's struct ms_vale_stats (and the switch's NIC counters in it)."""
        s = ffi.new("struct ms_vale_stats *")
        s.netmap_fd = netmap_fd
        self._ioctl(lib.MS_VALE_STATS, s)
        return s

    def drops(self, netmap_fd: int, limit: int = 256) -> list[dict[str, Any]]:
        """The port's recent drops, oldest first: seq, time_ns, reason (enum ms_reason),
        len and head (the frame's first bytes)."""
        recs = ffi.new("struct ms_vale_drop_record[]", limit)
        req = ffi.new("struct ms_vale_drops *")
        req.netmap_fd, req.max, req.after = netmap_fd, limit, 0
        req.records = int(ffi.cast("uintptr_t", recs))
        self._ioctl(lib.MS_VALE_DROPS, req)
        return [{"seq": r.seq, "time_ns": r.time_ns, "reason": r.reason, "len": r.len,
                 "head": bytes(r.head)[:min(r.len, lib.MS_VALE_DROP_BYTES)]}
                for r in recs[0:req.count]]
