"""The fastest CPU path for one checkpoint on this machine, checked against fp32 (``backend="auto"``).

Candidates for a checkpoint (``.pt``): torch fp32, the reference; torch bf16 on CPUs with native bf16 units
(:func:`usvid.cpu.cpu_info`); onnxruntime fp32 on an ONNX export of the checkpoint, made once and cached. Int8
needs calibration frames of the user's own data, so it is never made here: ``usvid export --int8
--calibration STORE`` writes one, and an ``.onnx`` file always runs in onnxruntime.

Every candidate runs the public :meth:`~usvid.inference.base.BasePredictor.predict` (preprocessing and boxes
included) on the same fixed frames. One that disagrees with fp32 torch (class on the decisive frames, lesion
mask IoU) is out however fast it is; the fastest of the rest wins. The choice and its measurements are cached
as JSON, keyed by the checkpoint's sha256, the CPU's model and matrix flags, the thread count and the
versions of usvid, torch and onnxruntime, so it is measured once per model file and machine and never reused
when any of those change. ``USVID_AUTOSELECT=0`` turns it off (torch fp32, as before).

Cache: ``$USVID_CACHE_DIR/auto`` or ``~/.cache/usvid/auto``: ``<key>.json`` per choice, ``<sha256>.onnx`` per
exported checkpoint. usvid writes every file there itself, atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import usvid
from usvid.boxes import MASK_THRESHOLD
from usvid.cpu import cpu_info
from usvid.errors import UsvidError
from usvid.inference.base import BasePredictor, Prediction
from usvid.inference.export_onnx import pooled_mask_iou
from usvid.inference.quantize import class_agreement
from usvid.io import cache_root, file_digest, write_json_atomic

log = logging.getLogger(__name__)

ENV_SWITCH = "USVID_AUTOSELECT"
REFERENCE = "torch-fp32"
MIN_AGREEMENT = 1.0  # on decisive frames: any flipped class there disqualifies a path
MIN_MASK_IOU = 0.9
CHECK_FRAMES = 12
CHECK_SIZE = (500, 854)  # (H, W): an MBUD scan frame

Measure = Callable[[BasePredictor, np.ndarray], float]


def enabled() -> bool:
    """``False`` when the user set ``USVID_AUTOSELECT=0`` (or ``false``/``no``/``off``)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    return cache_root() / "auto"


@dataclass(frozen=True)
class Trial:
    """One candidate path: its speed and its agreement with fp32 torch on the check frames.

    ``ms_per_frame`` is ``None`` and ``note`` says why when the path could not run here.
    """

    path: str
    ms_per_frame: float | None
    class_agreement: float | None
    mask_iou: float | None
    passed: bool
    note: str = ""

    def describe(self) -> str:
        if self.class_agreement is None:
            return f"{self.path}: not run ({self.note})"
        checks = "" if self.path == REFERENCE else (
            f"class agreement {self.class_agreement:.3f}"
            + ("" if self.mask_iou is None else f", mask IoU {self.mask_iou:.3f}"))
        if not self.passed:
            return f"{self.path}: FAILED parity, {checks} ({self.note}), not timed"
        return f"{self.path} {self.ms_per_frame:.1f} ms/frame" + (f", {checks}" if checks else "")


@dataclass(frozen=True)
class Selection:
    """The path chosen for one checkpoint on one machine, with every candidate's trial."""

    chosen: str
    trials: tuple[Trial, ...]
    key: dict
    cached: bool = False

    def describe(self) -> str:
        where = " (cached)" if self.cached else ""
        return f"auto on the CPU chose {self.chosen}{where}: " + "; ".join(t.describe() for t in self.trials)

    def to_json(self) -> dict:
        return {"chosen": self.chosen, "trials": [asdict(t) for t in self.trials], "key": self.key}

    @classmethod
    def from_json(cls, data: dict) -> Selection:
        return cls(data["chosen"], tuple(Trial(**t) for t in data["trials"]), data["key"], cached=True)


