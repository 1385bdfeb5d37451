"""Export a checkpoint to ONNX, with its metadata embedded and parity against PyTorch checked.

What the graph computes: the *preprocessed* input ``input (B, C, size, size)`` float32 (a frame cropped,
letterboxed and blanked to the store side it was trained from as the frame store does,
:mod:`usvid.inference.geometry`, then :func:`usvid.preprocess.preprocess` to ``size``) -> ``probs (B, K)`` float32 (softmax) and, for models with a lesion
branch, ``mask (B, 1, size/32, size/32)`` float32 in [0, 1]. Geometry and preprocessing stay outside the
graph so every backend runs the same code for them (resizing inside ONNX would use the runtime's own
resize kernel, which does not match OpenCV's or torch's pixel for pixel); the preprocessing settings travel
in ``metadata_props`` with the class names, model config, model hash, usvid version and a line describing
the input geometry.

Export uses the dynamo exporter (``torch.onnx.export(dynamo=True)``) with a dynamic batch dimension. The
file is written only after ``onnx.checker`` and the parity check pass: onnxruntime and PyTorch must agree
within ``tolerance`` on probabilities and mask, for random frames and any real frames given.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from usvid.boxes import MASK_THRESHOLD, lesion_pixels
from usvid.checkpoint import Checkpoint, load_checkpoint
from usvid.data.store import RESIZE_RULE
from usvid.errors import ConfigError, InputError, ProcessingError, optional_import
from usvid.inference.geometry import network_frames
from usvid.inference.metadata import INPUT_NAME, MASK_NAME, PROBS_NAME, ModelInfo
from usvid.inference.torch_backend import DTYPES, InferenceModel, checkpoint_info
from usvid.io import atomic_path
from usvid.outputs import check_output_file
from usvid.preprocess import preprocess

log = logging.getLogger(__name__)

MIN_OPSET = 17
# fp32 must match to 1e-4; an fp16 graph (made for TensorRT) is checked against the fp32 model, so its
# tolerance reflects half precision: probabilities and mask within 2e-2, mask IoU at 0.5 of at least 0.9.
DEFAULT_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}
MIN_MASK_IOU = 0.9


@dataclass(frozen=True)
class OnnxExportConfig:
    """How to export. ``precision="fp16"`` bakes half precision into the graph (fp32 inputs and outputs)."""

    opset: int = 18
    precision: Literal["fp32", "fp16"] = "fp32"
    tolerance: float | None = None  # None: DEFAULT_TOLERANCE[precision]
    check: bool = True
    check_batch: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.opset < MIN_OPSET:
            raise ConfigError(f"ONNX opset must be {MIN_OPSET} or newer, got {self.opset}")
        if self.precision not in DEFAULT_TOLERANCE:
            raise ConfigError(f"ONNX export precision must be fp32 or fp16, got '{self.precision}'")
        if self.check_batch < 1:
            raise ConfigError(f"check_batch must be at least 1, got {self.check_batch}")

    @property
    def atol(self) -> float:
        return self.tolerance if self.tolerance is not None else DEFAULT_TOLERANCE[self.precision]


@dataclass(frozen=True)
class ParityReport:
    """Largest differences between a runtime's outputs and PyTorch's on the same inputs.

    ``class_agreement`` counts only frames whose PyTorch top-two margin exceeds twice the tolerance (a
    near tie may flip legitimately); ``mask_iou`` is the IoU of the two masks thresholded at 0.5
    (1.0 when both are empty).
    """

    frames: int
    max_prob_diff: float
    max_mask_diff: float | None
    class_agreement: float
    mask_iou: float | None
    tolerance: float

    @property
    def passed(self) -> bool:
        ok = self.max_prob_diff <= self.tolerance and self.class_agreement == 1.0
        if self.max_mask_diff is not None:
            ok = ok and self.max_mask_diff <= self.tolerance and (self.mask_iou or 0.0) >= MIN_MASK_IOU
        return ok

    def describe(self) -> str:
        mask = "" if self.max_mask_diff is None else (
            f", max |mask diff| {self.max_mask_diff:.2e}, mask IoU {self.mask_iou:.3f}")
        return (f"{self.frames} frames: max |prob diff| {self.max_prob_diff:.2e}{mask}, "
                f"class agreement {self.class_agreement:.3f} (tolerance {self.tolerance:g})")


@dataclass(frozen=True)
class OnnxExportResult:
    path: Path
    info: ModelInfo
    opset: int
    precision: str
    parity: ParityReport | None
    seconds: float


def pooled_mask_iou(ref: np.ndarray, got: np.ndarray, threshold: float = MASK_THRESHOLD) -> float:
    """IoU of the lesion pixels (:func:`~usvid.boxes.lesion_pixels`) of two batches of masks, pooled over every
    pixel (1.0 when both are empty)."""
    a, b = lesion_pixels(ref, threshold), lesion_pixels(got, threshold)
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def run_onnx(path: Path, inputs: torch.Tensor, batch: int = 16) -> tuple[np.ndarray, ...]:
    """The outputs (``probs``, [``mask``]) of the ONNX model at ``path`` in onnxruntime on the CPU.

    ``inputs``: ``(N, C, S, S)`` float32 network input, run ``batch`` frames at a time.
    """
    ort = optional_import("onnxruntime", "export")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    parts = [session.run(names, {INPUT_NAME: inputs[i:i + batch].numpy()}) for i in range(0, len(inputs), batch)]
    return tuple(np.concatenate(p) for p in zip(*parts))


def compare_outputs(
    ref: tuple[torch.Tensor, ...], got: tuple[torch.Tensor, ...], tolerance: float
) -> ParityReport:
    """Compare ``(probs, [mask])`` from PyTorch (``ref``) with a runtime's (``got``), both float32 CPU."""
    probs_ref, probs_got = ref[0].float(), got[0].float()
    top2 = probs_ref.topk(min(2, probs_ref.shape[1]), dim=1).values
    margin = top2[:, 0] - (top2[:, 1] if top2.shape[1] > 1 else 0.0)
    decisive = margin > 2 * tolerance
    same = probs_ref.argmax(1) == probs_got.argmax(1)
    agreement = float(same[decisive].float().mean()) if decisive.any() else 1.0
    max_mask = iou = None
    if len(ref) > 1:
        m_ref, m_got = ref[1].float(), got[1].float()
        max_mask = float((m_ref - m_got).abs().max())
        iou = pooled_mask_iou(m_ref.numpy(), m_got.numpy())
    return ParityReport(len(probs_ref), float((probs_ref - probs_got).abs().max()), max_mask, agreement, iou,
                        tolerance)


