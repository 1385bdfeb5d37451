"""Fault corpus: output paths checked before any work (usvid.outputs)."""

from __future__ import annotations

import os

import pytest

from usvid.errors import InputError
from usvid.outputs import check_output_dir, check_output_file, check_path_text


def test_nul_byte_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="NUL byte"):
        check_path_text(f"{tmp_path}/a\x00b", "--out")
    with pytest.raises(InputError, match="NUL byte"):
        check_output_dir(f"{tmp_path}/a\x00b")


def test_file_wanted_but_folder_given(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        check_output_file(tmp_path, option="--out")


def test_folder_wanted_but_file_given(tmp_path):
    existing = tmp_path / "report.txt"
    existing.write_text("mine")
    with pytest.raises(InputError, match="existing file"):
        check_output_dir(existing)
    assert existing.read_text() == "mine"


def test_output_that_is_an_input_is_refused(tmp_path):
    video = tmp_path / "a.mp4"
    video.write_bytes(b"not really a video")
    with pytest.raises(InputError, match="also an input"):
        check_output_file(video, inputs=[video], option="--record")
    # The same file reached by another spelling (relative path, symlink) is still the input.
    link = tmp_path / "link.mp4"
    link.symlink_to(video)
    with pytest.raises(InputError, match="also an input"):
        check_output_file(link, inputs=[video], option="--record")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(InputError, match="also an input"):
            check_output_file("a.mp4", inputs=[video])
    finally:
        os.chdir(cwd)
    with pytest.raises(InputError, match="also an input"):
        check_output_dir(tmp_path, inputs=[tmp_path])
    assert video.read_bytes() == b"not really a video"


def test_parent_that_is_a_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_file(blocker / "sub" / "out.onnx")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_dir(blocker / "sub")


def test_unwritable_place_is_found_by_probing(tmp_path, monkeypatch):
    """Root writes into chmod 0555 folders, so the probe (not os.access) is what must fail: simulate it."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(InputError, match=r"cannot write in .*Permission denied"):
        check_output_dir(tmp_path / "new")
    with pytest.raises(InputError, match=r"cannot write in .*Permission denied"):
        check_output_file(tmp_path / "model.onnx")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_read_only_folder_for_real(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(InputError, match="cannot write"):
            check_output_dir(locked / "run")
    finally:
        locked.chmod(0o755)


def test_good_paths_pass_and_leave_nothing_behind(tmp_path):
    assert check_output_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert check_output_file(tmp_path / "x" / "m.onnx") == tmp_path / "x" / "m.onnx"
    # Neither the folders nor a probe file were created: the check writes nothing that stays.
    assert list(tmp_path.iterdir()) == []
