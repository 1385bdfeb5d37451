"""The items ``usvid extract`` reads, whatever listed them (a manifest, a BUSI or BUS-BRA folder, one video).

A leaf module: the dataset readers (:mod:`usvid.data.busi`, :mod:`usvid.data.busbra`) build these and
:mod:`usvid.data.sources`, which picks the reader for a source, imports the readers, so the types live apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from usvid.boxes import Box


@dataclass(frozen=True)
class Failure:
    """One thing that went wrong: the file (and line or entry) and what to do about it."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass(frozen=True)
class SourceItem:
    """One video (or still image) to extract.

    ``boxes`` maps annotated source-frame indices to their lesion boxes (source pixels; an empty list is an
    explicit "no lesion" frame). ``mask_paths`` (BUSI, BUS-BRA) are mask images of frame 0, unioned.
    ``csv_box`` / ``csv_size`` (BUS-BRA) are the listing's box and image size, only cross-checked against the
    mask and the image; ``meta`` is per-video metadata kept in the store (BUS-BRA's histology, BI-RADS, device);
    ``where`` is the listing line; ``dataset`` the name of the source the item comes from.
    """

    video_id: str
    patient_id: str
    label: str
    path: Path
    source: str
    still: bool = False
    boxes: dict[int, list[Box]] = field(default_factory=dict)
    mask_paths: tuple[Path, ...] = ()
    annotated_masks: bool = False
    csv_box: Box | None = None
    csv_size: tuple[int, int] | None = None
    meta: dict[str, str] = field(default_factory=dict)
    where: str = ""
    dataset: str = ""


@dataclass
class SourceList:
    """The items of one source, the faults that dropped items, and warnings about items used anyway."""

    kind: str
    root: Path
    items: list[SourceItem]
    failures: list[Failure]
    warnings: list[Failure] = field(default_factory=list)
