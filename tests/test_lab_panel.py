"""The lab's control panel, driven without a browser: click its buttons, set its fields,
and check the switch's counters and the plots' data sources."""
from __future__ import annotations

import os
import time
from pathlib import Path
from collections.abc import Iterator

import pytest

from conftest import need_module  # noqa: E402

need_module("ipywidgets")

import ministack as ms  # noqa: E402
from ministack.lab import Panel  # noqa: E402


@pytest.fixture
def panel() -> Iterator[Panel]:
    with ms.Switch() as sw:
        p = Panel(sw, refresh_hz=0)
        yield p
        p.close()


def make_port(p: Panel, name: str = "app1", bind: int = 5000) -> None:
    p.port_name.value = name
    p.create_btn.click()
    p.bind_port.value = bind
    p.bind_btn.click()


def test_buttons_create_bind_and_show_refusals(panel: Panel) -> None:
    make_port(panel)
    assert [b.local_port for b in panel.sw.bindings()] == [5000]
    assert "bound udp 10.0.0.2:5000" in panel.status.value
    panel.bind_btn.click()  # again: in use
    assert "BindError in-use" in panel.status.value
    panel.bind_ip.value = "10.0.0.77"
    panel.bind_btn.click()
    assert "BindError address-not-local" in panel.status.value
    panel.port_name.value = "nic"
    panel.create_btn.click()
    assert "reserved" in panel.status.value
    panel.bindings_list.value = panel.bindings_list.options[0][1]
    panel.unbind_btn.click()
    assert panel.sw.bindings() == []


@pytest.mark.parametrize("preset,verdict", [
    ("valid", "forward to wire"), ("spoofed source IP", "drop: spoofed-src-ip"),
    ("spoofed source port", "drop: spoofed-src-port"),
    ("wrong protocol", "drop: spoofed-protocol"), ("spoofed MAC", "drop: spoofed-src-mac"),
    ("fragment", "drop: fragment"), ("VLAN-tagged", "drop: vlan"),
    ("ARP request", "local: handled by the switch"), ("ARP reply", "drop: not-allowed")])
def test_every_preset_gets_its_verdict_and_counts_when_sent(panel: Panel, preset: str,
                                                            verdict: str) -> None:
    make_port(panel)
    panel.preset.value = preset
    assert verdict in panel.explain_line.value
    panel.count.value = 25
    panel.sendn_btn.click()
    panel.sw.sync()
    st = panel.sw.stats()["ports"]["app1"]
    if preset == "valid":
        assert st["tx"]["frames"] == 25 and len(panel.sw.wire.capture()) == 25
    elif verdict.startswith("local"):
        assert st["local"]["frames"] == 25 and panel.sw.wire.capture() == []
    else:
        assert st["drops"][verdict.split(": ")[1]] == 25
        panel.refresh()
        assert verdict.split(": ")[1] in panel.drop_log.value


def test_plots_follow_the_counters(panel: Panel) -> None:
    make_port(panel)
    panel.refresh()
    panel.preset.value = "spoofed source IP"
    panel.count.value = 500
    panel.sendn_btn.click()
    panel.sw.sync()
    time.sleep(0.05)
    panel.refresh()
    data = panel.rates.data
    assert len(data["t"]) >= 1 and data["drop:app1"][-1] > 0
    assert data["fwd:app1"][-1] == 0 and "fwd:nic" in data
    reasons = dict(zip(panel.reasons.data["reason"], panel.reasons.data["drops"]))
    assert reasons["spoofed-src-ip"] == 500
    assert ">500<" in panel.counters.value
    # A port created later gets its own lines; forwarded traffic shows on it and the NIC.
    make_port(panel, "app2", 6000)
    panel.preset.value = "valid"
    panel.sendn_btn.click()
    panel.sw.sync()
    panel.sw.wire.capture()
    time.sleep(0.05)
    panel.refresh()
    data = panel.rates.data
    assert data["fwd:app2"][-1] > 0 and data["fwd:nic"][-1] > 0
    assert len({len(v) for v in data.values()}) == 1  # columns stay aligned