def parity_inputs(info: ModelInfo, batch: int, seed: int, sample_frames: torch.Tensor | None) -> list[torch.Tensor]:
    """Network inputs for parity checks: random non-square frames, plus ``sample_frames`` ``(N, 1, H, W)`` uint8,
    letterboxed and preprocessed exactly as a predictor does."""
    gen = torch.Generator().manual_seed(seed)
    size, c = info.preprocess.frame_size, info.preprocess.in_channels
    groups = [torch.randint(0, 256, (batch, 1, 181, 243), dtype=torch.uint8, generator=gen)]
    if sample_frames is not None:
        if sample_frames.dtype != torch.uint8 or sample_frames.ndim != 4 or sample_frames.shape[1] != 1:
            raise InputError(f"sample frames must be (N, 1, H, W) uint8, got {sample_frames.dtype} "
                             f"{tuple(sample_frames.shape)}")
        groups.append(sample_frames)
    return [preprocess(network_frames(g, None, size).expand(-1, c, -1, -1), info.preprocess) for g in groups]


def _torch_export(module: InferenceModel, example: torch.Tensor, path: Path, opset: int, has_mask: bool) -> None:
    output_names = [PROBS_NAME, MASK_NAME] if has_mask else [PROBS_NAME]
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not the user's problem
        try:
            program = torch.onnx.export(
                module, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                output_names=output_names, dynamic_shapes=({0: batch},), external_data=False, verbose=False,
            )
        except Exception as err:  # torch.export / onnxscript raise many unrelated types
            raise ProcessingError(f"ONNX export failed ({type(err).__name__}: {err})") from err
    program.save(str(path))


