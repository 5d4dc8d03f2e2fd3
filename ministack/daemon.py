"""`ministack daemon`: one privileged process runs the switch; applications in their own
processes, as ordinary users, attach to ports over a UNIX control socket.

Each connection is served by its own thread. The peer's uid comes from SO_PEERCRED. A port
belongs to the uid and the connection that created it: nobody else may bind, unbind, close
or explain on it, or see its counters and drops (root sees everything). When a connection
ends, for any reason, its ports and bindings are released at once.
"""
from __future__ import annotations

import grp
import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from ministack import control
from ministack.credentials import Caller, user_name
from ministack.errors import BindError, MiniStackError, PortError
from ministack.control import ProtocolError
from ministack.switch import MAX_PORTS, REASON_KINDS, Binding, Port, Switch, Tap

DEFAULT_SOCKET = "/run/ministack.sock"
MAX_CONNECTIONS = 256
log = logging.getLogger("ministack.daemon")


@dataclass(frozen=True)
class Limits:
    """What one ordinary user may hold on a shared daemon; root is not limited. The
    defaults let a user run a handful of stacks and leave most of the switch to others.

    >>> Limits()
    Limits(connections=16, ports=32, bindings=1024)
    """

    connections: int = 16
    ports: int = 32
    bindings: int = 1024

    def __post_init__(self) -> None:
        for what in ("connections", "ports", "bindings"):
            if getattr(self, what) < 1:
                raise ValueError(f"--max-{what}-per-user must be at least 1")


#: Kept for root whatever ordinary users hold, so that one can always get in.
ROOT_RESERVE = Limits(connections=16, ports=16, bindings=1024)


