"""Real-browser tests: JupyterLab, Debian's chromium driven by Playwright. Lab 01 (the
instructor's version, answers in) run, the
panel's Send clicked with a spoofed preset, and the drop count seen to rise; lab 07 run,
its three stacks in the panel. The screenshots go to artifacts/ (see the README)."""
from __future__ import annotations

import os
import re
import shutil
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


@contextmanager
def lab_in_browser(notebook: str) -> Iterator[Any]:
    """JupyterLab on a copy of one lab, open in chromium, every cell run: the page."""
    need(CHROMIUM or playwright_chromium(), "a chromium (./setup.sh installs Debian's)")
    need(shutil.which("jupyter", path=os.path.dirname(sys.executable)),
         "JupyterLab (the lab extra, ./setup.sh)")
    sync_api = need_module("playwright.sync_api")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            deadline = time.monotonic() + 90
            while True:  # JupyterLab takes a moment to come up
                try:
                    page.goto(nb_url, timeout=10_000)
                    break
                except sync_api.Error:
                    assert time.monotonic() < deadline, "JupyterLab did not come up"
                    time.sleep(1)
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            page.wait_for_function("() => document.body.innerText.includes('Idle')",
                                   timeout=60_000)  # the kernel is up
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            yield page
            browser.close()
    finally:
        lab.terminate()
        lab.wait(30)
        shutil.rmtree(labs, ignore_errors=True)


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
        preset = page.locator(".widget-dropdown", has_text="preset").locator("select")
        preset.select_option("spoofed source IP")
        page.wait_for_function(
            "() => document.body.innerText.includes('drop: spoofed-src-ip')",
            timeout=30_000)
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
        # The counters sorted by a reason's column, and the topology below the plots.
        sort = page.locator(".widget-dropdown", has_text="sort by").locator("select")
        sort.select_option("spoofed-src-ip")
        page.wait_for_function(
            "() => [...document.querySelectorAll('th')].some(t => t.innerText == "
            "'spoofed-src-ip')", timeout=30_000)
        first = page.locator("xpath=//tr[th[normalize-space()='port']]/following-sibling::tr"
                             "[1]/td[1]").first
        assert first.inner_text().strip() == "app1", first.inner_text()  # its drop sorts first
        page.locator("canvas").nth(2).scroll_into_view_if_needed()
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
