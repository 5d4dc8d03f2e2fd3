"""The poster demo as a page a passer-by drives (``ministack demo --kiosk``): two ports with
their bindings on the virtual NIC, a preset to pick, Send, and the verdict, counters, live
plots, topology and drop inspector of the lab's panel, with no code shown (Voilà serves
``ministack/kiosk.ipynb``). It looks after itself: whatever a visitor breaks (a field
typed wrong, a port or binding gone, the switch in trouble) is put back within seconds,
and after a while without visitors it starts over clean. Should its kernel die, the page
notices that the kiosk's heartbeat stopped and reloads itself, which starts a new one.

>>> k = Kiosk(watch=False, plots=False)
>>> sorted(p.name for p in k.sw.ports())
['app1', 'app2']
>>> k.close()
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

import ipywidgets as w

import ministack as ms
from ministack.lab import Panel

#: The demo's ports and what each binds.
DEMO_PORTS = {"app1": ("10.0.0.2", "udp", 5000), "app2": ("10.0.0.2", "tcp", 8080)}
#: Seconds an error stays on screen before the kiosk puts things back.
RECOVER_AFTER = 3.0
#: Seconds without a heartbeat after which the page reloads (MINISTACK_KIOSK_RELOAD).
RELOAD_AFTER = 20.0


def page_watchdog(seconds: float | None = None) -> Any:
    """The page's half of the watchdog, for the notebook to display before the Kiosk: a
    script that reloads the page when the kiosk's heartbeat (`.ms-kiosk-beat`, which the
    kernel's watchdog advances twice a second) has not moved for ``seconds``. Nothing in
    the kernel can mend a dead kernel; a reload makes Voilà start a new one.

    >>> "location.reload()" in page_watchdog(5).data
    True
    """
    from IPython.display import Javascript

    seconds = float(seconds if seconds is not None
                    else os.environ.get("MINISTACK_KIOSK_RELOAD", RELOAD_AFTER))
    # Before the first beat the notebook may still be building the demo: wait longer.
    return Javascript(f"""
