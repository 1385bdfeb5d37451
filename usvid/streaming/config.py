"""The one frozen description of a ``usvid stream`` run: :class:`StreamConfig`."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from usvid.errors import ConfigError, InputError
from usvid.inference.overlay import BOX_MIN_SCORE, UNCERTAIN_BELOW, OverlayStyle
from usvid.inference.smoothing import DEFAULT_TAU_S
from usvid.outputs import check_output_file, check_path_text
from usvid.shipped import DEFAULT_MODEL, predictor_role, resolve_model
from usvid.video.roi import RegionConfig

#: Default address of the browser view: loopback only, so nothing leaves the machine unless asked.
DEFAULT_SERVE = "127.0.0.1:8080"
#: Browser connections served at once (a viewer holds one for the video and briefly one for the status).
SERVE_MAX_CLIENTS = 8
#: A browser connection silent this long (nothing sent, or not reading the video) is closed.
SERVE_IDLE_TIMEOUT_S = 15.0
#: What ``--record`` may be called (the recorder writes H.264 in an mp4 container).
RECORD_SUFFIXES = (".mp4", ".m4v", ".mov")


class ServeAddress(NamedTuple):
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.is_ipv6 else f"{self.host}:{self.port}"


def parse_serve_address(text: str) -> ServeAddress:
    """Parse ``HOST:PORT`` (``127.0.0.1:8080``; port 0 picks a free port) or a bare ``PORT`` (loopback)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535 or (sep and not host):
        raise ConfigError(
            f"--serve: expected HOST:PORT such as {DEFAULT_SERVE} (port 0-65535, 0 = any free port), "
            f"got '{text}'"
        )
    return ServeAddress(host.strip("[]"), port)


