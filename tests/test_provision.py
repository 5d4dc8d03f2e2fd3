"""The course VM's provisioning, run for real: vagrant/provision.sh inside a fresh Debian 12
root filesystem (debootstrap, then chroot), through its self-test. No VM is needed: the
chroot shares this machine's kernel, which is all the demo's namespace, XDP and nftables use.

The chroot lives in its own mount namespace (unshare), so every mount in it — /proc, /sys,
/dev, and the one `ip netns add` leaves under /run/netns — goes away with that namespace,
even when the test fails half-way.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NEEDS = "needs root, debootstrap and unshare (./setup.sh installs debootstrap)"
CAN_RUN = os.geteuid() == 0 and shutil.which("debootstrap") and shutil.which("unshare")

# In CI it must run: there a missing tool is a failure, not a skip.
pytestmark = pytest.mark.skipif(not CAN_RUN and not os.environ.get("CI"), reason=NEEDS)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    texts = [p.read_text() for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    for stanza in "\n\n".join(texts).split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        suites = fields.get("Suites", "").split()
        if "deb" in fields.get("Types", "").split() and "bookworm" in suites:
            return fields["URIs"].split()[0]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        m = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", legacy.read_text(), re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def project_files() -> list[str]:
    """The project as a fresh clone has it, plus uncommitted edits: git's tracked and new files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


# Everything that touches the chroot runs in one shell inside a private mount namespace.
IN_CHROOT = r"""
set -euo pipefail
R=$1 PORT=$2
# `ip netns exec` makes / a slave mount: / must be a mount point, as it is in a VM.
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/run"
cp /etc/resolv.conf "$R/etc/resolv.conf"
[ -s "$R/etc/hosts" ] || printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' > "$R/etc/hosts"
echo "127.0.1.1 $(hostname)" >> "$R/etc/hosts"
# What a Vagrant box provides: a user with password-less sudo, and the project at /vagrant.
chroot "$R" /bin/sh -c '
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq sudo >/dev/null
    id vagrant >/dev/null 2>&1 || useradd -m -s /bin/bash vagrant
    echo "vagrant ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/vagrant
    chmod 0440 /etc/sudoers.d/vagrant
'
# TLS to the registries goes through a certificate this machine trusts and a fresh
# Debian does not (NOTES.md); a real VM needs none of this.
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$R/etc/host-ca.crt"
run() {
    chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 PIP_CERT=/etc/host-ca.crt REQUESTS_CA_BUNDLE=/etc/host-ca.crt \
        PIP_DEFAULT_TIMEOUT=180 MINISTACK_LAB_PORT=$PORT "$@"
}
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
    mirror = debian_mirror()
    base = Path(tempfile.mkdtemp(prefix="ms-chroot-", dir="/var/tmp"))
    root = base / "root"
    try:
        # Its own mount namespace too: debootstrap mounts /proc and /sys in the target.
        subprocess.run(["unshare", "--mount", "--propagation", "private", "debootstrap",
                        "--variant=minbase", "bookworm", str(root), mirror],
                       check=True, capture_output=True, timeout=900)
        dest = root / "vagrant"
        for f in project_files():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                            IN_CHROOT, "in-chroot", str(root), str(port)],
                           capture_output=True, text=True, timeout=2400)
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
        assert sorted(p.name for p in (home / "labs").glob("*.ipynb")) == sorted(
            p.name for p in (ROOT / "labs").glob("*.ipynb"))
        edited = home / "labs" / "01-ports-and-the-switch.ipynb"
        assert edited.read_text().endswith("student's edit\n")
        assert (root / "etc/systemd/system/ministack-lab.service").exists()
        assert (root / "etc/ministack/lab.env").stat().st_mode & 0o077 == 0
    finally:
        # The demo removes its namespace and veth pair; make sure, in case it failed mid-way.
        subprocess.run(["ip", "link", "del", "ms-demo0"], capture_output=True)
        # Never delete through a mount (a bound /dev): check first, and keep the tree if so.
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(base) not in mounts, f"a mount under {base} outlived its namespace"
        shutil.rmtree(base, ignore_errors=True)
