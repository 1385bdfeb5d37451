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


def _sizes(out: dict[str, str]) -> Counter:
    return Counter(out.values())


def test_six_patients_at_50_25_25_keep_a_val_split():
    # per-class rounding alone gives 2/0/1 in each class: no val split at all
    patients = _patients(3, 3)
    for seed in range(20):
        out = assign_splits(patients, SplitFractions.from_percent([50, 25, 25]), seed=seed)
        assert _sizes(out) == {"train": 3, "val": 1, "test": 2}
        # the unit moved into val came from train, so train still holds both classes
        assert {patients[p] for p, s in out.items() if s == "train"} == {"benign", "malignant"}


@pytest.mark.parametrize("n_benign,n_malignant", [(2, 1), (1, 2), (3, 0), (2, 2), (4, 0), (3, 2), (5, 0)])
def test_three_to_five_patients_get_every_split(n_benign, n_malignant):
    patients = _patients(n_benign, n_malignant)
    for percents in ([70, 15, 15], [50, 25, 25], [80, 10, 10], [90, 5, 5]):
        out = assign_splits(patients, SplitFractions.from_percent(percents), seed=0)
        sizes = _sizes(out)
        assert set(out) == set(patients) and all(sizes[s] >= 1 for s in ("train", "val", "test")), (percents, sizes)


def test_unchanged_when_rounding_leaves_no_split_empty():
    # the fill rule moves nothing in a store whose splits are all non-empty (the shipped model's splits stay)
    patients = _patients(11, 7)
    out = assign_splits(patients, SplitFractions(), seed=5)
    for label, n in (("benign", 11), ("malignant", 7)):
        counts = Counter(s for p, s in out.items() if patients[p] == label)
        assert counts == {"train": round(0.7 * n), "val": round(0.85 * n) - round(0.7 * n),
                          "test": n - round(0.85 * n)}


def test_property_val_and_test_non_empty_from_three_units():
    import random

    rng = random.Random(7)
    for trial in range(400):
        n_benign, n_malignant = rng.randint(0, 12), rng.randint(0, 6)
        patients = _patients(n_benign, n_malignant)
        percents = [rng.choice([0, 1, 5, 30, 70, 100]), rng.choice([1, 5, 15, 25]), rng.choice([0, 1, 10, 15, 50])]
        ids = sorted(patients)
        groups = [set(rng.sample(ids, min(len(ids), 2)))] if ids and rng.random() < 0.5 else []
        out = assign_splits(patients, SplitFractions.from_percent(percents), seed=trial, groups=groups)
        assert set(out) == set(patients)
        for g in groups:
            assert len({out[p] for p in g}) == 1
        units = len(patients) - (len(groups[0]) - 1 if groups else 0)
        wanted = [s for s, p in zip(("train", "val", "test"), percents, strict=True) if p > 0]
        sizes = _sizes(out)
        if units >= len(wanted):
            assert all(sizes[s] >= 1 for s in wanted), (percents, n_benign, n_malignant, groups, sizes)
        assert all(s in wanted for s in sizes), (percents, sizes)  # a 0% split never gets a patient


def test_fractions_giving_is_what_a_resplit_gives():
    from usvid.data.splits import fractions_giving, percent_text

    six = _patients(3, 3)
    # a store made at 100,0,0 has no test split; the advice gives it patients when split the same way
    advice = fractions_giving([six], "test", seed=0, current=SplitFractions.from_percent([100, 0, 0]))
    assert advice is not None and percent_text(advice) == "70,15,15"
    resplit = assign_splits(six, SplitFractions.from_percent([int(v) for v in percent_text(advice).split(",")]), 0)
    assert _sizes(resplit)["test"] >= 1
    # two patients: only a two-way split gives 'val' one of them
    two = _patients(1, 1)
    advice = fractions_giving([two], "val", seed=0)
    assert advice is not None and _sizes(assign_splits(two, advice, 0))["val"] == 1
    assert fractions_giving([_patients(1, 0)], "test", seed=0) is None
