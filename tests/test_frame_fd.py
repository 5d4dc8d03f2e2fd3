"""Port.frame_fd(): a descriptor that behaves like a TAP device, in process and through the
daemon."""
from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator

import pytest

import ministack as ms
from ministack.bench import udp_frame
from ministack.daemon import Daemon

from conftest import serving  # noqa: E402

GOOD_DST = "10.0.0.9"


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    with serving(nic="virtual") as dm:
        yield dm


def wire_frames(sw: ms.Switch, n: int, timeout: float = 3.0) -> list[bytes]:
    """What reached the wire, waiting for the pump to move n frames."""
    got: list[bytes] = []
    end = time.time() + timeout
    while len(got) < n and time.time() < end:
        got += sw.wire.capture(timeout=0.1)
    return got


def check_tap(sw: ms.Switch, port: ms.Port | ms.ClientPort, mac: str) -> None:
    """Writes go through the filter one frame each; reads return one frame each, in order;
    readiness shows in select()."""
    port.bind("10.0.0.2", "udp", 5000)
    fd = port.frame_fd()
    try:
        good = [udp_frame(mac, "10.0.0.2", GOOD_DST, 5000, 9, size=64 + i)
                for i in range(50)]
        spoofed = udp_frame(mac, "10.0.0.7", GOOD_DST, 5000, 9)
        for f in good[:25] + [spoofed] + good[25:]:
            assert os.write(fd, f) == len(f)
        assert wire_frames(sw, 50) == good
        assert sw.stats()["ports"][port.name]["drops"]["spoofed-src-ip"] == 1
        assert select.select([fd], [], [], 0) == ([], [], [])
        replies = [udp_frame("02:00:00:00:00:09", GOOD_DST, "10.0.0.2", 9, 5000, dst_mac=mac,
                             size=64 + i) for i in range(40)]
        sw.wire.inject(replies)
        assert select.select([fd], [], [], 2.0)[0] == [fd]
        assert [os.read(fd, 65536) for _ in replies] == replies
        assert port.recv(timeout=0.05) is None, "a frame went to recv() while the fd was open"
    finally:
        os.close(fd)


def test_frame_fd_in_process(sw: ms.Switch) -> None:
    check_tap(sw, sw.port("tap"), sw.mac)


def test_frame_fd_through_the_daemon(daemon: Daemon) -> None:
    with ms.connect(daemon.socket_path) as c:
        check_tap(daemon.switch, c.port("tap"), c.mac)


def test_frame_fd_is_closed_with_the_port(sw: ms.Switch) -> None:
    port = sw.port("tap")
    fd = port.frame_fd()
    try:
        port.close()
        assert os.read(fd, 65536) == b""
        with pytest.raises(BrokenPipeError):
            os.write(fd, b"\x00" * 60)
    finally:
        os.close(fd)
    with pytest.raises(ms.PortError):
        port.frame_fd()


def test_a_burst_larger_than_the_ring_arrives_whole_when_read_as_it_comes(sw: ms.Switch) -> None:
    """The pump pushes back on the writer: 5,000 frames written as fast as possible all
    reach the wire, none dropped as ring-full."""
    port = sw.port("tap")
    port.bind("10.0.0.2", "udp", 5000)
    fd = port.frame_fd()
    frame = udp_frame(sw.mac, "10.0.0.2", GOOD_DST, 5000, 9)
    got = 0
    try:
        for _ in range(5000):
            os.write(fd, frame)
            got += len(sw.wire.capture(timeout=0)) if _ % 500 == 0 else 0
        got += len(wire_frames(sw, 5000 - got, timeout=5.0))
    finally:
        os.close(fd)
    assert got == 5000
    assert sw.stats()["ports"]["tap"]["drops"]["ring-full"] == 0
