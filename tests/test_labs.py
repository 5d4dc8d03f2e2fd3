"""Every lab notebook runs headless, top to bottom, and its self-check passes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="the lab extra is not installed")
import nbformat  # noqa: E402

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
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "All correct!" in text, text[-2000:]
