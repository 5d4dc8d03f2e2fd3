"""`ministack doctor`: what works on this machine and what does not, each with the reason and
the command that fixes it.

Every check does the thing for real where it can: a frame crosses the virtual wire, a
datagram from a peer namespace's kernel reaches a port over a veth pair through AF_PACKET
and through XDP in native and in generic mode, a fuzz target links. What needs root is
only reported as such when doctor runs without it.

A check's status is one of:

- ``ok``: works;
- ``missing``: something this distribution has is not installed (the fix installs it);
- ``broken``: installed, but it does not work here (the detail says what failed);
- ``unavailable``: this distribution has no package for it (nothing to install);
- ``needs-root``: cannot be checked without root (run doctor with sudo);
- ``optional``: works without it, and could be set up here (the fix does it): the VALE
  kernel switch, which needs netmap built for this kernel.

The exit status is 1 when any check is ``missing`` or ``broken``, else 0.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FAILING = ("missing", "broken")
# Capabilities a real interface needs: raw sockets, XDP and tc filters, the BPF program, and
# setns() for namespaces (CAP_SYS_ADMIN also stands in for CAP_BPF on older kernels).
CAPS = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21, "CAP_BPF": 39}
LAB_MODULES = ["jupyterlab", "ipywidgets", "ipykernel", "bokeh", "jupyter_bokeh", "scapy", "voila"]
TEST_MODULES = ["pytest", "hypothesis", "nbclient", "playwright"]


@dataclass
class Check:
    """One line of the report.

    >>> Check("lab", "missing", "jupyterlab is not installed", "./setup.sh").failing
    True
    """

    name: str
    status: str
    detail: str
    fix: str | None = None

    @property
    def failing(self) -> bool:
        return self.status in FAILING


# --- what the distribution has ----------------------------------------------------------


def apt_candidates(packages: list[str]) -> dict[str, str | None]:
    """The version apt would install of each package, or None (not in this distribution,
    or no apt). One apt-cache call: each costs about half a second."""
    if shutil.which("apt-cache") is None or not packages:
        return dict.fromkeys(packages)
    out = subprocess.run(["apt-cache", "policy", *packages], capture_output=True,
                         text=True).stdout
    blocks = re.split(r"^(\S+):$", out, flags=re.M)[1:]
    found = {name: re.search(r"Candidate:\s*(\S+)", body)
             for name, body in zip(blocks[::2], blocks[1::2])}
    return {p: m.group(1) if (m := found.get(p)) and m.group(1) != "(none)" else None
            for p in packages}


def apt_candidate(package: str) -> str | None:
    """apt_candidates() of one package."""
    return apt_candidates([package])[package]


def installed(package: str) -> bool:
    """Whether dpkg has ``package`` installed (False without dpkg)."""
    if shutil.which("dpkg") is None:
        return False
    return subprocess.run(["dpkg", "-s", package], capture_output=True).returncode == 0


def sudo() -> str:
    return "" if os.geteuid() == 0 else "sudo "


def setup_cmd() -> str:
    """How to rerun the set-up from wherever the user is."""
    setup = ROOT / "setup.sh"
    if not os.path.exists(setup):  # False, not an error, where this user cannot look
        return "pip install 'ministack[lab,test]'"
    rel = os.path.relpath(setup)
    return rel if rel.startswith(".") else f"./{rel}"


def doctor_cmd() -> str:
    """This command, as root."""
    exe = os.path.join(os.path.dirname(sys.executable), "ministack")
    return f"sudo {exe if os.path.exists(exe) else 'ministack'} doctor"  # False if unreadable


def apt_fix(*packages: str) -> str:
    return f"{sudo()}apt-get install {' '.join(packages)}"


def missing_or_unavailable(what: str, packages: list[str], then_setup: bool = False) -> Check:
    """A check for something that is not there: ``missing`` with the apt command when the
    distribution has every package, else ``unavailable``."""
    lacking = [p for p in packages if apt_candidate(p) is None]  # only when something is absent
    if lacking:
        return Check(what, "unavailable", f"this distribution has no {', '.join(lacking)}")
    fix = apt_fix(*packages) + (f", then {setup_cmd()}" if then_setup else "")
    return Check(what, "missing", f"not installed: {', '.join(packages)}", fix)


def capabilities() -> set[str]:
    """The effective capabilities of this process, by name (of those doctor cares about)."""
    from ministack.credentials import effective_capabilities, process_status

    eff = effective_capabilities(process_status())
    return {name for name, bit in CAPS.items() if eff >> bit & 1}


def lacking_capabilities() -> list[str]:
    """What this process lacks of what a real interface needs ([] for root)."""
    have = capabilities()
    lacking = [c for c in ("CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN") if c not in have]
    if "CAP_BPF" not in have and "CAP_SYS_ADMIN" not in have:
        lacking.append("CAP_BPF")
    return lacking


def privileged() -> bool:
    return not lacking_capabilities()


# --- the checks -------------------------------------------------------------------------


def check_virtual() -> Check:
    import ministack as ms
    from ministack.bench import udp_frame

    name = "virtual NIC"
    try:
        with ms.Switch(nic="virtual", addresses=["10.0.0.2"]) as sw:
            p = sw.port("doctor")
            p.bind("10.0.0.2", "udp", 40000)
            out = udp_frame(sw.mac, "10.0.0.2", "10.0.0.1", 40000, 9)
            p.send(out)
            sent = sw.wire.capture(timeout=1.0)
            back = udp_frame("02:00:00:00:00:01", "10.0.0.1", "10.0.0.2", 9, 40000,
                             dst_mac=sw.mac)
            sw.wire.inject(back)
            got = p.recv(timeout=1.0)
    except Exception as e:  # noqa: BLE001 - a report, not a crash
        return Check(name, "broken", f"{type(e).__name__}: {e}", f"reinstall: {setup_cmd()}")
    if sent != [out] or got != back:
        return Check(name, "broken", f"frames lost on the in-memory wire (out: {len(sent)}, "
                     f"in: {got is not None})", f"reinstall: {setup_cmd()}")
    return Check(name, "ok", "a frame crossed the in-memory wire each way (no root needed)")


STEER_OBJ = Path(__file__).resolve().parent / "ministack_steer.bpf.o"


# Where bpf_plugin.c looks for the BPF plugin (MINISTACK_BPF_PLUGIN overrides it).
BPF_PLUGIN = Path(os.environ.get("MINISTACK_BPF_PLUGIN")
                  or Path(__file__).resolve().parent / "libms_bpf.so")


def afxdp_status() -> tuple[bool, str]:
    """Whether this install's BPF plugin (the AF_XDP backend and AF_PACKET's steering) can
    be used here, and if not, why."""
    from ministack.rings import afxdp_available

    ok, why = afxdp_available()
    if not ok:
        return False, why
    try:
        STEER_OBJ.stat()
    except FileNotFoundError:
        return False, f"its steering program {STEER_OBJ} is missing: reinstall MiniStack"
    except OSError:
        pass  # there, but not this user's to read (root's install): root is who uses it
    return True, ""


def check_afxdp_built() -> Check:
    name = "BPF built in"
    ok, why = afxdp_status()
    if ok:
        versions = []
        for lib_name in ("libxdp", "libbpf") if shutil.which("pkg-config") else ():
            r = subprocess.run(["pkg-config", "--modversion", lib_name], capture_output=True,
                               text=True)
            if r.returncode == 0:
                versions.append(f"{lib_name} {r.stdout.strip()}")
        return Check(name, "ok", f"built with {', '.join(versions) or 'libxdp and libbpf'}; "
                     f"steering program {STEER_OBJ.name} (AF_XDP, and AF_PACKET's tc ingress)")
    if BPF_PLUGIN.exists():
        # Built (a wheel, say), but the libraries it needs are not on this machine.
        check = missing_or_unavailable(name, ["libxdp1", "libbpf1"])
        check.detail = f"{why}; real interfaces cannot be used (AF_XDP and AF_PACKET need it)"
        return check
    absent = [p for p in ("libxdp-dev", "libbpf-dev", "clang", "llvm") if not installed(p)]
    if not absent:
        return Check(name, "missing", "libxdp, libbpf and clang are installed, but MiniStack "
                     "was built before they were", f"rebuild: {setup_cmd()}")
    check = missing_or_unavailable(name, absent, then_setup=True)
    check.detail += (": MiniStack was built without BPF; real interfaces cannot be used "
                     "(AF_XDP and AF_PACKET need it), the virtual NIC can")
    return check


def check_privileges() -> Check:
    name = "root / capabilities"
    have, lacking = capabilities(), lacking_capabilities()
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    if not lacking:
        return Check(name, "ok", f"{who}, with {', '.join(sorted(have))}: real interfaces, "
                     f"namespaces and XDP can be used")
    return Check(name, "needs-root", f"{who}, without {', '.join(lacking)}: a real interface "
                 f"(AF_XDP, AF_PACKET), namespaces and the daemon need root; the virtual NIC "
                 f"does not", doctor_cmd())


SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(100):  # until doctor has one (it kills us), 5 s at most
    s.sendto(b"ministack doctor", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.05)
"""


