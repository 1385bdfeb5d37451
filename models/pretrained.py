"""ImageNet initialisation of the FEX from a local torchvision ResNet state dict; never downloads.

``pretrained`` is either a path to a torchvision ResNet state dict (e.g. ``resnet18-f37072fd.pth``) or the
word ``'imagenet'``, which looks in torchvision's local cache (``$TORCH_HOME/hub/checkpoints``). The RGB stem
filters are folded to the model's input channels: summed for 1 channel (a grey image replicated to RGB gives
the same response as the original filters), tiled and rescaled otherwise.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from torch import Tensor

from usvid.errors import ConfigError, InputError, MissingDependencyError
from usvid.models.backbone import ResNetBackbone
from usvid.models.config import IMAGENET_WIDTHS

logger = logging.getLogger(__name__)

IMAGENET = "imagenet"


def _weight_enum(depth: int):
    from torchvision.models import ResNet18_Weights, ResNet34_Weights, ResNet50_Weights, ResNet101_Weights

    return {18: ResNet18_Weights, 34: ResNet34_Weights, 50: ResNet50_Weights, 101: ResNet101_Weights}[depth]


def cached_imagenet_file(depth: int) -> Path:
    """The torchvision cache file of ResNet-``depth`` ImageNet weights (IMAGENET1K_V1 first, as the paper).

    Raises :class:`MissingDependencyError` naming the expected file and where to get it when none is cached.
    """
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    weights = list(_weight_enum(depth))  # IMAGENET1K_V1 first
    for w in weights:
        candidate = cache / Path(w.url).name
        if candidate.is_file():
            return candidate
    raise MissingDependencyError(
        f"ImageNet weights for ResNet-{depth} are not in torchvision's cache "
        f"({cache / Path(weights[0].url).name}) "
        f"and usvid never downloads. Fetch {weights[0].url} on a machine with internet, then pass "
        "pretrained=PATH or copy the file into that folder"
    )


def fold_stem(weight: Tensor, in_channels: int) -> Tensor:
    """Adapt ``(C_out, 3, k, k)`` RGB stem filters to ``in_channels`` inputs.

    One channel: sum over RGB. Otherwise tile RGB and scale by ``3 / in_channels`` to keep the response level.
    """
    c = weight.shape[1]
    if in_channels == c:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_channels / c)
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (c / in_channels)


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling failure means "not a weights file"
        raise InputError(
            f"{path}: cannot read as a PyTorch state dict ({type(err).__name__}: {err})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputError(f"{path}: expected a torchvision ResNet state dict (parameter name -> tensor)")
    return state


def load_pretrained_backbone(backbone: ResNetBackbone, pretrained: str | Path) -> Path:
    """Load torchvision ResNet weights into ``backbone`` in place; returns the file used.

    Args:
        backbone: a FEX with torchvision widths (64, 128, 256, 512).
        pretrained: a state-dict path, or ``'imagenet'`` for torchvision's local cache.
    """
    if str(pretrained) == IMAGENET:
        path = cached_imagenet_file(backbone.depth)
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise InputError(
                f"{path}: pretrained weights file does not exist; pass a torchvision "
                f"ResNet-{backbone.depth} state "
                f"dict (.pth) or pretrained='{IMAGENET}' to use torchvision's local cache"
            )
    state = {k: v for k, v in _read_state_dict(path).items() if not k.startswith("fc.")}
    if "conv1.weight" in state:
        state["conv1.weight"] = fold_stem(state["conv1.weight"], backbone.conv1.in_channels)
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        sample = (missing or unexpected or wrong)[:3]
        raise InputError(
            f"{path}: not a torchvision ResNet-{backbone.depth} state dict ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(wrong)} wrong-shape keys, e.g. {', '.join(sample)}); "
            "check that the file matches the model depth"
        )
    backbone.load_state_dict(state)
    logger.info("FEX initialised from %s", path)
    return path


def check_pretrainable(widths: tuple[int, ...]) -> None:
    """Raise :class:`ConfigError` when no torchvision weights can fit a FEX of these widths."""
    if tuple(widths) != IMAGENET_WIDTHS:
        raise ConfigError(
            f"pretrained weights need the torchvision stage widths {IMAGENET_WIDTHS}, "
            f"this model has {tuple(widths)} "
            "(tiny test variants have no pretrained weights); drop the pretrained option"
        )
