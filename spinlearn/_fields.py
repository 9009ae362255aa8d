"""Validated dataclass fields: each field carries its documentation and its allowed range.

A dataclass built from :func:`param` fields and deriving from :class:`Validated` checks every value
at construction and raises :class:`~spinlearn.errors.ConfigError` naming the field, the value and the
allowed range. Device parameters and configuration sections share this one mechanism.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from spinlearn.errors import ConfigError


def param(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple | None = None,
    min_len: int | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with documentation and bounds (``gt``/``ge``/``le``/``lt``, ``choices``)."""
    meta = {"doc": doc, "gt": gt, "ge": ge, "le": le, "lt": lt, "choices": choices, "min_len": min_len}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


EFFECTS = ("accuracy", "energy", "scale")


def affects(**groups: tuple[str, ...]) -> Any:
    """Class decorator for device parameters: which fields change ``accuracy`` (what the network
    learns), ``energy`` (the joules booked) and ``scale`` (only the units of the signals, which the
    layers normalise away). Each field's doc then ends with ``[affects: ...]``; every field must be
    named at least once, so that a new parameter says what it does."""
    unknown = set(groups) - set(EFFECTS)
    if unknown:
        raise TypeError(f"unknown effects {sorted(unknown)} (known: {', '.join(EFFECTS)})")

    def decorate(cls: type) -> type:
        for f in dataclasses.fields(cls):
            named = [effect for effect in EFFECTS if f.name in groups.get(effect, ())]
            if not named:
                raise TypeError(f"{cls.__name__}.{f.name}: say what it affects (accuracy, energy, scale)")
            doc = f"{f.metadata.get('doc', '')} [affects: {', '.join(named)}]"
            f.metadata = types.MappingProxyType({**f.metadata, "doc": doc})
        return cls

    return decorate


def _range_text(meta: dict) -> str:
    parts = []
    for key, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if meta.get(key) is not None:
            parts.append(f"{sym} {meta[key]:g}")
    return " and ".join(parts)


def coerce(value: Any, annotation: Any, name: str) -> Any:
    """Convert ``value`` to the field type ``annotation`` or raise ConfigError naming ``name``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], name)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} = {value!r}: expected true or false")
    if annotation in (int, float) and isinstance(value, str):
        try:  # YAML 1.1 reads 2e-6 (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} = {value!r}: expected an integer")
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{name} = {value!r}: expected an integer")
        return int(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} = {value!r}: expected a number")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{name} = {value!r}: expected a finite number")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} = {value!r}: expected a string")
        return value
    if origin is tuple:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name} = {value!r}: expected a list")
        item = args[0] if args else Any
        return tuple(coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value))
    return value


V = typing.TypeVar("V")


class Validated:
    """Mixin for dataclasses whose fields were declared with :func:`param`: validates on creation."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = coerce(getattr(self, f.name), hints[f.name], f.name)
            object.__setattr__(self, f.name, value)
            check_bounds(f, value)

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(cls)}

    def as_base(self, base: type[V]) -> V:
        """This section as an instance of ``base``, a parent class (the fields it does not have dropped):
        a device config section without its run settings, say."""
        names = {f.name for f in dataclasses.fields(base)}
        return base(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in names})


def check_bounds(f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    if value is None:
        return
    if meta.get("choices") is not None and value not in meta["choices"]:
        allowed = ", ".join(map(str, meta["choices"]))
        raise ConfigError(f"{f.name} = {value!r}: must be one of {allowed}")
    if meta.get("min_len") is not None and len(value) < meta["min_len"]:
        raise ConfigError(f"{f.name} = {list(value)}: needs at least {meta['min_len']} item(s)")
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool):
            continue
        ok = (
            (meta.get("gt") is None or v > meta["gt"])
            and (meta.get("ge") is None or v >= meta["ge"])
            and (meta.get("lt") is None or v < meta["lt"])
            and (meta.get("le") is None or v <= meta["le"])
        )
        if not ok:
            raise ConfigError(f"{f.name} = {value!r}: must be {_range_text(meta)}")
