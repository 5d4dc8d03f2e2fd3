"""The control protocol between `ministack daemon` and its clients (docs/protocol.md).

A message is a 4-byte big-endian length N (1..MAX_MESSAGE) followed by N bytes of a UTF-8
JSON object. Requests carry ``{"v": 1, "id": n, "op": ...}``; replies echo ``id`` with
``"ok": true`` and the result, or ``"ok": false`` and an ``error``. File descriptors travel
with a reply as SCM_RIGHTS ancillary data on its first byte.
"""
from __future__ import annotations

import json
import socket
import struct
from typing import Any

VERSION = 1
MAX_MESSAGE = 65536
MAX_FDS = 4


class ProtocolError(Exception):
    """A message that breaks the protocol (too long, not JSON, not an object...)."""


def encode(msg: dict[str, Any]) -> bytes:
    """One message, framed.

    >>> encode({"v": 1})
    b'\\x00\\x00\\x00\\x08{"v": 1}'
    """
    body = json.dumps(msg).encode()
    if len(body) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE}")
    return struct.pack("!I", len(body)) + body


def send(sock: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    data = encode(msg)
    if fds:
        socket.send_fds(sock, [data[:1]], fds)
        sock.sendall(data[1:])
    else:
        sock.sendall(data)


def _recv_exact(sock: socket.socket, n: int, fds: list[int]) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data, got, _flags, _addr = socket.recv_fds(sock, n - len(buf), MAX_FDS)
        fds.extend(got)
        if not data:
            raise ConnectionError("the peer closed the connection")
        buf += data
    return bytes(buf)


def recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One message and the descriptors that came with it. Raises ProtocolError on a
    malformed message, ConnectionError when the peer is gone."""
    fds: list[int] = []
    (n,) = struct.unpack("!I", _recv_exact(sock, 4, fds))
    if not 1 <= n <= MAX_MESSAGE:
        raise ProtocolError(f"message length {n} is outside 1..{MAX_MESSAGE}")
    body = _recv_exact(sock, n, fds)
    try:
        msg = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"message is not JSON: {e}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("message is not a JSON object")
    return msg, fds
