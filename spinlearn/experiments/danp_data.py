"""Study 4's data as the authors' code feeds it: MNIST's 60k and CIFAR's 50k scaled x/255, CIFAR augmented.

Koenders et al., Phys. Rev. Applied 23, 054035 (2025), public code artcogsys/MTJ-Node-Perturbation
(``nodeperturbation/utils.py`` ``construct_dataloaders``) [C]: torchvision's MNIST / CIFAR-10 /
CIFAR-100 training sets in full (60k / 50k / 50k; the test sets are the standard 10k), ``ToTensor``
(uint8 / 255) then ``Normalize``: MNIST (0.1307, 0.3081); CIFAR per channel (0.4914, 0.4822, 0.4465),
(0.2023, 0.1994, 0.2010), with ``RandomCrop(32, padding=4)`` (zero fill, before normalising) and
``RandomHorizontalFlip()`` on the training images. Their train accuracy is a full pass over the
training loader, augmentation included, with the noise on; :func:`accuracy` does the same.

Files are read without executing code (:mod:`spinlearn.data`); nothing is downloaded: CIFAR comes
from ``data.dir`` (``cifar-10-batches-py/``, ``cifar-100-python/``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spinlearn import _user_data, data
from spinlearn._fields import param
from spinlearn.errors import ConfigError, DataError
from spinlearn.experiments import mnist
from spinlearn.experiments.mnist import MNISTData
from spinlearn.learning import danp

#: torchvision's ``ToTensor`` divides by 255; :mod:`spinlearn.data` returns pixels / 256.
PIXEL_MAX = 255
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
CIFAR_PAD = 4
CIFAR_SETS = {"cifar10": data.cifar10, "cifar100": data.cifar100}

Pair = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class DANPData(MNISTData):
    """The data set. MNIST and CIFAR are fed as the authors' code does (module docstring of
    :mod:`spinlearn.experiments.danp_data`): pixels / 255, then normalised with fixed constants."""

    dataset: str = param(
        "mnist",
        "mnist, digits, iris, cifar10 / cifar100 (the python versions in data.dir), or your own file: "
        "csv or npz (data.path)",
        choices=("mnist", "digits", "iris", *CIFAR_SETS, *_user_data.FORMATS),
    )
    full_train: bool = param(
        True,
        "MNIST and CIFAR: train on every training image (MNIST's 60k, CIFAR's 50k), as the authors; "
        "false: leave out the last sixth (MNIST, 50k left) or tenth (CIFAR, 45k left)",
    )
    augment: bool = param(
        False,
        "CIFAR: each training image randomly cropped to 32 px from its 4-px zero-padded copy and flipped "
        "left-right with probability 1/2, drawn anew every epoch (the authors' RandomCrop(32, 4) + "
        "RandomHorizontalFlip)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.augment and self.dataset not in CIFAR_SETS:
            raise ConfigError(f"augment = true is for cifar10 and cifar100, not dataset {self.dataset}")


@dataclass
class Feed:
    """Training samples served by minibatch: rows ready for the network, or (CIFAR) uint8 images
    that ``transform(images, generator)`` scales, augments and flattens batch by batch (the 50k
    images as float32 would take 600 MB)."""

    x: torch.Tensor
    y: torch.Tensor
    transform: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None
    augments: bool = False

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> Pair:
        x = self.x[index]
        return (x if self.transform is None else self.transform(x, generator)), self.y[index]

    def batches(self, size: int, generator: torch.Generator | None = None) -> Iterator[Pair]:
        """Every sample once, in order, ``size`` at a time."""
        for start in range(0, len(self), size):
            yield self.batch(
                torch.arange(start, min(start + size, len(self)), device=self.y.device), generator
            )


@dataclass
class DANPTensors:
    train: Feed
    test: Pair
    classes: int

    @property
    def features(self) -> int:
        return int(self.test[0].shape[1])


def load(cfg: DANPData, seed: int, device: torch.device, out_dir: Path | None = None) -> DANPTensors:
    """Training feed and test tensors for ``cfg``: MNIST and CIFAR as the authors feed them (module
    docstring); Iris, digits and a user's file (csv, npz: classes recorded in ``out_dir``) by their
    own statistics, as before."""
    if cfg.dataset in CIFAR_SETS:
        return _cifar(cfg, device)
    if cfg.dataset == "iris":
        if cfg.dir is not None:
            raise DataError("data.dir is for MNIST and CIFAR files; Iris ships with scikit-learn")
        if cfg.train_subset:
            raise ConfigError("data.train_subset is for MNIST, CIFAR and digits")
        train, test = data.iris(seed, cfg.test_fraction, device)
        return DANPTensors(Feed(*train), test, 3)
    if cfg.dataset == "mnist":
        splits = _authors_scale(data.mnist(cfg.dir), cfg.full_train)
        t = mnist.to_tensors(splits, _subset(cfg, splits), data.MNIST_MEAN, data.MNIST_STD, 28, device)
        return DANPTensors(Feed(*t.train), t.test, mnist.CLASSES)
    t = mnist.load(cfg, seed, device, None, out_dir)
    return DANPTensors(Feed(*t.train), t.test, t.classes)


def _subset(cfg: DANPData, splits: data.Splits) -> int:
    return cfg.train_subset or len(splits.x_train)


def _authors_scale(splits: data.Splits, full_train: bool) -> data.Splits:
    """Pixels / 255 (from :mod:`spinlearn.data`'s / 256), the validation part put back behind the
    training part when ``full_train`` (it is the tail of the standard training set)."""
    rescale = np.float32(256 / PIXEL_MAX)
    x_train, y_train = _training(splits, full_train)
    return data.Splits(
        x_train * rescale,
        y_train,
        splits.x_val * rescale,
        splits.y_val,
        splits.x_test * rescale,
        splits.y_test,
    )


def _training(splits: data.Splits, full_train: bool) -> tuple[np.ndarray, np.ndarray]:
    """The training images and labels, followed by the validation part when ``full_train``."""
    if not full_train:
        return splits.x_train, splits.y_train
    return np.concatenate([splits.x_train, splits.x_val]), np.concatenate([splits.y_train, splits.y_val])


def _cifar(cfg: DANPData, device: torch.device) -> DANPTensors:
    splits = CIFAR_SETS[cfg.dataset](cfg.dir)
    classes = len(data.cifar100_classes(cfg.dir)) if cfg.dataset == "cifar100" else 10
    x_train, y_train = _training(splits, cfg.full_train)
    n = cfg.train_subset or len(x_train)
    pixels = torch.as_tensor(np.rint(x_train[:n] * 256).astype(np.uint8), device=device)
    labels = torch.as_tensor(y_train[:n], dtype=torch.long, device=device)
    mean = torch.tensor(CIFAR_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=device).view(1, 3, 1, 1)

    def normalise(images: torch.Tensor) -> torch.Tensor:
        return ((images - mean) / std).flatten(1)

    def transform(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = images.to(torch.float32) / PIXEL_MAX
        return normalise(augment(x, generator) if cfg.augment else x)

    x_test = torch.as_tensor(splits.x_test * np.float32(256 / PIXEL_MAX), device=device)
    test = (normalise(x_test), torch.as_tensor(splits.y_test, dtype=torch.long, device=device))
    return DANPTensors(Feed(pixels, labels, transform, cfg.augment), test, classes)


def augment(images: torch.Tensor, generator: torch.Generator | None, pad: int = CIFAR_PAD) -> torch.Tensor:
    """Random crop of each (C, H, W) image from its ``pad``-pixel zero-padded copy, then a left-right
    flip with probability 1/2: torchvision's ``RandomCrop(H, padding=pad)`` + ``RandomHorizontalFlip()``
    on a batch, every draw from ``generator`` (on the CPU)."""
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    top = torch.randint(2 * pad + 1, (n,), generator=generator).to(images.device)
    left = torch.randint(2 * pad + 1, (n,), generator=generator).to(images.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    rows = top[:, None] + torch.arange(height, device=images.device)
    across = torch.arange(width, device=images.device)
    cols = left[:, None] + torch.where(flip[:, None], width - 1 - across, across)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


@torch.no_grad()
def accuracy(
    net: danp.DANPNetwork, feed: Feed, *, noisy: bool, generator=None, batch_size: int = 4096
) -> float:
    """Fraction of the training feed classified right, every sample once (augmented as in training
    when the feed augments, with draws from ``generator``); ``noisy`` as :func:`danp.accuracy`."""
    correct = 0.0
    for x, y in feed.batches(batch_size, generator):
        correct += danp.accuracy(net, x, y, noisy=noisy, batch_size=batch_size) * len(y)
    return correct / max(len(feed), 1)
