"""`ms.connect()`: the Switch API for applications in their own processes, through the
daemon. Control calls go over the UNIX socket; frames never do: each port's memory arrives
as a memfd (SCM_RIGHTS) and is mapped here, so send and recv touch only shared memory.
"""
from __future__ import annotations

import os
import socket
import threading
from typing import Any

from ministack import control
from ministack.errors import BindError, MiniStackError, PortError
from ministack.rings import Frame, PortRings, frame_bytes, open_app, open_netmap_app
from ministack.switch import Binding, Verdict

DEFAULT_SOCKET = "/run/ministack.sock"


class ClientPort(PortRings):
    """A port attached through the daemon; the same methods as Port."""

    def __init__(self, client: "Client", name: str, mtu: int, app: Any) -> None:
        self._client = client
        self.name = name
        self.mtu = mtu
        self._init_rings(app)

    def __repr__(self) -> str:
        return f"<ClientPort {self.name!r} {'closed' if self._closed else f'mtu={self.mtu}'}>"

    def _check_open(self) -> None:
        self._client._check_open()
        if self._closed:
            raise PortError(f"port {self.name!r} is closed")

    def bind(self, ip: str, protocol: str | int, port: int = 0) -> Binding:
        """As Port.bind()."""
        self._check_open()
        r = self._client._call("bind", port=self.name, ip=str(ip), protocol=protocol,
                               local_port=port)
        return Binding(**r["binding"])

    def unbind(self, binding: Binding) -> None:
        """As Port.unbind()."""
        self._check_open()
        self._client._call("unbind", port=self.name, ip=binding.ip, protocol=binding.protocol,
                           local_port=binding.local_port)

    def bindings(self) -> list[Binding]:
        return [b for b in self._client.bindings() if b.port == self.name]

    def stats(self) -> dict[str, Any]:
        return self._client.stats()["ports"][self.name]

    def close(self) -> None:
        """Release the port. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._release_rings()
        if not self._client._closed:
            self._client._call("close_port", port=self.name)
            self._client._ports.pop(self.name, None)

    def __enter__(self) -> "ClientPort":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """A connection to `ministack daemon`.

    ``with ms.connect("/run/ministack.sock") as sw: a = sw.port("app1"); ...``
    """

    def __init__(self, path: str = DEFAULT_SOCKET, timeout: float = 10.0) -> None:
        self._closed = True
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.connect(path)
        except OSError as e:
            self._sock.close()
            raise MiniStackError(f"cannot reach the ministack daemon at {path}: {e.strerror}; "
                                 f"is 'ministack daemon' running?") from None
        self._sock.settimeout(timeout)
        self._lock = threading.Lock()
        self._next_id = 1
        self._ports: dict[str, ClientPort] = {}
        self._closed = False
        hello = self._call("hello")
        self.nic: str = hello["nic"]
        self.backend: str = hello["backend"]
        self.mac: str = hello["mac"]
        self.addresses: list[str] = hello["addresses"]

    def _check_open(self) -> None:
        if self._closed:
            raise MiniStackError("this connection to the daemon is closed; ms.connect() again")

    def _call(self, op: str, **args: Any) -> dict[str, Any]:
        reply, fds = self._call_fds(op, **args)
        for fd in fds:
            os.close(fd)
        return reply

    def _call_fds(self, op: str, **args: Any) -> tuple[dict[str, Any], list[int]]:
        self._check_open()
        with self._lock:
            rid = self._next_id
            self._next_id += 1
            try:
                try:
                    control.send(self._sock, {"v": control.VERSION, "id": rid, "op": op,
                                               **args})
                except OSError:
                    # A daemon that does not admit us says why, then hangs up before our
                    # request arrives: its reply may still be waiting to be read.
                    pass
                reply, fds = control.recv(self._sock)
            except (OSError, ConnectionError, control.ProtocolError) as e:
                raise MiniStackError(f"lost the ministack daemon: {e}") from None
        if not reply.get("ok"):
            for fd in fds:
                os.close(fd)
            err = reply.get("error") or {}
            kind, text = err.get("type"), err.get("message", "request refused")
            if kind == "BindError":
                raise BindError(err.get("reason") or "in-use", text)
            if kind == "PortError":
                raise PortError(text)
            if kind == "ValueError":
                raise ValueError(text)
            raise MiniStackError(text)
        return reply, fds

    def port(self, name: str, mtu: int | None = None) -> ClientPort:
        """A new port with its own memory, mapped into this process."""
        reply, fds = self._call_fds("port", name=name, mtu=mtu)
        netmap = reply.get("netmap")  # a VALE port: one netmap descriptor
        try:
            if len(fds) != (1 if netmap else 3):
                raise MiniStackError(f"the daemon sent {len(fds)} descriptors for port "
                                     f"{name!r}, not {1 if netmap else 3}")
            try:  # each duplicates what it keeps
                app = open_netmap_app(fds[0], netmap["memsize"], netmap["offset"]) \
                    if netmap else open_app(fds[0], fds[1], fds[2])
            except OSError:
                raise MiniStackError(f"could not map the memory of port {name!r}") from None
        finally:
            for fd in fds:
                os.close(fd)
        p = ClientPort(self, reply["port"], reply["mtu"], app)
        self._ports[name] = p
        return p

    def bindings(self) -> list[Binding]:
        """Your bindings (every binding, for root)."""
        return [Binding(**b) for b in self._call("bindings")["bindings"]]

    def explain(self, port: str, frame: Frame, inspect: bool = False) -> Verdict:
        """As Switch.explain(), for this connection's ports or "nic". ``inspect``: as the
        inspection commands ask, for any port of your user's (any port, as root)."""
        return Verdict(**self._call("explain", port=port, frame=frame_bytes(frame).hex(),
                                    inspect=inspect)["verdict"])

    def stats(self) -> dict[str, Any]:
        """Counters of your ports and of the NIC (every port, for root)."""
        return self._call("stats")["stats"]

    def drops(self, limit: int = 100, since: int = 0) -> list[dict[str, Any]]:
        """Recent drops of your ports (all, for root), newest last; with ``since``, only
        those after that seq."""
        return [{**d, "frame": bytes.fromhex(d["frame"])}
                for d in self._call("drops", limit=limit, since=since)["drops"]]

    def tap(self, ports: str | list[str] | None = None) -> "ClientTap":
        """As Switch.tap(), for your ports (by default all you hold now); root may tap any
        port, the NIC, or everything (None)."""
        names = [ports] if isinstance(ports, str) else ports
        return ClientTap(self, self._call("tap", ports=names)["tap"])

    def status(self) -> dict[str, Any]:
        """The switch, your ports (every port, for root) with the user and process holding
        each, and the counters: what `ministack status` prints."""
        r = self._call("status")
        return {k: r[k] for k in ("switch", "ports", "other_ports", "nic")}

    def owners(self) -> dict[str, dict[str, Any]]:
        """Port name -> {"uid", "user", "pid"} of the process holding it (your ports; every
        port, for root)."""
        return self._call("bindings")["owners"]

    def resolve(self, ip: str, timeout: float = 1.0) -> str | None:
        """As Switch.resolve()."""
        return self._call("resolve", ip=ip, timeout=timeout)["mac"]

    def ports(self) -> list[ClientPort]:
        return list(self._ports.values())

    def close(self) -> None:
        """Close every port and the connection. Idempotent."""
        if self._closed:
            return
        for p in list(self._ports.values()):
            p.close()
        self._closed = True
        self._sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(path: str = DEFAULT_SOCKET, timeout: float = 10.0) -> Client:
    """Attach to `ministack daemon` at ``path``: a client with the Switch API."""
    return Client(path, timeout)


__all__ = ["connect", "Client", "ClientPort"]


class ClientTap:
    """A tap on the daemon's switch (Client.tap()): read() as Tap.read(), with the
    nearest binding of each dropped frame (as drops())."""

    def __init__(self, client: Client, tap: int) -> None:
        self.lost = 0
        self._client, self._tap = client, tap

    def read(self, limit: int = 1024) -> list[dict[str, Any]]:
        r = self._client._call("tap_read", tap=self._tap, limit=limit)
        self.lost = r["lost"]
        return [{**f, "frame": bytes.fromhex(f["frame"])} for f in r["frames"]]

    def close(self) -> None:
        """Stop recording (the daemon also stops when the connection ends). Idempotent."""
        if self._tap is not None and not self._client._closed:
            self._client._call("tap_close", tap=self._tap)
        self._tap = None

    def __enter__(self) -> "ClientTap":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
