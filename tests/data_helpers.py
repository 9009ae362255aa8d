"""Small generated data sets in the formats users bring, for tests."""

import numpy as np

from spinlearn import data


def tiny_cifar(directory, n=72):
    """``n`` random 32x32 colour images with a weak class signal, written as CIFAR-10 python batches."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 10
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    images[:, labels % 3] //= 2  # a class signal
    return data.write_cifar_batches(directory, images, labels)


def tiny_cifar100(directory, n=72, classes=5):
    """``n`` random 32x32 colour images of ``classes`` fine labels with a weak class signal, written in
    CIFAR-100's python layout (``directory/cifar-100-python/{train,test,meta}``)."""
    rng = np.random.default_rng(1)
    labels = np.arange(n) % classes
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    images[:, labels % 3] //= 2
    return data.write_cifar100(directory, images, labels, classes)
