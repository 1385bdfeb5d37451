"""Typed dataclass configs read from files: ``load_config(cls, path)`` for every config of the project.

A file is a JSON object (``.json``), YAML mapping (``.yaml``/``.yml``, needs PyYAML) or TOML table
(``.toml``). Keys are the dataclass's field names; a nested dataclass field takes a nested mapping (laid over
that field's value in ``base``). Values are checked against the field types (for a ``Literal``, the type of
its choices: the config itself checks the choices, naming its flag) before the config's own ``__post_init__``
sees them, so a typo or a wrong type is one line naming the file and the key, not a
default silently used or a TypeError deep inside a run. Lists become tuples where a tuple is declared,
strings become paths where a path is, and a whole number is accepted for a float.

A leaf module: it imports nothing of the project but its errors.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from usvid.errors import ConfigError, MissingDependencyError, did_you_mean, require_file

T = TypeVar("T")
SUFFIXES = (".json", ".yaml", ".yml", ".toml")


def read_mapping(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The mapping a config file holds (see the module docstring for the formats)."""
    path = require_file(Path(path), what)
    suffix = path.suffix.lower()
    text = path.read_text()
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise MissingDependencyError(
                f"{path}: reading YAML needs PyYAML (pip install pyyaml), or write the config as JSON"
            ) from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    elif suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values, got {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path, base: T | None = None) -> T:
    """Read a ``cls`` (a dataclass) from ``path``; the file's keys are laid over ``base`` (default: ``cls()``).

    Raises:
        ConfigError: unknown key, wrong type, or a value the config itself refuses; the message names the file
            and the key.
        MissingDependencyError: a YAML file without PyYAML.
    """
    return config_from_mapping(cls, read_mapping(path), base=base, where=str(path))


def config_from_mapping(cls: type[T], data: Mapping[str, Any], *, base: T | None = None,
                        where: str | None = None) -> T:
    """Build ``cls`` from ``data`` laid over ``base``, with the checks of :func:`load_config`.

    ``where`` (a file name) starts every error message; None: the messages are the config's own."""
    values = _values(cls, data, base, where, prefix="")
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)
    except ConfigError as err:
        raise ConfigError(_at(where, str(err))) from None


def _at(where: str | None, message: str) -> str:
    return message if where is None else f"{where}: {message}"


def _values(cls: type, data: Mapping[str, Any], base: Any, where: str | None, prefix: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(_at(where, f"'{prefix.rstrip('.')}' must be a mapping of {cls.__name__} options, "
                                     f"got {data!r}"))
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = get_type_hints(cls)
    values = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(_at(where, f"unknown key '{prefix}{key}' ({cls.__name__} has no such option)."
                                         f"{did_you_mean(str(key), known)}"))
        name = f"{prefix}{key}"
        hint = hints[key]
        part = _dataclass_of(hint)
        if part is not None and isinstance(value, Mapping):
            # laid over the field's current value: the base's, else the field's own default
            inner = getattr(base, key) if base is not None else _default(known[key])
            fields = _values(part, value, inner, where, prefix=f"{name}.")
            try:
                values[key] = dataclasses.replace(inner, **fields) if inner is not None else part(**fields)
            except ConfigError as err:
                raise ConfigError(_at(where, f"{name}: {err}")) from None
            continue
        values[key] = _convert(value, hint, where, name)
    return values


_MISMATCH = object()


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a field holds (``Part`` or ``Part | None``), or None."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint
    if get_origin(hint) in (Union, types.UnionType):
        parts = [a for a in get_args(hint) if a is not type(None)]
        if len(parts) == 1 and dataclasses.is_dataclass(parts[0]):
            return parts[0]
    return None


def _convert(value: Any, hint: Any, where: str | None, name: str) -> Any:
    got = _coerce(value, hint)
    if got is _MISMATCH:
        raise ConfigError(_at(where, f"'{name}' must be {_describe(hint)}, got {value!r}"))
    return got


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` declares it, or ``_MISMATCH``."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any or hint is object:
        return value
    if origin in (Union, types.UnionType):
        if value is None:
            return None if type(None) in args else _MISMATCH
        for arm in (a for a in args if a is not type(None)):
            got = _coerce(value, arm)
            if got is not _MISMATCH:
                return got
        return _MISMATCH
    if origin is Literal:
        # The type here; which values are allowed the config checks itself, naming its flag and the choices.
        return value if any(type(value) is type(a) for a in args) else _MISMATCH
    if value is None:
        return _MISMATCH
    if hint is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if hint is float:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else _MISMATCH
    if hint is str:
        return value if isinstance(value, str) else _MISMATCH
    if hint is Path or (isinstance(hint, type) and issubclass(hint, Path)):
        return Path(value) if isinstance(value, str | Path) else _MISMATCH
    if hint is Fraction:
        try:
            return Fraction(value) if not isinstance(value, bool) else _MISMATCH
        except (TypeError, ValueError):
            return _MISMATCH
    if origin is tuple or hint is tuple:
        return _sequence(value, args, tuple)
    if origin is list or hint is list:
        return _sequence(value, args[:1] + (Ellipsis,) if args else (), list)
    if origin in (dict, Mapping) or hint is dict:
        return dict(value) if isinstance(value, Mapping) else _MISMATCH
    if dataclasses.is_dataclass(hint) and isinstance(value, list | tuple):
        try:
            return hint(*value)  # a small record written positionally, e.g. a box [x, y, w, h]
        except TypeError:
            return _MISMATCH
    if isinstance(hint, type):
        return value if isinstance(value, hint) else _MISMATCH
    return value  # a type this reader does not know: the config's own checks decide


def _sequence(value: Any, args: tuple, kind: type) -> Any:
    if not isinstance(value, list | tuple):
        return _MISMATCH
    if not args:
        return kind(value)
    if len(args) == 2 and args[1] is Ellipsis:
        items = [_coerce(v, args[0]) for v in value]
    elif len(args) != len(value):
        return _MISMATCH
    else:
        items = [_coerce(v, a) for v, a in zip(value, args, strict=True)]
    return _MISMATCH if any(i is _MISMATCH for i in items) else kind(items)


def _describe(hint: Any) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if hint is type(None):
        return "null"
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} ({', '.join(_describe(a) for a in args)})"
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", Path: "a path",
             Fraction: "a number or a fraction such as '30000/1001'"}
    if hint in names:
        return names[hint]
    if dataclasses.is_dataclass(hint):
        return f"a mapping of {hint.__name__} options"
    return getattr(hint, "__name__", str(hint))


__all__ = ["SUFFIXES", "config_from_mapping", "load_config", "read_mapping"]
