"""Evaluation report files: ``report.json``, ``report.md`` and PNG plots drawn with OpenCV (no matplotlib).

Plots: ROC curves (one-vs-rest per class, frame and video level), confusion matrices, example overlays
(ground truth in green, prediction in red: mask outline and box) and Grad-CAM overlays.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from usvid.io import atomic_path, write_text_atomic

# BGR colours.
GREEN, RED, BLACK, GREY, WHITE = (40, 170, 40), (40, 40, 220), (0, 0, 0), (200, 200, 200), (255, 255, 255)
PALETTE = [(200, 110, 30), (30, 120, 230), (60, 170, 60), (160, 60, 160), (40, 40, 200), (120, 120, 20)]
FONT = cv2.FONT_HERSHEY_SIMPLEX


class Example(NamedTuple):
    """One frame shown in the overlays.

    image: ``(M, M)`` uint8 network input; truth: ``(M, M)`` bool or None; true_box / pred_box: ``(x0, y0, x1, y1)``
    at M or None; pred: ``(M, M)`` bool or None; cam: ``(M, M)`` float in [0, 1] or None.
    """

    image: np.ndarray
    caption: str
    truth: np.ndarray | None
    true_box: tuple[float, float, float, float] | None
    pred: np.ndarray | None
    pred_box: tuple[float, float, float, float] | None
    cam: np.ndarray | None


def write_png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


def roc_plot(curves: Sequence[tuple[str, np.ndarray, np.ndarray, float | None]], title: str, size: int = 480) -> np.ndarray:
    """ROC axes with one polyline per ``(name, fpr, tpr, auc)``; ``(size, size, 3)`` uint8 BGR."""
    img = np.full((size, size, 3), 255, np.uint8)
    left, top, side = 60, 40, size - 90

    def pt(fx: float, fy: float) -> tuple[int, int]:
        return int(left + fx * side), int(top + (1 - fy) * side)

    for t in np.linspace(0, 1, 6):
        cv2.line(img, pt(t, 0), pt(t, 1), GREY, 1)
        cv2.line(img, pt(0, t), pt(1, t), GREY, 1)
        cv2.putText(img, f"{t:.1f}", (pt(t, 0)[0] - 12, pt(t, 0)[1] + 18), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
        cv2.putText(img, f"{t:.1f}", (left - 35, pt(0, t)[1] + 4), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
    cv2.line(img, pt(0, 0), pt(1, 1), GREY, 1, cv2.LINE_AA)
    cv2.rectangle(img, pt(0, 1), pt(1, 0), BLACK, 1)
    for i, (name, fpr, tpr, auc) in enumerate(curves):
        colour = PALETTE[i % len(PALETTE)]
        pts = np.array([pt(float(x), float(y)) for x, y in zip(fpr, tpr, strict=True)], np.int32)
        cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
        label = f"{name}: AUC {auc:.3f}" if auc is not None else f"{name}: AUC n/a"
        cv2.putText(img, label, (left + side // 3, top + side - 12 - 18 * i), FONT, 0.45, colour, 1, cv2.LINE_AA)
    cv2.putText(img, title, (left, 25), FONT, 0.55, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, "false positive rate", (left + side // 3, size - 8), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, "TPR", (5, top + side // 2), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
    return img


def confusion_plot(matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str, cell: int = 90) -> np.ndarray:
    """Confusion matrix (rows = truth, columns = prediction) with counts; BGR uint8."""
    cm = np.asarray(matrix, dtype=np.int64)
    k = len(class_names)
    margin_l, margin_t = 110, 70
    img = np.full((margin_t + k * cell + 40, margin_l + k * cell + 20, 3), 255, np.uint8)
    peak = max(int(cm.max()), 1)
    for i in range(k):
        for j in range(k):
            shade = int(255 - 200 * cm[i, j] / peak)
            x0, y0 = margin_l + j * cell, margin_t + i * cell
            cv2.rectangle(img, (x0, y0), (x0 + cell, y0 + cell), (255, shade, shade), -1)
            cv2.rectangle(img, (x0, y0), (x0 + cell, y0 + cell), BLACK, 1)
            colour = WHITE if shade < 130 else BLACK
            cv2.putText(img, str(cm[i, j]), (x0 + cell // 3, y0 + cell // 2 + 6), FONT, 0.6, colour, 1, cv2.LINE_AA)
        cv2.putText(img, class_names[i][:12], (5, margin_t + i * cell + cell // 2), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
        cv2.putText(img, class_names[i][:10], (margin_l + i * cell + 5, margin_t - 8), FONT, 0.45, BLACK, 1,
                    cv2.LINE_AA)
    cv2.putText(img, title, (5, 20), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, "rows: truth, columns: prediction", (5, 42), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
    return img


def _outline(img: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], scale: float) -> None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    for c in contours:
        cv2.polylines(img, [(c * scale).astype(np.int32)], True, colour, 1, cv2.LINE_AA)


def _tile(example: Example, side: int, heatmap: bool) -> np.ndarray:
    grey = cv2.resize(example.image, (side, side), interpolation=cv2.INTER_LINEAR)
    img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    scale = side / example.image.shape[0]
    if heatmap and example.cam is not None:
        cam = cv2.resize((example.cam * 255).astype(np.uint8), (side, side), interpolation=cv2.INTER_LINEAR)
        img = cv2.addWeighted(img, 0.55, cv2.applyColorMap(cam, cv2.COLORMAP_JET), 0.45, 0)
    for mask, box, colour in ((example.truth, example.true_box, GREEN), (example.pred, example.pred_box, RED)):
        if mask is not None and not heatmap:
            _outline(img, mask, colour, scale)
        if box is not None:
            x0, y0, x1, y1 = (round(v * scale) for v in box)
            cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), colour, 1)
    strip = np.full((22, side, 3), 255, np.uint8)
    cv2.putText(strip, example.caption[: side // 6], (3, 15), FONT, 0.36, BLACK, 1, cv2.LINE_AA)
    return np.vstack([img, strip])


def example_grid(examples: Sequence[Example], *, heatmap: bool, side: int = 192, columns: int = 4) -> np.ndarray:
    """Tiles of examples: outlines and boxes (green = truth, red = prediction), or Grad-CAM heatmaps."""
    tiles = [_tile(e, side, heatmap) for e in examples]
    if not tiles:
        return np.full((60, 320, 3), 255, np.uint8)
    blank = np.full_like(tiles[0], 255)
    rows = []
    for start in range(0, len(tiles), columns):
        row = tiles[start : start + columns]
        row += [blank] * (columns - len(row))
        rows.append(np.hstack([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in row]))
    return np.vstack(rows)


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("n/a" if value is None else str(value))


def _with_ci(m: dict[str, Any], key: str) -> str:
    ci = m.get(f"{key}_ci95")
    return _fmt(m.get(key)) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def markdown(report: dict[str, Any]) -> str:
    """The human-readable report: summary tables, per-class tables, localisation, plots."""
    fl = report["frame_level"]
    positive = fl.get("positive_class")
    lines = [
        f"# Evaluation: {report['model']['arch']} (depth {report['model']['depth']}) on split '{report['split']}'",
        "",
        f"- checkpoint: `{report['checkpoint']}`",
        (f"- store: `{report['store']}`; {report['frames']} frames of {report['videos']} videos; "
         f"classes: {', '.join(report['class_names'])}"),
        f"- input {report['preprocess']['size']} px; video-level class = argmax of the mean frame probabilities",
        f"- test-time augmentation: {report.get('tta', 'none')}",
        "",
        (f"Positive class **{positive}** (one-vs-rest when there are more than two classes). 95% intervals in "
         f"brackets: Wilson score for proportions, DeLong for AUC ({fl['auc_kind']}). "
         f"{fl['ci_method']['note'].capitalize()}."),
        "",
        "| level | accuracy | sensitivity | specificity | PPV | NPV | AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for level in ("frame_level", "video_level"):
        m = report[level]
        lines.append(f"| {level.split('_')[0]} | " + " | ".join(
            _with_ci(m, k) for k in ("accuracy", "sensitivity", "specificity", "ppv", "npv", "auc")) + " |")
    lines += ["", "Macro averages over the classes:", "",
              "| level | sensitivity (macro) | specificity (macro) | precision (macro) | F1 (macro) | AUC (macro) |",
              "|---|---|---|---|---|---|"]
    for level in ("frame_level", "video_level"):
        m = report[level]
        lines.append(f"| {level.split('_')[0]} | " + " | ".join(_fmt(m[f"{k}_macro"]) for k in
                     ("sensitivity", "specificity", "precision", "f1", "auc")) + " |")
    lines += [
        "",
        (f"Localisation (frame level, {fl['jsi_frames']} annotated lesion frames): JSI mask "
         f"{_fmt(fl['jsi_mask'])}, JSI box {_fmt(fl['jsi_box'])}. P upsampled to the input, threshold 0.5; "
         "box JSI = IoU of the unions of the bounding rectangles of every connected region, prediction vs "
         "ground truth (so every lesion of a frame counts). The overlays draw the largest predicted region's box."),
    ]
    for level in ("frame_level", "video_level"):
        lines += ["", f"## Per class ({level.replace('_', ' ')})", "",
                  "| class | support | sensitivity | specificity | precision | F1 | AUC |", "|---|---|---|---|---|---|---|"]
        for name, m in report[level]["per_class"].items():
            lines.append(f"| {name} | {m['support']} | {_fmt(m['sensitivity'])} | {_fmt(m['specificity'])} | "
                         f"{_fmt(m['precision'])} | {_fmt(m['f1'])} | {_fmt(m['auc'])} |")
    lines += ["", "## Plots", ""] + [f"![{name}]({file})" for name, file in report["plots"].items()]
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: dict[str, Any], images: dict[str, np.ndarray]) -> dict[str, Path]:
    """Write the PNGs, ``report.json`` and ``report.md`` into ``out``; returns every written path."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, image in images.items():
        write_png(out / f"{name}.png", image)
        paths[name] = out / f"{name}.png"
    report["plots"] = {name: f"{name}.png" for name in images}
    write_text_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "report.md", markdown(report))
    paths["report.json"], paths["report.md"] = out / "report.json", out / "report.md"
    return paths
