"""A wheel, as a JupyterHub image gets MiniStack: `python -m build` on a fresh clone, then
`pip install` of that wheel into a fresh virtual environment on a fresh Debian 12 with no C
compiler, no clang and no libxdp. MiniStack imports, runs its demo on the virtual NIC, and
`ministack doctor` says why AF_XDP is unavailable there instead of an import failing."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import need, need_module, need_root
from fresh_debian import ROOT, copy_project, fresh_debian, run_in

SCRIPT = r"""
install -d "$R/wheel" && cp "$1" "$R/wheel/"
export DEBIAN_FRONTEND=noninteractive
run apt-get update -qq
run apt-get install -y -qq --no-install-recommends python3-venv ca-certificates >/dev/null
echo "=== what is missing"
for tool in cc gcc clang pkg-config; do
    if run sh -c "command -v $tool"; then echo "unexpected: $tool"; fi
done
run sh -c 'ldconfig -p | grep -E "libxdp|libbpf" || echo "no libxdp, no libbpf"'
echo "=== install"
run python3 -m venv /v
run /v/bin/pip install -q /wheel/$(basename "$1")
echo "=== demo"
run /v/bin/ministack demo --virtual
echo "=== doctor"
status=0
run /v/bin/ministack doctor --json > "$R/root/doctor.json" || status=$?
echo "doctor exit $status"
"""


def build_and_install_the_wheel() -> dict[str, Any]:
    """The wheel built, installed and run in a fresh Debian; beside the other tests
    (conftest.py's background marker). Returns doctor's report from there."""
    need_root()
    need(shutil.which("debootstrap") and shutil.which("unshare") and shutil.which("slirp4netns"),
         "debootstrap, unshare and slirp4netns (./setup.sh installs them)")
    need_module("build")
    with tempfile.TemporaryDirectory(prefix="ms-wheel-") as tmp:
        src, dist = Path(tmp) / "src", Path(tmp) / "dist"
        copy_project(src)
        r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist),
                            str(src)], capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        (wheel,) = dist.glob("ministack-*.whl")
        names = zipfile.ZipFile(wheel).namelist()
        for part in ("ministack/_native", "ministack/libms_bpf.so",
                     "ministack/ministack_steer.bpf.o", "ministack/ms-pktgen"):
            assert any(n.startswith(part) for n in names), (part, names)
        with fresh_debian() as root:
            r = run_in(root, SCRIPT, str(wheel), timeout=1800)
            out = r.stdout + r.stderr
            (ROOT / "artifacts").mkdir(exist_ok=True)
            (ROOT / "artifacts" / "wheel-install.log").write_text(out)
            assert r.returncode == 0, out[-6000:]
            missing = out.split("=== what is missing")[1].split("=== install")[0]
            assert "unexpected" not in missing and "no libxdp, no libbpf" in missing, missing
            demo = out.split("=== demo")[1].split("=== doctor")[0]
            assert "demo: 10 of 10 checks passed" in demo, demo[-3000:]
            return json.loads((root / "root" / "doctor.json").read_text())


@pytest.mark.background.with_args(build_and_install_the_wheel)
def test_a_wheel_runs_where_there_is_no_compiler_and_no_libxdp(background: dict[str, Any]) -> None:
    """There, doctor finds the virtual NIC working and says why AF_XDP is not."""
    checks = {c["name"]: c for c in background["checks"]}
    assert checks["virtual NIC"]["status"] == "ok", checks
    afxdp = checks["BPF built in"]
    assert afxdp["status"] in ("missing", "unavailable"), afxdp
    assert "libxdp" in afxdp["detail"] and "libxdp1" in (afxdp["fix"] or ""), afxdp
