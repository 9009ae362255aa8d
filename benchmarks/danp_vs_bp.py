"""``danp_vs_bp``: DANP step time / backprop step time on the 784 -> 3 x 500 -> 10 MLP, batch 64.

One step is what a training loop does per minibatch, optimizer steps included. Variants:

* ``danp``: DANP with decorrelation on (two noisy passes, the authors' sMTJ noise, the decorrelation
  update of R and c), Adam on W, b and SGD on R, c;
* ``bp_same``: backprop through the same network, decorrelation layers R in its forward (frozen);
* ``bp_plain``: backprop on the plain MLP (no R), the authors' backprop baseline (decor_lr = 0);
* ``np``: node perturbation without decorrelation.

``ratio`` is DANP / ``bp_same`` (the same MLP with decorrelation on);
``matmul_floor_ratio`` is the ratio of the two steps' matrix-product multiply-adds (:func:`matmul_macs`),
the ratio DANP would reach if nothing but its matrix products cost time;
``ratio_vs_plain_bp`` is DANP / ``bp_plain``, the comparison behind the authors' 5.8x. Steps of the
variants alternate so that machine noise hits them alike; medians after a warm-up.
"""

from __future__ import annotations

import itertools
import time

import torch

from benchmarks import alternating, medians, ratio_spread, synchronize
from spinlearn.learning import danp

SIZES = [784, 500, 500, 500, 10]
BATCH, STEPS, WARMUP = 64, 40, 5


def matmul_macs(sizes: list[int], batch: int) -> dict[str, int]:
    r"""Multiply-adds of the matrix products in one step of ``danp`` and of ``bp_same``.

    DANP: layer 1's R and W once for the batch (its input is the same in both passes), every other
    layer's twice (two noisy passes); the weight gradients :math:`\delta^T z`; the decorrelation
    gradients :math:`z^T (z R)` (:math:`2 B d^2` each, or :math:`B d^2 + d^3` when :math:`B \ge d`).
    Backprop: the clean pass, the weight gradients, and the input gradients through every W and R
    but the first layer's (the data needs none).
    """
    pairs = list(itertools.pairwise(sizes))
    forward = [d * d + d * out for d, out in pairs]  # per sample: R then W
    weight_grads = sum(d * out for d, out in pairs)
    decor = sum(2 * batch * d * d if batch < d else batch * d * d + d**3 for d, _ in pairs)
    danp = batch * (forward[0] + 2 * sum(forward[1:]) + weight_grads) + decor
    input_grads = sum(d * out for d, out in pairs[1:]) + sum(d * d for d, _ in pairs[1:])
    return {"danp": danp, "bp_same": batch * (sum(forward) + weight_grads + input_grads)}


def _variant(name: str, device: str = "cpu"):
    gen = torch.Generator().manual_seed(0)
    variant = "np" if name in ("np", "bp_plain") else "danp"
    net = danp.DANPNetwork(SIZES, gen, danp.DANPConfig(variant=variant), device=device)
    optimizers = danp.make_optimizers(net, lr=1e-4)
    backprop = name.startswith("bp")

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        synchronize(device)
        start = time.perf_counter()
        if backprop:
            danp.backprop_gradients(net, x, y)
        else:
            danp.danp_step(net, x, y)
        for optimizer in optimizers:
            optimizer.step()
        synchronize(device)
        return time.perf_counter() - start

    return step


def run(device: str = "cpu") -> dict:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, SIZES[0], generator=gen).to(device)
    y = torch.randint(0, SIZES[-1], (BATCH,), generator=gen).to(device)
    steps = {name: _variant(name, device) for name in ("danp", "bp_same", "bp_plain", "np")}
    times = alternating(steps, lambda name, _: steps[name](x, y), STEPS, WARMUP)
    median = medians(times)
    return {
        "benchmark": "danp_vs_bp",
        "ratio": median["danp"] / median["bp_same"],
        "ratio_rounds": ratio_spread(times, "danp", "bp_same"),
        "matmul_floor_ratio": (lambda m: m["danp"] / m["bp_same"])(matmul_macs(SIZES, BATCH)),
        "device": device,
        "ratio_vs_plain_bp": median["danp"] / median["bp_plain"],
        "np_vs_plain_bp": median["np"] / median["bp_plain"],
        **{f"{name}_step_ms_median": round(1e3 * t, 3) for name, t in median.items()},
        "steps": STEPS,
        "threads": torch.get_num_threads(),
    }
