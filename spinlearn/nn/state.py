"""A model's state with its chip, and the same weights on another chip.

``model.state_dict()`` of a network built from spinlearn's layers holds, besides what it learned
(weights, walls), the devices it learned on: each MTJ neuron's and twin's parameters and the twin
calibration (:class:`~spinlearn.nn.MTJActivation`), each domain-wall device's velocity and
diffusion factors (:class:`~spinlearn.hardware.DWSynapses`). ``model.load_state_dict(state)``
therefore restores the same chip. :func:`transfer_weights` is the other experiment, asked for by
name: what was learned, put on the target model's own devices.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from spinlearn.errors import ConfigError


def device_keys(model: nn.Module) -> set[str]:
    """The keys of ``model.state_dict()`` that describe its chip rather than what it learned."""
    state = model.state_dict()
    keys: set[str] = set()
    for name, module in model.named_modules():
        marks = getattr(type(module), "DEVICE_KEYS", ())
        prefix = f"{name}." if name else ""
        for mark in marks:  # "name." marks a family of keys, "name" one key
            full = prefix + mark
            keys.update(k for k in state if (k.startswith(full) if mark.endswith(".") else k == full))
    return keys


def transfer_weights(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Load what ``state`` learned (weights, walls, biases) into ``model`` while ``model`` keeps its
    own devices (per-device parameters and calibration): the "same weights on another chip"
    experiment. Every other key must match as in a strict ``load_state_dict``. Returns the device
    keys that were kept."""
    chip = device_keys(model)
    learned = {k: v for k, v in state.items() if k not in chip}
    result = model.load_state_dict(learned, strict=False)
    missing = [k for k in result.missing_keys if k not in chip]
    if missing or result.unexpected_keys:
        raise ConfigError(
            "the saved state does not fit this model: "
            f"missing {missing[:3] or 'none'}, unexpected {result.unexpected_keys[:3] or 'none'}"
        )
    return sorted(chip)
