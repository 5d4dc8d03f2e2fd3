"""`ministack daemon` and ms.connect(): applications in their own processes, under their own
uids, each mapping only its own ports' memory."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

import ministack as ms
from ministack.bench import udp_frame
from ministack.daemon import Daemon

from conftest import NOBODY, as_user, serving  # noqa: E402


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    with serving(nic="virtual") as dm:
        yield dm


def test_client_has_the_switch_api(daemon: Daemon) -> None:
    with ms.connect(daemon.socket_path) as c:
        assert c.mac == daemon.switch.mac and c.addresses == daemon.switch.addresses
        a = c.port("a")
        b = a.bind("10.0.0.2", "udp", 5000)
        assert c.bindings() == [b]
        good = udp_frame(c.mac, "10.0.0.2", "10.0.0.9", 5000, 9)
        spoofed = udp_frame(c.mac, "10.0.0.7", "10.0.0.9", 5000, 9)
        assert c.explain("a", spoofed).reason == "spoofed-src-ip"
        assert a.send_batch([good, spoofed, good]) == 3
        assert daemon.switch.wire.capture() == [good, good]
        reply = udp_frame("02:00:00:00:00:09", "10.0.0.9", "10.0.0.2", 9, 5000, dst_mac=c.mac)
        daemon.switch.wire.inject(reply)
        assert a.recv(timeout=2) == reply
        st = c.stats()["ports"]["a"]
        assert st["tx"]["frames"] == 2 and st["drops"]["spoofed-src-ip"] == 1
        assert [d["reason"] for d in c.drops()] == ["spoofed-src-ip"]
        with pytest.raises(ms.BindError) as e:
            a.bind("10.0.0.2", "udp", 5000)
        assert e.value.reason == "in-use"
        a.unbind(b)
        assert c.bindings() == []


def test_port_memory_travels_as_a_memfd_and_frames_never_touch_the_socket(
        daemon: Daemon) -> None:
    with ms.connect(daemon.socket_path) as c:
        a = c.port("mine")
        a.bind("10.0.0.2", "udp", 5000)
        maps = open("/proc/self/maps").read()
        assert "/memfd:mine" in maps
        before = c._sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)  # still open
        frames = [udp_frame(c.mac, "10.0.0.2", "10.0.0.9", 5000, 9)] * 1000
        a.send_batch(frames)
        assert len(daemon.switch.wire.capture(timeout=2)) == 1000
        assert before > 0


ALICE = """
import sys
import ministack as ms
from ministack.bench import udp_frame
c = ms.connect(sys.argv[1])
a = c.port("alice")
a.bind("10.0.0.2", "udp", 5000)
print("ready", flush=True)
sys.stdin.readline()
# To her own binding: the switch hairpins it back to her port.
a.send(udp_frame(c.mac, "10.0.0.2", "10.0.0.2", 5000, 5000, dst_mac=c.mac))
print("alice-got", len(a.recv_batch(16, timeout=2)), flush=True)
print("alice-bindings", [b.port for b in c.bindings()], flush=True)
"""


def test_another_uid_cannot_touch_my_port() -> None:
    """Daemon, Alice (root) and Bob (nobody) in three processes, so that each one's
    /proc/self/maps shows only what it mapped itself."""
    d = tempfile.mkdtemp(prefix="ministack-test-", dir="/tmp")
    os.chmod(d, 0o755)
    path = os.path.join(d, "ms.sock")
    dmn = subprocess.Popen([sys.executable, "-m", "ministack", "daemon", "--socket", path],
                           stdout=subprocess.PIPE, text=True)
    alice = None
    try:
        assert dmn.stdout is not None and "serving" in dmn.stdout.readline()
        alice = subprocess.Popen([sys.executable, "-c", ALICE, path], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        assert alice.stdout is not None and alice.stdout.readline().strip() == "ready"
        frame = udp_frame("02:4d:53:00:00:02", "10.0.0.2", "10.0.0.9", 5000, 9)

        def bob() -> dict:
            with ms.connect(path) as c:
                out: dict = {}
                for what, call in [
                        ("bind", lambda: c._call("bind", port="alice", ip="10.0.0.2",
                                                 protocol="udp", local_port=6000)),
                        ("unbind", lambda: c._call("unbind", port="alice", ip="10.0.0.2",
                                                   protocol="udp", local_port=5000)),
                        ("close", lambda: c._call("close_port", port="alice")),
                        ("explain", lambda: c.explain("alice", frame))]:
                    try:
                        call()
                        out[what] = "allowed"
                    except ms.BindError as e:
                        out[what] = e.reason
                    except ms.PortError as e:
                        out[what] = str(e)
                try:  # no way to open Alice's port: her name is taken, not shared
                    c.port("alice")
                    out["open"] = "allowed"
                except ms.PortError as e:
                    out["open"] = str(e)
                mine = c.port("bob")
                mine.bind("10.0.0.2", "udp", 6000)
                out["stats"] = sorted(c.stats()["ports"])
                out["bindings"] = [b.port for b in c.bindings()]
                out["drops"] = [x["port"] for x in c.drops()]
                maps = open("/proc/self/maps").read()
                out["maps"] = ["/memfd:alice" in maps, "/memfd:bob" in maps]
                out["recv"] = len(mine.recv_batch(16, timeout=1.5))
                return out

        # Alice sends while Bob listens on his own port.
        threading.Timer(0.5, lambda: (alice.stdin.write("go\n"), alice.stdin.flush())).start()
        got = as_user(NOBODY, bob)
        assert "ok" in got, got
        r = got["ok"]
        assert r["bind"] == "not-owner" and r["unbind"] == "not-owner"
        assert "belongs to another user" in r["close"]
        assert "belongs to another user" in r["explain"]
        assert "already exists" in r["open"]
        assert r["stats"] == ["bob"] and r["bindings"] == ["bob"] and r["drops"] == []
        assert r["maps"] == [False, True], "a client mapped another port's memory"
        assert r["recv"] == 0, "Bob received frames"
        out, _ = alice.communicate(timeout=10)
        assert "alice-got 1" in out, out
        assert "alice-bindings ['alice'" in out, out  # root: Bob's may show too
    finally:
        for p in (alice, dmn):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(10)
        shutil.rmtree(d, ignore_errors=True)


CLIENT = """
import sys, time
import ministack as ms
from ministack.bench import udp_frame
c = ms.connect(sys.argv[1])
a = c.port("victim")
a.bind("10.0.0.2", "udp", 5555)
f = udp_frame(c.mac, "10.0.0.2", "10.0.0.9", 5555, 9)
print("ready", flush=True)
while True:
    a.send_batch([f] * 256)
