"""Speed benchmarks: each prints ratios measured side by side in one process (``make bench``)."""

import statistics
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import torch
from torch import nn

T = TypeVar("T")


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued kernels (CUDA runs them asynchronously: a clock read before
    they finish would time their launch only)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def train_seconds(model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    """Wall time of one pass of cross-entropy training steps over ``x`` in minibatches of ``batch``."""
    synchronize(x.device)
    start = time.perf_counter()
    for first in range(0, len(x), batch):
        loss = nn.functional.cross_entropy(model(x[first : first + batch]), y[first : first + batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(x.device)
    return time.perf_counter() - start


def alternating(
    names: Iterable[str], measure: Callable[[str, int], T], rounds: int, warmup: int = 1
) -> dict[str, list[T]]:
    """``measure(name, round)`` of every variant in ``rounds`` rounds, after ``warmup`` rounds that
    are discarded. A round measures every variant once, in turn: machine noise (other processes,
    clock changes) then hits all variants alike, which measuring them one after the other would not.
    """
    names = list(names)
    kept: dict[str, list[T]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        for name in names:
            result = measure(name, index)
            if index >= warmup:
                kept[name].append(result)
    return kept


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in times.items()}


def ratio_spread(times: dict[str, list[float]], numerator: str, denominator: str) -> dict:
    """The spread of a ratio over the alternating rounds: each round's ``numerator / denominator``
    (measured back to back, so a load change between rounds cancels), their median, quartiles,
    extremes and count. The headline ``ratio`` stays the ratio of the two medians."""
    rounds = sorted(a / b for a, b in zip(times[numerator], times[denominator], strict=True))
    quartiles = statistics.quantiles(rounds, n=4) if len(rounds) > 1 else rounds * 3
    return {
        "median": statistics.median(rounds),
        "q1": quartiles[0],
        "q3": quartiles[2],
        "min": rounds[0],
        "max": rounds[-1],
        "rounds": len(rounds),
    }


def step_times(
    variants: dict[str, tuple], sizes: list[int], batch: int, steps: int, rounds: int, device="cpu"
) -> dict[str, list[float]]:
    """Seconds per training step of each ``(model, optimizer)`` variant in each of ``rounds``
    rounds of ``steps`` steps alternating between them, on the same synthetic minibatches
    (``sizes[0]`` features, ``sizes[-1]`` classes: the cost does not depend on the values)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch * steps, sizes[0], generator=gen).to(device)
    y = torch.randint(0, sizes[-1], (len(x),), generator=gen).to(device)

    def step_seconds(kind: str, _: int) -> float:
        return train_seconds(*variants[kind], x, y, batch) / steps

    return alternating(variants, step_seconds, rounds)


def step_medians(variants: dict[str, tuple], sizes: list[int], batch: int, steps: int, rounds: int) -> dict:
    """Median seconds per training step of each variant (:func:`step_times`)."""
    return medians(step_times(variants, sizes, batch, steps, rounds))
