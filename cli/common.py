"""Shared CLI plumbing: turning library errors into one-line messages, and small option parsers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from usvid.errors import InputError, UsvidError

console = Console(stderr=True)
F = TypeVar("F", bound=Callable)


def handle_errors(fn: F) -> F:
    """Print a :class:`UsvidError` as one red line and exit with its code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UsvidError as err:
            # escape: messages carry install hints like usvid[export] and paths, not Rich markup.
            console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(err.exit_code) from None
        except OSError as err:
            # The environment refused (disk full, permission, read-only mount) after the up-front checks passed:
            # still one line that names the file, not a traceback.
            where = f"{err.filename}: " if err.filename else ""
            console.print(f"[bold red]error:[/] {escape(where + (err.strerror or str(err)))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``854x500``) into ``(width, height)``, both positive."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"{option}: expected WIDTHxHEIGHT such as 854x500, got '{text}'") from None
    if w <= 0 or h <= 0:
        raise InputError(f"{option}: width and height must be positive, got '{text}'")
    return w, h


def parse_ints(text: str, count: int, option: str, example: str) -> tuple[int, ...]:
    """Parse ``count`` comma-separated integers (e.g. ``--roi x,y,w,h``)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise InputError(f"{option}: expected {count} comma-separated whole numbers such as {example}, got '{text}'")
    return values
