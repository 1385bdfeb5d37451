"""What ``usvid extract`` reads: a dataset manifest, a BUSI-style or BUS-BRA image folder, or one video.

Unlike :func:`usvid.data.manifest.load_dataset` (which stops at the first problem), a manifest is read in
the collect-errors mode of :mod:`usvid.data.manifest`, so one bad row or annotation fails that video with a
clear message and the others still extract: duplicate video ids, a patient with two labels, a path outside
the dataset, bad boxes, annotations of unknown videos.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from usvid.data.manifest import (
    ANNOTATIONS_NAME,
    LESION_CATEGORY,
    MANIFEST_NAME,
    Problem,
    read_annotations,
    read_manifest,
)
from usvid.data.items import Failure, SourceItem, SourceList  # re-exported: they lived here
from usvid.errors import InputError
from usvid.video.reader import IMAGE_SUFFIXES

UNKNOWN_LABEL = "unknown"
SIGNATURE_BLOCK = 1 << 16  # bytes hashed at each end of a file


def file_signature(path: Path) -> list:
    """What tells a changed input file cheaply: size, mtime and a hash of its first and last 64 KiB.

    A file up to 128 KiB is hashed whole; a folder of frame images is the list of its images' signatures.
    A replaced recording differs in its container header (the first block) or its last frames (the last),
    even when a copy kept its size and time.
    """
    if path.is_dir():
        return [[p.name, *_signature(p)] for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    return _signature(path)


def _signature(path: Path) -> list:
    try:
        stat = path.stat()
        digest = hashlib.sha1()
        with path.open("rb") as f:
            if stat.st_size <= 2 * SIGNATURE_BLOCK:
                digest.update(f.read())
            else:
                digest.update(f.read(SIGNATURE_BLOCK))
                f.seek(-SIGNATURE_BLOCK, 2)
                digest.update(f.read(SIGNATURE_BLOCK))
    except OSError as err:
        return ["unreadable", err.strerror or type(err).__name__]
    return [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]


def read_manifest_source(manifest: Path, category: str = LESION_CATEGORY) -> SourceList:
    """The manifest's videos; a bad row or annotation fails only its video (see :class:`Problem`).

    ``category``: the COCO category whose boxes are lesion boxes (others are skipped, with a warning).
    """
    problems: list[Problem] = []
    notes: list[Problem] = []
    entries = read_manifest(manifest, errors=problems, notes=notes)
    root = manifest.parent.resolve()
    # Videos dropped for a row problem are still known, so their annotations are not "unknown video" faults.
    listed = {e.video_id for e in entries} | {p.video_id for p in problems if p.video_id}
    ann_path = root / ANNOTATIONS_NAME
    boxes = (
        read_annotations(ann_path, listed, errors=problems, category=category, notes=notes)
        if ann_path.exists()
        else {}
    )
    failed = {p.video_id for p in problems}
    items = [
        SourceItem(
            e.video_id,
            e.patient_id,
            e.label,
            e.path,
            source=e.path.relative_to(root).as_posix(),
            boxes=boxes.get(e.video_id, {}),
        )
        for e in entries
        if e.video_id not in failed
    ]
    return SourceList(
        "manifest",
        root,
        items,
        [Failure(p.where, p.message) for p in problems],
        [Failure(p.where, p.message) for p in notes],
    )


def single_video_source(path: Path) -> SourceList:
    vid = path.stem if path.is_file() else path.name
    item = SourceItem(vid, vid, UNKNOWN_LABEL, path.resolve(), source=path.name)
    return SourceList("video", path.parent.resolve(), [item], [])


def is_busi_folder(folder: Path) -> bool:
    """Class sub-folders holding images with ``*_mask*.png`` beside them."""
    return any(
        sub.is_dir() and any(p.name.endswith(".png") and "_mask" in p.stem for p in sub.iterdir())
        for sub in folder.iterdir()
    )


def list_sources(src: str | Path, category: str = LESION_CATEGORY) -> SourceList:
    """Work out what ``src`` is and list its videos (see the module docstring).

    ``category``: the COCO category of a manifest's ``annotations.json`` read as lesion boxes.
    """
    src = Path(src)
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
    if src.is_file() and src.name.endswith(".csv"):
        return read_manifest_source(src, category)
    if src.is_dir():
        if (src / MANIFEST_NAME).is_file():
            return read_manifest_source(src / MANIFEST_NAME, category)
        from usvid.data.busbra import is_busbra_folder, read_busbra

        if is_busbra_folder(src):
            return read_busbra(src)
        if is_busi_folder(src):
            from usvid.data.busi import read_busi

            return read_busi(src)
        if any(p.suffix.lower() in IMAGE_SUFFIXES for p in src.iterdir()):
            return single_video_source(src)
        raise InputError(
            f"{src}: not a dataset: expected {MANIFEST_NAME}, BUSI-style class folders (<class>/<name>.png with "
            "<name>_mask.png), a BUS-BRA folder (bus_data.csv, Images/, Masks/) or frame images"
        )
    return single_video_source(src)


def source_name(src: str | Path) -> str:
    """The name a source gets in a multi-source store: its folder's name (a manifest's folder, a video's stem)."""
    import re

    src = Path(src).resolve()
    name = src.parent.name if src.is_file() and src.name.endswith(".csv") else src.stem if src.is_file() else src.name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "source"
