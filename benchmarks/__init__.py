"""Speed benchmarks: each prints ratios measured side by side in one process (``make bench``)."""

import time

import torch
from torch import nn


def train_seconds(model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    """Wall time of one pass of cross-entropy training steps over ``x`` in minibatches of ``batch``."""
    start = time.perf_counter()
    for first in range(0, len(x), batch):
        loss = nn.functional.cross_entropy(model(x[first : first + batch]), y[first : first + batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start
