"""A port's rings as its owner sees them: sending and receiving through shared memory.

Both an in-process Port and a port attached through the daemon (ministack.client) are
PortRings over an ms_app handle; nothing here knows which.
"""
from __future__ import annotations

import os
import threading
from array import array
from typing import Any, Iterable, Union

from ministack.binding import ffi, lib, strerror, timeout_ms
from ministack.errors import PortError

Frame = Union[bytes, bytearray, memoryview, Any]  # Any: a scapy packet (anything bytes() takes)


def frame_bytes(frame: Frame) -> bytes:
    """The bytes of a frame given as bytes, bytearray, memoryview or a scapy packet.

    >>> frame_bytes(bytearray(b"ab"))
    b'ab'
    """
    if isinstance(frame, bytes):
        return frame
    if isinstance(frame, (bytearray, memoryview)):
        return bytes(frame)
    if hasattr(type(frame), "__bytes__"):
        return bytes(frame)
    raise TypeError(
        f"a frame must be bytes, bytearray, memoryview or a scapy packet, "
        f"not {type(frame).__name__}")


def _pack(frames: Iterable[Frame], buf_size: int) -> tuple[bytes, array, int]:
    """Frames packed back to back, their lengths, and how many there are."""
    if not isinstance(frames, (list, tuple)):
        frames = list(frames)
    # Lengths in a list first: summing or scanning an array makes an int per item, and
    # for a batch of 256 that is a quarter of what send_batch() costs in Python.
    try:
        data = b"".join(frames)
        sizes = list(map(len, frames))
        if len(data) != sum(sizes):  # memoryviews of wider items count items, not bytes
            raise TypeError
    except TypeError:
        frames = [frame_bytes(f) for f in frames]
        data = b"".join(frames)
        sizes = list(map(len, frames))
    if sizes and max(sizes) > buf_size:
        i = max(range(len(sizes)), key=sizes.__getitem__)
        raise ValueError(
            f"frame {i} is {sizes[i]} bytes, larger than a port buffer ({buf_size} bytes); "
            f"split it, or create the switch with a larger buf_size")
    return data, array("I", sizes), len(sizes)


def open_app(memfd: int, doorbell: int, wake_fd: int) -> Any:
    """Map a port's memory from its three descriptors (Port.descriptors(), or what the
    daemon sent) into this process: the handle PortRings works on. The descriptors are
    duplicated; the caller still owns and closes its own."""
    app = lib.ms_app_open(memfd, doorbell, wake_fd)
    if app == ffi.NULL:
        raise OSError("could not map the port's memory from its descriptors")
    return app


def open_netmap_app(netmap_fd: int, memsize: int, offset: int) -> Any:
    """Map a VALE port's netmap rings from its registered netmap descriptor (the region's
    size and its interface's offset in it, as NIOCCTRL gave them): the same handle as
    open_app()'s. The descriptor is duplicated."""
    app = lib.ms_app_open_netmap(netmap_fd, memsize, offset)
    if app == ffi.NULL:
        raise OSError("could not map the VALE port's netmap memory from its descriptor")
    return app


def afxdp_available() -> tuple[bool, str]:
    """Whether the AF_XDP backend was built into this install and loads here; if not, why."""
    why = ffi.new("char[]", 512)
    if lib.ms_afxdp_available(why, 512):
        return True, ""
    return False, ffi.string(why).decode()


