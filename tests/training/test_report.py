"""Report plots: what each figure draws (read from the matplotlib objects, not the PNG bytes), and the tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex
from torch import nn
from usvid.models import ModelOutput

from usvid.boxes import Box
from usvid.training import metrics, report
from usvid.training.gradcam import grad_cam


def _roc_lines(fig):
    (ax,) = [a for a in fig.axes if a.get_xlabel()]
    return ax, [line for line in ax.get_lines() if (line.get_gid() or "").startswith("roc:")]


def _area(fpr, tpr):
    """Trapezoid area under a polyline."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _binary_data(seed=0, n=60):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    p1 = np.clip(0.5 + 0.35 * (labels - 0.5) + rng.normal(0, 0.25, n), 0.01, 0.99)
    return labels, np.stack([1 - p1, p1], 1)


def test_binary_roc_has_one_curve_of_the_positive_class_with_its_operating_point():
    labels, probs = _binary_data()
    m = metrics.classification_metrics(labels, probs, ["benign", "malignant"], "malignant")
    curves, point = report.roc_curves(labels, probs, m)
    fig = report.roc_plot(curves, point, "ROC")
    ax, lines = _roc_lines(fig)
    assert len(lines) == 1 and lines[0].get_gid() == "roc:malignant"
    assert ax.get_xlabel() == "false positive rate (1 - specificity)"
    assert ax.get_ylabel() == "true positive rate (sensitivity)"
    # the curve is malignant's, not benign's: its area is the reported AUC
    fpr, tpr = lines[0].get_data()
    assert _area(fpr, tpr) == pytest.approx(m["auc_positive"], abs=1e-12)
    # the operating point is the reported sensitivity / specificity, and lies on a vertex of the curve
    (dot,) = [line for line in ax.get_lines() if line.get_gid() == "operating_point"]
    x, y = (float(v[0]) for v in dot.get_data())
    assert (x, y) == pytest.approx((1 - m["specificity"], m["sensitivity"]))
    assert np.min(np.hypot(fpr - x, tpr - y)) < 1e-12
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    lo, hi = m["auc_positive_ci95"]
    assert f"malignant: AUC {m['auc_positive']:.3f} [{lo:.3f}, {hi:.3f}] (95% DeLong)" in legend
    assert any("P(malignant) > 0.5" in t for t in legend)


def test_benign_as_positive_draws_benign_curve():
    labels, probs = _binary_data(1)
    m = metrics.classification_metrics(labels, probs, ["benign", "malignant"], "benign")
    _, lines = _roc_lines(report.roc_plot(*report.roc_curves(labels, probs, m), "ROC"))
    assert [line.get_gid() for line in lines] == ["roc:benign"]
    fpr, tpr = lines[0].get_data()
    assert _area(fpr, tpr) == pytest.approx(m["per_class"]["benign"]["auc"], abs=1e-12)


def test_three_classes_give_one_vs_rest_curves_labelled_per_class():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], 10)
    probs = rng.dirichlet([1, 1, 1], 30)
    names = ["benign", "malignant", "normal"]
    m = metrics.classification_metrics(labels, probs, names, "malignant")
    curves, point = report.roc_curves(labels, probs, m)
    ax, lines = _roc_lines(report.roc_plot(curves, point, "ROC"))
    assert [line.get_gid() for line in lines] == [f"roc:{n} vs rest" for n in names]
    legend = " | ".join(t.get_text() for t in ax.get_legend().get_texts())
    for n in names:
        assert f"{n} vs rest: AUC {m['per_class'][n]['auc']:.3f}" in legend


def test_confusion_cells_show_counts_and_row_percentages():
    cm = [[3, 1, 0], [2, 2, 4], [0, 0, 0]]
    fig = report.confusion_plot(cm, ["benign", "malignant", "normal"], "confusion")
    ax = next(a for a in fig.axes if a.get_xlabel())
    cells = {t.get_gid(): t.get_text() for t in ax.texts}
    assert cells["cell:0,0"] == "3\n75.0%" and cells["cell:0,1"] == "1\n25.0%" and cells["cell:0,2"] == "0\n0.0%"
    assert cells["cell:1,0"] == "2\n25.0%" and cells["cell:1,2"] == "4\n50.0%"
    assert cells["cell:2,1"] == "0\n-"  # no true 'normal': no share to give
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["benign", "malignant", "normal"]
    bars = [a for a in fig.axes if a is not ax]
    assert len(bars) == 1 and bars[0].get_ylabel() == "share of the true class (row %)"


def _example(caption, cam=None, content=None):
    img = np.full((64, 64), 90, np.uint8)
    truth = np.zeros((64, 64), bool)
    truth[10:30, 12:40] = True
    box = Box.from_xyxy(12, 10, 40, 30)
    return report.Example(img, caption, truth, box, truth, box, cam, content, "malignant")


