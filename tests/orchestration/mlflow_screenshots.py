"""Headless Chromium screenshots of the MLflow UI: an experiment's runs page (every nested run
expanded) and one run's metrics page, with the text each page shows.

    python tests/orchestration/mlflow_screenshots.py URL EXPERIMENT_ID RUN_ID OUT_DIR

writes ``OUT_DIR/runs.png``, ``runs.txt``, ``metrics.png`` and ``metrics.txt`` and prints their
paths as JSON. The UI draws itself with JavaScript, so Chromium runs with its DevTools protocol
on (``--remote-debugging-port``), driven through a minimal WebSocket client (standard library
only): load the page, click every row expander of the runs table until none is left (the UI
shows child runs collapsed), take the screenshot, read ``document.body.innerText``.
tests/orchestration/test_mlflow_ui.py runs it and checks the run names; it needs ``chromium``
(Debian: ``apt-get install chromium``; .ci/run installs it).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

WINDOW = (1600, 1000)
EXPANDER = 'button[data-component-id*="runnamecellrenderer"]'


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


class DevTools:
    """One page of Chromium, driven through the DevTools protocol over a WebSocket."""

    def __init__(self, ws_url: str) -> None:
        rest = ws_url.removeprefix("ws://")
        hostport, path = rest.split("/", 1)
        host, port = hostport.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(f"no WebSocket: {head[:200]!r}")
        self.next_id = 0

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise RuntimeError("DevTools connection closed")
            buf += chunk
        return buf

    def _recv_message(self) -> dict:
        data = b""
        while True:
            b0, b1 = self._recv_exact(2)
            size = b1 & 0x7F
            if size == 126:
                size = struct.unpack(">H", self._recv_exact(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", self._recv_exact(8))[0]
            payload = self._recv_exact(size)
            if b0 & 0x0F == 0x9:  # ping: answer, keep reading
                self._send_frame(payload, opcode=0xA)
                continue
            data += payload
            if b0 & 0x80:
                return json.loads(data.decode())

    def _send_frame(self, payload: bytes, opcode: int = 0x1) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack(">BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self._send_frame(
            json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        )
        while True:
            msg = self._recv_message()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, needle: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            time.sleep(0.5)
        raise TimeoutError(f"{needle!r} not shown within {timeout} s:\n{self.text()[:2000]}")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))


def start_browser(profile: Path) -> tuple[subprocess.Popen, str]:
    """Chromium headless with DevTools on a free port; (process, the page's WebSocket URL)."""
    proc = subprocess.Popen(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 120
    while not (port_file.is_file() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("chromium did not start its DevTools")
        time.sleep(0.2)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as resp:
        pages = [p for p in json.loads(resp.read()) if p["type"] == "page"]
    return proc, pages[0]["webSocketDebuggerUrl"]


def expand_all(tab: DevTools, timeout: float = 60) -> int:
    """Click the runs table's row expanders until every nested run is shown (new expanders
    appear as rows open); returns how many were clicked."""
    tab.evaluate("window.__expanded = new Set()")
    click = (
        f"(() => {{ let n = 0; for (const b of document.querySelectorAll('{EXPANDER}')) {{"
        "  const row = b.closest('[row-id]'); const id = row ? row.getAttribute('row-id') : '';"
        "  if (!id || window.__expanded.has(id)) continue;"
        "  window.__expanded.add(id); b.click(); n++; } return n; })()"
    )
    rows = "document.querySelectorAll('[row-id]').length"
    deadline = time.monotonic() + timeout
    while not tab.evaluate(rows) and time.monotonic() < deadline:
        time.sleep(0.5)
    total, idle = 0, 0
    while idle < 4 and time.monotonic() < deadline:
        n = tab.evaluate(click) or 0
        total += n
        idle = 0 if n else idle + 1
        time.sleep(0.5)
    return total


def shoot(url: str, experiment: str, run_id: str, out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(prefix="chromium-"))
    proc, ws = start_browser(profile)
    try:
        tab = DevTools(ws)
        tab.call("Page.enable")
        files = {}
        tab.call("Page.navigate", url=f"{url}/#/experiments/{experiment}/runs")
        tab.wait_for("matching run")
        expand_all(tab)
        tab.screenshot(out / "runs.png")
        (out / "runs.txt").write_text(tab.text())
        files["runs"] = str(out / "runs.png")
        tab.call(
            "Page.navigate", url=f"{url}/#/experiments/{experiment}/runs/{run_id}/model-metrics"
        )
        tab.wait_for("Model metrics")
        time.sleep(3)  # the charts draw after the text
        tab.screenshot(out / "metrics.png")
        (out / "metrics.txt").write_text(tab.text())
        files["metrics"] = str(out / "metrics.png")
        return files
    finally:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, 9)
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    if chromium() is None:
        sys.exit("chromium is not installed (Debian: apt-get install chromium)")
    url, experiment, run_id, out = sys.argv[1:5]
    print(json.dumps(shoot(url.rstrip("/"), experiment, run_id, Path(out))))