def _input_geometry(info: ModelInfo) -> str:
    """The frame path in words, with the sizes: the store side S it was trained from, then S -> M."""
    pre = info.preprocess
    resize = f"bilinear resize {pre.frame_size} -> {pre.size}, " if pre.frame_size != pre.size else ""
    return (f"scan-region crop, then {RESIZE_RULE} (size {pre.frame_size}), then outside-scan pixels set to 0, "
            f"then {resize}usvid.preprocess")


def embed_metadata(path: Path, info: ModelInfo, precision: str) -> None:
    onnx = optional_import("onnx", "export")
    model = onnx.load(str(path))
    # For users outside usvid: how frames become the graph's input (usvid's predictors do this themselves).
    props = {**info.to_metadata(), "usvid.precision": precision,
             "usvid.input_geometry": _input_geometry(info)}
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = f"usvid LA-Net export: {INPUT_NAME} (B, C, S, S) float32 -> probs (B, K), mask"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def check_onnx_parity(
    path: Path, module: InferenceModel, inputs: list[torch.Tensor], tolerance: float
) -> ParityReport:
    """Run ``path`` in onnxruntime (CPU) and ``module`` in PyTorch on each input; one merged report."""
    with torch.inference_mode():
        ref = tuple(torch.cat(parts) for parts in zip(*(module(x) for x in inputs)))
    got = tuple(torch.from_numpy(a) for a in run_onnx(path, torch.cat(inputs)))
    return compare_outputs(ref, got, tolerance)


def read_onnx_info(path: str | Path) -> ModelInfo:
    """Read the :class:`ModelInfo` embedded by :func:`export_onnx`."""
    onnx = optional_import("onnx", "export")
    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf DecodeError and friends
        raise InputError(f"{path}: not a readable ONNX file ({type(err).__name__}: {err})") from None
    return ModelInfo.from_metadata({p.key: p.value for p in model.metadata_props}, str(path))


def export_onnx(
    checkpoint: str | Path | Checkpoint,
    out: str | Path,
    config: OnnxExportConfig = OnnxExportConfig(),
    sample_frames: torch.Tensor | None = None,
) -> OnnxExportResult:
    """Export a checkpoint to ONNX at ``out`` (written atomically, only if every check passes).

    Args:
        checkpoint: a checkpoint path or a loaded :class:`~usvid.checkpoint.Checkpoint`.
        out: the ``.onnx`` file to write.
        config: opset, precision and parity settings.
        sample_frames: optional real frames ``(N, 1, H, W)`` uint8 for the parity check, besides random ones.
    Raises:
        InputError: an unreadable checkpoint, or ``out`` a folder, the checkpoint itself or in a read-only place.
        ProcessingError: when the exporter fails or parity is outside the tolerance.
    """
    start = time.perf_counter()
    from_file = isinstance(checkpoint, (str, Path))
    out = check_output_file(out, inputs=(checkpoint,) if from_file else (), option="out")
    where = str(checkpoint) if from_file else "checkpoint"
    if isinstance(checkpoint, (str, Path)):
        checkpoint = load_checkpoint(checkpoint)
    try:
        model = checkpoint.build_model()
    except InputError as err:
        raise InputError(f"{where}: {err}") from None
    info = checkpoint_info(checkpoint, model)
    reference = InferenceModel(model, torch.float32)
    exported = InferenceModel(copy.deepcopy(model), DTYPES[config.precision])
    size, c = info.preprocess.size, info.preprocess.in_channels
    # Batch 2 in the example: torch.export specialises a dimension of size 1, which would pin the batch.
    example = torch.rand(2, c, size, size, generator=torch.Generator().manual_seed(config.seed))
    parity = None
    with atomic_path(out) as tmp:
        _torch_export(exported, example, tmp, config.opset, info.has_mask)
        embed_metadata(tmp, info, config.precision)
        if config.check:
            inputs = parity_inputs(info, config.check_batch, config.seed, sample_frames)
            parity = check_onnx_parity(tmp, reference, inputs, config.atol)
            log.info("ONNX parity: %s", parity.describe())
            if not parity.passed:
                raise ProcessingError(f"{out}: ONNX output differs from PyTorch beyond tolerance: "
                                      f"{parity.describe()}; the file was not written")
    return OnnxExportResult(out, info, config.opset, config.precision, parity, time.perf_counter() - start)

