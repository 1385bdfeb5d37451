"""The onnxruntime backend: an ONNX file from :func:`usvid.inference.export_onnx.export_onnx`.

Class names and preprocessing are read from the file's ``metadata_props`` (through onnxruntime's own
``custom_metadata_map``, so the ``onnx`` package is not needed at run time). CPU by default, the CUDA
execution provider when the device asks for CUDA (or ``auto``) and onnxruntime offers it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from usvid.errors import ConfigError, InputError, MissingDependencyError, optional_import, require_file
from usvid.inference.base import BasePredictor
from usvid.inference.metadata import INPUT_NAME, MASK_NAME, PROBS_NAME, ModelInfo

log = logging.getLogger(__name__)


def default_threads() -> int:
    """CPU cores this process may run on (affinity-aware, unlike ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _providers(ort, device: str) -> list[str]:
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda") or device == "auto":
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device != "auto":
            raise MissingDependencyError(
                f"device '{device}' asked for, but this onnxruntime has no CUDA provider (has: "
                f"{', '.join(available)}); install onnxruntime-gpu or use --device cpu"
            )
        return ["CPUExecutionProvider"]
    raise ConfigError(f"unknown device '{device}' for onnxruntime; use auto, cpu or cuda")


def check_initializers_finite(path: Path) -> None:
    """Refuse an ONNX file whose weights (float initializers) hold NaN or inf; skipped without ``onnx``.

    One parse of the protobuf (a fraction of a second for LA-Net-R50): ONNX files carry no checksum, and a
    NaN weight would otherwise show only as NaN outputs.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # onnxruntime read it; a parser quirk here is no reason to refuse it
        log.debug("%s: onnx could not parse it for the finite check", path, exc_info=True)
        return
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
    for init in model.graph.initializer:
        if init.data_type not in floats or init.data_location == onnx.TensorProto.EXTERNAL:
            continue
        values = numpy_helper.to_array(init).astype(np.float32, copy=False)
        count = int((~np.isfinite(values)).sum())
        if count:
            raise InputError(
                f"{path}: corrupted: weights hold NaN or infinite values ({init.name}: {count} of {values.size}); "
                "re-export the model from a good checkpoint"
            )


class OrtPredictor(BasePredictor):
    """Runs an exported ONNX model in onnxruntime.

    ``threads`` sets the intra-op pool (default: every core this process may use, with one inter-op
    thread, which is fastest for one stream of small batches on a small CPU). ``spin=False`` (default)
    lets idle pool threads sleep instead of busy-waiting between runs.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        device: str | torch.device = "auto",
        *,
        threads: int | None = None,
        spin: bool = False,
        threshold: float | None = None,
    ) -> None:
        ort = optional_import("onnxruntime", "export")
        path = require_file(path, "ONNX model")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Spinning pool threads keep the cores busy after each run; in a pipeline (decoding, drawing,
        # encoding, torch preprocessing) or on a shared machine they starve the other work.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        providers = _providers(ort, str(device))
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as err:  # onnxruntime raises its own Fail / InvalidGraph / RuntimeException types
            raise InputError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err})") from None
        info = ModelInfo.from_metadata(self.session.get_modelmeta().custom_metadata_map, str(path))
        check_initializers_finite(path)
        # Preprocessing runs in torch on the CPU; onnxruntime copies to the GPU itself when CUDA is used.
        super().__init__(info, torch.device("cpu"), threshold)
        self.path = path
        self.providers = self.session.get_providers()
        self._outputs = [PROBS_NAME, MASK_NAME] if info.has_mask else [PROBS_NAME]
        names = {o.name for o in self.session.get_outputs()}
        if not set(self._outputs) <= names or INPUT_NAME not in {i.name for i in self.session.get_inputs()}:
            raise InputError(f"{path}: ONNX graph lacks the usvid inputs/outputs ({INPUT_NAME} -> "
                             f"{', '.join(self._outputs)}); re-export it with `usvid export`")
        log.info("onnxruntime %s on %s, %d intra-op threads", ort.__version__, self.providers,
                 options.intra_op_num_threads)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        outs = self.session.run(self._outputs, {INPUT_NAME: np.ascontiguousarray(x.numpy(), dtype=np.float32)})
        probs = torch.from_numpy(outs[0])
        mask = torch.from_numpy(outs[1]) if self.info.has_mask else None
        return probs, mask
