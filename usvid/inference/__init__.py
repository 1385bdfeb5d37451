"""Inference: one :class:`Predictor` over torch, onnxruntime and TensorRT; ONNX/TensorRT export; offline predict.

Quick start::

    from usvid.inference import load_predictor
    predictor = load_predictor("model.onnx")          # or a .pt checkpoint, or a TensorRT .engine
    pred = predictor.predict(frames)                   # frames: (B, 1, H, W) uint8
    pred.probs, pred.boxes, pred.timing                # (B, K); B usvid.boxes.Box-or-None, [x, y, w, h] frame pixels

Export with :func:`usvid.inference.export.export_model` (``usvid export``); predict over recorded videos with
:func:`usvid.inference.predict.predict_videos` (``usvid predict``).
"""

from usvid.boxes import Box
from usvid.inference.base import BasePredictor, Prediction, Predictor, Timing
from usvid.inference.metadata import ModelInfo
from usvid.inference.postprocess import mask_to_box, masks_to_boxes
from usvid.inference.predictor import load_predictor

__all__ = [
    "BasePredictor", "Box", "ModelInfo", "Prediction", "Predictor", "Timing", "load_predictor",
    "mask_to_box", "masks_to_boxes",
]
