"""Fresh Debian 12 systems for the tests that prove an install path: debootstrap (minbase,
from the mirror this machine's apt uses) once per test run, a copy of it per test, the
project copied in as a fresh clone has it, and a bash script run against it.

Everything that touches the chroot runs in one shell inside a private mount namespace and
a network namespace of its own (unshare), so every mount in it (/proc, /sys, /dev, and the
one `ip netns add` leaves under /run/netns) goes away with that namespace, even when a test
fails half-way, and every veth, namespace, XDP program and tc filter the chroot's
demo and doctor make is out of the host's sight: other tests may run beside it. The chroot
reaches the package registries through slirp4netns (user-mode NAT, no route or firewall
rule on the host).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_pristine: dict[str, Path] = {}
_pristine_lock = threading.Lock()  # a test in the background may ask for it at the same time

# Sourced first by every script: $R is the chroot, `run` runs a command in it as root with
# a clean environment.
PRELUDE = r"""
set -euo pipefail
R=$1; shift
# The network: slirp4netns's tap0 (its gateway 10.0.2.2, its DNS forwarder 10.0.2.3), which
# run_in adds once this shell is in its namespace.
for _ in $(seq 400); do ip link show tap0 >/dev/null 2>&1 && break; sleep 0.05; done
ip link show tap0 >/dev/null 2>&1 || { echo "no tap0: slirp4netns did not start" >&2; exit 1; }
ip link set lo up
# `ip netns exec` makes / a slave mount: / must be a mount point, as it is in a VM.
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/run"
echo "nameserver 10.0.2.3" > "$R/etc/resolv.conf"
# dpkg without an fsync per file, as Debian's own container images have it: a chroot that
# is thrown away needs no crash safety.
echo force-unsafe-io > "$R/etc/dpkg/dpkg.cfg.d/ms-test-unsafe-io"
[ -s "$R/etc/hosts" ] || printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' > "$R/etc/hosts"
echo "127.0.1.1 $(hostname)" >> "$R/etc/hosts"
# TLS to the registries (pip's and npm's) goes through a certificate this machine trusts
# and a fresh Debian does not (NOTES.md); a real machine needs none of this. Where pip was
# pointed at a bundle (as in such a chroot itself), that one.
install -m 0644 "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$R/etc/host-ca.crt"
run() {
    chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 PIP_CERT=/etc/host-ca.crt REQUESTS_CA_BUNDLE=/etc/host-ca.crt \
        NODE_EXTRA_CA_CERTS=/etc/host-ca.crt npm_config_cafile=/etc/host-ca.crt \
        PIP_DEFAULT_TIMEOUT=180 ${RUN_ENV:-} "$@"
}
"""


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


def update_suites() -> str:
    """sources.list lines for bookworm-updates and bookworm-security from this machine's
    apt (or Debian's own), which an installed Debian has and debootstrap does not add:
    point-release kernels and their headers are there."""
    texts = [p.read_text() for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    lines = []
    for stanza in "\n\n".join(texts).split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        if "deb" not in fields.get("Types", "").split():
            continue
        for suite in fields.get("Suites", "").split():
            if suite in ("bookworm-updates", "bookworm-security"):
                lines.append(f"deb {fields['URIs'].split()[0]} {suite} main")
    return "\n".join(lines) or ("deb http://deb.debian.org/debian bookworm-updates main\n"
                                "deb http://deb.debian.org/debian-security bookworm-security main")


def project_files() -> list[str]:
    """The project as a fresh clone has it, plus uncommitted edits: git's tracked and new
    files (never .venv, build outputs or setup.log, which .gitignore names)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


def copy_project(dest: Path) -> None:
    for f in project_files():
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)


def _pristine_root() -> Path:
    """Debian 12 minbase, debootstrapped once per test run (about 25 s)."""
    with _pristine_lock:
        return _make_pristine()


def _make_pristine() -> Path:
    if "root" not in _pristine:
        base = Path(tempfile.mkdtemp(prefix="ms-debian-", dir="/var/tmp")) / "root"
        # Its own mount namespace too: debootstrap mounts /proc and /sys in the target.
        subprocess.run(["unshare", "--mount", "--propagation", "private", "debootstrap",
                        "--variant=minbase", "bookworm", str(base), debian_mirror()],
                       check=True, capture_output=True, timeout=900)
        _pristine["root"] = base
    return _pristine["root"]


def remove_pristine() -> None:
    """At the end of the run (conftest's session fixture)."""
    base = _pristine.pop("root", None)
    if base is not None:
        shutil.rmtree(base.parent, ignore_errors=True)


@contextmanager
def fresh_debian() -> Iterator[Path]:
    """A Debian 12 root filesystem no test has touched; removed afterwards."""
    pristine = _pristine_root()
    base = Path(tempfile.mkdtemp(prefix="ms-chroot-", dir="/var/tmp"))
    root = base / "root"
    subprocess.run(["cp", "-a", str(pristine), str(root)], check=True)
    try:
        yield root
    finally:
        # Never delete through a mount (a bound /dev): check first, and keep the tree if so.
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(base) not in mounts, f"a mount under {base} outlived its namespace"
        shutil.rmtree(base, ignore_errors=True)


def run_in(root: Path, script: str, *args: str, env: str = "",
           timeout: float = 2400) -> subprocess.CompletedProcess:
    """Run PRELUDE + ``script`` with bash in private mount and network namespaces; $1.. are
    ``args``. ``env``: extra VAR=value words for every `run`."""
    slirp = shutil.which("slirp4netns")
    assert slirp, "slirp4netns (./setup.sh installs it) gives the chroot its network"
    shell = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "env",
                              f"RUN_ENV={env}", "bash", "-c", PRELUDE + script, "in-chroot",
                              str(root), *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # slirp4netns joins the namespace of the pid it is given: only once unshare has made it,
    # or its tap device would land in this machine's own network.
    mine = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + 10
    while True:
        try:
            if os.readlink(f"/proc/{shell.pid}/ns/net") != mine:
                break
        except FileNotFoundError:
            break  # it already ended; communicate() reports how
        assert time.monotonic() < deadline, "unshare did not make a network namespace"
        time.sleep(0.01)
    net = subprocess.Popen([slirp, "--configure", "--mtu=65520", "--disable-host-loopback",
                            str(shell.pid), "tap0"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out, err = shell.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        shell.kill()
        shell.communicate()
        raise
    finally:
        net.terminate()
        net.wait()
    return subprocess.CompletedProcess(shell.args, shell.returncode, out, err)
