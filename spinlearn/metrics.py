"""Scores of predicted class probabilities: likelihood and calibration (NLL, Brier, ECE, confidence
gap), and how well predictive entropy separates inputs no class fits (:func:`entropy_auroc`).

The DW-SGLD experiments report them for the final weights, for one posterior sample and for the
posterior average; :func:`ece_gap` puts a bootstrap interval on the difference that averaging makes.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def softmax_outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    model.eval()
    return torch.cat([torch.softmax(model(x[s : s + batch_size]), 1) for s in range(0, len(x), batch_size)])


def nll(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-likelihood of ``labels`` under ``probs`` (nats)."""
    picked = probs.gather(1, labels[:, None]).squeeze(1).clamp_min(1e-12)
    return float(-picked.log().mean())


def brier(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Multi-class Brier score: ``mean_i sum_c (p_ic - [c = y_i])^2``, between 0 (certain and right)
    and 2 (certain and wrong). A proper scoring rule like NLL, but bounded: one confident mistake
    costs at most 2, where its NLL grows without limit."""
    onehot = torch.nn.functional.one_hot(labels, probs.shape[-1]).to(probs.dtype)
    return float((probs - onehot).square().sum(-1).mean())


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy ``-sum_c p_c ln p_c`` of each row of class probabilities (nats; 0 for a certain
    prediction, ``ln C`` for a uniform one), computed in float64 so that confident rows stay apart."""
    p = probs.double()
    return -(p * p.clamp_min(1e-300).log()).sum(-1)


def entropy_auroc(probs_in: torch.Tensor, probs_out: torch.Tensor) -> float:
    """AUROC of predictive entropy as a detector of out-of-distribution inputs: the probability that
    an input of ``probs_out`` has a higher entropy than one of ``probs_in``, ties counting one half
    (``sklearn.metrics.roc_auc_score``). 0.5 is chance, 1 a perfect separation; NaN when either set
    is empty."""
    if not len(probs_in) or not len(probs_out):
        return float("nan")
    from sklearn.metrics import roc_auc_score  # imported here: seconds of start-up

    scores = torch.cat((predictive_entropy(probs_in), predictive_entropy(probs_out))).cpu().numpy()
    truth = [0] * len(probs_in) + [1] * len(probs_out)
    return float(roc_auc_score(truth, scores))


def _excess_and_bin(
    probs: torch.Tensor, labels: torch.Tensor, bins: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example (last but one dimension): confidence minus correctness, and its confidence bin."""
    confidence, predicted = probs.max(-1)
    which = (confidence * bins).long().clamp(max=bins - 1)
    return confidence - (predicted == labels).to(confidence.dtype), which


def ece(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017): confidence vs accuracy in ``bins`` equal-width bins,
    weighted by the share of samples in each bin: ``sum_b |sum_{i in b} (conf_i - correct_i)| / n``."""
    excess, which = _excess_and_bin(probs, labels, bins)
    per_bin = torch.zeros(bins, dtype=excess.dtype, device=excess.device).index_add_(0, which, excess)
    return float(per_bin.abs().sum() / max(len(labels), 1))


def confidence_gap(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean top-class confidence minus accuracy: > 0 overconfident, < 0 underconfident.

    Why beside ECE: it says which way a model is miscalibrated, and so whether a posterior average
    can help. The average's confidence in its top class, ``max_c mean_k p_kc``, is never above the
    samples' mean confidence ``mean_k max_c p_kc``, so averaging only lowers confidence (the
    accuracy tends to rise). It moves the gap down: toward calibration for overconfident samples,
    away from it for underconfident ones. ECE, which bins, mostly follows, but not always: in one
    of two runs, plain SGD's snapshot average on mnist-dw-resnet18 had the lower ECE while
    underconfident (README).
    """
    excess, _ = _excess_and_bin(probs, labels, 1)  # confidence minus correctness, per example
    return float(excess.mean())


def ece_gap(
    samples: torch.Tensor,
    labels: torch.Tensor,
    resamples: int = 1000,
    bins: int = 15,
    generator: torch.Generator | None = None,
) -> tuple[float, float, float]:
    """ECE of the posterior average minus the mean ECE of its ``samples`` (``(K, n, classes)``
    probabilities), and a 95 % paired-bootstrap interval of that difference over the test examples.

    Why: on a well-classified test set ECE is a few thousandths, the same order as its sampling
    error, so the sign of a difference means little without an interval. Each bootstrap replicate
    reweights the examples by multinomial counts; an ECE is then ``sum_b |sum_{i in b} c_i (conf_i -
    correct_i)| / n``, one matrix product for all replicates. Returns ``(gap, low, high)``.
    """
    if resamples < 2:
        raise ValueError(f"resamples must be >= 2, got {resamples}")
    models = torch.cat((samples.mean(0, keepdim=True), samples))  # posterior first, then each sample
    excess, which = _excess_and_bin(models, labels, bins)  # (K + 1, n)
    per_bin = torch.zeros((*excess.shape, bins), dtype=excess.dtype, device=excess.device)
    per_bin.scatter_(2, which.unsqueeze(2), excess.unsqueeze(2))  # (K + 1, n, bins)
    n = labels.numel()
    draws = torch.randint(
        0, n, (resamples, n), generator=generator, device=generator.device if generator else None
    )
    counts = torch.zeros(resamples + 1, n, dtype=excess.dtype, device=excess.device)
    counts[0] = 1.0  # replicate 0: the test set itself
    counts[1:].scatter_add_(1, draws.to(excess.device), torch.ones_like(counts[1:]))
    eces = torch.einsum("rn,mnb->mrb", counts, per_bin).abs().sum(2) / n  # (K + 1, R + 1)
    gaps = eces[0] - eces[1:].mean(0)
    low, high = torch.quantile(gaps[1:], torch.tensor([0.025, 0.975], dtype=gaps.dtype, device=gaps.device))
    return float(gaps[0]), float(low), float(high)
