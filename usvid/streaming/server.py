"""The browser view of a stream: ``--serve 127.0.0.1:8080``.

A page with the overlaid video as MJPEG (``/stream.mjpg``: a plain ``<img>``, scaled to the window with
its aspect ratio kept) under a status panel that polls ``/status.json`` four times a second, and a fixed
"Research use only, not for diagnosis" notice. The page puts every value in with ``textContent``, so a
source name holding markup shows as text. Also ``/frame.jpg``, the latest overlaid frame. Built on the
standard library's ``ThreadingHTTPServer``; binds to loopback by default (another address only with
``serve_public``).

``/status.json`` fields (``null`` where not known yet):

- ``source``: the source as the user gave it, less credentials (:func:`display_source`); ``model``: the
  shipped model's name or the model file's name.
- ``signal``: the source's state, :class:`~usvid.streaming.sources.SourceState`: ``connecting``, ``live``,
  ``signal lost`` (the stream keeps reconnecting with backoff) or ``ended``.
- ``frame``: index of the frame the prediction belongs to (the last overlaid one; while the signal is
  lost, the last before the loss). ``class``, ``probability`` (its top-class probability, 4 decimals),
  ``probability_text`` (as the overlay writes it, :func:`usvid.inference.overlay.percent`), ``uncertain``
  (below the overlay's ``uncertain_below``: the overlay labels it "uncertain"), ``probs`` (every class),
  ``box`` (``[x, y, w, h]`` frame pixels as in the per-frame records, or ``null`` for no lesion).
- ``latency_ms_p50_recent``, ``latency_ms_p95_recent``: capture-to-overlay latency percentiles over the
  last ``latency_window_frames`` overlaid frames: the ``recent_latency_p50_ms`` / ``recent_latency_p95_ms``
  of :class:`~usvid.streaming.stats.StatsSnapshot`, the same figures ``--stats`` writes.
  ``latency_ms_last_frame``: the latest frame's alone. ``fps_recent``: overlaid frames a second over the
  same window.
- ``frames``, ``dropped``: frames overlaid and frames dropped by the newest-frame policy so far, as in
  ``--stats``.
- ``scan_region``: ``detecting`` (the detector is still looking; the model sees the whole frame),
  ``found`` (detected), ``fixed`` (``--roi``) or ``full frame`` (detection off); ``scan_region_box``:
  ``[x, y, w, h]`` in frame pixels for ``found`` and ``fixed``.

The page shows a patient's scan, so it answers only to the names it was bound to: a request whose ``Host``
is another name (a web page the user visits pointing its own domain at 127.0.0.1, "DNS rebinding") gets
``421``. Connections are capped (``503`` beyond) and closed when silent, so idle sockets cannot pile up
threads.

JPEG encoding happens in the handler threads, only while someone watches, and once per frame however many
viewers there are; the stream's own sink thread only swaps a reference.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode

from usvid.errors import InputError
from usvid.inference.overlay import OverlayStyle, percent
from usvid.streaming.config import SERVE_IDLE_TIMEOUT_S, SERVE_MAX_CLIENTS, ServeAddress, StreamConfig
from usvid.streaming.results import FrameResult, OverlayFrame, StreamEvent
from usvid.streaming.sinks import Sink
from usvid.streaming.stats import StatsSnapshot

log = logging.getLogger(__name__)

BOUNDARY = "usvidframe"
JPEG_QUALITY = 80
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
BUSY_BODY = b"503: too many viewers of this stream; close one and reload\n"
BUSY_RESPONSE = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: "
    + str(len(BUSY_BODY)).encode()
    + b"\r\nRetry-After: 5\r\nConnection: close\r\n\r\n"
    + BUSY_BODY
)

NOTICE = "Research use only, not for diagnosis"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>usvid stream</title>
<style>
 html, body { height: 100%; margin: 0; }
 body { display: flex; flex-direction: column; background: #111; color: #eee;
        font: 15px/1.35 system-ui, sans-serif; }
 #notice { flex: none; padding: 3px 10px; background: #6b4f00; color: #fff; font-weight: bold; }
 #panel { flex: none; display: flex; flex-wrap: wrap; gap: 0 18px; padding: 4px 10px; background: #222; }
 #panel > div { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 100%; }
 #panel .k { color: #aaa; }
 #panel b { color: #fff; font-weight: 600; }
 #panel b.bad { color: #f55; }
 #panel .old { opacity: 0.55; }
 /* Letterbox lighter than black, so the picture's own black (blanked outside the scan) shows its extent. */
 #stage { flex: 1 1 auto; min-height: 0; position: relative; background: #2b2b2b; }
 /* The whole picture in the space left, scaled up or down, aspect ratio kept. */
 #video { position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain; }
</style></head>
<body>
<div id="notice">__NOTICE__</div>
<div id="panel">
 <div><span class="k">signal</span> <b id="signal">connecting</b></div>
 <div id="prediction"><span class="k">class</span> <b id="class">-</b> <b id="probability">-</b>
  <span id="uncertain"></span></div>
 <div><span class="k">latency p50/p95</span> <b id="latency-p50">-</b>/<b id="latency-p95">-</b> ms
  <span class="k">(last <span id="latency-window">0</span> frames)</span></div>
 <div><b id="fps">-</b> <span class="k">fps</span></div>
 <div><span class="k">frames</span> <b id="frames">0</b>
  <span class="k">dropped</span> <b id="dropped">0</b></div>
 <div><span class="k">scan region</span> <b id="scan-region">-</b></div>
 <div><span class="k">source</span> <b id="source">-</b></div>
 <div><span class="k">model</span> <b id="model">-</b></div>
</div>
<div id="stage"><img id="video" src="/stream.mjpg" alt="overlaid ultrasound stream"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
// textContent only: the source is the user's text and may hold markup.
const put = (id, value) => { $(id).textContent = value == null ? "-" : String(value); };
const fixed = (v, digits) => (v == null ? null : v.toFixed(digits));
async function poll() {
  try {
    const s = await (await fetch("/status.json", {cache: "no-store"})).json();
    put("signal", s.signal === "signal lost" ? "signal lost, reconnecting" : s.signal);
    $("signal").className = s.signal === "live" ? "" : "bad";
    put("class", s.class);
    put("probability", s.probability_text);
    put("uncertain", s.uncertain ? "(uncertain)" : "");
    $("prediction").className = s.signal === "live" ? "" : "old";
    put("latency-p50", fixed(s.latency_ms_p50_recent, 2));
    put("latency-p95", fixed(s.latency_ms_p95_recent, 2));
    put("latency-window", s.latency_window_frames);
    put("fps", fixed(s.fps_recent, 1));
    put("frames", s.frames);
    put("dropped", s.dropped);
    const box = s.scan_region_box;
    put("scan-region", box ? s.scan_region + " (" + box.join(", ") + ")" : s.scan_region);
    put("source", s.source);
    $("source").title = s.source;
    put("model", s.model);
  } catch (e) {
    put("signal", "disconnected from usvid");
    $("signal").className = "bad";
  }
  setTimeout(poll, 250);
}
poll();
</script>
</body></html>
""".replace("__NOTICE__", NOTICE)

