"""Inputs no class fits: what a posterior's predictive uncertainty is for.

A posterior average can only lower a model's confidence (see
:func:`~spinlearn.metrics.confidence_gap`), so its ECE beats one sample's only where the samples
are overconfident. What Bayesian deep-learning papers report instead (Ovadia et al. 2019, "Can you
trust your model's uncertainty?") is NLL and Brier score on the test set, and how well the
predictive entropy tells the test set from inputs of another distribution: the AUROC of
:func:`~spinlearn.metrics.entropy_auroc`, 0.5 for chance, 1 for a perfect separation. Four kinds
of such inputs, all made in the run from the seed (nothing is downloaded):

* ``noise``: pixels drawn uniformly over the training data's value range (for rows that are not
  images, each feature over its own range);
* ``shapes``: Fashion-like silhouettes, one filled ellipse, rectangle or trapezoid per image that
  covers much of the frame, at a uniform grey level with a fine texture (images only);
* ``rotated``: the first test images turned by 90 degrees (images only);
* ``class``: the test inputs of one class, scored by models trained without that class.

The held-out class needs models that never saw it. The run's own models keep every class, so that
their accuracy and calibration stay comparable with the paper's and with earlier runs; the held-out
figures come from two more trainings (DW-SGLD, and SGD when the run has it) with the same
configuration, initial weights and minibatch generator on the training set less class ``k``
(:func:`without_class`). They keep the full output layer: the left-out class's output is never a
target and learns to stay low, so the architecture and initial weights are those of the main runs.
The cost is two trainings on ``(C - 1) / C`` of the data; ``ood.held_out=false`` skips them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from spinlearn.errors import ConfigError
from spinlearn.experiments.mnist import Tensors
from spinlearn.metrics import entropy_auroc

#: The kinds generated from a run's test set and seed; ``class`` comes from the held-out trainings.
GENERATED = ("noise", "shapes", "rotated")
HELD_OUT = "class"
#: Scored ways of predicting: the final weights, each posterior sample alone (AUROCs averaged), the
#: posterior average of the samples' class probabilities.
VIEWS = ("final", "single", "posterior")


@dataclass
class Probes:
    """Out-of-distribution inputs of every generated kind, stacked as the model's flat rows."""

    inputs: torch.Tensor
    kinds: dict[str, slice]


