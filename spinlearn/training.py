"""Supervised training loop shared by classifier experiments (minibatch SGD/Adam, cross-entropy).

The loop is rule-agnostic: with MTJActivation layers the backward pass already carries the twin-
measured derivatives, so the same loop trains AFD networks and digital baselines alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from spinlearn.checkpoint import Checkpoint, Snapshot
from spinlearn.config import TrainConfig
from spinlearn.energy import Ledger, digital_units, hidden_widths, linear_macs
from spinlearn.errors import TrainingDiverged


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


def lr_at(epoch: int, cfg: TrainConfig, base: float | None = None) -> float:
    """Learning rate for ``epoch`` (0-based): constant, exponential or cosine to ``base * lr_final``.

    ``base`` defaults to ``cfg.lr``; a baseline trained on the same schedule passes its own.
    ``cfg`` needs ``epochs``, ``lr``, ``lr_decay`` and ``lr_final``.
    """
    base = cfg.lr if base is None else base
    if cfg.lr_decay == "none" or cfg.epochs == 1:
        return base
    t = epoch / (cfg.epochs - 1)
    if cfg.lr_decay == "exponential":
        return base * cfg.lr_final**t
    return base * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> float:
    """Fraction of ``x`` classified as ``y`` (inference reads neuron devices only)."""
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size])
        correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
    return correct / max(len(x), 1)


def check_finite(model: nn.Module, epoch: int, loss: torch.Tensor) -> None:
    """Stop with a message naming the epoch and the layer at the first NaN/Inf."""
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"training diverged at epoch {epoch}: loss is {loss.item()}")
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            layer = name.rsplit(".", 1)[0]
            raise TrainingDiverged(
                f"training diverged at epoch {epoch}: non-finite weights in layer {layer} "
                f"({type(model.get_submodule(layer)).__name__})"
            )


def train_classifier(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    cfg: TrainConfig,
    generator: torch.Generator,
    on_epoch: Callable[[dict], None] = lambda record: None,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    soft_targets: torch.Tensor | None = None,
    ledger: Ledger | None = None,
    checkpoint: Checkpoint | None = None,
    stage: str = "train",
    state: dict[str, Any] | None = None,
    snapshot: Snapshot | None = None,
) -> list[dict]:
    """Train for ``cfg.epochs``; returns one record per epoch (also passed to ``on_epoch``).

    ``generator`` (on the CPU) shuffles the minibatches. With ``soft_targets`` (one row per training
    sample, e.g. a teacher's logits) the loss is ``loss_fn(logits, labels, soft_targets)``.
    With a ``ledger``, the digital work (MACs, digital activations) of training steps and test
    evaluations is booked in the ``train`` and ``evaluation`` phases; device reads book themselves.
    With a ``checkpoint``, the loop is its ``stage``: model, optimizer, generator, ledger, history
    and the objects in ``state`` (the backend behind the model's devices) are saved after every
    epoch and, on resume, restored before the first epoch still to train.
    A ``snapshot`` is taken before every test evaluation: after the last epoch it holds the state of
    its objects (the backend, the generator of its noise) as they stood before the final score,
    which re-evaluating the model later needs to draw the same read noise (``spinlearn evaluate``).
    """
    ledger = ledger or Ledger()
    macs = linear_macs(model)
    tanh_neurons = sum(hidden_widths(model)) if digital_units(model) else 0
    loss_fn = loss_fn or nn.functional.cross_entropy
    x_train, y_train = train
    optimizer = make_optimizer(model, cfg)
    history: list[dict] = []
    n = len(x_train)
    objects = {"model": model, "optimizer": optimizer, "generator": generator, "ledger": ledger}
    objects.update(history=history, **(state or {}))
    for epoch in (checkpoint or Checkpoint()).epochs(stage, cfg.epochs, objects):
        lr = lr_at(epoch, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        order = torch.randperm(n, generator=generator).to(x_train.device)
        total, seen = torch.zeros((), device=x_train.device), 0
        with ledger.in_phase("train"):
            for start in range(0, n, cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                ledger.digital_macs(3 * macs * len(idx))
                ledger.digital_activations(2 * tanh_neurons * len(idx))
                try:
                    extra = () if soft_targets is None else (soft_targets[idx],)
                    loss = loss_fn(model(x_train[idx]), y_train[idx], *extra)
                except TrainingDiverged as exc:
                    raise TrainingDiverged(f"training diverged at epoch {epoch + 1}: {exc}") from None
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(idx)
                seen += len(idx)
        mean_loss = total / seen
        check_finite(model, epoch + 1, mean_loss)
        if snapshot is not None:
            snapshot.take()
        with ledger.in_phase("evaluation"):
            ledger.digital_macs(macs * len(test[0]))
            ledger.digital_activations(tanh_neurons * len(test[0]))
            test_accuracy = accuracy(model, *test)
        record = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": float(mean_loss),
            "test_accuracy": test_accuracy,
        }
        history.append(record)
        on_epoch(record)
    return history