#: The ``user:password@`` of a URL (greedy up to the last ``@`` before the path: passwords may hold ``@``).
URL_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
#: Query parameters of a source URL that hold secrets (SRT's ``passphrase``, tokens some encoders take).
SECRET_QUERY = re.compile(r"pass|pwd|secret|token|key|auth", re.IGNORECASE)

ScanRegionMode = Literal["detect", "fixed", "full frame"]


def display_source(source: str) -> str:
    """``source`` as the user gave it, less any credentials: ``rtsp://user:pw@cam/live`` ->
    ``rtsp://cam/live``; secret query values (``?passphrase=...``) become ``***``. Paths and devices stay."""
    shown = URL_USERINFO.sub(r"\1", source)
    base, sep, query = shown.partition("?")
    if not sep or "://" not in base:
        return shown
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(SECRET_QUERY.search(k) for k, _ in pairs):
        return shown
    return base + "?" + urlencode([(k, "***" if SECRET_QUERY.search(k) else v) for k, v in pairs], safe="*/:")


def model_name(model: str | Path) -> str:
    """What the page calls the model: a shipped model's name as given, or the model file's name."""
    return Path(str(model)).name


def scan_region_state(mode: ScanRegionMode, result: FrameResult | None) -> tuple[str, list[int] | None]:
    """``(state, [x, y, w, h] or None)`` of the region the model saw for ``result`` (see the module doc)."""
    roi = None if result is None else result.roi
    box = None if roi is None else [roi.x, roi.y, roi.w, roi.h]
    if mode == "full frame":
        return "full frame", None
    if mode == "fixed":
        return "fixed", box
    return ("detecting", None) if roi is None else ("found", box)


