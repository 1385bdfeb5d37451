"""Checks on where a command will write, made before any work starts.

Every command that writes calls one of these first, so a bad ``--out`` (an existing file where a folder is
needed, a folder where a file is needed, a read-only place, a path that is also an input) fails in one line
before minutes of work, and never replaces a user's input with an output.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from usvid.errors import InputError

StrPath = str | os.PathLike


def check_path_text(path: StrPath, option: str = "path") -> Path:
    """Refuse a path the OS cannot represent (a NUL byte), which would otherwise raise deep in the work."""
    text = os.fspath(path)
    if "\x00" in text:
        raise InputError(f"{option}: {text!r} contains a NUL byte; give a path without it")
    if not text:
        raise InputError(f"{option}: empty path")
    return Path(text)


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its nearest ancestor that exists (what a later ``mkdir -p`` would write into)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable_dir(folder: Path, option: str, shown: Path) -> None:
    """Prove we can create files in ``folder`` by creating one (os.access says yes to root on read-only mounts)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".usvid-write-check.", dir=folder)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise InputError(f"{option} {shown}: cannot write in {folder} ({reason}); choose a writable place") from None
    os.close(fd)
    os.unlink(probe)


def refuse_inputs(out: Path, inputs: Iterable[StrPath], option: str) -> None:
    """Refuse an output path that is one of the inputs: writing it would destroy what is being read."""
    for item in inputs:
        if item is None:
            continue
        item = check_path_text(item, "input")
        if _same_path(out, item):
            raise InputError(f"{option} {out}: is also an input ({item}); writing there would replace it, choose another path")


def check_output_file(path: StrPath, *, inputs: Iterable[StrPath] = (), option: str = "--out") -> Path:
    """Validate a file that a command will write: not a folder, not an input, in a writable place.

    The file need not exist; its missing parent folders will be created by the writer.
    """
    out = check_path_text(path, option)
    if out.is_dir():
        raise InputError(f"{option} {out}: is a folder; give a file path such as {out / 'out'}{out.suffix or ''}")
    refuse_inputs(out, inputs, option)
    parent = _nearest_existing(out.parent)
    if not parent.is_dir():
        raise InputError(f"{option} {out}: {parent} is a file, not a folder")
    _check_writable_dir(parent, option, out)
    return out


def check_output_dir(path: StrPath, *, inputs: Iterable[StrPath] = (), option: str = "--out") -> Path:
    """Validate a folder that a command will write into: not an existing file, not an input, writable."""
    out = check_path_text(path, option)
    if out.exists() and not out.is_dir():
        raise InputError(f"{option} {out}: is an existing file, not a folder; give a folder path")
    # An input file inside the output folder is fine (outputs get their own names); the folder itself is not.
    refuse_inputs(out, inputs, option)
    base = _nearest_existing(out)
    if not base.is_dir():
        raise InputError(f"{option} {out}: {base} is a file, not a folder")
    _check_writable_dir(base, option, out)
    return out
