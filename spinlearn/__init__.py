"""spinlearn: train neural networks on spintronic hardware with the learning rule its physics offers.

Everything a user builds with is importable from here::

    import torch
    from spinlearn import AFDConfig, MTJ, MTJActivation, MTJParams, SimulatedBackend

    neuron = MTJ(MTJParams(tmr0=1.2), variability=0.1)
    backend = SimulatedBackend(neuron, torch.Generator().manual_seed(0))
    layer = MTJActivation(16, backend, "hidden0", AFDConfig(delta_i_a=5e-6))

The names are resolved on first use, so that importing one layer of the package (``import
spinlearn.devices``) does not import the layers above it. The same names live in the subpackages,
one per layer: :mod:`spinlearn.devices` (device physics) -> :mod:`spinlearn.hardware` (backends and
device arrays) -> :mod:`spinlearn.learning` (rules) -> :mod:`spinlearn.nn` (torch modules) ->
:mod:`spinlearn.experiments` (registered experiments).
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("spinlearn")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

#: public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(
        ("MTJ", "MTJParams", "SMTJ", "SMTJParams", "DomainWall", "DWParams", "TextureFilm", "TextureParams"),
        "spinlearn.devices",
    ),
    **dict.fromkeys(
        ("Backend", "SimulatedBackend", "VisaBackend", "DeviceProfile", "DWSynapses"), "spinlearn.hardware"
    ),
    **dict.fromkeys(
        (
            "AFDConfig",
            "DWSGLD",
            "SGLD",
            "SGLDConfig",
            "PosteriorSamples",
            "DANPConfig",
            "DANPNetwork",
            "NoiseConfig",
            "danp_step",
            "node_perturbation_step",
            "AdamDirection",
            "train_texture",
            "recall",
        ),
        "spinlearn.learning",
    ),
    **dict.fromkeys(
        ("MTJActivation", "DWLinear", "DWConv2d", "Layers", "mlp", "transfer_weights"), "spinlearn.nn"
    ),
    **dict.fromkeys(("Ledger", "EnergyConfig"), "spinlearn.energy"),
    **dict.fromkeys(("ConfigError", "DataError", "UserInputError", "TrainingDiverged"), "spinlearn.errors"),
    "Checkpoint": "spinlearn.checkpoint",
    "track_energy": "spinlearn.energy_track",
    "load_run": "spinlearn.experiments.kept",
    "EXPERIMENTS": "spinlearn.experiments",
    "get_experiment": "spinlearn.experiments",
    "run_experiment": "spinlearn.runner",
    "sweep": "spinlearn.sweep",
}
_SUBPACKAGES = ("devices", "hardware", "learning", "nn", "experiments", "config", "energy", "data")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        value = getattr(module, "get" if name == "get_experiment" else name)
        globals()[name] = value  # resolved once
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"spinlearn.{name}")
    raise AttributeError(f"module 'spinlearn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBPACKAGES})


__all__ = ["__version__", *sorted(_EXPORTS)]
