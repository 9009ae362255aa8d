"""``afd_vs_torch``: epoch time of an AFD MTJ network / the same network with torch.tanh + autograd.

``ratio`` times the network that ``spinlearn run mnist-afd`` trains, read from that experiment's
defaults (:class:`~spinlearn.experiments.mnist.MNISTConfig`): 784 -> 4 x 512 -> 10, batch 128,
Adam. ``ratio_4x256_sgd`` times the network this benchmark used before (784 -> 4 x 256 -> 10, SGD
with momentum), kept so that figures stay comparable across versions; the MTJ layers' share of a
step is larger there, since their cost grows with the width and the matrix products' with its
square.

Both variants of a network train on the same minibatches of synthetic MNIST-shaped data (the cost
does not depend on the pixel values); the AFD one reads every hidden activation and its twin
through the simulated backend of the experiment's device and AFD sections, with an energy ledger
on it as in the experiment (every read's Joule heat is summed). Epochs alternate between the two
variants so that machine noise hits both alike; each ratio is of the medians after a warm-up epoch.
The resident memory each variant of the mnist-afd network adds while it builds and trains is
measured in a fresh process of its own.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass, replace

import torch
from torch import nn

from benchmarks import alternating, medians, ratio_spread, train_seconds
from spinlearn.config import TrainConfig
from spinlearn.energy import Ledger
from spinlearn.experiments.mnist import CLASSES, MNISTConfig
from spinlearn.hardware import SimulatedBackend
from spinlearn.nn import MTJActivation, mlp
from spinlearn.training import make_optimizer

BATCHES_PER_EPOCH = 60


@dataclass(frozen=True)
class Network:
    """What is timed: layer widths, minibatch size and the training section that builds the optimizer."""

    sizes: tuple[int, ...]
    batch: int
    train: TrainConfig


def mnist_afd_network() -> Network:
    cfg = MNISTConfig()
    return Network((784, *cfg.model.hidden, CLASSES), cfg.train.batch_size, cfg.train)


def earlier_network() -> Network:
    """784 -> 4 x 256 -> 10 with SGD (lr 0.01, momentum 0.9): this benchmark's network until 2026-11-24."""
    train = replace(MNISTConfig().train, optimizer="sgd", lr=0.01, momentum=0.9)
    return Network((784, 256, 256, 256, 256, CLASSES), 128, train)


def _model(kind: str, sizes: tuple[int, ...], seed: int, device: str = "cpu") -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    if kind == "tanh":
        return mlp(list(sizes), lambda width, k: nn.Tanh(), gen).to(device)
    cfg = MNISTConfig()
    # on CUDA the devices draw on a generator of their own there, as a run's do (ctx.generator)
    devices = gen if device == "cpu" else torch.Generator(device).manual_seed(seed)
    backend = SimulatedBackend(cfg.device.mtj(), devices, twin_mismatch=cfg.device.twin_mismatch)
    backend.ledger = Ledger(cfg.energy)
    return mlp(list(sizes), lambda width, k: MTJActivation(width, backend, f"h{k}", cfg.afd), gen).to(device)


def _data(net: Network, batches: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(net.batch * batches, net.sizes[0], generator=gen)
    return x, torch.randint(0, net.sizes[-1], (len(x),), generator=gen)


def epoch_times(net: Network, epochs: int, batches: int = BATCHES_PER_EPOCH, device="cpu") -> dict[str, list]:
    """Epoch times (s) of each variant in ``epochs`` alternating epochs after a warm-up one."""
    x, y = (t.to(device) for t in _data(net, batches))
    models = {kind: _model(kind, net.sizes, 1, device) for kind in ("afd", "tanh")}
    optimizers = {kind: make_optimizer(model, net.train) for kind, model in models.items()}

    def epoch_seconds(kind: str, _: int) -> float:
        return train_seconds(models[kind], optimizers[kind], x, y, net.batch)

    return alternating(models, epoch_seconds, epochs)


def epoch_medians(net: Network, epochs: int, batches: int = BATCHES_PER_EPOCH) -> dict[str, float]:
    """Median epoch time (s) of each variant (:func:`epoch_times`)."""
    return medians(epoch_times(net, epochs, batches))


def _rss_mib() -> float:
    """Current resident set of this process (Linux /proc), MiB."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_child(kind: str, net: Network, queue) -> None:
    """In a fresh process: peak resident memory added by building and training ``kind`` (MiB).

    Sampled after every batch, above the process's footprint before the network was built (the
    import of torch alone is a larger, transient peak, so ``ru_maxrss`` would not see the network).
    """
    x, y = _data(net, 5)
    base = _rss_mib()
    model = _model(kind, net.sizes, 1)
    optimizer = make_optimizer(model, net.train)
    peak = _rss_mib()
    for first in range(0, len(x), net.batch):
        loss = nn.functional.cross_entropy(model(x[first : first + net.batch]), y[first : first + net.batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        peak = max(peak, _rss_mib())
    queue.put(peak - base)


def peak_rss_mib(kind: str, net: Network) -> float:
    """Peak memory added by training ``kind``, in its own process so the variants do not mix."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_peak_rss_child, args=(kind, net, queue))
    child.start()
    value = queue.get(timeout=300)
    child.join()
    return value


def run(
    epochs: int = 7,
    batches: int = BATCHES_PER_EPOCH,
    net: Network | None = None,
    earlier: Network | None = None,
    device: str = "cpu",
) -> dict:
    """The benchmark; ``net`` and ``earlier`` stand in for the two networks (the tests' small ones).
    The resident memory is measured on the CPU only (on CUDA the tensors are not in it)."""
    net, earlier = net or mnist_afd_network(), earlier or earlier_network()
    times = epoch_times(net, epochs, batches, device)
    main = medians(times)
    before = medians(epoch_times(earlier, epochs, batches, device))
    if device != "cpu":
        memory = {}
    else:
        memory = {f"{kind}_peak_added_rss_mib": peak_rss_mib(kind, net) for kind in main}
        memory["memory_ratio"] = memory["afd_peak_added_rss_mib"] / memory["tanh_peak_added_rss_mib"]
    return {
        "benchmark": "afd_vs_torch",
        "ratio": main["afd"] / main["tanh"],
        "ratio_rounds": ratio_spread(times, "afd", "tanh"),
        "device": device,
        "afd_epoch_s_median": main["afd"],
        "tanh_epoch_s_median": main["tanh"],
        "sizes": list(net.sizes),
        "batch": net.batch,
        "optimizer": net.train.optimizer,
        "ratio_4x256_sgd": before["afd"] / before["tanh"],
        "afd_epoch_s_median_4x256_sgd": before["afd"],
        "tanh_epoch_s_median_4x256_sgd": before["tanh"],
        **memory,
        "epochs_timed": epochs,
        "batches_per_epoch": batches,
        "threads": torch.get_num_threads(),
    }
