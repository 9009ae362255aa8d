"""Plots, written as PNG atomically. Matplotlib runs headless (Agg)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from spinlearn.io import save_figure_atomic


@functools.cache
def _pyplot():
    """matplotlib, headless, imported on first use (it costs a second of CLI start-up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    save_figure_atomic(fig, path)
    _pyplot().close(fig)
    return path


def learning_curves(histories: list[list[dict]], path: Path, title: str = "") -> Path:
    """Mean +/- std over seeds of the training loss and the test accuracy per epoch."""
    fig, (ax_loss, ax_acc) = _pyplot().subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label in (
        (ax_loss, "train_loss", "training loss"),
        (ax_acc, "test_accuracy", "test accuracy"),
    ):
        length = min(len(h) for h in histories)
        values = np.array([[r[key] for r in h[:length]] for h in histories])
        epochs = np.arange(1, length + 1)
        mean, std = values.mean(0), values.std(0)
        ax.plot(epochs, mean, color="C0")
        ax.fill_between(epochs, mean - std, mean + std, color="C0", alpha=0.25, lw=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.subplots_adjust(wspace=0.3)
    fig.suptitle(title or f"learning curves ({len(histories)} seed(s), mean ± std)")
    return _save(fig, path)


def device_curves(sweep: dict, path: Path) -> Path:
    """Measured V(I) of sampled neuron devices (solid) and their twins (dashed)."""
    fig, ax = _pyplot().subplots(figsize=(5, 3.6))
    current_ua = np.asarray(sweep["current_a"]) * 1e6
    for k, (v, vt) in enumerate(zip(sweep["neuron_v"], sweep["twin_v"], strict=True)):
        ax.plot(current_ua, v, color=f"C{k % 10}", lw=1)
        ax.plot(current_ua, vt, color=f"C{k % 10}", lw=1, ls="--")
    ax.set_xlabel("current I (µA)")
    ax.set_ylabel("measured voltage V (V)")
    ax.set_title("MTJ neurons (solid) and twins (dashed)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def gradcheck(history: list[dict], path: Path) -> Path:
    """1 - cosine(AFD, exact) vs dI, log-log: noise regime on the left, truncation on the right."""
    fig, ax = _pyplot().subplots(figsize=(5.5, 3.8))
    delta_i = np.array([r["delta_i_a"] for r in history])
    labels = {
        "ideal": "ideal devices",
        "device": "variability + noise",
        "independent": "independent twins",
    }
    for case, label in labels.items():
        gap = np.clip(1 - np.array([r[f"cosine_{case}"] for r in history]), 1e-16, None)
        ax.loglog(delta_i, gap, marker="o", ms=3, label=label)
    ax.axhline(1e-3, color="grey", ls=":", label="cosine = 0.999")
    ax.set_xlabel("finite-difference step dI (A)")
    ax.set_ylabel("1 - cosine(AFD, exact)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def compare_curves(runs: dict[str, list[list[dict]]], path: Path, key: str = "test_accuracy") -> Path:
    """``key`` per epoch for several variants (label -> per-seed histories), mean ± std over seeds."""
    fig, ax = _pyplot().subplots(figsize=(5.5, 3.6))
    for k, (label, histories) in enumerate(runs.items()):
        length = min(len(h) for h in histories)
        values = np.array([[r[key] for r in h[:length]] for h in histories])
        epochs = np.arange(1, length + 1)
        mean, std = values.mean(0), values.std(0)
        ax.plot(epochs, mean, color=f"C{k}", label=label)
        ax.fill_between(epochs, mean - std, mean + std, color=f"C{k}", alpha=0.2, lw=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key.replace("_", " "))
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str = "") -> Path:
    """Confusion matrix (rows: true class, columns: predicted), counts annotated."""
    classes = int(max(y_true.max(), y_pred.max())) + 1
    matrix = np.zeros((classes, classes), dtype=int)
    np.add.at(matrix, (y_true, y_pred), 1)
    fig, ax = _pyplot().subplots(figsize=(5, 4.4))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for i in range(classes):
        for j in range(classes):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(classes))
    ax.set_yticks(range(classes))
    ax.set_title(title or "confusion matrix (test set)")
    return _save(fig, path)


def energy_bars(energy: dict[str, float], breakdown: dict[str, float], path: Path) -> Path:
    """Stacked bar: training energy of the device run by category, beside the digital baseline."""
    fig, ax = _pyplot().subplots(figsize=(5, 3.6))
    bottom = 0.0
    for k, (category, joules) in enumerate(sorted(breakdown.items())):
        ax.bar("device run", joules, bottom=bottom, color=f"C{k}", label=category)
        bottom += joules
    ax.bar("digital baseline", energy["digital_baseline_train_j"], color="grey", label="digital backprop")
    ax.set_ylabel("training energy (J)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)
