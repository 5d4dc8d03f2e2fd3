"""The shell commands a student runs first."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

CMD = [sys.executable, "-m", "ministack"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(CMD + list(args), capture_output=True, text=True, timeout=timeout)


def test_help_says_what_each_command_does() -> None:
    out = run("--help").stdout
    for cmd in ("demo", "daemon", "topo", "pktgen", "bench"):
        assert cmd in out
    for cmd in ("demo", "daemon", "topo"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and len(r.stdout.splitlines()) > 3


def check_demo(out: str) -> None:
    assert "forward wire" in out
    for reason in ("spoofed-src-ip", "spoofed-src-port", "spoofed-src-mac"):
        assert reason in out
    assert "app2 received" in out and "burst: app1 sent 100000" in out
    assert "counters:" in out and "recent drops:" in out


def test_demo_on_the_virtual_nic() -> None:
    r = run("demo", "--virtual")
    assert r.returncode == 0, r.stderr
    check_demo(r.stdout)


@pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"),
                    reason="the namespace demo needs root (CI runs as root)")
def test_demo_in_a_peer_namespace_cleans_up() -> None:
    r = run("demo")
    assert r.returncode == 0, r.stderr
    check_demo(r.stdout)
    assert "peer namespace ms-demo" in r.stdout and "the peer's kernel received" in r.stdout
    assert "ms-demo0" not in os.listdir("/sys/class/net")
    assert "ms-demo" not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                           text=True).stdout