def selection_key(model_sha256: str, threads: int) -> dict:
    """Everything the choice depends on; a change in any of it means measuring again. ``threads``:
    onnxruntime's intra-op threads; torch's own count (``OMP_NUM_THREADS``, ``torch.set_num_threads``) is
    recorded beside it."""
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    cpu = cpu_info()
    return {"model_sha256": model_sha256, "cpu_model": cpu.model, "matrix_flags": cpu.matrix_flags(),
            "threads": threads, "torch_threads": torch.get_num_threads(), "usvid": usvid.__version__,
            "torch": torch.__version__,
            "onnxruntime": ort_version}


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def check_frames(count: int = CHECK_FRAMES, seed: int = 0) -> np.ndarray:
    """``(count, H, W)`` uint8 scan-like frames: smooth tissue, speckle and a dark round lesion.

    Fixed by ``seed``, so every candidate (and every later run) is checked on the same pixels. Structured
    rather than pure noise, so the model's mask and box take part in the check.
    """
    import cv2

    rng = np.random.default_rng(seed)
    h, w = CHECK_SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = np.zeros((count, h, w), np.uint8)
    for i in range(count):
        coarse = rng.random((h // 50 + 2, w // 50 + 2)).astype(np.float32)
        tissue = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * 120 + 40
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        ry, rx = rng.uniform(0.05, 0.2) * h, rng.uniform(0.05, 0.2) * w
        lesion = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        tissue[lesion] *= rng.uniform(0.1, 0.5)
        speckle = rng.rayleigh(0.5, (h, w)).astype(np.float32)
        frames[i] = np.clip(tissue * speckle * 1.6, 0, 255).astype(np.uint8)
    return frames


def time_predictor(predictor: BasePredictor, frames: np.ndarray, min_seconds: float = 0.6,
                   min_calls: int = 5) -> float:
    """Median wall time of one ``predict`` call on one frame, in ms, cycling through ``frames`` (N, H, W)."""
    for frame in frames[:2]:
        predictor.predict(frame)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        frame = frames[len(times) % len(frames)]
        t0 = time.perf_counter()
        predictor.predict(frame)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def predict_all(predictor: BasePredictor, frames: np.ndarray) -> Prediction:
    return predictor.predict(torch.from_numpy(frames).unsqueeze(1))


def agreement(ref: Prediction, got: Prediction,
              threshold: float = MASK_THRESHOLD) -> tuple[float, float | None]:
    """Class agreement over the frames where ``ref`` is decisive
    (:func:`~usvid.inference.quantize.class_agreement`; 1.0 when none is), and the pooled mask IoU (``None``
    without masks)."""
    decisive, same = class_agreement(ref.probs.numpy(), got.probs.numpy())
    share = float(same[decisive].mean()) if decisive.any() else 1.0
    iou = None
    if ref.mask is not None and got.mask is not None:
        iou = pooled_mask_iou(ref.mask.numpy(), got.mask.numpy(), threshold)
    return share, iou


@dataclass(frozen=True)
class Candidate:
    """A path to try: how to load it (``load(checkpoint, its sha256, threads, spin, threshold)``) and, when it
    cannot run on this machine, why (``absent``)."""

    name: str
    load: Callable[[Path, str, int, bool, float | None], BasePredictor]
    absent: str = ""


def _load_torch(precision: str) -> Callable[[Path, str, int, bool, float | None], BasePredictor]:
    def load(path: Path, sha256: str, threads: int, spin: bool, threshold: float | None) -> BasePredictor:
        from usvid.inference.torch_backend import TorchPredictor

        return TorchPredictor.from_checkpoint(path, "cpu", precision=precision, threshold=threshold)
    return load


def _load_onnxruntime(path: Path, sha256: str, threads: int, spin: bool,
                      threshold: float | None) -> BasePredictor:
    from usvid.inference.ort_backend import OrtPredictor

    return OrtPredictor(cached_onnx(path, sha256), "cpu", threads=threads, spin=spin, threshold=threshold)


def candidates() -> list[Candidate]:
    """The paths worth trying on this machine, the reference first."""
    out = [Candidate(REFERENCE, _load_torch("fp32"))]
    cpu = cpu_info()
    out.append(Candidate("torch-bf16", _load_torch("bf16"),
                         "" if cpu.bf16 else f"{cpu.model} has no native bf16 units"))
    missing = [m for m in ("onnx", "onnxruntime") if not _importable(m)]
    absent = f"{' and '.join(missing)} not installed (pip install 'usvid[export]')" if missing else ""
    out.append(Candidate("onnxruntime-fp32", _load_onnxruntime, absent))
    return out


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def cached_onnx(checkpoint: Path, sha256: str) -> Path:
    """The fp32 ONNX export of ``checkpoint`` (whose content hash is ``sha256``), made (with its own parity
    check) the first time only."""
    from usvid.inference.export_onnx import export_onnx

    out = cache_dir() / f"{sha256}.onnx"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        log.info("exporting %s to ONNX for the onnxruntime path (%s)", checkpoint, out)
        export_onnx(checkpoint, out)  # atomic, and written only after its own parity check
    return out


def run_trials(path: Path, sha256: str, threads: int, spin: bool, threshold: float | None, measure: Measure,
               frames: np.ndarray, rounds: int = 2) -> tuple[list[Trial], dict[str, BasePredictor]]:
    """Load every candidate, check it against the reference on ``frames``, then time the ones that pass in
    ``rounds`` interleaved rounds (the best round counts: noise from other processes only slows a path)."""
    loaded: dict[str, BasePredictor] = {}
    notes: dict[str, str] = {}
    checks: dict[str, tuple[float, float | None]] = {}
    tried = candidates()
    for cand in tried:
        if cand.absent:
            notes[cand.name] = cand.absent
            continue
        try:
            loaded[cand.name] = cand.load(path, sha256, threads, spin, threshold)
        except (UsvidError, OSError) as err:  # e.g. no room for the export: that path is out, not the run
            notes[cand.name] = str(err).splitlines()[0]
    reference = predict_all(loaded[REFERENCE], frames)
    for name, predictor in loaded.items():
        checks[name] = (1.0, 1.0 if reference.mask is not None else None) if name == REFERENCE else \
            agreement(reference, predict_all(predictor, frames), loaded[REFERENCE].threshold)
    passed = {name: _passes(*checks[name]) for name in loaded}
    times: dict[str, list[float]] = {name: [] for name in loaded if passed[name]}
    for _ in range(rounds):
        for name in times:
            times[name].append(measure(loaded[name], frames))
    trials = []
    for cand in tried:
        if cand.name not in loaded:
            trials.append(Trial(cand.name, None, None, None, False, notes[cand.name]))
            continue
        share, iou = checks[cand.name]
        ms = min(times[cand.name]) if cand.name in times else None
        note = "" if passed[cand.name] else \
            f"needs class agreement {MIN_AGREEMENT:g}, mask IoU >= {MIN_MASK_IOU:g}"
        trials.append(Trial(cand.name, ms, share, iou, passed[cand.name], note))
    return trials, loaded


def _passes(share: float, iou: float | None) -> bool:
    return share >= MIN_AGREEMENT and (iou is None or iou >= MIN_MASK_IOU)


def fastest(trials: list[Trial]) -> str:
    timed = [t for t in trials if t.passed and t.ms_per_frame is not None]
    return min(timed, key=lambda t: t.ms_per_frame).path


def read_cached(where: Path, key: dict) -> Selection | None:
    try:
        selection = Selection.from_json(json.loads(where.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or unreadable: measure again and replace it
    return selection if selection.key == key else None


def select_cpu_path(path: Path, threads: int | None = None, spin: bool = False,
                    threshold: float | None = None,
                    measure: Measure | None = None) -> tuple[Selection, BasePredictor | None]:
    """The fastest parity-checked CPU path for checkpoint ``path`` (cached), and its predictor when it was
    loaded while measuring (``None`` on a cache hit: the caller loads the chosen path).

    ``measure(predictor, frames)``: ms per frame (default :func:`time_predictor`; tests inject their own).
    """
    from usvid.inference.ort_backend import default_threads

    threads = threads or default_threads()
    sha256 = file_digest(path)["sha256"]
    key = selection_key(sha256, threads)
    where = cache_dir() / f"{key_digest(key)}.json"
    cached = read_cached(where, key)
    if cached is not None:
        return cached, None
    log.info("measuring the CPU paths for %s on this machine (once; cached in %s)", path, where.parent)
    trials, loaded = run_trials(path, sha256, threads, spin, threshold, measure or time_predictor,
                                check_frames())
    selection = Selection(fastest(trials), tuple(trials), key)
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(where, selection.to_json())
    except OSError as err:  # a read-only home: the choice still holds for this run, it is just not kept
        log.warning("could not keep the CPU path choice in %s (%s); it will be measured again next time",
                    where, err.strerror or err)
    return selection, loaded[selection.chosen]


def auto_cpu_predictor(path: Path, threads: int | None = None, spin: bool = False,
                       threshold: float | None = None, measure: Measure | None = None) -> BasePredictor:
    """Load ``path`` in the path :func:`select_cpu_path` chose; its ``selection`` says which and why."""
    from usvid.inference.ort_backend import default_threads

    selection, predictor = select_cpu_path(path, threads, spin, threshold, measure)
    if predictor is None:
        load = {c.name: c.load for c in candidates()}[selection.chosen]
        predictor = load(path, selection.key["model_sha256"], threads or default_threads(), spin, threshold)
    predictor.selection = selection
    log.info("%s", selection.describe())
    return predictor
