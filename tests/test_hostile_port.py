"""A port's owner can write anything into its own memory, including the ring header. The
switch keeps its own copy of the ring geometry and masks every index, so a port that
scribbles over its region only hurts itself: the switch keeps serving everyone else."""
from __future__ import annotations

import mmap
import os
import random

import ministack as ms
from ministack.binding import lib
from ministack.bench import udp_frame


def test_scribbled_port_region_does_not_hurt_the_switch() -> None:
    rng = random.Random(1)
    with ms.Switch() as sw:
        evil, good = sw.port("evil"), sw.port("good")
        evil.bind("10.0.0.2", "udp", 5000)
        good.bind("10.0.0.2", "udp", 6000)
        fd = lib.ms_port_memfd(sw._sw, evil._id)
        size = os.fstat(fd).st_size
        with mmap.mmap(fd, size) as region:
            for _ in range(50):
                # The header and ring indices: geometry, head, cur, tail, flags.
                region[0:4096] = rng.randbytes(4096)
                # Some slot lengths and buffers too.
                for _ in range(20):
                    off = rng.randrange(4096, size - 8)
                    region[off:off + 8] = rng.randbytes(8)
                lib.ms_switch_sync(sw._sw, 20)
                frame = udp_frame(sw.mac, "10.0.0.2", "10.0.0.9", 6000, 9)
                good.send(frame)
                assert sw.sync(timeout=1.0)
                wire = sw.wire.capture()
                assert frame in wire
                # Whatever the scribbling made the switch read from evil's ring, anything
                # it forwarded carried evil's own binding.
                for f in wire:
                    if f != frame:
                        v = sw.explain("evil", f)
                        assert v.action == "forward", v
        st = sw.stats()["ports"]
        assert st["good"]["tx"]["frames"] == 50
        assert sum(st["good"]["drops"].values()) == 0
