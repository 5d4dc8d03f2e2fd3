"""`ministack doctor`: each check done for real, the verdicts a user sees without root, and
the fix it names when something is missing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import NOBODY, as_user, need_root
from ministack import doctor

NAMES = ["virtual NIC", "BPF built in", "root / capabilities",
         "network namespaces", "AF_PACKET on a veth", "XDP on a veth",
         "lwIP on a port", "VALE kernel switch", "chromium (browser test)", "the lab",
         "grading and the class server", "test tools"]
ROOT_ONLY = ["root / capabilities", "network namespaces", "AF_PACKET on a veth",
             "XDP on a veth"]


def netns_and_links() -> tuple[str, list[str]]:
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return ns, sorted(os.listdir("/sys/class/net"))


def test_doctor_as_root_finds_everything_setup_installs_working() -> None:
    """On a machine where ./setup.sh ran (CI's), every check passes: AF_XDP is built, XDP
    attaches on a veth in native and generic mode, and nothing is left behind."""
    need_root()
    before = netns_and_links()
    r = subprocess.run([sys.executable, "-m", "ministack", "doctor", "--json"],
                       capture_output=True, text=True, timeout=300)
    report = json.loads(r.stdout)
    by_name = {c["name"]: c for c in report["checks"]}
    assert list(by_name) == NAMES
    assert r.returncode == 0 and report["ok"], json.dumps(report, indent=1)
    # The VALE switch needs a kernel that loads modules; these machines' cannot (its test
    # boots Debian's under QEMU, and runs this check there).
    vale = by_name["VALE kernel switch"]
    if not os.path.exists("/proc/modules"):
        assert vale["status"] == "unavailable" and "cannot load modules" in vale["detail"]
    others = [c for c in report["checks"] if c is not vale]
    assert all(c["status"] == "ok" for c in others), json.dumps(report, indent=1)
    assert "libxdp" in by_name["BPF built in"]["detail"]
    assert by_name["XDP on a veth"]["detail"].startswith("native and generic XDP attached")
    assert netns_and_links() == before, "doctor left a namespace or an interface behind"


def test_doctor_text_report_ends_with_a_verdict() -> None:
    r = subprocess.run([sys.executable, "-m", "ministack", "doctor"], capture_output=True,
                       text=True, timeout=300)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("MiniStack doctor: ") and "kernel" in lines[0]
    for name in NAMES:
        assert any(name in line for line in lines), (name, r.stdout)
    assert lines[-1].startswith("nothing missing or broken") == (r.returncode == 0), r.stdout


def test_without_root_the_privileged_checks_say_so_and_do_not_fail() -> None:
    """An ordinary user's doctor: the virtual NIC works, the root-only checks are
    'needs-root' (with the sudo command in the last line), and that is not a failure."""
    # What the checks import is read now: this machine's Python may live where nobody
    # cannot read (root's home).
    for check in (doctor.check_virtual, doctor.check_lab, doctor.check_course,
                  doctor.check_test_tools):
        check()
    got = as_user(NOBODY, lambda: [doctor.asdict(c) for c in doctor.run_checks()])
    assert "ok" in got, got
    checks = {c["name"]: c for c in got["ok"]}
    assert list(checks) == NAMES
    assert checks["virtual NIC"]["status"] == "ok"
    for name in ROOT_ONLY:
        assert checks[name]["status"] == "needs-root", checks[name]
        assert "sudo" in checks[name]["fix"] and "doctor" in checks[name]["fix"]
    assert "uid 65534" in checks["root / capabilities"]["detail"]
    # Where nobody can read this checkout (a clone in root's home), its lab and browser are
    # rightly not there for nobody; elsewhere (CI's) nothing is missing for an ordinary user.
    readable = as_user(NOBODY, lambda: os.access(doctor.ROOT / "setup.sh", os.R_OK))["ok"]
    seen = [doctor.Check(**c) for c in got["ok"]
            if readable or c["name"] in ROOT_ONLY + ["virtual NIC"]]
    line = doctor.summary(seen, 1.0)
    assert line.startswith("nothing missing or broken"), got["ok"]
    assert "not checked without root" in line and "sudo" in line


def test_what_is_missing_comes_with_the_command_that_installs_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Take things away one at a time (in this process only) and read the report."""
    # The lab without jupyter_bokeh.
    real_find = doctor.importlib.util.find_spec
    monkeypatch.setattr(doctor.importlib.util, "find_spec",
                        lambda m, *a: None if m == "jupyter_bokeh" else real_find(m, *a))
    lab = doctor.check_lab()
    assert (lab.status, lab.fix) == ("missing", doctor.setup_cmd())
    assert "jupyter_bokeh" in lab.detail
    monkeypatch.undo()

    # Built with AF_XDP (a wheel), on a machine without libxdp: the reason, and the
    # runtime libraries to install.
    monkeypatch.setattr(doctor, "afxdp_status",
                        lambda: (False, "the AF_XDP backend does not load: libxdp.so.1: "
                                        "cannot open shared object file"))
    monkeypatch.setattr(doctor, "BPF_PLUGIN", tmp_path)  # exists
    monkeypatch.setattr(doctor, "apt_candidate", lambda p: "1.0-1")
    c = doctor.check_afxdp_built()
    assert c.status == "missing" and "libxdp1" in c.fix and "libxdp.so.1" in c.detail, c
    # AF_XDP left out of the build, on a distribution that has libxdp.
    monkeypatch.setattr(doctor, "BPF_PLUGIN", tmp_path / "nothing-here.so")
    monkeypatch.setattr(doctor, "installed", lambda p: False)
    monkeypatch.setattr(doctor, "apt_candidate", lambda p: "1.0-1")
    c = doctor.check_afxdp_built()
    assert c.status == "missing" and "libxdp-dev" in c.fix and "setup.sh" in c.fix, c
    assert "apt-get install libxdp-dev libbpf-dev clang llvm, then " in c.fix, c
    # ... installed since, but the build predates it: rebuilding is the fix.
    monkeypatch.setattr(doctor, "installed", lambda p: True)
    c = doctor.check_afxdp_built()
    assert c.status == "missing" and c.fix == f"rebuild: {doctor.setup_cmd()}", c
    # ... on a distribution without libxdp: nothing to install, not a failure.
    monkeypatch.setattr(doctor, "installed", lambda p: p != "libxdp-dev")
    monkeypatch.setattr(doctor, "apt_candidate", lambda p: None if p == "libxdp-dev" else "1")
    c = doctor.check_afxdp_built()
    assert c.status == "unavailable" and not c.failing and "libxdp-dev" in c.detail, c

    # Chromium absent on Debian, where apt has it.
    monkeypatch.setattr(doctor.os.path, "exists",
                        lambda p: False if p == "/usr/bin/chromium" else os.path.lexists(p))
    monkeypatch.setattr(doctor.Path, "home", lambda: tmp_path)
    monkeypatch.setattr(doctor, "_os_release", lambda: {"ID": "debian"})
    monkeypatch.setattr(doctor, "apt_candidate", lambda p: "150.0-1")
    c = doctor.check_chromium()
    assert c.status == "missing" and c.fix.endswith("apt-get install chromium"), c

    # One missing check makes the exit status 1, and the fix is printed under it.
    monkeypatch.setattr(doctor, "run_checks", lambda progress=None: [
        progress(x) or x for x in (doctor.Check("virtual NIC", "ok", "fine"), c)])
    assert doctor.main([]) == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and "fix: " in out and "apt-get install chromium" in out
    assert out.splitlines()[-1].startswith("1 of 2 need attention")


def test_course_check_is_quiet_on_a_students_install_and_names_what_an_instructor_lacks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_find = doctor.importlib.util.find_spec
    import ministack.course

    monkeypatch.setattr(ministack.course, "proxy_command", lambda: None)
    c = doctor.check_course()
    assert c.status == "missing" and c.failing, c
    assert "configurable-http-proxy" in c.detail and "npm install --prefix" in c.fix, c
    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda m, *a:
                        None if m in ("nbgrader", "jupyterhub") else real_find(m, *a))
    c = doctor.check_course()
    assert c.status == "unavailable" and not c.failing, c
    assert "ministack[course]" in c.fix, c