@contextmanager
def scratch_topology() -> Iterator[Any]:
    """A peer namespace and a veth pair of doctor's own, in 198.18.0.0/15 (the range kept
    for benchmarks, RFC 2544), removed afterwards."""
    import ministack as ms

    n = os.getpid() % 250
    tag = f"{os.getpid() % 100000}"
    topo = ms.Topology(ns=f"ms-doctor-{tag}", host_if=f"msdr{tag}h", peer_if=f"msdr{tag}p",
                       host_addrs=[f"198.18.{n}.2/24"], peer_addrs=[f"198.18.{n}.1/24"])
    with topo:
        yield topo


def deliver(topo: Any, backend: str, xdp_mode: str | None = None) -> str:
    """Attach a switch with ``backend``, bind a UDP port, have the peer's kernel send to it;
    returns what the switch said about its XDP mode. Raises when nothing arrives."""
    import ministack as ms

    old = os.environ.get("MINISTACK_XDP_MODE")
    if xdp_mode:
        os.environ["MINISTACK_XDP_MODE"] = xdp_mode
    try:
        with ms.Switch(nic=topo.host_if, backend=backend) as sw:
            p = sw.port("doctor")
            p.bind(topo.host_ips[0], "udp", 40000)
            sender = subprocess.Popen(["ip", "netns", "exec", topo.ns, sys.executable, "-c",
                                       SEND, topo.host_ips[0], "40000"],
                                      stderr=subprocess.PIPE, text=True)
            try:
                got = p.recv(timeout=5.0)  # ARP first; a loaded machine is slow
            finally:
                sender.kill()
                sender.wait()
            if got is None or b"ministack doctor" not in got:
                raise RuntimeError(f"no datagram from the peer namespace reached a port "
                                   f"within 5 s (nic stats: {sw.stats()['nic']})")
            if not sw.stats()["nic"]["kept-from-host"]["frames"]:
                raise RuntimeError("a datagram reached the port, but the kernel's steering "
                                   "program did not keep it from the host stack")
            return getattr(sw, "xdp_mode", None) or ""
    finally:
        if xdp_mode:
            if old is None:
                os.environ.pop("MINISTACK_XDP_MODE", None)
            else:
                os.environ["MINISTACK_XDP_MODE"] = old


