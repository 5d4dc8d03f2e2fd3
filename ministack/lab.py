"""The lab's control panel: ipywidgets to create ports, register bindings, craft and send
valid or spoofed packets with scapy, and watch forward and drop rates live (bokeh).

    import ministack as ms
    from ministack.lab import Panel
    sw = ms.Switch()
    Panel(sw)          # in a notebook cell: shows the panel

Works with an in-process ``ms.Switch`` or a daemon connection from ``ms.connect()``.
"""
from __future__ import annotations

import datetime
import html
import os
import threading
import time
from typing import Any

import ipywidgets as w

from ministack.errors import MiniStackError
from ministack.switch import NIC_DROP_REASONS, PORT_DROP_REASONS, frame_summary

PRESETS = ["valid", "spoofed source IP", "spoofed source port", "wrong protocol",
           "spoofed MAC", "fragment", "VLAN-tagged", "ARP request", "ARP reply"]
PROTOCOLS = ["udp", "tcp", "sctp", "dccp", "udplite", "icmp", "icmpv6"]
PEER_MAC = "02:00:00:00:00:09"
#: The counters table's reason columns: what a port can drop, in the filter's order, then
#: what only the NIC counts.
COUNTER_REASONS = list(dict.fromkeys(PORT_DROP_REASONS + NIC_DROP_REASONS))
COUNTER_COLUMNS = ["port", "tx", "rx", "local", "drops", *COUNTER_REASONS]
PALETTE = ["#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#6a4c93", "#1982c4",
           "#8ac926"]
MAX_POINTS = 300


def craft(fields: dict[str, Any]) -> bytes:
    """A frame from the crafter's fields (scapy). Keys: src_mac, dst_mac, src_ip, dst_ip,
    protocol, sport, dport, payload, fragment (bool: a later fragment, which carries no
    ports), vlan (bool), arp ("request" or "reply").

    >>> f = craft({"src_mac": "02:4d:53:00:00:02", "dst_mac": PEER_MAC, "src_ip": "10.0.0.2",
    ...            "dst_ip": "10.0.0.9", "protocol": "udp", "sport": 5000, "dport": 9,
    ...            "payload": "hi"})
    >>> len(f)
    44
    """
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    from scapy.layers.sctp import SCTP
    from scapy.packet import Raw

    eth = Ether(src=fields["src_mac"], dst=fields["dst_mac"])
    if fields.get("arp"):
        return bytes(eth / ARP(op=2 if fields["arp"] == "reply" else 1, psrc=fields["src_ip"],
                               pdst=fields["dst_ip"], hwsrc=fields["src_mac"]))
    if fields.get("vlan"):
        eth = eth / Dot1Q(vlan=10)
    v6 = ":" in fields["src_ip"]
    l3 = IPv6(src=fields["src_ip"], dst=fields["dst_ip"]) if v6 else IP(
        src=fields["src_ip"], dst=fields["dst_ip"], frag=1 if fields.get("fragment") else 0)
    proto, sport, dport = str(fields["protocol"]), int(fields["sport"]), int(fields["dport"])
    payload = Raw(str(fields.get("payload", "")).encode())
    if proto == "udp":
        l4 = UDP(sport=sport, dport=dport)
    elif proto == "tcp":
        l4 = TCP(sport=sport, dport=dport, flags="S")
    elif proto == "sctp":
        l4 = SCTP(sport=sport, dport=dport)
    elif proto in ("icmp", "icmpv6"):
        l4 = ICMPv6EchoRequest(id=sport) if v6 else ICMP(type=8, id=sport)
    else:
        nh = int(proto) if proto.isdigit() else 253
        l3 = IPv6(src=fields["src_ip"], dst=fields["dst_ip"], nh=nh) if v6 else IP(
            src=fields["src_ip"], dst=fields["dst_ip"], proto=nh)
        return bytes(eth / l3 / payload)
    if fields.get("fragment"):
        # Offset 1: the L4 header's bytes are only data here, as in a datagram's middle.
        from ministack.ipproto import protocol_number
        num = protocol_number(proto)
        if v6:
            from scapy.layers.inet6 import IPv6ExtHdrFragment
            return bytes(eth / l3 / IPv6ExtHdrFragment(offset=1, m=1, nh=num) /
                         Raw(bytes(l4 / payload)))
        return bytes(eth / IP(src=fields["src_ip"], dst=fields["dst_ip"], frag=1, proto=num) /
                     Raw(bytes(l4 / payload)))
    return bytes(eth / l3 / l4 / payload)


