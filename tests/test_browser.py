"""Real-browser tests: JupyterLab, Debian's chromium driven by Playwright. Lab 01 (the
instructor's version, answers in) run, the
panel's Send clicked with a spoofed preset, and the drop count seen to rise; lab 07 run,
its three stacks in the panel. The screenshots go to artifacts/ (see the README)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import need, need_module

ROOT = Path(__file__).resolve().parent.parent
# Debian's chromium; elsewhere (Ubuntu's is a snap wrapper) the one `playwright install`
# fetched, which is what ./setup.sh does there.
CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def playwright_chromium() -> bool:
    return any(Path.home().glob(".cache/ms-playwright/chromium-*"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def page_at(url: str, what: str) -> Iterator[Any]:
    """Debian's chromium (or Playwright's), headless, on ``url`` once ``what`` serves it."""
    sync_api = need_module("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        deadline = time.monotonic() + 90
        while True:  # the server takes a moment to come up
            try:
                page.goto(url, timeout=20_000)
                break
            except sync_api.Error:
                assert time.monotonic() < deadline, f"{what} did not come up"
                time.sleep(1)
        yield page
        browser.close()


@contextmanager
def lab_in_browser(notebook: str) -> Iterator[Any]:
    """JupyterLab on a copy of one lab, open in chromium, every cell run: the page."""
    need(CHROMIUM or playwright_chromium(), "a chromium (./setup.sh installs Debian's)")
    need(shutil.which("jupyter", path=os.path.dirname(sys.executable)),
         "JupyterLab (the lab extra, ./setup.sh)")
    need_module("playwright.sync_api")
    port = free_port()
    # A copy of the labs: JupyterLab's autosave must never write outputs into the repo's.
    labs = Path(tempfile.mkdtemp(prefix="ministack-browser-"))
    # The instructor's version (labs/source), which runs to the end with its answers in.
    shutil.copy(ROOT / "labs" / "source" / Path(notebook).stem / notebook, labs)
    lab = subprocess.Popen([sys.executable, "-m", "ministack", "lab", "--no-browser", "--port",
                            str(port), "--dir", str(labs)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        assert lab.stdout is not None
        url = lab.stdout.readline().split("open ", 1)[1].strip()
        token = url.split("token=")[1]
        nb_url = f"http://localhost:{port}/lab/tree/{notebook}?token={token}"
        with page_at(nb_url, "JupyterLab") as page:
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            page.wait_for_function("() => document.body.innerText.includes('Idle')",
                                   timeout=60_000)  # the kernel is up
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            yield page
    finally:
        lab.terminate()
        lab.wait(30)
        shutil.rmtree(labs, ignore_errors=True)


def choose_preset(page: Any, preset: str, verdict: str) -> None:
    """Pick a preset in the panel's crafter and wait for its predicted verdict."""
    page.locator(".widget-dropdown", has_text="preset").locator("select").select_option(preset)
    page.wait_for_function(f"() => document.body.innerText.includes({verdict!r})",
                           timeout=30_000)


def counter(page: Any, row: str, column: int) -> int:
    """A cell of the panel's counters table (columns: port, tx, rx, local, drops)."""
    cell = page.locator(f"xpath=//tr[td[1][normalize-space()='{row}']]/td[{column}]").first
    return int(cell.inner_text().strip() or 0)


