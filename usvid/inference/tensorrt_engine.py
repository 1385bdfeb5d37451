"""TensorRT engines: build from ONNX with the TensorRT Python API, cache them, run them.

UNVERIFIED: TensorRT cannot be installed on the machines this was written on, so this module follows
the TensorRT 10/11 Python API documentation but has not run against a real TensorRT. Its tests skip
without ``tensorrt`` and a GPU; only the missing-dependency paths, the cache key and the sidecar format
are tested here.

Design:

- Precision lives in the ONNX graph. For FP16, :func:`export_tensorrt` exports a half-precision ONNX
  (fp32 inputs and outputs, fp16 inside; checked against the fp32 PyTorch model in onnxruntime) and the
  engine is built as a *strongly typed* network, so TensorRT keeps the graph's types. This works the same
  on TensorRT 10 and 11 (11 removed the weak-typing ``BuilderFlag.FP16``). TF32 is switched off so FP32
  engines stay FP32 (a common cause of "accuracy dropped after export" reports on Ampere and newer GPUs).
- One optimisation profile for batch 1..``max_batch`` (optimised for ``opt_batch``), workspace limited to
  ``workspace_mib``.
- Engines are cached under ``cache_dir`` (default ``$USVID_CACHE_DIR/tensorrt`` or
  ``~/.cache/usvid/tensorrt``), keyed by model hash, precision, TensorRT version, GPU name, batch
  profile and input shape, so a restart never rebuilds and a change of GPU or TensorRT never loads a stale
  engine.
- An engine file ``X.engine`` has a JSON sidecar ``X.engine.json`` with the model's :class:`ModelInfo`,
  what it was built for, and the ONNX it came from. Loading an engine built for another GPU or TensorRT
  version rebuilds it from that ONNX (and replaces the file) instead of loading it.
- Parity after building, on the GPU, against the fp32 PyTorch model: FP16 within 2e-2 on probabilities and
  mask, mask IoU (threshold 0.5) at least 0.9, identical class decisions wherever PyTorch's top-two margin
  exceeds twice the tolerance; FP32 within 1e-3.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from usvid.checkpoint import Checkpoint, load_checkpoint
from usvid.errors import ConfigError, InputError, MissingDependencyError, ProcessingError, optional_import
from usvid.inference.base import BasePredictor
from usvid.inference.export_onnx import (
    OnnxExportConfig,
    ParityReport,
    compare_outputs,
    export_onnx,
    parity_inputs,
)
from usvid.inference.metadata import INPUT_NAME, MASK_NAME, PROBS_NAME, ModelInfo
from usvid.io import atomic_path, cache_root, write_json_atomic

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".json"
PARITY_TOLERANCE = {"fp16": 2e-2, "fp32": 1e-3}


def default_cache_dir() -> Path:
    return cache_root() / "tensorrt"


@dataclass(frozen=True)
class TensorRTConfig:
    """How to build an engine. ``opt_batch`` defaults to ``min(8, max_batch)``.

    ``fp16`` chooses the precision of the ONNX that :func:`export_tensorrt` writes; an engine built
    from an existing ONNX file takes that file's precision.
    """

    fp16: bool = True
    max_batch: int = 8
    opt_batch: int | None = None
    workspace_mib: int = 2048
    cache_dir: Path = field(default_factory=default_cache_dir)

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ConfigError(f"--max-batch must be at least 1, got {self.max_batch}")
        if self.opt_batch is not None and not 1 <= self.opt_batch <= self.max_batch:
            raise ConfigError(f"opt_batch must lie in 1..{self.max_batch}, got {self.opt_batch}")
        if self.workspace_mib < 64:
            raise ConfigError(f"TensorRT workspace must be at least 64 MiB, got {self.workspace_mib}")

    @property
    def precision(self) -> str:
        return "fp16" if self.fp16 else "fp32"

    @property
    def optimal_batch(self) -> int:
        return self.opt_batch or min(8, self.max_batch)


@dataclass(frozen=True)
class EngineRecord:
    """The sidecar of an engine file: what it computes, what it was built for, where it came from."""

    info: ModelInfo
    precision: str
    tensorrt_version: str
    gpu_name: str
    max_batch: int
    opt_batch: int
    onnx_path: str
    cache_key: str

    def to_json(self) -> dict:
        return {"metadata": self.info.to_metadata(), "precision": self.precision,
                "tensorrt_version": self.tensorrt_version, "gpu_name": self.gpu_name,
                "max_batch": self.max_batch, "opt_batch": self.opt_batch, "onnx_path": self.onnx_path,
                "cache_key": self.cache_key}

    @classmethod
    def from_json(cls, data: dict, where: str) -> EngineRecord:
        try:
            return cls(ModelInfo.from_metadata(data["metadata"], where), data["precision"],
                       data["tensorrt_version"], data["gpu_name"], int(data["max_batch"]),
                       int(data["opt_batch"]), data["onnx_path"], data["cache_key"])
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"{where}: engine sidecar is incomplete ({err}); re-export with `usvid export`") from None


def sidecar_path(engine: Path) -> Path:
    return engine.with_name(engine.name + SIDECAR_SUFFIX)


def read_record(engine: Path) -> EngineRecord:
    side = sidecar_path(engine)
    if not side.is_file():
        raise InputError(f"{engine}: no sidecar {side.name} beside the engine (it holds class names and "
                         "preprocessing); build engines with `usvid export --format tensorrt`")
    try:
        data = json.loads(side.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{side}: not valid JSON ({err})") from None
    return EngineRecord.from_json(data, str(side))


def engine_cache_key(model_hash: str, precision: str, tensorrt_version: str, gpu_name: str,
                     max_batch: int, opt_batch: int, input_shape: tuple[int, ...]) -> str:
    """Stable key of everything an engine depends on; any change gives a new key (and a rebuild)."""
    parts = [model_hash, precision, tensorrt_version, gpu_name, str(max_batch), str(opt_batch),
             "x".join(map(str, input_shape))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def require_tensorrt(device: str | torch.device = "cuda"):
    """Import ``tensorrt`` and check for a CUDA GPU; a clear :class:`MissingDependencyError` otherwise."""
    trt = optional_import("tensorrt", "tensorrt")
    if not torch.cuda.is_available():
        raise MissingDependencyError(
            "TensorRT needs an NVIDIA GPU with CUDA, but torch sees none on this machine; "
            "run on a GPU machine, or use the onnxruntime backend (`--format onnx`) on the CPU"
        )
    dev = torch.device("cuda" if str(device) == "auto" else device)
    if dev.type != "cuda":
        raise ConfigError(f"TensorRT runs on CUDA devices only, got device '{device}'")
    return trt, dev


def _onnx_precision(onnx_path: Path) -> tuple[ModelInfo, str]:
    onnx = optional_import("onnx", "export")
    model = onnx.load(str(onnx_path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    return ModelInfo.from_metadata(props, str(onnx_path)), props.get("usvid.precision", "fp32")


def build_engine(onnx_path: Path, engine_path: Path, config: TensorRTConfig, device: str | torch.device = "cuda"
                 ) -> EngineRecord:
    """Build a TensorRT engine from ``onnx_path`` into ``engine_path`` (+ sidecar), atomically."""
    trt, dev = require_tensorrt(device)
    info, precision = _onnx_precision(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ProcessingError(f"{onnx_path}: TensorRT could not parse the ONNX graph: {errors}")
    build_config = builder.create_builder_config()
    build_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mib << 20)
    if hasattr(trt.BuilderFlag, "TF32"):
        build_config.clear_flag(trt.BuilderFlag.TF32)
    c, s = info.preprocess.in_channels, info.preprocess.size
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (1, c, s, s), (config.optimal_batch, c, s, s), (config.max_batch, c, s, s))
    build_config.add_optimization_profile(profile)
    start = time.perf_counter()
    with torch.cuda.device(dev):  # TensorRT builds for the current CUDA device
        serialized = builder.build_serialized_network(network, build_config)
    if serialized is None:
        raise ProcessingError(f"{onnx_path}: TensorRT failed to build an engine (see its log above)")
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(serialized))
    gpu = torch.cuda.get_device_name(dev)
    record = EngineRecord(info, precision, trt.__version__, gpu, config.max_batch, config.optimal_batch,
                          str(Path(onnx_path).resolve()),
                          engine_cache_key(info.model_hash, precision, trt.__version__, gpu, config.max_batch,
                                           config.optimal_batch, (c, s, s)))
    write_json_atomic(sidecar_path(engine_path), record.to_json())
    log.info("built TensorRT %s engine %s on %s in %.0f s", precision, engine_path, gpu, time.perf_counter() - start)
    return record


def cached_engine(onnx_path: Path, config: TensorRTConfig, device: str | torch.device = "cuda") -> Path:
    """The cached engine for ``onnx_path`` on this GPU and TensorRT, built first if missing."""
    trt, dev = require_tensorrt(device)
    info, precision = _onnx_precision(onnx_path)
    c, s = info.preprocess.in_channels, info.preprocess.size
    key = engine_cache_key(info.model_hash, precision, trt.__version__, torch.cuda.get_device_name(dev),
                           config.max_batch, config.optimal_batch, (c, s, s))
    engine = Path(config.cache_dir) / f"{key}.engine"
    if engine.is_file() and sidecar_path(engine).is_file():
        log.info("reusing cached TensorRT engine %s", engine)
        return engine
    build_engine(onnx_path, engine, config, dev)
    return engine


def _copy_engine(src: Path, dst: Path, onnx_path: Path) -> None:
    """Copy a cached engine to ``dst``; its sidecar points at ``onnx_path`` (used for rebuilds)."""
    record = replace(read_record(src), onnx_path=str(onnx_path.resolve()))
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    write_json_atomic(sidecar_path(dst), record.to_json())


class TensorRTPredictor(BasePredictor):
    """Runs a TensorRT engine; batches larger than the engine's ``max_batch`` run in chunks."""

    backend = "tensorrt"

    def __init__(self, path: str | Path, device: str | torch.device = "auto", *,
                 threshold: float | None = None) -> None:
        trt, dev = require_tensorrt(device)
        path = Path(path)
        record = self._current_record(trt, path, dev)
        super().__init__(record.info, dev, threshold)
        self.record = record
        self.path = path
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with torch.cuda.device(dev):
            self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise InputError(f"{path}: TensorRT could not load this engine (corrupt, or built by another "
                             "TensorRT); delete it and re-export")
        with torch.cuda.device(dev):
            self.context = self.engine.create_execution_context()
        self._outputs = [PROBS_NAME, MASK_NAME] if record.info.has_mask else [PROBS_NAME]

    @classmethod
    def from_onnx(cls, path: str | Path, device: str | torch.device = "auto", *, max_batch: int = 8,
                  threshold: float | None = None) -> TensorRTPredictor:
        """Build (or reuse from the cache) an engine for this ONNX file and GPU, then load it."""
        _, dev = require_tensorrt(device)
        engine = cached_engine(Path(path), TensorRTConfig(max_batch=max_batch), dev)
        return cls(engine, dev, threshold=threshold)

    @staticmethod
    def _current_record(trt, path: Path, dev: torch.device) -> EngineRecord:
        if not path.is_file():
            raise InputError(f"{path}: engine file does not exist")
        record = read_record(path)
        gpu = torch.cuda.get_device_name(dev)
        if record.tensorrt_version == trt.__version__ and record.gpu_name == gpu:
            return record
        log.warning("%s was built for %s with TensorRT %s; this is %s with TensorRT %s: rebuilding",
                    path, record.gpu_name, record.tensorrt_version, gpu, trt.__version__)
        onnx_path = Path(record.onnx_path)
        if not onnx_path.is_file():
            raise InputError(f"{path}: built for {record.gpu_name} / TensorRT {record.tensorrt_version}, not this "
                             f"{gpu} / TensorRT {trt.__version__}, and its ONNX {onnx_path} is gone; re-export it")
        config = TensorRTConfig(fp16=record.precision == "fp16", max_batch=record.max_batch,
                                opt_batch=record.opt_batch)
        _copy_engine(cached_engine(onnx_path, config, dev), path, onnx_path)
        return read_record(path)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        parts = [self._run_chunk(chunk.contiguous()) for chunk in x.split(self.record.max_batch)]
        probs = torch.cat([p[0] for p in parts]).cpu()
        mask = torch.cat([p[1] for p in parts]).cpu() if self.info.has_mask else None
        return probs, mask

    def _run_chunk(self, x: torch.Tensor) -> list[torch.Tensor]:
        ctx = self.context
        ctx.set_input_shape(INPUT_NAME, tuple(x.shape))
        ctx.set_tensor_address(INPUT_NAME, x.data_ptr())
        outs = []
        for name in self._outputs:
            buf = torch.empty(tuple(ctx.get_tensor_shape(name)), dtype=torch.float32, device=self.device)
            ctx.set_tensor_address(name, buf.data_ptr())
            outs.append(buf)
        stream = torch.cuda.current_stream(self.device)
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise ProcessingError(f"{self.path}: TensorRT execution failed for input {tuple(x.shape)}")
        return outs