_BOKEHJS_LOADED = False


def _load_bokehjs() -> None:
    """Put BokehJS into the notebook page, from the package (INLINE), once per kernel:
    jupyter_bokeh's widgets need it, and the default would fetch it from the internet."""
    global _BOKEHJS_LOADED
    try:
        from IPython import get_ipython
    except ImportError:
        return
    if _BOKEHJS_LOADED or get_ipython() is None:
        return
    from bokeh.io import output_notebook
    from bokeh.resources import INLINE

    output_notebook(resources=INLINE, hide_banner=True)
    _BOKEHJS_LOADED = True


class Panel(w.VBox):
    """The control panel for a Switch (or a daemon connection)."""

    def __init__(self, sw: Any, refresh_hz: float = 5.0, plots: bool = True) -> None:
        self.sw = sw
        self._ports: dict[str, Any] = {p.name: p for p in sw.ports()}
        self._rx: dict[str, list[bytes]] = {}
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()
        self._refresh_lock = threading.Lock()
        self._last: tuple[float, dict[str, tuple[int, int]]] | None = None
        self._series: list[str] = []
        self.refresh_hz = refresh_hz

        # ports
        self.port_name = w.Text(value="app1", description="port")
        self.create_btn = w.Button(description="Create port", button_style="primary")
        self.port_select = w.Dropdown(options=list(self._ports), description="use")
        self.close_btn = w.Button(description="Close port")
        self.create_btn.on_click(lambda _b: self.create_port())
        self.close_btn.on_click(lambda _b: self.close_port())
        # bindings
        addr = sw.addresses[0] if sw.addresses else ""
        self.bind_ip = w.Text(value=addr, description="IP")
        self.bind_proto = w.Combobox(value="udp", options=PROTOCOLS, description="protocol")
        self.bind_port = w.IntText(value=5000, description="port")
        self.bind_btn = w.Button(description="Bind", button_style="success")
        self.bindings_list = w.Select(options=[], description="bindings", rows=5)
        self.unbind_btn = w.Button(description="Unbind selected")
        self.bind_btn.on_click(lambda _b: self.bind())
        self.unbind_btn.on_click(lambda _b: self.unbind())
        # crafter
        self.preset = w.Dropdown(options=PRESETS, value="valid", description="preset")
        self.f = {
            "src_mac": w.Text(value=sw.mac, description="src MAC"),
            "dst_mac": w.Text(value=PEER_MAC, description="dst MAC"),
            "src_ip": w.Text(value=addr, description="src IP"),
            "dst_ip": w.Text(value="10.0.0.9", description="dst IP"),
            "protocol": w.Combobox(value="udp", options=PROTOCOLS, description="protocol"),
            "sport": w.IntText(value=5000, description="src port"),
            "dport": w.IntText(value=9, description="dst port"),
            "payload": w.Text(value="hello", description="payload"),
        }
        self.flags = {"fragment": False, "vlan": False, "arp": False}
        self.count = w.BoundedIntText(value=100, min=1, max=1_000_000, description="x N")
        self.send_btn = w.Button(description="Send", button_style="warning")
        self.sendn_btn = w.Button(description="Send xN", button_style="warning")
        self.explain_line = w.HTML()
        self.status = w.HTML()
        self.preset.observe(lambda _c: self.apply_preset(), names="value")
        for field in self.f.values():
            field.observe(lambda _c: self.update_explain(), names="value")
        self.send_btn.on_click(lambda _b: self.send(1))
        self.sendn_btn.on_click(lambda _b: self.send(self.count.value))
        # observation
        self.drop_log = w.HTML()
        # The debugger: pick a drop, see it dissected, its verdict, the binding it nearly
        # matched and the bind that would have let it through.
        self.drop_pick = w.Select(options=[], rows=6, description="inspect",
                                  layout=w.Layout(width="95%"))
        self.drop_detail = w.HTML()
        self._drops_shown: list[int] = []
        self.drop_pick.observe(lambda c: self.inspect_drop(c["new"]), names="value")
        self.export_drops_btn = w.Button(description="Drops to pcapng")
        self.export_rx_btn = w.Button(description="Port RX to pcapng")
        self.export_drops_btn.on_click(lambda _b: self.export_drops())
        self.export_rx_btn.on_click(lambda _b: self.export_rx())
        self.counters = w.HTML()
        # The counters table, one column per reason; sorted by the column picked here, or
        # by a click on the column's heading (which picks it here: see _counters_html).
        self.sort_by = w.Dropdown(options=COUNTER_COLUMNS, value="port", description="sort by")
        self._sort_class = f"ms-sort-{id(self):x}"
        self.sort_by.add_class(self._sort_class)
        self.sort_by.observe(lambda _c: self.refresh(), names="value")

        self.plot_widget: Any = None
        self.rates: Any = None     # bokeh ColumnDataSource: t, fwd, drop per series
        self.reasons: Any = None   # bokeh ColumnDataSource: reason, drops
        children = [
            w.HTML("<b>Ports</b>"), w.HBox([self.port_name, self.create_btn]),
            w.HBox([self.port_select, self.close_btn]),
            w.HTML("<b>Bindings</b>"), w.HBox([self.bind_ip, self.bind_proto, self.bind_port,
                                               self.bind_btn]),
            w.HBox([self.bindings_list, self.unbind_btn]),
            w.HTML("<b>Packet crafter</b>"), self.preset,
            w.HBox([self.f["src_mac"], self.f["dst_mac"]]),
            w.HBox([self.f["src_ip"], self.f["dst_ip"]]),
            w.HBox([self.f["protocol"], self.f["sport"], self.f["dport"]]),
            w.HBox([self.f["payload"], self.count]),
            self.explain_line, w.HBox([self.send_btn, self.sendn_btn]), self.status,
            w.HTML("<b>Counters</b>"), self.sort_by, self.counters,
        ]
        if plots:
            self.plot_widget = self._make_plots()
            children.append(self.plot_widget)
        children += [w.HTML("<b>Drop log</b> (newest first)"),
                     w.HBox([self.export_drops_btn, self.export_rx_btn]), self.drop_log,
                     w.HTML("<b>Inspect a drop</b> (pick one)"), self.drop_pick,
                     self.drop_detail]
        super().__init__(children)
        self._refresh_bindings()
        self.update_explain()
        self.refresh()
        if refresh_hz > 0:
            self.start()

    # --- plots ---------------------------------------------------------------------

    def _make_plots(self) -> Any:
        os.environ.setdefault("BOKEH_RESOURCES", "inline")  # no CDN: labs may be offline
        _load_bokehjs()
        from bokeh.models import ColumnDataSource
        from bokeh.plotting import figure
        from jupyter_bokeh.widgets import BokehModel

        # Columns "fwd:<series>" and "drop:<series>" per port and for the NIC; a series
        # that appears later gets its columns (NaN before it existed) and its two lines.
        self.rates = ColumnDataSource(data={"t": []})
        self.reasons = ColumnDataSource(data={"reason": [], "drops": []})
        self._rates_fig = figure(height=240, width=520, x_axis_label="seconds",
                                 title="frames/s: forwarded (solid), dropped (dashed)")
        names = COUNTER_REASONS
        self.reasons.data = {"reason": names, "drops": [0] * len(names)}
        bars = figure(height=220, width=480, title="drops by reason", x_range=names)
        bars.vbar(x="reason", top="drops", width=0.8, source=self.reasons, color="#e76f51")
        bars.xaxis.major_label_orientation = 0.9
        return w.VBox([w.HBox([BokehModel(self._rates_fig), BokehModel(bars)]),
                       BokehModel(self._make_topology())])

    def _make_topology(self) -> Any:
        """The switch drawn as a graph: the NIC and the host's stack on the left, the ports
        with their bindings on the right, each edge labelled with its frame rates and drawn
        red while frames are dropped on it."""
        from bokeh.models import ColumnDataSource, Range1d
        from bokeh.plotting import figure

        self.topo_nodes = ColumnDataSource(data={"x": [], "y": [], "label": [], "color": []})
        self.topo_edges = ColumnDataSource(data={"x0": [], "y0": [], "x1": [], "y1": [],
                                                 "color": [], "width": [], "lx": [], "ly": [],
                                                 "label": [], "edge": []})
        fig = figure(height=300, width=640, title="topology: frames/s on each edge "
                     "(red: drops)", x_range=Range1d(-3.6, 3.9), y_range=Range1d(-2.2, 2.2),
                     toolbar_location=None)
        fig.axis.visible = False
        fig.grid.visible = False
        fig.segment("x0", "y0", "x1", "y1", color="color", line_width="width",
                    source=self.topo_edges)
        fig.scatter("x", "y", size=18, color="color", source=self.topo_nodes)
        fig.text("x", "y", text="label", source=self.topo_nodes, y_offset=-14,
                 text_font_size="9pt", text_align="center", text_baseline="top")
        fig.text("lx", "ly", text="label", source=self.topo_edges, text_font_size="8pt",
                 text_align="center", text_baseline="bottom", text_color="color")
        self._topo_last: tuple[float, dict[str, tuple[int, ...]]] | None = None
        return fig

    def _update_topology(self, st: dict[str, Any], now: float) -> None:
        """New node layout (ports come and go) and edge rates since the last refresh."""
        nic = st["nic"]
        counts = {n: (p["tx"]["frames"], p["rx"]["frames"], sum(p["drops"].values()))
                  for n, p in st["ports"].items()}
        counts["nic"] = (nic["tx"]["frames"], nic["rx"]["frames"], sum(nic["drops"].values()),
                         nic["to-host"]["frames"])
        last = self._topo_last
        dt = max(now - last[0], 1e-6) if last else 1.0

        def rate(name: str, i: int) -> float:
            if last is None or name not in last[1]:
                return 0.0
            return (counts[name][i] - last[1][name][i]) / dt

        self._topo_last = (now, counts)
        held: dict[str, list[str]] = {}
        for b in self.sw.bindings():
            held.setdefault(b.port, []).append(str(b))
        ports = list(st["ports"])
        host = self.sw.backend != "virtual"
        nodes = {"switch": (0.0, 0.0, "switch", "#264653"),
                 "nic": (-2.4, 0.9, f"NIC ({self.sw.nic})", "#2a9d8f")}
        if host:
            nodes["host"] = (-2.4, -1.1, "host stack", "#8d99ae")
        for i, name in enumerate(ports):
            y = 1.6 - 3.2 * (i + 0.5) / max(len(ports), 1)
            label = name + ("\n" + ", ".join(held.get(name, [])[:2]) if held.get(name) else "")
            nodes[name] = (2.4, y, label, PALETTE[i % len(PALETTE)])
        self.topo_nodes.data = {"x": [v[0] for v in nodes.values()],
                                "y": [v[1] for v in nodes.values()],
                                "label": [v[2] for v in nodes.values()],
                                "color": [v[3] for v in nodes.values()]}
        edges = []  # (from, to, label, dropping)
        drops = rate("nic", 2)
        edges.append(("nic", "switch", f"in {rate('nic', 1):.0f}/s, out {rate('nic', 0):.0f}/s"
                      + (f", drop {drops:.0f}/s" if drops else ""), drops > 0))
        if host:
            edges.append(("nic", "host", f"to host {rate('nic', 3):.0f}/s", False))
        for name in ports:
            d = rate(name, 2)
            edges.append(("switch", name, f"tx {rate(name, 0):.0f}/s, rx {rate(name, 1):.0f}/s"
                          + (f", drop {d:.0f}/s" if d else ""), d > 0))
        data: dict[str, list[Any]] = {k: [] for k in self.topo_edges.data}
        for a, b, label, dropping in edges:
            (x0, y0), (x1, y1) = nodes[a][:2], nodes[b][:2]
            data["x0"].append(x0)
            data["y0"].append(y0)
            data["x1"].append(x1)
            data["y1"].append(y1)
            data["color"].append("#e76f51" if dropping else "#6c757d")
            data["width"].append(4 if dropping else 2)
            data["lx"].append((x0 + x1) / 2)
            data["ly"].append((y0 + y1) / 2 + 0.05)
            data["label"].append(label)
            data["edge"].append(f"{a}-{b}")
        self.topo_edges.data = data

    def _add_series(self, name: str) -> None:
        """Columns and lines for a port (or the NIC) seen for the first time."""
        n = len(self.rates.data["t"])
        color = PALETTE[len(self._series) % len(PALETTE)]
        self._series.append(name)
        self.rates.data.update({f"fwd:{name}": [float("nan")] * n,
                                f"drop:{name}": [float("nan")] * n})
        self._rates_fig.line("t", f"fwd:{name}", source=self.rates, color=color,
                             line_width=2, legend_label=name)
        self._rates_fig.line("t", f"drop:{name}", source=self.rates, color=color,
                             line_width=2, line_dash="dashed", legend_label=name)

    # --- actions ---------------------------------------------------------------------

    def _say(self, text: str, ok: bool = True) -> None:
        color = "#2a9d8f" if ok else "#e76f51"
        self.status.value = f"<span style='color:{color}'>{html.escape(text)}</span>"

    @property
    def port(self) -> Any:
        """The port selected in the panel, or None."""
        return self._ports.get(self.port_select.value)

    def create_port(self) -> None:
        name = self.port_name.value.strip()
        try:
            self._ports[name] = self.sw.port(name)
        except (MiniStackError, ValueError) as e:
            self._say(f"PortError: {e}", ok=False)
            return
        self.port_select.options = list(self._ports)
        self.port_select.value = name
        self._say(f"port {name} created")
        self.update_explain()

    def close_port(self) -> None:
        p = self.port
        if p is None:
            return
        p.close()
        del self._ports[p.name]
        self.port_select.options = list(self._ports)
        self._refresh_bindings()
        self._say(f"port {p.name} closed")

    def bind(self) -> None:
        p = self.port
        if p is None:
            self._say("create a port first", ok=False)
            return
        proto: Any = self.bind_proto.value
        proto = int(proto) if str(proto).isdigit() else proto
        try:
            b = p.bind(self.bind_ip.value, proto, self.bind_port.value)
        except MiniStackError as e:
            reason = getattr(e, "reason", None)
            self._say(f"BindError {reason}: {e}" if reason else str(e), ok=False)
            return
        self._refresh_bindings()
        self._say(f"{p.name} bound {b}")
        self.apply_preset()

    def unbind(self) -> None:
        b = self.bindings_list.value
        if b is None or self.port is None:
            return
        try:
            self._ports[b.port].unbind(b)
        except MiniStackError as e:
            self._say(f"{type(e).__name__} {getattr(e, 'reason', '')}: {e}", ok=False)
            return
        self._refresh_bindings()
        self._say(f"unbound {b}")

    def _refresh_bindings(self) -> None:
        mine = [b for b in self.sw.bindings() if b.port in self._ports]
        self.bindings_list.options = [(f"{b.port}: {b}", b) for b in mine]

    def apply_preset(self) -> None:
        """Fill the crafter from the selected port's first binding and the preset."""
        p = self.port
        mine = [b for b in self.sw.bindings() if p is not None and b.port == p.name]
        f = self.f
        if mine:
            b = mine[0]
            f["src_ip"].value, f["protocol"].value, f["sport"].value = (
                b.ip, b.protocol, b.local_port)
            f["dst_ip"].value = "fd00::9" if ":" in b.ip else "10.0.0.9"
        f["src_mac"].value = self.sw.mac
        self.flags = {"fragment": False, "vlan": False, "arp": False}
        preset = self.preset.value
        if preset == "spoofed source IP":
            f["src_ip"].value = "fd00::66" if ":" in f["src_ip"].value else "10.0.0.66"
        elif preset == "spoofed source port":
            f["sport"].value = f["sport"].value + 1
        elif preset == "wrong protocol":
            f["protocol"].value = "tcp" if f["protocol"].value != "tcp" else "udp"
        elif preset == "spoofed MAC":
            f["src_mac"].value = "02:66:66:66:66:66"
        elif preset == "fragment":
            self.flags["fragment"] = True
        elif preset == "VLAN-tagged":
            self.flags["vlan"] = True
        elif preset == "ARP request":
            self.flags["arp"] = "request"
        elif preset == "ARP reply":
            self.flags["arp"] = "reply"
        self.update_explain()

    def frame(self) -> bytes:
        """The frame the crafter describes now."""
        return craft({**{k: v.value for k, v in self.f.items()}, **self.flags})

    def update_explain(self) -> None:
        p = self.port
        if p is None:
            self.explain_line.value = "<i>create a port to see verdicts</i>"
            return
        try:
            v = self.sw.explain(p.name, self.frame())
        except Exception as e:  # noqa: BLE001 - half-typed fields: say so, do not crash
            self.explain_line.value = f"<i>cannot build the frame yet: {html.escape(str(e))}</i>"
            return
        color = {"forward": "#2a9d8f", "local": "#457b9d"}.get(v.action, "#e76f51")
        what = {"forward": f"forward to {v.to}",
                "local": "local: handled by the switch" + (", answered" if v.to else "")
                }.get(v.action, f"drop: {v.reason}")
        self.explain_line.value = (f"<b style='color:{color}'>{html.escape(what)}</b> — "
                                   f"{html.escape(v.detail)}")

    def send(self, n: int) -> None:
        p = self.port
        if p is None:
            self._say("create a port first", ok=False)
            return
        try:
            frame = self.frame()
        except Exception as e:  # noqa: BLE001
            self._say(f"cannot build the frame: {e}", ok=False)
            return
        sent = 0
        while sent < n:  # in batches, so a large N never builds one huge buffer
            sent += p.send_batch([frame] * min(1024, n - sent))
        self._say(f"{p.name} sent {sent} frame{'s' if sent != 1 else ''}")

    def export_drops(self, path: str = "drops.pcapng") -> str:
        """Write the drop log's frames to a pcapng file for Wireshark, each with its reason,
        direction, port and the binding it was checked against as its comment (what
        `ministack capture --drops` writes); returns the path."""
        from ministack.pcapng import PcapngWriter, packet_of

        drops = self.sw.drops(limit=1024)
        with open(path, "wb") as f:
            out = PcapngWriter(f)
            for d in drops:
                d["nearest"] = self.sw.drop_nearest(d)
                packet_of(out, d)
        self._say(f"{len(drops)} dropped frames written to {os.path.abspath(path)}")
        return os.path.abspath(path)

    def export_rx(self, path: str | None = None) -> str:
        """Drain the selected port's received frames into a pcapng file (one interface,
        the port; each frame's comment says it was delivered there), stamped with the
        export's time: a port's ring keeps no arrival times."""
        from ministack.pcapng import PcapngWriter

        p = self.port
        if p is None:
            raise MiniStackError("no port selected")
        frames = self._rx.setdefault(p.name, [])
        while got := p.recv_batch(256, timeout=0):
            frames.extend(got)
        path = path or f"{p.name}-rx.pcapng"
        now = time.time()
        with open(path, "wb") as f:
            out = PcapngWriter(f)
            for frame in frames:
                out.packet(p.name, frame, now, f"delivered to {p.name}", "rx")
        self._say(f"{len(frames)} frames received by {p.name} written to {os.path.abspath(path)}")
        return os.path.abspath(path)

    # --- live view --------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the counters once and update the counters, plots and drop log (safe to
        call while the live refresh runs)."""
        with self._refresh_lock:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        st = self.sw.stats()
        now = time.monotonic()
        # Per series: (frames forwarded from or delivered to it, frames dropped).
        totals = {n: (p["tx"]["frames"] + p["rx"]["frames"], sum(p["drops"].values()))
                  for n, p in st["ports"].items()}
        totals["nic"] = (st["nic"]["tx"]["frames"] + st["nic"]["rx"]["frames"],
                         sum(st["nic"]["drops"].values()))
        nic = st["nic"]
        self.counters.value = self._counters_html(st)
        if self.rates is not None and self._last is not None:
            t0, prev = self._last
            dt = max(now - t0, 1e-6)
            for name in totals:
                if name not in self._series:
                    self._add_series(name)
            point: dict[str, list[float]] = {"t": [now - self._t_start]}
            # One value for every column the source has, whoever added it: a stream that
            # misses one is refused, and that froze the live view in a browser.
            for col in list(self.rates.data):
                if col == "t":
                    continue
                kind, name = col.split(":", 1)
                # A port created since the last refresh started from zero.
                cur, old = totals.get(name), prev.get(name, (0, 0))
                i = 0 if kind == "fwd" else 1
                point[col] = [(cur[i] - old[i]) / dt if cur is not None else float("nan")]
            self.rates.stream(point, rollover=MAX_POINTS)
        if self._last is None:
            self._t_start = now
        self._last = (now, totals)
        if self.reasons is not None:
            self._update_topology(st, now)
            by_reason = {r: 0 for r in self.reasons.data["reason"]}
            for p in list(st["ports"].values()) + [nic]:
                for r, n in p["drops"].items():
                    by_reason[r] = by_reason.get(r, 0) + n
            self.reasons.data = {"reason": list(by_reason), "drops": list(by_reason.values())}
        drops = self.sw.drops(limit=20)
        seqs = [d["seq"] for d in reversed(drops)]
        if seqs != self._drops_shown:  # new options only when there are new drops, so a
            self._drops_shown = seqs   # pick survives the refreshes
            picked = self.drop_pick.value
            self.drop_pick.options = [
                (f"#{d['seq']} {d['port']} {d['direction']} {d['reason']}: "
                 f"{frame_summary(d['frame'])}", d["seq"]) for d in reversed(drops)]
            self.drop_pick.value = picked if picked in seqs else None
        self.drop_log.value = "<table>" + "".join(
            f"<tr><td>{datetime.datetime.fromtimestamp(d['time']).strftime('%H:%M:%S.%f')[:-3]}"
            f"</td><td>{html.escape(d['port'])}</td><td>{html.escape(d['reason'])}</td>"
            f"<td>{html.escape(frame_summary(d['frame']))}</td></tr>" for d in reversed(drops)
        ) + "</table>"

    def counter_rows(self, st: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The counters table's rows, in the order "sort by" gives: port, tx, rx, local,
        drops, then one count per reason."""
        st = st or self.sw.stats()
        rows = []
        for name, p in [*st["ports"].items(), ("nic", st["nic"])]:
            row = {"port": name, "tx": p["tx"]["frames"], "rx": p["rx"]["frames"],
                   "local": p.get("local", {}).get("frames", 0),
                   "drops": sum(p["drops"].values())}
            row.update({r: p["drops"].get(r, 0) for r in COUNTER_REASONS})
            rows.append(row)
        key = self.sort_by.value
        rows.sort(key=(lambda r: r["port"]) if key == "port" else (lambda r: -r[key]))
        return rows

    def _counters_html(self, st: dict[str, Any]) -> str:
        cols, key = COUNTER_COLUMNS, self.sort_by.value
        # A click on a heading picks its column in the "sort by" dropdown, as a person
        # would: the widget then tells the kernel, which redraws the table sorted.
        pick = ("var s=document.querySelector('.{cls} select');"
                "for(var o of s.options)if(o.text==='{col}')s.selectedIndex=o.index;"
                "s.dispatchEvent(new Event('change',{{bubbles:true}}))")
        head = "".join(
            f"<th style='padding:0 6px;cursor:pointer' title='sort by {c}' "
            f"onclick=\"{pick.format(cls=self._sort_class, col=c)}\">"
            f"{html.escape(c)}{' ▾' if c == key else ''}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td style='padding:0 6px'>{html.escape(str(r[c]))}</td>"
                             if r[c] or c in ("port", "tx", "rx", "drops") else "<td></td>"
                             for c in cols) + "</tr>"
            for r in self.counter_rows(st))
        # Seventeen columns outgrow a notebook cell: scroll sideways rather than cut off.
        return (f"<div style='overflow-x:auto'><table style='font-size:12px'><tr>{head}</tr>"
                f"{body}</table></div>")

    def inspect_drop(self, seq: int | None) -> str:
        """Show drop number ``seq`` of the drop log: the frame dissected by scapy, its
        bytes, the verdict on it now with the binding it nearly matched, and the bind that
        would have let it through. Returns the HTML shown."""
        from scapy.layers.l2 import Ether
        from scapy.utils import hexdump

        drop = next((d for d in self.sw.drops(limit=1024) if d["seq"] == seq), None)
        if drop is None:
            self.drop_detail.value = ""
            return ""
        frame = drop["frame"]
        port = "nic" if drop["direction"] == "rx" else drop["port"]
        try:
            v = self.sw.explain(port, frame)
            verdict = (f"<b>{html.escape(v.action)} {html.escape(v.reason or '')}"
                       f"({v.code})</b>: {html.escape(v.detail)}")
            if v.nearest:
                verdict += f"<br>nearest binding: {html.escape(v.nearest)}"
            if v.fix:
                verdict += f"<br>fix: <code>{html.escape(v.fix)}</code>"
        except MiniStackError as e:  # its port is gone
            verdict = html.escape(str(e))
        try:
            layers = Ether(frame).show(dump=True)
        except Exception as e:  # noqa: BLE001 - scapy on a hostile frame
            layers = f"scapy could not dissect it: {e}"
        when = datetime.datetime.fromtimestamp(drop["time"]).strftime("%H:%M:%S.%f")[:-3]
        out = (f"<div>drop #{seq} at {when}, {html.escape(drop['port'])} "
               f"{drop['direction']}: {html.escape(drop['reason'])}({drop['code']})</div>"
               f"<div>now: {verdict}</div>"
               f"<pre style='font-size:11px'>{html.escape(layers)}</pre>"
               f"<pre style='font-size:11px'>{html.escape(hexdump(frame, dump=True))}</pre>")
        self.drop_detail.value = out
        return out

    def start(self) -> None:
        """Refresh refresh_hz times a second on a background thread."""
        if self._timer is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(1.0 / self.refresh_hz):
                try:
                    self.refresh()
                except MiniStackError:
                    return  # the switch went away: nothing left to watch
                except Exception as e:  # noqa: BLE001 - a frozen view would hide it
                    self._say(f"live view: {type(e).__name__}: {e}", ok=False)

        self._timer = threading.Thread(target=loop, name="ministack-panel", daemon=True)
        self._timer.start()

    def stop(self) -> None:
        """Stop the live refresh."""
        self._stop.set()
        if self._timer is not None:
            self._timer.join(2.0)
            self._timer = None

    def close(self) -> None:
        """Stop the timers and close the widgets (the switch and its ports stay)."""
        self.stop()
        super().close()
