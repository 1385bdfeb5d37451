"""The torch backend: eager by default; ``torch.compile``, fp16/bf16 and CUDA graphs on CUDA.

:class:`InferenceModel` is the inference head shared with ONNX export: the network in a chosen precision,
fp32 in, fp32 ``(probs, mask)`` out, softmax in fp32. Exporting this module (rather than the bare network)
is what keeps the torch, onnxruntime and TensorRT outputs the same quantities.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from usvid.checkpoint import Checkpoint, load_checkpoint
from usvid.cpu import cpu_info
from usvid.errors import ConfigError, InputError
from usvid.inference.base import BasePredictor, resolve_device
from usvid.inference.metadata import ModelInfo, model_hash

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "fp16", "bf16"]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class InferenceModel(nn.Module):
    """A network returning ``ModelOutput(logits, mask)`` turned into ``(probs, mask)`` (or ``(probs,)``).

    Args:
        model: a network built by :func:`usvid.models.build_model`, in eval mode.
        dtype: precision the network runs in; inputs are cast to it, outputs back to float32.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.model = model.to(dtype).eval()
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``x``: ``(B, C, H, W)`` float32 preprocessed input -> ``probs (B, K)``, ``mask (B, 1, S, S)`` float32."""
        out = self.model(x.to(self.dtype))
        probs = torch.softmax(out.logits.float(), dim=1)
        if out.mask is None:  # the vanilla classifier
            return (probs,)
        return probs, out.mask.float()


def model_has_mask(model: nn.Module, in_channels: int) -> bool:
    """Whether ``model`` has a lesion branch, found by one forward on a small input."""
    with torch.inference_mode():
        out = model.eval()(torch.zeros(1, in_channels, 64, 64))
    return out.mask is not None


def checkpoint_info(checkpoint: Checkpoint, model: nn.Module) -> ModelInfo:
    """The :class:`ModelInfo` of a checkpoint whose network ``model`` has already been built."""
    return ModelInfo(
        class_names=tuple(checkpoint.class_names),
        preprocess=checkpoint.preprocess,
        model_config=checkpoint.model_config,
        model_hash=model_hash(checkpoint.model_config, checkpoint.state_dict),
        has_mask=model_has_mask(model, checkpoint.preprocess.in_channels),
        usvid_version=checkpoint.usvid_version,
        mask_threshold=checkpoint.mask_threshold,
    )


class _CudaGraphRunner:
    """Replays one captured CUDA graph per batch size (static shapes are what CUDA graphs need)."""

    def __init__(self, module: nn.Module, device: torch.device) -> None:
        self.module = module
        self.device = device
        self.graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, tuple[torch.Tensor, ...]]] = {}

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        key = tuple(x.shape)
        if key not in self.graphs:
            self.graphs[key] = self._capture(x)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out

    def _capture(self, x: torch.Tensor):
        static_in = x.clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up outside the graph lets cuDNN pick its algorithms first
            for _ in range(3):
                self.module(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.module(static_in)
        log.info("captured a CUDA graph for input %s", tuple(x.shape))
        return graph, static_in, static_out


def _check_precision(precision: str, dev: torch.device) -> None:
    """fp16 needs CUDA; bf16 on the CPU needs native bf16 units (emulated bf16 is slower than fp32)."""
    if dev.type == "cuda" or precision == "fp32":
        return
    if precision == "fp16":
        raise ConfigError(f"precision fp16 needs a CUDA device (got {dev}); use fp32, or bf16 on a CPU with bf16 units")
    info = cpu_info()
    if not info.bf16:
        raise ConfigError(f"precision bf16 on {info.model}: this CPU has no native bf16 units (avx512_bf16 / amx_bf16), "
                          "so bf16 would be emulated and slower than fp32; use fp32 or the int8 ONNX export")


class TorchPredictor(BasePredictor):
    """Runs a checkpoint's network in PyTorch.

    ``precision="auto"`` is fp16 on CUDA and fp32 on CPU; fp16 and ``cuda_graphs`` need CUDA, bf16 runs on
    CUDA and on CPUs with native bf16 units (oneDNN: AVX-512 BF16, AMX).
    ``compile`` wraps the network in ``torch.compile`` (the first batch of each shape pays the compile).
    """

    backend = "torch"

    def __init__(
        self,
        model: nn.Module,
        info: ModelInfo,
        device: str | torch.device = "auto",
        *,
        precision: Precision = "auto",
        compile: bool = False,
        cuda_graphs: bool = False,
        threshold: float | None = None,
    ) -> None:
        dev = resolve_device(device)
        super().__init__(info, dev, threshold)
        if precision == "auto":
            precision = "fp16" if dev.type == "cuda" else "fp32"
        if precision not in DTYPES:
            raise ConfigError(f"unknown precision '{precision}'; choose auto, fp32, fp16 or bf16")
        _check_precision(precision, dev)
        if cuda_graphs and dev.type != "cuda":
            raise ConfigError("CUDA graphs need a CUDA device; drop cuda_graphs on the CPU")
        self.precision = precision
        module = InferenceModel(model, DTYPES[precision]).to(dev).eval()
        # channels-last: what cuDNN and oneDNN's fast convolution kernels read without a reorder.
        module = module.to(memory_format=torch.channels_last)
        runner = torch.compile(module, dynamic=False) if compile else module
        self._run = _CudaGraphRunner(runner, dev) if cuda_graphs else runner
        self.compiled = compile
        self.cuda_graphs = cuda_graphs

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "auto", **kwargs) -> TorchPredictor:
        """Load a checkpoint written by :func:`usvid.checkpoint.save_checkpoint`."""
        checkpoint = load_checkpoint(path)
        try:
            model = checkpoint.build_model()
        except InputError as err:
            raise InputError(f"{path}: {err}") from None
        predictor = cls(model, checkpoint_info(checkpoint, model), device, **kwargs)
        predictor.path = Path(path)
        return predictor

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = self._run(x)
            # .cpu() synchronises, so CUDA timing is honest and graph outputs are copied before the next replay
            probs = out[0].cpu()
            mask = out[1].cpu() if self.info.has_mask else None
        return probs, mask
