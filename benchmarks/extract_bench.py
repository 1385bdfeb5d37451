"""Extraction throughput per decoder backend vs the raw decode rate of the same files, and random access.

Input: a synthetic 854x500 H.264 set (``usvid.synth`` when available, else ``usvid.video.testvideos``),
a few videos of ~10 s at 30 fps. Measured in one run, after one warm-up pass each, ``--repeats`` times:

- raw decode: PyAV decoding every frame, no conversion (the reference; FFmpeg threads on all cores);
- decode only, per backend: the backend's grey batches, nothing else;
- extraction, per backend: ``usvid.data.extract.extract`` end to end (decode + scan-region detection +
  crop + resize + write), frames per second of source frames;
- random access, per backend: 32 random frames per video via ``get_frames``.

Writes ``benchmarks/results/extract.json`` and prints a markdown table. Run:
``.venv/bin/python benchmarks/extract_bench.py [--videos 3] [--seconds 10] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from usvid.data.extract import ExtractConfig, extract
from usvid.errors import MissingDependencyError
from usvid.video.reader import open_video

RESULTS = Path(__file__).resolve().parent / "results" / "extract.json"


def make_inputs(root: Path, videos: int, seconds: float) -> tuple[Path, list[Path], str]:
    try:
        from usvid.synth import SynthConfig, generate_dataset

        generate_dataset(
            root, SynthConfig(patients=videos, seconds=seconds, max_videos_per_patient=1, seed=0)
        )
        paths = sorted(p for p in root.rglob("*.mp4"))
        return root, paths, "usvid.synth (854x500, 30 fps, libx264 ultrafast crf 23)"
    except ImportError:
        from usvid.data.manifest import VideoEntry, write_manifest
        from usvid.video.testvideos import write_test_video

        paths = [
            write_test_video(
                root / f"v{i}.mp4",
                kind="ultrasound",
                width=854,
                height=500,
                num_frames=int(seconds * 30),
                fps=30,
                gop=250,
                seed=i,
            )
            for i in range(videos)
        ]
        write_manifest(root / "manifest.csv", [VideoEntry(p.stem, p.stem, p, "x") for p in paths], root)
        return root, paths, "usvid.video.testvideos ultrasound (854x500, 30 fps, libx264 crf 18)"


def raw_decode(paths: list[Path]) -> int:
    import av

    n = 0
    for p in paths:
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            for _ in c.decode(s):
                n += 1
    return n


def backend_decode(paths: list[Path], backend: str) -> int:
    n = 0
    for p in paths:
        with open_video(p, backend) as r:
            for b in r.batches(32):
                n += len(b)
    return n


def random_access(paths: list[Path], backend: str, seed: int) -> int:
    rng = np.random.default_rng(seed)
    n = 0
    for p in paths:
        with open_video(p, backend) as r:
            wanted = rng.integers(0, r.info.num_frames, 32).tolist()
            n += len(r.get_frames(wanted))
    return n


def run_extract(src: Path, backend: str) -> int:
    out = Path(tempfile.mkdtemp(prefix="usvid-bench-"))
    try:
        summary = extract(src, out / "store", ExtractConfig(backend=backend))
        if summary.failures:
            raise RuntimeError(f"extraction failed: {summary.failures}")
        return sum(
            int(line.split(",")[9]) for line in (out / "store" / "videos.csv").read_text().splitlines()[1:]
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)


def summarise(rates: list[float]) -> dict:
    return {
        "fps_median": statistics.median(rates),
        "fps_min": min(rates),
        "fps_max": max(rates),
        "runs": rates,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def measure_interleaved(tasks: dict, repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Run every task once as warm-up, then ``repeats`` rounds of all tasks in turn.

    Interleaving puts the reference and each measurement close in time, so load from other processes on
    a shared machine hits them alike; ratios are taken within a round. Returns frames per second and CPU
    milliseconds per frame (all threads) of every run.
    """
    for fn in tasks.values():
        fn()
    rates: dict[str, list[float]] = {name: [] for name in tasks}
    cpu: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(repeats):
        for name, fn in tasks.items():
            c0, t0 = _cpu_seconds(), time.perf_counter()
            frames = fn()
            rates[name].append(frames / (time.perf_counter() - t0))
            cpu[name].append(1000 * (_cpu_seconds() - c0) / frames)
    return rates, cpu


