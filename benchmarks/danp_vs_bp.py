"""``danp_vs_bp``: DANP step time / backprop step time on the 784 -> 3 x 500 -> 10 MLP, batch 64.

One step is what a training loop does per minibatch, optimizer steps included. Variants:

* ``danp``: DANP with decorrelation on (two noisy passes, the authors' sMTJ noise, the decorrelation
  update of R and c), Adam on W, b and SGD on R, c;
* ``bp_same``: backprop through the same network, decorrelation layers R in its forward (frozen);
* ``bp_plain``: backprop on the plain MLP (no R), the authors' backprop baseline (decor_lr = 0);
* ``np``: node perturbation without decorrelation.

``ratio`` is DANP / ``bp_same`` (the same MLP with decorrelation on);
``ratio_vs_plain_bp`` is DANP / ``bp_plain``, the comparison behind the authors' 5.8x. Steps of the
variants alternate so that machine noise hits them alike; medians after a warm-up.
"""

from __future__ import annotations

import time

import torch

from benchmarks import alternating, medians
from spinlearn.learning import danp

SIZES = [784, 500, 500, 500, 10]
BATCH, STEPS, WARMUP = 64, 40, 5


def _variant(name: str):
    gen = torch.Generator().manual_seed(0)
    variant = "np" if name in ("np", "bp_plain") else "danp"
    net = danp.DANPNetwork(SIZES, gen, danp.DANPConfig(variant=variant))
    optimizers = danp.make_optimizers(net, lr=1e-4)
    backprop = name.startswith("bp")

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        start = time.perf_counter()
        if backprop:
            danp.backprop_gradients(net, x, y)
        else:
            danp.danp_step(net, x, y)
        for optimizer in optimizers:
            optimizer.step()
        return time.perf_counter() - start

    return step


def run() -> dict:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, SIZES[0], generator=gen)
    y = torch.randint(0, SIZES[-1], (BATCH,), generator=gen)
    steps = {name: _variant(name) for name in ("danp", "bp_same", "bp_plain", "np")}
    median = medians(alternating(steps, lambda name, _: steps[name](x, y), STEPS, WARMUP))
    return {
        "benchmark": "danp_vs_bp",
        "ratio": median["danp"] / median["bp_same"],
        "ratio_vs_plain_bp": median["danp"] / median["bp_plain"],
        "np_vs_plain_bp": median["np"] / median["bp_plain"],
        **{f"{name}_step_ms_median": round(1e3 * t, 3) for name, t in median.items()},
        "steps": STEPS,
        "threads": torch.get_num_threads(),
    }