def test_lab01_panel_in_a_real_browser() -> None:
    with lab_in_browser("01-ports-and-the-switch.ipynb") as page:
        send = page.get_by_role("button", name="Send", exact=True)
        send.wait_for(timeout=90_000)

        def drops() -> int:
            return counter(page, "app1", 5)

        page.wait_for_function(
            "() => document.body.innerText.includes('dropped as spoofed-src-port, and counted')",
            timeout=90_000)  # the last exercise's check passed
        # The live plots rendered: BokehJS came inline, nothing from the internet.
        assert "javascript error" not in page.inner_text("body")
        deadline = time.monotonic() + 30
        while page.locator("canvas").count() < 2:  # locators see into shadow roots
            assert time.monotonic() < deadline, "the bokeh plots did not render"
            time.sleep(0.5)
        before = drops()
        choose_preset(page, "spoofed source IP", "drop: spoofed-src-ip")
        send.click()
        deadline = time.monotonic() + 30
        while drops() <= before:
            assert time.monotonic() < deadline, "the drop count did not rise"
            time.sleep(0.2)
        time.sleep(1.0)  # let the plots draw a few refreshes
        page.locator("text=Counters").first.scroll_into_view_if_needed()
        (ROOT / "artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "artifacts" / "lab01-panel.png"), full_page=False)
        assert re.search(r"spoofed-src-ip", page.content())
        # The debugger: pick the newest drop, see it dissected, with the binding it nearly
        # matched and the bind that would have let it through.
        pick = page.locator(".widget-select", has_text="inspect").locator("select")
        pick.select_option(index=0)
        page.wait_for_function(
            "() => document.body.innerText.includes('nearest binding:') && "
            "document.body.innerText.includes('###[ Ethernet ]###')", timeout=30_000)
        detail = page.locator("text=nearest binding:").first
        detail.scroll_into_view_if_needed()
        page.screenshot(path=str(ROOT / "artifacts" / "lab01-inspect.png"), full_page=False)
        text = page.inner_text("body")
        assert "drop spoofed-src-ip(8)" in text and "fix: none: " in text, text[-3000:]
        # The counters sorted by a click on a reason's heading, and the topology below.
        page.locator("th", has_text="spoofed-src-ip").first.click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('th')].some(t => t.innerText == "
            "'spoofed-src-ip ▾')", timeout=30_000)
        picked = page.locator(".widget-dropdown", has_text="sort by").locator("select")
        assert picked.evaluate("s => s.options[s.selectedIndex].text") == "spoofed-src-ip"
        first = page.locator("xpath=//tr[th[normalize-space()='port']]/following-sibling::tr"
                             "[1]/td[1]").first
        assert first.inner_text().strip() == "app1", first.inner_text()  # its drop sorts first
        # The topology is a canvas that bokeh redraws (and replaces) as it refreshes: scroll
        # by the drop log's heading just under it instead.
        page.locator("text=Drop log").first.scroll_into_view_if_needed()
        page.mouse.wheel(0, -350)
        time.sleep(1.0)
        page.screenshot(path=str(ROOT / "artifacts" / "lab01-topology.png"), full_page=False)
        assert page.locator("canvas").count() >= 3  # rates, reasons and the topology