"""


def test_killed_client_is_cleaned_up_within_a_second(daemon: Daemon) -> None:
    p = subprocess.Popen([sys.executable, "-c", CLIENT, daemon.socket_path],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # mid-burst
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    killed = time.monotonic()
    while daemon.switch.ports() or daemon.switch.bindings():
        assert time.monotonic() - killed < 1.0, "the dead client's port is still there"
        time.sleep(0.01)
    # The switch still serves everyone else, and the name and tuple are free again.
    with ms.connect(daemon.socket_path) as c:
        a = c.port("victim")
        a.bind("10.0.0.2", "udp", 5555)
        daemon.switch.wire.capture()
        f = udp_frame(c.mac, "10.0.0.2", "10.0.0.9", 5555, 9)
        a.send(f)
        assert f in daemon.switch.wire.capture(timeout=2)


def test_garbage_on_the_control_socket_never_stops_the_daemon(daemon: Daemon) -> None:
    rng = random.Random(7)
    path = daemon.socket_path
    good = ms.connect(path)
    for i in range(200):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.settimeout(0.05)  # a reply may come (an error) or not (waiting for more bytes)
        kind = i % 5
        if kind == 0:    # random bytes
            s.sendall(rng.randbytes(rng.randrange(1, 300)))
        elif kind == 1:  # a length far beyond the limit
            s.sendall(struct.pack("!I", 1 << 30) + b"x" * 10)
        elif kind == 2:  # truncated: a header promising more than comes, then hang up
            s.sendall(struct.pack("!I", 100) + b"{")
        elif kind == 3:  # valid framing, wrong content
            body = rng.choice([b"[]", b"null", b'{"v": 9, "op": "port"}', b'{"v": 1}',
                               b'{"v": 1, "op": "port", "name": 5}', b'{"v":1,"op":"bind"}',
                               b"\xff\xfe"])
            s.sendall(struct.pack("!I", len(body)) + body)
        else:            # a zero-length message
            s.sendall(struct.pack("!I", 0))
        try:
            s.recv(65536)
        except OSError:
            pass
        s.close()
        if i % 40 == 0:  # correct clients are served all along
            p = good.port(f"p{i}")
            p.bind("10.0.0.2", "udp", 7000 + i)
            assert ms.Binding(f"p{i}", "10.0.0.2", "udp", 7000 + i) in good.bindings()
    good.close()
    with ms.connect(path) as c:
        assert c.port("after").name == "after"
    time.sleep(0.2)
    assert [p.name for p in daemon.switch.ports()] == []  # every garbage connection cleaned


def test_a_second_daemon_on_the_same_socket_is_refused(daemon: Daemon) -> None:
    with pytest.raises(ms.MiniStackError, match="already serves"):
        Daemon(nic="virtual", socket_path=daemon.socket_path).listen()


def test_ministack_daemon_command(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(str(tmp_path), "cmd.sock")
    p = subprocess.Popen([sys.executable, "-m", "ministack", "daemon", "--socket", path,
                          "--address", "10.9.0.2"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and "serving" in p.stdout.readline()
        with ms.connect(path) as c:
            assert c.addresses == ["10.9.0.2"]
            c.port("x").bind("10.9.0.2", "tcp", 80)
        again = subprocess.run([sys.executable, "-m", "ministack", "daemon", "--socket", path],
                               capture_output=True, text=True)
        assert again.returncode == 1 and "already serves" in again.stderr
    finally:
        p.terminate()
        p.wait(10)
    assert not os.path.exists(path)


STRESS = """
import sys, time
import ministack as ms
from ministack.bench import udp_frame
path, me, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = ms.connect(path)
sent = rounds = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    ports = [c.port(f"s{me}-{i}") for i in range(4)]
    for i, p in enumerate(ports):
        port = 10000 + me * 16 + i
        p.bind("10.0.0.2", "udp", port)
        good = udp_frame(c.mac, "10.0.0.2", "10.0.0.9", port, 9)
        bad = udp_frame(c.mac, "10.0.0.2", "10.0.0.9", port + 1, 9)
        p.send_batch([good] * 30 + [bad] * 10)
        sent += 30
    for p in ports:
        p.close()
    rounds += 1
