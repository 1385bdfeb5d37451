from __future__ import annotations

import pytest

from usvid.errors import InputError, MissingDependencyError, did_you_mean, optional_import, require_file, unknown_name
from usvid.io import atomic_path, write_json_atomic


def test_did_you_mean_and_unknown_name():
    assert did_you_mean("lanet_r81", ["lanet_r18", "rmtl_r50"]) == " Did you mean 'lanet_r18'?"
    assert did_you_mean("zzz", ["lanet_r18"]) == ""
    err = unknown_name("model", "lanet_r81", ["lanet_r18", "rmtl_r50"])
    assert "unknown model 'lanet_r81'" in str(err) and "lanet_r18" in str(err)
    assert err.exit_code == 2


def test_require_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        require_file(tmp_path / "nope.mp4", "video")
    with pytest.raises(InputError, match="not a file"):
        require_file(tmp_path)


def test_optional_import_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"pip install 'usvid\[tensorrt\]'"):
        optional_import("surely_not_a_module_xyz", "tensorrt")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    write_json_atomic(target, {"a": 1})
    assert target.read_text().strip().startswith("{")


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import os

    target = tmp_path / "perm.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("x")
    mask = os.umask(0)
    os.umask(mask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~mask)


def test_cli_prints_messages_verbatim_not_as_markup(tmp_path):
    """Install hints (usvid[export]) and paths with brackets must reach the terminal as written."""
    import typer
    from typer.testing import CliRunner

    from usvid.cli.common import handle_errors

    app = typer.Typer()

    @app.command()
    @handle_errors
    def fail() -> None:
        optional_import("surely_not_a_module_xyz", "tensorrt")

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2
    assert "pip install 'usvid[tensorrt]'" in result.output

    from usvid.cli.app import app as usvid_app

    bracketed = tmp_path / "scan[1].mp4"
    result = CliRunner().invoke(usvid_app, ["extract", str(bracketed), str(tmp_path / "out")])
    assert result.exit_code == 2 and "scan[1].mp4" in result.output
