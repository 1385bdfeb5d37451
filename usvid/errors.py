"""One exception hierarchy for everything a user can get wrong.

The CLI turns any :class:`UsvidError` into a one-line message and exit code 2 (a user mistake) or 1
(a failure while doing the work), never a traceback. Messages name the file or value, the rule and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class UsvidError(Exception):
    """Base class of usvid's errors. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class InputError(UsvidError):
    """A bad argument, file or dataset given by the user."""

    exit_code = 2


class ConfigError(InputError):
    """An invalid or unknown configuration value."""


class MissingDependencyError(UsvidError):
    """An optional dependency (onnxruntime, tensorrt, pydicom, torchcodec, CUDA) is not available."""

    exit_code = 2


class ProcessingError(UsvidError):
    """Work on one item failed (a corrupt video, say); the caller may go on with the others."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_name(kind: str, value: str, choices: Iterable[str]) -> ConfigError:
    """A :class:`ConfigError` for an unknown name, listing the allowed ones and the closest match."""
    choices = sorted(choices)
    return ConfigError(f"unknown {kind} '{value}'.{did_you_mean(value, choices)} Choose one of: {', '.join(choices)}")


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise :class:`InputError` when it is not an existing file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} does not exist")
    if not path.is_file():
        raise InputError(f"{path}: {what} is not a file")
    return path


def optional_import(module: str, extra: str):
    """Import an optional dependency or raise :class:`MissingDependencyError` saying what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"'{module}' is not installed ({err}); install it with: pip install 'usvid[{extra}]'"
        ) from err
