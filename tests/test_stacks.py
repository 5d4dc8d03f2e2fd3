"""Several stacks at once on one interface (the poster's claim): lwIP on a port, a
TAP-style stack on frame_fd() of another, the host kernel's own sockets, each reached by the
peer namespace's kernel, one stack misbehaving with every bad frame counted under its reason
and none on the wire. Needs root; CI runs as root."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import ministack as ms
from ministack import stacks
from ministack.daemon import Daemon

from conftest import need  # noqa: E402

pytestmark = pytest.mark.usefixtures("root")


def test_three_stacks_side_by_side_and_one_misbehaving() -> None:
    need(os.path.exists(os.path.join(os.path.dirname(ms.__file__), "ms-lwip-echo")),
         "ms-lwip-echo (liblwip-dev, which ./setup.sh installs)")
    r = stacks.run_checks(ms, Daemon, ns=f"ms-st{os.getpid() % 10000}")
    failed = [label for label, ok in r["checks"] if not ok]
    assert not failed, failed
    ports = r["stats"]["ports"]
    tap, lwip = ports["tapstack"], ports["lwip"]
    for reason, n in r["misbehaved"].items():
        assert tap["drops"][reason] == n, (reason, tap["drops"])
    assert sum(tap["drops"].values()) == sum(r["misbehaved"].values())
    assert sum(lwip["drops"].values()) == 0, lwip["drops"]
    assert lwip["local"]["answers"] >= 1 and lwip["tx"]["frames"] > 50, lwip
    assert set(r["misbehaved"]) >= {"spoofed-src-ip", "not-allowed", "fragment"}


def test_the_command() -> None:
    need(os.path.exists(os.path.join(os.path.dirname(ms.__file__), "ms-lwip-echo")),
         "ms-lwip-echo (liblwip-dev, which ./setup.sh installs)")
    out = subprocess.run([sys.executable, "-m", "ministack", "demo", "--stacks"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "✗" not in out.stdout and "demo --stacks: 13 of 13 checks passed" in out.stdout, \
        out.stdout
