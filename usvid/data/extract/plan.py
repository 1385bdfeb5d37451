"""What an extraction will do: list the sources, keep the wanted classes, split the patients, check ``--roi``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from usvid.data.extract.config import ExtractConfig
from usvid.data.manifest import LESION_CATEGORY
from usvid.data.sources import SourceItem, SourceList, list_sources, source_name
from usvid.data.splits import assign_splits
from usvid.errors import ConfigError, InputError, did_you_mean
from usvid.video.reader import open_video
from usvid.video.roi import fixed_scan_region


def list_all(paths: list[Path], category: str = LESION_CATEGORY) -> list[tuple[Path, str, SourceList]]:
    """List every source; each gets a distinct name (its folder's name, see :func:`source_name`)."""
    listed: list[tuple[Path, str, SourceList]] = []
    names: dict[str, Path] = {}
    for path in paths:
        name = source_name(path)
        if name in names:
            raise InputError(
                f"{path}: a second source named '{name}' (also {names[name]}); give every source its own folder name"
            )
        names[name] = path
        listed.append((path, name, list_sources(path, category)))
    return listed


def check_classes(classes: tuple[str, ...] | None, listed: list[tuple[Path, str, SourceList]]) -> None:
    if classes is None:
        return
    known = {it.label.lower() for _, _, sources in listed for it in sources.items}
    for c in classes:
        if c.lower() not in known:
            raise ConfigError(
                f"--classes: no source has class '{c}'.{did_you_mean(c, known)} Classes: {', '.join(sorted(known))}"
            )


def _groups_of(name: str, names: set[str], groups: list[set[str]]) -> list[set[str]]:
    """The groups as ids of source ``name``: bare ids apply to every source, ``name:id`` to that source only."""
    out = []
    for group in groups:
        own = set()
        for member in group:
            prefix, sep, rest = member.partition(":")
            if sep and prefix in names:
                if prefix == name:
                    own.add(rest)
            else:
                own.add(member)
        out.append(own)
    return out


def plan_items(
    listed: list[tuple[Path, str, SourceList]], config: ExtractConfig, groups: list[set[str]]
) -> tuple[list[SourceItem], dict[str, str]]:
    """The items to extract and each patient's split.

    Every source is split on its own (per patient, stratified, near-duplicate groups kept together) with the same
    seed, then the sources are concatenated: a patient lands in the same split as in a store of its source alone,
    so a multi-source store's test split is the union of the single-source test splits (what cross-dataset
    evaluation needs). With several sources, video and patient ids get the source's name as prefix
    (``busbra:bus_0002-l``, patient ``busbra:2``) so they never collide; with one source they are kept as they are.
    """
    multi = len(listed) > 1
    names = {name for _, name, _ in listed}
    items: list[SourceItem] = []
    splits: dict[str, str] = {}
    for _, name, sources in listed:
        wanted = None if config.classes is None else {c.lower() for c in config.classes}
        kept = [replace(it, dataset=name) for it in sources.items if wanted is None or it.label.lower() in wanted]
        split = assign_splits(
            {it.patient_id: it.label for it in kept},
            config.split,
            config.seed,
            _groups_of(name, names, groups),
            {it.video_id: it.patient_id for it in kept},
        )
        if multi:
            kept = [
                replace(it, video_id=f"{name}:{it.video_id}", patient_id=f"{name}:{it.patient_id}") for it in kept
            ]
            split = {f"{name}:{pid}": s for pid, s in split.items()}
        items += kept
        splits.update(split)
    return items, splits



def _frame_size(item: SourceItem, backend: str) -> tuple[int, int] | None:
    """``(width, height)`` of an item's frames, or None when it cannot be read (it fails on its own later)."""
    try:
        if item.still:
            from usvid.video.images import read_image

            height, width = read_image(item.path, grey=True).shape
            return width, height
        with open_video(item.path, backend) as reader:
            return reader.info.width, reader.info.height
    except Exception:  # noqa: BLE001 - a probe only: the item's own extraction reports what is wrong with it
        return None


def check_roi_fits(items: list[SourceItem], config: ExtractConfig) -> None:
    """Refuse a ``--roi`` that fits no video before anything is written (one that fits some fails the others).

    Stops at the first video it fits, so a good region costs one probe.
    """
    if config.region.roi is None:
        return
    sizes, first = [], None
    for item in items:
        size = _frame_size(item, config.backend)
        if size is None:
            continue
        try:
            fixed_scan_region(config.region.roi, *size)
            return
        except InputError as err:
            sizes.append(size)
            first = first or str(err)
    if first:
        found = ", ".join(sorted({f"{w}x{h}" for w, h in sizes}))
        raise ConfigError(f"{first}; it fits no video (frame sizes: {found}), nothing was written")
