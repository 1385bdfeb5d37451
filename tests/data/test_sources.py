"""One answer to "what does this path mean": extract, predict and stream read a source the same way."""

from __future__ import annotations

import logging

import pytest

from usvid.data.sources import list_sources, video_kind
from usvid.errors import InputError
from usvid.inference.predict import collect_sources
from usvid.streaming.sources import classify_source
from usvid.video.testvideos import write_frame_folder, write_test_video


def _scan_folder(root):
    """Two videos, a frame folder, a nested video, hidden things and a stray text file."""
    write_test_video(root / "b.mp4", num_frames=2)
    write_test_video(root / "a.mkv", num_frames=2)
    write_frame_folder(root / "frames", num_frames=2)
    write_test_video(root / "day2" / "a.mp4", num_frames=2)
    write_test_video(root / ".hidden.mp4", num_frames=2)
    write_test_video(root / ".cache" / "c.mp4", num_frames=2)
    (root / "notes.txt").write_text("not a video")
    return root


def test_extract_and_predict_see_the_same_videos_in_a_folder(tmp_path, caplog):
    root = _scan_folder(tmp_path / "scans")
    with caplog.at_level(logging.WARNING):
        listing = list_sources(root)
    assert listing.kind == "folder" and not listing.failures
    assert [i.video_id for i in listing.items] == ["a", "b", "day2_a", "frames"]
    assert [i.source for i in listing.items] == ["a.mkv", "b.mp4", "day2/a.mp4", "frames"]
    assert [str(w.file) for w in listing.warnings] == [str(root / "notes.txt")]
    assert "notes.txt" in caplog.text and "ignored" in caplog.text
    predicted = collect_sources(root)
    assert [(s.name, s.path) for s in predicted] == [(i.video_id, i.path) for i in listing.items]
    assert all(s.label is None for s in predicted)


def test_same_stem_gets_a_distinct_name(tmp_path):
    write_test_video(tmp_path / "a.mp4", num_frames=2)
    write_test_video(tmp_path / "a.mkv", num_frames=2)
    assert [s.name for s in collect_sources(tmp_path)] == ["a", "a_2"]


def test_single_video_frame_folder_and_glob(tmp_path):
    video = write_test_video(tmp_path / "one.mp4", num_frames=2)
    frames = write_frame_folder(tmp_path / "f", num_frames=2)
    assert [i.video_id for i in list_sources(video).items] == ["one"]
    assert [i.video_id for i in list_sources(frames).items] == ["f"] and list_sources(frames).kind == "video"
    write_test_video(tmp_path / "two.mp4", num_frames=2)
    globbed = list_sources(str(tmp_path / "*.mp4"))
    assert globbed.kind == "glob" and [i.video_id for i in globbed.items] == ["one", "two"]
    assert [s.name for s in collect_sources(str(tmp_path / "*.mp4"))] == ["one", "two"]
    assert video_kind(video) == "file" and video_kind(frames) == "folder" and video_kind(tmp_path) is None


def test_a_folder_without_videos_is_one_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for read in (list_sources, collect_sources):
        with pytest.raises(InputError, match="no videos here"):
            read(tmp_path)
    with pytest.raises(InputError, match="no such file or folder"):
        list_sources(tmp_path / "missing")
    with pytest.raises(InputError, match="no videos match"):
        list_sources(str(tmp_path / "*.mp4"))


def test_stream_resolves_files_through_the_same_rules(tmp_path):
    root = _scan_folder(tmp_path / "scans")
    assert classify_source(str(root / "frames")) == "folder"
    assert classify_source(str(root / "b.mp4")) == "file"
    with pytest.raises(InputError, match=r"a stream plays one video: give one video file such as .*a\.mkv"):
        classify_source(str(root))