@dataclass(frozen=True)
class TensorRTExportResult:
    engine: Path
    onnx: Path
    record: EngineRecord
    parity: ParityReport
    seconds: float


def check_engine_parity(predictor: TensorRTPredictor, checkpoint: Checkpoint, inputs: list[torch.Tensor]
                        ) -> ParityReport:
    """TensorRT vs the fp32 PyTorch model on the same GPU and inputs."""
    from usvid.inference.torch_backend import InferenceModel

    module = InferenceModel(checkpoint.build_model(), torch.float32).to(predictor.device)
    refs, gots = [], []
    with torch.inference_mode():
        for x in inputs:
            x = x.to(predictor.device)
            refs.append(tuple(t.cpu() for t in module(x)))
            probs, mask = predictor._forward(x)
            gots.append((probs,) if mask is None else (probs, mask))
    ref = tuple(torch.cat(p) for p in zip(*refs))
    got = tuple(torch.cat(p) for p in zip(*gots))
    return compare_outputs(ref, got, PARITY_TOLERANCE[predictor.record.precision])


def export_tensorrt(checkpoint: str | Path | Checkpoint, out: str | Path, config: TensorRTConfig = TensorRTConfig(),
                    sample_frames: torch.Tensor | None = None) -> TensorRTExportResult:
    """Checkpoint -> ONNX (``<out stem>.<precision>.onnx``, kept beside the engine) -> engine at ``out``.

    The engine comes from the cache when one exists for this model, precision, GPU and TensorRT.
    Raises :class:`ProcessingError` when the engine disagrees with PyTorch beyond the stated tolerance.
    """
    start = time.perf_counter()
    require_tensorrt("cuda")  # fail before spending time on the ONNX export
    out = Path(out)
    if isinstance(checkpoint, (str, Path)):
        checkpoint = load_checkpoint(checkpoint)
    onnx_path = out.with_name(f"{out.stem}.{config.precision}.onnx")
    exported = export_onnx(checkpoint, onnx_path, OnnxExportConfig(precision=config.precision), sample_frames)
    engine = cached_engine(onnx_path, config)
    predictor = TensorRTPredictor(engine, "cuda")
    parity = check_engine_parity(predictor, checkpoint, parity_inputs(exported.info, 4, 0, sample_frames))
    log.info("TensorRT parity: %s", parity.describe())
    if not parity.passed:
        raise ProcessingError(f"{out}: TensorRT output differs from PyTorch beyond tolerance: {parity.describe()}")
    _copy_engine(engine, out, onnx_path)
    return TensorRTExportResult(out, onnx_path, read_record(out), parity, time.perf_counter() - start)
