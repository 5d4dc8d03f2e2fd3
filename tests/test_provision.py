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
from fresh_debian import copy_project, fresh_debian, run_in, update_suites

ROOT = Path(__file__).resolve().parent.parent


# What the chroot runs (after fresh_debian.PRELUDE); $1 is the lab's port, $2 the sources
# of Debian's updates and security suites.
IN_CHROOT = r"""
PORT=$1
# What a Vagrant box provides: Debian's updates and security suites, a user with
# password-less sudo, and the project at /vagrant.
printf '%s\n' "$2" > "$R/etc/apt/sources.list.d/updates.list"
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
    part = re.split(r"provision: running \./setup\.sh.* as vagrant\n", run, maxsplit=1)[1]
    return part.split("\nprovision: ", 1)[0].splitlines()


def vale_build() -> tuple[dict[str, str], str]:
    """What --netmap needs here, as the provisioning's environment: a kernel other than
    this machine's (which loads no modules), with headers in apt, and netmap's tarball; or
    {} and why not."""
    from test_vale import kernel_headers, netmap_source

    kdir, source = kernel_headers(), netmap_source()
    if kdir is None or source is None or not source.is_file():
        return {}, (f"a netmap tarball (MINISTACK_NETMAP_SRC, or ../shared/vendor/): {source}"
                    f" and Debian's kernel headers (linux-headers-amd64): {kdir}")
    return {"MINISTACK_KERNEL": kdir.name.removeprefix("linux-headers-"),
            "MINISTACK_NETMAP_SRC": str(source), "MINISTACK_VALE_NIC": "veth0"}, ""


# The provisioned system, booted in the kernel it built the VALE switch for: the modules
# load as systemd-modules-load would load them, from what provisioning left in /etc, and
# doctor's VALE check runs with the VM user's MiniStack.
PROVISIONED_GUEST = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in veth {nine_p}; do insmod /mods/$m.ko; done
mkdir /host && mount -t 9p -o trans=virtio,version=9p2000.L,ro hostroot /host
for d in proc sys dev; do mount --rbind /$d /host/$d; done
chroot /host /bin/sh -c '
    ip link add veth0 type veth peer name veth1 && ip link set veth0 up
    for m in $(cat /etc/modules-load.d/ministack-vale.conf); do
        modprobe $m && echo "=== loaded $m"
    done
    cd /home/vagrant/ministack && .venv/bin/python /root/vale_check.py'
poweroff -f
"""
VALE_CHECK = """import dataclasses, json
from ministack import doctor
print("=== doctor " + json.dumps(dataclasses.asdict(doctor.check_vale())), flush=True)
"""


def boot_provisioned(root: Path, release: str) -> str:
    """Boot `root` (the chroot, over 9p) in Debian's kernel `release`; its console."""
    from test_vale import NINE_P, boot_guest, guest_kernel

    tmp = root.parent / "guest"
    tmp.mkdir()
    kernel = guest_kernel(release, tmp)
    (root / "root" / "vale_check.py").write_text(VALE_CHECK)
    mods = {f"mods/{m}.ko": kernel[f"{m}.ko"] for m in ["veth", *NINE_P]}
    return boot_guest(tmp, kernel["vmlinuz"],
                      PROVISIONED_GUEST.format(nine_p=" ".join(NINE_P)), mods, share=root)


def provision_twice_then_doctor() -> dict[str, Any]:
    """The whole install, checked; it runs beside the other tests (conftest.py's
    background marker: the chroot has its own network namespace). Returns doctor's report."""
    need_root()
    need(shutil.which("debootstrap") and shutil.which("unshare") and shutil.which("slirp4netns"),
         "debootstrap, unshare and slirp4netns (./setup.sh installs them)")
    vale, why_not = vale_build()
    with fresh_debian() as root:
        copy_project(root / "vagrant")
        if vale:  # the tarball, where the VM's user can read it
            shutil.copy(vale["MINISTACK_NETMAP_SRC"], root / "srv" / "netmap.tar.gz")
            vale["MINISTACK_NETMAP_SRC"] = "/srv/netmap.tar.gz"
        port = 8888  # the chroot's own network: nothing else listens there
        env = " ".join([f"MINISTACK_LAB_PORT={port}", *(f"{k}={v}" for k, v in vale.items())])
        r = run_in(root, IN_CHROOT, str(port), update_suites(), env=env)
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
        report["vale"] = {"why_not": why_not}
        if vale:
            release = vale["MINISTACK_KERNEL"]
            report["vale"].update(
                release=release, setup=setup, console=boot_provisioned(root, release),
                headers=(root / "usr/local/include/net/netmap_user.h").exists(),
                modules=sorted(p.name for p in
                               (root / f"lib/modules/{release}/updates/ministack").glob("*.ko")),
                dep=(root / f"lib/modules/{release}/modules.dep").read_text(),
                load=(root / "etc/modules-load.d/ministack-vale.conf").read_text(),
                options=(root / "etc/modprobe.d/ministack-vale.conf").read_text())
        return report


# with_args: a mark given one callable would take it for the function it decorates.
@pytest.mark.slow
@pytest.mark.background.with_args(provision_twice_then_doctor)
def test_provision_sh_in_a_fresh_debian_12_twice_then_doctor(background: dict[str, Any]) -> None:
    """provision_twice_then_doctor() ran beside the other tests; then doctor, as root on
    what it installed, found every check ok, BPF built in and XDP on a veth included."""
    checks = {c["name"]: c for c in background["checks"]}
    assert checks["BPF built in"]["status"] == "ok", checks["BPF built in"]
    assert checks["XDP on a veth"]["status"] == "ok", checks["XDP on a veth"]
    # This machine's kernel loads no modules: the VALE switch is checked in its own kernel.
    vale = checks.pop("VALE kernel switch")
    assert vale["status"] == "unavailable" and "cannot load modules" in vale["detail"], vale
    assert [c for c in checks.values() if c["status"] != "ok"] == [], background


@pytest.mark.slow
@pytest.mark.background.with_args(provision_twice_then_doctor)
def test_provision_builds_the_vale_switch_and_it_loads_in_the_kernel_it_was_built_for(
        background: dict[str, Any]) -> None:
    """The same provisioning, with --netmap for Debian's kernel (MINISTACK_KERNEL): netmap
    and ministack_vale.ko built, installed and indexed, set to load at boot, MiniStack
    built with backend="vale"; then that system booted in that kernel under QEMU, where the
    modules load from /etc as at boot and doctor's VALE check is ok."""
    vale = background["vale"]
    need(not vale["why_not"], vale["why_not"])
    release, setup = vale["release"], vale["setup"]
    assert f"setup: building netmap and ministack_vale.ko for kernel {release} " \
           "(native/vale/build.sh)" in setup, setup
    assert any(line.startswith(f"setup: built for kernel {release}, not this one")
               for line in setup), setup
    assert vale["headers"] and vale["modules"] == ["ministack_vale.ko", "netmap.ko"], vale
    assert "updates/ministack/ministack_vale.ko: updates/ministack/netmap.ko" in vale["dep"]
    assert vale["load"].split() == ["netmap", "ministack_vale"]
    assert vale["options"].strip() == "options ministack_vale nic=veth0"
    console = vale["console"]
    assert "=== loaded netmap" in console and "=== loaded ministack_vale" in console, console
    line = re.search(r"^=== doctor (.*)$", console, re.M)
    assert line, console[-4000:]
    check = json.loads(line.group(1))
    assert check["status"] == "ok" and "on veth0" in check["detail"], check
