"""Extraction throughput per decoder backend vs the raw decode rate of the same files, and random access.

Input: a synthetic 854x500 H.264 set (``usvid.synth`` when available, else ``usvid.video.testvideos``):
``--videos`` videos (default 8) of ``--seconds`` (default 10) at 30 fps. Measured in one run, after one
warm-up pass each, ``--repeats`` interleaved rounds:

- raw decode (the reference the target is measured against): PyAV decoding every frame, one file after the
  other, no conversion, FFmpeg's default threads (frame threads on all cores), as ``ffmpeg -i f -f null -``
  decodes a file;
- raw decode, two files at once with a single-threaded decoder each: the fastest way to merely decode the set
  that we found, reported beside it for context;
- decode only, per backend: the backend's grey batches, nothing else;
- extraction, per backend: ``usvid.data.extract.extract`` end to end (decode + scan-region detection + crop
  + resize + write) with the default workers (one video per core), frames per second of source frames; for
  PyAV also with ``workers=1`` (one video at a time), and of a single video next to the raw decode of it;
- random access, per backend: 32 random frames per video via ``get_frames``.

Writes ``benchmarks/results/extract.json`` and prints a markdown table. Run:
``.venv/bin/python benchmarks/extract_bench.py [--videos 8] [--seconds 10] [--repeats 5]``; with
``--lung ../shared/data/videos/lung-covid-blues`` the same on 120 real lung clips (``extract_lung.json``).
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

from usvid.cpu import cpu_info
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


def copy_lung_clips(clips: Path, root: Path) -> tuple[Path, list[Path], str]:
    """The real COVID-BLUES lung clips (``patient_<ID>_<zone>.mp4``) as a dataset: one patient per ID.

    Copied under ``root`` (manifest paths must lie under the dataset root); one label for all, since the
    manifest allows one label per patient and the severity is given per clip.
    """
    from usvid.data.manifest import VideoEntry, write_manifest

    root.mkdir(parents=True)
    paths = []
    for clip in sorted(clips.glob("patient_*_*.mp4")):
        paths.append(root / clip.name)
        shutil.copyfile(clip, paths[-1])
    if not paths:
        raise SystemExit(f"{clips}: no patient_<ID>_<zone>.mp4 clips")
    entries = [VideoEntry(p.stem, p.stem.split("_")[1], p, "lung") for p in paths]
    write_manifest(root / "manifest.csv", entries, root)
    return root, paths, f"real lung ultrasound clips of {clips.name} (COVID-BLUES), {len(paths)} videos"


def raw_decode(paths: list[Path], threads: int = 0) -> int:
    """Decode every frame of ``paths`` in turn (``threads``: 0 FFmpeg's frame threads, 1 a single thread)."""
    import av

    n = 0
    for p in paths:
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            if threads != 1:
                s.thread_type = "AUTO"
            s.codec_context.thread_count = threads
            for _ in c.decode(s):
                n += 1
    return n


def raw_decode_parallel(paths: list[Path], files_at_once: int = 2) -> int:
    """Decode ``files_at_once`` files at a time, each on one single-threaded decoder."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(files_at_once) as pool:
        return sum(pool.map(lambda p: raw_decode([p], threads=1), paths))


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


def run_extract(src: Path, backend: str, workers: int = 0) -> int:
    out = Path(tempfile.mkdtemp(prefix="usvid-bench-"))
    try:
        summary = extract(src, out / "store", ExtractConfig(backend=backend, workers=workers))
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


def ratio_row(rates: dict[str, list[float]], cpu: dict[str, list[float]], task: str, reference: str) -> dict:
    """A task's rate with its ratio to ``reference``, taken within each round (both ran close in time)."""
    ratios = [e / r for e, r in zip(rates[task], rates[reference])]
    return {
        **summarise(rates[task]),
        "cpu_ms_per_frame": statistics.median(cpu[task]),
        "vs_reference": statistics.median(ratios),
        "vs_reference_runs": ratios,
        "reference": reference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", default="pyav,decord,torchcodec")
    parser.add_argument(
        "--lung",
        type=Path,
        help="benchmark on the real clips of this folder (../shared/data/videos/lung-covid-blues) instead; "
        "results to extract_lung.json",
    )
    parser.add_argument("--out", type=Path, help="results file (default extract.json / extract_lung.json)")
    args = parser.parse_args()
    results = args.out or (RESULTS.with_name("extract_lung.json") if args.lung else RESULTS)
    work = Path(tempfile.mkdtemp(prefix="usvid-bench-in-"))
    try:
        if args.lung:
            src, paths, origin = copy_lung_clips(args.lung, work / "set")
        else:
            src, paths, origin = make_inputs(work / "set", args.videos, args.seconds)
        with open_video(paths[0]) as r:
            info = r.info
        total_frames = 0
        for p in paths:
            with open_video(p) as r:
                total_frames += r.info.num_frames
        tasks = {
            "raw": lambda: raw_decode(paths),
            "raw/2-at-once-single-threaded": lambda: raw_decode_parallel(paths),
            "raw/one-video": lambda: raw_decode(paths[:1]),
        }
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
        if "pyav/extract" in tasks:
            tasks["pyav/extract-1-worker"] = lambda: run_extract(src, "pyav", workers=1)
            tasks["pyav/extract-one-video"] = lambda: run_extract(paths[0], "pyav")
        load_before = os.getloadavg()
        rates, cpu = measure_interleaved(tasks, args.repeats)
        raw = summarise(rates["raw"])
        raw["cpu_ms_per_frame"] = statistics.median(cpu["raw"])
        raw_parallel = ratio_row(rates, cpu, "raw/2-at-once-single-threaded", "raw")
        for backend in {t.split("/")[0] for t in tasks if "/" in t} - {"raw"} - rows.keys():
            rows[backend] = {
                "decode": summarise(rates[f"{backend}/decode"]),
                "extract": ratio_row(rates, cpu, f"{backend}/extract", "raw"),
                "random_access": summarise(rates[f"{backend}/random"]),
            }
            rows[backend]["decode"]["cpu_ms_per_frame"] = statistics.median(cpu[f"{backend}/decode"])
        if "pyav/extract-1-worker" in tasks:
            rows["pyav"]["extract_1_worker"] = ratio_row(rates, cpu, "pyav/extract-1-worker", "raw")
            rows["pyav"]["extract_one_video"] = ratio_row(
                rates, cpu, "pyav/extract-one-video", "raw/one-video"
            )
            rows["pyav"]["extract_vs_raw_2_at_once"] = statistics.median(
                e / r for e, r in zip(rates["pyav/extract"], rates["raw/2-at-once-single-threaded"])
            )
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
                "cpu_model": cpu_info().model,
                "cpu_flags": cpu_info().matrix_flags(),
                "cpu_count": os.cpu_count(),
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            },
            "versions": versions(),
            "repeats": args.repeats,
            "raw_decode_pyav": raw,
            "raw_decode_2_at_once_single_threaded": raw_parallel,
            "raw_decode_one_video": summarise(rates["raw/one-video"]),
            "backends": rows,
            "extract_settings": "ExtractConfig() defaults: size 256, automatic scan region, every frame, "
            "workers 0 (one video per CPU core)",
        }
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(result, indent=2) + "\n")
        print_tables(result)
        print(f"\nwritten {results}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_tables(result: dict) -> None:
    raw, par = result["raw_decode_pyav"], result["raw_decode_2_at_once_single_threaded"]
    n = result["input"]
    print(
        f"\n{n['videos']} videos, {n['frames']} frames of {n['width']}x{n['height']} {n['codec']}; "
        f"{result['machine']['cpu_count']} CPU cores, load average {result['machine']['loadavg_before'][0]:.1f} "
        f"before; median of {result['repeats']} interleaved rounds (min-max)\n"
    )
    print(
        f"raw PyAV decode, one file after the other (reference): {raw['fps_median']:.0f} fps "
        f"({raw['fps_min']:.0f}-{raw['fps_max']:.0f}), {raw['cpu_ms_per_frame']:.2f} CPU ms/frame"
    )
    print(
        f"raw PyAV decode, 2 files at once, single-threaded decoders: {par['fps_median']:.0f} fps "
        f"({par['vs_reference']:.0%} of the reference), {par['cpu_ms_per_frame']:.2f} CPU ms/frame\n"
    )
    print(
        "| backend | decode only (fps) | extraction (fps) | extraction / raw decode | "
        "CPU ms/frame: decode / extract | random access (frames/s, 32 per video) |"
    )
    print("|---|---|---|---|---|---|")
    for backend, row in sorted(result["backends"].items()):
        if "skipped" in row:
            print(f"| {backend} | skipped: {row['skipped'][:60]} | | | | |")
            continue
        d, e, ra = row["decode"], row["extract"], row["random_access"]
        print(
            f"| {backend} | {d['fps_median']:.0f} ({d['fps_min']:.0f}-{d['fps_max']:.0f}) | "
            f"{e['fps_median']:.0f} ({e['fps_min']:.0f}-{e['fps_max']:.0f}) | {e['vs_reference']:.0%} | "
            f"{d['cpu_ms_per_frame']:.2f} / {e['cpu_ms_per_frame']:.2f} | "
            f"{ra['fps_median']:.1f} ({ra['fps_min']:.1f}-{ra['fps_max']:.1f}) |"
        )
    pyav = result["backends"].get("pyav", {})
    if "extract_1_worker" in pyav:
        one, single = pyav["extract_1_worker"], pyav["extract_one_video"]
        print(
            f"\npyav, one video at a time (workers=1): {one['fps_median']:.0f} fps = {one['vs_reference']:.0%} of "
            f"the reference; one video alone: {single['fps_median']:.0f} fps = {single['vs_reference']:.0%} of the "
            f"raw decode of that video; default extraction = {pyav['extract_vs_raw_2_at_once']:.0%} of decoding "
            "2 files at once"
        )


if __name__ == "__main__":
    main()