def test_export_pcaps(panel: Panel, tmp_path: "os.PathLike[str]") -> None:
    from scapy.utils import rdpcap

    make_port(panel)
    panel.preset.value = "spoofed MAC"
    panel.send_btn.click()
    panel.sw.sync()
    path = panel.export_drops(os.path.join(str(tmp_path), "d.pcapng"))
    assert len(rdpcap(path)) == 1
    from ministack.bench import udp_frame
    panel.sw.wire.inject(udp_frame("02:00:00:00:00:09", "10.0.0.9", "10.0.0.2", 9, 5000,
                                   dst_mac=panel.sw.mac))
    panel.sw.sync()
    path = panel.export_rx(os.path.join(str(tmp_path), "rx.pcapng"))
    assert len(rdpcap(path)) == 1


def test_live_refresh_runs_and_close_stops_it() -> None:
    with ms.Switch() as sw:
        p = Panel(sw, refresh_hz=10)
        make_port(p)
        p.send_btn.click()
        deadline = time.monotonic() + 10  # a busy machine delays the thread, never stops it
        while len(p.rates.data["t"]) < 3:
            assert time.monotonic() < deadline, "the live refresh did not run"
            time.sleep(0.05)
        thread = p._timer
        p.close()
        assert thread is not None and not thread.is_alive()
        n = len(p.rates.data["t"])
        time.sleep(0.3)
        assert len(p.rates.data["t"]) == n


def test_panel_on_a_daemon_connection(tmp_path: "os.PathLike[str]") -> None:
    import threading

    from ministack.daemon import Daemon

    d = Daemon(socket_path=os.path.join(str(tmp_path), "s.sock"))
    d.listen()
    threading.Thread(target=d.serve_forever, daemon=True).start()
    try:
        with ms.connect(d.socket_path) as c:
            p = Panel(c, refresh_hz=0)
            make_port(p)
            p.preset.value = "spoofed source port"
            assert "drop: spoofed-src-port" in p.explain_line.value
            p.send_btn.click()
            d.switch.sync()
            p.refresh()
            assert "spoofed-src-port" in p.drop_log.value
            p.close()
    finally:
        d.close()


def test_panel_stays_responsive_under_full_rate_traffic() -> None:
    """Traffic at full rate from C (the GIL released) while the panel refreshes: the
    refreshes keep coming and show the traffic."""
    import threading

    from ministack.binding import ffi, lib
    from ministack.bench import udp_frame

    with ms.Switch() as sw:
        p = Panel(sw, refresh_hz=0)
        make_port(p)
        frame = udp_frame(sw.mac, "10.0.0.2", "10.0.0.9", 5000, 9)
        res = ffi.new("struct ms_bench_result *")
        lens = ffi.new("uint32_t[]", [len(frame)])
        port_id = p.port._id
        t = threading.Thread(target=lambda: lib.ms_bench_run(sw._sw, port_id, -1, frame, lens,
                                                             1, 256, 2.0, res))
        t.start()
        time.sleep(0.3)
        start = time.monotonic()
        for _ in range(10):
            p.refresh()
        took = time.monotonic() - start
        t.join()
        assert took < 1.5, f"10 refreshes took {took:.2f} s under load"
        assert max(p.rates.data["fwd:app1"][1:]) > 1e5  # it saw the traffic
        p.close()


