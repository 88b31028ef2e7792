"""Fixtures for the dataset-source tests: a tiny video writer and a local HTTP file server."""

from __future__ import annotations

import hashlib
import http.server
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

# Container per file extension; codec default per container.
DEFAULT_CODEC = {".mp4": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4", ".mkv": "libx264"}


def write_video(
    path: Path | str,
    n_frames: int = 8,
    fps: int | float = 25,
    size: tuple[int, int] = (32, 24),
    codec: str | None = None,
    seed: int = 0,
) -> Path:
    """Write ``n_frames`` of moving noise as a real encoded video; ``size`` is (width, height)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or DEFAULT_CODEC[path.suffix.lower()]
    width, height = size
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec.startswith("libvpx"):
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
        elif codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.roll(base, i, axis=1), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def video_writer():
    return write_video


@dataclass
class ServerState:
    """What the test server does and saw: files under ``root``, fault injection, request log."""

    root: Path
    ignore_range: bool = False
    # file name -> list of byte counts: the n-th request for that file is cut after that many bytes
    cut_after: dict[str, list[int]] = field(default_factory=dict)
    # file name -> size to announce instead of the real one (a lying server)
    announce_size: dict[str, int] = field(default_factory=dict)
    # validators: an ETag (a digest of the content) and a Last-Modified date per response, and
    # If-Range honoured (a changed file is sent whole, 200); each can be switched off
    etags: bool = True
    honor_if_range: bool = True
    # files sent without Content-Length (the body ends when the connection closes)
    no_length: set[str] = field(default_factory=set)
    # file name -> URL to redirect to (302)
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def etag_of(data: bytes) -> str:
    """The ETag the test server sends for ``data``."""
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"


def _make_handler(state: ServerState):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/").split("?")[0]
            range_header = self.headers.get("Range")
            with state.lock:
                state.requests.append((name, range_header))
                cuts = state.cut_after.get(name)
                cut = cuts.pop(0) if cuts else None
            if name in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[name])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path = state.root / name
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            total = state.announce_size.get(name, len(data))
            etag = etag_of(data)
            if_range = self.headers.get("If-Range")
            if (
                if_range is not None
                and state.honor_if_range
                and if_range not in (etag, LAST_MODIFIED)
            ):
                range_header = None  # the file changed: the whole of it
            start = 0
            if range_header and not state.ignore_range:
                start = int(range_header.split("=")[1].split("-")[0])
                if start >= total:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{total}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
            else:
                self.send_response(200)
            body = data[start:]
            if name in state.no_length:
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(total - start))
            self.send_header("Content-Type", "application/octet-stream")
            if state.etags:
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", LAST_MODIFIED)
            if cut is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def http_server(tmp_path):
    """A threaded HTTP server on 127.0.0.1 serving ``tmp_path/served``; yields (base_url, state)."""
    served = tmp_path / "served"
    served.mkdir()
    state = ServerState(root=served)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
