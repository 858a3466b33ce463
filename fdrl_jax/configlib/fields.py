"""Typed, range-checked config fields: each default is declared with its rule, in one place.

A schema is a nested dict of `Field`s (the config sections). `build` turns it into the
`ml_collections.ConfigDict` a run reads; `check` validates a config against it and raises a
`ConfigError` naming the field and what it must be. Adding a field is one entry.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ml_collections
from ml_collections import config_dict

from fdrl_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Field:
    """A config field: its default, the check a value must pass and what that check says.

    `none_type` makes the default a typed placeholder (None until set, e.g. "K + 10 unless
    given"), which `ml_collections` needs to accept a later value of that type.
    """

    default: Any
    ok: Callable[[Any], bool]
    must_be: str
    none_type: type | None = None
    # For names looked up in a registry: what a name names ("loss", "dataset", ...).
    kind: str | None = None

    def value(self) -> Any:
        if self.default is None and self.none_type is not None:
            return config_dict.placeholder(self.none_type)
        return self.default


Schema = Mapping[str, "Field | Schema"]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def integer(default: int, lo: float = 0, hi: float = math.inf) -> Field:
    return Field(default, lambda v: _is_int(v) and lo <= v <= hi, f"an integer in [{lo}, {hi}]")


def number(default: float, ok: Callable[[float], bool] = lambda v: True, text: str = "") -> Field:
    """A finite number passing `ok` (described by `text`, e.g. "> 0")."""
    return Field(default, lambda v: _is_num(v) and ok(v), f"a finite number {text}".strip())


def boolean(default: bool) -> Field:
    return Field(default, lambda v: isinstance(v, bool), "True or False")


def one_of(default: str, options: Iterable[str]) -> Field:
    options = tuple(options)
    return Field(default, lambda v: v in options, " or ".join(repr(o) for o in options))


def registered(default: str, names: Iterable[str], kind: str) -> Field:
    """A name from a registry (a loss, a dataset, ...); the error lists the known names."""
    names = tuple(sorted(names))
    return Field(default, lambda v: isinstance(v, str) and v in names, repr(list(names)), kind=kind)


def string(default: str, what: str) -> Field:
    return Field(default, lambda v: isinstance(v, str), f"{what} (string)")


def optional(default, ok: Callable[[Any], bool], what: str, none_type: type) -> Field:
    """None, or a value passing `ok`."""
    return Field(default, lambda v: v is None or ok(v), f"None or {what}", none_type)


def int_tuple(default: tuple, lo: int, what: str) -> Field:
    """A tuple (or list) of integers >= lo."""
    return Field(
        default,
        lambda v: isinstance(v, tuple | list) and all(_is_int(i) and i >= lo for i in v),
        what,
    )


def build(schema: Schema) -> ml_collections.ConfigDict:
    """The ConfigDict of a schema's defaults."""
    c = ml_collections.ConfigDict()
    for name, f in schema.items():
        c[name] = f.value() if isinstance(f, Field) else build(f)
    return c


def check(config: ml_collections.ConfigDict, schema: Schema, prefix: str = "") -> None:
    """Every field of `schema` present in `config` and passing its rule."""
    for name, f in schema.items():
        path = prefix + name
        try:
            value = config[name]
        except (KeyError, AttributeError):
            raise ConfigError(f"Invalid config: field `{path}` is missing.") from None
        if isinstance(f, Field):
            if f.ok(value):
                continue
            if f.kind:
                raise ConfigError(
                    f"Unknown {f.kind} {value!r}; choose one of {f.must_be} "
                    f"(config field `{path}`)."
                )
            raise ConfigError(f"Invalid config: `{path}` must be {f.must_be}; got {value!r}.")
        else:
            check(value, f, path + ".")


def leaf_paths(schema: Schema, prefix: str = "") -> list[str]:
    """Dotted paths of every field."""
    out = []
    for name, f in schema.items():
        out += [prefix + name] if isinstance(f, Field) else leaf_paths(f, f"{prefix}{name}.")
    return out


def set_path(config: ml_collections.ConfigDict, path: str, value: Any) -> None:
    """config.<dotted path> = value (e.g. "train.num_steps")."""
    node, _, leaf = path.rpartition(".")
    target = config
    for part in filter(None, node.split(".")):
        target = target[part]
    target[leaf] = value


def override(config: ml_collections.ConfigDict, values: Mapping[str, Any]):
    """Set several dotted paths ({"flow.eta": 0.5, ...}); returns the config."""
    for path, value in values.items():
        set_path(config, path, value)
    return config


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict (a config's `to_dict()` or its JSON) as {dotted path: value}; an empty
    section is a value ({}), so a section present in one config and absent in another shows."""
    out = {}
    for k, v in nested.items():
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out