def check_real_interfaces(afxdp_built: bool) -> list[Check]:
    """Namespaces, AF_PACKET and XDP on a veth: one scratch topology for all three."""
    names = ("network namespaces", "AF_PACKET on a veth", "XDP on a veth")
    if not privileged():
        return [Check(n, "needs-root", "needs root to create a namespace and a veth pair",
                      doctor_cmd()) for n in names]
    if shutil.which("ip") is None:
        return [missing_or_unavailable(n, ["iproute2"]) for n in names]
    try:
        with scratch_topology() as topo:
            return [Check(names[0], "ok", f"created namespace {topo.ns} and a veth pair into "
                          f"it"),
                    check_afpacket(names[1], topo, afxdp_built),
                    check_xdp(names[2], topo, afxdp_built)]
    except Exception as e:  # noqa: BLE001 - the checks inside catch their own
        return [Check(names[0], "broken", f"could not create a namespace and a veth pair: "
                      f"{e}", "a kernel with network namespaces and veth (CONFIG_NET_NS, "
                      "CONFIG_VETH)")] + [
            Check(n, "broken", "not tried: no namespace") for n in names[1:]]


def check_afpacket(name: str, topo: Any, bpf_built: bool) -> Check:
    if not bpf_built:
        return Check(name, "unavailable", "BPF is not built in (above): AF_PACKET's steering "
                     "program keeps bound flows from the host stack")
    try:
        deliver(topo, "afpacket")
    except Exception as e:  # noqa: BLE001
        return Check(name, "broken", f"{type(e).__name__}: {e}")
    return Check(name, "ok", "a datagram from the peer namespace's kernel reached a port; "
                 "the steering program at tc ingress kept it from the host stack")


