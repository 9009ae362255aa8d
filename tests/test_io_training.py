"""Atomic writes, learning-rate schedules and divergence detection."""

import math
import os

import pytest
import torch
from torch import nn

from spinlearn.config import TrainConfig
from spinlearn.errors import TrainingDiverged
from spinlearn.io import write_text_atomic
from spinlearn.training import check_finite, lr_at


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "summary.json"
    write_text_atomic(path, "old")
    write_text_atomic(path, "new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["summary.json"]


def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_text_atomic(path, "old")

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(path, "new" * 1000)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["summary.json"]


def test_learning_rate_schedules():
    exp = TrainConfig(epochs=11, lr=1.0, lr_decay="exponential", lr_final=0.01)
    assert lr_at(0, exp) == 1.0
    assert lr_at(5, exp) == pytest.approx(0.1)
    assert lr_at(10, exp) == pytest.approx(0.01)
    cos = TrainConfig(epochs=3, lr=2.0, lr_decay="cosine", lr_final=0.5)
    assert [lr_at(e, cos) for e in range(3)] == pytest.approx([2.0, 1.5, 1.0])
    assert lr_at(7, TrainConfig(lr=0.3)) == 0.3


def test_non_finite_weights_stop_training_naming_epoch_and_layer():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    with torch.no_grad():
        model[2].weight[0, 1] = math.nan
    with pytest.raises(TrainingDiverged, match=r"epoch 4: non-finite weights in layer 2 \(Linear\)"):
        check_finite(model, 4, torch.tensor(0.5))
    with pytest.raises(TrainingDiverged, match="epoch 1: loss is inf"):
        check_finite(model, 1, torch.tensor(math.inf))
