"""``usvid export``'s one library call: a checkpoint to ONNX or a TensorRT engine, checked before it is kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from usvid.errors import ConfigError
from usvid.inference.export_onnx import OnnxExportConfig, ParityReport, export_onnx
from usvid.inference.frames import read_sample_frames
from usvid.inference.metadata import ModelInfo
from usvid.inference.quantize import CalibrationMethod, Int8Config, Int8Report, quantize_int8
from usvid.outputs import check_output_file, check_path_text

Format = Literal["onnx", "tensorrt"]
FORMATS = ("onnx", "tensorrt")


@dataclass(frozen=True)
class ExportConfig:
    """Settings of :func:`export_model`.

    ``fp16``: half precision inside the graph (TensorRT's usual choice; also valid for ONNX).
    ``max_batch``: the TensorRT optimisation profile's largest batch (ONNX always has a dynamic batch).
    ``sample``: an image or video whose first ``sample_frames`` frames join the random ones in the parity check.
    ``int8``: static int8 ONNX for CPU inference (:mod:`usvid.inference.quantize`), calibrated on the frame
    store ``calibration`` and checked against fp32 on that store's held-out split.
    """

    format: Format = "onnx"
    fp16: bool = False
    max_batch: int = 8
    opset: int = 18
    workspace_mib: int = 2048
    sample: Path | None = None
    sample_frames: int = 8
    int8: bool = False
    calibration: Path | None = None
    calibration_frames: int = 128
    calibration_method: CalibrationMethod = "minmax"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"--format must be onnx or tensorrt, got '{self.format}'")
        if self.max_batch < 1:
            raise ConfigError(f"--max-batch must be at least 1, got {self.max_batch}")
        if self.sample_frames < 1:
            raise ConfigError(f"sample_frames must be at least 1, got {self.sample_frames}")
        if self.int8 and (self.format != "onnx" or self.fp16):
            raise ConfigError("--int8 makes an ONNX model for onnxruntime on the CPU: use it with --format onnx "
                              "and without --fp16")
        if self.int8 and self.calibration is None:
            raise ConfigError("--int8 needs --calibration STORE: a frame store (from `usvid extract`) of frames like "
                              "the ones the model will see, to measure activation ranges and check the result")
        if self.calibration is not None and not self.int8:
            raise ConfigError("--calibration only applies with --int8")
        if self.int8 and self.sample is not None:
            raise ConfigError("--sample joins the fp32/fp16 parity check; an --int8 export is checked on the held-out "
                              "split of --calibration instead: drop --sample")


@dataclass(frozen=True)
class ExportReport:
    format: str
    path: Path
    precision: str
    info: ModelInfo
    parity: ParityReport | Int8Report | None
    seconds: float
    extra_files: list[Path] = field(default_factory=list)


def export_model(checkpoint: str | Path, out: str | Path, config: ExportConfig = ExportConfig()) -> ExportReport:
    """Export ``checkpoint`` to ``out`` in ``config.format``; nothing is written unless parity holds.

    Raises:
        InputError: unreadable checkpoint or sample; ``out`` is a folder, an input, or in a read-only place.
        MissingDependencyError: onnx/onnxruntime, or tensorrt/a GPU for ``format="tensorrt"``, missing.
        ProcessingError: the exporter failed, or the exported model disagrees with PyTorch.
    """
    # Before any work: a folder, an input or a read-only place as --out used to fail after the whole export.
    named = ((checkpoint, "checkpoint"), (config.sample, "--sample"), (config.calibration, "--calibration"))
    for value, option in named:
        if value is not None:
            check_path_text(value, option)
    out = check_output_file(out, inputs=(checkpoint, config.sample, config.calibration), option="--out")
    if config.int8:
        res = quantize_int8(checkpoint, out, Int8Config(calibration=Path(config.calibration),
                                                        calibration_frames=config.calibration_frames,
                                                        method=config.calibration_method), opset=config.opset)
        return ExportReport("onnx", res.path, "int8", res.info, res.report, res.seconds)
    sample = read_sample_frames(config.sample, config.sample_frames) if config.sample is not None else None
    precision = "fp16" if config.fp16 else "fp32"
    if config.format == "onnx":
        result = export_onnx(checkpoint, out, OnnxExportConfig(opset=config.opset, precision=precision), sample)
        return ExportReport("onnx", result.path, precision, result.info, result.parity, result.seconds)
    from usvid.inference.tensorrt_engine import TensorRTConfig, export_tensorrt, sidecar_path

    trt_config = TensorRTConfig(fp16=config.fp16, max_batch=config.max_batch, workspace_mib=config.workspace_mib)
    res = export_tensorrt(checkpoint, out, trt_config, sample)
    return ExportReport("tensorrt", res.engine, precision, res.record.info, res.parity, res.seconds,
                        [sidecar_path(res.engine), res.onnx])
