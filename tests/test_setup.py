"""./setup.sh's own judgement: which packages apt can install, one line per step, and apt's
chatter kept in setup.log except when a step fails. (The whole of it, on a fresh Debian 12,
is in test_provision.py.)"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from conftest import need
from ministack.doctor import apt_candidates

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "setup.sh"


def test_dry_run_judges_every_package_as_apt_does() -> None:
    """`apt-cache policy X | grep -q` under pipefail judged every optional package
    uninstallable (grep's early exit kills apt-cache with SIGPIPE): AF_XDP silently left
    out on every fresh machine. The dry run uses the real run's judgement; it must match
    apt's own answer for every package, every time."""
    need(shutil.which("apt-cache"), "apt (Debian or Ubuntu)")
    for _ in range(2):  # the pipe bug struck at random on some machines
        r = subprocess.run([str(SETUP), "--dry-run"], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        rows = re.findall(r"^setup: (\S+)\s+(installed|would install|not in this "
                          r"distribution)\s+candidate (\S+)$", r.stdout, re.M)
        names = [row[0] for row in rows]
        for must in ("clang", "libbpf-dev", "libxdp-dev", "clang-19"):
            assert must in names, r.stdout
        assert any(n.startswith("libclang-rt-") for n in names), r.stdout
        apt = apt_candidates(names)  # Python's own reading of apt-cache, not setup.sh's
        for name, state, candidate in rows:
            assert candidate == (apt[name] or "(none)"), (name, candidate)
            installed = subprocess.run(["dpkg", "-s", name], capture_output=True).returncode == 0
            want = ("installed" if installed else
                    "not in this distribution" if candidate == "(none)" else "would install")
            assert state == want, (name, state, want)


STUB_DPKG = """#!/bin/sh
# dpkg -s PKG: everything is installed except tcpdump
[ "$1" = -s ] && [ "$2" = tcpdump ] && exit 1
exit 0
"""
STUB_APT_GET = """#!/bin/sh
for a in "$@"; do
    case $a in
        update) echo "Hit:1 http://deb.debian.org/debian bookworm InRelease"; exit 0 ;;
        install) echo "Reading package lists..."; echo "E: Unable to fetch some archives"; exit 100 ;;
    esac
done
"""


def test_a_failed_apt_step_shows_the_end_of_its_log(tmp_path: Path) -> None:
    """apt's output stays in setup.log while it works; when a step fails, its end is shown,
    with the log's name, and the set-up stops there."""
    setup = tmp_path / "setup.sh"
    shutil.copy(SETUP, setup)
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, text in (("dpkg", STUB_DPKG), ("apt-get", STUB_APT_GET)):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}
    if os.geteuid() != 0:
        need(False, "root (setup.sh asks sudo otherwise)")
    r = subprocess.run([str(setup)], capture_output=True, text=True, env=env,
                       timeout=120)
    log = tmp_path / "setup.log"
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert all(line.startswith("setup: ") for line in lines), r.stdout
    assert "setup: updating apt's package lists" in lines
    assert "setup: installing tcpdump" in lines
    assert "Hit:1" not in r.stdout, "apt's chatter reached the terminal while it worked"
    assert f"setup: failed: installing tcpdump; the end of {log}:" in r.stderr
    assert "E: Unable to fetch some archives" in r.stderr
    text = log.read_text()
    assert "Hit:1 http://deb.debian.org" in text and "=== installing tcpdump" in text
    assert not (tmp_path / ".venv").exists(), "it went on after the failed step"


def test_setup_says_what_it_does_and_where_its_log_is() -> None:
    code = [line for line in SETUP.read_text().splitlines() if not line.lstrip().startswith("#")]
    # No pipeline into a reader that may stop early, under pipefail.
    assert not [line for line in code if re.search(r"\|\s*(grep -q|head)\b", line)]
    r = subprocess.run([str(SETUP), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--dry-run" in r.stdout and "setup.log" in r.stdout
