"""The ``--report`` pages in a real browser: headless Chromium (Debian's package; ``make test-slow``
installs it) opens each page from disk through the DevTools protocol. Each page must load, lay out
every plot with a real size, paint it (the screenshot holds the plot colours inside each plot's box),
and make the browser log nothing of level warning or error: no console message, no exception, no
failed load. A page with a deliberate console error and a missing image checks that the check sees
both. Slow: it needs the browser, not the real assets; about 10 s on 2 busy cores."""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from test_report import ROWS_REPORT, TEXTS, bpb, demo_report, measurement
from tokenshift.report import Page, demo_page, evaluate_page, heal_page, measure_page, write_page
from tokenshift.report.plots import PALETTE

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SKIP_REASON = "chromium is not installed: `make test-slow` installs Debian's package (apt-get install -y chromium)"
WIDTH, HEIGHT = 1200, 2000


class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe``: it reads NUL-terminated JSON commands
    on its fd 3 and writes replies and events on its fd 4. Events are kept; ``problems()`` lists those
    of level warning or error."""

    def __init__(self, profile: Path) -> None:
        to_browser, self._send = os.pipe()
        self._receive, from_browser = os.pipe()

        def on_fds_3_and_4() -> None:  # runs in the child, before exec; copies above 9 first, as either end may be 3 or 4
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            preexec_fn=on_fds_3_and_4, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
                  session=True)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False, timeout: float = 30.0) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._send, json.dumps(message).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == self._next_id, timeout)
        assert "error" not in reply, (method, reply["error"])
        return reply.get("result", {})

    def open(self, url: str) -> None:
        """Navigate and wait for the load event, then a moment for anything logged late."""
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self._wait(lambda m: m.get("method") == "Page.loadEventFired", 30.0)
        self.call("Runtime.evaluate", {"expression": "new Promise(r => requestAnimationFrame(() => setTimeout(r, 300)))",
                                       "awaitPromise": True}, session=True)

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)["result"].get("value")

    def screenshot(self) -> bytes:
        """The whole page (not only the window), as PNG bytes."""
        size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}, session=True)
        return base64.b64decode(shot["data"])

    def problems(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
                found.append(f"log {params['entry']['level']}: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5.0)
        except (AssertionError, OSError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._send)
        os.close(self._receive)

    def _wait(self, wanted: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                raise TimeoutError(f"no reply from chromium (exit code {self.process.poll()})")
            ready, _, _ = select.select([self._receive], [], [], left)
            if ready:
                chunk = os.read(self._receive, 1 << 20)
                if not chunk:
                    raise TimeoutError("chromium closed its DevTools pipe")
                self._buffer += chunk


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip(SKIP_REASON)
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


def pages() -> dict[str, Page]:
    results = [bpb("smollm2-135m", t, b, tp) for t, b, tp in zip(TEXTS, (0.908, 1.917, 1.961), (0.2174, 0.369, 0.3433))]
    measurements = [measurement(tok, t, tp) for tok, tps in (("gpt2", (0.23, 0.41, 0.39)), ("qwen2.5", (0.22, 0.3, 0.29)))
                    for t, tp in zip(TEXTS, tps)]
    return {"demo": demo_page(demo_report()), "evaluate": evaluate_page(results), "measure": measure_page(measurements),
            "heal": heal_page(ROWS_REPORT)}


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@pytest.mark.parametrize("name", ["demo", "evaluate", "measure", "heal"])
def test_the_page_renders_its_plots_without_console_errors(browser, name, tmp_path):
    from PIL import Image

    page = pages()[name]
    path = write_page(page, tmp_path / f"{name}.html")
    browser.open(path.resolve().as_uri())
    assert browser.problems() == []
    assert browser.evaluate("document.title") == page.title
    boxes = browser.evaluate("[...document.querySelectorAll('figure.plot > svg')].map(s => { const r = s.getBoundingClientRect(); "
                             "return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })")
    assert len(boxes) == len(page.plots) >= 1
    shot = browser.screenshot()
    (tmp_path / f"{name}.png").write_bytes(shot)
    print(f"screenshot: {tmp_path / f'{name}.png'}")
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    assert image.width == WIDTH and image.height >= max(box["y"] + box["height"] for box in boxes)
    colours = {rgb(c) for c in PALETTE[:3]}
    for box in boxes:
        assert box["width"] > 500 and box["height"] > 200, box  # laid out at a readable size, not collapsed
        plot = image.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"])))
        pixels = np.asarray(plot).reshape(-1, 3)
        painted = float((pixels != 255).any(axis=1).mean())
        coloured = float(np.isin(pixels @ [65536, 256, 1], [r * 65536 + g * 256 + b for r, g, b in colours]).mean())
        assert painted > 0.02 and coloured > 0.002, (box, painted, coloured)  # axes, text and the series' own colours


def test_the_check_sees_a_console_error_and_a_failed_load(browser, tmp_path):
    path = tmp_path / "broken.html"
    path.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>broken</title></head>'
                    '<body><p>x</p><script>console.error("deliberate")</script><img src="missing.png"></body></html>')
    browser.open(path.as_uri())
    problems = browser.problems()
    assert any("deliberate" in p for p in problems) and any("missing.png" in p for p in problems), problems
