"""Repeated runs: train each variant with R seeds, evaluate on a held-out split, report the mean and the 95%
Student t-interval over seeds (:func:`usvid.training.metrics.mean_ci95`; tables show its ends clipped to [0, 1],
:func:`usvid.training.metrics.interval_ends`).

This is how the paper's comparisons are reproduced (vanilla ResNet vs RMTL vs LA-Net, the CAM/SAM/MAM
ablations, the 25/50/75% box fractions); the paper repeats each setting three times. Runs that already
finished (their ``eval/report.json`` exists) are reused, so an interrupted study resumes.

From the shell (R seeds of one study, table printed, ``OUT/study.json`` + ``OUT/study.md`` written)::

    usvid repeat STORE --study models --seeds 3 --out runs/models \
        [--size 256] [--stage1-epochs 10] [--epochs 100] [--depth 18|50] [--device auto]
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usvid.errors import ConfigError, unknown_name
from usvid.io import write_json_atomic, write_text_atomic
from usvid.training.config import TrainConfig
from usvid.training.eval import evaluate_checkpoint
from usvid.training.frames import open_store, store_name
from usvid.training.loop import fit
from usvid.training.metrics import PROPORTION_RANGE, interval_ends, mean_ci95

log = logging.getLogger(__name__)

#: (level, metric) pairs summarised across seeds; sensitivity, specificity, ppv and npv are the positive
#: class's (see :func:`usvid.training.metrics.classification_metrics`).
METRICS: tuple[tuple[str, str], ...] = (
    ("frame_level", "accuracy"), ("frame_level", "sensitivity"), ("frame_level", "specificity"),
    ("frame_level", "ppv"), ("frame_level", "npv"), ("frame_level", "f1_macro"), ("frame_level", "auc"),
    ("frame_level", "jsi_mask"), ("frame_level", "jsi_box"), ("video_level", "accuracy"),
    ("video_level", "sensitivity"), ("video_level", "specificity"), ("video_level", "auc"),
)
#: What the summary's ``[mean, half-width]`` pairs are.
INTERVAL = "mean and half-width of the two-sided 95% Student t-interval over seeds"
#: What the ``ci95_t`` ends and the table's brackets are: every summarised metric is a proportion.
CLIPPED_INTERVAL = "ends of the two-sided 95% Student t-interval over seeds, clipped to [0, 1]"

#: The paper's comparisons as variant name -> TrainConfig overrides (R18 FEX; swap the model names for R50).
STUDIES: dict[str, dict[str, dict[str, Any]]] = {
    "models": {"resnet18": {"model": "resnet18_cls"}, "rmtl_r18": {"model": "rmtl_r18"},
               "lanet_r18": {"model": "lanet_r18"}},
    "ablations": {"lanet_r18": {"model": "lanet_r18"}, "no_cam": {"model": "lanet_r18", "use_cam": False},
                  "no_sam": {"model": "lanet_r18", "use_sam": False},
                  "no_mam": {"model": "lanet_r18", "use_mam": False}},
    "box_fractions": {f"boxes_{int(f * 100)}": {"model": "lanet_r18", "box_fraction": f}
                      for f in (0.25, 0.5, 0.75, 1.0)},
    "pseudo_sources": {s: {"model": "lanet_r18", "pseudo_source": s} for s in ("self", "stage1", "ema")},
}


@dataclass
class StudyResult:
    """Per variant: each seed's metrics and the mean with the half-width of the 95% t-interval over seeds."""

    variants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summary: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    def interval(self, variant: str, key: str) -> tuple[float, float, float]:
        """Mean and the clipped ends of the 95% t-interval of ``key`` over ``variant``'s seeds (NaN: undefined)."""
        mean, half = self.summary[variant][key]
        return (mean, *interval_ends(mean, half, PROPORTION_RANGE))

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.variants,
            "interval": INTERVAL,
            # [mean, half-width]; null where undefined (JSON has no NaN).
            "mean_ci95": {v: {k: [_finite(x) for x in mc] for k, mc in s.items()} for v, s in self.summary.items()},
            "ci95_t_interval": CLIPPED_INTERVAL,
            # [low, high]; null where undefined (one seed, or no value).
            "ci95_t": {v: {k: [_finite(x) for x in self.interval(v, k)[1:]] for k in s}
                       for v, s in self.summary.items()},
        }


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


def _flat(report: dict[str, Any]) -> dict[str, float | None]:
    return {f"{level.split('_')[0]}_{name}": report[level].get(name) for level, name in METRICS}