class Daemon:
    """The switch plus the control socket.

    >>> d = Daemon(nic="virtual", socket_path="/tmp/ms-doc.sock")
    >>> d.switch.nic, sorted(d.switch.addresses)
    ('virtual', ['10.0.0.2', 'fd00::2'])
    >>> d.close()
    """

    def __init__(self, nic: str = "virtual", socket_path: str = DEFAULT_SOCKET,
                 addresses: list[str] | None = None, group: str | None = None,
                 backend: str = "auto", limits: Limits = Limits(),
                 **switch_options: Any) -> None:
        self.socket_path = socket_path
        self.group = group
        self.limits = limits
        self.switch = Switch(nic=nic, addresses=addresses if nic == "virtual" else None,
                             backend=backend, **switch_options)
        self._max_bindings = switch_options.get("max_bindings", 16384)
        self._owners: dict[str, tuple[int, int]] = {}   # port name -> (uid, connection)
        self._ports: dict[str, Port] = {}
        self._nbind: dict[str, int] = {}                # port name -> bindings it holds
        self._lock = threading.Lock()
        # Held from a share's check to the change it admits, so that concurrent requests
        # cannot both take the last one.
        self._admit = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: dict[int, socket.socket] = {}
        self._conn_uid: dict[int, int] = {}
        self._conn_pid: dict[int, int] = {}
        self._next_conn = 1
        self._taps: dict[int, tuple[int, Tap]] = {}     # tap id -> (connection, tap)
        self._next_tap = 1
        self._stopping = False

    # --- the socket -----------------------------------------------------------------

    def listen(self) -> None:
        """Bind the control socket; refuses when another daemon serves it already."""
        path = self.socket_path
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # left behind by a daemon that died
            else:
                raise MiniStackError(f"another ministack daemon already serves {path}; stop "
                                     f"it first or choose another --socket")
            finally:
                probe.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.bind(path)
        if self.group:
            os.chown(path, 0, grp.getgrnam(self.group).gr_gid)
            os.chmod(path, 0o660)
        else:
            os.chmod(path, 0o666)  # unprivileged applications are the point
        s.listen(64)
        self._listener = s

    def serve_forever(self) -> None:
        """Accept connections until close()."""
        if self._listener is None:
            self.listen()
        assert self._listener is not None
        while not self._stopping:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                break
            caller = Caller.of_peer(conn)
            with self._lock:
                refusal = self._connection_refusal(caller.uid)
                if refusal is None:
                    cid = self._next_conn
                    self._next_conn += 1
                    self._conns[cid] = conn
                    self._conn_uid[cid] = caller.uid
                    self._conn_pid[cid] = caller.pid
            if refusal is not None:
                log.info("ministack daemon: refused a connection: %s", refusal)
                _refuse(conn, refusal)
                caller.close()
                continue
            threading.Thread(target=self._serve, args=(conn, cid, caller), daemon=True).start()

    # --- fair shares ----------------------------------------------------------------

    def _connection_refusal(self, uid: int) -> str | None:
        """Why ``uid`` may not have one more connection, or None. Under self._lock."""
        total = len(self._conns)
        if total >= MAX_CONNECTIONS:
            return f"the daemon serves {total} connections, all it can; try again later"
        owners = list(self._conn_uid.values())
        return self._share(uid, "connections", owners.count(uid), len(owners) - owners.count(0),
                           self.limits.connections, MAX_CONNECTIONS,
                           ROOT_RESERVE.connections, "close one")

    def _port_refusal(self, uid: int) -> str | None:
        """Why ``uid`` may not create one more port, or None. Under self._admit."""
        with self._lock:
            owners = [u for u, _c in self._owners.values()]
        return self._share(uid, "ports", owners.count(uid), len(owners) - owners.count(0),
                           self.limits.ports, MAX_PORTS, ROOT_RESERVE.ports,
                           "close one")

    def _binding_refusal(self, uid: int) -> str | None:
        """Why ``uid`` may not hold one more binding, or None. Under self._admit."""
        with self._lock:
            held = [(self._owners[n][0], k) for n, k in self._nbind.items()
                    if n in self._owners]
        return self._share(uid, "bindings", sum(k for u, k in held if u == uid),
                           sum(k for u, k in held if u != 0), self.limits.bindings,
                           self._max_bindings, ROOT_RESERVE.bindings, "unbind some")

    @staticmethod
    def _share(uid: int, what: str, mine: int, users: int, limit: int, room: int,
               reserve: int, undo: str) -> str | None:
        """The refusal when ``uid`` holds its limit of ``what``, or ordinary users together
        hold all but root's reserve of it; None for root, or when there is room."""
        if uid == 0:
            return None
        if mine >= limit:
            return (f"user {user_name(uid)} already holds {mine} {what} on this daemon, the "
                    f"most one user may have (ministack daemon --max-{what}-per-user "
                    f"{limit}); {undo}, or ask the administrator to raise "
                    f"--max-{what}-per-user")
        if users >= room - reserve:
            return (f"ordinary users hold {users} {what} on this daemon, all it allows them "
                    f"({reserve} more are kept for root); try again later")
        return None

    def close(self) -> None:
        """Stop serving, drop every connection, close the switch."""
        self._stopping = True
        if self._listener is not None:
            self._listener.close()
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass
        with self._lock:
            conns = list(self._conns.values())
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.switch.close()

    # --- one connection ------------------------------------------------------------

    def _serve(self, conn: socket.socket, cid: int, caller: Caller) -> None:
        try:
            while True:
                try:
                    msg, fds = control.recv(conn)
                except ProtocolError as e:
                    # The framing can no longer be trusted: say why, then hang up.
                    control.send(conn, _error(None, "ProtocolError", str(e)))
                    return
                for fd in fds:  # requests never carry descriptors
                    os.close(fd)
                reply, out_fds = self._dispatch(msg, caller, cid)
                control.send(conn, reply, out_fds)
        except (ConnectionError, OSError):
            pass
        finally:
            self._release(cid)
            with self._lock:
                self._conns.pop(cid, None)
                self._conn_uid.pop(cid, None)
                self._conn_pid.pop(cid, None)
            conn.close()
            caller.close()

    def _release(self, cid: int) -> None:
        """Every port of a connection that ended goes, with its bindings, and its taps."""
        with self._lock:
            taps = [self._taps.pop(t)[1] for t, (c, _tap) in list(self._taps.items()) if c == cid]
        for tap in taps:
            tap.close()
        with self._lock:
            names = [n for n, (_u, c) in self._owners.items() if c == cid]
            ports = [self._ports.pop(n) for n in names]
            for n in names:
                del self._owners[n]
                self._nbind.pop(n, None)
        for p in ports:
            p.close()

    # --- requests -------------------------------------------------------------------

    def _dispatch(self, msg: dict[str, Any], caller: Caller, cid: int
                  ) -> tuple[dict[str, Any], list[int]]:
        rid = msg.get("id")
        if msg.get("v") != control.VERSION:
            return _error(rid, "ProtocolError", f"protocol version {msg.get('v')!r} is not "
                          f"supported (this daemon speaks {control.VERSION})"), []
        op = msg.get("op")
        handler = getattr(self, f"_op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            return _error(rid, "ProtocolError", f"unknown operation {op!r}"), []
        try:
            result, fds = handler(msg, caller, cid)
        except BindError as e:
            return _error(rid, "BindError", str(e), e.reason), []
        except PortError as e:
            return _error(rid, "PortError", str(e)), []
        except MiniStackError as e:
            return _error(rid, "MiniStackError", str(e)), []
        except (ValueError, TypeError, KeyError) as e:
            return _error(rid, "ValueError", f"bad {op} request: {e}"), []
        return {"v": control.VERSION, "id": rid, "ok": True, **result}, fds

    def _own(self, name: Any, uid: int, cid: int, bind: bool = False) -> Port:
        """The caller's port `name`, or an error that says whose it is not."""
        with self._lock:
            port, owner = self._ports.get(name), self._owners.get(name)
        if port is None or owner is None:
            raise PortError(f"no port {name!r} on this switch")
        if owner != (uid, cid):
            msg = f"port {name!r} belongs to another {'user' if owner[0] != uid else 'connection'}"
            if bind:
                raise BindError("not-owner", msg)
            raise PortError(msg)
        return port

    def _op_hello(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        sw = self.switch
        return {"server": "ministack", "nic": sw.nic, "backend": sw.backend, "mac": sw.mac,
                "addresses": sw.addresses, "uid": caller.uid}, []

    def _op_port(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        name, mtu = msg["name"], msg.get("mtu")
        if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int)):
            raise ValueError(f"mtu must be an integer, not {mtu!r}")
        with self._admit:
            with self._lock:
                if name in self._ports:
                    raise PortError(f"port {name!r} already exists on this switch; choose "
                                    f"another name")
            refusal = self._port_refusal(caller.uid)
            if refusal is not None:
                raise PortError(refusal)
            port = self.switch.port(name, mtu)
            extra: dict[str, Any] = {}
            if port.netmap_fd >= 0:  # a VALE port: its netmap descriptor, and its layout
                fds = [port.netmap_fd]
                extra["netmap"] = dict(zip(("memsize", "offset"), port.netmap_region))
            else:
                fds = list(port.descriptors())
            with self._lock:
                self._ports[name] = port
                self._owners[name] = (caller.uid, cid)
                self._nbind[name] = 0
        return {"port": name, "mtu": port.mtu, **extra}, fds

    def _op_close_port(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        port = self._own(msg["port"], caller.uid, cid)
        with self._lock:
            self._ports.pop(port.name, None)
            self._owners.pop(port.name, None)
            self._nbind.pop(port.name, None)
        port.close()
        return {}, []

    def _op_bind(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        port = self._own(msg["port"], caller.uid, cid, bind=True)
        with self._admit:
            refusal = self._binding_refusal(caller.uid)
            if refusal is not None:
                raise BindError("in-use", refusal)
            b = port.bind(msg["ip"], msg["protocol"], msg.get("local_port", 0), caller=caller)
            with self._lock:
                if port.name in self._nbind:
                    self._nbind[port.name] += 1
        return {"binding": _binding(b)}, []

    def _op_unbind(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        port = self._own(msg["port"], caller.uid, cid, bind=True)
        port.unbind(Binding(port.name, msg["ip"], str(msg["protocol"]),
                            int(msg["local_port"])))
        with self._lock:
            if self._nbind.get(port.name):
                self._nbind[port.name] -= 1
        return {}, []

    def _visible(self, uid: int) -> set[str] | None:
        """Port names this uid may look at; None: all (root)."""
        if uid == 0:
            return None
        with self._lock:
            return {n for n, (u, _c) in self._owners.items() if u == uid}

    def _owners_of(self, names: set[str] | None) -> dict[str, dict[str, Any]]:
        """Port name -> the user and process holding it (as `ss -p` names them)."""
        with self._lock:
            held = {n: (u, self._conn_pid.get(c)) for n, (u, c) in self._owners.items()
                    if names is None or n in names}
        return {n: {"uid": u, "user": user_name(u), "pid": pid} for n, (u, pid) in held.items()}

    def _op_bindings(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        mine = self._visible(caller.uid)
        return {"bindings": [_binding(b) for b in self.switch.bindings()
                             if mine is None or b.port in mine],
                "owners": self._owners_of(mine)}, []

    def _op_status(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        """The switch, its ports with their owners (the caller's, or all for root), and
        the counters."""
        sw, mine = self.switch, self._visible(caller.uid)
        owners = self._owners_of(mine)
        with self._lock:
            ports = {n: p for n, p in self._ports.items() if n in owners}
            hidden = len(self._ports) - len(ports)
            nbind = dict(self._nbind)
            taps = len(self._taps)
        st = sw.stats()
        return {"switch": {"nic": sw.nic, "backend": sw.backend, "mac": sw.mac,
                           "addresses": sw.addresses, "socket": self.socket_path,
                           "captures": taps},
                "ports": [{"name": n, "mtu": p.mtu, **owners[n], "bindings": nbind.get(n, 0),
                           "stats": st["ports"].get(n)} for n, p in sorted(ports.items())],
                "other_ports": hidden, "nic": st["nic"]}, []

    def _op_explain(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        name = msg["port"]
        # A port is its user's and its connection's (lab 04): an application may ask only
        # about its own. The inspection commands ask as inspectors (`inspect`), which root
        # may be for any port and a user for their own ports on any connection.
        mine = self._visible(caller.uid)
        if name != "nic" and not (msg.get("inspect") and (mine is None or name in mine)):
            self._own(name, caller.uid, cid)
        v = self.switch.explain(name, bytes.fromhex(msg["frame"]))
        return {"verdict": {"action": v.action, "reason": v.reason, "to": v.to,
                            "detail": v.detail, "code": v.code, "nearest": v.nearest,
                            "fix": v.fix}}, []

    def _op_stats(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        st = self.switch.stats()
        mine = self._visible(caller.uid)
        if mine is not None:
            st["ports"] = {n: s for n, s in st["ports"].items() if n in mine}
        return {"stats": st}, []

    def _op_drops(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        mine = self._visible(caller.uid)
        since = int(msg.get("since", 0))  # only drops after this seq: `ministack drops -f`
        drops = [d for d in self.switch.drops(int(msg.get("limit", 100)))
                 if d["seq"] > since and (mine is None or d["port"] in mine)]
        return {"drops": [{**d, "frame": d["frame"].hex(),
                           "nearest": self.switch.drop_nearest(d)} for d in drops]}, []

    def _op_tap(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        """Start recording the frames of some ports for `ministack capture`: the caller's
        ports (by default all of them), or any port and the NIC, for root."""
        ports, mine = msg.get("ports"), self._visible(caller.uid)
        if ports is not None and (not isinstance(ports, list) or
                                  not all(isinstance(n, str) for n in ports)):
            raise ValueError(f"ports must be a list of port names, not {ports!r}")
        if mine is not None:
            if not ports:
                ports = sorted(mine)
            if not ports:
                raise PortError("you hold no port on this switch: there is nothing of yours "
                                "to capture")
            for n in ports:
                if n == "nic":
                    raise PortError("only root may capture the NIC: it carries every user's "
                                    "traffic; capture one of your ports instead")
                if n not in mine:
                    self._own(n, caller.uid, cid)  # says whose it is, or that there is none
        tap = self.switch.tap(ports or None)
        with self._lock:
            tid, self._next_tap = self._next_tap, self._next_tap + 1
            self._taps[tid] = (cid, tap)
        return {"tap": tid}, []

    def _tap_of(self, msg: dict[str, Any], cid: int) -> tuple[int, Tap]:
        with self._lock:
            held = self._taps.get(msg["tap"])
        if held is None or held[0] != cid:
            raise MiniStackError(f"no tap {msg['tap']!r} on this connection")
        return msg["tap"], held[1]

    def _op_tap_read(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        _tid, tap = self._tap_of(msg, cid)
        frames = tap.read(int(msg.get("limit", 1024)))
        for f in frames:
            if REASON_KINDS[f["code"]] == "drop":
                f["nearest"] = self.switch.drop_nearest(f)
        return {"frames": [{**f, "frame": f["frame"].hex()} for f in frames],
                "lost": tap.lost}, []

    def _op_tap_close(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        tid, tap = self._tap_of(msg, cid)
        with self._lock:
            self._taps.pop(tid, None)
        tap.close()
        return {}, []

    def _op_resolve(self, msg: dict[str, Any], caller: Caller, cid: int) -> tuple[dict, list]:
        return {"mac": self.switch.resolve(msg["ip"], float(msg.get("timeout", 1.0)))}, []


def _binding(b: Binding) -> dict[str, Any]:
    return {"port": b.port, "ip": b.ip, "protocol": b.protocol, "local_port": b.local_port}


def _refuse(conn: socket.socket, why: str) -> None:
    """Tell a connection it is not admitted, without waiting for it (its first request,
    when it sends one, stays unread: the client reads this reply instead)."""
    try:
        conn.settimeout(1.0)
        control.send(conn, _error(None, "MiniStackError", why))
    except OSError:
        pass
    finally:
        conn.close()


def _error(rid: Any, kind: str, message: str, reason: str | None = None) -> dict[str, Any]:
    return {"v": control.VERSION, "id": rid, "ok": False,
            "error": {"type": kind, "message": message, "reason": reason}}
