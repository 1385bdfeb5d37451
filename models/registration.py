"""The table of named variants and ``@register_model``, which fills it; a leaf, as timm keeps its registry.

Variant modules (:mod:`usvid.models.variants`) import :func:`register_model` from here; the look-ups and the
factory (:mod:`usvid.models.registry`) import the variants, so imports flow one way.
"""

from __future__ import annotations

from collections.abc import Callable

from usvid.errors import ConfigError
from usvid.models.config import ModelConfig

ConfigFn = Callable[[], ModelConfig]
_REGISTRY: dict[str, ConfigFn] = {}


def register_model(fn: ConfigFn) -> ConfigFn:
    """Register ``fn`` (returning a :class:`ModelConfig`) under its function name; names are unique.

    Raises:
        ConfigError: the name is taken; the first registration stays.
    """
    name = fn.__name__
    if name in _REGISTRY:
        other = _REGISTRY[name]
        raise ConfigError(
            f"model '{name}' is already registered (by {other.__module__}.{other.__qualname__}); variant "
            f"names must be unique, so a second '{name}' would silently replace the first: give the new "
            "variant function another name"
        )
    _REGISTRY[name] = fn
    return fn
