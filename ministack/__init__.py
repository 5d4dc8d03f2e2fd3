"""MiniStack: user-space network stacks on a shared NIC, safely.

A software switch sits between a NIC and application ports. Each port has its own packet
memory and binds (local IP, protocol, local port); the switch drops every frame a port sends
that disagrees with its bindings, and delivers arriving frames to the port that bound them.

>>> import ministack as ms
>>> with ms.Switch(nic="virtual", addresses=["10.0.0.2", "fd00::2"]) as sw:
...     a = sw.port("app1")
...     b = a.bind("10.0.0.2", "udp", 5000)
...     sw.bindings()
[Binding(port='app1', ip='10.0.0.2', protocol='udp', local_port=5000)]
"""
from ministack.errors import BindError, MiniStackError, PortError
from ministack.switch import Binding, Port, Switch, Verdict, Wire, frame_bytes
from ministack.client import connect
from ministack.topology import Topology

__all__ = ["Switch", "Port", "Binding", "Verdict", "Wire", "Topology", "connect", "BindError",
           "PortError", "MiniStackError", "frame_bytes"]
__version__ = "0.1.0"
