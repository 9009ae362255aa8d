"""Data sets. Everything ships with installed packages; nothing is fetched at run time."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

Split = tuple[torch.Tensor, torch.Tensor]


def standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero mean, unit variance per feature, with statistics from the training part only."""
    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def iris(seed: int, test_fraction: float = 0.2, device: str | torch.device = "cpu") -> tuple[Split, Split]:
    """Iris (150 samples, 4 features, 3 classes), stratified split drawn per ``seed``.

    The default 0.2 holds out 30 samples, as in the paper's 93.3 % = 28/30.
    """
    x, y = load_iris(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    x_tr, x_te = standardise(x_tr, x_te)

    def tensors(a: np.ndarray, b: np.ndarray) -> Split:
        return (
            torch.as_tensor(a, dtype=torch.float32, device=device),
            torch.as_tensor(b, dtype=torch.long, device=device),
        )

    return tensors(x_tr, y_tr), tensors(x_te, y_te)
