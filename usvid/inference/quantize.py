"""Static int8 quantization of the ONNX export for CPU inference, calibrated on a frame store and checked.

Why: on a small CPU the fp32 network is bound by the multiply-add rate (LA-Net-R18 at 256 px reaches ~80%
of the measured fp32 matmul peak in onnxruntime), so the remaining speed lies in doing the convolutions in
int8 (VNNI on x86, dot-product instructions on Arm). onnxruntime's static quantizer writes a QDQ graph:
weights int8 per output channel, activations uint8 with ranges measured on calibration frames.

Int8 changes the numbers, so the file is written only after a check on held-out frames, the same kind of
check FP16 exports get (the drop in accuracy after export is what users of such tools complain about most):
the int8 model and the fp32 PyTorch model must agree on the class of every frame where fp32 is not near a tie
(share ``>= min_agreement``) and on the lesion mask (IoU at 0.5 ``>= min_mask_iou``). Calibration frames
come from one split (``train`` by default) and check frames from another (``val``, else ``test``), so the
check never sees the frames the ranges were fitted on. Where the store has labels the model knows, the
report also gives both models' accuracy on the check frames.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from usvid.checkpoint import load_checkpoint
from usvid.errors import ConfigError, InputError, ProcessingError, optional_import
from usvid.data.store import FrameStore
from usvid.inference.export_onnx import OnnxExportConfig, embed_metadata, export_onnx, pooled_mask_iou, run_onnx
from usvid.inference.metadata import INPUT_NAME, ModelInfo
from usvid.inference.torch_backend import InferenceModel
from usvid.io import atomic_path
from usvid.preprocess import PreprocessConfig, preprocess

log = logging.getLogger(__name__)

CalibrationMethod = Literal["minmax", "percentile", "entropy"]
# A frame whose fp32 top-two probabilities lie closer than this may flip class under int8 rounding noise
# without either answer being wrong; agreement is required on the other frames.
NEAR_TIE_MARGIN = 0.1
CALIBRATION_BATCH = 8


@dataclass(frozen=True)
class Int8Config:
    """Settings of :func:`quantize_int8`.

    ``calibration``: a frame store (``usvid extract``) of the kind of frames the model will see.
    ``calibration_frames`` frames of ``calibration_split`` fit the activation ranges; up to ``check_frames``
    frames of ``check_split`` (``None``: ``val``, else ``test``) check the result against fp32 PyTorch.
    """

    calibration: Path
    calibration_frames: int = 128
    calibration_split: str = "train"
    check_split: str | None = None
    check_frames: int = 256
    method: CalibrationMethod = "minmax"
    min_agreement: float = 0.98
    min_mask_iou: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        if self.calibration_frames < 1 or self.check_frames < 1:
            raise ConfigError("calibration_frames and check_frames must be at least 1, got "
                              f"{self.calibration_frames} and {self.check_frames}")
        if self.method not in ("minmax", "percentile", "entropy"):
            raise ConfigError(f"calibration method must be minmax, percentile or entropy, got '{self.method}'")
        if not 0.0 < self.min_agreement <= 1.0 or not 0.0 <= self.min_mask_iou <= 1.0:
            raise ConfigError("min_agreement must lie in (0, 1] and min_mask_iou in [0, 1]")


@dataclass(frozen=True)
class Int8Report:
    """How the int8 model compares with fp32 PyTorch on the check frames.

    ``agreement``: share of frames with the same class, over frames whose fp32 top-two margin is at least
    ``NEAR_TIE_MARGIN`` (``decisive`` of ``frames``); ``agreement_all`` over every frame. ``mask_iou``: IoU
    of all masks thresholded at 0.5, pooled over the frames (1.0 when both are empty). Accuracies are
    against the store's labels (``None`` when its labels are not the model's classes).
    """

    frames: int
    decisive: int
    agreement: float
    agreement_all: float
    max_prob_diff: float
    mean_prob_diff: float
    mask_iou: float | None
    mean_mask_diff: float | None
    accuracy_fp32: float | None
    accuracy_int8: float | None
    check_split: str
    calibration_frames: int
    min_agreement: float
    min_mask_iou: float

    @property
    def passed(self) -> bool:
        return self.agreement >= self.min_agreement and (self.mask_iou is None or self.mask_iou >= self.min_mask_iou)

    def describe(self) -> str:
        mask = "" if self.mask_iou is None else f", mask IoU {self.mask_iou:.3f} (>= {self.min_mask_iou:g})"
        acc = "" if self.accuracy_fp32 is None else (
            f", accuracy fp32 {self.accuracy_fp32:.3f} / int8 {self.accuracy_int8:.3f}")
        return (f"{self.frames} {self.check_split} frames: class agreement {self.agreement:.3f} on {self.decisive} "
                f"decisive frames (>= {self.min_agreement:g}; {self.agreement_all:.3f} on all), max |prob diff| "
                f"{self.max_prob_diff:.3f}{mask}{acc}; calibrated on {self.calibration_frames} frames")


@dataclass(frozen=True)
class Int8Result:
    path: Path
    info: ModelInfo
    report: Int8Report
    seconds: float


def store_frames(store, split: str, count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Up to ``count`` frames of ``split``, a seeded random sample: ``(N, S, S)`` uint8 and their labels.

    Sampled rather than the first ``count``: consecutive frames of one video are near copies, and the ranges
    (or the check) should see every video and every class of the split.
    """
    frames = store.split(split)
    if not frames:
        return np.zeros((0, store.size, store.size), np.uint8), []
    pick = np.sort(np.random.default_rng(seed).choice(len(frames), size=min(count, len(frames)), replace=False))
    chosen = [frames[i] for i in pick]
    arrays: dict[str, np.ndarray] = {}
    images = []
    for f in chosen:
        if f.video_id not in arrays:
            arrays[f.video_id] = store.frames_of(f.video_id)
        images.append(np.asarray(arrays[f.video_id][f.store_index]))
    return np.stack(images), [f.label for f in chosen]


