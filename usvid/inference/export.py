"""``usvid export``'s one library call: a checkpoint to ONNX or a TensorRT engine, checked before it is kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from usvid.errors import ConfigError
from usvid.inference.export_onnx import OnnxExportConfig, ParityReport, export_onnx
from usvid.inference.frames import read_sample_frames
from usvid.inference.metadata import ModelInfo
from usvid.inference.quantize import Int8Config, Int8Report, quantize_int8
from usvid.inference.tensorrt_engine import TensorRTConfig
from usvid.outputs import check_output_file, check_path_text

Format = Literal["onnx", "tensorrt"]
FORMATS = ("onnx", "tensorrt")


def _plain_tensorrt() -> TensorRTConfig:
    return TensorRTConfig(fp16=False)  # fp32 unless asked, like the ONNX export


@dataclass(frozen=True)
class ExportConfig:
    """Settings of :func:`export_model`: the format, and the settings of each kind of export.

    ``onnx``: opset and precision of an ONNX export (``precision="fp16"``: half precision inside the graph).
    ``tensorrt``: the engine's precision, optimisation profile and workspace (``format="tensorrt"``).
    ``int8``: static int8 ONNX for CPU inference (:mod:`usvid.inference.quantize`), calibrated on a frame store
    and checked against fp32 on its held-out split; None: no quantisation.
    ``sample``: an image or video whose first ``sample_frames`` frames join the random ones in the parity check.
    Each part validates its own values; this class checks only how they combine.
    """

    format: Format = "onnx"
    onnx: OnnxExportConfig = field(default_factory=OnnxExportConfig)
    tensorrt: TensorRTConfig = field(default_factory=_plain_tensorrt)
    int8: Int8Config | None = None
    sample: Path | None = None
    sample_frames: int = 8

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"--format must be onnx or tensorrt, got '{self.format}'")
        if self.sample_frames < 1:
            raise ConfigError(f"sample_frames must be at least 1, got {self.sample_frames}")
        if self.int8 is not None and (self.format != "onnx" or self.onnx.precision != "fp32"):
            raise ConfigError("--int8 makes an ONNX model for onnxruntime on the CPU: use it with --format onnx "
                              "and without --fp16")
        if self.int8 is not None and self.sample is not None:
            raise ConfigError("--sample joins the fp32/fp16 parity check; an --int8 export is checked on the held-out "
                              "split of --calibration instead: drop --sample")

    @property
    def precision(self) -> str:
        """What the exported model computes in: fp32, fp16 or int8."""
        if self.int8 is not None:
            return "int8"
        return self.onnx.precision if self.format == "onnx" else self.tensorrt.precision


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
    calibration = None if config.int8 is None else config.int8.calibration
    named = ((checkpoint, "checkpoint"), (config.sample, "--sample"), (calibration, "--calibration"))
    for value, option in named:
        if value is not None:
            check_path_text(value, option)
    out = check_output_file(out, inputs=(checkpoint, config.sample, calibration), option="--out")
    if config.int8 is not None:
        res = quantize_int8(checkpoint, out, config.int8, opset=config.onnx.opset)
        return ExportReport("onnx", res.path, "int8", res.info, res.report, res.seconds)
    sample = read_sample_frames(config.sample, config.sample_frames) if config.sample is not None else None
    if config.format == "onnx":
        result = export_onnx(checkpoint, out, config.onnx, sample)
        return ExportReport("onnx", result.path, config.precision, result.info, result.parity, result.seconds)
    from usvid.inference.tensorrt_engine import export_tensorrt, sidecar_path

    res = export_tensorrt(checkpoint, out, config.tensorrt, sample)
    return ExportReport("tensorrt", res.engine, config.precision, res.record.info, res.parity, res.seconds,
                        [sidecar_path(res.engine), res.onnx])
