"""GPU transfer and NVDEC decoding; CUDA-only tests skip cleanly without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from usvid.errors import MissingDependencyError
from usvid.video.gpu import nvdec_available, open_nvdec, prefetch_to_device, to_device
from usvid.video.reader import open_video


def test_to_device_cpu_is_identity(videos):
    with open_video(videos["plain"]) as reader:
        batch = next(iter(reader.batches(4)))
    assert to_device(batch, "cpu") is batch
    moved = list(prefetch_to_device([batch, batch], "cpu"))
    assert len(moved) == 2 and moved[0].data.shape == (4, 1, 62, 94)


def test_open_nvdec_without_cuda_raises(videos):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert not nvdec_available()
    with pytest.raises(MissingDependencyError, match="CUDA"):
        open_nvdec(videos["plain"])


@pytest.mark.gpu
def test_pinned_non_blocking_copy(videos, cuda_device):
    with open_video(videos["bframes"]) as reader:
        cpu = list(reader.batches(8))
        gpu = list(prefetch_to_device(cpu, cuda_device))
    torch.cuda.synchronize()
    assert all(g.data.is_cuda for g in gpu)
    for c, g in zip(cpu, gpu):
        assert torch.equal(c.data, g.data.cpu()) and torch.equal(c.indices, g.indices)


@pytest.mark.gpu
def test_nvdec_matches_cpu_decode(videos, cuda_device):
    if not nvdec_available():
        pytest.skip("torchcodec with CUDA not available")
    with (
        open_nvdec(videos["bframes"], cuda_device) as gpu,
        open_video(videos["bframes"], "torchcodec") as cpu,
    ):
        a = gpu.get_frames([0, 17, 39], grey=False).data
        b = cpu.get_frames([0, 17, 39], grey=False).data
    assert a.is_cuda and a.shape == b.shape == (3, 3, 62, 94)
    # NVDEC's colour conversion differs slightly from swscale's.
    assert (a.cpu().int() - b.int()).abs().float().mean() < 3
    assert np.isfinite(a.float().mean().item())