def test_example_captions_are_whole_and_the_legend_names_the_colours():
    caption = "busbra:bus_0123-l_left_breast_2024: true malignant, predicted benign (P 0.87), frame 1234567"
    fig = report.example_figure([_example(caption)] * 2, heatmap=False)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 2
    for title in titles:
        assert title.split() == caption.split() and "\n" in title  # wrapped, not cut
        assert "".join(filter(str.isdigit, title)) == "".join(filter(str.isdigit, caption))
    (legend,) = fig.legends
    entries = {t.get_text(): to_hex(h.get_color()) for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert entries["ground truth (mask outline, box)"] == report.TRUTH_COLOUR
    assert entries["prediction (mask outline at P >= 0.5, largest region's box)"] == report.PRED_COLOUR


def test_example_boxes_are_drawn_around_the_pixels_they_cover():
    example = _example("v: true benign, predicted benign (P 0.9)")._replace(pred_box=Box(20, 5, 8, 6))
    fig = report.example_figure([example], heatmap=False)
    tile = next(ax for ax in fig.axes if ax.get_title())
    drawn = {to_hex(p.get_edgecolor()): (p.get_xy(), p.get_width(), p.get_height()) for p in tile.patches}
    # Truth covers pixels x 12..39, y 10..29; pixel centres sit at integers, so the edges are half a pixel out.
    assert drawn[report.TRUTH_COLOUR] == ((11.5, 9.5), 28, 20)
    assert drawn[report.PRED_COLOUR] == ((19.5, 4.5), 8, 6)


def test_gradcam_figure_states_the_target_and_has_a_colour_bar():
    cam = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    content = np.zeros((64, 64), bool)
    content[16:48] = True
    fig = report.example_figure([_example("v1: true benign, predicted malignant (P 0.61)", cam * content, content)],
                                heatmap=True)
    tile = next(ax for ax in fig.axes if ax.get_title())
    assert tile.get_title().replace("\n", " ").endswith("Grad-CAM of class malignant")
    heat = tile.get_images()[1].get_array()
    assert heat.mask[:16].all() and not heat.mask[16:48].any()  # padding shows the frame, not the colour of 0
    bars = [ax for ax in fig.axes if ax.get_ylabel() == "Grad-CAM, scaled to [0, 1] per frame"]
    assert len(bars) == 1


class _Conv(nn.Module):
    """Two 3x3 feature maps, class scores their means: heat wherever the frame has texture."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def gradcam_layer(self) -> nn.Module:
        return self.conv

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return ModelOutput(self.conv(x).relu().mean(dim=(2, 3)), None)


def test_grad_cam_is_exactly_zero_outside_the_valid_area():
    torch.manual_seed(0)
    model = _Conv()
    x = torch.rand(2, 1, 64, 64)
    valid = torch.zeros(2, 64, 64, dtype=torch.bool)
    valid[0, 16:48] = True  # a wide crop: bars above and below
    valid[1, :, 8:56] = True  # a tall crop: bars left and right
    cam = grad_cam(model, x, valid=valid)
    assert (cam[~valid] == 0).all()
    # scaled by the peak inside the image, so the image area still reaches 1
    assert torch.allclose(cam.flatten(1).amax(1), torch.ones(2))
    plain = grad_cam(model, x)
    assert plain[~valid].max() > 0  # without the mask there is heat on the bars
    with pytest.raises(ValueError, match="valid must be"):
        grad_cam(model, x, valid=valid[:, :32])


def test_headline_table_leads_with_the_positive_class_and_intervals():
    labels, probs = _binary_data(3)
    m = metrics.classification_metrics(labels, probs, ["benign", "malignant"], "malignant")
    rep = {"positive_class": "malignant", "frame_level": m, "video_level": m}
    header, rows = report.headline_table(rep)
    assert header == ["level", "n", "sensitivity (malignant)", "specificity (malignant)", "PPV (malignant)",
                      "NPV (malignant)", "accuracy", "AUC (malignant)", "F1 (macro)"]
    lo, hi = m["sensitivity_ci95"]
    assert rows[0][2] == f"{m['sensitivity']:.3f} [{lo:.3f}, {hi:.3f}]"
    lo, hi = m["auc_positive_ci95"]
    assert rows[0][7] == f"{m['auc_positive']:.3f} [{lo:.3f}, {hi:.3f}]" and rows[0][1] == "60 frames"
    assert "Wilson score" in report.interval_note(rep) and "DeLong" in report.interval_note(rep)


def test_headline_auc_is_the_positive_class_not_the_macro_one():
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1, 2], 12)
    probs = rng.dirichlet([1, 1, 1], 36)
    probs[labels == 1, 1] += 0.5  # malignant separates better than the other classes
    probs /= probs.sum(1, keepdims=True)
    m = metrics.classification_metrics(labels, probs, ["benign", "malignant", "normal"], "malignant")
    assert abs(m["auc_positive"] - m["auc_macro"]) > 0.05
    _, rows = report.headline_table({"positive_class": "malignant", "frame_level": m, "video_level": m})
    lo, hi = m["auc_positive_ci95"]
    assert rows[0][7] == f"{m['auc_positive']:.3f} [{lo:.3f}, {hi:.3f}]"
