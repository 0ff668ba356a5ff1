"""summary.html and compare.html in a real browser: headless Chromium driven over the DevTools
protocol (CDP on --remote-debugging-pipe, no port opened).

Each page is loaded from a file:// URL with every host name unresolvable. The checks: the page
renders, its script ran without an error, the charts' canvases hold drawn candles and curves,
the page's Content-Security-Policy reported no violation, and the browser's network log holds
no request but the page's own file -- also for a copy of the page without its policy, so that
"nothing is fetched" does not rest on the policy alone. With JavaScript off the figures and
tables are all there and each chart shows its note.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from storage.reports import COMPARE_HTML_NAME, render_compare_html, write_compare_html, write_run_reports

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_reports import make_inputs, realistic_run, sample_comparison  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (apt-get install chromium)")

UP_RGB, DOWN_RGB = (0x26, 0xA6, 0x9A), (0xEF, 0x53, 0x50)  # report.js candle colours
BASE_RGB, OTHER_RGB = (0x25, 0x63, 0xEB), (0xEA, 0x58, 0x0C)  # the two runs' colours


class Browser:
    """Headless Chromium with one page, spoken to over the DevTools pipe (fds 3 and 4)."""

    def __init__(self, profile: Path, *, width: int = 1280, height: int = 2000):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # high copies, so that moving them onto 3 and 4 in the child cannot clobber each other
        keep_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 100)
        keep_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 100)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def onto_3_and_4():
            os.dup2(keep_r, 3)
            os.dup2(keep_w, 4)

        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-extensions",
             "--disable-quic", "--host-resolver-rules=MAP * ~NOTFOUND",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "--hide-scrollbars",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4, keep_r, keep_w), preexec_fn=onto_3_and_4)
        os.close(keep_r)
        os.close(keep_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        # every Content-Security-Policy violation the page meets, kept where a test can read it
        self.call("Page.addScriptToEvaluateOnNewDocument", session=True, source=(
            "window.__violations = [];document.addEventListener('securitypolicyviolation',"
            "function (e) { window.__violations.push(e.violatedDirective + ' ' + e.blockedURI); });"))

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, *, session: bool = False, timeout: float = 30.0, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            ev = self._read_message(deadline)
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, *, scripts: bool = True) -> None:
        self.call("Emulation.setScriptExecutionDisabled", session=True, value=not scripts)
        self.call("Page.navigate", session=True, url=url)
        self.wait_event("Page.loadEventFired")

    def wait_for(self, expression: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{expression} stayed false")

    def screenshot(self, path: Path, clip: dict | None = None, scale: float = 1) -> None:
        params = {"format": "png", "captureBeyondViewport": True}
        if clip:
            params["clip"] = {**clip, "scale": scale}
        data = self.call("Page.captureScreenshot", session=True, **params)["data"]
        path.write_bytes(base64.b64decode(data))

    def requested_urls(self) -> list[str]:
        return [ev["params"]["request"]["url"] for ev in self.events
                if ev.get("method") == "Network.requestWillBeSent"]

    def errors(self) -> list[str]:
        out = []
        for ev in self.events:
            if ev.get("method") == "Runtime.exceptionThrown":
                out.append(json.dumps(ev["params"]["exceptionDetails"])[:500])
            elif ev.get("method") == "Log.entryAdded" and ev["params"]["entry"]["level"] == "error":
                out.append(ev["params"]["entry"]["text"])
        return out

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._to_browser)
        os.close(self._from_browser)


# Counts the pixels of a colour on the canvases of one chart (lightweight-charts draws on
# several stacked canvases); `near` allows for anti-aliasing.
CANVAS_PIXELS = """
(() => {
  const el = document.getElementById(%(id)s);
  const want = %(colours)s;
  const counts = want.map(() => 0);
  let canvases = 0;
  for (const c of el.querySelectorAll('canvas')) {
    if (!c.width || !c.height) continue;
    canvases += 1;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] < 200) continue;
      want.forEach((w, k) => {
        if (Math.abs(d[i] - w[0]) < 12 && Math.abs(d[i + 1] - w[1]) < 12 && Math.abs(d[i + 2] - w[2]) < 12) counts[k] += 1;
      });
    }
  }
  return {canvases, counts, drawn: el.dataset.drawn || '', bars: el.dataset.bars || '',
          markers: el.dataset.markers || '', points: el.dataset.points || ''};
})()
"""


def canvas_pixels(browser: Browser, chart_id: str, colours) -> dict:
    return browser.evaluate(CANVAS_PIXELS % {"id": json.dumps(chart_id), "colours": json.dumps(colours)})


def hover_sweep(browser: Browser, chart_id: str, steps: int = 120) -> list[str]:
    """Move the mouse across a chart's plot from left to right; the readout's text at each step."""
    box = browser.evaluate(f"(() => {{ const r = document.getElementById({json.dumps(chart_id)})"
                           ".getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()")
    left, top, width, height = box
    seen = []
    for i in range(steps):
        x = left + 10 + (width - 100) * i / (steps - 1)  # the price scale is on the right
        browser.call("Input.dispatchMouseEvent", session=True, type="mouseMoved", x=x, y=top + height / 2)
        seen.append(browser.evaluate(
            f"document.querySelector('#{chart_id} .chart-tip').textContent"))
    return seen


@pytest.fixture
def browser():
    profile = Path(tempfile.mkdtemp(prefix="report-browser-"))
    b = Browser(profile)
    try:
        yield b
    finally:
        b.close()
        shutil.rmtree(profile, ignore_errors=True)


def without_csp(page: str) -> str:
    out, n = re.subn(r'<meta http-equiv="Content-Security-Policy"[^>]*>\n?', "", page)
    assert n == 1
    return out


def check_no_network(browser: Browser, page_url: str) -> None:
    urls = browser.requested_urls()
    assert urls and urls[0] == page_url
    assert set(urls) == {page_url}, urls
    assert browser.evaluate("window.__violations") == []


def test_summary_draws_candles_markers_and_equity_offline(tmp_path, browser):
    run = realistic_run(minutes=90)
    run_dir = write_run_reports(tmp_path / "runs", "run-1", **run)
    page = run_dir / "summary.html"
    url = page.resolve().as_uri()

    browser.open(url)
    assert browser.wait_for("document.body.dataset.charts") == "2"
    # lightweight-charts draws on the next animation frame: wait for the candles to show
    browser.wait_for(f"({CANVAS_PIXELS % {'id': json.dumps('price-chart'), 'colours': json.dumps([UP_RGB])}}).counts[0] > 0")
    price = canvas_pixels(browser, "price-chart", [UP_RGB, DOWN_RGB])
    equity = canvas_pixels(browser, "equity-chart", [(0x16, 0xA3, 0x4A), (0xDC, 0x26, 0x26)])

    assert price["drawn"] == "1" and price["canvases"] >= 2
    assert price["bars"] == str(len(run["candles"]))
    assert price["markers"] == str(len(run["fills"]))
    up, down = price["counts"]
    assert up > 500 and down > 500, price  # both kinds of candle bodies are on the canvas
    assert equity["drawn"] == "1" and int(equity["points"]) > 10
    assert sum(equity["counts"]) > 200, equity  # the curve, green above the start or red below
    # the readout under the crosshair: the latest candle's OHLC in UTC
    tip = browser.evaluate("document.querySelector('#price-chart .chart-tip').textContent")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC +O [\d,]+\.\d +H [\d,]+\.\d +L ", tip), tip
    # moving the mouse along the chart, the readout follows it and names the fills of a bar
    seen = hover_sweep(browser, "price-chart")
    assert len(set(seen)) > 20
    fills = [t for t in seen if " @ " in t]
    assert fills, seen[:5]
    assert re.search(r"(BUY|SELL) 0\.113 @ [\d,]+\.\d \u00b7 2025-01-01 \d\d:\d\d:\d\d UTC \u00b7 "
                     r"(entry|exit|stop|target)", fills[0]), fills[0]
    assert browser.errors() == []
    check_no_network(browser, url)
    assert browser.evaluate("!!document.querySelector('#price-chart a#tv-attr-logo')")
    assert browser.evaluate(
        "document.querySelector('footer a').href") == "https://www.tradingview.com/"


def test_summary_without_its_policy_still_fetches_nothing(tmp_path, browser):
    run_dir = write_run_reports(tmp_path / "runs", "run-1", **realistic_run(minutes=30))
    bare = tmp_path / "bare.html"
    bare.write_text(without_csp((run_dir / "summary.html").read_text(encoding="utf-8")), encoding="utf-8")
    url = bare.resolve().as_uri()

    browser.open(url)
    assert browser.wait_for("document.body.dataset.charts") == "2"
    time.sleep(0.5)  # anything the charts would load late
    assert browser.errors() == []
    check_no_network(browser, url)


def test_summary_reads_without_javascript(tmp_path, browser):
    run = realistic_run(minutes=30)
    run_dir = write_run_reports(tmp_path / "runs", "run-1", **run)
    url = (run_dir / "summary.html").resolve().as_uri()

    browser.open(url, scripts=False)
    text = browser.evaluate("document.body.innerText")
    assert browser.evaluate("document.body.dataset.charts") is None  # the script did not run
    assert text.count("The interactive chart needs JavaScript") == 2
    rows = browser.evaluate("document.querySelectorAll('table.fills tbody tr').length")
    assert rows == len(run["fills"])
    for words in ("Key figures", "Final equity", "Fills", "Settings", "Feed health", "Events",
                  "All report fields", "start 10,000.00", "TradingView"):
        assert words.lower() in text.lower(), words  # innerText: as shown, some in capitals
    assert browser.evaluate("document.querySelectorAll('canvas').length") == 0
    check_no_network(browser, url)


def test_compare_draws_both_runs_offline(tmp_path, browser):
    comparison = sample_comparison()
    path = write_compare_html(tmp_path, comparison)
    assert path == tmp_path / COMPARE_HTML_NAME
    url = path.resolve().as_uri()

    browser.open(url)
    assert browser.wait_for("document.body.dataset.charts") == "2"
    browser.wait_for(f"({CANVAS_PIXELS % {'id': json.dumps('price-chart'), 'colours': json.dumps([UP_RGB])}}).counts[0] > 0")
    price = canvas_pixels(browser, "price-chart", [UP_RGB, DOWN_RGB, BASE_RGB, OTHER_RGB])
    equity = canvas_pixels(browser, "equity-chart", [BASE_RGB, OTHER_RGB])

    n_fills = sum((p["base"] is not None) + (p["other"] is not None) for p in comparison["pairs"])
    assert price["bars"] == str(len(comparison["candles"]))
    assert price["markers"] == str(n_fills)
    up, down, base, other = price["counts"]
    assert up > 100 and down > 100, price
    assert base > 20 and other > 20, price  # both runs' markers, each in its colour
    assert equity["counts"][0] > 100 and equity["counts"][1] > 100, equity  # both curves
    text = browser.evaluate("document.body.innerText")
    assert "Differs:" in text and "execution_latency_ms" in text
    assert browser.errors() == []
    check_no_network(browser, url)


def test_compare_without_its_policy_fetches_nothing_and_reads_without_javascript(tmp_path, browser):
    bare = tmp_path / "bare.html"
    bare.write_text(without_csp(render_compare_html(sample_comparison())), encoding="utf-8")
    url = bare.resolve().as_uri()

    browser.open(url)
    assert browser.wait_for("document.body.dataset.charts") == "2"
    time.sleep(0.5)
    assert browser.errors() == []
    check_no_network(browser, url)

    browser.events.clear()
    browser.open(url, scripts=False)
    text = browser.evaluate("document.body.innerText")
    assert text.count("The interactive chart needs JavaScript") == 2
    assert "Fills side by side" in text and "Metrics" in text


def test_screenshot_of_a_summary_is_a_full_page(tmp_path, browser):
    run_dir = write_run_reports(tmp_path / "runs", "run-1", **make_inputs())
    browser.open((run_dir / "summary.html").resolve().as_uri())
    browser.wait_for("document.body.dataset.charts")
    shot = tmp_path / "shot.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000
