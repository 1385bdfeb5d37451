"""Predictor interface: load_predictor by file type, shapes, torch/onnxruntime agreement, ROI, bad inputs."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.checkpoints import CLASSES, SIZE
from usvid.errors import ConfigError, InputError, MissingDependencyError
from usvid.inference import Prediction, Predictor, load_predictor
from usvid.inference.ort_backend import OrtPredictor
from usvid.inference.torch_backend import TorchPredictor
from usvid.video.roi import ScanRegion


def _frames(b=3, h=75, w=121, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (b, 1, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_load_by_file_type(tiny_checkpoints, tiny_onnx, tmp_path):
    torch_pred = load_predictor(tiny_checkpoints["lanet_tiny"], device="cpu")
    ort_pred = load_predictor(tiny_onnx["lanet_tiny"], device="cpu")
    assert isinstance(torch_pred, TorchPredictor) and torch_pred.backend == "torch"
    assert isinstance(ort_pred, OrtPredictor) and ort_pred.backend == "onnxruntime"
    assert isinstance(torch_pred, Predictor) and isinstance(ort_pred, Predictor)
    assert torch_pred.class_names == ort_pred.class_names == CLASSES
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(MissingDependencyError, match="tensorrt|GPU"):
        load_predictor(engine)
    with pytest.raises(ConfigError, match="cannot run with backend 'onnxruntime'"):
        load_predictor(tiny_checkpoints["lanet_tiny"], backend="onnxruntime")
    with pytest.raises(ConfigError, match="unknown backend 'onnxrutnime'.*Did you mean 'onnxruntime'"):
        load_predictor(tiny_onnx["lanet_tiny"], backend="onnxrutnime")


def test_prediction_shapes_and_values(tiny_onnx):
    pred = load_predictor(tiny_onnx["lanet_tiny"], device="cpu").predict(_frames())
    assert isinstance(pred, Prediction) and len(pred) == 3
    assert pred.probs.shape == (3, len(CLASSES)) and pred.probs.dtype == torch.float32
    assert torch.allclose(pred.probs.sum(1), torch.ones(3), atol=1e-5)
    assert pred.mask.shape == (3, 1, SIZE // 32, SIZE // 32)
    assert ((pred.mask >= 0) & (pred.mask <= 1)).all()
    assert len(pred.boxes) == 3 and len(pred.labels) == 3
    for box in pred.boxes:
        if box is not None:
            assert 0 <= box.x and box.x + box.w <= 121 and 0 <= box.y and box.y + box.h <= 75
    assert pred.timing.total_ms > 0 and pred.timing.inference_ms > 0
    assert "probs=(3, 3)" in repr(pred)


@pytest.mark.parametrize("name", ["lanet_tiny", "resnet_tiny_cls"])
def test_torch_and_onnxruntime_agree(name, tiny_checkpoints, tiny_onnx):
    frames = _frames(seed=1)
    a = load_predictor(tiny_checkpoints[name], device="cpu").predict(frames)
    b = load_predictor(tiny_onnx[name], device="cpu").predict(frames)
    torch.testing.assert_close(a.probs, b.probs, atol=1e-4, rtol=0)
    if name == "resnet_tiny_cls":
        assert a.mask is None and b.mask is None and a.boxes == b.boxes == [None] * 3
    else:
        torch.testing.assert_close(a.mask, b.mask, atol=1e-4, rtol=0)


def test_roi_equals_cropping_then_offsetting(tiny_onnx):
    predictor = load_predictor(tiny_onnx["lanet_tiny"], device="cpu")
    frames = _frames(b=2, h=90, w=140, seed=2)
    roi = ScanRegion(x=17, y=9, w=100, h=64)
    full = predictor.predict(frames, roi)
    crop = predictor.predict(frames[..., 9:73, 17:117].contiguous())
    torch.testing.assert_close(full.probs, crop.probs)
    for a, b in zip(full.boxes, crop.boxes):
        assert (a is None) == (b is None)
        if a is not None:
            assert (a.x, a.y, a.w, a.h) == (b.x + 17, b.y + 9, b.w, b.h)


def test_bad_frames_and_options(tiny_checkpoints, tiny_onnx, tmp_path):
    predictor = load_predictor(tiny_onnx["lanet_tiny"], device="cpu")
    with pytest.raises(InputError, match="uint8"):
        predictor.predict(_frames().float())
    with pytest.raises(InputError, match="uint8"):
        predictor.predict(_frames()[0])
    with pytest.raises(InputError, match=r"\(B, 1, H, W\)"):
        predictor.predict(torch.zeros(2, 2, 40, 40, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="outside"):
        predictor.predict(_frames(), ScanRegion(100, 0, 50, 10))
    with pytest.raises(ConfigError, match="threads"):
        load_predictor(tiny_onnx["lanet_tiny"], threads=0)
    if not torch.cuda.is_available():
        with pytest.raises(MissingDependencyError, match="CUDA"):
            load_predictor(tiny_checkpoints["lanet_tiny"], device="cuda")
        with pytest.raises(ConfigError, match="needs a CUDA device"):
            load_predictor(tiny_checkpoints["lanet_tiny"], device="cpu", precision="fp16")


def test_bad_model_files(tmp_path):
    with pytest.raises(InputError, match="nope.onnx"):
        load_predictor(tmp_path / "nope.onnx")
    weird = tmp_path / "model.bin"
    weird.write_bytes(b"x")
    with pytest.raises(InputError, match="unknown model file type '.bin'"):
        load_predictor(weird)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01garbage" * 50)
    with pytest.raises(InputError, match="corrupt.onnx"):
        load_predictor(corrupt)
    bad_ckpt = tmp_path / "bad.pt"
    bad_ckpt.write_bytes(b"nope")
    with pytest.raises(InputError, match="bad.pt"):
        load_predictor(bad_ckpt)


@pytest.mark.gpu
@pytest.mark.parametrize(("precision", "cuda_graphs", "atol"), [("fp32", False, 1e-3), ("fp16", False, 2e-2),
                                                                 ("bf16", False, 5e-2), ("fp16", True, 2e-2)])
def test_torch_cuda_matches_cpu(precision, cuda_graphs, atol, tiny_checkpoints, cuda_device):
    frames = _frames(b=4, seed=5)
    ref = load_predictor(tiny_checkpoints["lanet_tiny"], device="cpu").predict(frames)
    gpu = load_predictor(tiny_checkpoints["lanet_tiny"], device=cuda_device, precision=precision,
                         cuda_graphs=cuda_graphs)
    for _ in range(2):  # the second call replays the captured graph
        got = gpu.predict(frames)
        torch.testing.assert_close(got.probs, ref.probs, atol=atol, rtol=0)
        torch.testing.assert_close(got.mask, ref.mask, atol=atol, rtol=0)


@pytest.mark.gpu
def test_torch_cuda_compiled(tiny_checkpoints, cuda_device):
    frames = _frames(b=2, seed=6)
    ref = load_predictor(tiny_checkpoints["lanet_tiny"], device="cpu").predict(frames)
    got = load_predictor(tiny_checkpoints["lanet_tiny"], device=cuda_device, precision="fp32",
                         compile=True, cuda_graphs=False).predict(frames)
    torch.testing.assert_close(got.probs, ref.probs, atol=1e-3, rtol=0)


def test_auto_uses_cuda_graphs_only_on_cuda(tiny_checkpoints):
    assert load_predictor(tiny_checkpoints["lanet_tiny"], device="cpu").cuda_graphs is False


@pytest.mark.gpu
def test_auto_on_cuda_replays_graphs_and_matches_cpu(tiny_checkpoints, cuda_device):
    frames = _frames(b=3, seed=7)
    ref = load_predictor(tiny_checkpoints["lanet_tiny"], device="cpu").predict(frames)
    gpu = load_predictor(tiny_checkpoints["lanet_tiny"], device=cuda_device)
    assert gpu.cuda_graphs and gpu.precision == "fp16"
    for batch in (frames, frames[:2], frames):  # a smaller last batch gets its own graph; the first is reused
        got = gpu.predict(batch)
        torch.testing.assert_close(got.probs, ref.probs[: len(batch)], atol=2e-2, rtol=0)
    assert len(gpu._run.graphs) == 2


def test_input_geometry_is_the_frame_store_letterbox(tiny_onnx):
    """A raw frame predicts exactly like the same frame letterboxed by extraction (what training saw)."""
    import numpy as np

    from usvid.data.store import Letterbox

    predictor = load_predictor(tiny_onnx["lanet_tiny"], device="cpu")
    frames = _frames(b=2, h=75, w=121, seed=8)
    stored = torch.from_numpy(Letterbox(121, 75, SIZE).frames(frames[:, 0].numpy()))[:, None]
    assert (stored[:, :, :10] == 0).all()  # black letterbox padding above the picture
    torch.testing.assert_close(predictor.predict(frames).probs, predictor.predict(stored).probs)
    # blanking: pixels outside an ROI's mask do not reach the network
    mask = np.ones((40, 60), np.uint8)
    mask[:, :20] = 0
    roi = ScanRegion(10, 10, 60, 40, mask)
    noisy = frames.clone()
    noisy[..., 10:50, 10:30] = 255  # only inside the blanked part of the ROI
    torch.testing.assert_close(predictor.predict(frames, roi).probs, predictor.predict(noisy, roi).probs)
    assert not torch.allclose(predictor.predict(frames, ScanRegion(10, 10, 60, 40)).probs,
                              predictor.predict(noisy, ScanRegion(10, 10, 60, 40)).probs)


def test_cpu_bf16_needs_bf16_units(tiny_checkpoints, monkeypatch):
    """bf16 on a CPU without native bf16 (emulated, slower than fp32) is refused in words that say why."""
    from usvid.cpu import CpuInfo
    from usvid.inference import torch_backend

    monkeypatch.setattr(torch_backend, "cpu_info",
                        lambda: CpuInfo(model="Old CPU", flags=frozenset({"avx2", "avx512f"}), logical_cpus=2))
    with pytest.raises(ConfigError, match="no native bf16 units"):
        load_predictor(tiny_checkpoints["lanet_tiny"], device="cpu", precision="bf16")


@pytest.mark.parametrize("name", ["lanet_tiny", "resnet_tiny_cls"])
def test_cpu_bf16_agrees_with_fp32(name, tiny_checkpoints):
    """On a CPU with bf16 units (oneDNN AVX-512 BF16 / AMX) bf16 runs, channels-last, and matches fp32."""
    from usvid.cpu import cpu_info

    if not cpu_info().bf16:
        pytest.skip(f"{cpu_info().model} has no native bf16 units")
    frames = _frames()
    ref = load_predictor(tiny_checkpoints[name], device="cpu", precision="fp32").predict(frames)
    got = load_predictor(tiny_checkpoints[name], device="cpu", precision="bf16").predict(frames)
    # bf16 keeps 8 bits of mantissa: probabilities within a few hundredths, same class on these frames.
    assert torch.allclose(got.probs, ref.probs, atol=3e-2)
    top2 = ref.probs.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 0.06  # frames bf16 rounding cannot flip
    assert torch.equal(got.probs.argmax(1)[clear], ref.probs.argmax(1)[clear])
    if ref.mask is not None:
        assert torch.allclose(got.mask, ref.mask, atol=3e-2)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_one_numpy_frame_predicts_as_its_tensor_batch(backend, tiny_checkpoints, tiny_onnx):
    import numpy as np

    from usvid.video.reader import rgb_to_grey

    model = tiny_checkpoints["lanet_tiny"] if backend == "torch" else tiny_onnx["lanet_tiny"]
    predictor = load_predictor(model, backend, device="cpu")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (75, 121, 3), dtype=np.uint8)
    rgb[20:50, 30:80] = (200, 60, 20)  # a coloured patch: R, G and B weigh differently in the luma
    grey = rng.integers(0, 256, (75, 121), dtype=np.uint8)
    roi = ScanRegion(10, 5, 90, 60)
    for frame, as_grey in ((grey, grey), (rgb, rgb_to_grey(rgb))):
        got = predictor.predict(frame, roi)
        ref = predictor.predict(torch.from_numpy(as_grey)[None, None], roi)
        assert torch.equal(got.probs, ref.probs) and torch.equal(got.mask, ref.mask)
        assert got.boxes == ref.boxes and len(got) == 1
    # the RGB frame is made grey as the video readers do, not by some other weighting
    mean_grey = torch.from_numpy(rgb.mean(axis=2).round().astype(np.uint8))[None, None]
    assert not torch.equal(predictor.predict(rgb).probs, predictor.predict(mean_grey).probs)


def test_bad_numpy_frames_are_one_clear_error(tiny_onnx):
    import numpy as np

    predictor = load_predictor(tiny_onnx["lanet_tiny"], device="cpu")
    for bad in (np.zeros((40, 40), np.float32), np.zeros((40, 40, 4), np.uint8), np.zeros((2, 1, 40, 40), np.uint8),
                np.zeros((0, 40), np.uint8)):
        with pytest.raises(InputError, match=r"\(H, W\) or \(H, W, 3\) uint8"):
            predictor.predict(bad)