def network_input(images: np.ndarray, config: PreprocessConfig) -> torch.Tensor:
    """``(N, S, S)`` uint8 stored frames -> ``(N, C, size, size)`` float32 network input."""
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
    return preprocess(x.expand(-1, config.in_channels, -1, -1), config)


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over preprocessed frames, in small batches."""

    def __init__(self, inputs: torch.Tensor) -> None:
        self.batches = [inputs[i:i + CALIBRATION_BATCH].numpy() for i in range(0, len(inputs), CALIBRATION_BATCH)]
        self.next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.next >= len(self.batches):
            return None
        self.next += 1
        return {INPUT_NAME: self.batches[self.next - 1]}


def class_agreement(p_ref: np.ndarray, p_got: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(decisive, same)``, each ``(N,)`` bool: frames whose reference ``(N, K)`` probabilities have a top-two
    margin of at least ``NEAR_TIE_MARGIN``, and frames where both give the same class."""
    top2 = np.sort(p_ref, axis=1)[:, -2:] if p_ref.shape[1] > 1 else np.concatenate([0 * p_ref, p_ref], 1)
    return (top2[:, 1] - top2[:, 0]) >= NEAR_TIE_MARGIN, p_ref.argmax(1) == p_got.argmax(1)


def compare_int8(
    ref: tuple[torch.Tensor, ...], got: tuple[np.ndarray, ...], labels: list[int] | None, config: Int8Config,
    check_split: str,
) -> Int8Report:
    """``ref``: fp32 PyTorch ``(probs, [mask])``; ``got``: the int8 model's; ``labels``: class indices or None."""
    p_ref, p_got = ref[0].numpy(), got[0]
    decisive, same = class_agreement(p_ref, p_got)
    mask_iou = mean_mask = None
    if len(ref) > 1:
        m_ref, m_got = ref[1].numpy(), got[1]
        mask_iou = pooled_mask_iou(m_ref, m_got)
        mean_mask = float(np.abs(m_ref - m_got).mean())
    acc32 = acc8 = None
    if labels is not None:
        y = np.asarray(labels)
        acc32, acc8 = float((p_ref.argmax(1) == y).mean()), float((p_got.argmax(1) == y).mean())
    diff = np.abs(p_ref - p_got)
    return Int8Report(
        frames=len(p_ref), decisive=int(decisive.sum()),
        agreement=float(same[decisive].mean()) if decisive.any() else 1.0, agreement_all=float(same.mean()),
        max_prob_diff=float(diff.max()), mean_prob_diff=float(diff.mean()), mask_iou=mask_iou,
        mean_mask_diff=mean_mask, accuracy_fp32=acc32, accuracy_int8=acc8, check_split=check_split,
        calibration_frames=config.calibration_frames, min_agreement=config.min_agreement,
        min_mask_iou=config.min_mask_iou)