def test_lab07_stacks_side_by_side_in_a_real_browser() -> None:
    """Lab 07 as a student sees it: three stacks' ports in the panel, lwIP's neighbour
    answers under local, the broken stack's drops in the counters and the drop log."""
    need(os.geteuid() == 0, "root for lab 07 (CI runs as root)")
    with lab_in_browser("07-stacks-side-by-side.ipynb") as page:
        page.wait_for_function(
            "() => document.body.innerText.includes('your TAP-style stack echoed the peer')",
            timeout=120_000)
        page.wait_for_function("() => document.body.innerText.includes('Cleaned up')",
                               timeout=60_000)  # the panel has stopped refreshing
        assert "javascript error" not in page.inner_text("body")
        for _ in range(20):  # JupyterLab re-attaches cells as it scrolls (windowing)
            try:
                page.locator("xpath=//tr[td[1][normalize-space()='lwip']]").first \
                    .scroll_into_view_if_needed(timeout=2_000)
                break
            except Exception:  # noqa: BLE001 - detached mid-scroll: try again
                time.sleep(0.5)
        time.sleep(1.0)
        (ROOT / "artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "artifacts" / "lab07-panel.png"), full_page=False)
        assert counter(page, "lwip", 4) >= 1, "lwIP's ARP, answered by the switch"
        assert counter(page, "lwip", 5) == 0
        assert counter(page, "pystack", 5) >= 3
        assert "spoofed-src-port" in page.content()


def see(page: Any, text: str, timeout: float = 30) -> None:
    """Wait until the page's text shows ``text`` (a listbox's options included: their
    spaces come as no-break spaces)."""
    deadline = time.monotonic() + timeout
    while text not in page.inner_text("body").replace("\xa0", " "):
        if time.monotonic() > deadline:
            page.screenshot(path=str(ROOT / "artifacts" / "kiosk-failed.png"), full_page=True)
            body = page.inner_text("body")
            raise AssertionError(f"{text!r} never showed (artifacts/kiosk-failed.png): "
                                 f"{body[-600:]}")
        time.sleep(0.3)


def origin(page: Any) -> float | None:
    """When the page was loaded; None while it is being replaced."""
    try:
        return page.evaluate("performance.timeOrigin")
    except Exception:  # noqa: BLE001 - "execution context was destroyed": navigating
        return None


def kernels(server: int) -> list[int]:
    """Pids of the kernels a Voilà server started."""
    out = subprocess.run(["ps", "--ppid", str(server), "-o", "pid=,args="],
                         capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ipykernel" in line]


def test_kiosk_a_visitor_drives_and_it_recovers() -> None:
    """`ministack demo --kiosk` in chromium: no code on the page; a visitor picks a spoofed
    preset, sends it and sees it dropped with its reason; then types a port number no
    header can hold, and the kiosk puts itself back within seconds; then its kernel dies,
    and the page reloads itself onto a new one."""
    need(CHROMIUM or playwright_chromium(), "a chromium (./setup.sh installs Debian's)")
    need(shutil.which("voila", path=os.path.dirname(sys.executable)),
         "Voilà (the lab extra, ./setup.sh)")
    need_module("playwright.sync_api")
    port = free_port()
    kiosk = subprocess.Popen([sys.executable, "-m", "ministack", "demo", "--kiosk", "--port",
                              str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, env=dict(os.environ, MINISTACK_KIOSK_IDLE="600",
                                                 MINISTACK_KIOSK_RELOAD="8"))
    try:
        assert kiosk.stdout is not None and "open http://" in kiosk.stdout.readline()
        with page_at(f"http://localhost:{port}/", "the kiosk") as page:
            send = page.get_by_role("button", name="Send", exact=True)
            send.wait_for(timeout=120_000)
            body = page.inner_text("body")
            assert "Pick a frame" in body and "from ministack" not in body  # no code
            choose_preset(page, "spoofed source IP", "drop: spoofed-src-ip")
            send.click()
            see(page, "spoofed-src-ip: udp 10.0.0.66")  # in the drop inspector's list
            (ROOT / "artifacts").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "artifacts" / "kiosk.png"), full_page=False)
            # A visitor breaks it: a port number no header can hold, then Send.
            sport = page.locator("xpath=//label[normalize-space()='src port']"
                                 "/following-sibling::input").first
            sport.fill("70000")
            sport.press("Enter")
            # The verdict line grows with the error and moves Send: click once it has.
            see(page, "cannot build the frame yet")
            send.click()
            see(page, "The demo was reset")
            assert sport.input_value() == "5000"  # the preset's port is back
            assert "forward to wire" in page.inner_text("body")
            page.screenshot(path=str(ROOT / "artifacts" / "kiosk-recovered.png"),
                            full_page=False)
            # Something no widget can cause: the kernel dies.
            # (Every kernel of the server: a page load that timed out and was retried left
            # one of its own.)
            loaded, dead = origin(page), kernels(kiosk.pid)
            assert dead
            for pid in dead:
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 90
            while origin(page) == loaded:
                assert time.monotonic() < deadline, "the page did not reload"
                time.sleep(0.5)
            send.wait_for(timeout=120_000)
            see(page, "Pick a frame")
            assert set(kernels(kiosk.pid)) - set(dead), "the reloaded page has no kernel"
    finally:
        kiosk.terminate()
        kiosk.wait(30)
