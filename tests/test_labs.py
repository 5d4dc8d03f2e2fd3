"""Every lab notebook runs headless, top to bottom, and its self-check passes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import need, need_module  # noqa: E402

nbclient = need_module("nbclient")
import nbformat  # noqa: E402

import ministack as ms  # noqa: E402

LABS = sorted((Path(__file__).resolve().parent.parent / "labs").glob("*.ipynb"))


def test_there_are_labs() -> None:
    assert LABS, "labs/ has no notebooks"


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_runs_and_checks_itself(path: Path) -> None:
    raw = json.loads(path.read_text())
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    assert all(not c.get("outputs") for c in raw["cells"] if c["cell_type"] == "code"), \
        "notebooks are committed without outputs"
    nb = nbformat.read(str(path), as_version=4)
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:  # a lab that failed half-way never reached its clean-up cell
        if os.geteuid() == 0:
            for n in (6, 7):
                ms.Topology(ns=f"ms-lab{n}", host_if=f"ms-lab{n}h").down()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    if "Skipped: this lab needs root" in text:
        need(os.geteuid() == 0, f"root for {path.stem} (CI runs as root)")
    assert "All correct!" in text, text[-2000:]
