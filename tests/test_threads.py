"""Closing a port or the switch while another thread waits in recv() or send(): the waiter
returns at once with PortError, and nothing is freed under it."""
from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

import ministack as ms
from ministack.bench import udp_frame


def waiter(fn: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t, errors


@pytest.mark.parametrize("close_switch", [False, True])
def test_close_wakes_a_thread_blocked_in_recv(close_switch: bool) -> None:
    sw = ms.Switch()
    a = sw.port("a")
    t, errors = waiter(lambda: a.recv(timeout=None))
    time.sleep(0.2)
    start = time.monotonic()
    (sw.close if close_switch else a.close)()
    t.join(2.0)
    assert not t.is_alive(), "recv() kept waiting after close"
    assert time.monotonic() - start < 1.0
    assert len(errors) == 1 and isinstance(errors[0], ms.PortError), errors
    sw.close()


def test_interrupt_wakes_a_sender_waiting_on_a_full_ring() -> None:
    """A switch that was never started never drains: a sender blocks on the full ring
    until ms_app_interrupt (what Port.close() calls first) releases it."""
    from ministack.binding import ffi, lib

    cfg = ffi.new("struct ms_config *", {"ring_slots": 8})
    out = ffi.new("ms_switch **")
    assert lib.ms_switch_create(cfg, out) == 0
    sw = out[0]
    try:
        assert lib.ms_switch_attach_virtual(sw) == 0
        pid = lib.ms_port_create(sw, b"a", 1500)
        app = lib.ms_switch_app(sw, pid)
        frame = bytes(60)
        lens = ffi.new("uint32_t[]", [60] * 16)
        data = frame * 16
        result: list[int] = []
        t = threading.Thread(target=lambda: result.append(
            lib.ms_app_send(app, data, lens, 16, -1)))
        t.start()
        time.sleep(0.2)
        assert t.is_alive(), "the sender should be waiting for ring space"
        lib.ms_app_interrupt(app)
        t.join(1.0)
        assert not t.is_alive(), "the interrupted sender kept waiting"
        assert result == [8]  # the ring's 8 slots were filled, the rest never queued
        lib.ms_app_close(app)
    finally:
        lib.ms_switch_destroy(sw)


def test_concurrent_senders_on_one_port_lose_nothing() -> None:
    with ms.Switch(wire_slots=65536) as sw:
        a = sw.port("a")
        a.bind("10.0.0.2", "udp", 5000)
        frame = udp_frame(sw.mac, "10.0.0.2", "10.0.0.9", 5000, 9)
        threads = [threading.Thread(target=lambda: [a.send_batch([frame] * 100)
                                                   for _ in range(50)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(sw.wire.capture(timeout=2.0)) == 4 * 50 * 100
        assert sw.stats()["ports"]["a"]["tx"]["frames"] == 20000