class PortRings:
    """send/send_batch/recv/recv_batch over a port's shared memory (an ms_app handle).

    Subclasses set ``name`` and provide ``_check_open()``.
    """

    name: str

    def _init_rings(self, app: Any) -> None:
        self._app = app
        self._buf_size = lib.ms_app_buf_size(app)
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._rxbuf: Any = None
        self._rxlens: Any = None
        self._closed = False
        self._framefd: Any = ffi.NULL

    def _check_open(self) -> None:
        raise NotImplementedError

    def _release_rings(self) -> None:
        """Unmap the port's memory: a thread waiting in send() or recv() returns at once
        (and then sees the port closed); only then is the mapping released."""
        if self._app == ffi.NULL:
            return
        if self._framefd != ffi.NULL:
            lib.ms_framefd_close(self._framefd)
            self._framefd = ffi.NULL
        lib.ms_app_interrupt(self._app)
        with self._send_lock, self._recv_lock:
            lib.ms_app_close(self._app)
            self._app = ffi.NULL

    # --- frames ---------------------------------------------------------------------

    def frame_fd(self) -> int:
        """A file descriptor that behaves like a TAP device for this port: each
        ``os.read(fd, n)`` returns one received frame, each ``os.write(fd, frame)`` sends one
        frame through the filter; it works with select/poll/selectors and asyncio. A stack
        written against a TAP device uses it unchanged.

        The descriptor is yours (close it when done). While any is open, the port's
        received frames go to it rather than to recv(). When the port closes, reads return
        b"" (end of file) and writes raise BrokenPipeError.

        >>> import os, ministack as ms
        >>> from ministack.bench import udp_frame
        >>> with ms.Switch() as sw:
        ...     app = sw.port("app1")
        ...     _ = app.bind("10.0.0.2", "udp", 5000)
        ...     fd = app.frame_fd()
        ...     _ = sw.wire.inject(udp_frame(sw.mac, "10.0.0.1", "10.0.0.2", 53, 5000))
        ...     len(os.read(fd, 65536))
        ...     os.close(fd)
        64
        """
        self._check_open()
        with self._send_lock, self._recv_lock:
            self._check_open()
            if self._framefd == ffi.NULL:
                self._framefd = lib.ms_framefd_open(self._app)
                if self._framefd == ffi.NULL:
                    raise PortError(f"port {self.name!r}: could not start the frame "
                                    f"descriptor's pump: {os.strerror(ffi.errno)}")
            return os.dup(lib.ms_framefd_fd(self._framefd))

    def send(self, frame: Frame, timeout: float | None = None) -> None:
        """Queue one frame for the switch (bytes, bytearray, memoryview or scapy packet).

        Waits while the TX ring is full; raises TimeoutError if it stays full for
        ``timeout`` seconds (None: wait as long as it takes). What the switch then does with
        the frame shows in stats(), drops() and, for a forwarded frame, on the wire.
        """
        if self.send_batch([frame], timeout) != 1:
            raise TimeoutError(f"port {self.name!r}: the TX ring stayed full for {timeout} s; "
                               f"is the switch running?")

    def send_batch(self, frames: Iterable[Frame], timeout: float | None = None) -> int:
        """Queue many frames in one call; returns how many were queued (all of them unless
        the ring stayed full for ``timeout`` seconds).

        >>> import ministack as ms
        >>> with ms.Switch() as sw:
        ...     sw.port("app1").send_batch([b"x" * 60] * 3)
        3
        """
        self._check_open()
        data, lens, n = _pack(frames, self._buf_size)
        if n == 0:
            return 0
        with self._send_lock:
            self._check_open()
            rc = lib.ms_app_send(self._app, ffi.from_buffer("uint8_t[]", data),
                                 ffi.from_buffer("uint32_t[]", lens), n, timeout_ms(timeout))
            if rc < n and self._closed:
                raise PortError(f"port {self.name!r} was closed while send() waited")
        if rc < 0:
            raise PortError(f"port {self.name!r}: send failed: {strerror(rc)}")
        return rc

    def recv(self, timeout: float | None = 1.0) -> bytes | None:
        """The next frame delivered to this port, or None after ``timeout`` seconds."""
        got = self.recv_batch(1, timeout)
        return got[0] if got else None

    def recv_batch(self, max_n: int = 64, timeout: float | None = 1.0) -> list[bytes]:
        """Up to ``max_n`` frames, waiting up to ``timeout`` seconds for the first."""
        self._check_open()
        if max_n < 1:
            raise ValueError(f"max_n must be at least 1, not {max_n}")
        with self._recv_lock:
            self._check_open()
            if self._rxlens is None or len(self._rxlens) < max_n:
                self._rxbuf = ffi.new("uint8_t[]", max_n * self._buf_size)
                self._rxlens = ffi.new("uint32_t[]", max_n)
            n = lib.ms_app_recv(self._app, self._rxbuf, self._rxlens, max_n,
                                timeout_ms(timeout))
            if n == 0 and self._closed:
                raise PortError(f"port {self.name!r} was closed while recv() waited")
            return [bytes(ffi.buffer(self._rxbuf + i * self._buf_size, self._rxlens[i]))
                    for i in range(n)]

