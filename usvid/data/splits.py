"""Per-patient, class-stratified, deterministic train/val/test splits.

The unit of splitting is a patient; patients that share a near-duplicate group (``--groups``) are merged
into one unit first, so no patient and no group ever has frames in two splits. Within each class the
units are shuffled with a seed-derived generator (independent of input order and of the other classes)
and cut at the rounded cumulative fractions.
"""

from __future__ import annotations

import csv
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from usvid.errors import ConfigError, InputError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitFractions:
    """Fractions of patients per split; given as percentages (``70,15,15``), normalised to sum 1."""

    train: float = 0.70
    val: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        values = (self.train, self.val, self.test)
        if any(v < 0 for v in values) or sum(values) <= 0:
            raise ConfigError(f"--split {values}: fractions must be >= 0 and not all 0, such as 70,15,15")

    @classmethod
    def from_percent(cls, values: Sequence[float]) -> SplitFractions:
        if len(values) != 3:
            raise ConfigError(
                f"--split needs three numbers (train,val,test) such as 70,15,15, got {list(values)}"
            )
        if any(v < 0 for v in values) or sum(values) <= 0:
            raise ConfigError(
                f"--split {','.join(str(v) for v in values)}: values must be >= 0 and not all 0"
            )
        total = float(sum(values))
        return cls(*(v / total for v in values))

    def as_tuple(self) -> tuple[float, float, float]:
        total = self.train + self.val + self.test
        return (self.train / total, self.val / total, self.test / total)


def read_groups(path: str | Path) -> list[set[str]]:
    """Read a near-duplicate list: a CSV with columns ``group`` and ``image`` (BUSI's ``near_duplicates.csv``).

    ``image`` holds a video id (for BUSI the image name without extension, e.g. ``benign (1)``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: groups file not found")
    try:
        return _read_groups(path)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None


def _read_groups(path: Path) -> list[set[str]]:
    # utf-8-sig: a CSV saved by a spreadsheet starts with a byte-order mark that would hide the 'group' column.
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = cols
        member_col = "image" if "image" in cols else "video_id" if "video_id" in cols else None
        if "group" not in cols or member_col is None:
            raise InputError(
                f"{path}: needs columns 'group' and 'image' (or 'video_id'), found {', '.join(cols)}"
            )
        groups: dict[str, set[str]] = defaultdict(set)
        for line, row in enumerate(reader, start=2):
            gid, member = (row["group"] or "").strip(), (row[member_col] or "").strip()
            if not gid or not member:
                raise InputError(f"{path}:{line}: 'group' and '{member_col}' must not be empty")
            groups[gid].add(Path(member).stem if Path(member).suffix.lower() in (".png", ".jpg") else member)
    return [groups[g] for g in sorted(groups)]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def assign_splits(
    patients: dict[str, str],
    fractions: SplitFractions,
    seed: int,
    groups: Iterable[set[str]] = (),
    patient_of: dict[str, str] | None = None,
) -> dict[str, str]:
    """Map each patient to ``train``/``val``/``test``.

    Args:
        patients: ``{patient_id: label}``.
        groups: sets of ids kept in one split; ids are video ids translated by ``patient_of``
            (``{video_id: patient_id}``) or patient ids when ``patient_of`` is None. Unknown ids are ignored.
    """
    uf = _UnionFind()
    for pid in patients:
        uf.find(pid)
    for group in groups:
        members = [(patient_of or {}).get(m, m) for m in group]
        members = [m for m in members if m in patients]
        for a, b in itertools.pairwise(members):
            uf.union(a, b)
    units: dict[str, list[str]] = defaultdict(list)
    for pid in patients:
        units[uf.find(pid)].append(pid)
    by_label: dict[str, list[str]] = defaultdict(list)
    for root, members in units.items():
        # A mixed-label group is stratified under its most common label (ties: alphabetical).
        counts = Counter(patients[m] for m in members)
        label = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        by_label[label].append(root)
    cum = []
    total = 0.0
    for f in fractions.as_tuple():
        total += f
        cum.append(total)
    out: dict[str, str] = {}
    for label in sorted(by_label):
        roots = sorted(by_label[label])
        random.Random(f"usvid-split:{seed}:{label}").shuffle(roots)
        n = len(roots)
        cuts = [0] + [round(c * n) for c in cum]
        cuts[-1] = n
        for k, name in enumerate(SPLITS):
            for root in roots[cuts[k] : cuts[k + 1]]:
                for pid in units[root]:
                    out[pid] = name
    return out
