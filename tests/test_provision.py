"""The README's set-up and the course VM's provisioning on a machine nobody prepared:
vagrant/provision.sh inside a fresh Debian 12 root filesystem (debootstrap, then chroot;
tests/fresh_debian.py), which runs ./setup.sh as the VM's user with sudo, through its
self-test, twice; then `ministack doctor` as root, which must find everything working,
BPF built in included. This is what keeps CI honest about install steps: a package that
only an earlier hand install put on the CI machine fails here. No VM is needed: the chroot
shares this machine's kernel, which is all the demo's namespace, XDP and tc filters use.

One fresh install serves both: each costs minutes (apt, pip, the compile), and the root
path of ./setup.sh differs from the sudo one only in not prefixing sudo (CI itself runs it
as root on every run).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import need, need_root
from fresh_debian import copy_project, fresh_debian, run_in

ROOT = Path(__file__).resolve().parent.parent


# What the chroot runs (after fresh_debian.PRELUDE); $1 is the lab's port.
IN_CHROOT = r"""
PORT=$1
# What a Vagrant box provides: a user with password-less sudo, and the project at /vagrant.
chroot "$R" /bin/sh -c '
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq sudo >/dev/null
    id vagrant >/dev/null 2>&1 || useradd -m -s /bin/bash vagrant
    echo "vagrant ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/vagrant
    chmod 0440 /etc/sudoers.d/vagrant
'
echo "=== first run"
run /vagrant/vagrant/provision.sh /vagrant
cp "$R/home/vagrant/ministack/setup.log" "$R/root/setup-first.log"
# A student's own work in a notebook must survive the next provisioning.
echo "student's edit" >> "$R/home/vagrant/labs/01-ports-and-the-switch.ipynb"
echo "=== second run"
run /vagrant/vagrant/provision.sh /vagrant
# No systemd runs in a chroot: start the lab the way its unit does, and ask it for the labs.
echo "=== lab service"
run systemd-analyze verify /etc/systemd/system/ministack-lab.service
run sh -c 'set -a; . /etc/ministack/lab.env; set +a
    cd /home/vagrant/labs
    $(sed -n "s/^ExecStart=//p" /etc/systemd/system/ministack-lab.service) >/tmp/lab.log 2>&1 &
    for i in $(seq 240); do
        curl -fsS "http://127.0.0.1:'$PORT'/api/contents?token=$JUPYTER_TOKEN" && break
        sleep 0.5
    done
    kill $!; wait $! || true'
# Everything setup.sh installed, working: doctor as root (XDP, AF_XDP, namespaces).
echo "=== doctor"
status=0
run /home/vagrant/ministack/.venv/bin/ministack doctor --json > "$R/root/doctor.json" || status=$?
echo "doctor exit $status"
# The Vagrantfile itself, checked by Debian's Vagrant (no VirtualBox or libvirt here).
echo "=== vagrant validate"
run sh -c 'apt-get install -y -qq --no-install-recommends vagrant >/dev/null 2>&1 &&
           cd /vagrant/vagrant && vagrant validate --ignore-provider'
"""

# The lines setup.sh prints: one per step (apt's and pip's chatter stays in setup.log), and
# the doctor report it ends with.
SETUP_LINE = re.compile(r"^(setup: |MiniStack doctor: |  |nothing missing or broken|"
                        r"\d+ of \d+ need|$)")


def setup_lines(run: str) -> list[str]:
    """What ./setup.sh printed during one provisioning run."""
    part = run.split("provision: running ./setup.sh as vagrant\n", 1)[1]
    return part.split("\nprovision: ", 1)[0].splitlines()


def provision_twice_then_doctor() -> dict[str, Any]:
    """The whole install, checked; it runs beside the other tests (conftest.py's
    background marker: the chroot has its own network namespace). Returns doctor's report."""
    need_root()
    need(shutil.which("debootstrap") and shutil.which("unshare") and shutil.which("slirp4netns"),
         "debootstrap, unshare and slirp4netns (./setup.sh installs them)")
    with fresh_debian() as root:
        copy_project(root / "vagrant")
        port = 8888  # the chroot's own network: nothing else listens there
        r = run_in(root, IN_CHROOT, str(port), env=f"MINISTACK_LAB_PORT={port}")
        out = r.stdout + r.stderr
        (ROOT / "artifacts").mkdir(exist_ok=True)
        (ROOT / "artifacts" / "provision-chroot.log").write_text(out)
        log = root / "root" / "setup-first.log"  # the fresh install's (the rerun's replaces it)
        if log.exists():
            shutil.copy(log, ROOT / "artifacts" / "provision-setup.log")
        assert r.returncode == 0, out[-6000:]
        first, rest = out.split("=== second run")
        second, rest = rest.split("=== lab service")
        lab, rest = rest.split("=== doctor")
        doctor, validate = rest.split("=== vagrant validate")
        assert "01-ports-and-the-switch.ipynb" in lab, lab
        assert "Vagrantfile validated successfully" in validate, validate
        for run in (first, second):
            assert "MiniStack self-test: PASS" in run, run[-4000:]
            assert "MiniStack self-test: FAIL" not in run
        # The self-test's own checks, and the namespace variant of the demo.
        assert "demo: 10 of 10 checks passed" in second
        assert "switch on ms-demo0" in second
        # A fresh machine: setup.sh installed every system package itself, libxdp and the
        # newest clang included, and said so in one line per step.
        setup = setup_lines(first)
        for line in setup:
            assert SETUP_LINE.match(line), line
        assert any(re.match(r"setup: installing .*\blibxdp-dev\b", x) for x in setup), setup
        assert any(re.match(r"setup: installing .*\bclang-19\b", x) for x in setup), setup
        assert not [x for x in setup if "no libxdp" in x or "not in this distribution" in x]
        assert "Setting up" in log.read_text()
        report = json.loads((root / "root" / "doctor.json").read_text())
        assert "doctor exit 0" in doctor, json.dumps(report, indent=1)
        # The rerun found the system packages in place and kept the environment.
        assert "setup: system packages already present" in second
        assert "creating .venv" in first and "creating .venv" not in second
        home = root / "home" / "vagrant"
        assert (home / "ministack" / ".venv" / "bin" / "ministack").exists()
        # The student versions, never the solutions.
        assert sorted(p.name for p in (home / "labs").glob("*.ipynb")) == sorted(
            p.name for p in (ROOT / "labs" / "release").glob("*/*.ipynb"))
        assert "BEGIN SOLUTION" not in (home / "labs" / "01-ports-and-the-switch.ipynb").read_text()
        edited = home / "labs" / "01-ports-and-the-switch.ipynb"
        assert edited.read_text().endswith("student's edit\n")
        assert (root / "etc/systemd/system/ministack-lab.service").exists()
        assert (root / "etc/ministack/lab.env").stat().st_mode & 0o077 == 0
        return report


@pytest.mark.slow
# with_args: a mark given one callable would take it for the function it decorates.
@pytest.mark.background.with_args(provision_twice_then_doctor)
def test_provision_sh_in_a_fresh_debian_12_twice_then_doctor(background: dict[str, Any]) -> None:
    """provision_twice_then_doctor() ran beside the other tests; then doctor, as root on
    what it installed, found every check ok, BPF built in and XDP on a veth included."""
    checks = {c["name"]: c for c in background["checks"]}
    assert checks["BPF built in"]["status"] == "ok", checks["BPF built in"]
    assert checks["XDP on a veth"]["status"] == "ok", checks["XDP on a veth"]
    assert [c for c in background["checks"] if c["status"] != "ok"] == [], background
