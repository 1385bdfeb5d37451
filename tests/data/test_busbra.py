"""BUS-BRA folders and multi-source stores: recognised, boxes from masks, CSV faults reported, splits per source."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from usvid.boxes import Box
from tests.helpers.datasets import BUSBRA_SPECS, make_busbra, make_busi
from usvid.data.busbra import parse_bbox, read_busbra
from usvid.data.extract import ExtractConfig, extract
from usvid.data.sources import list_sources
from usvid.data.splits import SplitFractions
from usvid.data.store import FrameStore, Letterbox
from usvid.errors import ConfigError, InputError

pytestmark = pytest.mark.timeout(120)
SMALL = dict(size=64, batch_size=8, workers=1)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_bbox_is_matlab_style():
    # [x_min+1, y_min+1, x_max-x_min, y_max-y_min] -> 0-based, exclusive end: x 133..221 inclusive is w 89.
    assert parse_bbox("[134,142,88,50]") == Box(133, 141, 89, 51)
    with pytest.raises(ValueError):
        parse_bbox("[1,2,3]")


def test_busbra_folder_is_recognised_and_extracted(tmp_path):
    root = make_busbra(tmp_path / "busbra")
    listed = list_sources(root)
    assert listed.kind == "busbra" and not listed.failures
    assert {it.video_id: (it.patient_id, it.label) for it in listed.items} == {
        vid: (case, label) for vid, case, label, _ in BUSBRA_SPECS
    }
    summary = extract(root, tmp_path / "store", ExtractConfig(**SMALL))
    assert summary.ok and summary.extracted == 5
    store = FrameStore(tmp_path / "store")
    assert store.labels == ["benign", "malignant"]
    lb = Letterbox(83, 57, 64)
    frames = {f.video_id: f for f in store.frames}
    for vid, _, _, (x, y, w, h) in BUSBRA_SPECS:  # boxes from the masks, also where BBOX disagrees
        assert frames[vid].annotated and list(frames[vid].boxes) == [lb.box((x, y, x + w, y + h))]
        mask = np.zeros((57, 83), np.uint8)
        mask[y : y + h, x : x + w] = 1
        np.testing.assert_array_equal(store.mask_of(vid, 0), lb.mask(mask))
    splits = {}
    for f in store.frames:
        splits.setdefault(f.patient_id, set()).add(f.split)
    assert set(splits) == {"1", "2", "3", "4"} and all(len(s) == 1 for s in splits.values())
    # The CSV's faults are reported, not taken: the mask and the PNG win.
    assert [(Path(w.file).name, w.message.split("'")[1]) for w in summary.warnings] == [
        ("bus_data.csv:4", "bus_0002-s"),
        ("bus_data.csv:5", "bus_0003-s"),
    ]
    assert "BBOX [24,16,24,24] disagrees" in str(summary.warnings[0])
    assert "Width/Height 83x60 but the PNG is 83x57" in str(summary.warnings[1])
    meta = json.loads((tmp_path / "store" / "store.json").read_text())
    assert meta["warnings"] == {"bbox_mismatch": ["bus_0002-s"], "size_mismatch": ["bus_0003-s"]}
    video = {v.video_id: v for v in store.videos}["bus_0003-s"]
    assert video.dataset == "busbra" and video.meta["birads"] == "4" and video.meta["side"] == "single"
    # A resumed (here: finished) run still reports the warnings: they live in the videos' records.
    again = extract(root, tmp_path / "store", ExtractConfig(**SMALL))
    assert again.skipped == 5 and [str(w) for w in again.warnings] == [str(w) for w in summary.warnings]


def test_bad_busbra_listing(tmp_path):
    root = make_busbra(tmp_path / "busbra")
    (root / "Images" / "bus_0004-l.png").unlink()
    shutil.copy(root / "Images" / "bus_0001-l.png", root / "Images" / "bus_0099-l.png")
    listed = read_busbra(root)
    assert len(listed.items) == 4
    assert [f"{Path(f.file).name}: {f.message}" for f in listed.failures] == [
        "bus_data.csv:6: image Images/bus_0004-l.png listed but missing; row skipped",
        "bus_0099-l.png: not listed in bus_data.csv; skipped",
    ]
    (root / "bus_data.csv").write_text("ID,Case,Histology\nbus_0001-l,1,x\n")
    with pytest.raises(InputError, match=r"bus_data.csv: missing column\(s\) Pathology"):
        list_sources(root)


def _split_of(store: FrameStore) -> dict[str, str]:
    splits: dict[str, set[str]] = {}
    for f in store.frames:
        splits.setdefault(f.patient_id, set()).add(f.split)
    assert all(len(s) == 1 for s in splits.values()), splits  # no patient in two splits
    return {pid: s.pop() for pid, s in splits.items()}


def test_busi_and_busbra_in_one_store(tmp_path):
    busi, busbra = make_busi(tmp_path / "busi"), make_busbra(tmp_path / "busbra")
    # Bare ids name BUSI's images; "busbra:" ids name BUS-BRA's (patients 1 and 4, both benign). At 50/50 the
    # two benign units of each source would go to different splits if the groups were not honoured.
    groups = tmp_path / "groups.csv"
    groups.write_text(
        "group,image\n1,benign (1)\n1,benign (2)\n1,malignant (1)\n2,busbra:bus_0004-l\n2,busbra:bus_0001-r\n"
    )
    config = ExtractConfig(groups=groups, seed=1, split=SplitFractions(50, 50, 0), **SMALL)
    summary = extract([busi, busbra], tmp_path / "both", config)
    assert summary.ok and summary.extracted == 9 and len(summary.warnings) == 2
    store = FrameStore(tmp_path / "both")
    by_id = {v.video_id: v for v in store.videos}
    assert {v.dataset for v in store.videos} == {"busi", "busbra"}
    assert by_id["busi:benign (1)"].dataset == "busi" and by_id["busbra:bus_0001-l"].dataset == "busbra"
    assert by_id["busbra:bus_0001-r"].patient_id == "busbra:1" and by_id["busi:benign (1)"].patient_id == (
        "busi:benign (1)"
    )
    assert store.labels == ["benign", "malignant", "normal"]
    split = _split_of(store)
    assert split["busi:benign (1)"] == split["busi:benign (2)"] == split["busi:malignant (1)"]
    assert split["busbra:1"] == split["busbra:4"]
    # Each source is split on its own with the same seed: every patient is where its single-source store puts it.
    extract(busi, tmp_path / "busi_only", config)
    extract(busbra, tmp_path / "busbra_only", config)
    alone = {f"busi:{p}": s for p, s in _split_of(FrameStore(tmp_path / "busi_only")).items()}
    alone |= {f"busbra:{p}": s for p, s in _split_of(FrameStore(tmp_path / "busbra_only")).items()}
    assert split == alone
    assert json.loads((tmp_path / "both" / "store.json").read_text())["sources"] == [
        {"name": "busi", "kind": "busi"},
        {"name": "busbra", "kind": "busbra"},
    ]
    # Re-running resumes (nothing to do); another list of sources is another extraction.
    assert extract([busi, busbra], tmp_path / "both", config).skipped == 9
    with pytest.raises(InputError, match="other settings or source"):
        extract([busbra, busi], tmp_path / "both", config)


def test_classes_and_source_names(tmp_path):
    busi, busbra = make_busi(tmp_path / "busi"), make_busbra(tmp_path / "busbra")
    extract([busi, busbra], tmp_path / "store", ExtractConfig(classes=("benign", "malignant"), **SMALL))
    store = FrameStore(tmp_path / "store")
    assert store.labels == ["benign", "malignant"] and "busi:normal (1)" not in {v.video_id for v in store.videos}
    with pytest.raises(ConfigError, match="no source has class 'benin'. Did you mean 'benign'"):
        extract(busi, tmp_path / "x", ExtractConfig(classes=("benin",), **SMALL))
    twin = make_busbra(tmp_path / "other" / "busbra")
    with pytest.raises(InputError, match="second source named 'busbra'"):
        extract([busbra, twin], tmp_path / "y", ExtractConfig(**SMALL))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_cli_several_sources(tmp_path):
    from typer.testing import CliRunner
    from usvid.cli.app import app

    busi, busbra = make_busi(tmp_path / "busi"), make_busbra(tmp_path / "busbra")
    runner = CliRunner()
    args = ["--size", "64", "--classes", "benign,malignant", "--groups", str(busi / "near_duplicates.csv")]
    ok = runner.invoke(app, ["extract", str(busi), str(busbra), str(tmp_path / "s"), *args])
    assert ok.exit_code == 0, ok.output
    assert "warning:" in ok.output and "bus_0002-s" in ok.output and "failed 0" in ok.output
    rows = _rows(tmp_path / "s" / "videos.csv")
    assert len(rows) == 8 and {r["dataset"] for r in rows} == {"busi", "busbra"}
    one = runner.invoke(app, ["extract", str(busi)])
    assert one.exit_code == 2 and "needs SRC [SRC ...] OUT" in one.output
    bad = runner.invoke(app, ["extract", str(busi), str(tmp_path / "t"), "--classes", "benin"])
    assert bad.exit_code == 2 and "Did you mean 'benign'" in bad.output and "Traceback" not in bad.output


@pytest.mark.realdata
def test_real_busbra(shared_data, tmp_path):
    real = shared_data / "busbra"
    if not real.is_dir():
        pytest.skip(f"no BUS-BRA at {real}")
    listed = list_sources(real)
    assert listed.kind == "busbra" and not listed.failures and len(listed.items) == 1584
    assert len({it.patient_id for it in listed.items}) == 904
    labels = [it.label for it in listed.items]
    assert (labels.count("benign"), labels.count("malignant")) == (1075, 509)
    # Extract a few, with the known faults: bus_0845-s's BBOX, bus_0857-r's Height.
    ids = ["bus_0002-l", "bus_0002-r", "bus_0845-s", "bus_0857-r"]
    sub = tmp_path / "busbra"
    (sub / "Images").mkdir(parents=True)
    (sub / "Masks").mkdir()
    lines = (real / "bus_data.csv").read_text().splitlines()
    (sub / "bus_data.csv").write_text("\n".join([lines[0], *(l for l in lines if l.split(",")[0] in ids)]) + "\n")
    for vid in ids:
        shutil.copy(real / "Images" / f"{vid}.png", sub / "Images")
        shutil.copy(real / "Masks" / f"mask_{vid[4:]}.png", sub / "Masks")
    summary = extract(sub, tmp_path / "store", ExtractConfig(size=96, batch_size=8, workers=1))
    assert summary.ok and summary.extracted == 4
    assert json.loads((tmp_path / "store" / "store.json").read_text())["warnings"] == {
        "bbox_mismatch": ["bus_0845-s"],
        "size_mismatch": ["bus_0857-r"],
    }
    assert _split_of(FrameStore(tmp_path / "store"))["2"]  # both breasts of patient 2 in one split


def test_each_source_is_split_as_if_alone():
    from usvid.data.extract.plan import plan_items
    from usvid.data.sources import SourceItem, SourceList

    def source(name: str, n: int) -> tuple[Path, str, SourceList]:
        items = [
            SourceItem(f"v{i}", f"p{i // 2}", ("benign", "malignant")[i % 3 == 0], Path(f"/x/{i}.png"), f"{i}.png")
            for i in range(n)
        ]
        return Path(f"/x/{name}"), name, SourceList("busi", Path("/x"), items, [])

    a, b = source("a", 60), source("b", 40)
    config = ExtractConfig(seed=3)
    items, both = plan_items([a, b], config, [{"v0", "v7"}])
    assert len(items) == 100 and len({it.patient_id for it in items}) == 50
    alone = {f"a:{p}": s for p, s in plan_items([a], config, [{"v0", "v7"}])[1].items()}
    alone |= {f"b:{p}": s for p, s in plan_items([b], config, [{"v0", "v7"}])[1].items()}
    assert both == alone and set(both.values()) == {"train", "val", "test"}
    assert both["a:p0"] == both["a:p3"] and both["b:p0"] == both["b:p3"]  # bare ids: a group in every source
