"""Atomic file writes (a file appears complete under its final name or not at all) and file digests."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: reading it means setting it for a moment, which would race with files being
# created on other threads (extraction writes from several).
_UMASK = _read_umask()


def cache_root() -> Path:
    """usvid's own cache folder: ``$USVID_CACHE_DIR``, else ``~/.cache/usvid`` (TensorRT engines, the CPU path
    choices of ``backend="auto"`` and their exports live in subfolders)."""
    root = os.environ.get("USVID_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "usvid"


def file_mode() -> int:
    """The permissions an ordinary ``open()`` gives a new file (0o666 less the process umask)."""
    return 0o666 & ~_UMASK


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    A crash (even ``kill -9``) leaves at most a hidden ``.tmp`` file, never a half-written ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the permissions an ordinary open() would.
    os.chmod(tmp_path, file_mode())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


_CHUNK = 1 << 20


def file_digest(path: Path) -> dict:
    """``{"size", "sha256"}`` of a file's whole content."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": sha.hexdigest()}
