"""Parameter and FLOP counts per variant (no weights needed: models are built on PyTorch's meta device).

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs per multiply-accumulate in
convolutions, deconvolutions and matrix products; element-wise ops, BN, pooling and resizes are not counted
(they are a small fraction here). Papers that quote ResNet-18 at "1.8 GFLOPs" (224x224) count MACs; this
module reports 3.6 for the same network, so halve it for that convention. Grouped / depthwise convolutions
(EfficientNet-Lite) count ``C_in / groups`` inputs per output, and timm's "same"-padded convs are plain convs
after a pad: EfficientNet-Lite0 at 224 counts 0.40 G multiply-adds, its published figure.

Counting builds each network (on the meta device) and traces a forward: seconds per variant. The counts of
the registered variants at the default sizes are therefore kept in :mod:`usvid.models.flops_table`, written by
this module (``python -m usvid.models.flops``) and keyed by a hash of the variant's config and the usvid
version, so ``usvid models`` reads them without importing torch. A config or size not in the table (an ablation,
``--sizes 384``, a new version) is counted live; tests recount some variants and compare with the table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from usvid import __version__
from usvid.models.config import ModelConfig
from usvid.models.registry import build_model, list_models, model_config

if TYPE_CHECKING:
    from torch import nn

#: Sizes the table holds (``usvid models``' default --sizes).
TABLE_SIZES = (256, 512)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not; BN running statistics are buffers and not counted)."""
    return sum(p.numel() for p in module.parameters())


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def count_flops(config: ModelConfig, size: int | tuple[int, int], batch: int = 1) -> int:
    """FLOPs of one forward pass of ``config``'s network on a ``(batch, in_channels, H, W)`` input.

    Args:
        size: ``H`` (square) or ``(H, W)``; multiples of 32.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    h, w = _size_hw(size)
    with torch.device("meta"):
        model = build_model(config).eval()
        x = torch.empty(batch, config.in_channels, h, w)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class ModelSummary:
    """Size and cost of one variant. ``flops`` maps a square input size to FLOPs at batch 1."""

    name: str
    arch: str
    depth: int
    widths: tuple[int, ...]
    params: int
    flops: dict[int, int]
    fex: str = ""  #: e.g. 'ResNet-18', 'EfficientNet-Lite0' (ModelConfig.fex_name)

    def gflops(self, size: int) -> float:
        return self.flops[size] / 1e9

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "arch": self.arch,
            "depth": self.depth,
            "widths": list(self.widths),
            "fex": self.fex,
            "params": self.params,
            "flops": {str(k): v for k, v in self.flops.items()},
        }


def config_key(config: ModelConfig) -> str:
    """The table key of ``config``: the usvid version and a hash of the config (so any change of either, or a
    new release, whose code may build the network differently, misses the table and is counted live)."""
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    return f"{__version__}:{digest}"


def _from_table(name: str, config: ModelConfig, sizes: Sequence[int]) -> ModelSummary | None:
    from usvid.models.flops_table import TABLE

    entry = TABLE.get(config_key(config))
    if entry is None or any(str(s) not in entry["flops"] for s in sizes):
        return None
    return ModelSummary(name, config.arch, config.depth, config.widths, entry["params"],
                        {s: entry["flops"][str(s)] for s in sizes}, config.fex_name)


def summarize_config(name: str, config: ModelConfig, sizes: Sequence[int] = TABLE_SIZES, *,
                     cached: bool = True) -> ModelSummary:
    """:class:`ModelSummary` of an arbitrary config (e.g. an ablation), labelled ``name``.

    ``cached``: take the counts from :mod:`usvid.models.flops_table` when it holds this config and every size;
    ``False`` always counts.
    """
    found = _from_table(name, config, sizes) if cached else None
    if found is not None:
        return found
    import torch

    with torch.device("meta"):
        params = count_parameters(build_model(config))
    flops = {s: count_flops(config, s) for s in sizes}
    return ModelSummary(name, config.arch, config.depth, config.widths, params, flops, config.fex_name)


def summarize_models(
    names: Iterable[str] | None = None,
    sizes: Sequence[int] = TABLE_SIZES,
    progress: Callable[[str], None] | None = None,
    *,
    cached: bool = True,
) -> list[ModelSummary]:
    """Summaries of registered variants (all when ``names`` is None); calls ``progress(name)`` per variant."""
    out = []
    for name in list_models() if names is None else names:
        out.append(summarize_config(name, model_config(name), sizes, cached=cached))
        if progress is not None:
            progress(name)
    return out


def table_source(sizes: Sequence[int] = TABLE_SIZES) -> str:
    """The text of :mod:`usvid.models.flops_table`: every registered variant counted now, at ``sizes``."""
    import torch

    lines = ['"""Parameters and FLOPs (batch 1, square inputs) of the registered variants, counted by',
             "usvid.models.flops; written by `python -m usvid.models.flops`, do not edit by hand.",
             f"usvid {__version__}, torch {torch.__version__}.", '"""', "", "TABLE = {"]
    for s in summarize_models(sizes=sizes, cached=False):
        flops = ", ".join(f'"{k}": {v}' for k, v in s.flops.items())
        lines.append(f'    "{config_key(model_config(s.name))}": {{')
        lines.append(f'        "name": "{s.name}", "params": {s.params}, "flops": {{{flops}}}}},')
    return "\n".join([*lines, "}", ""])


def measure_latency(
    names: Sequence[str], size: int = 256, *, warmup: int = 3, repeats: int = 10
) -> dict[str, float]:
    """Median CPU milliseconds of one batch-1 ``size x size`` forward per registered model, on this machine.

    Models are timed round-robin (one forward each per round), so a change in the machine's load hits all of
    them alike and their ratios stay comparable; absolute values depend on the CPU and its load.
    """
    import statistics
    import time

    import torch

    torch.manual_seed(0)
    cases = [(name, build_model(model_config(name)).eval()) for name in names]
    x = torch.rand(1, 1, size, size)
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    with torch.inference_mode():
        for _, model in cases:
            for _ in range(warmup):
                model(x)
        for _ in range(repeats):
            for name, model in cases:
                start = time.perf_counter()
                model(x)
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


if __name__ == "__main__":
    from pathlib import Path

    target = Path(__file__).with_name("flops_table.py")
    target.write_text(table_source())
    print(f"wrote {target}")