class _Latest:
    """The newest overlaid frame and its lazily encoded JPEG, shared by the handler threads.

    ``result`` and ``latency_ms`` are the last frame's that carried a prediction (a "signal lost" screen
    carries none).
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seq = 0
        self.frame: OverlayFrame | None = None
        self.result: FrameResult | None = None
        self.latency_ms: float | None = None
        self.state = "connecting"
        self.closed = False
        self._jpeg: tuple[int, bytes] | None = None

    def publish(self, frame: OverlayFrame) -> None:
        with self.cond:
            self.frame = frame
            self.state = frame.state.value
            if frame.result is not None:
                self.result, self.latency_ms = frame.result, frame.latency_ms
            self.seq += 1
            self.cond.notify_all()

    def jpeg(self) -> tuple[int, bytes] | None:
        import cv2

        with self.cond:
            frame, seq, cached = self.frame, self.seq, self._jpeg
        if frame is None:
            return None
        if cached is not None and cached[0] == seq:
            return cached
        ok, buf = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return None
        encoded = (seq, buf.tobytes())
        with self.cond:
            if self._jpeg is None or self._jpeg[0] < seq:
                self._jpeg = encoded
        return encoded

    def wait_newer(self, seq: int, timeout: float) -> bool:
        with self.cond:
            if self.seq <= seq and not self.closed:
                self.cond.wait(timeout)
            return self.seq > seq


def allowed_hosts(address: ServeAddress, port: int) -> frozenset[str]:
    """``Host`` header values the view answers to: the loopback names and the bound host, with or without
    the port (lower case)."""
    host = address.host.lower()
    names = {*LOOPBACK_NAMES, f"[{host}]" if address.is_ipv6 else host}
    if host in WILDCARD_HOSTS:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(n for name in names for n in (name, f"{name}:{port}"))


def is_ip_literal(host: str, port: int) -> bool:
    """Whether ``host`` (a ``Host`` header value) is an IP address, optionally with ``port``.

    DNS rebinding needs a domain name; a browser sends an IP address only when the user typed it, so on a
    wildcard bind (reachable at every address of the machine) any address is safe to answer.
    """
    name = host
    if host.startswith("["):
        name, sep, rest = host[1:].partition("]")
        if not sep or rest not in ("", f":{port}"):
            return False
    elif host.count(":") == 1:
        name, _, port_text = host.partition(":")
        if port_text != str(port):
            return False
    elif ":" in host:
        return False  # an IPv6 address without brackets is not a valid Host
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class _Server(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` for IPv4 or IPv6, serving at most ``max_clients`` connections at once."""

    daemon_threads = True

    def __init__(
        self, address: ServeAddress, handler: type[BaseHTTPRequestHandler], max_clients: int
    ) -> None:
        self.address_family = socket.AF_INET6 if address.is_ipv6 else socket.AF_INET
        self._slots = threading.BoundedSemaphore(max_clients)
        super().__init__((address.host, address.port), handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        # The stdlib prints a traceback to stderr; a viewer's broken connection is not the user's problem.
        log.debug("http connection from %s failed", client_address, exc_info=True)


def _refuse_busy(request: socket.socket) -> None:
    """Answer 503 on the accepting thread without starting a thread for the connection."""
    try:
        request.settimeout(0.1)
        try:
            # Read the request first: closing with unread data resets the connection and loses the reply.
            request.recv(65536)
        except TimeoutError:
            pass
        request.sendall(BUSY_RESPONSE)
    except OSError:
        pass


class BrowserView(Sink):
    """Serves the page, the MJPEG stream and the JSON status while the stream runs."""

    name = "serve"
    queue_size = 1
    wants_idle_frames = True

    def __init__(
        self,
        address: ServeAddress,
        stats: Callable[[], StatsSnapshot] | None = None,
        *,
        max_clients: int = SERVE_MAX_CLIENTS,
        idle_timeout_s: float = SERVE_IDLE_TIMEOUT_S,
        source: str = "",
        model: str = "",
        scan_region: ScanRegionMode = "detect",
        style: OverlayStyle | None = None,
    ) -> None:
        """``source`` and ``model`` as the page names them (:func:`display_source`, :func:`model_name`);
        ``style``: the overlay's, whose rule marks a prediction "uncertain" (None: never)."""
        self.address = address
        self.stats = stats
        self.source = source
        self.model = model
        self.scan_region = scan_region
        self.style = style if style is not None else OverlayStyle(uncertain_below=0.0)
        self.max_clients = max_clients
        self.idle_timeout_s = idle_timeout_s
        self.latest = _Latest()
        self.refused_hosts = 0
        self._allowed: frozenset[str] = frozenset()
        self._port = address.port
        self._warned: set[str] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def for_config(cls, config: StreamConfig, stats: Callable[[], StatsSnapshot] | None) -> BrowserView:
        """The view ``config.serve`` asks for, naming ``config``'s source, model and scan-region mode."""
        mode: ScanRegionMode = (
            "fixed" if config.region.roi is not None else "detect" if config.region.detect else "full frame"
        )
        return cls(
            config.serve_address,
            stats=stats,
            max_clients=config.serve_max_clients,
            idle_timeout_s=config.serve_idle_timeout_s,
            source=display_source(config.source),
            model=model_name(config.model),
            scan_region=mode,
            style=config.overlay_style,
        )

    @property
    def url(self) -> str:
        return f"http://{ServeAddress(self.address.host, self._port)}/"

    def open(self) -> None:
        try:
            server = _Server(self.address, _handler_for(self), self.max_clients)
        except (OSError, OverflowError) as err:
            raise InputError(
                f"--serve {self.address}: cannot listen there ({err}); pick another port (or 0 for any free one)"
            ) from None
        if not self.address.is_loopback:
            log.warning("serving on %s, reachable from other machines", self.address.host)
        self._port = server.server_address[1]
        self._allowed = allowed_hosts(self.address, self._port)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="usvid-http", daemon=True
        )
        self._thread.start()
        log.info("browser view on %s", self.url)

    def host_allowed(self, values: list[str]) -> bool:
        """Whether a request's ``Host`` header values (all of them) name this view."""
        if len(values) != 1:
            return False  # missing or repeated: which one a proxy would use is anyone's guess
        host = values[0].strip().lower()
        if host in self._allowed:
            return True
        return self.address.host in WILDCARD_HOSTS and is_ip_literal(host, self._port)

    def note_refused(self, values: list[str]) -> None:
        self.refused_hosts += 1
        key = repr(values)[:80]
        if key not in self._warned and len(self._warned) < 16:
            self._warned.add(key)
            log.warning("browser view refused a request for Host %s (only %s is served)", key, self.url)

    def write(self, frame: OverlayFrame) -> None:
        self.latest.publish(frame)

    def event(self, event: StreamEvent) -> None:
        if event.kind in ("signal_lost", "reconnected"):
            with self.latest.cond:
                self.latest.state = "signal lost" if event.kind == "signal_lost" else "live"

    def status(self) -> dict:
        """The ``/status.json`` document (fields in the module docstring)."""
        with self.latest.cond:
            result, latency_ms, state = self.latest.result, self.latest.latency_ms, self.latest.state
        snap = self.stats() if self.stats else None
        region, region_box = scan_region_state(self.scan_region, result)
        return {
            "source": self.source,
            "model": self.model,
            # The pipeline's own state when there is a pipeline; else what the frames and events said.
            "signal": snap.state if snap else state,
            "frame": None if result is None else result.frame.index,
            "class": None if result is None else result.class_name,
            "probability": None if result is None else round(result.probability, 4),
            "probability_text": None if result is None else percent(result.probability),
            "uncertain": None if result is None else self.style.is_uncertain(result.probability),
            "probs": None
            if result is None
            else {n: round(float(p), 4) for n, p in zip(result.class_names, result.probs, strict=True)},
            "box": None if result is None or result.box is None else result.box.to_coco(1),
            "latency_ms_last_frame": None if latency_ms is None else round(latency_ms, 2),
            "latency_ms_p50_recent": snap.recent_latency_p50_ms if snap else None,
            "latency_ms_p95_recent": snap.recent_latency_p95_ms if snap else None,
            "latency_window_frames": snap.recent_frames if snap else 0,
            "fps_recent": snap.recent_fps if snap else 0.0,
            "frames": snap.frames if snap else 0,
            "dropped": snap.dropped if snap else 0,
            "scan_region": region,
            "scan_region_box": region_box,
        }

    def close(self) -> None:
        with self.latest.cond:
            self.latest.closed = True
            self.latest.cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _handler_for(view: BrowserView) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "usvid"
        # Applies to every read and write of the connection: a silent client, or a viewer that stopped
        # reading the video, is dropped and its slot freed.
        timeout = view.idle_timeout_s

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
            log.debug("http %s: " + format, self.address_string(), *args)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            path = self.path.split("?", 1)[0]
            try:
                hosts = self.headers.get_all("Host") or []
                if not view.host_allowed(hosts):
                    view.note_refused(hosts)
                    body = f"421: this view answers only to {view.url}\n".encode()
                    self._send(body, "text/plain; charset=utf-8", HTTPStatus.MISDIRECTED_REQUEST)
                elif path in ("/", "/index.html"):
                    self._send(PAGE.encode(), "text/html; charset=utf-8")
                elif path == "/status.json":
                    self._send(json.dumps(view.status()).encode(), "application/json")
                elif path == "/frame.jpg":
                    encoded = view.latest.jpeg()
                    if encoded is None:
                        self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet")
                    else:
                        self._send(encoded[1], "image/jpeg")
                elif path == "/stream.mjpg":
                    self._stream()
                else:
                    self.send_error(HTTPStatus.NOT_FOUND)
            except OSError:
                pass  # the viewer went away, or stopped reading for idle_timeout_s

        def _send(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _stream(self) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            seq = 0
            while not view.latest.closed:
                if not view.latest.wait_newer(seq, timeout=0.5):
                    continue
                encoded = view.latest.jpeg()
                if encoded is None:
                    continue
                seq, jpeg = encoded
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                self.wfile.flush()

    return Handler
