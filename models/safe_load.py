"""Reading PyTorch files safely: ``torch.load(weights_only=True)`` with one-line errors, and a finite check.

Every weights file usvid reads (checkpoints, ``--pretrained`` state dicts) goes through :func:`load_weights_only`,
so a foreign pickle, a damaged zip container or a truncated file is refused in one line that names the file,
never with PyTorch's multi-paragraph text (which advises ``weights_only=False``: usvid never does that).
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from usvid.errors import InputError

#: First bytes of a zip archive: every file ``torch.save`` has written since PyTorch 1.6.
ZIP_MAGIC = b"PK\x03\x04"

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_OPERAND = re.compile(r"Unsupported operand (\d+)")


def _first_sentence(text: str, limit: int = 160) -> str:
    """PyTorch's first sentence of an error (the rest is advice), on one line."""
    line = " ".join(text.split())
    line = line.split(". ", 1)[0].rstrip(".")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe_load_error(path: Path | str, err: BaseException, what: str = "usvid checkpoint") -> InputError:
    """One-line :class:`InputError` for a ``torch.load(weights_only=True)`` failure on ``path``."""
    if isinstance(err, pickle.UnpicklingError) or "Weights only load failed" in str(err):
        found = _GLOBAL.search(str(err))
        if found:
            detail = f"it holds the Python object {found.group(1)}, not only tensors and plain containers"
        else:
            operand = _OPERAND.search(str(err))
            detail = "its pickle is damaged or foreign" + (f" (opcode {operand.group(1)})" if operand else "")
        return InputError(
            f"{path}: not a {what}, or damaged: {detail}; usvid reads only tensors and plain containers and will "
            "not unpickle anything else (unpickling can run code)"
        )
    if isinstance(err, EOFError):
        return InputError(f"{path}: corrupted: the file ends early (truncated or empty)")
    detail = _first_sentence(str(err)) or type(err).__name__
    return InputError(f"{path}: cannot read as a {what}: corrupted or not a PyTorch file "
                      f"({type(err).__name__}: {detail})")


def load_weights_only(path: Path | str, *, what: str = "usvid checkpoint", map_location: str | torch.device = "cpu",
                      require_zip: bool = True, from_bytes: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` whose every failure is a one-line :class:`InputError`.

    ``what`` names the expected kind of file in messages. ``require_zip``: refuse files that are not zip archives
    (usvid's checkpoints always are) before unpickling. ``from_bytes``: read the file into memory first (some
    legacy-format files only load from a buffer).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(ZIP_MAGIC))
    except OSError as err:
        raise InputError(f"{path}: cannot read it ({err.strerror or type(err).__name__})") from None
    if not head:
        raise InputError(f"{path}: corrupted: the file is empty (0 bytes)")
    if require_zip and head != ZIP_MAGIC:
        raise InputError(
            f"{path}: not a {what}, or damaged: not a PyTorch zip archive (it starts with {head.hex(' ')}, "
            "not 50 4b 03 04); usvid will not unpickle other files"
        )
    try:
        source = io.BytesIO(path.read_bytes()) if from_bytes else path
        return torch.load(source, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, UnicodeDecodeError, EOFError, ...
        raise describe_load_error(path, err, what) from None


def non_finite_tensors(tensors: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """``(name, non-finite count, numel)`` of each floating-point tensor in ``tensors`` holding NaN or inf."""
    bad = []
    for name, value in tensors.items():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            count = int((~torch.isfinite(value)).sum())
            if count:
                bad.append((name, count, value.numel()))
    return bad


def require_finite(tensors: Mapping[str, Any], where: Path | str) -> None:
    """Refuse weights holding NaN or inf: such a model predicts garbage (or one class) on every frame."""
    bad = non_finite_tensors(tensors)
    if not bad:
        return
    name, count, numel = bad[0]
    more = f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else ""
    raise InputError(
        f"{where}: corrupted: weights hold NaN or infinite values ({name}: {count} of {numel}{more}); "
        "a diverged or damaged model cannot predict, use an earlier checkpoint or retrain"
    )
