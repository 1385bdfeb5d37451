"""The end-to-end demo behind ``make demo``: synth -> extract -> train -> export -> predict.

Everything runs on the CPU in a few minutes: a small synthetic MBUD-style set, a frame store at 128 px,
LA-Net-R18 trained for a handful of epochs (far too short to be accurate: it shows the pipeline, not a
result), an ONNX export with its parity check, and an overlay video of one held-out scan.

OUT must be new, empty or an earlier demo's folder (marked by ``.usvid-demo.json``): the demo never writes
into a folder of the user's, where its ``model.onnx`` or ``predict/`` could replace the user's files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from usvid.shipped import DEFAULT_MODEL

log = logging.getLogger(__name__)

MARKER_NAME = ".usvid-demo.json"
MARKER_FORMAT = "usvid-demo"

#: Called with the name of a step as it starts.
StepFn = Callable[[str], None]


@dataclass(frozen=True)
class DemoConfig:
    patients: int = 16
    seconds: float = 2.0
    box_fraction: float = 0.05
    size: int = 128
    model: str = "lanet_r18"
    stage1_epochs: int = 2
    epochs: int = 3
    frames_per_video: int = 16
    seed: int = 0


@dataclass
class DemoResult:
    """What each step wrote, step name -> (path, one-line summary)."""

    outputs: dict[str, tuple[Path, str]] = field(default_factory=dict)


def run_demo(
    out: str | Path, config: DemoConfig = DemoConfig(), on_step: StepFn | None = None, train_progress=None
) -> DemoResult:
    """Run every stage of the pipeline into ``out`` and return where each result went.

    ``train_progress`` receives :class:`usvid.training.progress.TrainEvent` s, as in :func:`usvid.training.loop.fit`.
    """
    from usvid.data.extract import ExtractConfig, extract
    from usvid.data.splits import SplitFractions
    from usvid.inference.export import ExportConfig, export_model
    from usvid.inference.predict import PredictConfig, predict_videos
    from usvid.synth import SynthConfig, generate_dataset
    from usvid.training.config import TrainConfig
    from usvid.training.loop import fit

    out = claim_demo_folder(out)
    result = DemoResult()
    step = on_step or (lambda name: log.info("demo: %s", name))

    step("synth: generating synthetic scan videos")
    synth = generate_dataset(
        out / "synth",
        SynthConfig(patients=config.patients, seconds=config.seconds, box_fraction=config.box_fraction, seed=config.seed),
    )
    result.outputs["synth"] = (synth.out, f"{synth.videos} videos, {synth.frames} frames, {synth.annotated_frames} boxed")

    step("extract: cropping to the scan region, writing the frame store")
    store = extract(synth.manifest, out / "store", ExtractConfig(size=config.size, seed=config.seed, split=SplitFractions(0.5, 0.25, 0.25)))
    frames = sum(c.frames for c in store.counts)
    result.outputs["extract"] = (store.out, f"{frames} frames, {len(store.failures)} failures")

    step(f"train: {config.model}, {config.stage1_epochs} + {config.epochs} epochs on the CPU")
    train = TrainConfig(
        model=config.model, size=config.size, stage1_epochs=config.stage1_epochs, epochs=config.epochs,
        frames_per_video=config.frames_per_video, seed=config.seed, device="cpu",
    )
    run = fit(train, store.out, out / "run", resume=(out / "run" / "last.pt").exists(), progress=train_progress)
    accuracy = "n/a" if run.best_val_accuracy is None else f"{run.best_val_accuracy:.2f}"
    result.outputs["train"] = (run.run, f"best validation accuracy {accuracy} (epoch {run.best_epoch})")

    checkpoint = run.best or run.last
    step("export: ONNX with a parity check against PyTorch")
    exported = export_model(checkpoint, out / "model.onnx", ExportConfig(format="onnx"))
    parity = "" if exported.parity is None else f", parity: {exported.parity.describe()}"
    result.outputs["export"] = (exported.path, f"{exported.precision}{parity}")

    step("predict: per-frame class + box overlay of one held-out scan")
    held_out = _held_out_video(store.out, synth.out)
    report = predict_videos(held_out, exported.path, out / "predict", PredictConfig())
    video = report.results[0]
    result.outputs["predict"] = (
        video.overlay or video.jsonl,
        f"{video.source.name}: {video.class_name}, lesion on {video.lesion_frames}/{video.frames} frames",
    )

    step(f"shipped model: {DEFAULT_MODEL} (trained on real BUSI + BUS-BRA scans) on the same scan")
    shipped_report = predict_videos(held_out, DEFAULT_MODEL, out / "predict_shipped", PredictConfig())
    shipped = shipped_report.results[0]
    p_malignant = dict(zip(shipped_report.class_names, shipped.mean_probs)).get("malignant")
    shown = "" if p_malignant is None else f" (mean P(malignant) {p_malignant:.2f})"
    result.outputs["shipped model"] = (
        shipped.overlay or shipped.jsonl,
        f"{shipped.class_name}{shown} on a synthetic scan it was not trained for; on your own scans: "
        f"usvid predict SCAN.mp4 --out preds",
    )
    return result


def claim_demo_folder(out: str | Path) -> Path:
    """Check ``out`` can hold the demo (new, empty or an earlier demo's) and mark it as the demo's.

    Raises:
        InputError: ``out`` is a file, not writable, or a non-empty folder the demo did not make.
    """
    from usvid.errors import InputError
    from usvid.io import write_json_atomic
    from usvid.outputs import check_output_dir

    out = check_output_dir(out, option="--out")
    marker = out / MARKER_NAME
    if _is_marker(marker):
        return out
    if out.is_dir() and any(out.iterdir()):
        found = sorted(p.name for p in out.iterdir())
        listed = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise InputError(
            f"--out {out}: folder holds files usvid demo did not write ({listed}); "
            "choose a new or empty folder (a demo folder of an older usvid has no marker: delete it)"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, {"format": MARKER_FORMAT, "version": 1})
    return out


def _is_marker(path: Path) -> bool:
    import json

    try:
        return json.loads(path.read_text()).get("format") == MARKER_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _held_out_video(store_path: Path, dataset_root: Path) -> Path:
    """The source file of the first test-split video (else any video) of the store.

    The store records sources relative to the dataset root, as written in its manifest.
    """
    from usvid.data.store import FrameStore

    store = FrameStore(store_path)
    videos = [v for v in store.videos if v.split == "test"] or store.videos
    return Path(dataset_root) / videos[0].source
