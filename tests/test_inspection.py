"""`ministack status | bindings | drops | explain | stats` against a running daemon, as an
instructor at a student's desk uses them: run as commands (a subprocess, the daemon in this
process), tables for people and JSON for scripts, reasons by name and number, and each
user shown only their own ports while root sees all."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ministack as ms
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP

from conftest import NOBODY, as_user, eth, holding_as_user, need, need_root, serving, udp4
from ministack.bench import udp_frame
from ministack.switch import REASON_CODES, frame_summary


def cmd(sock: str, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "ministack", *args, "--socket", sock],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def frames(mac: str) -> dict[str, bytes]:
    return {"ok": udp_frame(mac, "10.0.0.2", "10.0.0.9", 5000, 53),
            "spoofed-src-ip": udp_frame(mac, "10.0.0.66", "10.0.0.9", 5000, 53),
            "spoofed-src-port": udp_frame(mac, "10.0.0.2", "10.0.0.9", 5001, 53),
            "spoofed-src-mac": udp_frame("02:66:66:66:66:66", "10.0.0.2", "10.0.0.9", 5000, 53)}


@pytest.fixture
def daemon() -> object:
    with serving() as d:
        yield d


def test_status_bindings_and_drops_as_the_owner_sees_them(daemon: object) -> None:
    sock = daemon.socket_path  # type: ignore[attr-defined]
    with ms.connect(sock) as c:
        app = c.port("app1")
        app.bind("10.0.0.2", "udp", 5000)
        c.port("app2").bind("fd00::2", "tcp", 80)
        f = frames(c.mac)
        app.send_batch([f["ok"], f["spoofed-src-ip"], f["spoofed-src-port"],
                        f["spoofed-src-mac"]])
        deadline = time.monotonic() + 5
        while len(c.drops()) < 3:
            assert time.monotonic() < deadline, c.drops()
            time.sleep(0.02)

        # ss -lnp: tuple, port, user, pid.
        text = cmd(sock, "bindings")
        assert text.splitlines()[0].split() == ["Proto", "Local", "Address:Port", "Port",
                                                "User", "PID"]
        me = f"{os.getpid()}"
        assert any(line.split() == ["udp", "10.0.0.2:5000", "app1", "root", me]
                   for line in text.splitlines()), text
        assert any(line.split() == ["tcp", "[fd00::2]:80", "app2", "root", me]
                   for line in text.splitlines()), text
        rows = json.loads(cmd(sock, "bindings", "--json"))
        assert {"protocol": "udp", "ip": "10.0.0.2", "local_port": 5000, "port": "app1",
                "user": "root", "uid": 0, "pid": os.getpid()} in rows

        # dropwatch: one line per drop, oldest first, with the reason's name and number.
        lines = cmd(sock, "drops").splitlines()
        assert len(lines) == 3, lines
        for line, reason in zip(lines, ["spoofed-src-ip", "spoofed-src-port",
                                        "spoofed-src-mac"]):
            assert f"app1       tx  {reason}({REASON_CODES[reason]})" in line, line
        assert "udp 10.0.0.66:5000 > 10.0.0.9:53, 64 bytes" in lines[0]
        only = cmd(sock, "drops", "--reason", "spoofed-src-port", "--json").splitlines()
        assert [json.loads(x)["code"] for x in only] == [10]
        assert json.loads(only[0])["frame"] == f["spoofed-src-port"].hex()
        assert cmd(sock, "drops", "--port", "app2") == ""

        st = json.loads(cmd(sock, "status", "--json"))
        assert [p["name"] for p in st["ports"]] == ["app1", "app2"]
        one = st["ports"][0]
        assert (one["user"], one["pid"], one["bindings"]) == ("root", os.getpid(), 1)
        assert one["stats"]["tx"]["frames"] == 1
        assert one["stats"]["drops"]["spoofed-src-ip"] == 1
        assert "app1  root" in cmd(sock, "status")


def test_explain_takes_hex_or_a_pcap_and_says_why(daemon: object, tmp_path: Path) -> None:
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    sock = daemon.socket_path  # type: ignore[attr-defined]
    with ms.connect(sock) as c:
        c.port("app1").bind("10.0.0.2", "udp", 5000)
        f = frames(c.mac)
        out = cmd(sock, "explain", "app1", f["spoofed-src-port"].hex())
        assert out.splitlines() == [
            "udp 10.0.0.2:5001 > 10.0.0.9:53, 64 bytes",
            "drop spoofed-src-port(10): app1 bound udp on 10.0.0.2, but not port 5001 "
            "(app1 holds: udp 10.0.0.2:5000)",
            "nearest binding: udp 10.0.0.2:5000 held by app1: source port 5001 ≠ 5000",
            'fix: app1.bind("10.0.0.2", "udp", 5001)']
        pcap = tmp_path / "one.pcap"
        wrpcap(str(pcap), [Ether(f["ok"])])
        v = json.loads(cmd(sock, "explain", "app1", str(pcap), "--json"))
        assert (v["action"], v["reason"], v["code"], v["to"]) == ("forward", None, 0, "wire")
        arriving = udp4(dport=5000, src="10.0.0.1", dst="10.0.0.2")
        v = json.loads(cmd(sock, "explain", "nic", arriving.hex(), "--json"))
        assert (v["action"], v["to"]) == ("forward", "app1"), v
        r = subprocess.run([sys.executable, "-m", "ministack", "explain", "app1", "zz",
                            "--socket", sock], capture_output=True, text=True)
        assert r.returncode == 1 and "neither a file nor hex bytes" in r.stderr


def test_stats_watch_prints_rates_per_port_and_reason(daemon: object) -> None:
    sock = daemon.socket_path  # type: ignore[attr-defined]
    with ms.connect(sock) as c:
        app = c.port("app1")
        app.bind("10.0.0.2", "udp", 5000)
        f = frames(c.mac)
        proc = subprocess.Popen([sys.executable, "-m", "ministack", "stats", "--watch",
                                 "--json", "-n", "0.5", "-c", "3", "--socket", sock],
                                stdout=subprocess.PIPE, text=True)
        end = time.monotonic() + 3
        while proc.poll() is None and time.monotonic() < end:
            app.send_batch([f["ok"]] * 10 + [f["spoofed-src-ip"]] * 5)
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=30)
        ticks = [json.loads(line) for line in out.splitlines()]
        assert len(ticks) == 3, out
        busiest = max(ticks, key=lambda t: t["per_second"]["app1"]["tx"])
        rate = busiest["per_second"]["app1"]
        # Twice as many good frames as spoofed ones were sent, in every batch.
        assert rate["tx"] > 0 and rate["spoofed-src-ip"] > 0
        assert 1.5 < rate["tx"] / rate["spoofed-src-ip"] < 2.5, rate
        table = cmd(sock, "stats")
        assert "spoofed-src-ip(8)" in table and "app1" in table


def test_an_ordinary_user_sees_only_their_own_ports(daemon: object) -> None:
    need_root()
    sock = daemon.socket_path  # type: ignore[attr-defined]

    def student() -> str:
        c = ms.connect(sock)
        p = c.port("student-port")
        p.bind("10.0.0.2", "udp", 7000)
        p.send(udp_frame(c.mac, "10.0.0.3", "10.0.0.9", 7000, 9))  # spoofed-src-ip
        return "ok"

    def look() -> dict[str, object]:
        from ministack.cli import main

        out = {}
        for what in ("bindings", "status", "drops"):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                assert main([what, "--json", "--socket", sock]) == 0
            out[what] = buf.getvalue()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):  # another user's port: not theirs to explain
            out["explain"] = main(["explain", "roots-port", "00" * 60, "--socket", sock])
        out["explain_error"] = err.getvalue()
        with ms.connect(sock) as c:  # capture: the NIC and others' ports are not theirs
            for target in ("nic", "roots-port"):
                try:
                    c.tap(target).close()
                    out[f"tap {target}"] = "allowed"
                except ms.PortError as e:
                    out[f"tap {target}"] = str(e)
        return out

    with ms.connect(sock) as c:
        mine = c.port("roots-port")
        mine.bind("10.0.0.2", "udp", 5000)
        mine.send(frames(c.mac)["spoofed-src-mac"])
        with holding_as_user(NOBODY, student) as held:
            assert held == {"ok": "ok"}
            deadline = time.monotonic() + 5
            while len(c.drops()) < 2:
                assert time.monotonic() < deadline, c.drops()
                time.sleep(0.02)
            seen = as_nobody_and_root(look)
    nobody, root = seen
    assert [b["port"] for b in json.loads(nobody["bindings"])] == ["student-port"]
    assert {b["port"] for b in json.loads(root["bindings"])} == {"student-port", "roots-port"}
    st = json.loads(nobody["status"])
    assert [p["name"] for p in st["ports"]] == ["student-port"] and st["other_ports"] == 1
    assert st["ports"][0]["user"] == "nobody"
    assert [json.loads(x)["port"] for x in nobody["drops"].splitlines()] == ["student-port"]
    assert nobody["explain"] == 1 and "belongs to another user" in nobody["explain_error"]
    assert root["explain"] == 0  # root may inspect any port
    assert "only root may capture the NIC" in nobody["tap nic"], nobody
    assert "belongs to another user" in nobody["tap roots-port"], nobody
    assert root["tap nic"] == root["tap roots-port"] == "allowed", root
    # An application, even root's, asks only about its own connection's ports; asking as
    # an inspector is what the commands do.
    with ms.connect(sock) as holder, ms.connect(sock) as other:
        holder.port("held")
        with pytest.raises(ms.PortError, match="belongs to another connection"):
            other.explain("held", b"\x00" * 60)
        assert other.explain("held", b"\x00" * 60, inspect=True).reason == "spoofed-src-mac"
    assert {json.loads(x)["port"] for x in root["drops"].splitlines()} == \
        {"student-port", "roots-port"}


def as_nobody_and_root(fn: object) -> tuple[dict, dict]:
    got = as_user(NOBODY, fn)  # type: ignore[arg-type]
    assert "ok" in got, got
    return got["ok"], fn()  # type: ignore[operator]


def test_no_daemon_says_how_to_start_one(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "ministack", "status", "--socket",
                        str(tmp_path / "none.sock")], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.startswith("ministack status: cannot reach the ministack daemon at ")
    assert "is 'ministack daemon' running?" in r.stderr, r.stderr


def test_nearest_miss_names_the_binding_and_the_field_that_differed() -> None:
    """From the C table (ms_table_nearest): the sender's own binding nearest to a spoofed
    frame, the very tuple when another port holds it, and for a frame from the network
    that no port bound, the binding one field away (the nearer port number first)."""
    with ms.Switch() as sw:
        sw.port("app1").bind("10.0.0.2", "udp", 5000)
        sw.port("app2").bind("10.0.0.2", "udp", 6000)
        sw.port("idle")
        tcp = bytes(eth(src=sw.mac) / IP(src="10.0.0.2", dst="10.0.0.9") / TCP(sport=5000))
        cases = [
            ("app1", udp_frame(sw.mac, "10.0.0.2", "10.0.0.9", 5001, 53),
             "udp 10.0.0.2:5000 held by app1: source port 5001 ≠ 5000"),
            ("app1", udp_frame(sw.mac, "10.0.0.66", "10.0.0.9", 5000, 53),
             "udp 10.0.0.2:5000 held by app1: source address 10.0.0.66 ≠ 10.0.0.2"),
            ("app1", tcp, "udp 10.0.0.2:5000 held by app1: protocol tcp ≠ udp"),
            ("app1", udp_frame(sw.mac, "10.0.0.2", "10.0.0.9", 6000, 53),
             "udp 10.0.0.2:6000 is held by app2, not app1"),
            ("nic", bytes(eth(dst=sw.mac) / IP(src="10.0.0.1", dst="10.0.0.2") /
                          UDP(sport=9, dport=5001)),
             "udp 10.0.0.2:5000 held by app1: destination port 5001 ≠ 5000"),
            ("nic", bytes(eth(dst=sw.mac) / IP(src="10.0.0.1", dst="10.0.0.2") /
                          UDP(sport=9, dport=5999)),
             "udp 10.0.0.2:6000 held by app2: destination port 5999 ≠ 6000"),
            ("idle", udp_frame(sw.mac, "10.0.0.3", "10.0.0.9", 7, 53), None),
            ("app1", udp_frame(sw.mac, "10.0.0.2", "10.0.0.9", 5000, 53), None),
        ]
        for port, frame, nearest in cases:
            assert sw.explain(port, frame).nearest == nearest, (port, frame_summary(frame))
        fixes = [sw.explain(port, frame).fix for port, frame, _ in cases]
        assert fixes == ['app1.bind("10.0.0.2", "udp", 5001)',
                         "none: 10.0.0.66 is not an address of this switch (10.0.0.2, fd00::2)",
                         'app1.bind("10.0.0.2", "tcp", 5000)',
                         "none for app1: udp 10.0.0.2:6000 is bound by app2; only app2 may "
                         "send from it",
                         'a port.bind("10.0.0.2", "udp", 5001)',
                         'a port.bind("10.0.0.2", "udp", 5999)',
                         "none: 10.0.0.3 is not an address of this switch (10.0.0.2, fd00::2)",
                         None]


def test_drops_name_the_nearest_binding(daemon: object) -> None:
    sock = daemon.socket_path  # type: ignore[attr-defined]
    with ms.connect(sock) as c:
        app = c.port("app1")
        app.bind("10.0.0.2", "udp", 5000)
        app.send(frames(c.mac)["spoofed-src-port"])
        deadline = time.monotonic() + 5
        while not c.drops():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        line = cmd(sock, "drops")
        assert line.rstrip().endswith(
            "[nearest: udp 10.0.0.2:5000 held by app1: source port 5001 ≠ 5000]"), line
        out = cmd(sock, "explain", "app1", frames(c.mac)["spoofed-src-port"].hex())
        assert out.splitlines()[-2:] == [
            "nearest binding: udp 10.0.0.2:5000 held by app1: source port 5001 ≠ 5000",
            'fix: app1.bind("10.0.0.2", "udp", 5001)']


def capturing(sock: str, out: Path, says: str, *args: str) -> subprocess.Popen:
    """`ministack capture ARGS -w OUT` started, once it says ``says`` (it is then ready:
    what is sent from now on is captured)."""
    need(shutil.which("tshark"), "tshark (./setup.sh installs it)")
    proc = subprocess.Popen([sys.executable, "-m", "ministack", "capture", *args, "-w",
                             str(out), "--socket", sock], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and says in proc.stderr.readline()
    return proc


def test_capture_of_drops_opens_in_tshark_with_every_reason(daemon: object,
                                                            tmp_path: Path) -> None:
    """`ministack capture --drops -w FILE.pcapng`, read back by Debian's tshark: one
    interface per port, and every provoked reason in the packets' comments."""
    sock = daemon.socket_path  # type: ignore[attr-defined]
    out = tmp_path / "drops.pcapng"
    with ms.connect(sock) as c:
        a, b = c.port("app1"), c.port("app2")
        a.bind("10.0.0.2", "udp", 5000)
        b.bind("fd00::2", "udp", 6000)
        proc = capturing(sock, out, "writing dropped frames", "--drops", "-c", "3")
        f = frames(c.mac)
        a.send_batch([f["ok"], f["spoofed-src-ip"], f["spoofed-src-port"]])
        b.send(f["spoofed-src-mac"])
        proc.wait(timeout=30)
        assert proc.returncode == 0, proc.stderr.read()
    r = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.interface_name",
                        "-e", "frame.comment", "-e", "ip.src"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [(iface, comment.split(",")[0]) for iface, comment, _ in rows] == [
        ("app1", "dropped: spoofed-src-ip(8)"), ("app1", "dropped: spoofed-src-port(10)"),
        ("app2", "dropped: spoofed-src-mac(3)")], rows
    comments = {c for _, c, _ in rows}
    assert ("dropped: spoofed-src-port(10), tx, sent by app1; checked against udp "
            "10.0.0.2:5000 held by app1: source port 5001 ≠ 5000") in comments, comments
    flags = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e",
                            "frame.packet_flags_direction"], capture_output=True, text=True)
    assert {int(x, 16) for x in flags.stdout.split()} == {2}, flags.stdout  # outbound


