"""Per-patient stratified deterministic splits."""

from __future__ import annotations

from collections import Counter

import pytest

from usvid.data.splits import SplitFractions, assign_splits, read_groups
from usvid.errors import ConfigError, InputError


def _patients(n_benign=40, n_malignant=20) -> dict[str, str]:
    out = {f"b{i}": "benign" for i in range(n_benign)}
    out.update({f"m{i}": "malignant" for i in range(n_malignant)})
    return out


def test_deterministic_stratified_and_complete():
    patients = _patients()
    a = assign_splits(patients, SplitFractions(), seed=3)
    b = assign_splits(dict(reversed(list(patients.items()))), SplitFractions(), seed=3)
    assert a == b  # independent of input order
    assert set(a) == set(patients) and set(a.values()) == {"train", "val", "test"}
    for label, n in (("benign", 40), ("malignant", 20)):
        counts = Counter(s for p, s in a.items() if patients[p] == label)
        assert counts == {
            "train": round(0.7 * n),
            "val": round(0.85 * n) - round(0.7 * n),
            "test": n - round(0.85 * n),
        }
    c = assign_splits(patients, SplitFractions(), seed=4)
    assert c != a and Counter(c.values()) == Counter(a.values())


def test_groups_stay_in_one_split_even_across_labels():
    patients = _patients(30, 30)
    groups = [{"b1", "b2", "b3"}, {"b4", "m4"}, {"m7", "m8", "unknown-id"}]
    for seed in range(10):
        out = assign_splits(patients, SplitFractions(), seed=seed, groups=groups)
        for g in groups:
            assert len({out[p] for p in g if p in out}) == 1


def test_groups_of_video_ids_map_to_patients():
    patients = {"p1": "a", "p2": "a", "p3": "a", "p4": "a"}
    patient_of = {"v1": "p1", "v2": "p2", "v3": "p3", "v4": "p4"}
    for seed in range(10):
        out = assign_splits(
            patients, SplitFractions(50, 50, 0), seed=seed, groups=[{"v1", "v4"}], patient_of=patient_of
        )
        assert out["p1"] == out["p4"]


def test_fractions_from_percent_and_bad_values():
    assert SplitFractions.from_percent([70, 15, 15]).as_tuple() == pytest.approx((0.7, 0.15, 0.15))
    assert SplitFractions.from_percent([8, 1, 1]).as_tuple() == pytest.approx((0.8, 0.1, 0.1))
    with pytest.raises(ConfigError, match="three numbers"):
        SplitFractions.from_percent([80, 20])
    with pytest.raises(ConfigError, match=">= 0"):
        SplitFractions.from_percent([80, -5, 25])
    only_train = assign_splits(_patients(5, 5), SplitFractions.from_percent([100, 0, 0]), seed=0)
    assert set(only_train.values()) == {"train"}


def test_read_groups(tmp_path):
    path = tmp_path / "near_duplicates.csv"
    path.write_text(
        "group,class,image\n1,benign,benign (1)\n1,benign,benign (318)\n2,malignant,malignant (3).png\n"
    )
    assert read_groups(path) == [{"benign (1)", "benign (318)"}, {"malignant (3)"}]
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="needs columns 'group' and 'image'"):
        read_groups(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="not found"):
        read_groups(tmp_path / "missing.csv")


def test_real_busi_groups_file(shared_data):
    groups = read_groups(shared_data / "busi" / "near_duplicates.csv")
    assert len(groups) == 131 and {"benign (433)", "malignant (145)"} in groups