def test_the_vale_check_says_whether_netmap_could_be_set_up_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the module is not loaded: optional (with the command that sets it up) where
    this kernel loads modules and its headers can be had, unavailable where not. The 'ok'
    verdict is checked in the guest of tests/test_vale.py, where the module is loaded."""
    from ministack import vale

    monkeypatch.setattr(vale, "available", lambda nic=None: (False, "not built with netmap"))
    monkeypatch.setattr(vale, "attached_nic", lambda: None)
    real_exists = os.path.exists
    monkeypatch.setattr(doctor.os.path, "exists",
                        lambda p: True if p == "/proc/modules" else real_exists(p))
    monkeypatch.setattr(doctor.os.path, "isdir", lambda p: False)   # no headers installed
    monkeypatch.setattr(doctor, "apt_candidate", lambda p: "6.1.0-57")
    c = doctor.check_vale()
    assert (c.status, c.fix) == ("optional", f"{doctor.setup_cmd()} --netmap"), c
    assert not c.failing and "not built with netmap" in c.detail and "in apt" in c.detail, c
    line = doctor.summary([doctor.Check("a", "ok", ""), c], 1.0)
    assert "1 optional, not set up" in line and line.startswith("nothing missing"), line
    monkeypatch.setattr(doctor, "apt_candidate", lambda p: None)
    c = doctor.check_vale()
    assert c.status == "unavailable" and "no headers for this kernel" in c.detail, c
    monkeypatch.setattr(doctor.os.path, "exists",
                        lambda p: False if p == "/proc/modules" else real_exists(p))
    c = doctor.check_vale()
    assert c.status == "unavailable" and "cannot load modules" in c.detail, c
