"""``usvid export``'s one library call: a checkpoint to ONNX or a TensorRT engine, checked before it is kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from usvid.errors import ConfigError
from usvid.inference.export_onnx import OnnxExportConfig, ParityReport, export_onnx
from usvid.inference.frames import read_sample_frames
from usvid.inference.metadata import ModelInfo

Format = Literal["onnx", "tensorrt"]
FORMATS = ("onnx", "tensorrt")


@dataclass(frozen=True)
class ExportConfig:
    """Settings of :func:`export_model`.

    ``fp16``: half precision inside the graph (TensorRT's usual choice; also valid for ONNX).
    ``max_batch``: the TensorRT optimisation profile's largest batch (ONNX always has a dynamic batch).
    ``sample``: an image or video whose first ``sample_frames`` frames join the random ones in the parity check.
    """

    format: Format = "onnx"
    fp16: bool = False
    max_batch: int = 8
    opset: int = 18
    workspace_mib: int = 2048
    sample: Path | None = None
    sample_frames: int = 8

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"--format must be onnx or tensorrt, got '{self.format}'")
        if self.max_batch < 1:
            raise ConfigError(f"--max-batch must be at least 1, got {self.max_batch}")
        if self.sample_frames < 1:
            raise ConfigError(f"sample_frames must be at least 1, got {self.sample_frames}")


@dataclass(frozen=True)
class ExportReport:
    format: str
    path: Path
    precision: str
    info: ModelInfo
    parity: ParityReport | None
    seconds: float
    extra_files: list[Path] = field(default_factory=list)


def export_model(checkpoint: str | Path, out: str | Path, config: ExportConfig = ExportConfig()) -> ExportReport:
    """Export ``checkpoint`` to ``out`` in ``config.format``; nothing is written unless parity holds.

    Raises:
        InputError: unreadable checkpoint or sample.
        MissingDependencyError: onnx/onnxruntime, or tensorrt/a GPU for ``format="tensorrt"``, missing.
        ProcessingError: the exporter failed, or the exported model disagrees with PyTorch.
    """
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
