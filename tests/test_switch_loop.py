"""The switch loop's sleeping and waking: idle costs nothing, and a frame sent to a sleeping
switch is handled at once (no lost wake-up)."""
from __future__ import annotations

import os
import time

import ministack as ms
from ministack.bench import udp_frame


def switch_thread_cpu_seconds() -> float:
    """CPU time (user + system) of this process's ms-switch threads."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().strip() != "ms-switch":
                    continue
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def test_idle_switch_uses_under_2_percent_of_a_core() -> None:
    with ms.Switch() as sw:
        for i in range(4):
            sw.port(f"p{i}").bind("10.0.0.2", "udp", 5000 + i)
        time.sleep(0.3)  # let it finish spinning and go to sleep
        before = switch_thread_cpu_seconds()
        time.sleep(2.0)
        used = switch_thread_cpu_seconds() - before
    assert used <= 0.04, f"idle switch used {used:.3f} s of CPU in 2 s"


def test_sleeping_switch_wakes_for_port_and_wire_frames() -> None:
    with ms.Switch() as sw:
        a = sw.port("a")
        a.bind("10.0.0.2", "udp", 5000)
        frame = udp_frame(sw.mac, "10.0.0.2", "10.0.0.9", 5000, 9)
        reply = udp_frame("02:00:00:00:00:09", "10.0.0.9", "10.0.0.2", 9, 5000, dst_mac=sw.mac)
        for _ in range(5):
            time.sleep(0.1)  # asleep by now (it spins 50 us after the last frame)
            a.send(frame)
            # A lost wake-up would leave the frame queued until the 1 s liveness timeout.
            assert sw.sync(timeout=0.5), "a frame sent to a sleeping switch was not handled"
            assert sw.wire.capture() == [frame]
            time.sleep(0.1)
            sw.wire.inject(reply)
            assert a.recv(timeout=0.5) == reply


def test_port_created_while_switch_sleeps_is_served() -> None:
    with ms.Switch() as sw:
        time.sleep(0.2)
        b = sw.port("late")
        b.bind("10.0.0.2", "udp", 7000)
        b.send(udp_frame(sw.mac, "10.0.0.2", "10.0.0.9", 7000, 9))
        assert sw.sync(timeout=0.5)
        assert len(sw.wire.capture()) == 1


def test_closing_a_port_flushes_what_it_queued() -> None:
    with ms.Switch(wire_slots=16384) as sw:
        a = sw.port("a")
        a.bind("10.0.0.2", "udp", 5000)
        bad = udp_frame(sw.mac, "10.0.0.3", "10.0.0.9", 5000, 9)
        for _ in range(20):
            a2 = sw.port("b")
            a2.bind("10.0.0.2", "udp", 6000)
            a2.send_batch([udp_frame(sw.mac, "10.0.0.2", "10.0.0.9", 6000, 9)] * 500 + [bad])
            a2.close()  # at once: whatever the switch had not taken yet is handled now
        assert len(sw.wire.capture()) == 20 * 500
        assert sw.stats()["nic"]["tx"]["frames"] == 20 * 500
        drops = sw.drops()
        assert [d["reason"] for d in drops] == ["spoofed-src-ip"] * 20
        # Stamped with the wall clock of the round (or the close) that dropped them: the
        # loop reads the clock once per round that records, not once per frame.
        assert all(abs(d["time"] - time.time()) < 30 for d in drops), drops[0]["time"]
