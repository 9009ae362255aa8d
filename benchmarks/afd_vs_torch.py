"""``afd_vs_torch``: epoch time of an AFD MTJ network / the same network with torch.tanh + autograd.

Both networks are 784 -> 4 x 256 -> 10 MLPs trained by the same SGD on the same minibatches of
synthetic MNIST-shaped data (the cost does not depend on the pixel values); the AFD one reads every
hidden activation and its twin through the simulated backend. Epochs alternate between the two
variants so that machine noise hits both alike; the ratio is of the medians after a warm-up epoch.
The resident memory each variant adds while it builds and trains is measured in a fresh process
of its own.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics

import torch
from torch import nn

from benchmarks import train_seconds
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


def _rss_mib() -> float:
    """Current resident set of this process (Linux /proc), MiB."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_child(kind: str, queue) -> None:
    """In a fresh process: peak resident memory added by building and training ``kind`` (MiB).

    Sampled after every batch, above the process's footprint before the network was built (the
    import of torch alone is a larger, transient peak, so ``ru_maxrss`` would not see the network).
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH * 5, SIZES[0], generator=gen)
    y = torch.randint(0, SIZES[-1], (len(x),), generator=gen)
    base = _rss_mib()
    model = _network(kind, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    peak = _rss_mib()
    for b in range(5):
        sl = slice(b * BATCH, (b + 1) * BATCH)
        loss = nn.functional.cross_entropy(model(x[sl]), y[sl])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        peak = max(peak, _rss_mib())
    queue.put(peak - base)


def peak_rss_mib(kind: str) -> float:
    """Peak memory added by training ``kind``, in its own process so the variants do not mix."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_peak_rss_child, args=(kind, queue))
    child.start()
    value = queue.get(timeout=300)
    child.join()
    return value


def run(epochs: int = 5) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH * BATCHES_PER_EPOCH, SIZES[0], generator=gen)
    y = torch.randint(0, SIZES[-1], (len(x),), generator=gen)
    variants = {kind: _network(kind, 1) for kind in ("afd", "tanh")}
    optimizers = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, m in variants.items()}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for epoch in range(epochs + 1):
        for kind, model in variants.items():
            elapsed = train_seconds(model, optimizers[kind], x, y, BATCH)
            if epoch > 0:  # the first epoch is warm-up
                times[kind].append(elapsed)
    afd, tanh = statistics.median(times["afd"]), statistics.median(times["tanh"])
    memory = {kind: peak_rss_mib(kind) for kind in variants}
    return {
        "benchmark": "afd_vs_torch",
        "ratio": afd / tanh,
        "afd_epoch_s_median": afd,
        "tanh_epoch_s_median": tanh,
        "afd_peak_added_rss_mib": memory["afd"],
        "tanh_peak_added_rss_mib": memory["tanh"],
        "memory_ratio": memory["afd"] / memory["tanh"],
        "epochs_timed": epochs,
        "batch": BATCH,
        "batches_per_epoch": BATCHES_PER_EPOCH,
        "sizes": SIZES,
        "threads": torch.get_num_threads(),
    }
