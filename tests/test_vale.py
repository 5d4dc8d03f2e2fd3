"""The VALE extension (native/vale/), in a real kernel: ministack_vale.ko is built from the
user-space switch's own rules against Debian's kernel headers and netmap (the pinned
tarball, $MINISTACK_NETMAP_SRC or ../shared/vendor/), then loaded beside netmap.ko in that
Debian kernel booted under QEMU (TCG: KVM here cannot run a stock kernel). There netmap's
own pkt-gen sends on a port of the module's switch, and every frame must get the verdict
explain() gives the same frame in user space.

Needs qemu-system-x86, busybox-static, cpio and linux-headers-amd64 (./setup.sh installs
them), the netmap tarball, and apt's registry (the guest kernel is `apt-get download`ed to
match the headers). No root: building modules and booting under TCG need none."""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import ministack as ms
from ministack import bench

from conftest import need

ROOT = Path(__file__).resolve().parent.parent
MAC, PEER = "02:4d:53:00:00:01", "02:00:00:00:00:09"
FRAMES = 1000


def netmap_tarball() -> Path | None:
    given = os.environ.get("MINISTACK_NETMAP_SRC")
    if given:
        return Path(given)
    found = sorted(glob.glob(str(ROOT.parent / "shared" / "vendor" / "netmap-*.tar.gz")))
    return Path(found[-1]) if found else None


def kernel_headers() -> Path | None:
    """The newest Debian amd64 header tree installed (linux-headers-amd64's)."""
    trees = sorted(p for p in glob.glob("/usr/src/linux-headers-*-amd64") if os.path.isdir(p))
    return Path(trees[-1]) if trees else None


def run(cmd: list[str], cwd: Path | None = None, timeout: int = 600) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """netmap and ministack_vale.ko for the headers' kernel, and that kernel's image."""
    need(shutil.which("qemu-system-x86_64") and shutil.which("cpio")
         and os.path.exists("/bin/busybox"),
         "qemu-system-x86, cpio and busybox-static (./setup.sh installs them)")
    kdir = kernel_headers()
    need(kdir, "Debian's kernel headers, linux-headers-amd64 (./setup.sh installs them)")
    tarball = netmap_tarball()
    need(tarball and tarball.exists(),
         "netmap's source: MINISTACK_NETMAP_SRC=<netmap tarball>, or ../shared/vendor/")
    assert kdir is not None and tarball is not None
    release = kdir.name.removeprefix("linux-headers-")
    tmp = tmp_path_factory.mktemp("vale")
    r = subprocess.run(["apt-get", "download", f"linux-image-{release}"], cwd=tmp,
                       capture_output=True, text=True, timeout=300)
    need(r.returncode == 0, f"apt's registry, for linux-image-{release} ({r.stderr.strip()})")
    (deb,) = tmp.glob("linux-image-*.deb")
    run(["dpkg-deb", "-x", str(deb), str(tmp / "image")])
    run(["tar", "xzf", str(tarball), "-C", str(tmp)])
    (netmap,) = [p for p in tmp.iterdir() if p.name.startswith("netmap")]
    run(["./configure", f"--kernel-dir={kdir}", "--no-drivers"], cwd=netmap)
    run(["make", "-j2"], cwd=netmap, timeout=900)
    run(["make", "-C", str(ROOT / "native"), "vale", f"KDIR={kdir}", f"NETMAP={netmap}"])
    yield {"vmlinuz": next((tmp / "image" / "boot").glob("vmlinuz-*")),
           "netmap.ko": netmap / "netmap.ko",
           "ministack_vale.ko": ROOT / "native" / "build" / "vale" / "ministack_vale.ko",
           "pkt-gen": netmap / "build-apps" / "pkt-gen" / "pkt-gen", "tmp": tmp}


GUEST_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
insmod /mods/netmap.ko && insmod /mods/ministack_vale.ko mac={mac} && echo "=== loaded"
pkt-gen -i valems:p0 -f tx -n {n} -l 64 -S {mac} -D {peer} -s 10.0.0.2:5000 -d 10.0.0.9:9
echo "=== counters"; cat /proc/ministack_vale; echo "=== end"
rmmod ministack_vale && echo "=== removed"
ls /proc/ministack_vale 2>/dev/null || echo "=== gone"
poweroff -f
"""


def boot(built: dict[str, Path], init: str) -> str:
    """Boot the guest kernel on an initramfs of busybox, pkt-gen, the two modules and
    `init`; its console output."""
    root = built["tmp"] / "initramfs"
    shutil.rmtree(root, ignore_errors=True)
    for d in ("bin", "proc", "sys", "dev", "mods"):
        (root / d).mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin")
    shutil.copy(built["pkt-gen"], root / "bin")
    libs = re.findall(r"(/\S+\.so[.\d]*)", run(["ldd", str(built["pkt-gen"])]))
    for lib in libs:
        (root / lib.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lib, root / lib.lstrip("/"))
    for ko in ("netmap.ko", "ministack_vale.ko"):
        shutil.copy(built[ko], root / "mods")
    (root / "init").write_text(init)
    (root / "init").chmod(0o755)
    files = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc"], cwd=root, input=files,
                          capture_output=True, check=True).stdout
    initrd = built["tmp"] / "initrd"
    initrd.write_bytes(cpio)
    r = subprocess.run(["qemu-system-x86_64", "-accel", "tcg", "-smp", "2", "-m", "1024",
                        "-kernel", str(built["vmlinuz"]), "-initrd", str(initrd),
                        "-append", "console=ttyS0 quiet panic=-1", "-nographic",
                        "-no-reboot"], capture_output=True, text=True, timeout=300)
    return r.stdout + r.stderr


def test_the_module_filters_what_a_vale_port_sends_as_explain_does(
        built: dict[str, Path]) -> None:
    out = boot(built, GUEST_INIT.format(mac=MAC, peer=PEER, n=FRAMES))
    assert "=== loaded" in out, out[-3000:]
    counters = out.split("=== counters")[1].split("=== end")[0]
    got = dict((reason, int(n)) for port, reason, n in re.findall(r"^(\d+) (\S+) (\d+)\r?$",
                                                                  counters, re.M))
    # The same frame in user space: a switch with the module's MAC and no binding (the
    # module cannot be given one yet), the frame pkt-gen built from the same fields.
    with ms.Switch(mac=MAC, addresses=["192.0.2.1"]) as sw:
        sw.port("p0")
        v = sw.explain("p0", bench.udp_frame(MAC, "10.0.0.2", "10.0.0.9", 5000, 9,
                                             dst_mac=PEER))
    assert v.action == "drop", v
    assert got == {v.reason: FRAMES}, (got, v, counters)
    # Removed with a port just closed: netmap is back to its own lookup, the file is gone.
    assert "=== removed" in out and "=== gone" in out, out[-3000:]