# Softmax (the probabilities) and Sigmoid (CBAM's gates, the lesion mask) stay float: in 8 bits the
# probabilities would step in 1/255 and no longer sum to 1, and they cost little next to the convolutions.
FLOAT_OPS = frozenset({"Softmax", "Sigmoid"})


def quantizable_ops(path: Path) -> list[str]:
    """The op types of the ONNX graph at ``path`` to quantize: all but :data:`FLOAT_OPS`."""
    onnx = optional_import("onnx", "export")
    graph = onnx.load(str(path), load_external_data=False).graph
    return sorted({node.op_type for node in graph.node} - FLOAT_OPS)


def _check_split(store, config: Int8Config) -> str:
    candidates = [config.check_split] if config.check_split else ["val", "test"]
    for name in candidates:
        if name != config.calibration_split and store.split(name):
            return name
    raise InputError(f"{store.path}: no frames in split {' or '.join(candidates)} (other than the calibration split "
                     f"'{config.calibration_split}') to check the int8 model on; extract with --split that keeps "
                     "validation or test patients")


def quantize_int8(checkpoint: str | Path, out: str | Path, config: Int8Config, opset: int = 18) -> Int8Result:
    """Export ``checkpoint`` to a static-int8 ONNX at ``out``, written only if the held-out check passes.

    Raises:
        InputError: unreadable checkpoint or store, or a store without calibration / check frames.
        MissingDependencyError: onnx / onnxruntime missing.
        ProcessingError: export or quantization failed, or the int8 model disagrees with fp32 beyond the limits.
    """
    start = time.perf_counter()
    out = Path(out)
    quantization = optional_import("onnxruntime.quantization", "export")
    ckpt = load_checkpoint(checkpoint)
    store = FrameStore(config.calibration)
    pre = ckpt.preprocess
    calib_images, _ = store_frames(store, config.calibration_split, config.calibration_frames, config.seed)
    if len(calib_images) == 0:
        raise InputError(f"{store.path}: no frames in split '{config.calibration_split}' to calibrate on")
    check_split = _check_split(store, config)
    check_images, check_labels = store_frames(store, check_split, config.check_frames, config.seed + 1)
    calib_inputs, check_inputs = network_input(calib_images, pre), network_input(check_images, pre)
    labels = None
    if set(check_labels) <= set(ckpt.class_names):
        labels = [list(ckpt.class_names).index(name) for name in check_labels]

    with tempfile.TemporaryDirectory(prefix="usvid-int8-") as tmp:
        fp32 = export_onnx(ckpt, Path(tmp) / "fp32.onnx", OnnxExportConfig(opset=opset))
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quantization.quant_pre_process(str(fp32.path), str(prepared), skip_symbolic_shape=True)
        except Exception as err:  # onnxruntime raises assorted types from its graph tools
            raise ProcessingError(f"{out}: preparing the graph for quantization failed ({err})") from err
        method = {"minmax": quantization.CalibrationMethod.MinMax,
                  "percentile": quantization.CalibrationMethod.Percentile,
                  "entropy": quantization.CalibrationMethod.Entropy}[config.method]
        with atomic_path(out) as tmp_out:
            try:
                quantization.quantize_static(
                    str(prepared), str(tmp_out), _Calibration(calib_inputs),
                    quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                    activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
                    calibrate_method=method, op_types_to_quantize=quantizable_ops(prepared),
                )
            except Exception as err:
                raise ProcessingError(f"{out}: int8 quantization failed ({type(err).__name__}: {err})") from err
            embed_metadata(tmp_out, fp32.info, "int8")
            reference = InferenceModel(ckpt.build_model(), torch.float32)
            with torch.inference_mode():
                ref = reference(check_inputs)
            report = replace(compare_int8(ref, run_onnx(tmp_out, check_inputs), labels, config, check_split),
                             calibration_frames=len(calib_images))
            log.info("int8 check: %s", report.describe())
            if not report.passed:
                raise ProcessingError(
                    f"{out}: the int8 model differs from fp32 beyond the limits: {report.describe()}; the file was "
                    "not written (calibrate on more or more typical frames, try --calibration-method percentile, "
                    "or keep fp32)")
    return Int8Result(out, fp32.info, report, time.perf_counter() - start)
