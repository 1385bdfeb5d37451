"""BUS-BRA folders: ``Images/bus_XXXX-{l,r,s}.png``, ``Masks/mask_XXXX-{l,r,s}.png`` and ``bus_data.csv``.

Each image is a one-frame "video"; its patient is the CSV's ``Case`` (``-l``/``-r`` are the two breasts of one
patient), its label the ``Pathology`` (benign/malignant). Boxes come from the masks, through the same code
path as BUSI's (:func:`usvid.data.busi.load_masks`). The CSV's ``BBOX`` and ``Width``/``Height`` are only
cross-checked at extraction (:func:`cross_check`): where they disagree with the mask or the PNG, the mask and
the PNG win and the video's record carries a warning (the published data has a few such faults).

``BBOX`` is MATLAB-style, ``[x_min+1, y_min+1, x_max-x_min, y_max-y_min]`` with inclusive 0-based pixel
extents, so the mask's exclusive-end box ``(x, y, w, h)`` corresponds to ``[x+1, y+1, w-1, h-1]``.
"""

from __future__ import annotations

from pathlib import Path

from usvid.boxes import Box
from usvid.data.items import Failure, SourceItem, SourceList
from usvid.data.manifest import read_csv_rows

BUSBRA_CSV = "bus_data.csv"
REQUIRED = ("ID", "Case", "Pathology")
META = {"Histology": "histology", "BIRADS": "birads", "Device": "device", "Side": "side"}


def is_busbra_folder(folder: Path) -> bool:
    return (folder / BUSBRA_CSV).is_file() and (folder / "Images").is_dir() and (folder / "Masks").is_dir()


def parse_bbox(text: str) -> Box:
    """``"[bx,by,bw,bh]"`` (MATLAB-style, see the module docstring) -> exclusive-end 0-based :class:`Box`."""
    parts = text.strip().strip("[]").split(",")
    values = [float(p) for p in parts]  # ValueError on junk
    if len(values) != 4 or values[2] < 0 or values[3] < 0:
        raise ValueError(text)
    bx, by, bw, bh = values
    return Box(bx - 1, by - 1, bw + 1, bh + 1)


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(float(text)) if text and text.strip() else None
    except ValueError:
        return None


def _item(folder: Path, row: dict[str, str], where: str) -> SourceItem | Failure:
    vid, case, label = (row[c].strip() for c in REQUIRED)
    label = label.lower()
    if not vid or not case or not label:
        return Failure(where, "'ID', 'Case' and 'Pathology' must not be empty; row skipped")
    image = folder / "Images" / f"{vid}.png"
    if not image.is_file():
        return Failure(where, f"image Images/{vid}.png listed but missing; row skipped")
    mask = folder / "Masks" / f"mask_{vid.removeprefix('bus_')}.png"
    if not mask.is_file():
        return Failure(where, f"mask Masks/{mask.name} of '{vid}' missing; row skipped")
    csv_box = None
    if (row.get("BBOX") or "").strip():
        try:
            csv_box = parse_bbox(row["BBOX"])
        except ValueError:
            return Failure(where, f"BBOX {row['BBOX']!r} is not [x,y,w,h]; row skipped")
    w, h = _int_or_none(row.get("Width")), _int_or_none(row.get("Height"))
    meta = {key: row[col].strip() for col, key in META.items() if (row.get(col) or "").strip()}
    return SourceItem(
        vid,
        case,
        label,
        image.resolve(),
        source=f"Images/{image.name}",
        still=True,
        mask_paths=(mask.resolve(),),
        annotated_masks=True,
        csv_box=csv_box,
        csv_size=(w, h) if w and h else None,
        meta=meta,
        where=where,
    )


def read_busbra(folder: Path) -> SourceList:
    """List the images of ``bus_data.csv`` (masks are read at extraction); a bad row fails only its image."""
    path = folder / BUSBRA_CSV
    items, failures = [], []
    rows = read_csv_rows(path, REQUIRED, hint="a BUS-BRA bus_data.csv has ID, Case, Pathology, ...")
    seen: dict[str, str] = {}
    named: set[str] = set()
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        vid = (row["ID"] or "").strip()
        named.add(f"{vid}.png")
        if vid in seen:
            failures.append(Failure(where, f"duplicate ID '{vid}' (also {seen[vid]}); row skipped"))
            continue
        got = _item(folder, {k: v or "" for k, v in row.items() if k is not None}, where)
        if isinstance(got, Failure):
            failures.append(got)
        else:
            seen[vid] = where
            items.append(got)
    for png in sorted((folder / "Images").glob("*.png")):
        if png.name not in named:
            failures.append(Failure(str(png), f"not listed in {BUSBRA_CSV}; skipped"))
    return SourceList("busbra", folder.resolve(), items, failures)


def cross_check(item: SourceItem, width: int, height: int, boxes: list[Box]) -> list[dict[str, str]]:
    """Warnings where the CSV disagrees with the PNG's size or the mask's box (the PNG and the mask win)."""
    notes = []
    where = item.where or str(item.path)
    if item.csv_size is not None and item.csv_size != (width, height):
        w, h = item.csv_size
        notes.append(
            {
                "code": "size_mismatch",
                "video_id": item.video_id,
                "file": where,
                "message": f"'{item.video_id}' Width/Height {w}x{h} but the PNG is {width}x{height}; "
                "the PNG is used",
            }
        )
    if item.csv_box is not None and boxes and [item.csv_box] != boxes:
        b, m = item.csv_box, boxes[0]
        notes.append(
            {
                "code": "bbox_mismatch",
                "video_id": item.video_id,
                "file": where,
                "message": f"'{item.video_id}' BBOX [{b.x + 1:g},{b.y + 1:g},{b.w - 1:g},{b.h - 1:g}] "
                f"disagrees with its mask's [{m.x + 1:g},{m.y + 1:g},{m.w - 1:g},{m.h - 1:g}]; the mask is used",
            }
        )
    return notes
