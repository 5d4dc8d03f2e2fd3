"""The benchmark runs and reports every row it promises (the figures are the issues'
business, never asserted here: these machines are shared and noisy)."""
from __future__ import annotations

import os

from ministack import bench


def test_frame_fd_rows_measure_both_ways() -> None:
    rows = bench.frame_fd_rows(0.2)
    assert [r["path"] for r in rows] == ["frame_fd->wire", "wire->frame_fd"]
    assert all(r["mpps"] > 0 for r in rows), rows


def test_lwip_rows_compare_with_the_bare_driver(root: None) -> None:
    from conftest import need
    need(os.path.exists(os.path.join(os.path.dirname(bench.__file__), "ms-lwip-echo")),
         "ms-lwip-echo (liblwip-dev, which ./setup.sh installs)")
    rows = bench.lwip_rows(0.5, reps=1)
    assert [(r["path"], r["unit"]) for r in rows] == [("lwip tcp rr", "transactions/s"),
                                                      ("lwip tcp bulk", "Gbit/s")]
    for r in rows:
        assert r["value"] > 0 and r["bare"] > 0
        assert abs(r["ratio"] - r["value"] / r["bare"]) < 0.01, r
    text = bench.table({"results": [{"path": "port->wire", "bindings": 1, "batch": 256,
                                     "mpps": 1.0, "ratio": 1.0}], "cores": 2, "seconds": 1,
                        "baseline_mpps": 1.0, "python_send_batch_mpps": 1.0, "lwip": rows,
                        "frame_fd": bench.frame_fd_rows(0.1)})
    assert "lwip tcp bulk" in text and "frame_fd->wire" in text


def test_against_another_checkout_alternates_and_reports_medians() -> None:
    """Against itself (the same checkout as the "other" one): both sides measured."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(bench.__file__)))
    r = bench.against(here, 0.1, reps=1)
    for path in ("port->wire", "wire->port"):
        assert r[path]["this_mpps"] > 0 and r[path]["other_mpps"] > 0, r
        assert len(r[path]["this_runs"]) == len(r[path]["other_runs"]) == 1
