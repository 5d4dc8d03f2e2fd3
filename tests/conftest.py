"""Shared fixtures, frame builders and outcome checks for the MiniStack tests.

Frames are built with scapy and handed to the switch as bytes, so every test states the
exact bytes it sends. Outcomes are always observed through the real switch: what reached
the wire (``sw.wire.capture()``, which first waits until the switch handled every queued
frame), what a port received, ``sw.stats()``, ``sw.drops()`` and ``sw.explain()``.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

import ministack as ms
from ministack.daemon import Daemon

# --- what a test needs -----------------------------------------------------------------
# Outside CI a test whose tools are missing skips and says what it needs. In CI (CI=true)
# everything ./setup.sh installs on Debian 12 is there by definition, and CI runs as root:
# a missing one is a failure that names it, never a skip. These are the only ways a test
# may skip (test_commands.py checks that no test calls pytest.skip itself).

CI = bool(os.environ.get("CI"))


def need(ok: object, what: str) -> None:
    """Skip unless ``ok``, naming ``what`` the test needs; in CI, fail instead."""
    if ok:
        return
    if CI:
        pytest.fail(f"CI must have {what}, and this machine does not", pytrace=False)
    pytest.skip(f"needs {what}", allow_module_level=True)


def need_root() -> None:
    need(os.geteuid() == 0, "root (namespaces, veth pairs, XDP; CI runs as root)")


def need_module(name: str, what: str = "the lab and test extras (./setup.sh)") -> ModuleType:
    """``import name``, or skip (fail in CI) naming what installs it."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        need(False, f"Python module {name} from {what} ({e})")
        raise  # not reached


NOBODY = 65534


def become(uid: int, caps: tuple[int, ...] | None = None) -> None:
    """Turn this (forked) process into ``uid``. ``caps``: exactly these capabilities
    (numbers, e.g. 10 for CAP_NET_BIND_SERVICE), effective and permitted; None: what
    setuid() leaves (everything for root, nothing for others)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if caps is not None and libc.prctl(8, 1, 0, 0, 0) != 0:  # PR_SET_KEEPCAPS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_KEEPCAPS)")
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if caps is None:
        return

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    data = (Data * 2)()
    for c in caps:
        data[c // 32].effective |= 1 << c % 32
        data[c // 32].permitted |= 1 << c % 32
    if libc.capset(ctypes.byref(Header(0x20080522, 0)), data) != 0:  # _LINUX_CAPABILITY_VERSION_3
        raise OSError(ctypes.get_errno(), "capset")


def _child(uid: int, caps: tuple[int, ...] | None, fn: Callable[[], object], w: int) -> dict:
    try:
        become(uid, caps)
        out = {"ok": fn()}
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        out = {"error": type(e).__name__, "reason": getattr(e, "reason", None),
               "message": str(e)}
    os.write(w, json.dumps(out).encode() + b"\n")
    return out


def as_user(uid: int, fn: Callable[[], object], caps: tuple[int, ...] | None = None) -> dict:
    """Run fn in a forked child under uid (see become() for caps): ``{"ok": result}`` with
    what it returned (JSON-able), or ``{"error", "reason", "message"}`` for what it raised."""
    with holding_as_user(uid, fn, caps) as got:
        return got


@contextmanager
def holding_as_user(uid: int, fn: Callable[[], object],
                    caps: tuple[int, ...] | None = None) -> Iterator[dict]:
    """As as_user(), but the child keeps everything fn opened (connections, ports) until
    the block ends; yields fn's outcome."""
    r, w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # never returns into pytest, whatever happens
        try:
            os.close(r)
            os.close(hold_w)
            _child(uid, caps, fn, w)
            os.read(hold_r, 1)  # until the parent closes its end
        finally:
            os._exit(0)
    os.close(w)
    os.close(hold_r)
    try:
        with os.fdopen(r, "rb") as f:
            line = f.readline()
        assert line, "the child died before it reported"
        yield json.loads(line)
    finally:
        os.close(hold_w)
        os.waitpid(pid, 0)


@contextmanager
def peer_namespace(tag: str, net: int) -> Iterator[ms.Topology]:
    """A peer namespace and veth pair of this test run's own (names from the pid, a /24
    and /64 nothing else routes: 10.N.net.0, fd00:N:net::), removed afterwards."""
    n = 100 + (os.getpid() + net * 37) % 100
    pid = os.getpid()
    t = ms.Topology(ns=f"ms-{tag}{pid}", host_if=f"m{tag}{pid}h", peer_if=f"m{tag}{pid}p",
                    host_addrs=[f"10.{n}.{net}.2/24", f"fd00:{n}:{net}::2/64"],
                    peer_addrs=[f"10.{n}.{net}.1/24", f"fd00:{n}:{net}::1/64"])
    with t:
        yield t
    assert t.host_if not in os.listdir("/sys/class/net")


