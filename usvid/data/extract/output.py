"""The store's shared files: ``extract.json`` (settings, checked on a re-run), ``videos.csv``, ``frames.csv``, ``store.json``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from usvid.data.extract.config import ExtractConfig
from usvid.data.sources import SourceItem, SourceList
from usvid.data.splits import SPLITS
from usvid.data.store import (
    FRAME_COLUMNS,
    RESIZE_RULE,
    STORE_FORMAT,
    STORE_JSON,
    STORE_VERSION,
    VIDEO_COLUMNS,
)
from usvid.errors import InputError
from usvid.io import write_json_atomic, write_text_atomic


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        write_text_atomic(path, text)


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def prepare_out(out: Path, listed: list[tuple[Path, str, SourceList]], config: ExtractConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if len(listed) == 1:
        settings = {"format": STORE_FORMAT, "source": str(listed[0][0].resolve()), "config": config.fingerprint()}
    else:
        sources = [{"name": name, "path": str(path.resolve())} for path, name, _ in listed]
        settings = {"format": STORE_FORMAT, "sources": sources, "config": config.fingerprint()}
    path = out / "extract.json"
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = None
        if previous != settings:
            raise InputError(
                f"{out}: already holds an extraction with other settings or source ({path}); "
                "use a new output folder or delete this one"
            )
    else:
        if any(out.iterdir()):
            raise InputError(
                f"{out}: folder is not empty and is not a usvid store; choose an empty or new folder"
            )
        write_json_atomic(path, settings)
    # Temporary files a killed run left: only the names usvid's own writers give them.
    for sub in ("frames", "masks", "records"):
        for stale in (out / sub).glob(".*.tmp") if (out / sub).is_dir() else ():
            stale.unlink(missing_ok=True)
    for name in ("videos.csv", "frames.csv", STORE_JSON, "extract.json"):
        for stale in out.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)



def write_store_files(
    out: Path,
    records: list[dict],
    items: list[SourceItem],
    listed: list[tuple[Path, str, SourceList]],
    config: ExtractConfig,
    warnings: list[dict],
    small_splits: Sequence[str] = (),
) -> None:
    _write_if_changed(out / "videos.csv", _csv_text(VIDEO_COLUMNS, [r["video"] for r in records]))
    _write_if_changed(out / "frames.csv", _csv_text(FRAME_COLUMNS, [f for r in records for f in r["frames"]]))
    meta = {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "size": config.size,
        "labels": sorted({it.label for it in items}),
        "splits": list(SPLITS),
        "resize": RESIZE_RULE,
        "grey": "full-range luma (BT.601), uint8",
        "source_kind": "+".join(listing.kind for _, _, listing in listed),
        "sources": [{"name": name, "kind": listing.kind} for _, name, listing in listed],
        "config": config.fingerprint(),
    }
    if warnings:
        codes: dict[str, list[str]] = {}
        for w in warnings:
            codes.setdefault(w["code"], []).append(w["video_id"])
        meta["warnings"] = codes
    if small_splits:
        meta["split_warnings"] = list(small_splits)
    _write_if_changed(out / STORE_JSON, json.dumps(meta, indent=2) + "\n")