def test_capture_of_a_port_keeps_every_frame_with_its_verdict(daemon: object,
                                                             tmp_path: Path) -> None:
    """`ministack capture app1 -w FILE.pcapng`, read by tshark: the frames app1 sent
    (forwarded to the wire, to another port, dropped, handled by the switch) and those it
    received, each with its verdict, direction and XDP-style verdict option; none of
    another port's traffic; and the tap ends with the command."""
    sock = daemon.socket_path  # type: ignore[attr-defined]
    out = tmp_path / "app1.pcapng"
    with ms.connect(sock) as c:
        a, b = c.port("app1"), c.port("app2")
        a.bind("10.0.0.2", "udp", 5000)
        b.bind("10.0.0.2", "udp", 6000)
        proc = capturing(sock, out, "writing frames of app1", "app1", "-c", "5")
        assert json.loads(cmd(sock, "status", "--json"))["switch"]["captures"] == 1
        f, m = frames(c.mac), c.mac
        arp = eth(m, "ff:ff:ff:ff:ff:ff") / ARP(hwsrc=m, psrc="10.0.0.2", pdst="10.0.0.1")
        a.send_batch([f["ok"], udp_frame(m, "10.0.0.2", "10.0.0.2", 5000, 6000),
                      f["spoofed-src-port"], bytes(arp)])
        wire = daemon.switch.wire  # type: ignore[attr-defined]
        wire.send_batch([udp_frame(m, "10.0.0.9", "10.0.0.2", 53, 6000),  # app2's only
                         udp_frame(m, "10.0.0.9", "10.0.0.2", 53, 5000)])
        proc.wait(timeout=30)
        assert proc.returncode == 0, proc.stderr.read()
        assert "5 frames written" in proc.stderr.read()
        assert b.recv(timeout=1) and a.recv(timeout=1)  # the capture took nothing away
    fields = ["frame.interface_name", "frame.packet_flags_direction", "frame.verdict.ebpf_xdp",
              "frame.comment"]
    r = subprocess.run(["tshark", "-r", str(out), "-T", "fields"] +
                       [x for field in fields for x in ("-e", field)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert {iface for iface, *_ in rows} == {"app1"}, rows
    assert {iface for iface, *_ in rows} == {"app1"}, rows
    # direction (1 inbound, 2 outbound) and XDP action (1 drop, 4 redirect; none: local)
    assert [(int(d, 16), xdp, comment) for _, d, xdp, comment in rows] == [
        (2, "4", "forwarded: ok(0), tx, sent by app1 to the wire"),
        (2, "4", "forwarded: ok(0), rx, from app1 for app2"),
        (2, "1", "dropped: spoofed-src-port(10), tx, sent by app1; checked against udp "
                 "10.0.0.2:5000 held by app1: source port 5001 ≠ 5000"),
        (2, "", "local: local(13), tx, sent by app1, handled by the switch"),
        (1, "4", "forwarded: ok(0), rx, from the network for app1")], rows
    deadline = time.monotonic() + 5  # the command's connection ended, and its tap with it
    while json.loads(cmd(sock, "status", "--json"))["switch"]["captures"]:
        assert time.monotonic() < deadline, "the capture's tap outlived it"
        time.sleep(0.05)
