"""The README's set-up on a machine nobody prepared: ./setup.sh as root (as CI runs it) in a
freshly debootstrapped Debian 12, then `ministack doctor`, which must find everything
working, AF_XDP built in included. This is what keeps CI honest about install steps: a
package that only an earlier hand install put on the CI machine fails here."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from conftest import need, need_root
from fresh_debian import copy_project, fresh_debian, run_in

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
echo "=== setup.sh $EPOCHREALTIME"
status=0
run sh -c 'cd /root/ministack && ./setup.sh' || status=$?
echo "=== doctor $EPOCHREALTIME setup.sh exit $status"
status=0
run /root/ministack/.venv/bin/ministack doctor --json > "$R/root/doctor.json" || status=$?
echo "=== end $EPOCHREALTIME doctor exit $status"
"""

DOCTOR_LINE = re.compile(r"^(MiniStack doctor: |  |nothing missing or broken|\d+ of \d+ need|$)")


def test_setup_then_doctor_on_a_fresh_debian_12() -> None:
    need_root()
    need(shutil.which("debootstrap") and shutil.which("unshare"), "debootstrap and unshare")
    with fresh_debian() as root:
        copy_project(root / "root" / "ministack")
        try:
            r = run_in(root, SCRIPT)
        finally:
            # doctor removes its veth pair; make sure, in case it died half-way.
            for link in os.listdir("/sys/class/net"):
                if link.startswith("msdr"):
                    subprocess.run(["ip", "link", "del", link], capture_output=True)
        out = r.stdout + r.stderr
        (ROOT / "artifacts").mkdir(exist_ok=True)
        (ROOT / "artifacts" / "fresh-machine.log").write_text(out)
        assert r.returncode == 0, out[-6000:]
        marks = dict((m[0], float(m[1])) for m in re.findall(r"^=== (\S+) (\d+\.\d+)", out, re.M))
        print(f"fresh Debian 12: setup.sh {marks['doctor'] - marks['setup.sh']:.0f} s, "
              f"doctor {marks['end'] - marks['doctor']:.1f} s")
        setup = out.split("=== setup.sh ")[1].split("=== doctor ")[0]
        assert "setup.sh exit 0" in out, out[-6000:]
        # One line per step; apt's and pip's chatter stays in the log.
        for line in setup.splitlines()[1:]:
            assert line.startswith("setup: ") or DOCTOR_LINE.match(line), line
        assert re.search(r"^setup: installing .*\blibxdp-dev\b", setup, re.M), setup
        assert re.search(r"^setup: installing .*\bclang-19\b", setup, re.M), setup
        assert "no libxdp" not in setup and "not in this distribution" not in setup, setup
        assert "Setting up" in (root / "root" / "ministack" / "setup.log").read_text()
        report = json.loads((root / "root" / "doctor.json").read_text())
        assert "doctor exit 0" in out, json.dumps(report, indent=1)
        checks = {c["name"]: c for c in report["checks"]}
        assert checks["AF_XDP built in"]["status"] == "ok", checks["AF_XDP built in"]
        assert checks["XDP on a veth"]["status"] == "ok", checks["XDP on a veth"]
        assert [c for c in report["checks"] if c["status"] != "ok"] == [], report
