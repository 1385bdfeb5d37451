"""Evaluation report files: ``report.json``, ``report.md`` and PNG plots drawn with matplotlib.

Plots are built as :class:`matplotlib.figure.Figure` objects on the Agg canvas (no pyplot, so no global figure
state and no display needed) and written as PNG by :func:`write_report`:

- ROC: for two classes ONE curve, the positive class's (the other class's curve is its mirror image and would only
  repeat it); for more classes one one-vs-rest curve per class. The operating point (the argmax rule the reported
  sensitivity and specificity come from) is marked; the legend carries the AUC with its 95% DeLong interval.
- confusion matrices: rows = true class, columns = predicted class; each cell shows the count and the share of
  its row (the true class), the colour encodes that share (colour bar).
- example overlays: ground truth in green, prediction in red (mask outline and box; legend); full captions.
- Grad-CAM: the map over the frame with a colour bar, the explained class named, no heat on letterbox padding.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from usvid.boxes import MASK_THRESHOLD, Box
from usvid.io import atomic_path, write_text_atomic
from usvid.training import metrics

TRUTH_COLOUR, PRED_COLOUR = "#1fa01f", "#e02020"
FPR_LABEL = "false positive rate (1 - specificity)"
TPR_LABEL = "true positive rate (sensitivity)"
#: Characters per caption line under an example tile (wrapped at spaces, never cut).
CAPTION_WIDTH = 30


class Example(NamedTuple):
    """One frame shown in the overlays.

    image: ``(M, M)`` uint8 network input; truth: ``(M, M)`` bool or None; true_box / pred_box: boxes in the pixels
    of that ``M x M`` input, or None; pred: ``(M, M)`` bool or None; cam: ``(M, M)`` float in [0, 1] or None;
    content: ``(M, M)`` bool, True where the frame shows image (False on letterbox padding), or None; cam_class:
    the class Grad-CAM explains.
    """

    image: np.ndarray
    caption: str
    truth: np.ndarray | None
    true_box: Box | None
    pred: np.ndarray | None
    pred_box: Box | None
    cam: np.ndarray | None
    content: np.ndarray | None = None
    cam_class: str | None = None


@dataclass(frozen=True)
class RocCurve:
    """One ROC curve: ``fpr``/``tpr`` ``(T,)`` float in [0, 1] from (0, 0) to (1, 1)."""

    name: str
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float | None
    auc_ci95: Sequence[float] | None = None


@dataclass(frozen=True)
class OperatingPoint:
    """Where the reported predictions sit on the positive class's ROC curve."""

    fpr: float
    tpr: float
    rule: str


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def operating_rule(class_names: Sequence[str], positive: str) -> str:
    """The decision rule the reported sensitivity/specificity come from, in words."""
    if len(class_names) == 2:
        return f"argmax, i.e. P({positive}) > 0.5"
    return f"argmax over {len(class_names)} classes, {positive} vs rest"


def roc_curves(labels: np.ndarray, probs: np.ndarray, level: dict[str, Any]) -> tuple[list[RocCurve],
                                                                                        OperatingPoint | None]:
    """The curves to draw for one level and the operating point of its positive class.

    Args:
        labels: ``(N,)`` int class indices; probs: ``(N, K)`` float in [0, 1].
        level: that level's :func:`usvid.training.metrics.classification_metrics` dict.
    Returns:
        for K = 2 the positive class's curve only; for K > 2 one one-vs-rest curve per class (each needs both
        members and non-members present, else it is left out); the operating point, or None when undefined.
    """
    names = list(level["class_names"])
    positive = level["positive_class"] or names[-1]
    pos = names.index(positive)
    wanted = [pos] if len(names) == 2 else range(len(names))
    curves = []
    for c in wanted:
        member = labels == c
        if not (member.any() and (~member).any()):
            continue
        fpr, tpr = metrics.roc_curve(member, probs[:, c])
        if c == pos:
            auc, ci = level["auc_positive"], level["auc_positive_ci95"]
        else:
            auc, ci = level["per_class"][names[c]]["auc"], None
        label = positive if len(names) == 2 else f"{names[c]} vs rest"
        curves.append(RocCurve(label, fpr, tpr, auc, ci))
    point = None
    if level["sensitivity"] is not None and level["specificity"] is not None:
        point = OperatingPoint(1.0 - level["specificity"], level["sensitivity"], operating_rule(names, positive))
    return curves, point


