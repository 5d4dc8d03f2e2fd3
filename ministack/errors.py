"""Exceptions raised by MiniStack. Each message says what went wrong and what to do."""
from __future__ import annotations


class MiniStackError(Exception):
    """Base class of every MiniStack error.

    >>> import ministack as ms
    >>> issubclass(ms.BindError, ms.MiniStackError)
    True
    """


class PortError(MiniStackError):
    """A port could not be created or used: a taken or reserved name, a closed port.

    >>> import ministack as ms
    >>> with ms.Switch() as sw:
    ...     _ = sw.port("app1")
    ...     try:
    ...         sw.port("app1")
    ...     except ms.PortError as e:
    ...         print("refused")
    refused
    """


class BindError(MiniStackError):
    """bind() (or unbind()) was refused; ``reason`` says why.

    Reasons: ``address-not-local``, ``in-use`` (another port, a kernel socket, or no room
    left), ``bad-protocol``, ``bad-port``, ``not-owner``, ``not-permitted`` (a TCP, UDP,
    SCTP, DCCP or UDP-Lite port below ``net.ipv4.ip_unprivileged_port_start`` for a
    process without CAP_NET_BIND_SERVICE, as Linux's bind()).

    >>> import ministack as ms
    >>> with ms.Switch(addresses=["10.0.0.2"]) as sw:
    ...     try:
    ...         sw.port("a").bind("10.0.0.9", "udp", 5000)
    ...     except ms.BindError as e:
    ...         print(e.reason)
    address-not-local
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