@dataclass(frozen=True)
class StreamConfig:
    """Everything ``usvid stream`` needs; the CLI builds one of these and nothing else.

    Attributes:
        source: ``/dev/videoN`` (V4L2 capture card), a network URL (``rtsp://``, ``udp://``, ``rtp://``,
            ``srt://``, ``tcp://``, ``http(s)://``), a recorded video file, a folder of frame images or a
            DICOM cine.
        model: a checkpoint, ``.onnx`` file or TensorRT engine (see :func:`usvid.inference.load_predictor`), or
            a shipped model's name (default: :data:`usvid.shipped.DEFAULT_MODEL`).
        backend, device: passed to ``load_predictor`` (``'auto'``: the fastest available backend; CUDA when
            present, else the CPU, as in every command).
        realtime: play recorded sources (file, folder, DICOM) at their native frame rate and apply the live
            newest-frame policy; otherwise every recorded frame is processed as fast as possible.
            Live sources (device, network) are always real time.
        record: H.264 mp4 of the overlaid frames, with the source's timestamps.
        jsonl: per-frame predictions, one JSON object a line.
        serve: ``HOST:PORT`` of the browser view (MJPEG + JSON status); loopback by default.
        serve_public: allow ``serve`` to bind an address other machines can reach (no login, no encryption:
            anyone on the network sees the scan), refused without it.
        serve_max_clients: browser connections served at once; more get ``503``.
        serve_idle_timeout_s: a browser connection that sends nothing (or stops reading) this long is closed.
        window: show an OpenCV window (needs a display and an OpenCV build with GUI support).
        stats: write the run's statistics (frames, dropped, fps, latency percentiles) as JSON.
        max_frames: stop after this many frames have been captured from the source (processed or dropped).
        region: the scan region (``--roi``, ``--detect-roi/--full-frame``), as in ``usvid extract`` and
            ``usvid predict``; the detector looks at ``region.frames`` frames per attempt (inference runs on the
            whole frame until then, so the overlay starts at once).
        threshold: mask probability at or above which a pixel is lesion (as ``usvid predict --threshold``);
            None: the model's own, chosen on its validation split when it was trained (else 0.5).
        smoothing: temporal smoothing of probabilities and boxes; off by default, as in ``usvid predict``, so
            what is shown is the model's per-frame output (on: no flicker in a live view).
        smoothing_tau_s: time constant of the exponential smoothing, in seconds of source time, so the
            smoothing means the same whatever the inference rate.
        fps: frame rate for sources that carry none (image folders); ``None`` uses the source's own or 30.
        open_timeout_s: how long opening a source may take before it counts as failed.
        read_timeout_s: how long a live source may stay silent before it counts as lost.
        reconnect_initial_s, reconnect_max_s: exponential backoff between reconnection attempts.
        keep_ui: show the whole frame in recordings, the browser and the window; by default everything
            outside the scan region is blanked, and nothing of the frame is shown until it is found.
        record_status: burn the fps / latency / dropped line into ``record`` too (the window and browser
            always show it).
        uncertain_below, box_min_score: see :class:`usvid.inference.overlay.OverlayStyle`.
    """

    source: str
    model: Path | str = DEFAULT_MODEL
    backend: str = "auto"
    device: str = "auto"
    realtime: bool = False
    record: Path | None = None
    jsonl: Path | None = None
    serve: str | None = None
    serve_public: bool = False
    serve_max_clients: int = SERVE_MAX_CLIENTS
    serve_idle_timeout_s: float = SERVE_IDLE_TIMEOUT_S
    window: bool = False
    stats: Path | None = None
    max_frames: int | None = None
    region: RegionConfig = field(default_factory=RegionConfig)
    threshold: float | None = None
    smoothing: bool = False
    smoothing_tau_s: float = DEFAULT_TAU_S
    fps: float | None = None
    open_timeout_s: float = 5.0
    read_timeout_s: float = 1.0
    reconnect_initial_s: float = 0.25
    reconnect_max_s: float = 4.0
    keep_ui: bool = False
    record_status: bool = False
    uncertain_below: float = UNCERTAIN_BELOW
    box_min_score: float = BOX_MIN_SCORE

    def __post_init__(self) -> None:
        self.overlay_style  # noqa: B018 - checks the thresholds now, not on the first frame
        if not str(self.source).strip():
            raise ConfigError(
                "stream source is empty; give a device, URL, video file, image folder or DICOM file"
            )
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"--threshold must lie strictly between 0 and 1, got {self.threshold}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"--max-frames must be at least 1, got {self.max_frames}")
        if self.serve is not None:
            self._check_serve(parse_serve_address(self.serve))
        if self.fps is not None and self.fps <= 0:
            raise ConfigError(f"fps must be positive, got {self.fps}")
        for name in (
            "smoothing_tau_s",
            "open_timeout_s",
            "read_timeout_s",
            "reconnect_initial_s",
            "reconnect_max_s",
            "serve_idle_timeout_s",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ConfigError("reconnect_max_s must be >= reconnect_initial_s")

    def _check_serve(self, address: ServeAddress) -> None:
        if not address.is_loopback and not self.serve_public:
            raise ConfigError(
                f"--serve {address}: other machines could watch the scan there (no login, no encryption); "
                f"add --serve-public to allow it, or use {DEFAULT_SERVE} to keep it on this machine"
            )
        if self.serve_max_clients < 1:
            raise ConfigError(f"serve_max_clients must be at least 1, got {self.serve_max_clients}")

    @property
    def overlay_style(self) -> OverlayStyle:
        return OverlayStyle(self.keep_ui, self.uncertain_below, self.box_min_score)

    @property
    def serve_address(self) -> ServeAddress | None:
        return None if self.serve is None else parse_serve_address(self.serve)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(self.region.to_flat())  # the keys this file has always had
        del out["region"]
        for key in ("model", "record", "jsonl", "stats"):
            if out[key] is not None:
                out[key] = str(out[key])
        return out


def source_path(source: str) -> Path | None:
    """The local file or folder ``source`` names, or ``None`` for a URL or a capture device."""
    scheme = urlsplit(source).scheme.lower()
    if (len(scheme) > 1 and "://" in source) or source.startswith("/dev/video"):
        return None
    return Path(source)


def check_paths(config: StreamConfig) -> dict[str, Path]:
    """Check every path the stream reads or writes before anything opens; returns the outputs by option.

    An output that is the source or the model would be replaced by it (``--record a.mp4`` of ``a.mp4``); two
    outputs on one path would overwrite each other; a folder, a NUL byte or a read-only place would fail only
    when the stream ends and the statistics are lost. All fail here in one line instead.
    """
    check_path_text(config.source, "source")
    model = resolve_model(check_path_text(config.model, "--model"), predictor_role(config.backend))
    inputs = [p for p in (source_path(config.source), model) if p is not None]
    outputs: dict[str, Path] = {}
    for option, path in (("--record", config.record), ("--jsonl", config.jsonl), ("--stats", config.stats)):
        if path is None:
            continue
        out = check_output_file(path, inputs=inputs, option=option)
        for other, taken in outputs.items():
            if out.resolve() == taken.resolve():
                raise InputError(f"{option} {out}: is also the {other} file; give each output its own path")
        outputs[option] = out
    if config.record is not None and Path(config.record).suffix.lower() not in RECORD_SUFFIXES:
        raise InputError(f"--record {config.record}: expected an .mp4 file name")
    return outputs
