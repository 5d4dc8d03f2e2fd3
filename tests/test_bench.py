"""The benchmark runs and reports every row it promises (the figures are the issues'
business, never asserted here: these machines are shared and noisy)."""
from __future__ import annotations

import math
import os

import ministack as ms
from ministack import bench


def test_frame_fd_rows_measure_both_ways_against_a_bare_socket_pair() -> None:
    rows = bench.frame_fd_rows(0.2, reps=2)
    assert [r["path"] for r in rows] == ["frame_fd->wire", "wire->frame_fd"]
    for r in rows:
        assert r["mpps"] > 0 and r["bare_mpps"] > 0, r
        assert len(r["runs"]) == len(r["bare_runs"]) == 2, r
        assert math.isclose(r["ratio"], r["mpps"] / r["bare_mpps"], rel_tol=0.01), r


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
                                     "mpps": 1.0, "baseline_mpps": 1.0, "ratio": 1.0}],
                        "cores": 2, "seconds": 1,
                        "baseline_mpps": 1.0, "python_send_batch_mpps": 1.0, "lwip": rows,
                        "frame_fd": bench.frame_fd_rows(0.1)})
    assert "lwip tcp bulk" in text and "frame_fd->wire" in text


def test_switch_rows_alternate_with_their_same_work_ring() -> None:
    """Each switch row and its ring are measured the same number of times, and the ratio
    reported is the median of the pairs' ratios, with their spread."""
    import statistics

    for path, bindings in (("port->wire", 1), ("wire->port", 100), ("port->port", 2)):
        r = bench.versus_ring(path, 256, 0.1, bindings=bindings, reps=3)
        assert r["bindings"] == bindings and r["reps"] == 3, r
        assert len(r["runs"]) == len(r["baseline_runs"]) == 3, r
        assert all(x > 0 for x in r["runs"] + r["baseline_runs"]), r
        ratios = [a / b for a, b in zip(r["runs"], r["baseline_runs"])]
        assert math.isclose(r["ratio"], statistics.median(ratios), rel_tol=2e-3), r
        assert r["ratio_range"][0] <= r["ratio"] <= r["ratio_range"][1], r
    text = bench.table({"results": [r], "cores": 2, "seconds": 0.1, "reps": 3,
                        "python_send_batch_mpps": 1.0, "python_send_batch_runs": [1.0]})
    assert "port->port" in text and "x ring" in text


def test_same_work_ring_probes_hit_every_frame_tuple() -> None:
    """The ring's stage finds every frame's tuple in its table (else it would do less work
    than the switch, whose lookups of bound tuples all hit); an unknown row is refused."""
    for path in ("port->wire", "wire->port", "port->port"):
        r = bench.same_work_ring(path, 256, 0.05, bindings=1000, detail=True)
        assert r["mpps"] > 0 and r["probes"] > 0, r
        assert r["hits"] == r["probes"], r
    try:
        bench.same_work_ring("port->nowhere", 256, 0.05)
    except ValueError as e:
        assert "port->wire" in str(e)
    else:
        raise AssertionError("an unknown row was measured")


def test_cost_breaks_a_row_into_copy_parse_and_filter() -> None:
    """The pieces add up to the switch's whole (each is measured with those before it),
    for the TX filter and for the RX demultiplexer, and the table shows them."""
    rows = [bench.cost(path, 0.1, bindings=100) for path in ("port->wire", "wire->port")]
    for c, step in zip(rows, ("filter_ns", "demux_ns")):
        assert c["copy_ns"] > 0 and c["ring_stage_ns"] > 0, c
        parts = c["copy_ns"] + c["parse_ns"] + c[step]
        assert math.isclose(parts, c["switch_ns"], rel_tol=0.01, abs_tol=0.01), c
        # The whole loop (its own switch, polled on this thread) does all of that and more.
        assert c["loop_ns"] > c["copy_ns"], c
    text = bench.table({"results": [{"path": "port->wire", "bindings": 1, "batch": 256,
                                     "mpps": 1.0, "baseline_mpps": 1.0, "ratio": 1.0}],
                        "cores": 2, "seconds": 0.1, "per_frame": rows,
                        "python_send_batch_mpps": 1.0})
    assert "ns per frame" in text and "wire->port" in text


def test_a_running_switch_cannot_be_polled_from_outside() -> None:
    """ms_switch_poll (the loop cost's one-core round) is for a switch never started: with
    the switch's own thread running it refuses, so no round ever runs twice at once."""
    import errno

    from ministack.binding import lib

    with ms.Switch() as sw:
        assert lib.ms_switch_poll(sw.handle) == -errno.EBUSY


def test_against_another_checkout_pairs_runs_and_reports_paired_ratio() -> None:
    """Against itself (the same checkout as the "other" one): both sides measured, one
    ratio per pair, and the reported ratio is their median."""
    import statistics

    here = os.path.dirname(os.path.dirname(os.path.abspath(bench.__file__)))
    r = bench.against(here, 0.1, reps=2, max_steal=1.0)
    for path in ("port->wire", "wire->port"):
        x = r[path]
        assert x["this_mpps"] > 0 and x["other_mpps"] > 0, r
        assert len(x["this_runs"]) == len(x["other_runs"]) == len(x["pair_ratios"]) == 2
        for ratio, a, b in zip(x["pair_ratios"], x["this_runs"], x["other_runs"]):
            # Runs carry four significant digits, ratios three decimals.
            assert math.isclose(ratio, a / b, rel_tol=2e-3, abs_tol=2e-3), x
        assert abs(x["ratio"] - statistics.median(x["pair_ratios"])) < 0.002, x
