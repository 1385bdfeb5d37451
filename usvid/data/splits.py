"""Per-patient, class-stratified, deterministic train/val/test splits.

The unit of splitting is a patient; patients that share a near-duplicate group (``--groups``) are merged
into one unit first, so no patient and no group ever has frames in two splits. Within each class the
units are shuffled with a seed-derived generator (independent of input order and of the other classes)
and cut at the rounded cumulative fractions.

Per-class rounding alone can leave a split empty in a small set (six patients, three per class, at
50,25,25 round to 2/0/1 in each class: no val split). So every split with a non-zero fraction is then
given at least one unit whenever there are at least as many units as such splits (three units for
train/val/test): an empty split takes one unit from the split holding the most units (ties: train, val,
test), of the class with the most units there (ties: alphabetical), the last one of that class's shuffled
run. A store that needs no such move is split exactly as by the rounding rule.
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
    # runs[split][label]: that class's units in that split, in shuffled order.
    runs: dict[str, dict[str, list[str]]] = {name: {} for name in SPLITS}
    for label in sorted(by_label):
        roots = sorted(by_label[label])
        random.Random(f"usvid-split:{seed}:{label}").shuffle(roots)
        n = len(roots)
        cuts = [0] + [round(c * n) for c in cum]
        cuts[-1] = n
        for k, name in enumerate(SPLITS):
            runs[name][label] = roots[cuts[k] : cuts[k + 1]]
    _fill_empty_splits(runs, fractions)
    return {pid: name for name in SPLITS for roots in runs[name].values() for root in roots for pid in units[root]}


def _fill_empty_splits(runs: dict[str, dict[str, list[str]]], fractions: SplitFractions) -> None:
    """Give every split with a non-zero fraction one unit when there are enough units (module docstring rule)."""
    wanted = [name for name, f in zip(SPLITS, fractions.as_tuple(), strict=True) if f > 0]

    def size(name: str) -> int:
        return sum(len(r) for r in runs[name].values())

    if sum(size(name) for name in SPLITS) < len(wanted):
        return
    for name in wanted:
        if size(name):
            continue
        donor = max(SPLITS, key=lambda s: (size(s), -SPLITS.index(s)))
        label = min((lab for lab, r in runs[donor].items() if r), key=lambda lab: (-len(runs[donor][lab]), lab))
        runs[name].setdefault(label, []).append(runs[donor][label].pop())


#: Fractions (percent) tried, in order, by :func:`fractions_giving`.
ADVICE_PERCENTS = ((70, 15, 15), (60, 20, 20), (50, 25, 25), (34, 33, 33), (50, 50, 0), (50, 0, 50))


def fractions_giving(
    sources: Sequence[dict[str, str]], split: str, seed: int, current: SplitFractions | None = None
) -> SplitFractions | None:
    """Fractions under which ``split`` (and train, which training needs) get at least one patient.

    Tries ``current`` first, then :data:`ADVICE_PERCENTS`, running :func:`assign_splits` on each source's
    ``{patient_id: label}`` with ``seed`` as extraction does (each source on its own, without near-duplicate
    groups), so the answer is what a re-extraction gives, not an estimate. None when none of them does (a store
    of fewer than two patients).
    """
    # ``current`` as whole percentages, so that the fractions tried are exactly what ``--split`` TEXT gives.
    percents = ([[round(100 * f) for f in current.as_tuple()]] if current is not None else []) + list(ADVICE_PERCENTS)
    candidates = [SplitFractions.from_percent(p) for p in percents if sum(p) > 0]
    for fractions in candidates:
        got: Counter[str] = Counter()
        for patients in sources:
            got.update(assign_splits(patients, fractions, seed).values())
        if got[split] and got["train"]:
            return fractions
    return None


def percent_text(fractions: SplitFractions) -> str:
    """``--split`` text of ``fractions``: whole percentages such as ``70,15,15``."""
    return ",".join(f"{100 * f:.0f}" for f in fractions.as_tuple())


#: A split with fewer patients than this is warned about at extraction: figures measured on it are very uncertain.
FEW_PATIENTS = 10


def split_warnings(assigned: dict[str, str], labels: dict[str, str], fractions: SplitFractions) -> list[str]:
    """One line per split (with a non-zero fraction) that is empty, has few patients or lacks a class.

    Args:
        assigned: ``{patient_id: split}`` of the extracted videos' patients.
        labels: ``{patient_id: label}``; the classes are the labels present.
    """
    classes = sorted(set(labels.values()))
    lines = []
    for name, fraction in zip(SPLITS, fractions.as_tuple(), strict=True):
        members = [p for p, s in assigned.items() if s == name]
        if fraction <= 0:
            continue
        if not members:
            lines.append(f"split '{name}' is empty ({len(assigned)} patients at --split {percent_text(fractions)}): "
                         f"there is nothing to evaluate on it; extract more patients (at least 3 fill every split)")
            continue
        problems = []
        if len(members) < FEW_PATIENTS:
            problems.append(f"only {len(members)} patient{'s' if len(members) != 1 else ''} (fewer than "
                            f"{FEW_PATIENTS}: figures measured on it have very wide intervals)")
        missing = [c for c in classes if c not in {labels[p] for p in members}]
        if missing:
            problems.append(f"no {', '.join(repr(c) for c in missing)} patient (that class's figures and the AUC "
                            "are undefined on this split)")
        if problems:
            lines.append(f"split '{name}': " + "; ".join(problems))
    return lines
