"""Load a model file into the predictor for its type: :func:`load_predictor`.

:func:`load_predictor` picks the backend from the file type: a checkpoint (``.pt``, ``.pth``, ``.ckpt``)
runs in torch, an ``.onnx`` file in onnxruntime (or TensorRT with ``backend="tensorrt"``, building a cached
engine), an ``.engine`` / ``.plan`` file in TensorRT.

The factory: it imports the backends when one is asked for. What they share (:class:`BasePredictor`,
:class:`Prediction`, :class:`Timing`, the :class:`Predictor` protocol) lives in the leaf
:mod:`usvid.inference.base`, which the backends import instead of this module; it is re-exported here, so
``from usvid.inference.predictor import BasePredictor, Prediction, load_predictor`` keeps working.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch

from usvid.errors import ConfigError, InputError, require_file, unknown_name
from usvid.inference.base import (
    BasePredictor,
    NonFiniteOutputError,
    Prediction,
    Predictor,
    Timing,
    as_frame_batch,
    resolve_device,
    single_threaded_torch,
)
from usvid.outputs import check_path_text

__all__ = [
    "BACKENDS", "CHECKPOINT_SUFFIXES", "ENGINE_SUFFIXES", "ONNX_SUFFIXES", "Backend", "BasePredictor",
    "NonFiniteOutputError", "Prediction", "Predictor", "Timing", "as_frame_batch", "load_predictor",
    "model_kind", "resolve_device", "single_threaded_torch",
]

log = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "onnxruntime", "tensorrt"]
BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan")


def model_kind(path: Path) -> Literal["checkpoint", "onnx", "engine"]:
    """Which file type ``path`` is, by suffix; unknown suffixes are an :class:`InputError`."""
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    allowed = ", ".join(CHECKPOINT_SUFFIXES + ONNX_SUFFIXES + ENGINE_SUFFIXES)
    raise InputError(f"{path}: unknown model file type '{suffix}'; expected one of {allowed} "
                     "(a usvid checkpoint, an ONNX file from `usvid export`, or a TensorRT engine)")


def load_predictor(
    path: str | Path,
    backend: Backend = "auto",
    device: str | torch.device = "auto",
    *,
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto",
    compile: bool = False,
    cuda_graphs: bool | None = None,
    threads: int | None = None,
    spin: bool = False,
    threshold: float | None = None,
) -> BasePredictor:
    """Load a model file into the predictor for its type.

    ``backend="auto"``: a checkpoint on the CPU (with ``precision="auto"``, no ``compile``) runs in the fastest
    path that agrees with fp32 torch on fixed check frames, measured once per model file and machine and cached
    (:mod:`usvid.inference.autoselect`: torch fp32, torch bf16 on CPUs with bf16 units, onnxruntime fp32;
    ``USVID_AUTOSELECT=0`` keeps torch fp32). Otherwise a checkpoint runs in torch (``precision="auto"``:
    fp16 on CUDA, fp32 on the CPU;
    ``cuda_graphs=None``: on for CUDA, where replaying a captured graph took LA-Net-R18 at batch 1 from 4.6 to
    1.5 ms end to end on an H200, off on the CPU),
    an ``.onnx`` in onnxruntime (CUDA provider when present), an engine in TensorRT. ``precision``,
    ``compile`` and ``cuda_graphs`` apply to the torch backend, ``threads`` to onnxruntime's intra-op
    pool and ``spin`` to its busy-waiting between runs. ``backend="tensorrt"`` on an ``.onnx`` builds (or reuses) a cached engine for this GPU; its
    precision is the ONNX graph's (export with ``--fp16`` for an FP16 engine).
    """
    if backend not in BACKENDS:
        raise unknown_name("backend", str(backend), BACKENDS)
    from usvid.shipped import predictor_role, resolve_model

    path = require_file(resolve_model(check_path_text(path, "model file"), predictor_role(backend)), "model file")
    kind = model_kind(path)
    allowed = {"checkpoint": ("torch",), "onnx": ("onnxruntime", "tensorrt"), "engine": ("tensorrt",)}[kind]
    chosen = allowed[0] if backend == "auto" else backend
    if chosen not in allowed:
        raise ConfigError(f"{path}: a {kind} file cannot run with backend '{backend}'; "
                          f"use {' or '.join(allowed)} (or export it with `usvid export` first)")
    if backend == "auto" and kind == "checkpoint" and precision == "auto" and not compile:
        from usvid.inference import autoselect

        if autoselect.enabled() and resolve_device(device).type == "cpu":
            return autoselect.auto_cpu_predictor(path, threads=threads, spin=spin, threshold=threshold)
    log.info("loading %s with the %s backend", path, chosen)
    if chosen == "torch":
        from usvid.inference.torch_backend import TorchPredictor

        if cuda_graphs is None:
            cuda_graphs = resolve_device(device).type == "cuda"
        return TorchPredictor.from_checkpoint(path, device, precision=precision, compile=compile,
                                              cuda_graphs=cuda_graphs, threshold=threshold)
    if chosen == "onnxruntime":
        from usvid.inference.ort_backend import OrtPredictor

        return OrtPredictor(path, device, threads=threads, spin=spin, threshold=threshold)
    from usvid.inference.tensorrt_engine import TensorRTPredictor

    if kind == "onnx":
        return TensorRTPredictor.from_onnx(path, device, threshold=threshold)
    return TensorRTPredictor(path, device, threshold=threshold)
