"""Fair shares of a shared daemon: per-user limits on connections, ports and bindings, and a
reserve for root, so that one user's hoarding never keeps another out. Each refusal names
the limit and the option that raises it."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pytest

import ministack as ms
from conftest import NOBODY, as_user, holding_as_user, serving
from ministack.daemon import ROOT_RESERVE, Limits

pytestmark = pytest.mark.usefixtures("root")


def hoard(path: str, connections: int, ports_each: int, tag: str) -> dict[str, object]:
    """Open connections and ports until refused; keep them (the caller holds the process)."""
    got: dict[str, object] = {"connections": 0, "ports": 0}
    clients = []
    for i in range(connections):
        try:
            clients.append(ms.connect(path))
            got["connections"] = i + 1
        except ms.MiniStackError as e:
            got["connection_refused"] = str(e)
            break
    for ci, c in enumerate(clients):
        for j in range(ports_each):
            try:
                c.port(f"{tag}-{ci}-{j}")
                got["ports"] = int(got["ports"]) + 1  # type: ignore[call-overload]
            except ms.PortError as e:
                got["port_refused"] = str(e)
                break
    globals()["_kept"] = clients  # held until the child is released
    return got


def test_one_user_cannot_take_the_whole_daemon() -> None:
    """The report's attack: nobody opens 65 connections with 4 ports each. Nobody gets 16
    connections and 32 ports; another user and root still get in."""
    with serving(nic="virtual", ring_slots=64) as dm, \
            holding_as_user(NOBODY, lambda: hoard(dm.socket_path, 65, 4, "h")) as got:
        assert "ok" in got, got
        h = got["ok"]
        assert (h["connections"], h["ports"]) == (16, 32), h
        assert "user nobody already holds 16 connections" in h["connection_refused"]
        assert "--max-connections-per-user 16" in h["connection_refused"]
        assert "user nobody already holds 32 ports" in h["port_refused"]
        assert "--max-ports-per-user 32" in h["port_refused"]
        other = as_user(65533, lambda: ms.connect(dm.socket_path).port("other").name)
        assert other == {"ok": "other"}, other
        with ms.connect(dm.socket_path) as c:  # root
            assert c.port("victim").name == "victim"


def test_many_users_leave_roots_reserve() -> None:
    """Eight users at their limit fill what ordinary users may have; the ninth is told so,
    and root still gets ports from its reserve."""
    limit = (256 - ROOT_RESERVE.ports) // 8  # 30 ports each: 240 in all
    with serving(nic="virtual", ring_slots=64, limits=Limits(ports=limit)) as dm, \
            ExitStack() as held:
        for k in range(8):
            got = held.enter_context(holding_as_user(
                60000 + k, lambda k=k: hoard(dm.socket_path, 2, limit // 2, f"u{k}")))
            assert got["ok"]["ports"] == limit, got
        ninth = as_user(60008, lambda: ms.connect(dm.socket_path).port("late").name)
        assert ninth["error"] == "PortError", ninth
        assert "ordinary users hold 240 ports" in ninth["message"]
        assert f"{ROOT_RESERVE.ports} more are kept for root" in ninth["message"]
        with ms.connect(dm.socket_path) as c:
            for i in range(ROOT_RESERVE.ports):
                c.port(f"root{i}")


def test_bindings_per_user() -> None:
    with serving(nic="virtual", limits=Limits(bindings=3)) as dm:
        def nobody() -> dict[str, object]:
            c = ms.connect(dm.socket_path)
            a, b = c.port("a"), c.port("b")
            held = [a.bind("10.0.0.2", "udp", 5000 + i) for i in range(2)]
            held.append(b.bind("10.0.0.2", "udp", 5002))  # the limit is per user, not port
            out: dict[str, object] = {}
            try:
                b.bind("10.0.0.2", "udp", 5003)
            except ms.BindError as e:
                out["fourth"] = [e.reason, str(e)]
            a.unbind(held[0])
            out["after_unbind"] = str(b.bind("10.0.0.2", "udp", 5003))
            b.close()  # its two bindings go with it
            out["after_close"] = [str(a.bind("10.0.0.2", "udp", 6000 + i)) for i in range(2)]
            return out

        got = as_user(NOBODY, nobody)
        assert "ok" in got, got
        reason, message = got["ok"]["fourth"]
        assert reason == "in-use"
        assert "user nobody already holds 3 bindings" in message
        assert "--max-bindings-per-user 3" in message
        assert got["ok"]["after_unbind"] == "udp 10.0.0.2:5003"
        assert got["ok"]["after_close"] == ["udp 10.0.0.2:6000", "udp 10.0.0.2:6001"]
        with ms.connect(dm.socket_path) as c:  # root is not limited
            p = c.port("root")
            for i in range(10):
                p.bind("10.0.0.2", "udp", 7000 + i)


def test_the_limits_are_options_of_the_command() -> None:
    d = tempfile.mkdtemp(prefix="ministack-test-", dir="/tmp")
    os.chmod(d, 0o755)
    path = os.path.join(d, "ms.sock")
    p = subprocess.Popen([sys.executable, "-m", "ministack", "daemon", "--socket", path,
                          "--max-ports-per-user", "2", "--max-connections-per-user", "1"],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        banner = p.stdout.readline()
        assert "each user but root may hold 1 connections, 2 ports" in banner, banner

        def nobody() -> list[str]:
            c = ms.connect(path)
            out = [c.port("a").name, c.port("b").name]
            for what in (lambda: c.port("c"), lambda: ms.connect(path)):
                try:
                    what()
                except ms.MiniStackError as e:
                    out.append(str(e))
            return out

        got = as_user(NOBODY, nobody)
        assert got["ok"][:2] == ["a", "b"], got
        assert "--max-ports-per-user 2" in got["ok"][2]
        assert "--max-connections-per-user 1" in got["ok"][3]
    finally:
        p.terminate()
        p.wait(10)
    bad = subprocess.run([sys.executable, "-m", "ministack", "daemon", "--socket", path + "x",
                          "--max-ports-per-user", "0"], capture_output=True, text=True)
    assert bad.returncode == 1 and "--max-ports-per-user must be at least 1" in bad.stderr


def test_a_c_client_over_the_limit_is_told_why() -> None:
    """ms-pktgen (the C client) reads the refusal instead of dying of SIGPIPE."""
    pktgen = Path(ms.__file__).resolve().parent / "ms-pktgen"
    with serving(nic="virtual", limits=Limits(connections=1)) as dm, \
            holding_as_user(NOBODY, lambda: hoard(dm.socket_path, 1, 1, "first")) as got:
        assert got["ok"]["connections"] == 1, got
        r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                            "--clear-groups", str(pktgen), "-s", dm.socket_path, "-m", "tx",
                            "-d", "1"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert "--max-connections-per-user 1" in r.stderr, r.stderr