@contextmanager
def real_switch(ifname: str, backend: str) -> Iterator[ms.Switch]:
    """A switch on a real interface with `backend`; AF_XDP missing from this build is a
    skip outside CI (and a failure in it), like any missing package."""
    try:
        s = ms.Switch(nic=ifname, backend=backend)
    except ms.MiniStackError as e:
        need(not (backend == "afxdp" and "not available" in str(e)),
             f"the AF_XDP backend (libxdp-dev, which ./setup.sh installs): {e}")
        raise
    with s:
        yield s


@contextmanager
def serving(**kw: object) -> Iterator[Daemon]:
    """A daemon in this process, on a socket every uid can reach."""
    d = tempfile.mkdtemp(prefix="ministack-test-", dir="/tmp")
    os.chmod(d, 0o755)
    dm = Daemon(socket_path=os.path.join(d, "ms.sock"), **kw)  # type: ignore[arg-type]
    dm.listen()
    threading.Thread(target=dm.serve_forever, daemon=True).start()
    try:
        yield dm
    finally:
        dm.close()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def root() -> None:
    """Use as ``pytestmark = pytest.mark.usefixtures("root")`` for tests that need root."""
    need_root()

# --- addresses -------------------------------------------------------------------------

NIC_MAC = "02:4d:53:00:00:02"   # the switch's MAC: the only source MAC ports may use
PEER_MAC = "02:00:00:00:00:01"  # a neighbour on the wire
OTHER_MAC = "02:00:00:00:00:99"  # a MAC that belongs to nobody here

IP4 = "10.0.0.2"     # local, bound by the `app` fixture
IP4_B = "10.0.0.5"   # local, bound by nobody
IP6 = "fd00::2"
IP6_B = "fd00::5"
REMOTE4 = "10.0.0.1"
REMOTE6 = "fd00::1"
FOREIGN4 = "10.0.0.9"  # not an address of the switch
FOREIGN6 = "fd00::9"

ADDRESSES = [IP4, IP4_B, IP6, IP6_B]

#: (protocol, port) pairs the `app` fixture binds on both IP4 and IP6.
APP_PORT = 5000
ECHO_ID = 7
PORTLESS4 = 253  # an experimental protocol number, port-less (IPv4)
PORTLESS6 = 47   # GRE: port-less, and not an IPv6 extension header number

# --- frame builders --------------------------------------------------------------------


def eth(src: str = NIC_MAC, dst: str = PEER_MAC, **kw: Any) -> Packet:
    """An Ethernet header; the source defaults to the switch's MAC."""
    return Ether(src=src, dst=dst, **kw)


def v4(l4: Packet | bytes | None = None, *, src: str = IP4, dst: str = REMOTE4,
       mac: str = NIC_MAC, dst_mac: str = PEER_MAC, **ip: Any) -> Packet:
    """Ether / IPv4 / l4."""
    pkt = eth(mac, dst_mac) / IP(src=src, dst=dst, **ip)
    if l4 is not None:
        pkt = pkt / (Raw(l4) if isinstance(l4, bytes) else l4)
    return pkt


def v6(l4: Packet | bytes | None = None, *, src: str = IP6, dst: str = REMOTE6,
       mac: str = NIC_MAC, dst_mac: str = PEER_MAC, **ip: Any) -> Packet:
    """Ether / IPv6 / l4 (l4 may start with extension headers)."""
    pkt = eth(mac, dst_mac) / IPv6(src=src, dst=dst, **ip)
    if l4 is not None:
        pkt = pkt / (Raw(l4) if isinstance(l4, bytes) else l4)
    return pkt


def padded(pkt: Packet, size: int) -> bytes:
    """``pkt`` with a payload of zeros appended so that the frame is exactly ``size`` bytes
    (IP lengths and checksums are computed over the padding, so the frame stays valid)."""
    n = size - len(bytes(pkt))
    assert n >= 0, f"{pkt.summary()} is already longer than {size} bytes"
    return bytes(pkt / Raw(b"\x00" * n))


def dccp(sport: int, dport: int, extended: bool = True) -> bytes:
    """A DCCP header (RFC 4340): 16 bytes with X=1, 12 bytes with X=0; data offset covers it."""
    if extended:
        # ports, data offset 4 words, CCVal/CsCov, checksum, Res|Type=Request(0)|X=1,
        # reserved, 48-bit sequence number
        return struct.pack("!HHBBHBB6s", sport, dport, 4, 0, 0, 0x01, 0, b"\x00" * 5 + b"\x01")
    return struct.pack("!HHBBHB3s", sport, dport, 3, 0, 0, 0x00, b"\x00\x00\x01")


