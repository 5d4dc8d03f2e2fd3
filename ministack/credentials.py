"""Who is asking: the process a bind is made for, and the rights Linux would give it.

Linux refuses a TCP, UDP, SCTP, DCCP or UDP-Lite port below
``net.ipv4.ip_unprivileged_port_start`` to a process without CAP_NET_BIND_SERVICE. A switch
must not lend its own rights: the daemon runs as root, so it judges each bind by the client
process at the other end of the control socket (SO_PEERCRED), and an in-process switch by
the calling process. The rule itself is applied in C (``ms_bind``); this module only finds
the two numbers it needs: the sysctl, and whether the caller holds the capability.
"""
from __future__ import annotations

import os
import pwd
import socket
import struct
from dataclasses import dataclass, field

CAP_NET_BIND_SERVICE = 10
SYSCTL = "net.ipv4.ip_unprivileged_port_start"
_SYSCTL_PATH = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
_SO_PEERPIDFD = 77  # Linux 6.5+: a pidfd of the peer, immune to pid reuse


def unprivileged_port_start() -> int:
    """The first port Linux lets any process bind in this network namespace.

    >>> 0 <= unprivileged_port_start() <= 65536
    True
    """
    try:
        with open(_SYSCTL_PATH) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1024  # the kernel's default


def user_name(uid: int) -> str:
    """The account name of ``uid``, or the number when it has none.

    >>> user_name(0)
    'root'
    """
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def process_status(pid: int | str = "self") -> dict[str, str]:
    """/proc/PID/status as a dict of its fields (values stripped). Raises OSError.

    >>> int(process_status()["Pid"]) == os.getpid()
    True
    """
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}


def effective_capabilities(status: dict[str, str]) -> int:
    """The CapEff bit mask of a process_status()."""
    return int(status["CapEff"], 16)


@dataclass(frozen=True)
class Caller:
    """A process a switch acts for: this one, or a daemon client.

    >>> me = Caller.this_process()
    >>> me.pid == os.getpid()
    True
    """

    pid: int
    uid: int
    gid: int
    pidfd: int | None = field(default=None, compare=False)

    @classmethod
    def this_process(cls) -> "Caller":
        return cls(os.getpid(), os.geteuid(), os.getegid())

    @classmethod
    def of_peer(cls, sock: socket.socket) -> "Caller":
        """The process at the other end of a connected UNIX socket, as the kernel saw it
        when it connected."""
        pid, uid, gid = struct.unpack("3i", sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        pidfd = None
        try:
            pidfd = struct.unpack("i", sock.getsockopt(socket.SOL_SOCKET, _SO_PEERPIDFD, 4))[0]
        except OSError:
            pass  # an older kernel: fall back on the pid and its uid
        return cls(pid, uid, gid, pidfd)

    @property
    def name(self) -> str:
        """``user (pid N)``, for messages."""
        return f"user {user_name(self.uid)} (pid {self.pid})"

    def may_bind_service_ports(self) -> bool:
        """Whether this process holds CAP_NET_BIND_SERVICE in our user namespace, so that
        Linux would let it bind ports below the sysctl. False when it cannot be told (the
        process is gone, its pid was reused, it lives in another user namespace)."""
        try:
            status = process_status(self.pid)
            same_userns = (self.pid == os.getpid() or os.readlink(f"/proc/{self.pid}/ns/user")
                           == os.readlink("/proc/self/ns/user"))
        except OSError:
            return False
        if int(status["Uid"].split()[1]) != self.uid:  # the effective uid
            return False  # another process now holds that pid
        if self.pidfd is not None and not _alive(self.pidfd):
            return False  # it exited after we read its status: that status may be another's
        caps = effective_capabilities(status)
        return same_userns and bool(caps >> CAP_NET_BIND_SERVICE & 1)

    def privileged_below(self) -> int:
        """What ``ms_bind`` takes: ports below this need a capability this caller lacks
        (0: none do)."""
        return 0 if self.may_bind_service_ports() else unprivileged_port_start()

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)


def _alive(pidfd: int) -> bool:
    import signal

    try:
        signal.pidfd_send_signal(pidfd, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, and is not ours to signal
