"""Configuration: a tree of validated, frozen dataclass sections, loaded from YAML and ``--set``.

Every experiment's config is a dataclass whose fields are *sections* (dataclasses built from
:func:`spinlearn._fields.param`). The schedule (``train``) and data (``data``) sections shared by
many experiments are here; the MTJ device section and the MTJ experiments' base config are in
:mod:`spinlearn.experiments.common`. Values are checked at construction; a bad one raises
:class:`ConfigError` naming ``section.key``, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from spinlearn._fields import Validated, param
from spinlearn.errors import ConfigError

# The keys that mean the same in every schedule section (``train``, and the experiments' own):
# declared once, so that their docs and ranges cannot drift apart. Each takes the section's default.


def epochs_param(default: int) -> Any:
    return param(default, "passes over the training set", ge=1, le=100_000)


def batch_size_param(default: int) -> Any:
    return param(default, "samples per update", ge=1, le=1_000_000)


def lr_decay_param(default: str) -> Any:
    return param(default, "learning-rate schedule", choices=("none", "exponential", "cosine"))


def lr_final_param(default: float) -> Any:
    return param(default, "final learning rate / initial, for decaying schedules", gt=0, le=1)


@dataclass(frozen=True)
class TrainConfig(Validated):
    """The optimisation schedule."""

    epochs: int = epochs_param(100)
    lr: float = param(0.05, "learning rate eta", gt=0, le=100)
    batch_size: int = batch_size_param(16)
    optimizer: str = param("sgd", "sgd (with momentum) or adam", choices=("sgd", "adam"))
    momentum: float = param(0.9, "SGD momentum", ge=0, lt=1)
    weight_decay: float = param(0.0, "L2 penalty", ge=0, le=1)
    lr_decay: str = lr_decay_param("none")
    lr_final: float = lr_final_param(0.1)


#: ``data.dataset`` values that read a user's file named by ``data.path`` (see :mod:`spinlearn._user_data`).
OWN_DATA_FORMATS = ("csv", "npz")


@dataclass(frozen=True)
class DataConfig(Validated):
    """Where data comes from and how it is split."""

    dir: str | None = param(
        None, "directory of data files (MNIST IDX, CIFAR batches); Iris ships with scikit-learn"
    )
    test_fraction: float = param(0.2, "fraction held out for testing (stratified)", gt=0, lt=1)
    path: str | None = param(
        None,
        "your own data file, read when data.dataset is csv (header row, feature columns and a `label` "
        "column) or npz (x_train, y_train, x_test, y_test, or x and y split by data.test_fraction)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        dataset = getattr(self, "dataset", None)  # the sections that offer a choice of data set
        own = dataset in OWN_DATA_FORMATS
        if own and self.path is None:
            raise ConfigError(f"dataset = {dataset!r} needs data.path (the file to read)")
        if self.path is not None and not own:
            formats = " or ".join(OWN_DATA_FORMATS)
            raise ConfigError(f"path = {self.path!r} is read only with data.dataset {formats}")
        if own and self.dir is not None:
            raise ConfigError(f"dir is for MNIST and CIFAR-10 files; data.dataset {dataset} reads data.path")


C = TypeVar("C")


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain dict (tuples as lists), ready for YAML/JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def _flow(value: Any) -> str:
    """One value as inline YAML (``2.0e-06``, ``null``, ``[16, 16]``, ``'2024'``)."""
    return yaml.safe_dump([value], default_flow_style=True, width=10_000).strip()[1:-1]


def dump_commented_yaml(config: Any) -> str:
    """The config as YAML that ``--config`` reads back, each key followed by its doc as a comment;
    ``--set section.key=VALUE`` takes each value as printed."""
    lines = []
    for f in dataclasses.fields(config):
        section = getattr(config, f.name)
        lines.append(f"{f.name}:")
        for sf in dataclasses.fields(section):
            doc = sf.metadata.get("doc", "")
            value = getattr(section, sf.name)
            value = list(value) if isinstance(value, tuple) else value
            lines.append(f"  {sf.name}: {_flow(value)}" + (f"  # {doc}" if doc else ""))
    return "\n".join(lines) + "\n"


def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML scalar or list (``0.1``, ``true``, ``null``, ``[16, 16]``, ``2e-6``)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse value {text!r}: {exc.problem}") from None
    if isinstance(value, str) and not text.strip().startswith(("'", '"')):
        try:
            return float(value)  # YAML 1.1 reads 2e-6 as a string; a quoted value stays a string
        except ValueError:
            return value
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.lr=0.1", ...]`` -> ``{"train.lr": 0.1, ...}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects dotted.key=value, got {item!r}")
        out[key.strip()] = parse_value(text.strip())
    return out


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """``yaml.safe_load`` of a file; unreadable, non-UTF-8 or malformed files give one-line ConfigErrors
    naming ``what`` and the path."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise ConfigError(f"malformed YAML in {path}{line}: {getattr(exc, 'problem', exc)}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def _flatten(tree: dict[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, values in tree.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping of keys")
        for key, value in values.items():
            flat[f"{section}.{key}"] = value
    return flat


def build(
    cls: type[C],
    base: C | None = None,
    tree: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> C:
    """``base`` (default: ``cls()``) updated by a YAML ``tree`` then by dotted ``overrides``."""
    config = base if base is not None else cls()
    updates = _flatten(tree or {}, "config file")
    updates.update(overrides or {})
    sections = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    changes: dict[str, dict[str, Any]] = {}
    for dotted, value in updates.items():
        section, _, key = dotted.partition(".")
        if section not in sections:
            known = ", ".join(sections)
            raise ConfigError(f"unknown config section {section!r} in {dotted!r} (known: {known})")
        keys = [f.name for f in dataclasses.fields(sections[section])]
        if key not in keys:
            raise ConfigError(f"unknown config key {dotted!r} (keys of {section}: {', '.join(keys)})")
        if dotted in (overrides or {}):
            value = _typed_override(sections[section], key, value, dotted)
        changes.setdefault(section, {})[key] = value
    new_sections = {}
    for section, values in changes.items():
        try:
            new_sections[section] = dataclasses.replace(sections[section], **values)
        except ConfigError as exc:
            raise ConfigError(f"{section}.{exc}") from None
    return dataclasses.replace(config, **new_sections)


def _typed_override(section: Any, key: str, value: Any, dotted: str) -> Any:
    """A ``--set`` value checked against the field's declared type before the section validates it:
    a scalar for a list field is refused (``model.hidden=16`` is more likely a typo for ``[16]`` than
    a one-layer network), and an unquoted integer for a text field is taken as its digits."""
    annotation = typing.get_type_hints(type(section)).get(key)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is tuple and not isinstance(value, list | tuple | type(None)):
        raise ConfigError(f"{dotted} = {value!r}: expected a list, e.g. {dotted}=[{value}]")
    if annotation is str and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def describe(cls: type) -> list[tuple[str, Any, str]]:
    """``(dotted key, default, doc)`` for every key of a config class (for ``spinlearn show``)."""
    rows = []
    for f in dataclasses.fields(cls):
        section = getattr(cls(), f.name)
        for sf in dataclasses.fields(section):
            rows.append((f"{f.name}.{sf.name}", getattr(section, sf.name), sf.metadata.get("doc", "")))
    return rows


__all__ = [
    "ConfigError",
    "DataConfig",
    "TrainConfig",
    "build",
    "dump_commented_yaml",
    "dump_yaml",
    "load_yaml",
    "parse_overrides",
    "to_dict",
]