def _auc_text(curve: RocCurve) -> str:
    if curve.auc is None:
        return f"{curve.name}: AUC n/a"
    ci = f" [{curve.auc_ci95[0]:.3f}, {curve.auc_ci95[1]:.3f}] (95% DeLong)" if curve.auc_ci95 else ""
    return f"{curve.name}: AUC {curve.auc:.3f}{ci}"


def roc_plot(curves: Sequence[RocCurve], point: OperatingPoint | None, title: str) -> Figure:
    """ROC axes: one line per curve (gid ``roc:NAME``), the chance diagonal and the operating point."""
    fig = _figure(5.2, 5.4)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1, label="chance", gid="chance")
    for curve in curves:
        ax.plot(curve.fpr, curve.tpr, linewidth=2, drawstyle="default", label=_auc_text(curve),
                gid=f"roc:{curve.name}")
    if point is not None:
        ax.plot([point.fpr], [point.tpr], "o", color="black", markersize=7, gid="operating_point",
                label=f"operating point ({point.rule}): sensitivity {point.tpr:.3f}, specificity {1 - point.fpr:.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel=FPR_LABEL, ylabel=TPR_LABEL, title=title, aspect="equal")
    ax.grid(True, color="0.9")
    ax.legend(loc="lower right", fontsize=7)
    return fig


def confusion_cells(matrix: Sequence[Sequence[int]]) -> tuple[np.ndarray, list[list[str]]]:
    """Row percentages ``(K, K)`` float (NaN for a class absent from the truth) and each cell's text."""
    cm = np.asarray(matrix, dtype=np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(rows > 0, 100.0 * cm / np.maximum(rows, 1), np.nan)
    texts = [[f"{cm[i, j]}\n{pct[i, j]:.1f}%" if rows[i, 0] else f"{cm[i, j]}\n-" for j in range(len(cm))]
             for i in range(len(cm))]
    return pct, texts


def confusion_plot(matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str) -> Figure:
    """Confusion matrix: rows = true class, columns = predicted class; count and row % per cell; colour bar."""
    pct, texts = confusion_cells(matrix)
    k = len(class_names)
    fig = _figure(2.2 + 1.2 * k, 1.6 + 1.1 * k)
    ax = fig.add_subplot()
    image = ax.imshow(np.nan_to_num(pct), cmap="Blues", vmin=0, vmax=100)
    for i in range(k):
        for j in range(k):
            dark = not np.isnan(pct[i, j]) and pct[i, j] > 60
            ax.text(j, i, texts[i][j], ha="center", va="center", fontsize=9, color="white" if dark else "black",
                    gid=f"cell:{i},{j}")
    ax.set_xticks(range(k), labels=list(class_names), rotation=30 if k > 3 else 0)
    ax.set_yticks(range(k), labels=list(class_names))
    ax.set(xlabel="predicted class", ylabel="true class")
    fig.suptitle(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="share of the true class (row %)", shrink=0.8)
    return fig


def _boxes(ax, example: Example) -> None:
    for box, colour in ((example.true_box, TRUTH_COLOUR), (example.pred_box, PRED_COLOUR)):
        if box is not None:
            # Pixel centres sit at integers, so a box covering pixels x..x+w-1 spans x-0.5 .. x+w-0.5.
            ax.add_patch(Rectangle((box.x - 0.5, box.y - 0.5), box.w, box.h, fill=False, edgecolor=colour,
                                   linewidth=1))


def caption_text(caption: str) -> str:
    """The caption wrapped at spaces to :data:`CAPTION_WIDTH` characters; nothing is cut."""
    return textwrap.fill(caption, CAPTION_WIDTH, break_long_words=False, break_on_hyphens=False)


def example_figure(examples: Sequence[Example], *, heatmap: bool, columns: int = 4) -> Figure:
    """Tiles of examples: outlines and boxes (green = truth, red = prediction), or Grad-CAM heatmaps."""
    if not examples:
        fig = _figure(4, 1)
        fig.text(0.5, 0.5, "no examples (--examples 0)", ha="center", va="center")
        return fig
    columns = min(columns, len(examples))
    rows = -(-len(examples) // columns)
    fig = _figure(2.3 * columns + (1.0 if heatmap else 0.0), 2.9 * rows + 0.6)
    axes = fig.subplots(rows, columns, squeeze=False)
    heat = None
    for ax, example in zip(axes.flat, examples):
        ax.imshow(example.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        if heatmap and example.cam is not None:
            # Padding is masked out: it shows the black frame, not the colour of 0.
            hidden = ~example.content if example.content is not None else np.zeros(example.cam.shape, bool)
            heat = ax.imshow(np.ma.masked_array(example.cam, hidden), cmap="jet", vmin=0, vmax=1, alpha=0.45,
                             interpolation="bilinear")
        for mask, colour in ((example.truth, TRUTH_COLOUR), (example.pred, PRED_COLOUR)):
            if mask is not None and mask.any() and not mask.all() and not heatmap:
                ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1)
        _boxes(ax, example)
        caption = example.caption
        if heatmap and example.cam_class is not None:
            caption += f"; Grad-CAM of class {example.cam_class}"
        ax.set_title(caption_text(caption), fontsize=7, gid="caption")
        ax.set_axis_off()
    for ax in axes.flat[len(examples):]:
        ax.set_axis_off()
    handles = [Line2D([], [], color=TRUTH_COLOUR, label="ground truth (mask outline, box)"),
               Line2D([], [], color=PRED_COLOUR, label="prediction (mask outline at P >= 0.5, largest region's box)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7)
    if heatmap:
        fig.suptitle("Grad-CAM on the last FEX block for each frame's predicted class (named under each frame); "
                     "none on the letterbox padding", fontsize=8)
        if heat is not None:
            fig.colorbar(heat, ax=axes, label="Grad-CAM, scaled to [0, 1] per frame", shrink=0.8)
    return fig


def write_png(path: Path, figure: Figure) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("n/a" if value is None else str(value))


def with_ci(m: dict[str, Any], key: str, ci_key: str | None = None) -> str:
    """``value [lo, hi]`` of ``m[key]`` and its interval ``m[ci_key]`` (default ``KEY_ci95``)."""
    ci = m.get(ci_key or f"{key}_ci95")
    return _fmt(m.get(key)) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


#: (column, key, interval key) of the headline table: the positive class's figures.
HEADLINE = (("sensitivity", "sensitivity", None), ("specificity", "specificity", None), ("PPV", "ppv", None),
            ("NPV", "npv", None), ("accuracy", "accuracy", None), ("AUC", "auc_positive", "auc_positive_ci95"))


def headline_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (frame, video) of the positive class's figures with 95% intervals, and macro F1."""
    positive = report["positive_class"]
    header = ["level", "n", *(f"{name} ({positive})" if key != "accuracy" else name for name, key, _ in HEADLINE),
              "F1 (macro)"]
    rows = []
    for level, unit in (("frame_level", "frames"), ("video_level", "videos")):
        m = report[level]
        rows.append([level.split("_")[0], f"{m['count']} {unit if m['count'] != 1 else unit[:-1]}", *(with_ci(m, key, ci) for _, key, ci in HEADLINE),
                     _fmt(m["f1_macro"])])
    return header, rows


def interval_note(report: dict[str, Any]) -> str:
    """One sentence naming the interval methods and their caveat."""
    note = report["frame_level"]["ci_method"]["note"]
    return f"95% intervals in brackets: Wilson score for proportions, DeLong for the AUC; {note}."


def markdown(report: dict[str, Any]) -> str:
    """The human-readable report: headline (positive class) table, macro table, per-class tables, plots."""
    positive = report["positive_class"]
    header, rows = headline_table(report)
    counts = []
    for level in ("frame_level", "video_level"):
        c = report[level]["positive_counts"]
        if c:
            counts.append(f"{level.split('_')[0]} {c['tp']} TP, {c['fn']} FN, {c['fp']} FP, {c['tn']} TN")
    lines = [
        f"# Evaluation: {report['model']['arch']} (depth {report['model']['depth']}) on split '{report['split']}'",
        "",
        f"- checkpoint: `{report['checkpoint']}`",
        (f"- store: `{report['store']}`; {report['frames']} frames of {report['videos']} videos; "
         f"classes: {', '.join(report['class_names'])}"),
        f"- input {report['preprocess']['size']} px; video-level class = argmax of the mean frame probabilities",
        f"- test-time augmentation: {report.get('tta', 'none')}",
        "",
        (f"Positive class **{positive}** (one-vs-rest when there are more than two classes); predictions by "
         f"{operating_rule(report['class_names'], positive)}. {interval_note(report)}"),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        f"Confusion ({positive}): " + "; ".join(counts) + "." if counts else "",
        "",
        "Macro averages over the classes (each class counted once, whatever its size; no intervals):",
        "",
        "| level | sensitivity (macro) | specificity (macro) | precision (macro) | F1 (macro) | AUC (macro) |",
        "|---|---|---|---|---|---|",
    ]
    for level in ("frame_level", "video_level"):
        m = report[level]
        lines.append(f"| {level.split('_')[0]} | " + " | ".join(_fmt(m[f"{k}_macro"]) for k in
                     ("sensitivity", "specificity", "precision", "f1", "auc")) + " |")
    lines += [
        "",
        _localisation_line(report),
    ]
    for level in ("frame_level", "video_level"):
        lines += ["", f"## Per class ({level.replace('_', ' ')})", "",
                  "| class | support | sensitivity | specificity | precision | F1 | AUC (one-vs-rest) |",
                  "|---|---|---|---|---|---|---|"]
        for name, m in report[level]["per_class"].items():
            lines.append(f"| {name} | {m['support']} | {_fmt(m['sensitivity'])} | {_fmt(m['specificity'])} | "
                         f"{_fmt(m['precision'])} | {_fmt(m['f1'])} | {_fmt(m['auc'])} |")
    lines += ["", "## Plots", ""] + [f"![{name}]({file})" for name, file in report["plots"].items()]
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: dict[str, Any], figures: dict[str, Figure]) -> dict[str, Path]:
    """Write the PNGs, ``report.json`` and ``report.md`` into ``out``; returns every written path."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, figure in figures.items():
        write_png(out / f"{name}.png", figure)
        paths[name] = out / f"{name}.png"
    report["plots"] = {name: f"{name}.png" for name in figures}
    write_text_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "report.md", markdown(report))
    paths["report.json"], paths["report.md"] = out / "report.json", out / "report.md"
    return paths


def _localisation_line(report: dict[str, Any]) -> str:
    fl = report["frame_level"]
    if report.get("mask_threshold", MASK_THRESHOLD) is None:
        return "Localisation: none, the model has no lesion mask."
    return (f"Localisation (frame level, {fl['jsi_frames']} annotated lesion frames): JSI mask "
            f"{_fmt(fl['jsi_mask'])}, JSI box {_fmt(fl['jsi_box'])}. P upsampled to the input, "
            f"lesion pixels p >= {report.get('mask_threshold', MASK_THRESHOLD):g}; "
            "box JSI = IoU of the unions of the bounding rectangles of every connected region, prediction vs "
            "ground truth (so every lesion of a frame counts). The overlays draw the largest predicted region's box.")