def check_xdp(name: str, topo: Any, afxdp_built: bool) -> Check:
    """Native and generic mode each: either one is enough for the AF_XDP backend."""
    if not afxdp_built:
        return Check(name, "unavailable", "BPF is not built in (above)")
    modes, why = [], []
    for mode in ("native", "generic"):
        try:
            modes.append(deliver(topo, "afxdp", mode) or mode)
        except Exception as e:  # noqa: BLE001
            why.append(f"{mode}: {e}")
    if not modes:
        return Check(name, "broken", "; ".join(why),
                     "a kernel with XDP and AF_XDP (CONFIG_XDP_SOCKETS)")
    detail = (f"{' and '.join(modes)} XDP attached; a datagram from the peer namespace's "
              f"kernel reached a port through AF_XDP")
    return Check(name, "ok", detail + (f" (not {'; '.join(why)})" if why else ""))


def check_vale() -> Check:
    """The VALE kernel switch (backend="vale"): in use here, or whether netmap and
    ministack_vale could be built and loaded for this kernel."""
    from ministack import vale
    from ministack.errors import MiniStackError

    name = "VALE kernel switch"
    release = platform.release()
    ok, why = vale.available()
    if ok:
        try:
            fd, _, _ = vale.open_port("doctor")  # for real: netmap and the module answer
            os.close(fd)
        except MiniStackError as e:
            return Check(name, "broken", str(e), "rmmod ministack_vale netmap, then "
                         f"{setup_cmd()} --netmap")
        nic = vale.attached_nic()
        return Check(name, "ok", f"ministack_vale is loaded ({'on ' + nic if nic else 'no NIC'})"
                     f" and a port of {vale.SWITCH} opens: backend='vale' works")
    if vale.attached_nic() is not None and os.path.exists(vale.DEVICE):
        return Check(name, "needs-root", why, doctor_cmd())   # loaded; /dev/netmap is root's
    if not os.path.exists("/proc/modules"):
        return Check(name, "unavailable", f"this kernel ({release}) cannot load modules, so "
                     f"neither netmap nor ministack_vale; the user-space switch needs neither")
    headers = os.path.isdir(f"/lib/modules/{release}/build")
    if not headers and apt_candidate(f"linux-headers-{release}") is None:
        return Check(name, "unavailable", f"no headers for this kernel ({release}) here or "
                     f"in apt, so netmap cannot be built for it")
    return Check(name, "optional", f"{why}; netmap and the module can be built for this "
                 f"kernel ({release}; its headers are {'installed' if headers else 'in apt'})",
                 f"{setup_cmd()} --netmap")


def check_chromium() -> Check:
    name = "chromium (browser test)"
    if os.path.exists("/usr/bin/chromium"):
        r = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True)
        if r.returncode == 0:
            return Check(name, "ok", r.stdout.strip())
        return Check(name, "broken", f"/usr/bin/chromium --version failed: "
                     f"{(r.stderr or r.stdout).strip()[:200]}", apt_fix("--reinstall", "chromium"))
    found = sorted(Path.home().glob(".cache/ms-playwright/chromium-*"))
    if found:
        return Check(name, "ok", f"Playwright's {found[-1].name}")
    # Debian's package where it is real; Ubuntu's is a snap wrapper (setup.sh knows).
    osid = _os_release().get("ID", "")
    if osid == "debian" and apt_candidate("chromium"):
        return Check(name, "missing", "/usr/bin/chromium is not installed", apt_fix("chromium"))
    return Check(name, "unavailable", "no chromium package to use here and Playwright's "
                 "download is not present (setup.sh tries it)",
                 f"{sys.executable} -m playwright install --with-deps chromium")