def noise_images(n: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """``n`` images of ``shape`` with every value uniform in [0, 1)."""
    return torch.rand(n, *shape, generator=generator)


def shape_images(n: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """``n`` Fashion-like silhouettes of ``shape`` (channels, side, side) in [0, 1]: a filled
    ellipse, rectangle or trapezoid (wider at the bottom: a dress, a bag) centred within 15 % of the
    frame, half-axes 45-90 % of the half-side, a grey level in [0.5, 1) per channel less a texture
    of up to 0.15. Digits are thin strokes on an empty frame; these are broad filled areas."""
    channels, side = shape[0], shape[-1]
    u = torch.rand(n, 5, 1, 1, generator=generator)
    grid = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1  # pixel centres in [-1, 1]
    dx = (grid[None, None, :] - 0.3 * (u[:, 0] - 0.5)) / (0.45 + 0.45 * u[:, 1])
    dy = (grid[None, :, None] - 0.3 * (u[:, 2] - 0.5)) / (0.45 + 0.45 * u[:, 3])
    rectangle = (dx.abs() <= 1) & (dy.abs() <= 1)
    ellipse = dx.square() + dy.square() <= 1
    trapezoid = rectangle & (dx.abs() <= 0.6 + 0.2 * (dy + 1))
    kind = (u[:, 4] * 3).long()
    mask = torch.where(kind == 0, ellipse, torch.where(kind == 1, rectangle, trapezoid))
    level = 0.5 + 0.5 * torch.rand(n, channels, 1, 1, generator=generator)
    texture = 0.15 * torch.rand(n, channels, side, side, generator=generator)
    return (mask[:, None] * (level - texture)).clamp(0, 1)


def rotated(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Flat image rows ``x`` of ``shape`` (channels, side, side) turned by 90 degrees, flat again."""
    return torch.rot90(x.reshape(len(x), *shape), 1, (2, 3)).flatten(1)


def probes(d: Tensors, shape: tuple[int, ...], size: int, seed: int) -> Probes:
    """The generated kinds for data ``d`` (``shape`` of one sample), ``size`` inputs each (rotated:
    at most the test set), deterministic in ``seed``. Generated images span the training data's
    value range: 0 maps to its minimum (the background after normalisation), 1 to its maximum."""
    generator = torch.Generator().manual_seed(seed + 101)
    x_train, x_test = d.train[0], d.test[0]
    if len(shape) == 3:
        lo, hi = float(x_train.min()), float(x_train.max())
        sets = {
            "noise": noise_images(size, shape, generator).flatten(1),
            "shapes": shape_images(size, shape, generator).flatten(1),
        }
        sets = {k: (lo + v * (hi - lo)).to(x_test.device) for k, v in sets.items()}
        sets["rotated"] = rotated(x_test[:size], shape)
    else:
        lo, hi = x_train.min(0).values, x_train.max(0).values
        sets = {"noise": lo + noise_images(size, shape, generator).to(lo.device) * (hi - lo)}
    kinds, start = {}, 0
    for kind, rows in sets.items():
        kinds[kind] = slice(start, start + len(rows))
        start += len(rows)
    return Probes(torch.cat(list(sets.values())), kinds)


def aurocs(
    in_final: torch.Tensor, in_samples: torch.Tensor, out_final: torch.Tensor, out_samples: torch.Tensor
) -> dict[str, float]:
    """Entropy AUROC of each view (:data:`VIEWS`): class probabilities ``(n, classes)`` of the final
    weights and ``(samples, n, classes)`` of the posterior samples, on in- and out-of-distribution
    inputs."""
    single = [entropy_auroc(a, b) for a, b in zip(in_samples, out_samples, strict=True)]
    return {
        "final": entropy_auroc(in_final, out_final),
        "single": sum(single) / len(single),
        "posterior": entropy_auroc(in_samples.mean(0), out_samples.mean(0)),
    }


def generated_aurocs(
    test_final, test_samples, probe_final, probe_samples, found: Probes
) -> dict[str, dict[str, float]]:
    """Per generated kind, the views' AUROCs of the test set against that kind's inputs."""
    return {
        kind: aurocs(test_final, test_samples, probe_final[rows], probe_samples[:, rows])
        for kind, rows in found.kinds.items()
    }


def held_out_aurocs(final, samples, labels: torch.Tensor, k: int) -> dict[str, float]:
    """The views' AUROCs of a model trained without class ``k``: the other classes' test inputs
    against class ``k``'s."""
    out = labels == k
    return aurocs(final[~out], samples[:, ~out], final[out], samples[:, out])


def named(found: dict[str, dict[str, float]], variant: str = "") -> dict[str, float]:
    """DW-SGLD's AUROCs per OOD kind as ``ood_auroc_<kind>_<view>``; a baseline's final weights as
    ``ood_auroc_<kind>_<variant>`` and its sample average as ``ood_auroc_<kind>_<variant>_posterior``."""
    out = {}
    for kind, views in found.items():
        if variant:
            out[f"ood_auroc_{kind}_{variant}"] = views["final"]
            out[f"ood_auroc_{kind}_{variant}_posterior"] = views["posterior"]
        else:
            out.update({f"ood_auroc_{kind}_{view}": value for view, value in views.items()})
    return out


def margins(metrics: dict[str, float], kinds: list[str]) -> dict[str, float]:
    """What the targets compare: the posterior's least AUROC margin over the OOD kinds against one
    sample and against SGD (NaN if any kind's is), and its NLL minus one sample's."""
    out = {"nll_posterior_minus_single": metrics["nll_posterior"] - metrics["nll_single"]}
    for other in ("single", "sgd"):
        if f"ood_auroc_{kinds[0]}_{other}" in metrics:
            margins = [metrics[f"ood_auroc_{k}_posterior"] - metrics[f"ood_auroc_{k}_{other}"] for k in kinds]
            out[f"ood_auroc_posterior_minus_{other}"] = float(np.min(margins))
    return out


def held_out_class(chosen: int | None, seed: int, classes: int) -> int:
    """The class to leave out: ``chosen``, or the seed's (``seed mod classes``) when None."""
    k = seed % classes if chosen is None else chosen
    if k >= classes:
        raise ConfigError(f"ood.held_out_class = {k}: the data has classes 0..{classes - 1}")
    return k


def without_class(d: Tensors, k: int) -> Tensors:
    """``d`` with class ``k`` taken out of the training set (the test set is kept whole)."""
    x, y = d.train
    keep = y != k
    return dataclasses.replace(d, train=(x[keep], y[keep]))