def versions() -> dict:
    import av
    import cv2
    import torch

    out = {
        "python": platform.python_version(),
        "av": av.__version__,
        "ffmpeg_pyav": ".".join(map(str, av.library_versions["libavcodec"])),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    for name in ("decord", "torchcodec"):
        try:
            out[name] = __import__(name).__version__
        except Exception as err:  # noqa: BLE001 - any import failure means "not usable here"
            out[name] = f"unavailable ({type(err).__name__})"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="pyav,decord,torchcodec")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="usvid-bench-in-"))
    try:
        src, paths, origin = make_inputs(work / "set", args.videos, args.seconds)
        with open_video(paths[0]) as r:
            info = r.info
        total_frames = sum(open_video(p).info.num_frames for p in paths)
        tasks = {"raw": lambda: raw_decode(paths)}
        rows: dict[str, dict] = {}
        for backend in args.backends.split(","):
            try:
                open_video(paths[0], backend).close()
            except MissingDependencyError as err:
                rows[backend] = {"skipped": str(err)}
                continue
            tasks[f"{backend}/decode"] = lambda b=backend: backend_decode(paths, b)
            tasks[f"{backend}/extract"] = lambda b=backend: run_extract(src, b)
            tasks[f"{backend}/random"] = lambda b=backend: random_access(paths, b, 0)
        load_before = os.getloadavg()
        rates, cpu = measure_interleaved(tasks, args.repeats)
        raw = summarise(rates["raw"])
        raw["cpu_ms_per_frame"] = statistics.median(cpu["raw"])
        for backend in rows.keys() | {t.split("/")[0] for t in tasks if "/" in t}:
            if backend in rows:
                continue
            ratios = [e / r for e, r in zip(rates[f"{backend}/extract"], rates["raw"])]
            rows[backend] = {
                "decode": summarise(rates[f"{backend}/decode"]),
                "extract": summarise(rates[f"{backend}/extract"]),
                "random_access": summarise(rates[f"{backend}/random"]),
                "extract_vs_raw": statistics.median(ratios),
                "cpu_ms_per_frame": {
                    "decode": statistics.median(cpu[f"{backend}/decode"]),
                    "extract": statistics.median(cpu[f"{backend}/extract"]),
                },
                "extract_vs_raw_runs": ratios,
            }
        result = {
            "input": {
                "origin": origin,
                "videos": len(paths),
                "frames": total_frames,
                "width": info.width,
                "height": info.height,
                "fps": info.fps,
                "codec": info.codec,
            },
            "machine": {
                "platform": platform.platform(),
                "cpu": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            },
            "versions": versions(),
            "repeats": args.repeats,
            "raw_decode_pyav": raw,
            "backends": rows,
            "extract_settings": "ExtractConfig() defaults: size 256, automatic scan region, every frame",
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(
            f"\n{len(paths)} videos, {total_frames} frames of {info.width}x{info.height} {info.codec}; "
            f"{os.cpu_count()} CPU cores, load average {load_before[0]:.1f} before; median of {args.repeats} "
            "interleaved rounds (min-max)\n"
        )
        print(
            f"raw PyAV decode (reference): {raw['fps_median']:.0f} fps ({raw['fps_min']:.0f}-{raw['fps_max']:.0f}), "
            f"{raw['cpu_ms_per_frame']:.2f} CPU ms/frame\n"
        )
        print(
            "| backend | decode only (fps) | extraction (fps) | extraction / raw decode | "
            "CPU ms/frame: decode / extract | random access (frames/s, 32 per video) |"
        )
        print("|---|---|---|---|---|---|")
        for backend, row in sorted(rows.items()):
            if "skipped" in row:
                print(f"| {backend} | skipped: {row['skipped'][:60]} | | | | |")
                continue
            d, e, ra = row["decode"], row["extract"], row["random_access"]
            print(
                f"| {backend} | {d['fps_median']:.0f} ({d['fps_min']:.0f}-{d['fps_max']:.0f}) | "
                f"{e['fps_median']:.0f} ({e['fps_min']:.0f}-{e['fps_max']:.0f}) | {row['extract_vs_raw']:.0%} | "
                f"{row['cpu_ms_per_frame']['decode']:.2f} / {row['cpu_ms_per_frame']['extract']:.2f} | "
                f"{ra['fps_median']:.1f} ({ra['fps_min']:.1f}-{ra['fps_max']:.1f}) |"
            )
        print(f"\nwritten {RESULTS}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