def check_lab() -> Check:
    name = "the lab"
    lacking = [m for m in LAB_MODULES if importlib.util.find_spec(m) is None]
    if lacking:
        return Check(name, "missing", f"not installed: {', '.join(lacking)}", setup_cmd())
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        return Check(name, "broken", "no python3 Jupyter kernel", setup_cmd())
    labs = sorted((ROOT / "labs" / "release").glob("*/*.ipynb"))
    where = f"{len(labs)} labs in {ROOT / 'labs'}" if labs else "no labs/release/ next " \
        "to the package ('ministack lab --dir DIR' then)"
    import jupyterlab

    return Check(name, "ok", f"JupyterLab {jupyterlab.__version__}, ipywidgets, bokeh, "
                 f"jupyter_bokeh; {where}")


def check_course() -> Check:
    """What an instructor needs: nbgrader to grade, JupyterHub and its proxy to serve a
    class (ministack course serve). Nothing of it on a student's install is not a fault."""
    from ministack.course import proxy_command

    name = "grading and the class server"
    have = {"nbgrader": importlib.util.find_spec("nbgrader") is not None,
            "jupyterhub": importlib.util.find_spec("jupyterhub") is not None,
            "configurable-http-proxy": proxy_command() is not None}
    lacking = [k for k, ok in have.items() if not ok]
    if not lacking:
        import jupyterhub
        import nbgrader

        return Check(name, "ok", f"nbgrader {nbgrader.__version__}, JupyterHub "
                     f"{jupyterhub.__version__}, configurable-http-proxy")
    fix = " && ".join(
        ([f"pip install 'ministack[course]'"] if {"nbgrader", "jupyterhub"} & set(lacking)
         else []) +
        ([f"npm install --prefix {sys.prefix} configurable-http-proxy"]
         if "configurable-http-proxy" in lacking else []))
    if len(lacking) == len(have):
        return Check(name, "unavailable", "not installed (only instructors need them)", fix)
    return Check(name, "missing", f"not installed: {', '.join(lacking)}", fix)


FUZZ_TARGET = "#include <stddef.h>\n#include <stdint.h>\n" \
    "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n"


def check_lwip() -> Check:
    """ms-lwip-echo, lwIP on a port: built, and its shared library loads."""
    name = "lwIP on a port"
    exe = Path(__file__).resolve().parent / "ms-lwip-echo"
    try:
        built = exe.exists()
        r = subprocess.run([str(exe)], capture_output=True, text=True) if built else None
    except OSError as e:  # a checkout this user may not read (root's home)
        return Check(name, "unavailable", f"this user cannot run {exe}: {e.strerror}")
    if r is not None:
        if "usage:" in r.stderr:
            return Check(name, "ok", "ministack lwip-echo is built with Debian's lwIP and runs")
        return Check(name, "broken", f"ms-lwip-echo does not start: {r.stderr.strip()[:200]}",
                     f"rebuild: {setup_cmd()}")
    if installed("liblwip-dev"):
        return Check(name, "missing", "liblwip-dev is installed, but MiniStack was built "
                     "before it was", f"rebuild: {setup_cmd()}")
    return missing_or_unavailable(name, ["liblwip-dev"], then_setup=True)


