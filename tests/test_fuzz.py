"""The libFuzzer harness (native/fuzz/) over the C parser, filter and bindings table, run
under AddressSanitizer and UndefinedBehaviorSanitizer: no finding in 60 s.

MINISTACK_FUZZ_SECONDS shortens it for a quick local run; CI runs the full 60 s.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import need

NATIVE = Path(__file__).resolve().parent.parent / "native"


def test_fuzz_parser_filter_table_finds_nothing() -> None:
    need(shutil.which("clang") and shutil.which("make"),
         "clang, its libFuzzer runtime and make (./setup.sh installs them)")
    seconds = int(os.environ.get("MINISTACK_FUZZ_SECONDS", "60"))
    proc = subprocess.run(["make", "-s", "-C", str(NATIVE), "fuzz", f"FUZZ_SECONDS={seconds}"],
                          capture_output=True, text=True, timeout=seconds + 300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"the fuzzer found something or failed to build:\n{out[-4000:]}"
    done = [line for line in out.splitlines() if line.startswith("Done ")]
    assert done, f"libFuzzer did not report its runs:\n{out[-2000:]}"
    runs = int(done[-1].split()[1])
    assert runs > 1000, f"only {runs} fuzz runs in {seconds} s"