def udp4(sport: int = APP_PORT, dport: int = 53, payload: bytes = b"hello", **kw: Any) -> bytes:
    """A valid IPv4 UDP frame from IP4:sport (the `app` fixture's binding) by default."""
    return bytes(v4(UDP(sport=sport, dport=dport) / Raw(payload), **kw))


def udp6(sport: int = APP_PORT, dport: int = 53, payload: bytes = b"hello", **kw: Any) -> bytes:
    """A valid IPv6 UDP frame from [IP6]:sport by default."""
    return bytes(v6(UDP(sport=sport, dport=dport) / Raw(payload), **kw))


def echo4(ident: int = ECHO_ID, reply: bool = False, **kw: Any) -> bytes:
    return bytes(v4(ICMP(type=0 if reply else 8, id=ident, seq=1) / Raw(b"ping"), **kw))


def echo6(ident: int = ECHO_ID, reply: bool = False, **kw: Any) -> bytes:
    cls = ICMPv6EchoReply if reply else ICMPv6EchoRequest
    return bytes(v6(cls(id=ident, seq=1, data=b"ping"), **kw))


def patch(frame: bytes, offset: int, value: bytes) -> bytes:
    """``frame`` with ``value`` written at ``offset`` (to break a header on purpose)."""
    b = bytearray(frame)
    b[offset:offset + len(value)] = value
    return bytes(b)


# Offsets into an untagged Ethernet frame.
L3 = 14


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def sw() -> Iterator[ms.Switch]:
    """A switch on the virtual NIC with two IPv4 and two IPv6 host addresses."""
    s = ms.Switch(nic="virtual", addresses=ADDRESSES, mac=NIC_MAC)
    try:
        yield s
    finally:
        s.close()


def bind_app(port: ms.Port, ips: tuple[str, ...] = (IP4, IP6)) -> list[ms.Binding]:
    """Bind every port-based protocol on APP_PORT, the echo id and a port-less protocol."""
    out = []
    for ip in ips:
        v6_ = ":" in ip
        for proto in ("udp", "tcp", "sctp", "dccp", "udplite"):
            out.append(port.bind(ip, proto, APP_PORT))
        out.append(port.bind(ip, "icmpv6" if v6_ else "icmp", ECHO_ID))
        out.append(port.bind(ip, PORTLESS6 if v6_ else PORTLESS4, 0))
    return out


@pytest.fixture
def app(sw: ms.Switch) -> ms.Port:
    """Port "app", bound (see bind_app) on IP4 and IP6, nothing on IP4_B / IP6_B."""
    p = sw.port("app")
    bind_app(p)
    return p


# --- outcome checks --------------------------------------------------------------------


def _all_rx(stats: dict[str, Any]) -> dict[str, int]:
    return {name: s["rx"]["frames"] for name, s in stats["ports"].items()}


def expect_drop(sw: ms.Switch, port: ms.Port, frame: bytes, reason: str) -> ms.Verdict:
    """Send ``frame`` on ``port``; assert it was dropped with ``reason`` and nothing else
    happened: no wire frame, no delivery, exactly one drop counted and logged, and explain()
    gives the same verdict."""
    frame = bytes(frame)
    v = sw.explain(port.name, frame)
    assert (v.action, v.reason, v.to) == ("drop", reason, None), \
        f"explain() says {v} for a frame expected to drop as {reason}"
    before = sw.stats()
    port.send(frame)
    assert sw.wire.capture() == [], f"a frame expected to drop as {reason} reached the wire"
    after = sw.stats()
    ps0, ps1 = before["ports"][port.name], after["ports"][port.name]
    counted = {r: ps1["drops"][r] - ps0["drops"][r] for r in ps1["drops"]}
    assert counted == {r: int(r == reason) for r in counted}, \
        f"expected one {reason} drop, counters moved by {counted}"
    assert ps1["tx"] == ps0["tx"], "a dropped frame was counted as transmitted"
    assert after["nic"]["tx"] == before["nic"]["tx"]
    assert after["nic"]["rx"] == before["nic"]["rx"], "a port's frame was taken as NIC input"
    assert _all_rx(after) == _all_rx(before), "a dropped frame was delivered to a port"
    last = sw.drops(1)[-1]
    assert last["port"] == port.name
    assert last["direction"] == "tx"
    assert last["reason"] == reason
    assert last["frame"] == frame[:2048]
    return v


