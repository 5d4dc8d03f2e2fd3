"""The shell commands a student runs first."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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
    assert "demo: 10 of 10 checks passed" in out and "✗" not in out


def test_demo_on_the_virtual_nic() -> None:
    r = run("demo", "--virtual")
    assert r.returncode == 0, r.stderr
    check_demo(r.stdout)


@pytest.mark.usefixtures("root")
def test_demo_in_a_peer_namespace_cleans_up() -> None:
    r = run("demo")
    assert r.returncode == 0, r.stderr
    check_demo(r.stdout)
    assert "peer namespace ms-demo" in r.stdout and "the peer's kernel received" in r.stdout
    assert "ms-demo0" not in os.listdir("/sys/class/net")
    assert "ms-demo" not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                           text=True).stdout


def lab_listing(args: list[str], env: dict[str, str], path: str = "") -> dict:
    """Start `ministack lab` with args, and return JupyterLab's listing of path."""
    import json
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(CMD + ["lab", "--no-browser", "--port", str(port), *args], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.startswith("MiniStack lab: open http://localhost:"), line
        assert line.rstrip().endswith("token=0123456789abcdef")
        url = line.split("open ", 1)[1].strip().replace("/lab?", f"/api/contents/{path}?")
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    return json.loads(r.read().decode())
            except OSError:
                assert time.monotonic() < deadline, "JupyterLab did not come up"
                time.sleep(0.5)
    finally:
        p.terminate()
        p.wait(30)


def test_lab_opens_a_copy_of_the_student_versions_and_prints_the_url() -> None:
    import tempfile

    work = tempfile.mkdtemp(prefix="ministack-labs-")
    # The course VM's service fixes the token through the environment, as Jupyter does.
    env = dict(os.environ, JUPYTER_TOKEN="0123456789abcdef", MINISTACK_LABS=work)
    try:
        listing = lab_listing([], env)
        names = sorted(c["name"] for c in listing["content"])
        release = Path(__file__).resolve().parent.parent / "labs" / "release"
        assert names == sorted(p.name for p in release.glob("*/*.ipynb")), names
        # The student versions, copied where the student's work stays.
        copied = (Path(work) / "01-ports-and-the-switch.ipynb").read_text()
        assert "YOUR CODE HERE" in copied and "BEGIN SOLUTION" not in copied
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_lab_solutions_opens_the_instructors_versions() -> None:
    env = dict(os.environ, JUPYTER_TOKEN="0123456789abcdef")
    nb = lab_listing(["--solutions"], env,
                     "01-ports-and-the-switch/01-ports-and-the-switch.ipynb")
    assert "### BEGIN SOLUTION" in json.dumps(nb["content"]), "not the instructor's version"


def test_student_labs_copy_flat_and_never_over_a_students_work(tmp_path: Path) -> None:
    from ministack.course import release_notebooks, student_labs

    release = Path(__file__).resolve().parent.parent / "labs" / "release"
    work = tmp_path / "labs"
    first = student_labs(release_notebooks(release), work)
    assert first == sorted(p.name for p in release.glob("*/*.ipynb"))
    (work / first[0]).write_text("a student's answers")
    (work / first[1]).unlink()   # a lab the course adds later arrives on the next run
    assert student_labs(release_notebooks(release), work) == [first[1]]
    assert (work / first[0]).read_text() == "a student's answers"


def test_ci_and_the_vm_run_exactly_the_readmes_setup_and_test_commands() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    blocks = readme.split("```sh\n")[1:]
    commands = [b.split("```")[0].strip() for b in blocks]
    setup, test = commands[0], next(c for c in commands if "pytest" in c)
    ci = [line.strip() for line in (root / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#")]
    assert setup == "./setup.sh" and setup in ci
    assert test in ci
    # The course VM builds through the same command, in its copy of the project (the chroot
    # test in test_provision.py sees it run).
    text = (root / "vagrant" / "provision.sh").read_text().replace("\\\n", " ")
    provision = [line.strip() for line in text.splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
    runs = [line for line in provision if "setup.sh" in line and "runuser" in line]
    # With the README's own option for the VALE switch where the kernel loads modules.
    assert len(runs) == 1 and f"&& {setup} $SETUP_ARGS\"" in runs[0], runs
    assert sorted(re.findall(r'SETUP_ARGS="([^"]*)"', text)) == ["", "--netmap"]
    assert "./setup.sh --netmap" in readme


@pytest.mark.usefixtures("root")  # to show setup.sh another /etc/os-release
@pytest.mark.parametrize("os_release, says", [
    ('ID=fedora\nPRETTY_NAME="Fedora Linux 41"\n', "this is Fedora Linux 41"),
    ('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.5 LTS"\n',
     "this is Ubuntu 22.04.5 LTS"),
    ('ID=debian\nVERSION_ID="11"\nPRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\n',
     "this is Debian GNU/Linux 11 (bullseye)"),
])
def test_setup_refuses_an_unsupported_system_before_touching_it(tmp_path: object,
                                                                os_release: str,
                                                                says: str) -> None:
    from pathlib import Path

    setup = Path(__file__).resolve().parent.parent / "setup.sh"
    fake = Path(str(tmp_path)) / "os-release"
    fake.write_text(os_release)
    # Another system's identity, seen only by setup.sh, in a mount namespace of its own.
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount --bind "$1" /etc/os-release && exec "$2"', "sh", str(fake),
                        str(setup)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert says in r.stderr and "Debian 12 or newer, or Ubuntu 24.04 or newer" in r.stderr
    assert r.stdout == ""  # refused before any apt or pip step said a word


def test_no_test_skips_on_its_own() -> None:
    """Skips go through conftest's need(): a skip outside CI, a failure naming what is
    missing in CI. A bare pytest.skip, importorskip or skipif would skip silently there."""
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    bare = re.compile(r"pytest\.(skip\(|importorskip\(|mark\.skip)")
    found = [f"{p.name}:{n}" for p in sorted(tests.glob("*.py")) if p.name != "conftest.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if bare.search(line)]
    assert found == [], found
