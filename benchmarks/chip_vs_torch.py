"""``chip_vs_torch``: step time of the chip / the same network in float (mnist-chip's network).

The chip is 784 -> 256 MTJ neurons -> 10 with every weight a domain-wall pair: forward through the
crossbars and the neurons (each read with its twin at I + dI), backward with the twins' slopes,
and DW-SGLD's push-pull programming of every pair. The float network is the same MLP with
``nn.Linear``, tanh and ``torch.optim.SGD``. Both train on the same minibatches of synthetic
MNIST-shaped data; rounds alternate between them, and the ratio is of the medians after a warm-up.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks import step_medians
from benchmarks.dw_sgld_vs_sgd import BATCH, STEPS_PER_ROUND  # the same step as the DW benchmark's
from spinlearn.devices.domain_wall import DomainWall
from spinlearn.hardware import SimulatedBackend
from spinlearn.learning.afd import AFDConfig
from spinlearn.learning.sgld import DWSGLD, SGLDConfig
from spinlearn.nn import MTJActivation
from spinlearn.nn.dw import Layers
from spinlearn.nn.resnet import mlp

SIZES = [784, 256, 10]
DATA_SIZE = 60_000  # MNIST's training set: the Langevin variance 2 lr T / N


def _variant(kind: str):
    init = torch.Generator().manual_seed(0)
    if kind == "chip":
        backend = SimulatedBackend(generator=torch.Generator().manual_seed(2))
        layers = Layers(DomainWall(), init, torch.Generator().manual_seed(1))
        model = mlp(SIZES, layers, lambda width, k: MTJActivation(width, backend, f"h{k}", AFDConfig()))
        sgld = SGLDConfig(temperature=0.1)
        return model, DWSGLD(model.parameters(), 0.1, sgld, DATA_SIZE, torch.Generator().manual_seed(3))
    model = mlp(SIZES, Layers(None, init), lambda width, k: nn.Tanh())
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def run(rounds: int = 7) -> dict:
    variants = {kind: _variant(kind) for kind in ("chip", "float")}
    step = step_medians(variants, SIZES, BATCH, STEPS_PER_ROUND, rounds)
    return {
        "benchmark": "chip_vs_torch",
        "ratio": step["chip"] / step["float"],
        "chip_step_s_median": step["chip"],
        "float_step_s_median": step["float"],
        "batch": BATCH,
        "rounds_timed": rounds,
        "steps_per_round": STEPS_PER_ROUND,
        "threads": torch.get_num_threads(),
    }