c.close()
print(sent, rounds)
"""


@pytest.mark.slow
def test_64_ports_16_processes_no_leak(daemon: Daemon) -> None:
    seconds = float(os.environ.get("MINISTACK_STRESS_SECONDS", "30"))

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def rss_kb() -> int:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1])
        return 0

    # Warm up once so that lazily allocated memory is not counted as growth.
    warm = subprocess.run([sys.executable, "-c", STRESS, daemon.socket_path, "99", "1"],
                          capture_output=True, text=True)
    assert warm.returncode == 0, warm.stderr
    daemon.switch.sync()
    fd0, rss0, st0 = fds(), rss_kb(), daemon.switch.stats()["nic"]
    procs = [subprocess.Popen([sys.executable, "-c", STRESS, daemon.socket_path, str(i),
                               str(seconds)], stdout=subprocess.PIPE, text=True)
             for i in range(16)]
    results = [p.communicate(timeout=seconds + 120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    sent = sum(int(r[0]) for r in results)
    assert all(int(r[1]) > 0 for r in results)
    time.sleep(0.2)
    st = daemon.switch.stats()["nic"]
    # Every valid frame reached the wire or was counted as the wire's ring-full: exact.
    assert (st["tx"]["frames"] - st0["tx"]["frames"]) + (
        st["drops"]["ring-full"] - st0["drops"]["ring-full"]) == sent
    assert daemon.switch.ports() == [] and daemon.switch.bindings() == []
    assert fds() <= fd0 + 2, f"the daemon's descriptors grew from {fd0} to {fds()}"
    assert rss_kb() < rss0 + 20_000, f"the daemon's memory grew from {rss0} to {rss_kb()} kB"


def test_group_restricts_who_may_connect() -> None:
    import grp

    group = grp.getgrgid(NOBODY).gr_name  # nobody's own group ("nogroup" on Debian)
    d = tempfile.mkdtemp(prefix="ministack-test-", dir="/tmp")
    os.chmod(d, 0o755)
    dm = Daemon(nic="virtual", socket_path=os.path.join(d, "ms.sock"), group=group)
    dm.listen()
    threading.Thread(target=dm.serve_forever, daemon=True).start()
    try:
        st = os.stat(dm.socket_path)
        assert st.st_mode & 0o777 == 0o660 and st.st_gid == NOBODY

        def attach() -> str:
            with ms.connect(dm.socket_path) as c:
                return c.port("p").name

        assert as_user(NOBODY, attach) == {"ok": "p"}
        refused = as_user(1, attach)  # uid/gid 1: not in the group
        assert refused.get("error") == "MiniStackError" and "Permission denied" in \
            refused["message"], refused
    finally:
        dm.close()
        shutil.rmtree(d, ignore_errors=True)


def test_pktgen_a_c_application_on_the_port_library(daemon: Daemon) -> None:
    cmd = [sys.executable, "-m", "ministack", "pktgen", "-s", daemon.socket_path]
    tx = subprocess.run(cmd + ["-p", "gen", "-m", "tx", "-n", "1000", "-l", "128", "-S",
                               "10.0.0.2:4000", "-D", "10.0.0.9:9", "-j"],
                        capture_output=True, text=True, timeout=60)
    assert tx.returncode == 0, tx.stderr
    assert json.loads(tx.stdout)["frames"] == 1000
    wire = daemon.switch.wire.capture(timeout=2)
    assert len(wire) == 1000 and all(len(f) == 128 for f in wire)
    assert daemon.switch.explain("nic", wire[0]).reason == "no-binding"  # gen is gone
    # The port, its binding and its memory went with the process (the daemon's connection
    # thread releases them when it sees the end of the connection: wait for it).
    end = time.monotonic() + 2
    while daemon.switch.ports() and time.monotonic() < end:
        time.sleep(0.01)
    assert daemon.switch.ports() == [] and daemon.switch.bindings() == []
    # rx: count what arrives for the bound tuple.
    rx = subprocess.Popen(cmd + ["-p", "sink", "-m", "rx", "-S", "10.0.0.2:4001", "-d", "2",
                                 "-j"], stdout=subprocess.PIPE, text=True)
    while not daemon.switch.bindings():
        time.sleep(0.01)
    frame = udp_frame("02:00:00:00:00:09", "10.0.0.9", "10.0.0.2", 9, 4001,
                      dst_mac=daemon.switch.mac)
    daemon.switch.wire.inject([frame] * 500)
    out, _ = rx.communicate(timeout=30)
    assert json.loads(out)["frames"] == 500
    # A refused bind is reported with the daemon's reason.
    bad = subprocess.run(cmd + ["-S", "10.0.0.99:4000", "-n", "1"], capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 1 and "address-not-local" in bad.stderr
