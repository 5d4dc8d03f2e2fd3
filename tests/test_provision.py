"""The course VM's provisioning, run for real: vagrant/provision.sh inside a fresh Debian 12
root filesystem (debootstrap, then chroot; tests/fresh_debian.py), through its self-test. No
VM is needed: the chroot shares this machine's kernel, which is all the demo's namespace, XDP
and nftables use.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import need, need_root
from fresh_debian import copy_project, fresh_debian, run_in

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def tools() -> None:
    need_root()
    need(shutil.which("debootstrap") and shutil.which("unshare"),
         "debootstrap and unshare (./setup.sh installs debootstrap)")


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
# The Vagrantfile itself, checked by Debian's Vagrant (no VirtualBox or libvirt here).
echo "=== vagrant validate"
run sh -c 'apt-get install -y -qq --no-install-recommends vagrant >/dev/null 2>&1 &&
           cd /vagrant/vagrant && vagrant validate --ignore-provider'
"""


def test_provision_sh_in_a_fresh_debian_12_passes_its_self_test_twice() -> None:
    with fresh_debian() as root:
        copy_project(root / "vagrant")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        try:
            r = run_in(root, IN_CHROOT, str(port), env=f"MINISTACK_LAB_PORT={port}")
        finally:
            # The demo removes its namespace and veth pair; make sure, in case it failed.
            subprocess.run(["ip", "link", "del", "ms-demo0"], capture_output=True)
        out = r.stdout + r.stderr
        (ROOT / "artifacts").mkdir(exist_ok=True)
        (ROOT / "artifacts" / "provision-chroot.log").write_text(out)
        assert r.returncode == 0, out[-6000:]
        first, rest = out.split("=== second run")
        second, rest = rest.split("=== lab service")
        lab, validate = rest.split("=== vagrant validate")
        assert "01-ports-and-the-switch.ipynb" in lab, lab
        assert "Vagrantfile validated successfully" in validate, validate
        for run in (first, second):
            assert "MiniStack self-test: PASS" in run, run[-4000:]
            assert "MiniStack self-test: FAIL" not in run
        # The self-test's own checks, and the namespace variant of the demo.
        assert "demo: 10 of 10 checks passed" in second
        assert "switch on ms-demo0" in second
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
