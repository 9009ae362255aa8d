"""``afd_vs_torch``: epoch time of an AFD MTJ network / the same network with torch.tanh + autograd.

Both networks are 784 -> 4 x 256 -> 10 MLPs trained by the same SGD on the same minibatches of
synthetic MNIST-shaped data (the cost does not depend on the pixel values); the AFD one reads every
hidden activation and its twin through the simulated backend. Epochs alternate between the two
variants so that machine noise hits both alike; the ratio is of the medians after a warm-up epoch.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from spinlearn.config import DeviceConfig
from spinlearn.hardware import SimulatedBackend
from spinlearn.learning import AFDConfig
from spinlearn.nn import MTJActivation, mlp

SIZES = [784, 256, 256, 256, 256, 10]
BATCH = 128
BATCHES_PER_EPOCH = 60


def _network(kind: str, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    if kind == "tanh":
        return mlp(SIZES, lambda width, k: nn.Tanh(), gen)
    device = DeviceConfig()
    backend = SimulatedBackend(device.mtj(), gen, twin_mismatch=device.twin_mismatch)
    return mlp(SIZES, lambda width, k: MTJActivation(width, backend, f"h{k}", AFDConfig()), gen)


def _epoch(model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    start = time.perf_counter()
    for b in range(BATCHES_PER_EPOCH):
        sl = slice(b * BATCH, (b + 1) * BATCH)
        loss = nn.functional.cross_entropy(model(x[sl]), y[sl])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def run(epochs: int = 5) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH * BATCHES_PER_EPOCH, SIZES[0], generator=gen)
    y = torch.randint(0, SIZES[-1], (len(x),), generator=gen)
    variants = {kind: _network(kind, 1) for kind in ("afd", "tanh")}
    optimizers = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, m in variants.items()}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for epoch in range(epochs + 1):
        for kind, model in variants.items():
            elapsed = _epoch(model, optimizers[kind], x, y)
            if epoch > 0:  # the first epoch is warm-up
                times[kind].append(elapsed)
    afd, tanh = statistics.median(times["afd"]), statistics.median(times["tanh"])
    return {
        "benchmark": "afd_vs_torch",
        "ratio": afd / tanh,
        "afd_epoch_s_median": afd,
        "tanh_epoch_s_median": tanh,
        "epochs_timed": epochs,
        "batch": BATCH,
        "batches_per_epoch": BATCHES_PER_EPOCH,
        "sizes": SIZES,
        "threads": torch.get_num_threads(),
    }