(function () {{
  let last = null, since = Date.now();
  setInterval(function () {{
    const beat = document.querySelector('.ms-kiosk-beat');
    const now = beat ? beat.textContent : null;
    if (now !== null && now !== last) {{ last = now; since = Date.now(); }}
    else if (Date.now() - since > 1000 * (last === null ? 3 * {seconds} : {seconds})) {{
      location.reload();
    }}
  }}, 1000);
}})();
""")


class Kiosk(w.VBox):
    """The demo's widgets; ``idle_reset`` seconds without a visitor start it over (the
    MINISTACK_KIOSK_IDLE environment variable sets it for a whole server)."""

    def __init__(self, idle_reset: float | None = None, watch: bool = True,
                 plots: bool = True) -> None:
        self.idle_reset = float(idle_reset if idle_reset is not None
                                else os.environ.get("MINISTACK_KIOSK_IDLE", "180"))
        self._plots = plots
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.resets = 0
        self.sw: Any = None
        self.panel: Any = None
        self.notice = w.HTML()
        self.beat = w.HTML(layout=w.Layout(display="none"))  # page_watchdog() watches it
        self._beats = 0
        self.reset_btn = w.Button(description="Start over", icon="refresh")
        self.reset_btn.on_click(lambda _b: self.reset("started over"))
        super().__init__()
        self._build()
        self._thread: threading.Thread | None = None
        if watch:
            self._thread = threading.Thread(target=self._watch, name="ministack-kiosk",
                                            daemon=True)
            self._thread.start()

    # --- building ----------------------------------------------------------------------

    def _build(self) -> None:
        sw = ms.Switch()
        for name, (ip, proto, port) in DEMO_PORTS.items():
            sw.port(name).bind(ip, proto, port)
        panel = Panel(sw, refresh_hz=2 if self._plots else 0, plots=self._plots)
        panel.count.max = 10_000  # a visitor's xN stays a demo, not a load test
        panel.port_select.value = "app1"
        panel.apply_preset()
        panel.sort_by.layout.display = "none"
        for widget in [panel.preset, panel.port_select, *panel.f.values(), panel.count]:
            widget.observe(lambda _c: self._touched(), names="value")
        for button in (panel.send_btn, panel.sendn_btn):
            button.on_click(lambda _b: self._touched())
        old = self.panel, self.sw
        self.sw, self.panel, self._touch = sw, panel, time.monotonic()
        f = panel.f
        self.children = [
            w.HTML("<h2>MiniStack: a filtering switch between the NIC and user-space "
                   "stacks</h2><p>Two applications own ports: <b>app1</b> bound udp "
                   "10.0.0.2:5000, <b>app2</b> tcp 10.0.0.2:8080. Pick a frame, send it, "
                   "and watch the switch forward it or drop it, and say why.</p>"),
            w.HBox([panel.preset, panel.port_select]),
            w.HBox([f["src_mac"], f["src_ip"], f["protocol"]]),
            w.HBox([f["sport"], f["dst_ip"], f["dport"]]),
            panel.explain_line, w.HBox([panel.send_btn, panel.sendn_btn, panel.count]),
            panel.status, self.notice,
            *([panel.plot_widget] if panel.plot_widget is not None else []),
            w.HTML("<b>Counters</b> (click a heading to sort)"), panel.counters,
            panel.sort_by,  # hidden: the headings' clicks set it
            w.HTML("<b>Why was it dropped?</b> Pick a drop:"), panel.drop_pick,
            panel.drop_detail, self.reset_btn, self.beat,
        ]
        if old[0] is not None:
            old[0].close()
            old[1].close()

    def _touched(self) -> None:
        self._touch = time.monotonic()

    # --- looking after itself ------------------------------------------------------------

    def broken(self) -> str | None:
        """What a visitor broke, or None: a port or binding gone, an error on screen, a
        field no frame can be built from."""
        sw, panel = self.sw, self.panel
        try:
            have = {b.port: (b.ip, b.protocol, b.local_port) for b in sw.bindings()}
        except ms.MiniStackError as e:
            return f"the switch: {e}"
        if have != DEMO_PORTS:
            return "a port or a binding went missing"
        if "#e76f51" in panel.status.value:  # the panel's colour for what went wrong
            return "a frame could not be sent"
        if "cannot build the frame" in panel.explain_line.value:
            return "a field holds what no header can"
        return None

    def reset(self, why: str) -> None:
        """Start over: a new switch, the demo's ports, the fields as the preset has them."""
        with self._lock:
            self._build()
            self.resets += 1
        self.notice.value = f"<i>The demo was reset ({why}).</i>"

    def _watch(self) -> None:
        broken_since: float | None = None
        while not self._stop.wait(0.5):
            self._beats += 1
            self.beat.value = f'<span class="ms-kiosk-beat">{self._beats}</span>'
            try:
                problem = self.broken()
                now = time.monotonic()
                if problem is None:
                    broken_since = None
                elif broken_since is None:
                    broken_since = now
                elif now - broken_since >= RECOVER_AFTER:
                    self.reset(problem)
                    broken_since = None
                if now - self._touch > self.idle_reset and self.resets_pending():
                    self.reset("no visitor for a while")
            except Exception as e:  # noqa: BLE001 - the kiosk must outlive anything
                self.notice.value = f"<i>recovering from {type(e).__name__}</i>"
                try:
                    self.reset(type(e).__name__)
                except Exception:  # noqa: BLE001
                    pass

    def resets_pending(self) -> bool:
        """Anything to clean after an idle spell: frames sent, or fields changed."""
        st = self.sw.stats()
        return any(p["tx"]["frames"] or sum(p["drops"].values())
                   for p in st["ports"].values()) or self.panel.preset.value != "valid"

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.panel.close()
        self.sw.close()
        super().close()
