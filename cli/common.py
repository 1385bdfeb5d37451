"""Shared CLI plumbing: turning library errors into one-line messages, and small option parsers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

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


MODEL_HELP = "Checkpoint (.pt), ONNX (.onnx), TensorRT engine, or a shipped model's name (see `usvid models`)."
#: ``show_default`` of ``--model`` where it is optional (usvid.shipped.DEFAULT_MODEL, spelt out: importing
#: usvid.shipped here would slow every command's start; tests/packaging checks the two agree).
MODEL_DEFAULT = "lanet-effl0-bus (shipped)"
#: Help of the smoothing options, one text for predict and stream.
SMOOTHING_HELP = ("Temporal smoothing (EMA in video time) of probabilities and box; off: every frame's result is "
                  "the model's own.")
SMOOTHING_TAU_HELP = "Time constant of --smoothing, seconds of video time."
DEVICE_HELP = "auto (CUDA when present, else the CPU), cpu, cuda or cuda:N."


def model_or_default(model: str | None) -> str:
    """``--model`` as given, or the shipped default model, said in one line."""
    if model is not None:
        return model
    from usvid.shipped import DEFAULT_MODEL, get_shipped

    console.print(f"no --model given: using the shipped model {escape(get_shipped(DEFAULT_MODEL).describe())}")
    return DEFAULT_MODEL


def next_step(text: str) -> None:
    """The closing line of a command: what to run next, so the pipeline reads from one command to the next."""
    console.print(f"[bold]next:[/] {escape(text)}", highlight=False, soft_wrap=True)


# --- help text: one place decides how every command's options read in --help -------------------------------
# typer (0.29) prints each option's value type (`<bool>`, `<int>`) and wraps required arguments in `{}`; a flag
# then reads as if it took a value, and an option whose default is None shows no default at all. These
# subclasses fix that once for all commands. typer builds its parameters itself from the signature and has no
# hook for their class, so the command swaps the class of the parameters it is given (same layout, only help
# rendering is overridden; parsing is untouched). get_params, not __init__: --help and the completion options join
# the parameters there.

# Upper-case value names, click's convention (typer's own are `<int>`, `<str>`, ...).
_VALUE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH", "bool": "BOOLEAN"}


class _HelpOption(TyperOption):
    def display_type_rich(self, ctx):
        if self.is_flag:
            return None  # a flag takes no value
        if self.metavar is not None:
            return self.metavar
        label = str(super().display_type_rich(ctx)).strip("<>")
        return _VALUE_NAMES.get(label.lower(), label.upper())

    def _get_default_string(self, *, ctx, show_default_is_str, default_value):
        if show_default_is_str:
            return str(self.show_default)  # typer would print "(auto)"
        if self.is_eager:
            return ""  # --help, --version: actions, not settings
        if self.is_bool_flag and not self.secondary_opts:
            return "on" if default_value else "off"
        return super()._get_default_string(ctx=ctx, show_default_is_str=show_default_is_str,
                                           default_value=default_value)


class _HelpArgument(TyperArgument):
    @property
    def display_name_raw(self) -> str:
        return self.metavar if self.metavar is not None else self.name.upper()

    def display_type_rich(self, ctx):
        return None  # the metavar already says what the argument is

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        if self.metavar is None and self.nargs != 1:
            name += "..."
        return name if self.required else f"[{name}]"


def _plain_help(params) -> None:
    for param in params or ():
        if type(param) is TyperOption:
            param.__class__ = _HelpOption
        elif type(param) is TyperArgument:
            param.__class__ = _HelpArgument


class UsvidCommand(TyperCommand):
    """A usvid command: flags shown as flags, upper-case value names, every option's default in its help."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        _plain_help(params)
        return params


class UsvidGroup(TyperGroup):
    """The ``usvid`` group: its own options read like the commands' (see :class:`UsvidCommand`)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        _plain_help(params)
        return params