def expect_forward(sw: ms.Switch, port: ms.Port, frame: bytes) -> ms.Verdict:
    """Send ``frame`` on ``port``; assert it reached the wire unchanged, was counted as
    transmitted, dropped nothing, and that explain() agrees."""
    frame = bytes(frame)
    v = sw.explain(port.name, frame)
    assert (v.action, v.reason, v.to) == ("forward", None, "wire"), \
        f"explain() says {v} for a frame expected to reach the wire"
    before = sw.stats()
    port.send(frame)
    assert sw.wire.capture() == [frame]
    after = sw.stats()
    ps0, ps1 = before["ports"][port.name], after["ports"][port.name]
    assert ps1["tx"] == {"frames": ps0["tx"]["frames"] + 1,
                         "bytes": ps0["tx"]["bytes"] + len(frame)}
    assert ps1["drops"] == ps0["drops"], "a forwarded frame was counted as a drop"
    assert after["nic"]["tx"] == {"frames": before["nic"]["tx"]["frames"] + 1,
                                  "bytes": before["nic"]["tx"]["bytes"] + len(frame)}
    return v


def expect_deliver(sw: ms.Switch, frame: bytes, port: ms.Port) -> ms.Verdict:
    """Inject ``frame`` from the network; assert it arrives at ``port`` (and only there)."""
    frame = bytes(frame)
    v = sw.explain("nic", frame)
    assert (v.action, v.reason, v.to) == ("forward", None, port.name), \
        f"explain('nic') says {v} for a frame expected to go to {port.name!r}"
    before = sw.stats()
    assert sw.wire.inject(frame) == 1
    assert sw.wire.capture() == []
    assert port.recv(timeout=2.0) == frame
    after = sw.stats()
    rx0, rx1 = _all_rx(before), _all_rx(after)
    assert rx1 == {n: c + (n == port.name) for n, c in rx0.items()}
    assert after["ports"][port.name]["rx"]["bytes"] == \
        before["ports"][port.name]["rx"]["bytes"] + len(frame)
    assert after["nic"]["rx"]["frames"] == before["nic"]["rx"]["frames"] + 1
    assert after["nic"]["drops"] == before["nic"]["drops"]
    return v


def expect_no_binding(sw: ms.Switch, frame: bytes) -> ms.Verdict:
    """Inject ``frame``; assert the virtual NIC dropped it as no-binding, delivering it to
    no port, and that explain('nic') agrees."""
    frame = bytes(frame)
    v = sw.explain("nic", frame)
    assert (v.action, v.reason, v.to) == ("drop", "no-binding", None), \
        f"explain('nic') says {v} for a frame expected to drop as no-binding"
    before = sw.stats()
    assert sw.wire.inject(frame) == 1
    assert sw.wire.capture() == []
    after = sw.stats()
    nd0, nd1 = before["nic"]["drops"], after["nic"]["drops"]
    assert nd1["no-binding"] == nd0["no-binding"] + 1
    assert {r: n for r, n in nd1.items() if r != "no-binding"} == \
        {r: n for r, n in nd0.items() if r != "no-binding"}
    assert after["nic"]["rx"] == {"frames": before["nic"]["rx"]["frames"] + 1,
                                  "bytes": before["nic"]["rx"]["bytes"] + len(frame)}
    assert after["nic"]["to-host"] == before["nic"]["to-host"]
    assert _all_rx(after) == _all_rx(before), "a no-binding frame was delivered to a port"
    last = sw.drops(1)[-1]
    assert (last["port"], last["direction"], last["reason"]) == ("nic", "rx", "no-binding")
    assert last["frame"] == frame[:2048]
    return v


# --- tests that run beside the others -------------------------------------------------
# A test that spends minutes installing into a fresh Debian, mostly waiting on dpkg and pip,
# is marked background(job): its job starts in a thread when collection ends, and the test,
# where it stands in the run, waits for the job's outcome (the `background` fixture), which
# fails or skips it as the job did; tests that name the same job read its one outcome. Such
# a job must share nothing with the host that other tests look at (fresh_debian.run_in
# gives it its own network namespace).
_BACKGROUND: dict[str, Future[Any]] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    jobs = [(item.nodeid, m.args[0]) for item in session.items
            if (m := item.get_closest_marker("background"))]
    if jobs and not session.config.option.collectonly:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ms-background")
        started: dict[Any, Future[Any]] = {}
        for nodeid, job in jobs:  # tests that name the same job share its one run
            if job not in started:
                started[job] = pool.submit(job)
            _BACKGROUND[nodeid] = started[job]
        pool.shutdown(wait=False)


@pytest.fixture
def background(request: pytest.FixtureRequest) -> Any:
    """This test's background job's result (its exception, raised here)."""
    return _BACKGROUND[request.node.nodeid].result()


@pytest.fixture(scope="session", autouse=True)
def _remove_fresh_debian() -> Iterator[None]:
    """The debootstrapped Debian that fresh_debian.py keeps for the run goes at its end,
    once no background job can still be copying it."""
    yield
    import fresh_debian

    wait(list(_BACKGROUND.values()))
    fresh_debian.remove_pristine()