def check_test_tools() -> Check:
    name = "test tools"
    problems, fixes = [], []
    lacking = [m for m in TEST_MODULES if importlib.util.find_spec(m) is None]
    if lacking:
        problems.append(f"Python packages {', '.join(lacking)}")
        fixes.append(setup_cmd())
    tools = {"tcpdump": "tcpdump", "tshark": "tshark", "debootstrap": "debootstrap",
             "unshare": "util-linux", "slirp4netns": "slirp4netns", "clang": "clang",
             "make": "make", "git": "git"}
    if shutil.which("clang-19") or apt_candidate("clang-19"):
        tools["clang-19"] = "clang-19"
    absent = [pkg for tool, pkg in tools.items() if shutil.which(tool) is None]
    if absent:
        problems.append(f"programs from {', '.join(absent)}")
        fixes.append(apt_fix(*absent))
    if shutil.which("clang") and not absent:
        with tempfile.TemporaryDirectory(prefix="ms-doctor-") as d:
            src = Path(d) / "t.c"
            src.write_text(FUZZ_TARGET)
            r = subprocess.run(["clang", "-fsanitize=fuzzer,address,undefined", str(src), "-o",
                                str(Path(d) / "t")], capture_output=True, text=True)
        if r.returncode != 0:
            major = subprocess.run(["clang", "-dumpversion"], capture_output=True,
                                   text=True).stdout.split(".")[0]
            problems.append(f"clang cannot link a libFuzzer target "
                            f"({r.stderr.strip().splitlines()[-1][:120] if r.stderr else ''})")
            fixes.append(apt_fix(f"libclang-rt-{major}-dev"))
    if problems:
        return Check(name, "missing", "not installed: " + "; ".join(problems), "; ".join(fixes))
    return Check(name, "ok", f"pytest, hypothesis, nbclient, playwright; "
                 f"{', '.join(sorted(tools))}; clang links a libFuzzer target")


def _os_release() -> dict[str, str]:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return {}
    return {k: v.strip('"') for k, v in re.findall(r'^(\w+)=(.*)$', text, re.M)}


def run_checks(progress: Callable[[Check], None] | None = None) -> list[Check]:
    """Every check, in the report's order."""
    checks: list[Check] = []

    def add(c: Check) -> None:
        checks.append(c)
        if progress:
            progress(c)

    add(check_virtual())
    built = check_afxdp_built()
    add(built)
    add(check_privileges())
    for c in check_real_interfaces(built.status == "ok"):
        add(c)
    add(check_lwip())
    add(check_vale())
    add(check_chromium())
    add(check_lab())
    add(check_course())
    add(check_test_tools())
    return checks


def system_line() -> str:
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    osname = _os_release().get("PRETTY_NAME", platform.system())
    return f"{osname}, kernel {platform.release()}, {platform.machine()}, as {who}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ministack doctor", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    args = ap.parse_args(argv)
    start = time.monotonic()
    if args.json:
        checks = run_checks()
    else:
        print(f"MiniStack doctor: {system_line()}", flush=True)
        checks = run_checks(_print)
    bad = [c for c in checks if c.failing]
    if args.json:
        print(json.dumps({"ok": not bad, "system": system_line(),
                          "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(summary(checks, time.monotonic() - start))
    return 1 if bad else 0


def summary(checks: list[Check], seconds: float) -> str:
    """The report's last line.

    >>> summary([Check("a", "ok", ""), Check("b", "missing", "", "fix")], 1.0)
    '1 of 2 need attention: the fix is under each (1.0 s)'
    """
    n = {s: sum(c.status == s for c in checks) for s in
         ("ok", "missing", "broken", "unavailable", "needs-root", "optional")}
    bad = n["missing"] + n["broken"]
    if bad:
        return f"{bad} of {len(checks)} need attention: the fix is under each ({seconds:.1f} s)"
    line = f"nothing missing or broken: {n['ok']} of {len(checks)} ok"
    if n["unavailable"]:
        line += f", {n['unavailable']} not available here (the detail says why)"
    if n["optional"]:
        line += f", {n['optional']} optional, not set up (its fix sets it up)"
    if n["needs-root"]:
        line += f", {n['needs-root']} not checked without root ({doctor_cmd()} checks them)"
    return f"{line} ({seconds:.1f} s)"


def _print(c: Check) -> None:
    label = c.status.upper() if c.failing else c.status
    print(f"  {label:<12} {c.name:<24} {c.detail}", flush=True)
    if c.fix and c.status not in ("ok", "needs-root"):
        print(f"  {'':<12} {'':<24} fix: {c.fix}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
