"""``dw_sgld_vs_sgd``: step time of DW-SGLD / plain SGD on the same MLP (mnist-dw-sgld's network).

Both networks are 784 -> 256 -> 256 -> 10 ReLU MLPs trained on the same minibatches of synthetic
MNIST-shaped data (the cost does not depend on the pixel values). A DW-SGLD step is forward,
backward and the push-pull programming of every weight's domain-wall pair (quantisation, pulse
counts, one stochastic wall move per weight, read-back); an SGD step is forward, backward and
``torch.optim.SGD``. Floating-point SGLD (software noise) is timed beside them. Rounds of steps
alternate between the variants so that machine noise hits all alike; the ratio is of the medians
after a warm-up round.
"""

from __future__ import annotations

import itertools

import torch

from benchmarks import medians, ratio_spread, step_times
from spinlearn.devices.domain_wall import DomainWall
from spinlearn.learning.sgld import DWSGLD, SGLD, SGLDConfig
from spinlearn.nn.dw import Layers
from spinlearn.nn.resnet import mlp

SIZES = [784, 256, 256, 10]
BATCH = 128
STEPS_PER_ROUND = 40
DATA_SIZE = 50_000


def _variant(kind: str, device: str = "cpu"):
    init = torch.Generator().manual_seed(0)
    if kind == "dw_sgld":
        model = mlp(SIZES, Layers(DomainWall(), init, torch.Generator(device).manual_seed(1))).to(device)
        return model, DWSGLD(
            model.parameters(), 0.1, SGLDConfig(temperature=0.1), DATA_SIZE, torch.Generator(device)
        )
    model = mlp(SIZES, Layers(None, init)).to(device)
    if kind == "float_sgld":
        return model, SGLD(model.parameters(), 0.1, 0.1, DATA_SIZE, generator=torch.Generator(device))
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def run(rounds: int = 7, device: str = "cpu") -> dict:
    variants = {kind: _variant(kind, device) for kind in ("dw_sgld", "sgd", "float_sgld")}
    times = step_times(variants, SIZES, BATCH, STEPS_PER_ROUND, rounds, device)
    step = medians(times)
    return {
        "benchmark": "dw_sgld_vs_sgd",
        "ratio": step["dw_sgld"] / step["sgd"],
        "ratio_rounds": ratio_spread(times, "dw_sgld", "sgd"),
        "device": device,
        "float_sgld_ratio": step["float_sgld"] / step["sgd"],
        "dw_sgld_step_s_median": step["dw_sgld"],
        "sgd_step_s_median": step["sgd"],
        "float_sgld_step_s_median": step["float_sgld"],
        "weights": sum(a * b + b for a, b in itertools.pairwise(SIZES)),
        "batch": BATCH,
        "rounds_timed": rounds,
        "steps_per_round": STEPS_PER_ROUND,
        "threads": torch.get_num_threads(),
    }