def repeat_runs(
    store: Any,
    base: TrainConfig,
    variants: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    out: str | Path,
    *,
    split: str = "test",
    on_run: Callable[[str, int, dict], None] | None = None,
    positive: str = "malignant",
) -> StudyResult:
    """Train ``base`` with each variant's overrides and each seed into ``out/<variant>/seed<k>``, evaluate its
    ``best.pt`` (chosen on validation) on ``split``, and summarise. Writes ``out/study.json`` and ``study.md``.

    A finished run's report is reused; one written before the positive-class metrics existed (whose
    ``sensitivity`` was a macro average) is re-evaluated from the run's checkpoint, not retrained.
    """
    out = Path(out)
    store = open_store(store)
    result = StudyResult()
    for name, overrides in variants.items():
        for seed in seeds:
            run = out / name / f"seed{seed}"
            report_path = run / "eval" / "report.json"
            report = json.loads(report_path.read_text()) if report_path.is_file() else None
            if report is not None and report["frame_level"].get("positive_class") is None:
                ckpt = run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt"
                report = evaluate_checkpoint(ckpt, store, split, run / "eval", device=base.device, num_examples=4,
                                             positive=positive).report
            if report is None:
                config = base.merged(**overrides, seed=seed)
                fitted = fit(config, store, run, resume=(run / "last.pt").is_file())
                report = evaluate_checkpoint(fitted.best or fitted.last, store, split, run / "eval",
                                             device=config.device, num_examples=4, positive=positive).report
            row = {"seed": seed, **_flat(report)}
            result.variants.setdefault(name, []).append(row)
            log.info("%s seed %d: %s", name, seed, row)
            if on_run is not None:
                on_run(name, seed, row)
        rows = result.variants[name]
        result.summary[name] = {k: mean_ci95([r[k] for r in rows]) for k in rows[0] if k != "seed"}
    payload = {"store": store_name(store), "split": split, "seeds": list(seeds), "base": base.to_dict(),
               "variants": {k: dict(v) for k, v in variants.items()}, **result.to_dict()}
    write_json_atomic(out / "study.json", payload)
    write_text_atomic(out / "study.md", markdown_table(result))
    return result


def markdown_table(result: StudyResult, keys: Sequence[str] = ("frame_accuracy", "frame_sensitivity",
                                                                  "frame_specificity", "frame_f1_macro", "frame_auc",
                                                                  "frame_jsi_mask", "frame_jsi_box",
                                                                  "video_accuracy", "video_auc")) -> str:
    """``mean [low, high]`` per variant and metric, the 95% t-interval over seeds clipped to [0, 1] (n/a where
    undefined, e.g. JSI of a vanilla classifier; the mean alone from one seed)."""
    lines = [f"Cells: mean over seeds [{CLIPPED_INTERVAL}] (n = seeds).", "",
             "| variant | n | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for name, summary in result.summary.items():
        cells = []
        for k in keys:
            mean, low, high = result.interval(name, k) if k in summary else (float("nan"),) * 3
            if math.isnan(mean):
                cells.append("n/a")
            else:
                cells.append(f"{mean:.3f}" if math.isnan(low) else f"{mean:.3f} [{low:.3f}, {high:.3f}]")
        lines.append(f"| {name} | {len(result.variants[name])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def study_variants(study: str, depth: int = 18) -> dict[str, dict[str, Any]]:
    """The variants of ``study`` (see :data:`STUDIES`) with an R``depth`` FEX (18 or 50)."""
    if study not in STUDIES:
        raise unknown_name("study", study, tuple(STUDIES))
    if depth not in (18, 50):
        raise ConfigError(f"--depth must be 18 or 50 (the paper's ResNet FEXs), got {depth}")
    return {name: {k: (v.replace("18", str(depth)) if k == "model" else v) for k, v in ov.items()}
            for name, ov in STUDIES[study].items()}


def run_study(
    store: str | Path,
    study: str,
    seeds: int,
    out: str | Path,
    *,
    size: int = 256,
    stage1_epochs: int = 10,
    epochs: int = 100,
    batch_size: int = 8,
    depth: int = 18,
    device: str = "auto",
    positive: str = "malignant",
    on_run: Callable[[str, int, dict], None] | None = None,
) -> StudyResult:
    """``usvid repeat``: one of the paper's :data:`STUDIES` with seeds ``0 .. seeds - 1`` on the test split."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    variants = study_variants(study, depth)
    base = TrainConfig(size=size, stage1_epochs=stage1_epochs, epochs=epochs, batch_size=batch_size, device=device)
    return repeat_runs(store, base, variants, list(range(seeds)), out, positive=positive, on_run=on_run)


def main() -> None:
    raise SystemExit("the study CLI moved: run `usvid repeat STORE --study NAME --seeds N --out DIR` "
                     "(`usvid repeat --help` lists the options)")


if __name__ == "__main__":
    main()
