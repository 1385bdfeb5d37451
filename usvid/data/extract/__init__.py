"""``extract(src, out, config)``: recorded scans -> a frame store with per-patient splits.

Per video: decode frame by frame (PyAV hands out its decoded plane, no copy), detect the scan region on
the first frames (or use ``--roi``), crop + blank + letterbox every kept frame, map boxes and masks the
same way, and write the video's arrays then its record, each atomically (temp name, then rename). A video
with a record is finished: a re-run skips it, so an interrupted extraction resumes and ends with the same
bytes as an uninterrupted one, and re-running a finished extraction writes nothing. A failing video is
reported (file + problem) and the others go on, unless ``strict``. A video whose decoding ends before the
frame count or duration its container declares (a file cut short) is kept with a warning, or fails under
``strict``.

A record is reused only while its inputs are unchanged: it carries a digest of the video's source file (size,
mtime, a hash of its first and last blocks), mask files, manifest row and boxes. A video whose digest moved is
extracted again, records of videos no longer listed are removed with their arrays, and the splits are made
from the whole current listing (a reused video whose patient moved gets its new split, and the moves are
reported), so a re-run after an edit gives the store a fresh extraction of the edited inputs would give.

Several sources (``usvid extract BUSI BUSBRA OUT``) make one store. Each source is named after its folder
(``busi``, ``busbra``), and its videos' ``dataset`` column says so; video and patient ids get the name as a prefix
(``busbra:bus_0002-l``, patient ``busbra:2``) so they never collide across sources. Each source is split on its own,
per patient and stratified, with the same seed, then the sources are concatenated: every patient is in the split
it gets in a store of its source alone, so the multi-source test split is the union of the single-source ones (what
cross-dataset evaluation needs), and the class balance is kept within each source. ``--groups`` members that are
bare ids apply to every source holding such a video id (BUSI's ``near_duplicates.csv`` names BUSI images only);
``name:id`` members apply to source ``name`` only; a group never joins patients of two sources. ``--classes``
keeps only the given labels (BUSI's ``benign,malignant`` protocol drops ``normal``) before splitting.

Videos run ``workers`` at a time (one per core by default, at most 8), each on a single-threaded decoder:
at MBUD-like sizes FFmpeg decodes a stream on one thread for about 30% less CPU than with frame threads, and
several videos keep the cores busy where frame threads leave a quarter of them idle
(``benchmarks/extract_bench.py``). A video that runs alone (the last ones, or any with one worker) is split
at keyframes into one segment per core, each decoded and stored on a thread of its own, and stitched
(:mod:`usvid.data.extract.segments`).
The store does not depend on the number of workers, nor on the splitting.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from usvid.data.extract.config import MAX_AUTO_WORKERS, ExtractConfig
from usvid.data.extract.jobs import run_jobs
from usvid.data.extract.output import prepare_out, write_store_files
from usvid.data.extract.plan import check_classes, check_roi_fits, list_all, plan_items
from usvid.data.extract.progress import ExtractProgress, Progress
from usvid.data.extract.records import (
    ENDED_EARLY,
    file_stem,
    forget,
    inputs_digest,
    read_record,
    remove_unlisted,
    still_valid,
    with_split,
)
from usvid.data.sources import Failure, SourceItem
from usvid.data.splits import SPLITS, read_groups, split_warnings
from usvid.errors import InputError
from usvid.outputs import check_output_dir, check_path_text

__all__ = [
    "MAX_AUTO_WORKERS", "ExtractConfig", "ExtractProgress", "ExtractSummary", "Progress", "SplitCount", "extract",
    "file_stem", "split_change_text",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitCount:
    split: str
    label: str
    videos: int
    frames: int
    annotated: int


@dataclass
class ExtractSummary:
    """What an extraction did: counts per split and class, and every failure (file + message).

    ``extracted`` counts the videos extracted by this run, ``changed`` those of them that had been extracted
    before from other inputs; ``skipped`` the finished videos reused as they were. ``ended_early`` counts the
    videos whose decoding stopped before their container's declared end (each also a warning);
    ``split_changes`` lists ``(patient, old split, new split)`` for the patients the current listing moved;
    ``split_warnings`` one line per split that is empty, has few patients or lacks a class (also in store.json).
    """

    out: Path
    counts: list[SplitCount]
    failures: list[Failure]
    extracted: int = 0
    skipped: int = 0
    deduped: int = 0
    warnings: list[Failure] = field(default_factory=list)
    changed: int = 0
    removed: int = 0
    ended_early: int = 0
    split_changes: list[tuple[str, str, str]] = field(default_factory=list)
    split_warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures



def extract(
    src: str | Path | Sequence[str | Path],
    out: str | Path,
    config: ExtractConfig | None = None,
    progress: Progress | None = None,
) -> ExtractSummary:
    """Extract ``src`` (manifest, BUSI or BUS-BRA folder or one video; or a list of them) into the store ``out``.

    Several sources make one store: each video's ``dataset`` column names its source, ids are prefixed with it,
    and splits are made per source (see :func:`usvid.data.extract.plan.plan_items`). ``config.groups`` applies to every source whose video
    ids it names (BUSI's ``near_duplicates.csv``: the BUSI source); ``name:id`` members name one source.

    Raises:
        InputError: ``src`` is not a dataset, ``out`` holds another extraction or is not a writable folder,
            bad settings (a ``--roi`` outside every video); with ``strict``, also the first failing video.
    Returns:
        counts per split and class, the failures (each names the file and the problem) and the warnings
        (listing faults where the file was used anyway, such as a BUS-BRA ``BBOX`` that disagrees with its mask).
    """
    config = config or ExtractConfig()
    sources = [src] if isinstance(src, (str, os.PathLike)) else list(src)
    if not sources:
        raise InputError("no source given: pass a manifest, a BUSI or BUS-BRA folder or a video, then OUT")
    paths = [check_path_text(p, "SRC") for p in sources]
    # Before any work: OUT must be a folder we can write, and not one of the sources.
    out = check_output_dir(out, inputs=paths, option="OUT")
    listed = list_all(paths, config.category)
    failures = [f for _, _, listing in listed for f in listing.failures]
    if config.strict and failures:
        raise InputError(str(failures[0]))
    notes = [w for _, _, listing in listed for w in listing.warnings]
    for note in notes:  # info: the summary carries them, and the CLI prints them
        log.info("%s", note)
    check_classes(config.classes, listed)
    groups = read_groups(config.groups) if config.groups else []
    items, splits = plan_items(listed, config, groups)
    check_roi_fits(items, config)
    prepare_out(out, listed, config)
    notify = progress or (lambda event: None)
    done, todo, moved, changed, removed = _reuse(items, splits, out, config, notify)
    skipped = len(done)
    failed = run_jobs(todo, len(items), splits, config, out, notify, done)
    failures += [failed[n] for n in sorted(failed)]
    records = [done[n] for n in sorted(done)]
    warnings = [w for r in records for w in r.get("warnings", [])]
    small = _split_warnings(records, config)
    if records:
        write_store_files(out, records, items, listed, config, warnings, small)
    if moved:
        log.info("%s", split_change_text(moved))
    return ExtractSummary(
        out,
        _count(records),
        failures,
        len(records) - skipped,
        skipped,
        sum(r["video"]["deduped"] for r in records),
        notes + [Failure(w["file"], w["message"]) for w in warnings],
        changed=sum(1 for n, _, _, _ in todo if n in changed and n in done),
        removed=removed,
        ended_early=sum(w["code"] == ENDED_EARLY for w in warnings),
        split_changes=moved,
        split_warnings=small,
    )


def _split_warnings(records: list[dict], config: ExtractConfig) -> list[str]:
    """:func:`usvid.data.splits.split_warnings` of the extracted videos' patients, each line also logged."""
    videos = [r["video"] for r in records]
    lines = split_warnings({str(v["patient_id"]): str(v["split"]) for v in videos},
                           {str(v["patient_id"]): str(v["label"]) for v in videos}, config.split)
    for line in lines:
        log.info("%s", line)  # a warning of the summary, printed by the CLI
    return lines


def split_change_text(moved: list[tuple[str, str, str]], shown: int = 5) -> str:
    """One line saying which patients the current listing moved to another split."""
    listed = ", ".join(f"{pid} {old} -> {new}" for pid, old, new in moved[:shown])
    more = f" and {len(moved) - shown} more" if len(moved) > shown else ""
    return (
        f"splits changed since the last extraction: {len(moved)} patient{'s' if len(moved) != 1 else ''} moved "
        f"({listed}{more}); the splits are made from the whole current listing"
    )


def _reuse(
    items: list[SourceItem], splits: dict[str, str], out: Path, config: ExtractConfig, notify: Progress
) -> tuple[dict[int, dict], list[tuple[int, SourceItem, str, str]], list[tuple[str, str, str]], set[int], int]:
    """Sort the items into finished records reused as they are and videos to extract.

    Returns the reused records by item number, the jobs ``(number, item, file, inputs digest)``, the patients
    whose split moved ``(patient, old, new)``, the numbers of the jobs that redo a video extracted before from
    other inputs, and how many records of videos no longer listed were removed.
    """
    done: dict[int, dict] = {}
    todo: list[tuple[int, SourceItem, str, str]] = []
    before: dict[str, str] = {}  # patient -> the split its records had
    changed: set[int] = set()
    listed: set[str] = set()
    for n, item in enumerate(items, start=1):
        file, inputs = file_stem(item.video_id), inputs_digest(item)
        listed.add(file)
        record = read_record(out, file)
        if record is not None:
            before.setdefault(str(record["video"].get("patient_id")), str(record["video"].get("split")))
        if record is not None and still_valid(record, out, file, inputs, config.size):
            done[n] = with_split(record, splits[item.patient_id], out, file)
            notify(ExtractProgress(item.video_id, n, len(items), 0, 0, finished=True, skipped=True))
            continue
        if record is not None:
            changed.add(n)
            log.info("%s: inputs changed since it was extracted; extracting it again", item.path)
        forget(out, file)
        todo.append((n, item, file, inputs))
    removed = remove_unlisted(out, listed)
    moved = sorted((pid, old, splits[pid]) for pid, old in before.items() if pid in splits and splits[pid] != old)
    return done, todo, moved, changed, removed



def _count(records: list[dict]) -> list[SplitCount]:
    videos, frames, annotated = Counter(), Counter(), Counter()
    for r in records:
        key = (r["video"]["split"], r["video"]["label"])
        videos[key] += 1
        frames[key] += len(r["frames"])
        annotated[key] += sum(f["annotated"] for f in r["frames"])
    order = {s: k for k, s in enumerate(SPLITS)}
    return [
        SplitCount(s, lab, videos[(s, lab)], frames[(s, lab)], annotated[(s, lab)])
        for s, lab in sorted(videos, key=lambda k: (order[k[0]], k[1]))
    ]