def test_picking_a_drop_shows_it_dissected_with_its_verdict_nearest_binding_and_fix(
        panel: Panel) -> None:
    make_port(panel)
    panel.preset.value = "spoofed source port"
    panel.send_btn.click()
    panel.preset.value = "spoofed MAC"
    panel.send_btn.click()
    panel.sw.sync()
    panel.refresh()
    labels = [label for label, _seq in panel.drop_pick.options]
    assert len(labels) == 2 and "spoofed-src-mac" in labels[0], labels  # newest first
    assert "spoofed-src-port: udp 10.0.0.2:" in labels[1], labels
    panel.drop_pick.value = panel.drop_pick.options[1][1]
    shown = panel.drop_detail.value
    v = panel.sw.explain("app1", panel.sw.drops()[0]["frame"])
    assert v.reason == "spoofed-src-port" and v.nearest and v.fix
    assert "drop spoofed-src-port(10)" in shown
    assert "nearest binding: udp 10.0.0.2:5000 held by app1: source port" in shown
    assert f"fix: <code>{v.fix.replace(chr(34), '&quot;')}</code>" in shown, shown
    assert v.fix == 'app1.bind("10.0.0.2", "udp", 5001)'  # the preset's source port
    assert "###[ Ethernet ]###" in shown and "###[ UDP ]###" in shown  # scapy's dissection
    assert "0000  " in shown  # and the bytes
    panel.refresh()  # a refresh with no new drop keeps the pick
    assert panel.drop_pick.value == panel.drop_pick.options[1][1]
    panel.drop_pick.value = panel.drop_pick.options[0][1]
    assert "fix: <code>none: send from the NIC&#x27;s MAC" in panel.drop_detail.value


def test_topology_edges_carry_rates_and_turn_red_with_drops(panel: Panel) -> None:
    need_module("bokeh")
    make_port(panel, "app1", 5000)
    make_port(panel, "app2", 6000)
    panel.refresh()
    from ministack.bench import udp_frame

    mac = panel.sw.mac
    panel._ports["app1"].send_batch([udp_frame(mac, "10.0.0.2", "10.0.0.9", 5000, 9)] * 200)
    panel._ports["app2"].send_batch([udp_frame(mac, "10.0.0.66", "10.0.0.9", 6000, 9)] * 50)
    panel.sw.sync()
    panel.refresh()
    nodes = dict(zip(panel.topo_nodes.data["label"], panel.topo_nodes.data["x"]))
    assert any(k.startswith("app1\nudp 10.0.0.2:5000") for k in nodes), nodes
    assert "switch" in nodes and any(k.startswith("NIC") for k in nodes)
    edges = {e: (label, color) for e, label, color in zip(panel.topo_edges.data["edge"],
                                                          panel.topo_edges.data["label"],
                                                          panel.topo_edges.data["color"])}
    assert edges.keys() == {"nic-switch", "switch-app1", "switch-app2"}  # no host: virtual
    app1, app2 = edges["switch-app1"], edges["switch-app2"]
    assert app1[0].startswith("tx ") and not app1[0].startswith("tx 0/s") and "drop" not in app1[0]
    assert app1[1] != "#e76f51" and app2[1] == "#e76f51" and ", drop " in app2[0], edges
    # The counters as a table with a column per reason, sorted by the column picked.
    rows = panel.counter_rows()
    assert [r["port"] for r in rows] == ["app1", "app2", "nic"]
    assert rows[0]["tx"] == 200 and rows[1]["spoofed-src-ip"] == 50 and rows[1]["drops"] == 50
    assert ">no-binding</th>" in panel.counters.value and ">port ▾</th>" in panel.counters.value
    panel.sort_by.value = "spoofed-src-ip"
    assert [r["port"] for r in panel.counter_rows()][0] == "app2"
    assert panel.counters.value.index(">app2<") < panel.counters.value.index(">app1<")
    panel.sort_by.value = "tx"
    assert [r["port"] for r in panel.counter_rows()][:2] == ["app1", "nic"]  # ties keep order


def test_the_kiosk_finds_what_a_visitor_broke_and_puts_it_back() -> None:
    from ministack.kiosk import Kiosk

    k = Kiosk(watch=False, plots=False)
    try:
        assert k.broken() is None
        k.panel.f["sport"].value = 70000
        assert k.broken() == "a field holds what no header can"
        k.reset(k.broken())
        assert k.broken() is None and k.panel.f["sport"].value == 5000 and k.resets == 1
        k.sw.ports()[0].close()
        assert k.broken() == "a port or a binding went missing"
        page = Path(__file__).resolve().parents[1] / "ministack" / "kiosk.ipynb"
        assert "display(page_watchdog())" in page.read_text()  # the page's half
    finally:
        k.close()
