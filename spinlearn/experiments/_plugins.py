"""Experiments from outside spinlearn: installed plug-ins and modules named on the command line.

A package registers experiments through the ``spinlearn.experiments`` entry-point group, in its
``pyproject.toml``::

    [project.entry-points."spinlearn.experiments"]
    my-studies = "my_package.experiments"

Each entry point names a module (importing it registers its experiments, as the built-in modules
do), a callable (called with no argument; it registers them) or an :class:`Experiment` (registered
as it is). Plug-ins are loaded once, the first time every experiment is listed or a name is not
found among the registered ones. ``spinlearn run my_module:NAME`` imports ``my_module`` from the
current directory or ``sys.path`` instead. A plug-in or module that fails is one line naming it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from types import ModuleType

from spinlearn.errors import UserInputError, first_line
from spinlearn.experiments.registry import EXPERIMENTS, Experiment, register

GROUP = "spinlearn.experiments"
_loaded: list[str] = []  # the entry points loaded so far: each is loaded once per process


def discover() -> None:
    """Load every entry point of :data:`GROUP` not loaded yet."""
    for point in importlib.metadata.entry_points(group=GROUP):
        key = f"{point.name}={point.value}"
        if key in _loaded:
            continue
        try:
            _apply(point.load())
            _loaded.append(key)
        except Exception as exc:  # whatever a user's code raises: the one line names the plug-in
            raise UserInputError(
                f"plug-in {point.name!r} ({point.value}, entry point group {GROUP}) failed: "
                f"{type(exc).__name__}: {first_line(exc)}"
            ) from None


def _apply(loaded: object) -> None:
    if isinstance(loaded, Experiment):
        if EXPERIMENTS.get(loaded.name) is not loaded:
            register(loaded)
    elif callable(loaded) and not isinstance(loaded, ModuleType):
        loaded()


def from_module(spec: str) -> Experiment:
    """``module:NAME``: the experiment NAME that importing ``module`` registers, or the module's
    attribute NAME when it holds an :class:`Experiment` (registered here if it is not yet)."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise UserInputError(f"experiment {spec!r}: expected module:NAME")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # `python -m` puts the current directory first; the script does not
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a user's module: any error is one line naming it
        raise UserInputError(
            f"cannot import module {module_name!r} for {spec!r}: {type(exc).__name__}: {first_line(exc)}"
        ) from None
    if name in EXPERIMENTS:
        return EXPERIMENTS[name]
    held = getattr(module, name, None)
    if isinstance(held, Experiment):
        try:
            _apply(held)
        except ValueError as exc:  # its name is taken by another experiment
            raise UserInputError(f"{spec}: {exc}") from None
        return held
    own = sorted(n for n, e in EXPERIMENTS.items() if e.run.__module__ == module.__name__)
    raise UserInputError(
        f"module {module_name!r} registers no experiment {name!r} (it registers: {', '.join(own) or 'none'})"
    )
