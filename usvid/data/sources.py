"""What a source path means, for every command that reads recorded scans (``usvid extract``, ``usvid predict``
and the file part of ``usvid stream``): :func:`list_sources` answers it once.

A path is one of: a dataset manifest (``manifest.csv`` or its folder), a BUS-BRA or BUSI-style image folder,
a folder of videos, a glob pattern of videos, or one video: a video file, a DICOM cine or a folder of frame
images. A folder of videos is searched below too: video and DICOM files and frame-image folders (a frame
folder is one video and is not searched further); hidden files and folders (``.name``) are skipped, and any
other file is ignored with a warning (``SourceList.warnings``). A folder holding only frame images is one
video.

Unlike :func:`usvid.data.manifest.load_dataset` (which stops at the first problem), a manifest is read in
the collect-errors mode of :mod:`usvid.data.manifest`, so one bad row or annotation fails that video with a
clear message and the others still extract: duplicate video ids, a patient with two labels, a path outside
the dataset, bad boxes, annotations of unknown videos.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from pathlib import Path
from typing import Literal

from usvid.data.items import Failure, SourceItem, SourceList  # re-exported: they lived here
from usvid.data.manifest import (
    ANNOTATIONS_NAME,
    LESION_CATEGORY,
    MANIFEST_NAME,
    Problem,
    read_annotations,
    read_manifest,
)
from usvid.errors import InputError
from usvid.video.reader import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

UNKNOWN_LABEL = "unknown"
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".y4m")
DICOM_SUFFIXES = (".dcm", ".dicom")
#: What one path is as a single video.
VideoKind = Literal["file", "dicom", "folder"]
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


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def is_dicom(path: Path) -> bool:
    """A DICOM file by its suffix or by the ``DICM`` magic after the 128-byte preamble."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def is_frame_folder(path: Path) -> bool:
    """A folder holding frame images (one video)."""
    return path.is_dir() and any(
        p.suffix.lower() in IMAGE_SUFFIXES and not _hidden(p) and p.is_file() for p in path.iterdir()
    )


def video_kind(path: Path) -> VideoKind | None:
    """What ``path`` is as one video: a video ``file``, a ``dicom`` cine, a ``folder`` of frame images, or None."""
    if path.is_dir():
        return "folder" if is_frame_folder(path) else None
    if not path.is_file():
        return None
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return "file"
    return "dicom" if is_dicom(path) else None


def find_videos(folder: Path) -> tuple[list[Path], list[Path]]:
    """The videos below ``folder`` (sorted, depth first) and the other files that were ignored."""
    videos: list[Path] = []
    ignored: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if _hidden(entry):
            continue
        if entry.is_dir():
            if is_frame_folder(entry):
                videos.append(entry)
            else:
                found, skipped = find_videos(entry)
                videos += found
                ignored += skipped
        elif video_kind(entry) is not None:
            videos.append(entry)
        else:
            ignored.append(entry)
    return videos, ignored


def single_video_source(path: Path) -> SourceList:
    vid = path.stem if path.is_file() else path.name
    item = SourceItem(vid, vid, UNKNOWN_LABEL, path.resolve(), source=path.name)
    return SourceList("video", path.parent.resolve(), [item], [])


def _video_name(path: Path, root: Path) -> str:
    """``a/b/scan.mp4`` below ``root`` -> ``a_b_scan``: the video id, unique across sub-folders."""
    rel = path.relative_to(root)
    return "_".join([*rel.parent.parts, rel.stem if path.is_file() else rel.name])


def videos_source(kind: str, root: Path, videos: list[Path], ignored: list[Path] = ()) -> SourceList:
    """One item per video (each its own patient, label unknown); names made unique (``a.mp4``, ``a.mov`` ->
    ``a``, ``a_2``); ``ignored`` files become warnings."""
    items, seen = [], set()
    for path in videos:
        base = _video_name(path, root)
        name, n = base, 2
        while name in seen:  # a.mp4 and a.mov would write the same outputs
            name, n = f"{base}_{n}", n + 1
        seen.add(name)
        items.append(SourceItem(name, name, UNKNOWN_LABEL, path.resolve(), source=path.relative_to(root).as_posix()))
    warnings = [Failure(str(p), f"not a video ({', '.join(VIDEO_SUFFIXES + DICOM_SUFFIXES)}), DICOM file or "
                        "frame folder: ignored") for p in ignored]
    for warning in warnings:
        log.warning("%s", warning)
    return SourceList(kind, root.resolve(), items, [], warnings)


def is_busi_folder(folder: Path) -> bool:
    """Class sub-folders holding images with ``*_mask*.png`` beside them."""
    return any(
        sub.is_dir() and any(p.name.endswith(".png") and "_mask" in p.stem for p in sub.iterdir())
        for sub in folder.iterdir()
    )


def _glob_source(pattern: str) -> SourceList:
    matches = [Path(m).resolve() for m in sorted(glob.glob(pattern, recursive=True)) if not _hidden(Path(m))]
    videos = [m for m in matches if video_kind(m) is not None]
    if not videos:
        raise InputError(f"{pattern}: no such file or folder, and no videos match it as a pattern")
    root = Path(os.path.commonpath([str(v.parent) for v in videos]))
    return videos_source("glob", root, videos, [m for m in matches if video_kind(m) is None and m.is_file()])


def _folder_source(src: Path, category: str) -> SourceList:
    if (src / MANIFEST_NAME).is_file():
        return read_manifest_source(src / MANIFEST_NAME, category)
    from usvid.data.busbra import is_busbra_folder, read_busbra

    if is_busbra_folder(src):
        return read_busbra(src)
    if is_busi_folder(src):
        from usvid.data.busi import read_busi

        return read_busi(src)
    videos, ignored = find_videos(src)
    if videos:
        return videos_source("folder", src, videos, ignored)
    if is_frame_folder(src):
        return single_video_source(src)
    raise InputError(
        f"{src}: no videos here: expected video files ({', '.join(VIDEO_SUFFIXES)}), DICOM files, frame-image "
        f"folders, {MANIFEST_NAME}, BUSI-style class folders (<class>/<name>.png with <name>_mask.png) or a "
        "BUS-BRA folder (bus_data.csv, Images/, Masks/)"
    )


def list_sources(src: str | Path, category: str = LESION_CATEGORY) -> SourceList:
    """Work out what ``src`` is and list its videos (see the module docstring).

    ``category``: the COCO category of a manifest's ``annotations.json`` read as lesion boxes.
    Raises:
        InputError: ``src`` does not exist (and matches nothing as a pattern) or holds no videos.
    """
    src_path = Path(src)
    if not src_path.exists():
        if glob.has_magic(str(src)):
            return _glob_source(str(src))
        raise InputError(f"{src}: no such file or folder; give a video file, a folder of videos or a "
                         f"{MANIFEST_NAME}")
    if src_path.is_file() and src_path.name.endswith(".csv"):
        return read_manifest_source(src_path, category)
    if src_path.is_dir():
        return _folder_source(src_path, category)
    return single_video_source(src_path)


def source_name(src: str | Path) -> str:
    """The name a source gets in a multi-source store: its folder's name (a manifest's folder, a video's stem)."""
    import re

    src = Path(src).resolve()
    name = src.parent.name if src.is_file() and src.name.endswith(".csv") else src.stem if src.is_file() else src.name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "source"
