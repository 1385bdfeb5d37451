"""Shared CLI plumbing: one-line errors, small option parsers, and ``--config`` files under typed flags."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from usvid.errors import ConfigError, InputError, UsvidError

console = Console(stderr=True)
F = TypeVar("F", bound=Callable)
T = TypeVar("T")


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


# --- --config FILE: the file's settings, then the flags typed on the command line over them ----------------

#: Where one option goes in its command's config: a dotted key (``"region.roi"``), or ``(key, parse)`` where
#: ``parse`` turns the option's value into the config's; ``(("width", "height"), parse)`` fills several keys
#: from the tuple ``parse`` returns.
Option = str | tuple[str | tuple[str, ...], Callable[[Any], Any]]
#: Help of ``--config``; ``{fields}`` names the config dataclass and a nested key or two.
CONFIG_HELP = "JSON/YAML/TOML file of {fields} (README: Config files); flags typed go over it."


def given_options(ctx: typer.Context) -> set[str]:
    """The options typed on the command line (the others keep the --config file's values)."""
    # By name: typer ships its own copy of click, whose enum is not click.core's.
    return {name for name in ctx.params
            if getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")}


def read_config_file(config: str | None) -> dict[str, Any]:
    """The ``--config`` file's mapping (``{}`` without one); a file that cannot be read: one line, exit 2."""
    if config is None:
        return {}
    from usvid.configfile import read_mapping
    from usvid.outputs import check_path_text

    path = check_path_text(config, "--config")
    try:
        return read_mapping(path, "--config")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConfigError(f"{path}: cannot read the --config file ({reason})") from None


def apply_options(data: dict[str, Any], ctx: typer.Context, options: Mapping[str, Option]) -> dict[str, Any]:
    """Lay the options of ``options`` typed on the command line over ``data`` (a config file's mapping)."""
    given = given_options(ctx)
    for name, option in options.items():
        if name not in given:
            continue  # not typed: the file's value holds, else the config's default (never the flag's)
        keys, parse = (option, None) if isinstance(option, str) else option
        value = ctx.params[name] if parse is None else parse(ctx.params[name])
        keys, values = ((keys,), (value,)) if isinstance(keys, str) else (keys, value)
        for key, part in zip(keys, values, strict=True):
            _set(data, key, part)
    return data


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    *path, leaf = key.split(".")
    for part in path:
        data = data.setdefault(part, {})
        if not isinstance(data, dict):
            return  # the file's value there is not a mapping: config_from_mapping says so, naming the key
    data[leaf] = value


def config_from_options(cls: type[T], ctx: typer.Context, config: str | None,
                        options: Mapping[str, Option]) -> T:
    """``cls`` from the ``--config`` file with the ``options`` typed on the command line over it.

    Options not typed keep the file's values, else the config's own defaults (their flags' defaults are the
    same: tests/cli/test_config_option.py checks it). Unknown keys, wrong types: one line naming file and key.
    """
    return build_config(cls, apply_options(read_config_file(config), ctx, options), config)


def build_config(cls: type[T], data: dict[str, Any], config: str | None) -> T:
    """``cls`` from ``data`` (file and flags), refusing in one line a required field that neither gave."""
    import dataclasses

    from usvid.configfile import config_from_mapping

    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.init and required and f.name not in data:
            raise InputError(f"missing {f.name.upper()}: give it on the command line, or '{f.name}' in the "
                             f"--config file")
    return config_from_mapping(cls, data, where=config)


MODEL_HELP = "Checkpoint (.pt), ONNX (.onnx), TensorRT engine, or a shipped model's name (see `usvid models`)."
#: ``show_default`` of ``--model`` where it is optional (usvid.shipped.DEFAULT_MODEL, spelt out: importing
#: usvid.shipped here would slow every command's start; tests/packaging checks the two agree).
MODEL_DEFAULT = "lanet-effl0-bus (shipped)"
#: Help of the smoothing options, one text for predict and stream.
SMOOTHING_HELP = ("Temporal smoothing (EMA in video time) of probabilities and box; off: every frame's result is "
                  "the model's own.")
SMOOTHING_TAU_HELP = "Time constant of --smoothing, seconds of video time."
DEVICE_HELP = "auto (CUDA when present, else the CPU), cpu, cuda or cuda:N."
#: ``--threshold`` on predict, stream and eval: the model file carries the one chosen on its validation split.
THRESHOLD_DEFAULT = "the model's own (chosen on its val split), else 0.5"
THRESHOLD_HELP = ("Mask probability at or above which a pixel is lesion. `usvid train` chooses it on the val split "
                  "and stores it in the model; choose any other on a val split too, never on test.")


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
